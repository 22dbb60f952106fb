// The entry point of the GPU-class GEMM kernels ("tiled"): the tile loop of
//   C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n]
// for wide GPUs. A workgroup of 16×16 = 256 invocations computes a 128×128 tile of C; each
// invocation an 8×8 block: rows 4·ty + {0..3} and 64 + 4·ty + {0..3}, columns 4·tx + {0..3}
// and 64 + 4·tx + {0..3} of the tile, so its operands are read from workgroup memory as vec4s.
// Tiles of A (128×8) and B (8×128) are staged in workgroup memory, double-buffered: while the
// invocations multiply one k-slice, they have already loaded the next one into registers, and
// one barrier per slice separates writing the other buffer from reading it (16 KiB of
// workgroup memory). Every result is summed by one invocation in a fixed order: z, then k.
//
// The kernel joined before this file supplies the hooks of body_gemm_tile.wgsl, which it may
// share with that body (whose entry point never calls the stage_* hooks):
//   place_tile(tile, grid) -> Tile                   where a workgroup's tile lies (Tile and
//                                                    NO_K: prelude_tile.wgsl), its columns
//                                                    from n0, a multiple of TILE
//   stage_a(z, m0, k, index) -> vec4<f32>            A[z, m0 + 4·(index % 32) + {0..3}, k]
//   stage_b(z, n0, k, index) -> vec4<f32>            B[z, k, n0 + 4·(index % 32) + {0..3}]
//                                                    (both zero outside the matrices; k = NO_K
//                                                    is outside; an invocation stages the same
//                                                    rows and columns at k rising by SLICE)
//   store_row(slice, m, columns, values)              stores 4 results of row m

const TILE: u32 = 128u;
const SLICE: u32 = 8u;

// a_tile[buffer · 256 + kk · 32 + r] = A[m0 + 4r .. 4r + 3, k0 + kk];
// b_tile[buffer · 256 + kk · 32 + q] = B[k0 + kk, n0 + 4q .. 4q + 3].
var<workgroup> a_tile: array<vec4<f32>, 512>;
var<workgroup> b_tile: array<vec4<f32>, 512>;

// The k that invocation `index` stages in slice `s` of the range `ks`: row index / 32 of the
// slice, NO_K past the range's end.
fn slice_k(ks: vec2<u32>, s: u32, index: u32) -> u32 {
    let k = ks.x + s * SLICE + index / 32u;
    return select(NO_K, k, k < ks.y);
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let place = place_tile(tile, grid);
    let m0 = tile.y * TILE;
    let n0 = place.n0;
    // acc[2i + h] holds row (4·ty + i) of the upper half (h = 0: columns 4·tx.., h = 1:
    // columns 64 + 4·tx..); acc[8 + 2i + h] the same for rows 64 + 4·ty + i.
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    let slices = (max(place.ks.y, place.ks.x) - place.ks.x + SLICE - 1u) / SLICE;
    var buffer = 0u;
    for (var z = place.batches.x; z < place.batches.y; z++) {
        var next_a = stage_a(z, m0, slice_k(place.ks, 0u, index), index);
        var next_b = stage_b(z, n0, slice_k(place.ks, 0u, index), index);
        for (var s = 0u; s < slices; s++) {
            a_tile[buffer * 256u + index] = next_a;
            b_tile[buffer * 256u + index] = next_b;
            workgroupBarrier();
            if s + 1u < slices {
                let k = slice_k(place.ks, s + 1u, index);
                next_a = stage_a(z, m0, k, index);
                next_b = stage_b(z, n0, k, index);
            }
            for (var kk = 0u; kk < SLICE; kk++) {
                let base = buffer * 256u + kk * 32u;
                let a_low = a_tile[base + local.y];
                let a_high = a_tile[base + 16u + local.y];
                let b_low = b_tile[base + local.x];
                let b_high = b_tile[base + 16u + local.x];
                for (var i = 0u; i < 4u; i++) {
                    acc[2u * i] += a_low[i] * b_low;
                    acc[2u * i + 1u] += a_low[i] * b_high;
                    acc[8u + 2u * i] += a_high[i] * b_low;
                    acc[8u + 2u * i + 1u] += a_high[i] * b_high;
                }
            }
            buffer = 1u - buffer;
        }
    }

    let low = n0 + local.x * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    let high = low + vec4<u32>(64u);
    for (var i = 0u; i < 4u; i++) {
        let row = m0 + local.y * 4u + i;
        store_row(place.slice, row, low, acc[2u * i]);
        store_row(place.slice, row, high, acc[2u * i + 1u]);
        store_row(place.slice, row + 64u, low, acc[8u + 2u * i]);
        store_row(place.slice, row + 64u, high, acc[8u + 2u * i + 1u]);
    }
}
