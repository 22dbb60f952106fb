// The staging hooks of body_gemm_tiled.wgsl for the batched strided GEMM (prelude_matmul.wgsl),
// whose operands are read value by value with load_a(z, m, k) and load_b(z, k, n): 4 rows of A
// and 4 columns of B, 32 apart, at one k. Each operand is staged along k where its k stride is
// 1 (a row-major A, a transposed B), else along its rows or columns.

fn a_along_k() -> bool {
    return params.a_k == 1u;
}

fn b_along_k() -> bool {
    return params.b_k == 1u;
}

fn stage_a(z: u32, m: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(load_a(z, m, k), load_a(z, m + 32u, k), load_a(z, m + 64u, k), load_a(z, m + 96u, k));
}

fn stage_b(z: u32, n: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(load_b(z, k, n), load_b(z, k, n + 32u), load_b(z, k, n + 64u), load_b(z, k, n + 96u));
}
