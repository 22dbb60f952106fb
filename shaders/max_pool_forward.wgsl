// Max pool forward, NCHW: x[planes, in_h, in_w] -> y[planes, out_h, out_w] with a square
// window of `kernel`, stride `stride` and padding `pad` on every side (padding counts as
// -infinity, so it is never selected), where planes = N*C and
// out = floor((in + 2*pad - kernel) / stride) + 1.
//
// One invocation per output element. It also writes argmax: the flat index h*in_w + w within
// the input plane of the first maximal element in row-major window order (as PyTorch; a NaN
// is taken as the maximum, the last one in window order if there are several).
// The launcher guarantees pad <= kernel / 2, so every window holds at least one real element.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    let out_plane = params.out_h * params.out_w;
    if i >= params.planes * out_plane {
        return;
    }
    let plane = i / out_plane;
    let rest = i - plane * out_plane;
    let oh = rest / params.out_w;
    let ow = rest - oh * params.out_w;

    // The window's rows [h_start, h_end) and columns [w_start, w_end), clipped to the input.
    let h0 = i32(oh * params.stride) - i32(params.pad);
    let w0 = i32(ow * params.stride) - i32(params.pad);
    let h_start = u32(max(h0, 0));
    let w_start = u32(max(w0, 0));
    let h_end = u32(min(h0 + i32(params.kernel), i32(params.in_h)));
    let w_end = u32(min(w0 + i32(params.kernel), i32(params.in_w)));

    let base = plane * params.in_h * params.in_w;
    var best_index = h_start * params.in_w + w_start;
    var best = x[base + best_index];
    for (var h = h_start; h < h_end; h++) {
        for (var w = w_start; w < w_end; w++) {
            let index = h * params.in_w + w;
            let v = x[base + index];
            if v > best || v != v {
                best = v;
                best_index = index;
            }
        }
    }
    y[i] = best;
    argmax[i] = best_index;
}
