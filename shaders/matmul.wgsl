// Batched strided GEMM, portable variant (no subgroups):
//   C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n]  (+ bias) (+ C[z, m, n] when accumulating)
// with A at a_batch·z + a_row·m + a_k·k and B at b_batch·z + b_k·k + b_col·n, so that
// transposes are strides. When `reduce_batch` is 1 the batch is summed as well:
// C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n], and the grid has z = 1.
//
// A workgroup of 16×16 invocations computes a 64×64 tile of C; each invocation a 4×4 block.
// Tiles of A (64×16) and B (16×64) are staged in workgroup memory, 16 values of k at a time.
//
// Declared in prelude_matmul.wgsl (Params, bindings, load_a/load_b, store_row), joined before this file when loaded.

// a_tile[kk * 64 + mm] = A[m0 + mm, k0 + kk]; b_tile[kk * 64 + nn] = B[k0 + kk, n0 + nn].
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let m0 = tile.y * 64u;
    let n0 = tile.x * 64u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    let batches = batch_range(tile.z);
    for (var z = batches.x; z < batches.y; z++) {
        for (var k0 = 0u; k0 < params.k; k0 += 16u) {
            for (var i = 0u; i < 4u; i++) {
                let e = index + i * 256u;
                a_tile[e] = load_a(z, m0 + e % 64u, k0 + e / 64u);
                b_tile[e] = load_b(z, k0 + e / 64u, n0 + e % 64u);
            }
            workgroupBarrier();
            for (var kk = 0u; kk < 16u; kk++) {
                let ra = kk * 64u + local.y * 4u;
                let rb = kk * 64u + local.x * 4u;
                let av = vec4<f32>(a_tile[ra], a_tile[ra + 1u], a_tile[ra + 2u], a_tile[ra + 3u]);
                let bv = vec4<f32>(b_tile[rb], b_tile[rb + 1u], b_tile[rb + 2u], b_tile[rb + 3u]);
                acc0 += av.x * bv;
                acc1 += av.y * bv;
                acc2 += av.z * bv;
                acc3 += av.w * bv;
            }
            workgroupBarrier();
        }
    }

    let z_out = tile.z;
    let columns = n0 + local.x * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    let row = m0 + local.y * 4u;
    store_row(z_out, row, columns, acc0);
    store_row(z_out, row + 1u, columns, acc1);
    store_row(z_out, row + 2u, columns, acc2);
    store_row(z_out, row + 3u, columns, acc3);
}
