// Shared by the batched strided GEMM kernels (matmul*.wgsl): the parameters, the bindings,
// bounds-checked operand loads and the store of one row of results (which are also the hooks
// that body_gemm_tile.wgsl and body_gemm_subgroup.wgsl call).
//   C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n]  (+ bias) (+ C[z, m, n] when accumulating)
// with A at a_batch·z + a_row·m + a_k·k, B at b_batch·z + b_k·k + b_col·n and C at
// c_batch·z + c_row·m + n. With `reduce_batch` the batch is summed too:
// C[m, n] = Σ_z Σ_k A[z, m, k] · B[z, k, n].

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_batch: u32,
    a_row: u32,
    a_k: u32,
    b_batch: u32,
    b_k: u32,
    b_col: u32,
    c_batch: u32,
    c_row: u32,
    // 0: none, 1: bias[m] added to row m, 2: bias[n] added to column n.
    bias_mode: u32,
    accumulate: u32,
    reduce_batch: u32,
    // With `reduce_batch`: images summed by each z slice of the grid (split-K over the batch
    // writes one partial C per slice, at c_batch · slice).
    z_chunk: u32,
    // Whether the tiled kernels may read A (B) 4 values at a time as one vec4: along its axis
    // of stride 1, every other stride a multiple of 4.
    a_quads: u32,
    b_quads: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<a_elem>;
@group(0) @binding(2) var<storage, read> b: array<b_elem>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<c_elem>;

// The batch indices [first, end) that z slice `slice` of the grid sums over: its own index,
// or with `reduce_batch` its chunk of z_chunk images. Results go to C[slice].
fn batch_range(slice: u32) -> vec2<u32> {
    if params.reduce_batch == 1u {
        let first = slice * params.z_chunk;
        return vec2<u32>(first, min(first + params.z_chunk, params.batch));
    }
    return vec2<u32>(slice, slice + 1u);
}

// A[z, row, k], zero outside the matrix.
fn load_a(z: u32, row: u32, k: u32) -> f32 {
    if row >= params.m || k >= params.k {
        return 0.0;
    }
    return f32(a[z * params.a_batch + row * params.a_row + k * params.a_k]);
}

// B[z, k, column], zero outside the matrix.
fn load_b(z: u32, k: u32, column: u32) -> f32 {
    if column >= params.n || k >= params.k {
        return 0.0;
    }
    return f32(b[z * params.b_batch + k * params.b_k + column * params.b_col]);
}

// Writes one row of results (4 columns), adding bias and the old value as asked.
fn store_row(z: u32, row: u32, columns: vec4<u32>, values: vec4<f32>) {
    if row >= params.m {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let column = columns[j];
        if column < params.n {
            var value = values[j];
            if params.bias_mode == 1u {
                value += bias[row];
            } else if params.bias_mode == 2u {
                value += bias[column];
            }
            let at = z * params.c_batch + row * params.c_row + column;
            if params.accumulate == 1u {
                value += f32(c[at]);
            }
            c[at] = c_elem(value);
        }
    }
}
