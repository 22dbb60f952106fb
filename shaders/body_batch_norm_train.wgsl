// The training forward of the batch-norm kernels over x[N, C, S] (NCHW with S = H·W
// flattened): the batch statistics, then each normalized value v = γ · (x − mean) · invstd + β
// handed to the kernel's store_output(j, v), and the saved statistics (see
// batch_norm_train_forward.wgsl for the maths).
//
// A channel of many values runs in parts (params.parts > 1, see prelude_batch_norm.wgsl): phase
// 0 keeps each part's (count, mean, M2) in saved, phase 1 merges the channel's in order and
// writes the part's output; the first part saves the statistics.
//
// The kernel joined before this file supplies the bindings x, gamma, beta, saved and
//   store_output(j: u32, v: f32)   writes element j's output from its normalized value v
// and is joined after prelude_batch_norm.wgsl (Params, offset, span_of, partial_at).

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
    let span = span_of(workgroup.x + workgroup.y * grid.x, lane);
    let c = span.c;
    let in_range = c < params.channels;
    let count = params.batch * params.spatial;

    if params.phase == 1u {
        // The channel's (count, mean, M2) from its parts', merged in order by lane 0 with
        // Chan's formula (lanes is 256 here: the channel's lanes start at 0).
        if lane == 0u && in_range {
            var n = 0.0;
            var mean = 0.0;
            var m2 = 0.0;
            for (var part = 0u; part < params.parts; part++) {
                let nb = saved[partial_at(c, part, 0u)];
                let total = n + nb;
                let delta = saved[partial_at(c, part, 1u)] - mean;
                let share = nb / total;
                mean += delta * share;
                m2 += saved[partial_at(c, part, 2u)] + delta * delta * n * share;
                n = total;
            }
            part_count[0] = n;
            part_mean[0] = mean;
            part_m2[0] = m2;
        }
        workgroupBarrier();
    } else {
        var seen = 0.0;
        var mean = 0.0;
        var m2 = 0.0;
        if in_range {
            for (var i = span.begin + sub; i < span.end; i += lanes) {
                let v = f32(x[offset(c, i)]);
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
        // Phase 0 of several parts: the part's results, for phase 1.
        if params.parts > 1u {
            if sub == 0u && in_range {
                saved[partial_at(c, span.part, 0u)] = part_count[first];
                saved[partial_at(c, span.part, 1u)] = part_mean[first];
                saved[partial_at(c, span.part, 2u)] = part_m2[first];
            }
            return;
        }
    }
    if !in_range {
        return;
    }
    let batch_mean = part_mean[first];
    let variance = part_m2[first] / f32(count);
    let invstd = 1.0 / sqrt(variance + params.eps);

    let scale = gamma[c] * invstd;
    let shift = beta[c];
    for (var i = span.begin + sub; i < span.end; i += lanes) {
        let j = offset(c, i);
        store_output(j, (f32(x[j]) - batch_mean) * scale + shift);
    }

    if sub == 0u && span.part == 0u {
        saved[c] = batch_mean;
        saved[params.channels + c] = invstd;
        let channels = params.channels;
        switch params.step_stats {
            case 0u: {
                saved[2u * channels + c] = f32(count);
                saved[3u * channels + c] = batch_mean;
                saved[4u * channels + c] = part_m2[first];
            }
            case 1u: {
                let na = saved[2u * channels + c];
                let nb = f32(count);
                let n = na + nb;
                let delta = batch_mean - saved[3u * channels + c];
                let share = nb / n;
                saved[2u * channels + c] = n;
                saved[3u * channels + c] += delta * share;
                saved[4u * channels + c] += part_m2[first] + delta * delta * na * share;
            }
            // A rerun of the forward (recomputation) leaves the step's statistics alone.
            default: {}
        }
    }
}
