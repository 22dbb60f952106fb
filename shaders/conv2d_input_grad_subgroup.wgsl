// 2-D convolution input gradient as an implicit GEMM, subgroup variant (subgroup size ≥ 8):
//   dx[b, ci, ih, iw] = Σ_{co, kh, kw} w[co, ci, kh, kw] · dy[b, co, oh, ow]
//   over the (kh, kw) with oh = (ih + ph − kh) / sh and ow = (iw + pw − kw) / sw exact and in range.
// dy [B, Cout, OH, OW], w [Cout, Cin, KH, KW], dx [B, Cin, H, W].
// GEMM view: M = Cin, N = B·H·W, K = Cout·KH·KW, with dy gathered on the fly.
//
// Strided convolutions are split into stride_h·stride_w phases (grid z): the input pixels of
// phase (rh, rw) have (ih + ph) mod sh = rh and (iw + pw) mod sw = rw, and receive gradient
// only through the taps kh ≡ rh (mod sh), kw ≡ rw (mod sw). Each phase walks just those of
// them that are live (see prelude_conv2d.wgsl), so no multiply is spent on the zeros a masked
// gather would read.
//
// Tiling as in conv2d_forward_subgroup: a workgroup of LANES invocations computes 16 input
// channels × 4·LANES input pixels of one phase; invocation i owns pixels n0 + i + LANES·j
// (j < 4), loads 2 weights per tap and receives the other 14 from its subgroup (see
// body_gemm_subgroup.wgsl).
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_input_grad.wgsl
// (params, bindings, store_row) and before body_gemm_subgroup.wgsl (the entry point and the
// accumulators, which call sum_block below).

fn sum_block(tile: vec3<u32>, grid: vec3<u32>, local: u32, lane: u32) -> Block {
    let plane = params.in_height * params.in_width;
    let out_pixels = params.out_height * params.out_width;
    let taps = params.kernel_h * params.kernel_w;
    let phases = params.stride_h * params.stride_w;
    let phase = tile.z % phases;
    let rh = phase / params.stride_w;
    let rw = phase % params.stride_w;
    // First input row of the phase, how many rows it has, and the output row its first tap
    // (kh = rh) reads: oh = u + base_h − j for the u-th row of the phase and tap kh = rh + j·sh.
    let ih_first = (rh + params.stride_h - params.pad_h % params.stride_h) % params.stride_h;
    let iw_first = (rw + params.stride_w - params.pad_w % params.stride_w) % params.stride_w;
    let rows = select(0u, (params.in_height - ih_first + params.stride_h - 1u) / params.stride_h, ih_first < params.in_height);
    let cols = select(0u, (params.in_width - iw_first + params.stride_w - 1u) / params.stride_w, iw_first < params.in_width);
    let base_h = (ih_first + params.pad_h - rh) / params.stride_h;
    let base_w = (iw_first + params.pad_w - rw) / params.stride_w;
    let phase_pixels = rows * cols;
    let n_total = params.batch * phase_pixels;
    if n_total == 0u {
        return Block(0u, 0u, vec4<u32>(NO_COLUMN));
    }
    let m0 = tile.y * 16u;
    let n0 = (tile.x + (tile.z / phases) * grid.x) * (4u * LANES);
    let columns = n0 + local + vec4<u32>(0u, 1u, 2u, 3u) * LANES;
    let safe = min(columns, vec4<u32>(n_total - 1u));
    let image = safe / phase_pixels;
    let u = (safe % phase_pixels) / cols;
    let v = safe % cols;
    var dy_plane = image * (params.out_channels * out_pixels);
    var w_lo = min(m0 + lane % 8u, params.in_channels - 1u) * taps;
    var w_hi = min(m0 + 8u + lane % 8u, params.in_channels - 1u) * taps;
    let w_channel_step = params.in_channels * taps;

    // One flat loop over (co, kh, kw) for the live taps of this phase, stepping the gather
    // position as it advances: on CPU adapters nested-loop bookkeeping costs more than these
    // few adds. The phase's taps are kh = rh + j·sh; the live ones have j in [jh_first, jh_end).
    let jh_first = (max(params.live_h_start, rh) - rh + params.stride_h - 1u) / params.stride_h;
    let jw_first = (max(params.live_w_start, rw) - rw + params.stride_w - 1u) / params.stride_w;
    let jh_end = (max(params.live_h_end, rh) - rh + params.stride_h - 1u) / params.stride_h;
    let jw_end = (max(params.live_w_end, rw) - rw + params.stride_w - 1u) / params.stride_w;
    let steps = params.out_channels * (max(jh_end, jh_first) - jh_first) * (max(jw_end, jw_first) - jw_first);
    let kh_first = rh + jh_first * params.stride_h;
    let kw_first = rw + jw_first * params.stride_w;
    let kh_stop = rh + jh_end * params.stride_h;
    let kw_stop = rw + jw_end * params.stride_w;
    var kh = kh_first;
    var kw = kw_first;
    // oh and ow wrap past zero to huge values, which fail the range tests.
    var oh = u + base_h - jh_first;
    var ow = v + base_w - jw_first;
    var row_ok = oh < vec4<u32>(params.out_height);
    var row_at = dy_plane + oh * params.out_width;
    for (var step = 0u; step < steps; step++) {
        let ok = row_ok & (ow < vec4<u32>(params.out_width));
        let at = select(vec4<u32>(0u), row_at + ow, ok);
        let bv = select(vec4<f32>(0.0), vec4<f32>(dy[at.x], dy[at.y], dy[at.z], dy[at.w]), ok);
        let tap = kh * params.kernel_w + kw;
        accumulate(w[w_lo + tap], w[w_hi + tap], bv);
        kw += params.stride_w;
        ow -= vec4<u32>(1u);
        if kw >= kw_stop {
            kw = kw_first;
            ow = v + base_w - jw_first;
            kh += params.stride_h;
            oh -= vec4<u32>(1u);
            if kh >= kh_stop {
                kh = kh_first;
                oh = u + base_h - jh_first;
                dy_plane += vec4<u32>(out_pixels);
                w_lo += w_channel_step;
                w_hi += w_channel_step;
            }
            row_ok = oh < vec4<u32>(params.out_height);
            row_at = dy_plane + oh * params.out_width;
        }
    }

    // The pixels' plain GEMM columns n = (b, ih, iw).
    let in_row = ih_first + u * params.stride_h;
    let in_col = iw_first + v * params.stride_w;
    let pixels = image * plane + in_row * params.in_width + in_col;
    return Block(0u, m0, select(vec4<u32>(NO_COLUMN), pixels, columns < vec4<u32>(n_total)));
}
