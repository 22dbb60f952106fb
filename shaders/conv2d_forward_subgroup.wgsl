// 2-D convolution forward as an implicit GEMM, subgroup variant (subgroup size ≥ 8):
//   y[b, co, oh, ow] = bias[co] + Σ_{ci, kh, kw} w[co, ci, kh, kw] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// x [B, Cin, H, W], w [Cout, Cin, KH, KW], y [B, Cout, OH, OW]; padding reads zeros.
// GEMM view: M = Cout, N = B·OH·OW, K = Cin·KH·KW, with x gathered on the fly (no im2col).
//
// A workgroup of LANES invocations computes a 16 × 4·LANES tile (16 output channels, 4·LANES
// output pixels). Invocation i owns pixels n0 + i + LANES·j (j < 4) and all 16 channels; per k
// it loads its 4 input values and the weights of channels m0 + s and m0 + 8 + s, and receives
// the other 14 weights from its subgroup (see body_gemm_subgroup.wgsl).
// Grid: tiles of N on x (wrapping onto z past 65,535), tiles of M on y.
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_forward.wgsl
// (params, bindings, store_row) and before body_gemm_subgroup.wgsl (the entry point and the
// accumulators, which call sum_block below).

fn sum_block(tile: vec3<u32>, grid: vec3<u32>, local: u32, lane: u32) -> Block {
    let out_pixels = params.out_height * params.out_width;
    let n_total = params.batch * out_pixels;
    let taps = params.kernel_h * params.kernel_w;
    // The reduction runs over the live taps only (see prelude_conv2d.wgsl): k = (ci, kh, kw)
    // with kh in [live_h_start, live_h_end) and kw in [live_w_start, live_w_end).
    let live_h = params.live_h_end - params.live_h_start;
    let live_w = params.live_w_end - params.live_w_start;
    let k_total = params.in_channels * live_h * live_w;
    let plane = params.in_height * params.in_width;
    let m0 = tile.y * 16u;
    let n0 = (tile.x + tile.z * grid.x) * (4u * LANES);
    let columns = n0 + local + vec4<u32>(0u, 1u, 2u, 3u) * LANES;
    // Out-of-range columns and rows compute on clamped indices; store_row drops their results.
    let safe = min(columns, vec4<u32>(n_total - 1u));
    let image = safe / out_pixels;
    let pixel = safe % out_pixels;
    let ih0 = (pixel / params.out_width) * params.stride_h - params.pad_h;
    let iw0 = (pixel % params.out_width) * params.stride_w - params.pad_w;
    var x_plane = image * (params.in_channels * plane);
    // Weights of channels m0 + s and m0 + 8 + s at the first live tap of ci = 0.
    let first_tap = params.live_h_start * params.kernel_w + params.live_w_start;
    var w_lo = min(m0 + lane % 8u, params.out_channels - 1u) * params.in_channels * taps + first_tap;
    var w_hi = min(m0 + 8u + lane % 8u, params.out_channels - 1u) * params.in_channels * taps + first_tap;

    // One flat loop over k = (ci, kh, kw), stepping the gather and weight positions as k
    // advances: on CPU adapters the bookkeeping of nested loops costs more than these few adds.
    var kh = params.live_h_start;
    var kw = params.live_w_start;
    var ih = ih0 + vec4<u32>(kh);
    var row_ok = ih < vec4<u32>(params.in_height);
    var row_at = x_plane + ih * params.in_width;
    for (var k = 0u; k < k_total; k++) {
        // Unsigned wrap-around makes negative rows and columns (padding) compare as out of range.
        let iw = iw0 + vec4<u32>(kw);
        let ok = row_ok & (iw < vec4<u32>(params.in_width));
        let at = select(vec4<u32>(0u), row_at + iw, ok);
        let bv = select(vec4<f32>(0.0), vec4<f32>(f32(x[at.x]), f32(x[at.y]), f32(x[at.z]), f32(x[at.w])), ok);
        accumulate(w[w_lo], w[w_hi], bv);
        kw += 1u;
        w_lo += 1u;
        w_hi += 1u;
        if kw == params.live_w_end {
            kw = params.live_w_start;
            kh += 1u;
            w_lo += params.kernel_w - live_w;
            w_hi += params.kernel_w - live_w;
            if kh == params.live_h_end {
                kh = params.live_h_start;
                x_plane += vec4<u32>(plane);
                w_lo += (params.kernel_h - live_h) * params.kernel_w;
                w_hi += (params.kernel_h - live_h) * params.kernel_w;
            }
            ih = ih0 + vec4<u32>(kh);
            row_ok = ih < vec4<u32>(params.in_height);
            row_at = x_plane + ih * params.in_width;
        }
    }
    return Block(0u, m0, columns);
}
