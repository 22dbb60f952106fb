// The staging hooks of body_gemm_tiled.wgsl for the batched strided GEMM (prelude_matmul.wgsl),
// whose operands are read value by value with load_a(z, m, k) and load_b(z, k, n): 4 rows of A
// and 4 columns of B, `step` apart, at one k. Each operand is staged along k where its k stride is
// 1 (a row-major A, a transposed B), else along its rows or columns.

fn a_along_k() -> bool {
    return params.a_k == 1u;
}

fn b_along_k() -> bool {
    return params.b_k == 1u;
}

fn stage_a(z: u32, m: u32, step: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(load_a(z, m, k), load_a(z, m + step, k), load_a(z, m + 2u * step, k), load_a(z, m + 3u * step, k));
}

fn stage_b(z: u32, n: u32, step: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(load_b(z, k, n), load_b(z, k, n + step), load_b(z, k, n + 2u * step), load_b(z, k, n + 3u * step));
}
