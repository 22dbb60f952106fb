// The end of a residual block in one kernel, training forward: batch norm of x[N, C, S]
// (NCHW, S = H·W) with the batch statistics, plus the shortcut s, then ReLU:
//   y = max(γ · (x − mean) · invstd + β + s, 0)
// The statistics and saved values are those of batch_norm_train_forward.wgsl; neither the
// normalized tensor nor the sum is stored.
//
// Joined after prelude_batch_norm.wgsl (Params, offset) and before
// body_batch_norm_train.wgsl (the entry point, which calls store_output below).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;
@group(0) @binding(6) var<storage, read> shortcut: array<act>;

fn store_output(j: u32, v: f32) {
    y[j] = act(max(v + f32(shortcut[j]), 0.0));
}
