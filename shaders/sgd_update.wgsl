// SGD with momentum and weight decay, PyTorch semantics (no dampening, no Nesterov),
// element-wise over a flat parameter of `len` values, w and v updated in place:
//   g = grad + weight_decay · w
//   v = momentum · v + g
//   w = w − lr · v
// One invocation per 4 consecutive elements (a vec4), 256 per workgroup, on a 2-D grid of
// workgroups. Buffers are padded with zeros to whole vec4s; the update keeps padding at zero
// (w = v = grad = 0 gives 0), so the last vec4 needs no bounds check of its own.
// A step flagged as not finite (status[2] != 0, see ops/finite_check.rs) changes nothing:
// w and v stay bit-identical to before the step.

struct Params {
    len: u32,
    lr: f32,
    momentum: f32,
    weight_decay: f32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> status: array<u32>;

const STATUS_FLAGS: u32 = 2u;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if i * 4u >= params.len || status[STATUS_FLAGS] != 0u {
        return;
    }
    let weight = w[i];
    let g = grad[i] + params.weight_decay * weight;
    let velocity = params.momentum * v[i] + g;
    v[i] = velocity;
    w[i] = weight - params.lr * velocity;
}
