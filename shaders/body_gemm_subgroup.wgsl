// The entry point of the subgroup GEMM kernels (subgroup size ≥ 8) and their 16 accumulators:
//   C[m, n] = Σ_k A[m, k] · B[k, n]
// A workgroup of LANES invocations computes a 16 × 4·LANES tile of C. Each invocation owns 4
// columns and all 16 rows m0 … m0 + 15 of the tile: per k it loads its 4 values of B and 2
// values of A (rows m0 + s and m0 + 8 + s, s = its subgroup lane mod 8), and receives the other
// 14 values of A from lanes 0–7 of its subgroup by subgroupBroadcast. Each loaded value thus
// feeds 16 or 4 multiply-adds from registers, which is what matters on CPU-based adapters,
// where every memory load is costly.
//
// The kernel joined before this file supplies:
//   sum_block(tile, grid, local, lane) -> Block   walks the reduction in a fixed order, calling
//                                                  accumulate once per k; where the sums go
//   store_row(slice, m, columns, values)           stores 4 results of row m

// Invocations per workgroup, a multiple of 8: 8 by default; the wide variant sets the device's
// largest subgroup size (at least 16), so that a 32- or 64-lane SIMD unit runs one workgroup
// with every lane busy. Each subgroup broadcasts within itself, so any subgroup size from 8
// up computes the same result.
override LANES: u32 = 8u;

// A column past every N: store_row writes nothing there.
const NO_COLUMN: u32 = 0xffffffffu;

// Where an invocation's sums go: rows m0 … m0 + 15 of C at its 4 columns (N or more, such as
// NO_COLUMN, where out of range), in grid slice `slice` (a split reduction's chunk, or a batch
// index).
struct Block {
    slice: u32,
    m0: u32,
    columns: vec4<u32>,
}

// accN holds row m0 + N of the invocation's block.
var<private> acc0: vec4<f32>;
var<private> acc1: vec4<f32>;
var<private> acc2: vec4<f32>;
var<private> acc3: vec4<f32>;
var<private> acc4: vec4<f32>;
var<private> acc5: vec4<f32>;
var<private> acc6: vec4<f32>;
var<private> acc7: vec4<f32>;
var<private> acc8: vec4<f32>;
var<private> acc9: vec4<f32>;
var<private> acc10: vec4<f32>;
var<private> acc11: vec4<f32>;
var<private> acc12: vec4<f32>;
var<private> acc13: vec4<f32>;
var<private> acc14: vec4<f32>;
var<private> acc15: vec4<f32>;

// One step k of the reduction: bv holds B[k, ·] at the invocation's 4 columns, and lo and hi
// on subgroup lane s < 8 hold A[m0 + s, k] and A[m0 + 8 + s, k] (on the other lanes, values
// that are not used). Then accN += A[m0 + N, k] · bv.
fn accumulate(lo: f32, hi: f32, bv: vec4<f32>) {
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
}

@compute @workgroup_size(LANES)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let block = sum_block(tile, grid, local, lane);
    let m0 = block.m0;
    store_row(block.slice, m0 + 0u, block.columns, acc0);
    store_row(block.slice, m0 + 1u, block.columns, acc1);
    store_row(block.slice, m0 + 2u, block.columns, acc2);
    store_row(block.slice, m0 + 3u, block.columns, acc3);
    store_row(block.slice, m0 + 4u, block.columns, acc4);
    store_row(block.slice, m0 + 5u, block.columns, acc5);
    store_row(block.slice, m0 + 6u, block.columns, acc6);
    store_row(block.slice, m0 + 7u, block.columns, acc7);
    store_row(block.slice, m0 + 8u, block.columns, acc8);
    store_row(block.slice, m0 + 9u, block.columns, acc9);
    store_row(block.slice, m0 + 10u, block.columns, acc10);
    store_row(block.slice, m0 + 11u, block.columns, acc11);
    store_row(block.slice, m0 + 12u, block.columns, acc12);
    store_row(block.slice, m0 + 13u, block.columns, acc13);
    store_row(block.slice, m0 + 14u, block.columns, acc14);
    store_row(block.slice, m0 + 15u, block.columns, acc15);
}
