// 2-D convolution input gradient as an implicit GEMM, portable, tiled and narrow variants (no
// subgroups):
//   dx[b, ci, ih, iw] = Σ_{co, kh, kw} w[co, ci, kh, kw] · dy[b, co, oh, ow]
//   over the (kh, kw) with oh = (ih + ph − kh) / sh and ow = (iw + pw − kw) / sw exact and in range.
// dy [B, Cout, OH, OW], w [Cout, Cin, KH, KW], dx [B, Cin, H, W].
// GEMM view, per stride phase (prelude_conv2d_input_grad.wgsl): A = w read as [M = Cin,
// K = Cout·TH·TW], B = dy gathered as [K, N = B·U·V], with no im2col buffer. Grid: tiles of N
// on x, tiles of M on y, the phases on z (times the wraps of x past 65,535 tiles).
//
// Joined after prelude_conv2d.wgsl and prelude_conv2d_input_grad.wgsl (params, bindings,
// phases, store_row) and before body_gemm_tile.wgsl, body_gemm_tiled.wgsl or
// body_gemm_narrow.wgsl (the entry point and tile loop of the 64×64 portable, the 128×128
// tiled or the 16×256 narrow variant, which call the functions below).

// One GEMM (z = 0) per phase, summed over the phase's whole K.
fn place_tile(tile: vec3<u32>, grid: vec3<u32>) -> Tile {
    let entered = enter_phase(tile.z);
    let n0 = (tile.x + (tile.z / phase_count()) * grid.x) * TILE;
    return Tile(n0, vec2<u32>(0u, 1u), vec2<u32>(0u, phase_reduction(entered)), 0u);
}

// The tap (co, kh, kw) of the phase's reduction index k = (co, a, c), and the output row and
// column it reads for the phase's first pixel: (co, kh, kw, oh_first − a, ow_first − c).
fn phase_tap(co: u32, a: u32, c: u32) -> array<u32, 5> {
    return array<u32, 5>(
        co,
        phase.kh_first + a * params.stride_h,
        phase.kw_first + c * params.stride_w,
        phase.oh_first - a,
        phase.ow_first - c,
    );
}

// A[ci, k] = w[co, ci, kh, kw] for k = (co, a, c), zero outside.
fn load_a(z: u32, ci: u32, k: u32) -> f32 {
    let taps = phase.taps_h * phase.taps_w;
    if ci >= params.in_channels || k >= phase_reduction(phase) {
        return 0.0;
    }
    let tap = phase_tap(k / taps, (k % taps) / phase.taps_w, k % phase.taps_w);
    return w[((tap[0] * params.in_channels + ci) * params.kernel_h + tap[1]) * params.kernel_w + tap[2]];
}

// B[k, n] = dy[b, co, oh, ow] for k = (co, a, c) and n = (b, u, v): the output pixel that tap
// (a, c) of the phase's pixel (u, v) reaches; zero where it is out of range, and outside.
fn load_b(z: u32, k: u32, n: u32) -> f32 {
    let taps = phase.taps_h * phase.taps_w;
    let phase_pixels = phase.rows * phase.cols;
    if k >= phase_reduction(phase) || n >= phase_columns(phase) {
        return 0.0;
    }
    let tap = phase_tap(k / taps, (k % taps) / phase.taps_w, k % phase.taps_w);
    let in_phase = n % phase_pixels;
    // Unsigned wrap-around makes negative coordinates compare as out of range.
    let oh = tap[3] + in_phase / phase.cols;
    let ow = tap[4] + in_phase % phase.cols;
    if oh >= params.out_height || ow >= params.out_width {
        return 0.0;
    }
    return dy[(((n / phase_pixels) * params.out_channels + tap[0]) * params.out_height + oh) * params.out_width + ow];
}

// The staging hooks of the tiled variant (body_gemm_tiled.wgsl; the other bodies do not call
// them). w lies along k (the taps of one (co, ci) are adjacent); dy along the phase's pixels. An
// invocation stages the same 4 rows (input channels) of A and 4 columns (pixels of the phase)
// of B at k = (co, a, c) rising by SLICE: each walks its tap forward with no division, and B
// decodes its pixels on its first call only.
fn a_along_k() -> bool {
    return true;
}

fn b_along_k() -> bool {
    return false;
}

// The gathers read value by value.
fn a_quads() -> bool {
    return false;
}

fn b_quads() -> bool {
    return false;
}

var<private> a_walk: Walk = NOT_WALKED;
var<private> b_walk: Walk = NOT_WALKED;
var<private> pixel_base: vec4<u32>; // offset of dy[b, 0, 0, 0] per pixel; OUTSIDE past N
var<private> pixel_h: vec4<u32>; // u per pixel
var<private> pixel_w: vec4<u32>; // v per pixel

// A: w[co, ci, kh, kw] of input channels ci + spread.x·{0..3} at tap k.
fn stage_a(z: u32, ci: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    var values = vec4<f32>(0.0);
    if k >= phase_reduction(phase) {
        return values;
    }
    let walked = walk_to(&a_walk, k, vec2<u32>(phase.taps_h, phase.taps_w));
    let tap = phase_tap(walked.x, walked.y, walked.z);
    let window = params.kernel_h * params.kernel_w;
    let at = tap[1] * params.kernel_w + tap[2];
    for (var j = 0u; j < 4u; j++) {
        let channel = ci + spread.x * j;
        if channel < params.in_channels {
            values[j] = w[(tap[0] * params.in_channels + channel) * window + at];
        }
    }
    return values;
}

// B: dy at the output pixel that tap k of pixels n + spread.x·{0..3} of the phase reaches, zero
// where it is out of range.
fn stage_b(z: u32, n: u32, k: u32, spread: vec2<u32>) -> vec4<f32> {
    var values = vec4<f32>(0.0);
    if k >= phase_reduction(phase) {
        return values;
    }
    if b_walk.k == OUTSIDE {
        let phase_pixels = phase.rows * phase.cols;
        let dy_image = params.out_channels * params.out_height * params.out_width;
        for (var j = 0u; j < 4u; j++) {
            let pixel = n + spread.x * j;
            let in_phase = pixel % phase_pixels;
            pixel_base[j] = select(OUTSIDE, (pixel / phase_pixels) * dy_image, pixel < phase_columns(phase));
            pixel_h[j] = in_phase / phase.cols;
            pixel_w[j] = in_phase % phase.cols;
        }
    }
    let walked = walk_to(&b_walk, k, vec2<u32>(phase.taps_h, phase.taps_w));
    let tap = phase_tap(walked.x, walked.y, walked.z);
    let channel = tap[0] * params.out_height * params.out_width;
    for (var j = 0u; j < 4u; j++) {
        // Unsigned wrap-around makes negative coordinates compare as out of range.
        let oh = tap[3] + pixel_h[j];
        let ow = tap[4] + pixel_w[j];
        if pixel_base[j] != OUTSIDE && oh < params.out_height && ow < params.out_width {
            values[j] = dy[pixel_base[j] + channel + oh * params.out_width + ow];
        }
    }
    return values;
}
