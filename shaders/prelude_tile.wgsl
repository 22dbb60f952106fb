// Shared by the kernels joined with body_gemm_tile.wgsl or body_gemm_tiled.wgsl: where a
// workgroup's tile of C lies (their place_tile hook returns it).

// Rows from workgroup_id.y · TILE (the body's tile side), columns from n0, summed over z in
// [batches.x, batches.y) and k in [ks.x, ks.y), written to grid slice `slice` (a split
// reduction's chunk, or a batch index).
struct Tile {
    n0: u32,
    batches: vec2<u32>,
    ks: vec2<u32>,
    slice: u32,
}

// A reduction index past every K: A and B read zero there.
const NO_K: u32 = 0xffffffffu;
