// The backward of the batch-norm kernels over x[N, C, S] (NCHW, S = H·W), from the gradient
// g reaching the normalization (see batch_norm_backward.wgsl for the maths): two fixed tree
// reductions per channel, dγ and dβ (overwritten or accumulated), then dx.
//
// A channel of many values runs in parts (params.parts > 1, see prelude_batch_norm.wgsl): phase
// 0 keeps each part's two sums in saved (read_write here), phase 1 adds the channel's in order
// and writes the part's dx; the first part writes dγ and dβ.
//
// The kernel joined before this file supplies the bindings x, gamma, beta, saved, dx, dgamma,
// dbeta and
//   incoming(j, mean, scale, shift) -> f32   element j's g (scale = γ · invstd, shift = β)
//   keep_incoming(j, g)                      called once per element in the first pass
// and is joined after prelude_batch_norm.wgsl (Params, offset, span_of, partial_at).

var<workgroup> partial_dy: array<f32, 256>;
var<workgroup> partial_dy_xhat: array<f32, 256>;

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
    let channel = min(c, params.channels - 1u);
    let mean = saved[channel];
    let invstd = saved[params.channels + channel];
    let scale = gamma[channel] * invstd;
    let shift = beta[channel];

    if params.phase == 1u {
        // The channel's sums from its parts', added in order by lane 0 (lanes is 256 here).
        if lane == 0u && in_range {
            var total_dy = 0.0;
            var total_dy_xhat = 0.0;
            for (var part = 0u; part < params.parts; part++) {
                total_dy += saved[partial_at(c, part, 0u)];
                total_dy_xhat += saved[partial_at(c, part, 1u)];
            }
            partial_dy[0] = total_dy;
            partial_dy_xhat[0] = total_dy_xhat;
        }
        workgroupBarrier();
    } else {
        var sum_dy = 0.0;
        var sum_dy_xhat = 0.0;
        if in_range {
            for (var i = span.begin + sub; i < span.end; i += lanes) {
                let j = offset(c, i);
                let g = incoming(j, mean, scale, shift);
                keep_incoming(j, g);
                sum_dy += g;
                sum_dy_xhat += g * ((f32(x[j]) - mean) * invstd);
            }
        }
        partial_dy[lane] = sum_dy;
        partial_dy_xhat[lane] = sum_dy_xhat;
        workgroupBarrier();
        for (var stride = lanes / 2u; stride > 0u; stride = stride / 2u) {
            if sub < stride {
                partial_dy[lane] += partial_dy[lane + stride];
                partial_dy_xhat[lane] += partial_dy_xhat[lane + stride];
            }
            workgroupBarrier();
        }
        // Phase 0 of several parts: the part's sums, for phase 1.
        if params.parts > 1u {
            if sub == 0u && in_range {
                saved[partial_at(c, span.part, 0u)] = partial_dy[first];
                saved[partial_at(c, span.part, 1u)] = partial_dy_xhat[first];
            }
            return;
        }
    }
    if !in_range {
        return;
    }
    let total_dy = partial_dy[first];
    let total_dy_xhat = partial_dy_xhat[first];

    // Overwritten by a select, not by a multiply by zero: 0 · NaN is NaN, so a gradient that
    // was not finite in an earlier step would poison every later one.
    if sub == 0u && span.part == 0u {
        let accumulate = params.accumulate != 0u;
        dgamma[c] = select(total_dy_xhat, dgamma[c] + total_dy_xhat, accumulate);
        dbeta[c] = select(total_dy, dbeta[c] + total_dy, accumulate);
    }

    let mean_dy = total_dy / f32(count);
    let mean_dy_xhat = total_dy_xhat / f32(count);
    for (var i = span.begin + sub; i < span.end; i += lanes) {
        let j = offset(c, i);
        let xhat = (f32(x[j]) - mean) * invstd;
        dx[j] = scale * (incoming(j, mean, scale, shift) - mean_dy - xhat * mean_dy_xhat);
    }
}
