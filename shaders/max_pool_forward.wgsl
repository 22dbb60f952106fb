// Max pool forward (see prelude_max_pool.wgsl): y[p, oh, ow] = the maximum of x over the
// window of (oh, ow); padding counts as −infinity, so it is never selected.
//
// One invocation per output element. It also writes argmax: the flat index h*in_w + w within
// the input plane of the first maximal element in row-major window order (as PyTorch; a NaN
// is taken as the maximum, the last one in window order if there are several).
// The launcher guarantees pad <= kernel / 2, so every window holds at least one real element.
//
// Joined after prelude_planes.wgsl and prelude_max_pool.wgsl
// (plane_position, Params) and before body_flat.wgsl (the entry point, which calls elements
// and element below).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;

fn elements() -> u32 {
    return params.planes * (params.out_h * params.out_w);
}

fn element(i: u32) {
    let position = plane_position(i, params.out_h, params.out_w);
    let plane = position.x;
    let oh = position.y;
    let ow = position.z;

    // The window's rows [h_start, h_end) and columns [w_start, w_end), clipped to the input.
    let h0 = i32(oh * params.stride) - i32(params.pad);
    let w0 = i32(ow * params.stride) - i32(params.pad);
    let h_start = u32(max(h0, 0));
    let w_start = u32(max(w0, 0));
    let h_end = u32(min(h0 + i32(params.kernel), i32(params.in_h)));
    let w_end = u32(min(w0 + i32(params.kernel), i32(params.in_w)));

    let base = plane * params.in_h * params.in_w;
    var best_index = h_start * params.in_w + w_start;
    var best = f32(x[base + best_index]);
    for (var h = h_start; h < h_end; h++) {
        for (var w = w_start; w < w_end; w++) {
            let index = h * params.in_w + w;
            let v = f32(x[base + index]);
            if v > best || v != v {
                best = v;
                best_index = index;
            }
        }
    }
    y[i] = act(best);
    argmax[i] = best_index;
}
