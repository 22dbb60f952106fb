// The staging hooks of body_gemm_tiled.wgsl for the batched strided GEMM (prelude_matmul.wgsl),
// whose operands are read value by value with load_a(z, m, k) and load_b(z, k, n), or where
// the layout allows (params.a_quads, params.b_quads) 4 values consecutive in memory at a time
// as one vec4, from a vec4 view of the same buffer. Each operand is staged along k where its k
// stride is 1 (a row-major A, a transposed B), else along its rows or columns.

@group(0) @binding(5) var<storage, read> a_quad: array<vec4<a_elem>>;
@group(0) @binding(6) var<storage, read> b_quad: array<vec4<b_elem>>;

fn a_along_k() -> bool {
    return params.a_k == 1u;
}

fn b_along_k() -> bool {
    return params.b_k == 1u;
}

fn a_quads() -> bool {
    return params.a_quads == 1u;
}

fn b_quads() -> bool {
    return params.b_quads == 1u;
}

// A[z, m + spread.x·j, k + spread.y·j]: one vec4 load where the 4 values are a quad inside the
// matrix (a_quads makes its first offset a multiple of 4), else value by value.
fn stage_a(z: u32, m: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    if k >= params.k {
        return vec4<f32>(0.0);
    }
    let last = vec2<u32>(m, k) + 3u * spread;
    if a_quads() && last.x < params.m && last.y < params.k {
        return vec4<f32>(a_quad[(z * params.a_batch + m * params.a_row + k * params.a_k) / 4u]);
    }
    var values = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        values[j] = load_a(z, m + spread.x * j, k + spread.y * j);
    }
    return values;
}

// B[z, k + spread.y·j, n + spread.x·j], as stage_a reads A.
fn stage_b(z: u32, n: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    if k >= params.k {
        return vec4<f32>(0.0);
    }
    let last = vec2<u32>(n, k) + 3u * spread;
    if b_quads() && last.x < params.n && last.y < params.k {
        return vec4<f32>(b_quad[(z * params.b_batch + k * params.b_k + n * params.b_col) / 4u]);
    }
    var values = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        values[j] = load_b(z, k + spread.y * j, n + spread.x * j);
    }
    return values;
}
