// Shared by the max pool kernels (max_pool_*.wgsl), NCHW: x [planes, in_h, in_w] ->
// y [planes, out_h, out_w] with a square window of `kernel`, stride `stride` and padding `pad`
// on every side, where planes = N·C and out = floor((in + 2·pad − kernel) / stride) + 1: their
// parameters.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
