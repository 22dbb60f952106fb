// ReLU backward: dx[i] = dy[i] if y[i] > 0 else 0, where y is the forward output
// (y > 0 exactly where x > 0), over a flat tensor of `len` elements.
//
// Joined after prelude_len.wgsl (Params, elements) and before
// body_flat.wgsl (the entry point, which calls element below).

@group(0) @binding(1) var<storage, read> y: array<act>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

fn element(i: u32) {
    dx[i] = select(0.0, dy[i], f32(y[i]) > 0.0);
}
