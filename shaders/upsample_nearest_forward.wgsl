// Nearest upsampling forward, NCHW: x[planes, in_h, in_w] -> y[planes, out_h, out_w] with
// y[p, oh, ow] = x[p, floor(oh*in_h/out_h), floor(ow*in_w/out_w)], computed in exact integer
// arithmetic (PyTorch's mode='nearest' for integer ratios such as 32 -> 224).
//
// One invocation per output element.

struct Params {
    planes: u32,
    in_h: u32,
    in_w: u32,
    out_h: u32,
    out_w: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

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
    let ih = oh * params.in_h / params.out_h;
    let iw = ow * params.in_w / params.out_w;
    y[i] = x[(plane * params.in_h + ih) * params.in_w + iw];
}
