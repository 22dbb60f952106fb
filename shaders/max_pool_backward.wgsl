// Max pool backward (see prelude_max_pool.wgsl), as a gather (no atomics, deterministic):
// dx[plane, ih, iw] = sum of dy[plane, oh, ow] over the output windows (oh, ow) that contain
// (ih, iw) and whose argmax is ih*in_w + iw, summed in row-major (oh, ow) order.
//
// One invocation per input element. Output row oh covers input rows
// [oh*stride - pad, oh*stride - pad + kernel - 1], so the rows containing ih are
// ceil((ih + pad - kernel + 1) / stride) <= oh <= floor((ih + pad) / stride), clipped to
// [0, out_h - 1]; columns likewise.
//
// Joined after prelude_planes.wgsl and prelude_max_pool.wgsl
// (plane_position, Params) and before body_flat.wgsl (the entry point, which calls elements
// and element below).

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

fn elements() -> u32 {
    return params.planes * (params.in_h * params.in_w);
}

fn element(i: u32) {
    let position = plane_position(i, params.in_h, params.in_w);
    let plane = position.x;
    let ih = position.y;
    let iw = position.z;
    let index = ih * params.in_w + iw;

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
