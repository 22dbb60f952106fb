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
// own into them with Chan's formula above. batch_norm_running_update.wgsl updates the running
// statistics from them once per step, after the backward, where the step was finite.
//
// Joined after prelude_act.wgsl and prelude_batch_norm.wgsl (act, Params, offset).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<act>;
@group(0) @binding(5) var<storage, read_write> saved: array<f32>;

const WORKGROUP: u32 = 256u;

// Per lane: values seen, their mean and their sum of squared deviations.
var<workgroup> part_count: array<f32, 256>;
var<workgroup> part_mean: array<f32, 256>;
var<workgroup> part_m2: array<f32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let lanes = params.lanes;
    let sub = lane % lanes;
    let first = lane - sub;
    let c = (workgroup.x + workgroup.y * grid.x) * (WORKGROUP / lanes) + lane / lanes;
    let in_range = c < params.channels;
    let count = params.batch * params.spatial;

    var seen = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    if in_range {
        for (var i = sub; i < count; i += lanes) {
            let v = x[offset(c, i)];
            seen += 1.0;
            let d = v - mean;
            mean += d / seen;
            m2 += d * (v - mean);
        }
    }
    part_count[lane] = seen;
    part_mean[lane] = mean;
    part_m2[lane] = m2;
    workgroupBarrier();
    for (var stride = lanes / 2u; stride > 0u; stride = stride / 2u) {
        if sub < stride {
            let na = part_count[lane];
            let nb = part_count[lane + stride];
            let n = na + nb;
            if nb > 0.0 {
                let delta = part_mean[lane + stride] - part_mean[lane];
                let share = nb / n;
                part_mean[lane] += delta * share;
                part_m2[lane] += part_m2[lane + stride] + delta * delta * na * share;
                part_count[lane] = n;
            }
        }
        workgroupBarrier();
    }
    if !in_range {
        return;
    }
    let batch_mean = part_mean[first];
    let variance = part_m2[first] / f32(count);
    let invstd = 1.0 / sqrt(variance + params.eps);

    let scale = gamma[c] * invstd;
    let shift = beta[c];
    for (var i = sub; i < count; i += lanes) {
        let j = offset(c, i);
        let v = (x[j] - batch_mean) * scale + shift;
        y[j] = select(v, max(v, 0.0), params.relu == 1u);
    }

    if sub == 0u {
        saved[c] = batch_mean;
        saved[params.channels + c] = invstd;
        let channels = params.channels;
        switch params.step_stats {
            case 0u: {
                saved[2u * channels + c] = f32(count);
                saved[3u * channels + c] = batch_mean;
                saved[4u * channels + c] = part_m2[first];
            }
            default: {
                let na = saved[2u * channels + c];
                let nb = f32(count);
                let n = na + nb;
                let delta = batch_mean - saved[3u * channels + c];
                let share = nb / n;
                saved[2u * channels + c] = n;
                saved[3u * channels + c] += delta * share;
                saved[4u * channels + c] += part_m2[first] + delta * delta * na * share;
            }
        }
    }
}
