// Batch normalization, training forward, over x[N, C, S] (NCHW with S = H·W flattened).
//
// One workgroup per channel c (linear workgroup index id.x + id.y · num_workgroups.x, so that
// more than 65,535 channels fit a 2-D grid). The workgroup loops over the channel's
// M = N·S elements three times, reducing in workgroup memory with a fixed tree (no atomics,
// the same result every run):
//   pass 1: mean  = Σ x / M
//   pass 2: var   = Σ (x − mean)² / M              (biased; two passes for stability)
//   pass 3: y     = γ · (x − mean) · invstd + β,   invstd = 1 / sqrt(var + eps)
// and saves mean[c] and invstd[c] for the backward pass, and updates the running statistics
//   running_mean = (1 − m) · running_mean + m · mean
//   running_var  = (1 − m) · running_var  + m · var · M / (M − 1)   (var itself when M = 1)

struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    momentum: f32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> save_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> save_invstd: array<f32>;
@group(0) @binding(7) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(8) var<storage, read_write> running_var: array<f32>;

const WORKGROUP: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

// Offset in x of the channel's i-th element (i over n, then the spatial position).
fn offset(c: u32, i: u32) -> u32 {
    let n = i / params.spatial;
    let p = i - n * params.spatial;
    return (n * params.channels + c) * params.spatial + p;
}

// Tree-sums partial[0..256] and returns the total to every lane; every lane must call it,
// after writing its own partial[lane]. On return, partial may be written again.
fn workgroup_sum(lane: u32) -> f32 {
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lane < stride {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let c = workgroup.x + workgroup.y * grid.x;
    if c >= params.channels {
        return;
    }
    let count = params.batch * params.spatial;

    var sum = 0.0;
    for (var i = lane; i < count; i += WORKGROUP) {
        sum += x[offset(c, i)];
    }
    partial[lane] = sum;
    let mean = workgroup_sum(lane) / f32(count);

    var squares = 0.0;
    for (var i = lane; i < count; i += WORKGROUP) {
        let d = x[offset(c, i)] - mean;
        squares += d * d;
    }
    partial[lane] = squares;
    let variance = workgroup_sum(lane) / f32(count);
    let invstd = 1.0 / sqrt(variance + params.eps);

    let scale = gamma[c] * invstd;
    let shift = beta[c];
    for (var i = lane; i < count; i += WORKGROUP) {
        let j = offset(c, i);
        y[j] = (x[j] - mean) * scale + shift;
    }

    if lane == 0u {
        save_mean[c] = mean;
        save_invstd[c] = invstd;
        var unbiased = variance;
        if count > 1u {
            unbiased = variance * (f32(count) / f32(count - 1u));
        }
        let m = params.momentum;
        running_mean[c] = (1.0 - m) * running_mean[c] + m * mean;
        running_var[c] = (1.0 - m) * running_var[c] + m * unbiased;
    }
}
