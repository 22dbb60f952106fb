// Shared by the convolution forward kernels (conv2d_forward*.wgsl): their bindings and the
// store of results. As a GEMM, y = A · B with A = w as [M = Cout, K = Cin·KH·KW] and B = x
// gathered as [K, N = B·OH·OW]: column n = (b, oh, ow) of row co is y[b, co, oh, ow].
//
// Builds on prelude_conv2d.wgsl (params).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;

// Writes row co of the GEMM at 4 columns (those below N), adding the bias and the old value as
// asked. The forward is never split: `slice` is not used.
fn store_row(slice: u32, co: u32, columns: vec4<u32>, sums: vec4<f32>) {
    let out_pixels = params.out_height * params.out_width;
    if co >= params.out_channels {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let n = columns[j];
        if n < params.batch * out_pixels {
            var value = sums[j];
            if params.has_bias == 1u {
                value += bias[co];
            }
            let at = ((n / out_pixels) * params.out_channels + co) * out_pixels + n % out_pixels;
            if params.accumulate == 1u {
                value += f32(y[at]);
            }
            y[at] = act(value);
        }
    }
}
