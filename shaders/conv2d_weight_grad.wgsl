// 2-D convolution weight gradient as an implicit GEMM, portable and tiled variants (no
// subgroups), whole or split-K:
//   dw[co, ci, kh, kw] = Σ_{b, oh, ow} dy[b, co, oh, ow] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// dy [B, Cout, OH, OW], x [B, Cin, H, W], dw [Cout, Cin, KH, KW]; padding reads zeros.
// GEMM view: A = dy read as [M = Cout, K = B·OH·OW], B = x gathered as [K, N = Cin·KH·KW].
// Each output is summed by one invocation in a fixed order: the same result run after run.
// Whole (k_chunk = 0): grid of tiles of N on x (wrapping onto z past 65,535), tiles of M on y.
// Split-K (k_chunk > 0): the reduction is cut into chunks of k_chunk values; z slice s of the
// grid sums k in [s·k_chunk, (s + 1)·k_chunk) into partial[s, co, n] (bound as dw), and
// split_k_sum.wgsl then adds the slices in order into dw. No atomics.
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_weight_grad.wgsl (params, bindings,
// load_a, load_b, store_row) and before body_gemm_tile.wgsl or body_gemm_tiled.wgsl (the entry
// point and tile loop of the 64×64 portable or the 128×128 tiled variant, which call them and
// place_tile below).

// One GEMM (z = 0), summed over the whole of K into dw itself (chunk 0), or over chunk z of K
// into partial sum z.
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    let k_total = params.batch * params.out_height * params.out_width;
    if params.k_chunk == 0u {
        return Tile((tile.x + tile.z * grid.x) * TILE, vec2<u32>(0u, 1u), vec2<u32>(0u, k_total), 0u);
    }
    let k_first = tile.z * params.k_chunk;
    let k_end = min(k_first + params.k_chunk, k_total);
    return Tile(tile.x * TILE, vec2<u32>(0u, 1u), vec2<u32>(k_first, k_end), tile.z);
}

// The staging hooks of the tiled variant (body_gemm_tiled.wgsl; the portable body does not call
// them). Both operands lie along k, the output pixels (b, oh, ow): an invocation stages the
// same 4 rows (output channels) of A and 4 columns (taps) of B at k rising by SLICE, walking
// the pixel forward by carries with no division per value; B decodes its taps on its first
// call only.
fn a_along_k() -> bool {
    return true;
}

fn b_along_k() -> bool {
    return true;
}

// dy in quads of 4 output pixels where the planes and the chunks are multiples of 4 pixels
// (params.quads), through a vec4 view of it; the gather of x value by value.
@group(0) @binding(4) var<storage, read> dy_quad: array<vec4<f32>>;

fn a_quads() -> bool {
    return params.quads == 1u;
}

fn b_quads() -> bool {
    return false;
}

var<private> a_walk: Walk = NOT_WALKED;
var<private> b_walk: Walk = NOT_WALKED;
var<private> taps: array<vec3<u32>, 4>; // (ci, kh, kw) per column
var<private> tap_live: vec4<bool>; // whether the column is below Cin·KH·KW

// A: dy[b, co, oh, ow] of output channels co + spread.x·{0..3} at pixel k, or in quads of
// channel co at pixels k .. k + 3 (k a multiple of 4, and so OH·OW: one image).
fn stage_a(z: u32, co: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    var values = vec4<f32>(0.0);
    if k >= params.batch * params.out_height * params.out_width {
        return values;
    }
    let pixel = walk_to(&a_walk, k, vec2<u32>(params.out_height, params.out_width));
    let out_pixels = params.out_height * params.out_width;
    let at = pixel.y * params.out_width + pixel.z;
    if a_quads() {
        if co < params.out_channels {
            values = dy_quad[((pixel.x * params.out_channels + co) * out_pixels + at) / 4u];
        }
        return values;
    }
    for (var j = 0u; j < 4u; j++) {
        let channel = co + spread.x * j;
        if channel < params.out_channels {
            values[j] = dy[(pixel.x * params.out_channels + channel) * out_pixels + at];
        }
    }
    return values;
}

// B: x at taps n + spread.x·{0..3} of pixel k, zero in the padding.
fn stage_b(z: u32, n: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    var values = vec4<f32>(0.0);
    if k >= params.batch * params.out_height * params.out_width {
        return values;
    }
    if b_walk.k == OUTSIDE {
        let window = params.kernel_h * params.kernel_w;
        for (var j = 0u; j < 4u; j++) {
            let column = n + spread.x * j;
            tap_live[j] = column < params.in_channels * window;
            taps[j] = vec3<u32>(column / window, (column % window) / params.kernel_w, column % params.kernel_w);
        }
    }
    let pixel = walk_to(&b_walk, k, vec2<u32>(params.out_height, params.out_width));
    let oh = pixel.y * params.stride_h - params.pad_h;
    let ow = pixel.z * params.stride_w - params.pad_w;
    for (var j = 0u; j < 4u; j++) {
        // Unsigned wrap-around makes negative coordinates compare as out of range.
        let ih = oh + taps[j].y;
        let iw = ow + taps[j].z;
        if tap_live[j] && ih < params.in_height && iw < params.in_width {
            let plane = (pixel.x * params.in_channels + taps[j].x) * params.in_height;
            values[j] = f32(x[(plane + ih) * params.in_width + iw]);
        }
    }
    return values;
}
