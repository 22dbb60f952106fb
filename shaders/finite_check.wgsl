// Finiteness check of a training step, over values[len] (a gradient, a batch norm's saved
// statistics): where any value is infinite or NaN, bit `flag` is set in status[STATUS_FLAGS]
// (ORed atomically; the step's status record is laid out in ops/step_status.rs).
//
// A value is non-finite when its exponent bits are all ones:
//   (bits(x) & 0x7f800000) == 0x7f800000
// tested on the bits, since WGSL lets a compiler assume that float arithmetic sees no NaN
// or infinity (a test like x != x may be folded away).
// One invocation per value, 256 per workgroup; workgroups are numbered id.x + id.y ·
// num_workgroups.x. The SGD update and the running-statistics update read the flags and leave
// their buffers untouched when any is set, so a step is applied whole or not at all.

struct Params {
    len: u32,
    flag: u32,
    _pad0: u32,
    _pad1: u32,
}

const STATUS_FLAGS: u32 = 2u;
const EXPONENT: u32 = 0x7f800000u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>>;

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
    if (bitcast<u32>(values[i]) & EXPONENT) == EXPONENT {
        atomicOr(&status[STATUS_FLAGS], params.flag);
    }
}
