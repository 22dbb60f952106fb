// Element-wise add: out[i] = a[i] + b[i] over flat tensors of `len` elements.
//
// This is the residual add of a block (main branch + shortcut). Its backward needs no kernel:
// the gradient of `out` flows unchanged to both inputs. Where a tensor receives gradient from
// two paths (the input of a block feeds both the main branch and the identity shortcut), the
// two gradients are summed with this same kernel. `out` must be a third buffer, distinct from
// `a` and `b`.
//
// Joined after prelude_len.wgsl (Params, elements) and before
// body_flat.wgsl (the entry point, which calls element below).

@group(0) @binding(1) var<storage, read> a: array<act>;
@group(0) @binding(2) var<storage, read> b: array<act>;
@group(0) @binding(3) var<storage, read_write> out: array<act>;

fn element(i: u32) {
    out[i] = act(f32(a[i]) + f32(b[i]));
}
