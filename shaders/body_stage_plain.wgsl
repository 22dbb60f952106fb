// The staging hooks of body_gemm_tiled.wgsl for a kernel whose operands are read value by value
// with load_a(z, m, k) and load_b(z, k, n): 4 rows of A and 4 columns of B at one k.

fn stage_a(z: u32, m0: u32, k: u32, index: u32) -> vec4<f32> {
    let m = m0 + (index % 32u) * 4u;
    return vec4<f32>(load_a(z, m, k), load_a(z, m + 1u, k), load_a(z, m + 2u, k), load_a(z, m + 3u, k));
}

fn stage_b(z: u32, n0: u32, k: u32, index: u32) -> vec4<f32> {
    let n = n0 + (index % 32u) * 4u;
    return vec4<f32>(load_b(z, k, n), load_b(z, k, n + 1u), load_b(z, k, n + 2u), load_b(z, k, n + 3u));
}
