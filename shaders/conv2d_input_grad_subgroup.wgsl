// 2-D convolution input gradient as an implicit GEMM, subgroup variant (subgroup size ≥ 8):
//   dx[b, ci, ih, iw] = Σ_{co, kh, kw} w[co, ci, kh, kw] · dy[b, co, oh, ow]
//   over the (kh, kw) with oh = (ih + ph − kh) / sh and ow = (iw + pw − kw) / sw exact and in range.
// dy [B, Cout, OH, OW], w [Cout, Cin, KH, KW], dx [B, Cin, H, W].
// GEMM view: M = Cin, N = B·H·W, K = Cout·KH·KW, with dy gathered on the fly.
//
// Tiling as in conv2d_forward_subgroup: a subgroup of 8 lanes computes 16 input channels × 32
// input pixels; lane l owns pixels n0 + l + 8j (j < 4), loads 2 weights per k and receives
// the other 14 by subgroupBroadcast. Division by the stride happens once per lane: inside the
// loops, (oh, remainder) steps down as kh steps up.

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
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(8)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let plane = params.in_height * params.in_width;
    let out_pixels = params.out_height * params.out_width;
    let n_total = params.batch * plane;
    let taps = params.kernel_h * params.kernel_w;
    let m0 = tile.y * 16u;
    let n0 = (tile.x + tile.z * 65535u) * 32u;
    let columns = n0 + lane + vec4<u32>(0u, 8u, 16u, 24u);
    let safe = min(columns, vec4<u32>(n_total - 1u));
    let image = safe / plane;
    let pixel = safe % plane;
    let th = pixel / params.in_width + params.pad_h;
    let tw = pixel % params.in_width + params.pad_w;
    let oh_first = th / params.stride_h;
    let rh_first = th % params.stride_h;
    let ow_first = tw / params.stride_w;
    let rw_first = tw % params.stride_w;
    var dy_plane = image * (params.out_channels * out_pixels);
    var w_lo = min(m0 + lane, params.in_channels - 1u) * taps;
    var w_hi = min(m0 + 8u + lane, params.in_channels - 1u) * taps;
    let w_channel_step = params.in_channels * taps - taps;
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

    for (var co = 0u; co < params.out_channels; co++) {
        var oh = oh_first;
        var rh = rh_first;
        for (var kh = 0u; kh < params.kernel_h; kh++) {
            // oh wraps past zero to a huge value, which fails the range test.
            let row_ok = (rh == vec4<u32>(0u)) & (oh < vec4<u32>(params.out_height));
            let row_at = dy_plane + oh * params.out_width;
            var ow = ow_first;
            var rw = rw_first;
            for (var kw = 0u; kw < params.kernel_w; kw++) {
                let ok = row_ok & (rw == vec4<u32>(0u)) & (ow < vec4<u32>(params.out_width));
                let at = select(vec4<u32>(0u), row_at + ow, ok);
                let bv = select(vec4<f32>(0.0), vec4<f32>(dy[at.x], dy[at.y], dy[at.z], dy[at.w]), ok);
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
                w_lo += 1u;
                w_hi += 1u;
                let wrap_w = rw == vec4<u32>(0u);
                ow = select(ow, ow - vec4<u32>(1u), wrap_w);
                rw = select(rw - vec4<u32>(1u), vec4<u32>(params.stride_w - 1u), wrap_w);
            }
            let wrap_h = rh == vec4<u32>(0u);
            oh = select(oh, oh - vec4<u32>(1u), wrap_h);
            rh = select(rh - vec4<u32>(1u), vec4<u32>(params.stride_h - 1u), wrap_h);
        }
        dy_plane += vec4<u32>(out_pixels);
        w_lo += w_channel_step;
        w_hi += w_channel_step;
    }

    let image_out = (columns / plane) * (params.in_channels * plane) + columns % plane;
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

// Writes one input channel of a lane's 4 pixels, adding the old value when accumulating.
fn store_row(channel: u32, columns: vec4<u32>, image_out: vec4<u32>, values: vec4<f32>) {
    let plane = params.in_height * params.in_width;
    if channel >= params.in_channels {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if columns[j] < params.batch * plane {
            var value = values[j];
            let at = image_out[j] + channel * plane;
            if params.accumulate == 1u {
                value += dx[at];
            }
            dx[at] = value;
        }
    }
}
