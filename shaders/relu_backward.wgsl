// ReLU backward: dx[i] = dy[i] if y[i] > 0 else 0, where y is the forward output
// (y > 0 exactly where x > 0), over a flat tensor of `len` elements.
//
// Joined after prelude_act.wgsl and prelude_len.wgsl (act, Params, elements) and before
// body_flat.wgsl (the entry point, which calls element below).

@group(0) @binding(1) var<storage, read> y: array<act>;
@group(0) @binding(2) var<storage, read> dy: array<act>;
@group(0) @binding(3) var<storage, read_write> dx: array<act>;

fn element(i: u32) {
    dx[i] = select(0.0, dy[i], y[i] > 0.0);
}
