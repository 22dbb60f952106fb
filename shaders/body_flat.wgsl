// The entry point of the flat kernels: one invocation per element i < elements(), 256 per
// workgroup, on a 2-D grid of workgroups numbered id.x + id.y · num_workgroups.x (so that more
// than 65,535 of them fit).
//
// The kernel joined before this file supplies:
//   elements() -> u32   how many elements there are
//   element(i)          the work of element i

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if i >= elements() {
        return;
    }
    element(i);
}
