// Shared by the kernels over a flat tensor of `len` elements (add, relu_*): their parameters,
// and the element count of body_flat.wgsl.

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

fn elements() -> u32 {
    return params.len;
}
