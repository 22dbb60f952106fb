// Shared by the convolution weight-gradient kernels (conv2d_weight_grad*.wgsl): their
// bindings, the GEMM's operands and the store of results. As a GEMM, dw = A · B with A = dy
// read as [M = Cout, K = B·OH·OW] and B = x gathered as [K, N = Cin·KH·KW]: column
// n = (ci, kh, kw) of row co is dw[co, ci, kh, kw].
//
// Builds on prelude_conv2d.wgsl (params, input_offset).

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<act>;
// dw [Cout, Cin·KH·KW], or where the reduction is cut into chunks, their partial sums
// [chunks, Cout, Cin·KH·KW] for split_k_sum.wgsl to add.
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;

// A[co, k] = dy[b, co, oh, ow] for k = (b, oh, ow), zero outside.
fn load_a(z: u32, co: u32, k: u32) -> f32 {
    let out_pixels = params.out_height * params.out_width;
    if co >= params.out_channels || k >= params.batch * out_pixels {
        return 0.0;
    }
    return dy[((k / out_pixels) * params.out_channels + co) * out_pixels + k % out_pixels];
}

// B[k, n] = x at tap n = (ci, kh, kw) of output pixel k = (b, oh, ow), zero outside and in
// the padding.
fn load_b(z: u32, k: u32, n: u32) -> f32 {
    let at = input_offset(n, k);
    if at == OUTSIDE {
        return 0.0;
    }
    return f32(x[at]);
}

// Writes row co of the GEMM at 4 columns (those below N) into chunk `chunk` of dw, adding the
// old value when accumulating.
fn store_row(chunk: u32, co: u32, columns: vec4<u32>, sums: vec4<f32>) {
    let n_total = params.in_channels * params.kernel_h * params.kernel_w;
    if co >= params.out_channels {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let n = columns[j];
        if n < n_total {
            var value = sums[j];
            let at = (chunk * params.out_channels + co) * n_total + n;
            if params.accumulate == 1u {
                value += dw[at];
            }
            dw[at] = value;
        }
    }
}
