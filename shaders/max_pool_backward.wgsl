// Max pool backward, NCHW, as a gather (no atomics, deterministic):
// dx[plane, ih, iw] = sum of dy[plane, oh, ow] over the output windows (oh, ow) that contain
// (ih, iw) and whose argmax is ih*in_w + iw, summed in row-major (oh, ow) order.
//
// One invocation per input element. Output row oh covers input rows
// [oh*stride - pad, oh*stride - pad + kernel - 1], so the rows containing ih are
// ceil((ih + pad - kernel + 1) / stride) <= oh <= floor((ih + pad) / stride), clipped to
// [0, out_h - 1]; columns likewise. Same parameters as the forward kernel.

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
@group(0) @binding(1) var<storage, read> argmax: array<u32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// The first output index whose window (starting at o*stride - pad) reaches input index `i`.
fn first_window(i: u32) -> u32 {
    let reach = i + params.pad + 1u;
    if reach <= params.kernel {
        return 0u;
    }
    return (reach - params.kernel + params.stride - 1u) / params.stride;
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

    let oh_start = first_window(ih);
    let ow_start = first_window(iw);
    let oh_last = min((ih + params.pad) / params.stride, params.out_h - 1u);
    let ow_last = min((iw + params.pad) / params.stride, params.out_w - 1u);

    let out_base = plane * params.out_h * params.out_w;
    var sum = 0.0;
    for (var oh = oh_start; oh <= oh_last; oh++) {
        for (var ow = ow_start; ow <= ow_last; ow++) {
            let o = out_base + oh * params.out_w + ow;
            if argmax[o] == index {
                sum += dy[o];
            }
        }
    }
    dx[i] = sum;
}
