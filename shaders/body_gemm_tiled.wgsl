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
//   place_tile(tile, grid) -> Tile     where a workgroup's tile lies (Tile and NO_K:
//                                      prelude_tile.wgsl), its columns from n0, a multiple
//                                      of TILE
//   a_along_k() -> bool                whether A lies in memory along k (true) or along m
//   b_along_k() -> bool                whether B lies in memory along k (true) or along n
//   stage_a(z, m, k) -> vec4<f32>      A[z, m + 32·{0..3}, k]
//   stage_b(z, n, k) -> vec4<f32>      B[z, k, n + 32·{0..3}]
//                                      (both zero outside the matrices; k = NO_K is
//                                      outside; an invocation stages the same rows or
//                                      columns at k rising by SLICE)
//   store_row(slice, m, columns, values)  stores 4 results of row m
//
// Staging reads memory in order: consecutive invocations stage consecutive rows (columns) of
// one k where the operand lies along m (n), and consecutive k of one row (column) where it lies
// along k, 8 k (a slice) per row, so that a 32-lane SIMD unit reads 32 consecutive values, or
// 4 runs of 8, per load. Either way an invocation stages 4 rows (columns) 32 apart at one k.

const TILE: u32 = 128u;
const SLICE: u32 = 8u;

// a_tile[buffer · 256 + kk · 32 + r] = A[m0 + 4r .. 4r + 3, k0 + kk];
// b_tile[buffer · 256 + kk · 32 + q] = B[k0 + kk, n0 + 4q .. 4q + 3].
var<workgroup> a_tile: array<vec4<f32>, 512>;
var<workgroup> b_tile: array<vec4<f32>, 512>;

// What invocation `index` stages of each slice of an operand: (the k within the slice, its
// first row or column within the tile, < 32).
fn staging(index: u32, along_k: bool) -> vec2<u32> {
    if along_k {
        return vec2<u32>(index % SLICE, index / SLICE);
    }
    return vec2<u32>(index / 32u, index % 32u);
}

// The k that an invocation staging `at` stages in slice `s` of the range `ks`: NO_K past the
// range's end.
fn slice_k(ks: vec2<u32>, s: u32, at: vec2<u32>) -> u32 {
    let k = ks.x + s * SLICE + at.x;
    return select(NO_K, k, k < ks.y);
}

// Writes the 4 values that an invocation staging `at` holds into buffer `buffer` of a tile:
// rows (columns) at.y + 32·j at k at.x.
fn put_a(buffer: u32, at: vec2<u32>, values: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        let row = at.y + 32u * j;
        a_tile[buffer * 256u + at.x * 32u + row / 4u][row % 4u] = values[j];
    }
}

fn put_b(buffer: u32, at: vec2<u32>, values: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        let column = at.y + 32u * j;
        b_tile[buffer * 256u + at.x * 32u + column / 4u][column % 4u] = values[j];
    }
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
    let at_a = staging(index, a_along_k());
    let at_b = staging(index, b_along_k());
    var buffer = 0u;
    for (var z = place.batches.x; z < place.batches.y; z++) {
        var next_a = stage_a(z, m0 + at_a.y, slice_k(place.ks, 0u, at_a));
        var next_b = stage_b(z, n0 + at_b.y, slice_k(place.ks, 0u, at_b));
        for (var s = 0u; s < slices; s++) {
            put_a(buffer, at_a, next_a);
            put_b(buffer, at_b, next_b);
            workgroupBarrier();
            if s + 1u < slices {
                next_a = stage_a(z, m0 + at_a.y, slice_k(place.ks, s + 1u, at_a));
                next_b = stage_b(z, n0 + at_b.y, slice_k(place.ks, s + 1u, at_b));
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
    // All the rows of one set of columns, then of the other (a kernel's store_row may decode
    // a set of columns once for all its rows).
    for (var h = 0u; h < 2u; h++) {
        let columns = select(low, high, h == 1u);
        for (var i = 0u; i < 4u; i++) {
            let row = m0 + local.y * 4u + i;
            store_row(place.slice, row, columns, acc[2u * i + h]);
            store_row(place.slice, row + 64u, columns, acc[8u + 2u * i + h]);
        }
    }
}
