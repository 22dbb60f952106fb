// Shared by the convolution input-gradient kernels (conv2d_input_grad*.wgsl): their bindings
// and the store of results. As a GEMM, dx = A · B with A = w read as [M = Cin, K = Cout·KH·KW]
// and B = dy gathered as [K, N = B·H·W]: column n = (b, ih, iw) of row ci is dx[b, ci, ih, iw].
//
// Builds on prelude_conv2d.wgsl (params).

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

// Writes row ci of the GEMM at 4 columns (those below N), adding the old value when
// accumulating. The input gradient is never split: `slice` is not used.
fn store_row(slice: u32, ci: u32, columns: vec4<u32>, sums: vec4<f32>) {
    let plane = params.in_height * params.in_width;
    if ci >= params.in_channels {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let n = columns[j];
        if n < params.batch * plane {
            var value = sums[j];
            let at = ((n / plane) * params.in_channels + ci) * plane + n % plane;
            if params.accumulate == 1u {
                value += dx[at];
            }
            dx[at] = value;
        }
    }
}
