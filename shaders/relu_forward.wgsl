// ReLU forward: y[i] = max(x[i], 0) over a flat tensor of `len` elements.
//
// Joined after prelude_len.wgsl (Params, elements) and before
// body_flat.wgsl (the entry point, which calls element below).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

fn element(i: u32) {
    y[i] = act(max(f32(x[i]), 0.0));
}
