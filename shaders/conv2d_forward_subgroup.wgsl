// 2-D convolution forward as an implicit GEMM, subgroup variant (subgroup size ≥ 8):
//   y[b, co, oh, ow] = bias[co] + Σ_{ci, kh, kw} w[co, ci, kh, kw] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// x [B, Cin, H, W], w [Cout, Cin, KH, KW], y [B, Cout, OH, OW]; padding reads zeros.
// GEMM view: M = Cout, N = B·OH·OW, K = Cin·KH·KW, with x gathered on the fly (no im2col).
//
// A workgroup of LANES invocations computes a 16 × 4·LANES tile (16 output channels, 4·LANES
// output pixels). Invocation i owns pixels n0 + i + LANES·j (j < 4) and all 16 channels; per k
// it loads its 4 input values and 2 weights (channels m0 + s and m0 + 8 + s, s = its subgroup
// lane mod 8) and receives the other 14 weights from lanes 0–7 of its subgroup by
// subgroupBroadcast, so each load feeds 4 or 16 FMAs.
//
// Declared in prelude_conv2d.wgsl (Params), joined before this file when loaded.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

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
    // Out-of-range columns and rows compute on clamped indices; their results are dropped.
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
        let bv = select(vec4<f32>(0.0), vec4<f32>(x[at.x], x[at.y], x[at.z], x[at.w]), ok);
        let lo = w[w_lo];
        let hi = w[w_hi];
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

    let image_out = (columns / out_pixels) * (params.out_channels * out_pixels) + columns % out_pixels;
    store_row(m0 + 0u, columns, image_out, acc0);
    store_row(m0 + 1u, columns, image_out, acc1);
    store_row(m0 + 2u, columns, image_out, acc2);
    store_row(m0 + 3u, columns, image_out, acc3);
    store_row(m0 + 4u, columns, image_out, acc4);
    store_row(m0 + 5u, columns, image_out, acc5);
    store_row(m0 + 6u, columns, image_out, acc6);
    store_row(m0 + 7u, columns, image_out, acc7);
    store_row(m0 + 8u, columns, image_out, acc8);
    store_row(m0 + 9u, columns, image_out, acc9);
    store_row(m0 + 10u, columns, image_out, acc10);
    store_row(m0 + 11u, columns, image_out, acc11);
    store_row(m0 + 12u, columns, image_out, acc12);
    store_row(m0 + 13u, columns, image_out, acc13);
    store_row(m0 + 14u, columns, image_out, acc14);
    store_row(m0 + 15u, columns, image_out, acc15);
}

// Writes one output channel of a lane's 4 pixels, adding bias and the old value as asked.
fn store_row(channel: u32, columns: vec4<u32>, image_out: vec4<u32>, values: vec4<f32>) {
    let out_pixels = params.out_height * params.out_width;
    if channel >= params.out_channels {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if columns[j] < params.batch * out_pixels {
            var value = values[j];
            if params.has_bias == 1u {
                value += bias[channel];
            }
            let at = image_out[j] + channel * out_pixels;
            if params.accumulate == 1u {
                value += y[at];
            }
            y[at] = value;
        }
    }
}
