// 2-D convolution weight gradient as an implicit GEMM, split-K variant: partial sums.
//   dw[co, ci, kh, kw] = Σ_{b, oh, ow} dy[b, co, oh, ow] · x[b, ci, oh·sh − ph + kh, ow·sw − pw + kw]
// dy [B, Cout, OH, OW], x [B, Cin, H, W], dw [Cout, Cin, KH, KW]; padding reads zeros.
// GEMM view: A = dy read as [M = Cout, K = B·OH·OW], B = x gathered as [K, N = Cin·KH·KW].
// The reduction over K = B·OH·OW is cut into chunks of `k_chunk`; z slice s of the grid sums
// k in [s·k_chunk, (s + 1)·k_chunk) into partial[s, co, n], and split_k_sum.wgsl then adds the
// slices in order into dw. No atomics: the same result run after run. Grid: tiles of N on x,
// tiles of M on y, chunks on z.
// A workgroup of 16×16 invocations computes a 64×64 tile of the GEMM; each invocation a 4×4
// block. Tiles of A (64×16) and B (16×64) are gathered into workgroup memory 16 values of k
// at a time (no im2col buffer).
//
// Declared in prelude_conv2d.wgsl (Params), joined before this file when loaded.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

fn load_a(co: u32, k: u32) -> f32 {
    let out_pixels = params.out_height * params.out_width;
    if co >= params.out_channels || k >= params.batch * out_pixels {
        return 0.0;
    }
    return dy[((k / out_pixels) * params.out_channels + co) * out_pixels + k % out_pixels];
}

fn load_b(k: u32, n: u32) -> f32 {
    let taps = params.kernel_h * params.kernel_w;
    let out_pixels = params.out_height * params.out_width;
    if k >= params.batch * out_pixels || n >= params.in_channels * taps {
        return 0.0;
    }
    let ci = n / taps;
    let kh = (n % taps) / params.kernel_w;
    let kw = n % params.kernel_w;
    let image = k / out_pixels;
    let pixel = k % out_pixels;
    // Unsigned wrap-around makes negative coordinates (padding) compare as out of range.
    let ih = (pixel / params.out_width) * params.stride_h + kh - params.pad_h;
    let iw = (pixel % params.out_width) * params.stride_w + kw - params.pad_w;
    if ih >= params.in_height || iw >= params.in_width {
        return 0.0;
    }
    return x[((image * params.in_channels + ci) * params.in_height + ih) * params.in_width + iw];
}

fn store(chunk: u32, co: u32, n: u32, sum: f32) {
    let n_total = params.in_channels * params.kernel_h * params.kernel_w;
    if co >= params.out_channels || n >= n_total {
        return;
    }
    partial[(chunk * params.out_channels + co) * n_total + n] = sum;
}

// a_tile[kk * 64 + mm] = A[m0 + mm, k0 + kk]; b_tile[kk * 64 + nn] = B[k0 + kk, n0 + nn].
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let m0 = tile.y * 64u;
    let n0 = tile.x * 64u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k_total = params.batch * params.out_height * params.out_width;
    let k_first = tile.z * params.k_chunk;
    let k_end = min(k_first + params.k_chunk, k_total);
    for (var k0 = k_first; k0 < k_end; k0 += 16u) {
        for (var i = 0u; i < 4u; i++) {
            let e = index + i * 256u;
            // Past the chunk's end the next chunk begins: read as zeros here.
            let k = select(k_total, k0 + e / 64u, k0 + e / 64u < k_end);
            a_tile[e] = load_a(m0 + e % 64u, k);
            b_tile[e] = load_b(k, n0 + e % 64u);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            let ra = kk * 64u + local.y * 4u;
            let rb = kk * 64u + local.x * 4u;
            let av = vec4<f32>(a_tile[ra], a_tile[ra + 1u], a_tile[ra + 2u], a_tile[ra + 3u]);
            let bv = vec4<f32>(b_tile[rb], b_tile[rb + 1u], b_tile[rb + 2u], b_tile[rb + 3u]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }
    let row = m0 + local.y * 4u;
    let column = n0 + local.x * 4u;
    for (var j = 0u; j < 4u; j++) {
        store(tile.z, row, column + j, acc0[j]);
        store(tile.z, row + 1u, column + j, acc1[j]);
        store(tile.z, row + 2u, column + j, acc2[j]);
        store(tile.z, row + 3u, column + j, acc3[j]);
    }
}
