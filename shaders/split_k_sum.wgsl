// Second step of a split-K GEMM: adds the partial sums of its chunks, in chunk order,
//   out[i] = Σ_{s < chunks} partial[s · len + i]   (+ out[i] when `accumulate`)
// so that the result is the same run after run. partial [chunks, len], out [len]. One
// invocation per element, 256 per workgroup, on a 2-D grid of workgroups.

struct Params {
    len: u32,
    chunks: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if i >= params.len {
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < params.chunks; s++) {
        sum += partial[s * params.len + i];
    }
    if params.accumulate == 1u {
        sum += out[i];
    }
    out[i] = sum;
}
