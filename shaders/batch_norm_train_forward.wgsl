// Batch normalization, training forward, over x[N, C, S] (NCHW with S = H·W flattened),
// optionally fused with the ReLU that follows it.
//
// `lanes` invocations per channel c (a power of two up to 256, about 32 of the channel's
// M = N·S values each), so that a workgroup of 256 handles 256 / lanes channels at once: on
// late stages of small images a channel has a few dozen values, and a workgroup's cost is in
// its barriers more than in its values. Workgroups are numbered id.x + id.y · num_workgroups.x
// (more than 65,535 fit a 2-D grid). The statistics take one pass over the channel's values:
// each lane keeps a running (count, mean, M2 = Σ (x − mean)²) by
// Welford's update over its values, then the channel's lanes merge in a fixed tree (no
// atomics, the same result every run) with Chan's formula for two parts a and b:
//   n = na + nb,  δ = mean_b − mean_a,  mean = mean_a + δ · nb / n,
//   M2 = M2_a + M2_b + δ² · na · nb / n
// so var = M2 / M (biased). A second pass writes
//   y = γ · (x − mean) · invstd + β,   invstd = 1 / sqrt(var + eps),   y = max(y, 0) with `relu`
// and lane 0 saves saved[c] = mean and saved[C + c] = invstd for the backward pass, and the
// step's statistics: the first (or only) micro-batch (step_stats = 0) writes (count, mean, M2)
// to saved[2C + c], saved[3C + c], saved[4C + c], and each later one (step_stats = 1) merges its
// own into them with Chan's formula above; a rerun of the forward (step_stats = 2, recomputation)
// leaves them. batch_norm_running_update.wgsl updates the running
// statistics from them once per step, after the backward, where the step was finite.
//
// Joined after prelude_batch_norm.wgsl (Params, offset) and before
// body_batch_norm_train.wgsl (the entry point, which calls store_output below).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;

// y = v, or max(v, 0) with the ReLU fused in.
fn store_output(j: u32, v: f32) {
    y[j] = act(select(v, max(v, 0.0), params.relu == 1u));
}
