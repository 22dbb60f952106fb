// 2-D convolution input gradient as an implicit GEMM, portable and tiled variants (no
// subgroups):
//   dx[b, ci, ih, iw] = Σ_{co, kh, kw} w[co, ci, kh, kw] · dy[b, co, oh, ow]
//   over the (kh, kw) with oh = (ih + ph − kh) / sh and ow = (iw + pw − kw) / sw exact and in range.
// dy [B, Cout, OH, OW], w [Cout, Cin, KH, KW], dx [B, Cin, H, W].
// GEMM view: A = w read as [M = Cin, K = Cout·KH·KW], B = dy gathered as [K, N = B·H·W], with
// no im2col buffer. Grid: tiles of N on x (wrapping onto z past 65,535), tiles of M on y.
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_input_grad.wgsl (params, bindings,
// store_row) and before body_gemm_tile.wgsl or body_gemm_tiled.wgsl (the entry point and tile
// loop of the 64×64 portable or the 128×128 tiled variant, which call the functions below).

// One GEMM (z = 0), summed over the whole of K.
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    let k_total = params.out_channels * params.kernel_h * params.kernel_w;
    return Tile((tile.x + tile.z * grid.x) * TILE, vec2<u32>(0u, 1u), vec2<u32>(0u, k_total), 0u);
}

// A[ci, k] = w[co, ci, kh, kw] for k = (co, kh, kw), zero outside.
fn load_a(z: u32, ci: u32, k: u32) -> f32 {
    let taps = params.kernel_h * params.kernel_w;
    if ci >= params.in_channels || k >= params.out_channels * taps {
        return 0.0;
    }
    let co = k / taps;
    return w[(co * params.in_channels + ci) * taps + k % taps];
}

// B[k, n] = dy[b, co, oh, ow] for k = (co, kh, kw) and n = (b, ih, iw) where tap (kh, kw) of
// output pixel (oh, ow) reads input pixel (ih, iw); zero where none does, and outside.
fn load_b(z: u32, k: u32, n: u32) -> f32 {
    let taps = params.kernel_h * params.kernel_w;
    let plane = params.in_height * params.in_width;
    if k >= params.out_channels * taps || n >= params.batch * plane {
        return 0.0;
    }
    let co = k / taps;
    let kh = (k % taps) / params.kernel_w;
    let kw = k % params.kernel_w;
    let image = n / plane;
    // Unsigned wrap-around makes negative coordinates compare as out of range.
    let th = (n % plane) / params.in_width + params.pad_h - kh;
    let tw = n % params.in_width + params.pad_w - kw;
    let oh = th / params.stride_h;
    let ow = tw / params.stride_w;
    if th % params.stride_h != 0u || tw % params.stride_w != 0u || oh >= params.out_height || ow >= params.out_width {
        return 0.0;
    }
    return dy[((image * params.out_channels + co) * params.out_height + oh) * params.out_width + ow];
}

// The staging hooks of the tiled variant (body_gemm_tiled.wgsl; the portable body does not call
// them). An invocation stages the same 4 rows (input channels) of A and 4 columns (input
// pixels) of B at k = (co, kh, kw) rising by SLICE: it decodes its pixels and the first tap on
// its first call only, and after that walks the tap forward. Only a strided layer
// still divides, by its stride, to find which output pixel a tap reaches.
var<private> pixels_decoded: bool = false;
var<private> pixel_base: vec4<u32>; // offset of dy[b, 0, 0, 0] per pixel; OUTSIDE past B·H·W
var<private> pixel_h: vec4<u32>; // ih + ph per pixel
var<private> pixel_w: vec4<u32>; // iw + pw

// Walks the tap (co, kh, kw) to reduction index k (walk_to in prelude_conv2d.wgsl) and
// returns whether k is below K = Cout·KH·KW. Both staging hooks call it with the same k.
fn step_tap(k: u32) -> bool {
    if k >= params.out_channels * params.kernel_h * params.kernel_w {
        return false;
    }
    walk_to(k, vec2<u32>(params.kernel_h, params.kernel_w));
    return true;
}

// A: w[co, ci, kh, kw] of 4 input channels at tap k.
fn stage_a(z: u32, m0: u32, k: u32, index: u32) -> vec4<f32> {
    var values = vec4<f32>(0.0);
    if !step_tap(k) {
        return values;
    }
    let window = params.kernel_h * params.kernel_w;
    let tap = walk_at;
    let at = tap.y * params.kernel_w + tap.z;
    for (var j = 0u; j < 4u; j++) {
        let ci = m0 + (index % 32u) * 4u + j;
        if ci < params.in_channels {
            values[j] = w[(tap.x * params.in_channels + ci) * window + at];
        }
    }
    return values;
}

// B: dy at the output pixel that tap k of each of 4 input pixels reaches, zero where none does.
fn stage_b(z: u32, n0: u32, k: u32, index: u32) -> vec4<f32> {
    var values = vec4<f32>(0.0);
    if !pixels_decoded {
        let plane = params.in_height * params.in_width;
        let dy_image = params.out_channels * params.out_height * params.out_width;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + (index % 32u) * 4u + j;
            let in_image = n % plane;
            pixel_base[j] = select(OUTSIDE, (n / plane) * dy_image, n < params.batch * plane);
            pixel_h[j] = in_image / params.in_width + params.pad_h;
            pixel_w[j] = in_image % params.in_width + params.pad_w;
        }
        pixels_decoded = true;
    }
    if !step_tap(k) {
        return values;
    }
    let tap = walk_at;
    let channel = tap.x * params.out_height * params.out_width;
    let strided = params.stride_h != 1u || params.stride_w != 1u;
    for (var j = 0u; j < 4u; j++) {
        // Unsigned wrap-around makes negative coordinates compare as out of range.
        var th = pixel_h[j] - tap.y;
        var tw = pixel_w[j] - tap.z;
        var reached = true;
        if strided {
            reached = th % params.stride_h == 0u && tw % params.stride_w == 0u;
            th = th / params.stride_h;
            tw = tw / params.stride_w;
        }
        if reached && pixel_base[j] != OUTSIDE && th < params.out_height && tw < params.out_width {
            values[j] = dy[pixel_base[j] + channel + th * params.out_width + tw];
        }
    }
    return values;
}
