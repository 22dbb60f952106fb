// Nearest upsampling forward (see prelude_upsample.wgsl):
// y[p, oh, ow] = x[p, floor(oh*in_h/out_h), floor(ow*in_w/out_w)], computed in exact integer
// arithmetic (PyTorch's mode='nearest' for integer ratios such as 32 -> 224).
//
// One invocation per output element.
//
// Joined after prelude_planes.wgsl and prelude_upsample.wgsl
// (plane_position, Params) and before body_flat.wgsl (the entry point, which calls elements
// and element below).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

fn elements() -> u32 {
    return params.planes * (params.out_h * params.out_w);
}

fn element(i: u32) {
    let position = plane_position(i, params.out_h, params.out_w);
    let ih = position.y * params.in_h / params.out_h;
    let iw = position.z * params.in_w / params.out_w;
    y[i] = x[(position.x * params.in_h + ih) * params.in_w + iw];
}
