// The end of a residual block in one kernel, backward: from dy, the gradient of
// y = max(bn(x) + s, 0), the gradient reaching both the batch norm and the shortcut is
//   g = dy · [y > 0]
// It is written over dy in place (the shortcut's gradient shares dy's buffer), and the batch
// norm's backward runs on it as in batch_norm_backward.wgsl:
//   dβ = Σ g,  dγ = Σ g · xhat,  dx = γ · invstd / M · (M · g − Σ g − xhat · Σ g · xhat)
// Each element of dy is read and written by the same invocation, in both passes.
//
// Joined after prelude_batch_norm.wgsl (Params, offset) and before
// body_batch_norm_backward.wgsl (the entry point, which calls the hooks below).

@group(0) @binding(1) var<storage, read_write> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<act>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(9) var<storage, read> y: array<act>;

// g = dy · [y > 0], selected rather than multiplied (0 · NaN is NaN).
fn incoming(j: u32, mean: f32, scale: f32, shift: f32) -> f32 {
    return select(0.0, dy[j], f32(y[j]) > 0.0);
}

// The shortcut's gradient is g: kept in dy's place.
fn keep_incoming(j: u32, g: f32) {
    dy[j] = g;
}
