// 2-D convolution weight gradient as an implicit GEMM, portable and tiled variants (no
// subgroups):
//   dw[co, ci, kh, kw] = Σ_{b, oh, ow} dy[b, co, oh, ow] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// dy [B, Cout, OH, OW], x [B, Cin, H, W], dw [Cout, Cin, KH, KW]; padding reads zeros.
// GEMM view: A = dy read as [M = Cout, K = B·OH·OW], B = x gathered as [K, N = Cin·KH·KW].
// Each output is summed by one invocation in a fixed order: the same result run after run.
// Grid: tiles of N on x (wrapping onto z past 65,535), tiles of M on y.
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_weight_grad.wgsl (params, bindings,
// load_a, load_b, store_row) and before body_gemm_tile.wgsl or body_gemm_tiled.wgsl (the entry
// point and tile loop of the 64×64 portable or the 128×128 tiled variant, which call them and
// place_tile below).

// One GEMM (z = 0), summed over the whole of K into dw itself (chunk 0).
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    let k_total = params.batch * params.out_height * params.out_width;
    return Tile((tile.x + tile.z * grid.x) * TILE, vec2<u32>(0u, 1u), vec2<u32>(0u, k_total), 0u);
}
