// 2-D convolution weight gradient as an implicit GEMM, subgroup variant (subgroup size ≥ 8):
//   dw[co, ci, kh, kw] = Σ_{b, oh, ow} dy[b, co, oh, ow] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// dy [B, Cout, OH, OW], x [B, Cin, H, W], dw [Cout, Cin, KH, KW]; padding reads zeros.
// GEMM view: M = Cout, N = Cin·KH·KW, K = B·OH·OW. Each output is summed by one lane in a
// fixed order, so the result is the same run after run. N runs over the live taps only (see
// prelude_conv2d.wgsl): the gradient of a tap that reads only padding is zero, and the lane
// holding a channel's first live tap writes those zeros.
//
// The reduction may be split into chunks of whole images (`k_chunk` values, a multiple of
// OH·OW): chunk c sums images [c·k_chunk / (OH·OW), …) into dw[c·Cout·N …], from which
// split_k_sum.wgsl adds the chunks in order. Unsplit, k_chunk = K and there is one chunk.
// Grid: tiles of N on x (wrapping onto z past 65,535), chunk · M-tiles + M-tile on y.
//
// A workgroup of LANES invocations computes 16 output channels × 4·LANES taps (ci, kh, kw);
// invocation i owns taps n0 + i + LANES·j (j < 4), loads its 4 input values and 2 values of dy
// per k, and receives the other 14 values of dy from its subgroup (see
// body_gemm_subgroup.wgsl).
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_weight_grad.wgsl
// (params, bindings, store_row) and before body_gemm_subgroup.wgsl (the entry point and the
// accumulators, which call sum_block below).

fn sum_block(tile: vec3<u32>, grid: vec3<u32>, local: u32, lane: u32) -> Block {
    let plane = params.in_height * params.in_width;
    let out_pixels = params.out_height * params.out_width;
    let taps = params.kernel_h * params.kernel_w;
    let live_h = params.live_h_end - params.live_h_start;
    let live_w = params.live_w_end - params.live_w_start;
    let n_total = params.in_channels * live_h * live_w;
    let m_tiles = (params.out_channels + 15u) / 16u;
    let chunk = tile.y / m_tiles;
    let m0 = (tile.y % m_tiles) * 16u;
    let images_per_chunk = params.k_chunk / out_pixels;
    let first_image = chunk * images_per_chunk;
    let end_image = min(first_image + images_per_chunk, params.batch);
    let n0 = (tile.x + tile.z * grid.x) * (4u * LANES);
    let columns = n0 + local + vec4<u32>(0u, 1u, 2u, 3u) * LANES;
    let safe = min(columns, vec4<u32>(n_total - 1u));
    let ci = safe / (live_h * live_w);
    let live_tap = safe % (live_h * live_w);
    let kh = params.live_h_start + live_tap / live_w;
    let kw = params.live_w_start + live_tap % live_w;
    let row_lo = min(m0 + lane % 8u, params.out_channels - 1u) * out_pixels;
    let row_hi = min(m0 + 8u + lane % 8u, params.out_channels - 1u) * out_pixels;

    for (var b = first_image; b < end_image; b++) {
        var dy_lo = b * params.out_channels * out_pixels + row_lo;
        var dy_hi = b * params.out_channels * out_pixels + row_hi;
        let x_plane = (b * params.in_channels + ci) * plane;
        for (var oh = 0u; oh < params.out_height; oh++) {
            // Unsigned wrap-around makes negative rows (padding) compare as out of range.
            let ih = vec4<u32>(oh * params.stride_h - params.pad_h) + kh;
            let row_ok = ih < vec4<u32>(params.in_height);
            let row_at = x_plane + ih * params.in_width;
            for (var ow = 0u; ow < params.out_width; ow++) {
                let iw = vec4<u32>(ow * params.stride_w - params.pad_w) + kw;
                let ok = row_ok & (iw < vec4<u32>(params.in_width));
                let at = select(vec4<u32>(0u), row_at + iw, ok);
                let bv = select(vec4<f32>(0.0), vec4<f32>(f32(x[at.x]), f32(x[at.y]), f32(x[at.z]), f32(x[at.w])), ok);
                accumulate(dy[dy_lo], dy[dy_hi], bv);
                dy_lo += 1u;
                dy_hi += 1u;
            }
        }
    }

    if live_h * live_w < taps && params.accumulate == 0u {
        for (var j = 0u; j < 4u; j++) {
            if columns[j] < n_total && live_tap[j] == 0u {
                zero_dead_taps(chunk, m0, ci[j]);
            }
        }
    }
    // The taps' plain GEMM columns n = (ci, kh, kw): where their gradients go in dw's row.
    let targets = ci * taps + kh * params.kernel_w + kw;
    return Block(chunk, m0, select(vec4<u32>(NO_COLUMN), targets, columns < vec4<u32>(n_total)));
}

// Writes the zero gradient of input channel ci's taps outside the live window, for output
// channels m0 … m0 + 15 (the live taps' sums are stored apart from these).
fn zero_dead_taps(chunk: u32, m0: u32, ci: u32) {
    let taps = params.kernel_h * params.kernel_w;
    let n_total = params.in_channels * taps;
    for (var channel = m0; channel < min(m0 + 16u, params.out_channels); channel++) {
        for (var tap = 0u; tap < taps; tap++) {
            let kh = tap / params.kernel_w;
            let kw = tap % params.kernel_w;
            let live = kh >= params.live_h_start && kh < params.live_h_end && kw >= params.live_w_start && kw < params.live_w_end;
            if !live {
                dw[(chunk * params.out_channels + channel) * n_total + ci * taps + tap] = 0.0;
            }
        }
    }
}
