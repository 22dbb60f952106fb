// Nearest upsampling backward (see prelude_upsample.wgsl), as a gather (no atomics,
// deterministic): dx[p, ih, iw] = sum of dy[p, oh, ow] over the output pixels that the forward
// pass copied from (ih, iw), summed row by row.
//
// Output row oh reads input row floor(oh*in_h/out_h), which is ih exactly when
// ih*out_h <= oh*in_h < (ih+1)*out_h, i.e. for oh from ceil(ih*out_h/in_h) to
// ceil((ih+1)*out_h/in_h) - 1; columns likewise. One invocation per input element.
//
// Joined after prelude_planes.wgsl and prelude_upsample.wgsl
// (plane_position, Params) and before body_flat.wgsl (the entry point, which calls elements
// and element below).

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

// ceil(a / b) for b > 0.
fn ceil_div(a: u32, b: u32) -> u32 {
    return (a + b - 1u) / b;
}

fn elements() -> u32 {
    return params.planes * (params.in_h * params.in_w);
}

fn element(i: u32) {
    let position = plane_position(i, params.in_h, params.in_w);
    let ih = position.y;
    let iw = position.z;

    let oh_start = ceil_div(ih * params.out_h, params.in_h);
    let oh_end = ceil_div((ih + 1u) * params.out_h, params.in_h);
    let ow_start = ceil_div(iw * params.out_w, params.in_w);
    let ow_end = ceil_div((iw + 1u) * params.out_w, params.in_w);

    let out_base = position.x * params.out_h * params.out_w;
    var sum = 0.0;
    for (var oh = oh_start; oh < oh_end; oh++) {
        for (var ow = ow_start; ow < ow_end; ow++) {
            sum += dy[out_base + oh * params.out_w + ow];
        }
    }
    dx[i] = sum;
}
