// The end of a residual block in one kernel, inference forward, element-wise over x[N, C, S]
// (NCHW, S = H·W) and the shortcut s:
//   y = max(γ[c] · (x − running_mean[c]) / sqrt(running_var[c] + eps) + β[c] + s, 0)
// One invocation per element.
//
// Joined after prelude_batch_norm.wgsl (Params) and before
// body_flat.wgsl (the entry point, which calls elements and element below).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<act>;
@group(0) @binding(7) var<storage, read> shortcut: array<act>;

fn elements() -> u32 {
    return params.batch * params.channels * params.spatial;
}

fn element(i: u32) {
    let c = (i / params.spatial) % params.channels;
    let invstd = 1.0 / sqrt(running_var[c] + params.eps);
    let v = (f32(x[i]) - running_mean[c]) * (gamma[c] * invstd) + beta[c];
    y[i] = act(max(v + f32(shortcut[i]), 0.0));
}
