// Finiteness check of a training step, over values[len] (a gradient, a batch norm's saved
// statistics): where any value is infinite or NaN, bit `flag` is set in status[STATUS_FLAGS]
// (ORed atomically; the step's status record is laid out in src/ops/finite_check.rs).
//
// A value is non-finite when its exponent bits are all ones:
//   (bits(x) & 0x7f800000) == 0x7f800000
// tested on the bits, since WGSL lets a compiler assume that float arithmetic sees no NaN
// or infinity (a test like x != x may be folded away).
// One invocation per four values (buffers are padded with zeros to whole vec4s, and zero is
// finite). The SGD update and the running-statistics update read the flags
// and leave their buffers untouched when any is set, so a step is applied whole or not at all.
//
// Joined before body_flat.wgsl (the entry point, which calls elements and element below).

struct Params {
    len: u32,
    flag: u32,
    _pad0: u32,
    _pad1: u32,
}

const STATUS_FLAGS: u32 = 2u;
const EXPONENT: u32 = 0x7f800000u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> values: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>>;

fn elements() -> u32 {
    return (params.len + 3u) / 4u;
}

fn element(i: u32) {
    let exponents = bitcast<vec4<u32>>(values[i]) & vec4<u32>(EXPONENT);
    if any(exponents == vec4<u32>(EXPONENT)) {
        atomicOr(&status[STATUS_FLAGS], params.flag);
    }
}
