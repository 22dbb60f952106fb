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
// per k, and receives the other 14 values of dy from lanes 0–7 of its subgroup by
// subgroupBroadcast.
//
// Declared in prelude_conv2d.wgsl (Params), joined before this file when loaded.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

// Invocations per workgroup, a multiple of 8: 8 by default; the wide variant sets the device's
// largest subgroup size (at least 16), so that a 32- or 64-lane SIMD unit runs one workgroup
// with every lane busy. Each subgroup broadcasts within itself, so any subgroup size from 8
// up computes the same result.
override LANES: u32 = 8u;

@compute @workgroup_size(LANES)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
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
    // Where each column's gradient goes in dw's row [Cin, KH, KW].
    let targets = ci * taps + kh * params.kernel_w + kw;
    let row_lo = min(m0 + lane % 8u, params.out_channels - 1u) * out_pixels;
    let row_hi = min(m0 + 8u + lane % 8u, params.out_channels - 1u) * out_pixels;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    var acc4 = vec4<f32>(0.0);
    var acc5 = vec4<f32>(0.0);
    var acc6 = vec4<f32>(0.0);
    var acc7 = vec4<f32>(0.0);
    var acc8 = vec4<f32>(0.0);
    var acc9 = vec4<f32>(0.0);
    var acc10 = vec4<f32>(0.0);
    var acc11 = vec4<f32>(0.0);
    var acc12 = vec4<f32>(0.0);
    var acc13 = vec4<f32>(0.0);
    var acc14 = vec4<f32>(0.0);
    var acc15 = vec4<f32>(0.0);

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
                let bv = select(vec4<f32>(0.0), vec4<f32>(x[at.x], x[at.y], x[at.z], x[at.w]), ok);
                let lo = dy[dy_lo];
                let hi = dy[dy_hi];
                acc0 += subgroupBroadcast(lo, 0u) * bv;
                acc1 += subgroupBroadcast(lo, 1u) * bv;
                acc2 += subgroupBroadcast(lo, 2u) * bv;
                acc3 += subgroupBroadcast(lo, 3u) * bv;
                acc4 += subgroupBroadcast(lo, 4u) * bv;
                acc5 += subgroupBroadcast(lo, 5u) * bv;
                acc6 += subgroupBroadcast(lo, 6u) * bv;
                acc7 += subgroupBroadcast(lo, 7u) * bv;
                acc8 += subgroupBroadcast(hi, 0u) * bv;
                acc9 += subgroupBroadcast(hi, 1u) * bv;
                acc10 += subgroupBroadcast(hi, 2u) * bv;
                acc11 += subgroupBroadcast(hi, 3u) * bv;
                acc12 += subgroupBroadcast(hi, 4u) * bv;
                acc13 += subgroupBroadcast(hi, 5u) * bv;
                acc14 += subgroupBroadcast(hi, 6u) * bv;
                acc15 += subgroupBroadcast(hi, 7u) * bv;
                dy_lo += 1u;
                dy_hi += 1u;
            }
        }
    }

    store_row(chunk, m0 + 0u, columns, targets, acc0);
    store_row(chunk, m0 + 1u, columns, targets, acc1);
    store_row(chunk, m0 + 2u, columns, targets, acc2);
    store_row(chunk, m0 + 3u, columns, targets, acc3);
    store_row(chunk, m0 + 4u, columns, targets, acc4);
    store_row(chunk, m0 + 5u, columns, targets, acc5);
    store_row(chunk, m0 + 6u, columns, targets, acc6);
    store_row(chunk, m0 + 7u, columns, targets, acc7);
    store_row(chunk, m0 + 8u, columns, targets, acc8);
    store_row(chunk, m0 + 9u, columns, targets, acc9);
    store_row(chunk, m0 + 10u, columns, targets, acc10);
    store_row(chunk, m0 + 11u, columns, targets, acc11);
    store_row(chunk, m0 + 12u, columns, targets, acc12);
    store_row(chunk, m0 + 13u, columns, targets, acc13);
    store_row(chunk, m0 + 14u, columns, targets, acc14);
    store_row(chunk, m0 + 15u, columns, targets, acc15);
    if live_h * live_w < taps && params.accumulate == 0u {
        for (var j = 0u; j < 4u; j++) {
            if columns[j] < n_total && live_tap[j] == 0u {
                zero_dead_taps(chunk, m0, ci[j]);
            }
        }
    }
}

// Writes the zero gradient of input channel ci's taps outside the live window, for output
// channels m0 … m0 + 15.
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

// Writes one output channel of a lane's 4 taps (live columns, stored at `targets` within the
// row) into the chunk's slice of dw, adding the old value when accumulating.
fn store_row(chunk: u32, channel: u32, columns: vec4<u32>, targets: vec4<u32>, values: vec4<f32>) {
    let live_columns = params.in_channels * (params.live_h_end - params.live_h_start) * (params.live_w_end - params.live_w_start);
    let n_total = params.in_channels * params.kernel_h * params.kernel_w;
    if channel >= params.out_channels {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if columns[j] < live_columns {
            var value = values[j];
            let at = (chunk * params.out_channels + channel) * n_total + targets[j];
            if params.accumulate == 1u {
                value += dw[at];
            }
            dw[at] = value;
        }
    }
}
