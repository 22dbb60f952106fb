// Batched strided GEMM, register-tiled variant for wide GPUs:
//   C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n]  (+ bias) (+ C[z, m, n] when accumulating)
// with the same strides, bias modes and batch reduction as matmul.wgsl.
//
// A workgroup of 16×16 = 256 invocations computes a 128×128 tile of C; each invocation an 8×8
// block: rows 4·ty + {0..3} and 64 + 4·ty + {0..3}, columns 4·tx + {0..3} and 64 + 4·tx + {0..3}
// of the tile, so its operands are read from workgroup memory as vec4s. Tiles of A (128×8) and
// B (8×128) are staged in workgroup memory, double-buffered: while the invocations multiply
// one k-slice, they have already loaded the next one into registers, and one barrier per
// slice separates writing the other buffer from reading it (16 KiB of workgroup memory).
//
// Joined after prelude_matmul.wgsl (Params, bindings, batch_range, load_a, load_b, store_row).

const TILE: u32 = 128u;
const SLICE: u32 = 8u;

// a_tile[buffer · 256 + kk · 32 + r] = A[m0 + 4r .. 4r + 3, k0 + kk];
// b_tile[buffer · 256 + kk · 32 + q] = B[k0 + kk, n0 + 4q .. 4q + 3].
var<workgroup> a_tile: array<vec4<f32>, 512>;
var<workgroup> b_tile: array<vec4<f32>, 512>;

// The 4 rows of A (and 4 columns of B) that invocation `index` stages for one k-slice: slot
// index % 32 of k-row index / 32.
fn fetch_a(z: u32, m0: u32, k0: u32, index: u32) -> vec4<f32> {
    let row = m0 + (index % 32u) * 4u;
    let k = k0 + index / 32u;
    return vec4<f32>(load_a(z, row, k), load_a(z, row + 1u, k), load_a(z, row + 2u, k), load_a(z, row + 3u, k));
}

fn fetch_b(z: u32, n0: u32, k0: u32, index: u32) -> vec4<f32> {
    let column = n0 + (index % 32u) * 4u;
    let k = k0 + index / 32u;
    return vec4<f32>(load_b(z, k, column), load_b(z, k, column + 1u), load_b(z, k, column + 2u), load_b(z, k, column + 3u));
}

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let m0 = tile.y * TILE;
    let n0 = tile.x * TILE;
    // acc[2i + h] holds row (4·ty + i) of the upper half (h = 0: columns 4·tx.., h = 1:
    // columns 64 + 4·tx..); acc[8 + 2i + h] the same for rows 64 + 4·ty + i.
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    let batches = batch_range(tile.z);
    let slices = (params.k + SLICE - 1u) / SLICE;
    var buffer = 0u;
    for (var z = batches.x; z < batches.y; z++) {
        var next_a = fetch_a(z, m0, 0u, index);
        var next_b = fetch_b(z, n0, 0u, index);
        for (var s = 0u; s < slices; s++) {
            a_tile[buffer * 256u + index] = next_a;
            b_tile[buffer * 256u + index] = next_b;
            workgroupBarrier();
            if s + 1u < slices {
                next_a = fetch_a(z, m0, (s + 1u) * SLICE, index);
                next_b = fetch_b(z, n0, (s + 1u) * SLICE, index);
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

    let z_out = tile.z;
    let low = n0 + local.x * 4u + vec4<u32>(0u, 1u, 2u, 3u);
    let high = low + vec4<u32>(64u);
    for (var i = 0u; i < 4u; i++) {
        let row = m0 + local.y * 4u + i;
        store_row(z_out, row, low, acc[2u * i]);
        store_row(z_out, row, high, acc[2u * i + 1u]);
        store_row(z_out, row + 64u, low, acc[8u + 2u * i]);
        store_row(z_out, row + 64u, high, acc[8u + 2u * i + 1u]);
    }
}
