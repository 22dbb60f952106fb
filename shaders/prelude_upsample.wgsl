// Shared by the nearest upsampling kernels (upsample_nearest_*.wgsl), NCHW:
// x [planes, in_h, in_w] -> y [planes, out_h, out_w] with planes = N·C: their parameters.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
