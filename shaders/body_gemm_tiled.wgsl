// The entry point of the GPU-class GEMM kernels ("tiled" and "tiled-64"): the tile loop of
//   C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n]
// for wide GPUs. A workgroup of SIDE×SIDE invocations computes a TILE×TILE tile of C, TILE
// being 128 (16×16 invocations) or 64 (8×8), the override a kernel's pipeline sets. Each
// invocation computes an 8×8 block: rows 4·ty + {0..3} and TILE/2 + 4·ty + {0..3}, columns
// 4·tx + {0..3} and TILE/2 + 4·tx + {0..3} of the tile, so its operands are read from
// workgroup memory as vec4s, 64 multiply-adds for 4 vec4 reads. Tiles of A (TILE×SLICE) and B
// (SLICE×TILE) are staged in workgroup memory, double-buffered: while the invocations multiply
// one k-slice, they have already loaded the next one into registers, and one barrier per slice
// separates writing the other buffer from reading it (16 KiB of workgroup memory on 128×128
// tiles, 4 KiB on 64×64). Every result is summed by one invocation in a fixed order: z, then k.
//
// The kernel joined before this file supplies the hooks of body_gemm_tile.wgsl, which it may
// share with that body (whose entry point never calls the stage_* hooks):
//   place_tile(tile, grid) -> Tile     where a workgroup's tile lies (Tile and NO_K:
//                                      prelude_tile.wgsl), its columns from n0, a multiple
//                                      of TILE
//   a_along_k() -> bool                whether A lies in memory along k (true) or along m
//   b_along_k() -> bool                whether B lies in memory along k (true) or along n
//   stage_a(z, m, step, k) -> vec4<f32>   A[z, m + step·{0..3}, k]
//   stage_b(z, n, step, k) -> vec4<f32>   B[z, k, n + step·{0..3}]
//                                      (both zero outside the matrices; k = NO_K is
//                                      outside; an invocation stages the same rows or
//                                      columns at k rising by SLICE; step = STEP)
//   store_row(slice, m, columns, values)  stores 4 results of row m
//
// Staging reads memory in order: consecutive invocations stage consecutive rows (columns) of
// one k where the operand lies along m (n), and consecutive k of one row (column) where it lies
// along k, SLICE k per row, so that a 32-lane SIMD unit reads 32 consecutive values, or runs of
// SLICE, per load. Either way an invocation stages 4 rows (columns) STEP apart at one k.

override TILE: u32 = 128u;
// Invocations along each side of the workgroup, 8 outputs each.
override SIDE: u32 = TILE / 8u;
// k per slice: 4 values of each operand per invocation, SIDE² invocations, TILE rows.
override SLICE: u32 = TILE / 16u;
// Rows (columns) between those an invocation stages; vec4s of one k of a tile.
override STEP: u32 = TILE / 4u;
// vec4s of one buffer of a tile: 256 on 128×128 tiles, 64 on 64×64.
override BUFFER: u32 = SLICE * STEP;

// a_tile[buffer · BUFFER + kk · STEP + r] = A[m0 + 4r .. 4r + 3, k0 + kk];
// b_tile[buffer · BUFFER + kk · STEP + q] = B[k0 + kk, n0 + 4q .. 4q + 3].
var<workgroup> a_tile: array<vec4<f32>, 2u * BUFFER>;
var<workgroup> b_tile: array<vec4<f32>, 2u * BUFFER>;

// What invocation `index` stages of each slice of an operand: (the k within the slice, its
// first row or column within the tile, < STEP).
fn staging(index: u32, along_k: bool) -> vec2<u32> {
    if along_k {
        return vec2<u32>(index % SLICE, index / SLICE);
    }
    return vec2<u32>(index / STEP, index % STEP);
}

// The k that an invocation staging `at` stages in slice `s` of the range `ks`: NO_K past the
// range's end.
fn slice_k(ks: vec2<u32>, s: u32, at: vec2<u32>) -> u32 {
    let k = ks.x + s * SLICE + at.x;
    return select(NO_K, k, k < ks.y);
}

// Writes the 4 values that an invocation staging `at` holds into buffer `buffer` of a tile:
// rows (columns) at.y + STEP·j at k at.x.
fn put_a(buffer: u32, at: vec2<u32>, values: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        let row = at.y + STEP * j;
        a_tile[buffer * BUFFER + at.x * STEP + row / 4u][row % 4u] = values[j];
    }
}

fn put_b(buffer: u32, at: vec2<u32>, values: vec4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        let column = at.y + STEP * j;
        b_tile[buffer * BUFFER + at.x * STEP + column / 4u][column % 4u] = values[j];
    }
}

@compute @workgroup_size(SIDE, SIDE)
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
    // columns TILE/2 + 4·tx..); acc[8 + 2i + h] the same for rows TILE/2 + 4·ty + i.
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    let slices = (max(place.ks.y, place.ks.x) - place.ks.x + SLICE - 1u) / SLICE;
    let at_a = staging(index, a_along_k());
    let at_b = staging(index, b_along_k());
    var buffer = 0u;
    for (var z = place.batches.x; z < place.batches.y; z++) {
        var next_a = stage_a(z, m0 + at_a.y, STEP, slice_k(place.ks, 0u, at_a));
        var next_b = stage_b(z, n0 + at_b.y, STEP, slice_k(place.ks, 0u, at_b));
        for (var s = 0u; s < slices; s++) {
            put_a(buffer, at_a, next_a);
            put_b(buffer, at_b, next_b);
            workgroupBarrier();
            if s + 1u < slices {
                next_a = stage_a(z, m0 + at_a.y, STEP, slice_k(place.ks, s + 1u, at_a));
                next_b = stage_b(z, n0 + at_b.y, STEP, slice_k(place.ks, s + 1u, at_b));
            }
            for (var kk = 0u; kk < SLICE; kk++) {
                let base = buffer * BUFFER + kk * STEP;
                let a_low = a_tile[base + local.y];
                let a_high = a_tile[base + SIDE + local.y];
                let b_low = b_tile[base + local.x];
                let b_high = b_tile[base + SIDE + local.x];
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
    let high = low + vec4<u32>(TILE / 2u);
    // All the rows of one set of columns, then of the other (a kernel's store_row may decode
    // a set of columns once for all its rows).
    for (var h = 0u; h < 2u; h++) {
        let columns = select(low, high, h == 1u);
        for (var i = 0u; i < 4u; i++) {
            let row = m0 + local.y * 4u + i;
            store_row(place.slice, row, columns, acc[2u * i + h]);
            store_row(place.slice, row + TILE / 2u, columns, acc[8u + 2u * i + h]);
        }
    }
}
