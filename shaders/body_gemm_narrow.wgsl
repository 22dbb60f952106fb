// The entry point of the narrow GEMM kernels (no subgroups): the tile loop of
//   C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n]
// for a C of few rows (a convolution with 16 or 32 output channels, whose rows a 64-row tile
// would mostly leave empty). A workgroup of 64×4 invocations computes a 16×256 tile of C; each
// invocation a 4×4 block. Tiles of A (16×8) and B (8×256) are staged in workgroup memory 8
// values of k at a time (8.5 KiB), consecutive invocations loading consecutive columns of B,
// and every result is summed by one invocation in a fixed order: z, then k.
//
// The kernel joined before this file supplies the hooks of body_gemm_tile.wgsl:
//   place_tile(tile, grid) -> Tile                   its columns from n0, a multiple of TILE
//   load_a(z, m, k) -> f32, load_b(z, k, n) -> f32     A and B, zero outside the matrices
//   store_row(slice, m, columns, values)              stores 4 results of row m

// The width of a workgroup's tile of C (place_tile's columns start at multiples of it); its
// height is 16.
const TILE: u32 = 256u;

// a_tile[kk * 16 + mm] = A[z, m0 + mm, k0 + kk]; b_tile[kk * 256 + nn] = B[z, k0 + kk, n0 + nn].
var<workgroup> a_tile: array<f32, 128>;
var<workgroup> b_tile: array<f32, 2048>;

@compute @workgroup_size(64, 4)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let place = place_tile(tile, grid);
    let m0 = tile.y * 16u;
    let n0 = place.n0;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var z = place.batches.x; z < place.batches.y; z++) {
        for (var k0 = place.ks.x; k0 < place.ks.y; k0 += 8u) {
            // Past the end of the range k reads as zero.
            if index < 128u {
                let k = select(NO_K, k0 + index / 16u, k0 + index / 16u < place.ks.y);
                a_tile[index] = load_a(z, m0 + index % 16u, k);
            }
            for (var i = 0u; i < 8u; i++) {
                let k = select(NO_K, k0 + i, k0 + i < place.ks.y);
                b_tile[i * 256u + index] = load_b(z, k, n0 + index);
            }
            workgroupBarrier();
            for (var kk = 0u; kk < 8u; kk++) {
                let ra = kk * 16u + local.y * 4u;
                let rb = kk * 256u + local.x * 4u;
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
    let row = m0 + local.y * 4u;
    let columns = n0 + local.x * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    store_row(place.slice, row, columns, acc0);
    store_row(place.slice, row + 1u, columns, acc1);
    store_row(place.slice, row + 2u, columns, acc2);
    store_row(place.slice, row + 3u, columns, acc3);
}
