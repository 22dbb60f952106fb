// The entry point of the narrow GEMM kernels (no subgroups): the tile loop of
//   C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n]
// for a C of few rows (a convolution with 16 or 32 output channels, whose rows a 64-row tile
// would mostly leave empty). A workgroup of 256 invocations computes a 16×256 tile of C; each
// invocation one column of it (16 results). A is staged in workgroup memory 32 values of k at a
// time (2 KiB); B is read straight from memory, each value once per workgroup, consecutive
// invocations reading consecutive columns. Every result is summed by one invocation in a fixed
// order: z, then k.
//
// Workgroup memory is small on purpose: browsers zero it at the start of every workgroup, which
// on CPU adapters costs time in proportion to its size (and so does building the pipeline).
//
// The kernel joined before this file supplies the hooks of body_gemm_tile.wgsl:
//   place_tile(tile, grid) -> Tile                   its columns from n0, a multiple of TILE
//   load_a(z, m, k) -> f32, load_b(z, k, n) -> f32     A and B, zero outside the matrices
//   store_row(slice, m, columns, values)              stores 4 results of row m

// The width of a workgroup's tile of C (place_tile's columns start at multiples of it); its
// height is 16.
const TILE: u32 = 256u;

// Values of k staged at a time.
const K_SLICE: u32 = 32u;

// a_tile[kk * 4 + q] = A[z, m0 + 4q .. m0 + 4q + 3, k0 + kk]: rows 4q to 4q + 3 at one k.
var<workgroup> a_tile: array<vec4<f32>, 128>;

// A column index past every N: store_row leaves it alone.
const NO_COLUMN: u32 = 0xffffffffu;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let place = place_tile(tile, grid);
    let m0 = tile.y * 16u;
    let n = place.n0 + index;
    // acc[q][r] = C[m0 + 4q + r, n].
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var z = place.batches.x; z < place.batches.y; z++) {
        for (var k0 = place.ks.x; k0 < place.ks.y; k0 += K_SLICE) {
            // Invocations 0 to 127 stage 4 rows at one k each; past the range k reads as zero.
            if index < 128u {
                let q = index % 4u;
                let k = select(NO_K, k0 + index / 4u, k0 + index / 4u < place.ks.y);
                let m = m0 + q * 4u;
                a_tile[index] = vec4<f32>(load_a(z, m, k), load_a(z, m + 1u, k), load_a(z, m + 2u, k), load_a(z, m + 3u, k));
            }
            workgroupBarrier();
            let k_end = min(K_SLICE, place.ks.y - k0);
            for (var kk = 0u; kk < k_end; kk++) {
                let b = load_b(z, k0 + kk, n);
                acc[0] += a_tile[kk * 4u] * b;
                acc[1] += a_tile[kk * 4u + 1u] * b;
                acc[2] += a_tile[kk * 4u + 2u] * b;
                acc[3] += a_tile[kk * 4u + 3u] * b;
            }
            workgroupBarrier();
        }
    }
    let columns = vec4<u32>(n, NO_COLUMN, NO_COLUMN, NO_COLUMN);
    for (var q = 0u; q < 4u; q++) {
        for (var r = 0u; r < 4u; r++) {
            store_row(place.slice, m0 + q * 4u + r, columns, vec4<f32>(acc[q][r], 0.0, 0.0, 0.0));
        }
    }
}
