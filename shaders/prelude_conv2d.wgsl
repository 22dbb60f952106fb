// Shared by the 2-D convolution kernels (conv2d_*.wgsl): their parameters, and the gather of
// an input value for the implicit GEMMs of the forward and the weight gradient. Tensors are NCHW:
// x [B, Cin, H, W], w [Cout, Cin, KH, KW], y [B, Cout, OH, OW] with
// OH = (H + 2·pad_h − KH) / stride_h + 1 (and likewise OW).

struct Params {
    batch: u32,
    in_channels: u32,
    in_height: u32,
    in_width: u32,
    out_channels: u32,
    out_height: u32,
    out_width: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    has_bias: u32,
    accumulate: u32,
    // Weight gradients: values of the reduction (K = B·OH·OW) summed by each chunk; 0 where
    // the portable and tiled kernels sum it whole.
    k_chunk: u32,
    // The kernel rows [live_h_start, live_h_end) and columns [live_w_start, live_w_end) that
    // read the input for some output position; the others read only padding (a 3×3 kernel on
    // a 1×1 plane reaches it with its centre only). The subgroup kernels skip them.
    live_h_start: u32,
    live_h_end: u32,
    live_w_start: u32,
    live_w_end: u32,
    // The tiled kernels: whether A (the forward's w, the weight gradient's dy) is read 4 values
    // at a time as one vec4, its rows (planes) and chunks being multiples of 4 values.
    quads: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// An offset past every tensor: what input_offset gives for a position that reads zero.
const OUTSIDE: u32 = 0xffffffffu;

// The offset in x [B, Cin, H, W] that kernel tap (ci, kh, kw) = `tap` < Cin·KH·KW reads for
// output pixel (b, oh, ow) = `pixel` < B·OH·OW: that of x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw].
// OUTSIDE where the tap or the pixel is out of range, or the position is padding.
fn input_offset(tap: u32, pixel: u32) -> u32 {
    let taps = params.kernel_h * params.kernel_w;
    let out_pixels = params.out_height * params.out_width;
    if tap >= params.in_channels * taps || pixel >= params.batch * out_pixels {
        return OUTSIDE;
    }
    let ci = tap / taps;
    let kh = (tap % taps) / params.kernel_w;
    let kw = tap % params.kernel_w;
    let image = pixel / out_pixels;
    let in_image = pixel % out_pixels;
    // Unsigned wrap-around makes negative coordinates (padding) compare as out of range.
    let ih = (in_image / params.out_width) * params.stride_h + kh - params.pad_h;
    let iw = (in_image % params.out_width) * params.stride_w + kw - params.pad_w;
    if ih >= params.in_height || iw >= params.in_width {
        return OUTSIDE;
    }
    return ((image * params.in_channels + ci) * params.in_height + ih) * params.in_width + iw;
}

// The tiled kernels' walk along their reduction: each invocation stages the same rows and
// columns at k rising by SLICE, so it keeps, per operand it stages, the position of the k it
// last staged: a point (outer, middle, inner) of a row-major [·, sizes.x, sizes.y] index space,
// taps (c, kh, kw) or output pixels (b, oh, ow).
struct Walk {
    k: u32, // OUTSIDE before the first step
    at: vec3<u32>,
}

// A walk that has not started.
const NOT_WALKED = Walk(OUTSIDE, vec3<u32>(0u));

// Moves `walk` to reduction index k ≥ its last one and returns the position: decoded with
// divisions on the first step only, after that advanced by carries (inner wraps at sizes.y
// into middle, which wraps at sizes.x into outer), with no division per value.
fn walk_to(walk: ptr<private, Walk>, k: u32, sizes: vec2<u32>) -> vec3<u32> {
    if (*walk).k == OUTSIDE {
        let plane = sizes.x * sizes.y;
        (*walk).at = vec3<u32>(k / plane, (k % plane) / sizes.y, k % sizes.y);
    } else {
        var at = (*walk).at;
        var inner = at.z + (k - (*walk).k);
        while inner >= sizes.y {
            inner -= sizes.y;
            at.y += 1u;
            if at.y == sizes.x {
                at.y = 0u;
                at.x += 1u;
            }
        }
        at.z = inner;
        (*walk).at = at;
    }
    (*walk).k = k;
    return (*walk).at;
}
