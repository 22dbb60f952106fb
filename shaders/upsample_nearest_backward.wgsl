// Nearest upsampling backward, NCHW, as a gather (no atomics, deterministic):
// dx[p, ih, iw] = sum of dy[p, oh, ow] over the output pixels that the forward pass copied
// from (ih, iw), summed row by row.
//
// Output row oh reads input row floor(oh*in_h/out_h), which is ih exactly when
// ih*out_h <= oh*in_h < (ih+1)*out_h, i.e. for oh from ceil(ih*out_h/in_h) to
// ceil((ih+1)*out_h/in_h) - 1; columns likewise. One invocation per input element.

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
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

// ceil(a / b) for b > 0.
fn ceil_div(a: u32, b: u32) -> u32 {
    return (a + b - 1u) / b;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    let in_plane = params.in_h * params.in_w;
    if i >= params.planes * in_plane {
        return;
    }
    let plane = i / in_plane;
    let index = i - plane * in_plane;
    let ih = index / params.in_w;
    let iw = index - ih * params.in_w;

    let oh_start = ceil_div(ih * params.out_h, params.in_h);
    let oh_end = ceil_div((ih + 1u) * params.out_h, params.in_h);
    let ow_start = ceil_div(iw * params.out_w, params.in_w);
    let ow_end = ceil_div((iw + 1u) * params.out_w, params.in_w);

    let out_base = plane * params.out_h * params.out_w;
    var sum = 0.0;
    for (var oh = oh_start; oh < oh_end; oh++) {
        for (var ow = ow_start; ow < ow_end; ow++) {
            sum += dy[out_base + oh * params.out_w + ow];
        }
    }
    dx[i] = sum;
}
