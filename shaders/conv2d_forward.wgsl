// 2-D convolution forward as an implicit GEMM, portable and tiled variants (no subgroups):
//   y[b, co, oh, ow] = bias[co] + Σ_{ci, kh, kw} w[co, ci, kh, kw] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// x [B, Cin, H, W], w [Cout, Cin, KH, KW], y [B, Cout, OH, OW]; padding reads zeros.
// GEMM view: A = w as [M = Cout, K = Cin·KH·KW], B = x gathered as [K, N = B·OH·OW], with no
// im2col buffer. Grid: tiles of N on x (wrapping onto z past 65,535), tiles of M on y.
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_forward.wgsl (params, input_offset,
// bindings, store_row) and before body_gemm_tile.wgsl or body_gemm_tiled.wgsl (the entry point
// and tile loop of the 64×64 portable or the 128×128 tiled variant, which call the functions
// below).

// One GEMM (z = 0), summed over the whole of K.
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    let k_total = params.in_channels * params.kernel_h * params.kernel_w;
    return Tile((tile.x + tile.z * grid.x) * TILE, vec2<u32>(0u, 1u), vec2<u32>(0u, k_total), 0u);
}

// A[co, k] = w[co, k], zero outside.
fn load_a(z: u32, co: u32, k: u32) -> f32 {
    let k_total = params.in_channels * params.kernel_h * params.kernel_w;
    if co >= params.out_channels || k >= k_total {
        return 0.0;
    }
    return w[co * k_total + k];
}

// B[k, n] = x at tap k = (ci, kh, kw) of output pixel n = (b, oh, ow), zero outside and in the
// padding.
fn load_b(z: u32, k: u32, n: u32) -> f32 {
    let at = input_offset(k, n);
    if at == OUTSIDE {
        return 0.0;
    }
    return f32(x[at]);
}
