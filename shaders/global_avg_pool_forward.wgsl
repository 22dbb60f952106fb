// Global average pool forward, NCHW: x[planes, hw] -> y[planes] with y[p] = mean of the hw
// values of plane p, where planes = N*C and hw = H*W.
//
// One invocation per plane sums its values in order, then divides by hw: deterministic.

struct Params {
    planes: u32,
    hw: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let p = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if p >= params.planes {
        return;
    }
    let base = p * params.hw;
    var sum = 0.0;
    for (var k = 0u; k < params.hw; k++) {
        sum += x[base + k];
    }
    y[p] = sum / f32(params.hw);
}
