// SGD with momentum and weight decay, PyTorch semantics (no dampening, no Nesterov),
// element-wise over a flat parameter of `len` values, w and v updated in place:
//   g = grad + weight_decay · w
//   v = momentum · v + g
//   w = w − lr · v
// One invocation per 4 consecutive elements (a vec4). Buffers are padded with zeros to whole
// vec4s; the update keeps padding at zero (w = v = grad = 0 gives 0), so the last vec4 needs
// no bounds check of its own.
// A step flagged as not finite (status[2] != 0, see ops/finite_check.rs) changes nothing:
// w and v stay bit-identical to before the step.
//
// Joined before body_flat.wgsl (the entry point, which calls elements and element below).

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

// The vec4s that hold the len values.
fn elements() -> u32 {
    return (params.len + 3u) / 4u;
}

fn element(i: u32) {
    if status[STATUS_FLAGS] != 0u {
        return;
    }
    let weight = w[i];
    let g = grad[i] + params.weight_decay * weight;
    let velocity = params.momentum * v[i] + g;
    v[i] = velocity;
    w[i] = weight - params.lr * velocity;
}
