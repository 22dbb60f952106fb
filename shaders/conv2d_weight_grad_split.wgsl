// 2-D convolution weight gradient as an implicit GEMM, split-K variant: partial sums.
//   dw[co, ci, kh, kw] = Σ_{b, oh, ow} dy[b, co, oh, ow] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// dy [B, Cout, OH, OW], x [B, Cin, H, W], dw [Cout, Cin, KH, KW]; padding reads zeros.
// GEMM view: A = dy read as [M = Cout, K = B·OH·OW], B = x gathered as [K, N = Cin·KH·KW].
// The reduction over K = B·OH·OW is cut into chunks of `k_chunk`; z slice s of the grid sums
// k in [s·k_chunk, (s + 1)·k_chunk) into partial[s, co, n] (bound as dw), and split_k_sum.wgsl
// then adds the slices in order into dw. No atomics: the same result run after run. Grid:
// tiles of N on x, tiles of M on y, chunks on z.
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_weight_grad.wgsl
// (params, bindings, load_a, load_b, store_row) and before body_gemm_tile.wgsl (the entry point
// and tile loop, which call them and place_tile below).

// One GEMM (z = 0); z slice s of the grid sums chunk s of K.
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    let k_total = params.batch * params.out_height * params.out_width;
    let k_first = tile.z * params.k_chunk;
    let k_end = min(k_first + params.k_chunk, k_total);
    return Tile(tile.x * TILE, vec2<u32>(0u, 1u), vec2<u32>(k_first, k_end), tile.z);
}
