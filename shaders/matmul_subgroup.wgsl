// Batched strided GEMM, subgroup variant (subgroup size ≥ 8):
//   C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n]  (+ bias) (+ C[z, m, n] when accumulating)
// with A at a_batch·z + a_row·m + a_k·k and B at b_batch·z + b_k·k + b_col·n, so that
// transposes are strides. When `reduce_batch` is 1 the batch is summed as well (a weight
// gradient over a minibatch): C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n], and the grid has z = 1.
//
// A workgroup of LANES invocations computes a 16 × 4·LANES tile of C; invocation i owns the
// columns n0 + i + LANES·j (j < 4) and all 16 rows (see body_gemm_subgroup.wgsl).
// Grid: tiles of N on x, tiles of M on y, batch slices on z.
//
// Joined after prelude_matmul.wgsl (Params, bindings, batch_range, store_row) and before
// body_gemm_subgroup.wgsl (the entry point and the accumulators, which call sum_block below).

fn sum_block(tile: vec3<u32>, grid: vec3<u32>, local: u32, lane: u32) -> Block {
    let m0 = tile.y * 16u;
    let n0 = tile.x * (4u * LANES);
    let columns = n0 + local + vec4<u32>(0u, 1u, 2u, 3u) * LANES;
    // Out-of-range rows and columns read a valid clamped address; store_row drops their results.
    let safe_columns = min(columns, vec4<u32>(params.n - 1u));
    let row_lo = min(m0 + lane % 8u, params.m - 1u);
    let row_hi = min(m0 + 8u + lane % 8u, params.m - 1u);

    let batches = batch_range(tile.z);
    for (var z = batches.x; z < batches.y; z++) {
        var a_lo = z * params.a_batch + row_lo * params.a_row;
        var a_hi = z * params.a_batch + row_hi * params.a_row;
        var b_at = z * params.b_batch + safe_columns * params.b_col;
        for (var k = 0u; k < params.k; k++) {
            let bv = vec4<f32>(f32(b[b_at.x]), f32(b[b_at.y]), f32(b[b_at.z]), f32(b[b_at.w]));
            accumulate(f32(a[a_lo]), f32(a[a_hi]), bv);
            a_lo += params.a_k;
            a_hi += params.a_k;
            b_at += vec4<u32>(params.b_k);
        }
    }
    return Block(tile.z, m0, columns);
}
