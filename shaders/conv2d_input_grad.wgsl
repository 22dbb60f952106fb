// 2-D convolution input gradient as an implicit GEMM, portable variant (no subgroups):
//   dx[b, ci, ih, iw] = Σ_{co, kh, kw} w[co, ci, kh, kw] · dy[b, co, oh, ow]
//   over the (kh, kw) with oh = (ih + ph − kh) / sh and ow = (iw + pw − kw) / sw exact and in range.
// dy [B, Cout, OH, OW], w [Cout, Cin, KH, KW], dx [B, Cin, H, W].
// GEMM view: A = w read as [M = Cin, K = Cout·KH·KW], B = dy gathered as [K, N = B·H·W].
// A workgroup of 16×16 invocations computes a 64×64 tile of the GEMM; each invocation a 4×4
// block. Tiles of A (64×16) and B (16×64) are gathered into workgroup memory 16 values of k
// at a time (no im2col buffer).
//
// Declared in prelude_conv2d.wgsl (Params), joined before this file when loaded.

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

fn load_a(ci: u32, k: u32) -> f32 {
    let taps = params.kernel_h * params.kernel_w;
    if ci >= params.in_channels || k >= params.out_channels * taps {
        return 0.0;
    }
    let co = k / taps;
    return w[(co * params.in_channels + ci) * taps + k % taps];
}

fn load_b(k: u32, n: u32) -> f32 {
    let taps = params.kernel_h * params.kernel_w;
    let plane = params.in_height * params.in_width;
    if k >= params.out_channels * taps || n >= params.batch * plane {
        return 0.0;
    }
    let co = k / taps;
    let kh = (k % taps) / params.kernel_w;
    let kw = k % params.kernel_w;
    let image = n / plane;
    // Unsigned wrap-around makes negative coordinates compare as out of range.
    let th = (n % plane) / params.in_width + params.pad_h - kh;
    let tw = n % params.in_width + params.pad_w - kw;
    let oh = th / params.stride_h;
    let ow = tw / params.stride_w;
    if th % params.stride_h != 0u || tw % params.stride_w != 0u || oh >= params.out_height || ow >= params.out_width {
        return 0.0;
    }
    return dy[((image * params.out_channels + co) * params.out_height + oh) * params.out_width + ow];
}

fn store(ci: u32, n: u32, sum: f32) {
    let plane = params.in_height * params.in_width;
    if ci >= params.in_channels || n >= params.batch * plane {
        return;
    }
    var value = sum;
    let at = ((n / plane) * params.in_channels + ci) * plane + n % plane;
    if params.accumulate == 1u {
        value += dx[at];
    }
    dx[at] = value;
}

// a_tile[kk * 64 + mm] = A[m0 + mm, k0 + kk]; b_tile[kk * 64 + nn] = B[k0 + kk, n0 + nn].
var<workgroup> a_tile: array<f32, 1024>;
var<workgroup> b_tile: array<f32, 1024>;

@compute @workgroup_size(16, 16)
fn main(
    @builtin(workgroup_id) tile: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
    @builtin(local_invocation_index) index: u32,
) {
    let m0 = tile.y * 64u;
    let n0 = (tile.x + tile.z * grid.x) * 64u;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let k_total = params.out_channels * params.kernel_h * params.kernel_w;
    for (var k0 = 0u; k0 < k_total; k0 += 16u) {
        for (var i = 0u; i < 4u; i++) {
            let e = index + i * 256u;
            a_tile[e] = load_a(m0 + e % 64u, k0 + e / 64u);
            b_tile[e] = load_b(k0 + e / 64u, n0 + e % 64u);
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
        store(row, column + j, acc0[j]);
        store(row + 1u, column + j, acc1[j]);
        store(row + 2u, column + j, acc2[j]);
        store(row + 3u, column + j, acc3[j]);
    }
}
