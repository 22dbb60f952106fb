// Batch normalization, training backward, over x[N, C, S] (NCHW, S = H·W), M = N·S, optionally
// through the ReLU that followed it in the forward pass.
//
// Reads the forward input x and the statistics saved by the training forward, saved[c] = mean
// and saved[C + c] = invstd, and recomputes xhat = (x − mean) · invstd. With `relu`, dy is the
// gradient of the ReLU's output and is first masked where the recomputed pre-activation
// γ · xhat + β was not positive (the forward computed it with the same operations):
//   g = dy · [γ · xhat + β > 0]     (g = dy without `relu`)
// `lanes` invocations per channel, 256 / lanes channels per workgroup (as in the training
// forward; 2-D grid), with two fixed tree reductions in workgroup memory (deterministic):
//   dbeta[c]  = Σ g
//   dgamma[c] = Σ g · xhat
//   dx        = γ · invstd / M · (M · g − Σ g − xhat · Σ g · xhat)
// dgamma and dbeta are overwritten, or added to when `accumulate` is 1 (gradient accumulation
// over micro-batches); dx is always overwritten.
//
// Joined after prelude_batch_norm.wgsl (Params, offset) and before
// body_batch_norm_backward.wgsl (the entry point, which calls the hooks below).

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<act>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;

// The gradient reaching the normalization: dy, masked by the fused ReLU where there is one.
fn incoming(j: u32, mean: f32, scale: f32, shift: f32) -> f32 {
    let g = dy[j];
    if params.relu == 1u && (f32(x[j]) - mean) * scale + shift <= 0.0 {
        return 0.0;
    }
    return g;
}

// Nothing to keep: dy is read as it is.
fn keep_incoming(j: u32, g: f32) {}
