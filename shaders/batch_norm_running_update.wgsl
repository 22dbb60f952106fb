// Batch normalization, the running statistics' update once per training step, after its
// backward. The step's training forwards (one per micro-batch) left the whole batch's
// statistics per channel c in saved [5C] (see batch_norm_train_forward.wgsl): n = saved[2C + c] values, their mean
// saved[3C + c] and M2 = saved[4C + c] = Σ (x − mean)². With var = M2 / n (biased):
//   running_mean = (1 − m) · running_mean + m · mean
//   running_var  = (1 − m) · running_var  + m · M2 / (n − 1)   (var itself when n = 1)
// A step flagged as not finite (status[2] != 0, see ops/finite_check.rs) changes nothing.
// One invocation per channel.
//
// Joined after prelude_batch_norm.wgsl (Params) and before body_flat.wgsl (the entry point,
// which calls elements and element below).

@group(0) @binding(1) var<storage, read> saved: array<f32>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(4) var<storage, read> status: array<u32>;

const STATUS_FLAGS: u32 = 2u;

fn elements() -> u32 {
    return params.channels;
}

fn element(c: u32) {
    if status[STATUS_FLAGS] != 0u {
        return;
    }
    let channels = params.channels;
    let n = saved[2u * channels + c];
    let mean = saved[3u * channels + c];
    let m2 = saved[4u * channels + c];
    var unbiased = m2 / n;
    if n > 1.0 {
        unbiased = m2 / (n - 1.0);
    }
    let m = params.momentum;
    running_mean[c] = (1.0 - m) * running_mean[c] + m * mean;
    running_var[c] = (1.0 - m) * running_var[c] + m * unbiased;
}
