// 2-D convolution input gradient as an implicit GEMM, subgroup variant (subgroup size ≥ 8):
//   dx[b, ci, ih, iw] = Σ_{co, kh, kw} w[co, ci, kh, kw] · dy[b, co, oh, ow]
//   over the (kh, kw) with oh = (ih + ph − kh) / sh and ow = (iw + pw − kw) / sw exact and in range.
// dy [B, Cout, OH, OW], w [Cout, Cin, KH, KW], dx [B, Cin, H, W].
// GEMM view, per stride phase: M = Cin, N = B·U·V, K = Cout·TH·TW, with dy gathered on the
// fly.
//
// Strided convolutions run in stride_h·stride_w phases (grid z; see
// prelude_conv2d_input_grad.wgsl), each over just its live taps, so no multiply is spent on
// the zeros a masked gather would read.
//
// Tiling as in conv2d_forward_subgroup: a workgroup of LANES invocations computes 16 input
// channels × 4·LANES input pixels of one phase; invocation i owns pixels n0 + i + LANES·j
// (j < 4), loads 2 weights per tap and receives the other 14 from its subgroup (see
// body_gemm_subgroup.wgsl).
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_input_grad.wgsl
// (params, bindings, phases, store_row) and before body_gemm_subgroup.wgsl (the entry point and the
// accumulators, which call sum_block below).

fn sum_block(tile: vec3<u32>, grid: vec3<u32>, local: u32, lane: u32) -> Block {
    // The phase as a value: the loop below runs subgroup operations, so its bounds must be
    // uniform (see prelude_conv2d_input_grad.wgsl).
    let current = enter_phase(tile.z);
    let out_pixels = params.out_height * params.out_width;
    let taps = params.kernel_h * params.kernel_w;
    let n_total = phase_columns(current);
    if n_total == 0u {
        return Block(0u, 0u, vec4<u32>(NO_COLUMN));
    }
    let phase_pixels = current.rows * current.cols;
    let m0 = tile.y * 16u;
    let n0 = (tile.x + (tile.z / phase_count()) * grid.x) * (4u * LANES);
    let columns = n0 + local + vec4<u32>(0u, 1u, 2u, 3u) * LANES;
    let safe = min(columns, vec4<u32>(n_total - 1u));
    let image = safe / phase_pixels;
    let u = (safe % phase_pixels) / current.cols;
    let v = safe % current.cols;
    var dy_plane = image * (params.out_channels * out_pixels);
    var w_lo = min(m0 + lane % 8u, params.in_channels - 1u) * taps;
    var w_hi = min(m0 + 8u + lane % 8u, params.in_channels - 1u) * taps;
    let w_channel_step = params.in_channels * taps;

    // One flat loop over (co, a, c) for the live taps of this phase, stepping the gather
    // position as it advances: on CPU adapters nested-loop bookkeeping costs more than these
    // few adds. Tap (a, c) is (kh_first + a·sh, kw_first + c·sw).
    let steps = phase_reduction(current);
    let kh_stop = current.kh_first + current.taps_h * params.stride_h;
    let kw_stop = current.kw_first + current.taps_w * params.stride_w;
    var kh = current.kh_first;
    var kw = current.kw_first;
    // oh and ow wrap past zero to huge values, which fail the range tests.
    var oh = u + current.oh_first;
    var ow = v + current.ow_first;
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
            kw = current.kw_first;
            ow = v + current.ow_first;
            kh += params.stride_h;
            oh -= vec4<u32>(1u);
            if kh >= kh_stop {
                kh = current.kh_first;
                oh = u + current.oh_first;
                dy_plane += vec4<u32>(out_pixels);
                w_lo += w_channel_step;
                w_hi += w_channel_step;
            }
            row_ok = oh < vec4<u32>(params.out_height);
            row_at = dy_plane + oh * params.out_width;
        }
    }

    // Columns of the phase's GEMM (store_row finds their pixels).
    return Block(0u, m0, select(vec4<u32>(NO_COLUMN), columns, columns < vec4<u32>(n_total)));
}
