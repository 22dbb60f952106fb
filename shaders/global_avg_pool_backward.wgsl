// Global average pool backward, NCHW: dx[p, k] = dy[p] / hw for every k < hw, where
// p = n*C + c indexes the planes and hw = H*W.
//
// One invocation per input element.

struct Params {
    planes: u32,
    hw: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if i >= params.planes * params.hw {
        return;
    }
    dx[i] = dy[i / params.hw] / f32(params.hw);
}
