// Batched strided GEMM, subgroup variant (subgroup size ≥ 8):
//   C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n]  (+ bias) (+ C[z, m, n] when accumulating)
// with A at a_batch·z + a_row·m + a_k·k and B at b_batch·z + b_k·k + b_col·n, so that
// transposes are strides. When `reduce_batch` is 1 the batch is summed as well (a weight
// gradient over a minibatch): C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n], and the grid has z = 1.
//
// A workgroup of LANES invocations computes a 16 × 4·LANES tile of C. Invocation i owns the
// columns n0 + i + LANES·j (j < 4) and all 16 rows: per k it loads its 4 values of B and 2
// values of A (rows m0 + s and m0 + 8 + s, s = its subgroup lane mod 8), and receives the other
// 14 A values from lanes 0–7 of its subgroup by subgroupBroadcast. Each loaded value is thus
// used 16 or 4 times from registers, which is what matters on CPU-based adapters, where every
// memory load is costly.
//
// Declared in prelude_matmul.wgsl (Params, bindings, load_a/load_b, store_row), joined before this file when loaded.

// Invocations per workgroup, a multiple of 8: 8 by default; the wide variant sets the device's
// largest subgroup size (at least 16), so that a 32- or 64-lane SIMD unit runs one workgroup
// with every lane busy. Each subgroup broadcasts within itself, so any subgroup size from 8
// up computes the same result.
override LANES: u32 = 8u;

@compute @workgroup_size(LANES)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let m0 = tile.y * 16u;
    let n0 = tile.x * (4u * LANES);
    let columns = n0 + local + vec4<u32>(0u, 1u, 2u, 3u) * LANES;
    // Out-of-range rows and columns read a valid clamped address; their results are dropped.
    let safe_columns = min(columns, vec4<u32>(params.n - 1u));
    let row_lo = min(m0 + lane % 8u, params.m - 1u);
    let row_hi = min(m0 + 8u + lane % 8u, params.m - 1u);

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

    let batches = batch_range(tile.z);
    for (var z = batches.x; z < batches.y; z++) {
        var a_lo = z * params.a_batch + row_lo * params.a_row;
        var a_hi = z * params.a_batch + row_hi * params.a_row;
        var b_at = z * params.b_batch + safe_columns * params.b_col;
        for (var k = 0u; k < params.k; k++) {
            let bv = vec4<f32>(b[b_at.x], b[b_at.y], b[b_at.z], b[b_at.w]);
            let lo = a[a_lo];
            let hi = a[a_hi];
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
            a_lo += params.a_k;
            a_hi += params.a_k;
            b_at += vec4<u32>(params.b_k);
        }
    }

    let z_out = tile.z;
    store_row(z_out, m0 + 0u, columns, acc0);
    store_row(z_out, m0 + 1u, columns, acc1);
    store_row(z_out, m0 + 2u, columns, acc2);
    store_row(z_out, m0 + 3u, columns, acc3);
    store_row(z_out, m0 + 4u, columns, acc4);
    store_row(z_out, m0 + 5u, columns, acc5);
    store_row(z_out, m0 + 6u, columns, acc6);
    store_row(z_out, m0 + 7u, columns, acc7);
    store_row(z_out, m0 + 8u, columns, acc8);
    store_row(z_out, m0 + 9u, columns, acc9);
    store_row(z_out, m0 + 10u, columns, acc10);
    store_row(z_out, m0 + 11u, columns, acc11);
    store_row(z_out, m0 + 12u, columns, acc12);
    store_row(z_out, m0 + 13u, columns, acc13);
    store_row(z_out, m0 + 14u, columns, acc14);
    store_row(z_out, m0 + 15u, columns, acc15);
}
