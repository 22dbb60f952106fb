// Element-wise add: out[i] = a[i] + b[i] over flat tensors of `len` elements.
//
// This is the residual add of a block (main branch + shortcut). Its backward needs no kernel:
// the gradient of `out` flows unchanged to both inputs. Where a tensor receives gradient from
// two paths (the input of a block feeds both the main branch and the identity shortcut), the
// two gradients are summed with this same kernel. `out` must be a third buffer, distinct from
// `a` and `b`.

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if i >= params.len {
        return;
    }
    out[i] = a[i] + b[i];
}
