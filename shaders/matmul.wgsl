// Batched strided GEMM, portable and tiled variants (no subgroups):
//   C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n]  (+ bias) (+ C[z, m, n] when accumulating)
// with A at a_batch·z + a_row·m + a_k·k and B at b_batch·z + b_k·k + b_col·n, so that
// transposes are strides. When `reduce_batch` is 1 the batch is summed as well:
// C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n], and the grid has z = 1.
// Grid: tiles of N on x, tiles of M on y, batch slices on z.
//
// Joined after prelude_matmul.wgsl (Params, bindings, batch_range, load_a, load_b, store_row)
// and before body_gemm_tile.wgsl or body_gemm_tiled.wgsl (the entry point and tile loop of the
// 64×64 portable or the 128×128 tiled variant, which call them and place_tile below).

// Batch slice z of the grid sums its batch index, or with `reduce_batch` its chunk of the
// batch, over the whole of K.
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    return Tile(tile.x * TILE, batch_range(tile.z), vec2<u32>(0u, params.k), tile.z);
}
