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
