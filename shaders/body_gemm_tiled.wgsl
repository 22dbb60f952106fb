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
//   a_quads() -> bool                  whether A is staged in quads: 4 values consecutive in
//   b_quads() -> bool                  its memory order, at a k (or row) that is a multiple
//                                      of 4, so that a kernel may load them as one vec4
//   stage_a(z, m, k, spread) -> vec4<f32>   A[z, m + spread.x·j, k + spread.y·j], j < 4
//   stage_b(z, n, k, spread) -> vec4<f32>   B[z, k + spread.y·j, n + spread.x·j], j < 4
//                                      (zero outside the matrices; k = NO_K is outside;
//                                      spread = (STEP, 0), or in quads (0, 1) along k and
//                                      (1, 0) along the rows; an invocation stages the
//                                      same rows or columns at k rising by SLICE; a k
//                                      range staged in quads along k ends at K or at a
//                                      multiple of 4)
//   store_row(slice, m, columns, values)  stores 4 results of row m
//
// Staging reads memory in order: consecutive invocations stage consecutive rows (columns) of
// one k where the operand lies along m (n), and consecutive k of one row (column) where it lies
// along k, SLICE k per row, so that a 32-lane SIMD unit reads 32 consecutive values, or runs of
// SLICE, per load. An invocation stages 4 rows (columns) STEP apart at one k, or where the
// operand's kernel reads it in quads, 4 consecutive values: rows 4r..4r+3 of one k (one vec4
// of the tile) or k..k+3 of one row.

override TILE: u32 = 128u;
// Invocations along each side of the workgroup, 8 outputs each.
override SIDE: u32 = TILE / 8u;
// k per slice: 4 values of each operand per invocation, SIDE² invocations, TILE rows.
override SLICE: u32 = TILE / 16u;
// Rows (columns) between those an invocation stages; vec4s of one k of a tile.
override STEP: u32 = TILE / 4u;
// vec4s of one buffer of a tile: 256 on 128×128 tiles, 64 on 64×64.
override BUFFER: u32 = SLICE * STEP;

// tiles[operand · 2·BUFFER + buffer · BUFFER + slot(kk, r)] holds, for operand 0,
// A[m0 + 4r .. 4r + 3, k0 + kk], and for operand 1, B[k0 + kk, n0 + 4r .. 4r + 3].
var<workgroup> tiles: array<vec4<f32>, 4u * BUFFER>;

// Where the vec4 of rows (columns) 4r .. 4r + 3 at k kk of a slice lies in a buffer: in the row
// of kk, with the low 3 bits of r XORed with kk · 8 / SLICE. Staging along k, a 32-lane SIMD
// unit writes SLICE k of 32 / SLICE rows at once (word 4·STEP·kk + row, STEP·4 being a multiple
// of 32): the swizzle puts those 32 values in 32 different 4-byte banks of workgroup memory
// (as on NVIDIA and AMD GPUs), where the plain layout puts them in 32 / SLICE, at no cost in
// memory. r ^ swizzle stays in r's aligned block of 8, below STEP.
fn slot(kk: u32, r: u32) -> u32 {
    return kk * STEP + (r ^ ((kk * 8u / SLICE) % 8u));
}

// What an invocation stages of each slice of an operand: 4 values, the first at k `kk` of the
// slice and row (column) `first` of the tile, each next one `spread` = (rows, k) further.
struct Staging {
    kk: u32,
    first: u32,
    spread: vec2<u32>,
}

// The staging of invocation `index` for an operand lying along k (`along_k`) or along its rows
// (columns), in quads (4 consecutive values in memory order) or in rows STEP apart at one k.
fn staging(index: u32, along_k: bool, quads: bool) -> Staging {
    if quads && along_k {
        let per_row = SLICE / 4u;
        return Staging(4u * (index % per_row), index / per_row, vec2<u32>(0u, 1u));
    }
    if quads {
        return Staging(index / STEP, 4u * (index % STEP), vec2<u32>(1u, 0u));
    }
    if along_k {
        return Staging(index % SLICE, index / SLICE, vec2<u32>(STEP, 0u));
    }
    return Staging(index / STEP, index % STEP, vec2<u32>(STEP, 0u));
}

// The first k that an invocation staging `at` stages in slice `s` of the range `ks`: NO_K
// past the range's end.
fn slice_k(ks: vec2<u32>, s: u32, at: Staging) -> u32 {
    let k = ks.x + s * SLICE + at.kk;
    return select(NO_K, k, k < ks.y);
}

// Writes the 4 values that an invocation staging `at` holds into the tiles at `base`
// (an operand's buffer): a quad along the rows is one vec4 of the tile.
fn put(base: u32, at: Staging, values: vec4<f32>) {
    if at.spread.x == 1u {
        tiles[base + slot(at.kk, at.first / 4u)] = values;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let row = at.first + at.spread.x * j;
        tiles[base + slot(at.kk + at.spread.y * j, row / 4u)][row % 4u] = values[j];
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
    let at_a = staging(index, a_along_k(), a_quads());
    let at_b = staging(index, b_along_k(), b_quads());
    var buffer = 0u;
    for (var z = place.batches.x; z < place.batches.y; z++) {
        var next_a = stage_a(z, m0 + at_a.first, slice_k(place.ks, 0u, at_a), at_a.spread);
        var next_b = stage_b(z, n0 + at_b.first, slice_k(place.ks, 0u, at_b), at_b.spread);
        for (var s = 0u; s < slices; s++) {
            put(buffer * BUFFER, at_a, next_a);
            put((2u + buffer) * BUFFER, at_b, next_b);
            workgroupBarrier();
            if s + 1u < slices {
                next_a = stage_a(z, m0 + at_a.first, slice_k(place.ks, s + 1u, at_a), at_a.spread);
                next_b = stage_b(z, n0 + at_b.first, slice_k(place.ks, s + 1u, at_b), at_b.spread);
            }
            for (var kk = 0u; kk < SLICE; kk++) {
                let a_base = buffer * BUFFER;
                let b_base = (2u + buffer) * BUFFER;
                let a_low = tiles[a_base + slot(kk, local.y)];
                let a_high = tiles[a_base + slot(kk, SIDE + local.y)];
                let b_low = tiles[b_base + slot(kk, local.x)];
                let b_high = tiles[b_base + slot(kk, SIDE + local.x)];
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
