// Sum of squares of a flat tensor x[len] into one slot of `out`: out[slot] = sum_i x[i]^2
// (the square of its L2 norm). One workgroup per tensor: invocation `lane` sums the elements
// i = lane (mod 256) in order, then a tree reduction in workgroup memory adds the 256
// partial sums. Deterministic.

struct Params {
    len: u32,
    slot: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lane: u32) {
    var sum = 0.0;
    for (var i = lane; i < params.len; i += 256u) {
        let v = x[i];
        sum += v * v;
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width /= 2u) {
        if lane < width {
            partial[lane] += partial[lane + width];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        out[params.slot] = partial[0];
    }
}
