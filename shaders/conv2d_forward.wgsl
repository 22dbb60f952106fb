// 2-D convolution forward as an implicit GEMM, portable and tiled variants (no subgroups):
//   y[b, co, oh, ow] = bias[co] + Σ_{ci, kh, kw} w[co, ci, kh, kw] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// x [B, Cin, H, W], w [Cout, Cin, KH, KW], y [B, Cout, OH, OW]; padding reads zeros.
// GEMM view: A = w as [M = Cout, K = Cin·KH·KW], B = x gathered as [K, N = B·OH·OW], with no
// im2col buffer. Grid: tiles of N on x (wrapping onto z past 65,535), tiles of M on y.
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_forward.wgsl (params, input_offset,
// bindings, store_row) and before body_gemm_tile.wgsl or body_gemm_tiled.wgsl (the entry point
// and tile loop of the 64×64 portable or the 128×128 tiled variant, which call the functions
// below).

// One GEMM (z = 0), summed over the whole of K.
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    let k_total = params.in_channels * params.kernel_h * params.kernel_w;
    return Tile((tile.x + tile.z * grid.x) * TILE, vec2<u32>(0u, 1u), vec2<u32>(0u, k_total), 0u);
}

// A[co, k] = w[co, k], zero outside.
fn load_a(z: u32, co: u32, k: u32) -> f32 {
    let k_total = params.in_channels * params.kernel_h * params.kernel_w;
    if co >= params.out_channels || k >= k_total {
        return 0.0;
    }
    return w[co * k_total + k];
}

// B[k, n] = x at tap k = (ci, kh, kw) of output pixel n = (b, oh, ow), zero outside and in the
// padding.
fn load_b(z: u32, k: u32, n: u32) -> f32 {
    let at = input_offset(k, n);
    if at == OUTSIDE {
        return 0.0;
    }
    return f32(x[at]);
}

// The staging hooks of the tiled variant (body_gemm_tiled.wgsl; the portable and narrow bodies
// do not call them). w lies along k (row-major [Cout, K]); x along the output pixels.
fn a_along_k() -> bool {
    return true;
}

fn b_along_k() -> bool {
    return false;
}

// w in quads where K is a multiple of 4 (params.quads), through a vec4 view of it; the gather
// of x value by value.
@group(0) @binding(5) var<storage, read> w_quad: array<vec4<f32>>;

fn a_quads() -> bool {
    return params.quads == 1u;
}

fn b_quads() -> bool {
    return false;
}

// A: rows co + spread.x·{0..3} of w at tap k, or in quads w[co, k .. k + 3] (k a multiple of
// 4, and so K).
fn stage_a(z: u32, co: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    if a_quads() {
        let k_total = params.in_channels * params.kernel_h * params.kernel_w;
        if co >= params.out_channels || k >= k_total {
            return vec4<f32>(0.0);
        }
        return w_quad[(co * k_total + k) / 4u];
    }
    return vec4<f32>(load_a(z, co, k), load_a(z, co + spread.x, k), load_a(z, co + 2u * spread.x, k), load_a(z, co + 3u * spread.x, k));
}

// B: x at tap k of output pixels n + spread.x·{0..3}. An invocation decodes its pixels on its first
// call only, and walks the tap (ci, kh, kw) forward (walk_to in prelude_conv2d.wgsl).
var<private> tap_walk: Walk = NOT_WALKED;
var<private> pixel_base: vec4<u32>; // offset of x[b, 0, 0, 0] per pixel; OUTSIDE past B·OH·OW
var<private> pixel_h: vec4<u32>; // oh·sh − ph per pixel (wrapping below zero, so that padding
var<private> pixel_w: vec4<u32>; // compares as out of range); ow·sw − pw

fn stage_b(z: u32, n: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    let k_total = params.in_channels * params.kernel_h * params.kernel_w;
    if k >= k_total {
        return vec4<f32>(0.0);
    }
    if tap_walk.k == OUTSIDE {
        let out_pixels = params.out_height * params.out_width;
        let image_len = params.in_channels * params.in_height * params.in_width;
        for (var j = 0u; j < 4u; j++) {
            let pixel = n + spread.x * j;
            let in_image = pixel % out_pixels;
            pixel_base[j] = select(OUTSIDE, (pixel / out_pixels) * image_len, pixel < params.batch * out_pixels);
            pixel_h[j] = (in_image / params.out_width) * params.stride_h - params.pad_h;
            pixel_w[j] = (in_image % params.out_width) * params.stride_w - params.pad_w;
        }
    }
    let tap = walk_to(&tap_walk, k, vec2<u32>(params.kernel_h, params.kernel_w));
    let plane = params.in_height * params.in_width;
    var values = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let ih = pixel_h[j] + tap.y;
        let iw = pixel_w[j] + tap.z;
        if pixel_base[j] != OUTSIDE && ih < params.in_height && iw < params.in_width {
            values[j] = f32(x[pixel_base[j] + tap.x * plane + ih * params.in_width + iw]);
        }
    }
    return values;
}
