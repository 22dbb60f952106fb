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
// Joined after prelude_act.wgsl and prelude_batch_norm.wgsl (act, Params, offset).

@group(0) @binding(1) var<storage, read> dy: array<act>;
@group(0) @binding(2) var<storage, read> x: array<act>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> beta: array<f32>;
@group(0) @binding(5) var<storage, read> saved: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<act>;
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;

const WORKGROUP: u32 = 256u;

var<workgroup> partial_dy: array<f32, 256>;
var<workgroup> partial_dy_xhat: array<f32, 256>;

// The gradient reaching the normalization: dy, masked by the fused ReLU where there is one.
fn incoming(j: u32, mean: f32, scale: f32, shift: f32) -> f32 {
    let g = dy[j];
    if params.relu == 1u && (x[j] - mean) * scale + shift <= 0.0 {
        return 0.0;
    }
    return g;
}

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
    let channel = min(c, params.channels - 1u);
    let mean = saved[channel];
    let invstd = saved[params.channels + channel];
    let scale = gamma[channel] * invstd;
    let shift = beta[channel];

    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    if in_range {
        for (var i = sub; i < count; i += lanes) {
            let j = offset(c, i);
            let g = incoming(j, mean, scale, shift);
            sum_dy += g;
            sum_dy_xhat += g * ((x[j] - mean) * invstd);
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
    if !in_range {
        return;
    }
    let total_dy = partial_dy[first];
    let total_dy_xhat = partial_dy_xhat[first];

    // Overwritten by a select, not by a multiply by zero: 0 · NaN is NaN, so a gradient that
    // was not finite in an earlier step would poison every later one.
    if sub == 0u {
        let accumulate = params.accumulate != 0u;
        dgamma[c] = select(total_dy_xhat, dgamma[c] + total_dy_xhat, accumulate);
        dbeta[c] = select(total_dy, dbeta[c] + total_dy, accumulate);
    }

    let mean_dy = total_dy / f32(count);
    let mean_dy_xhat = total_dy_xhat / f32(count);
    for (var i = sub; i < count; i += lanes) {
        let j = offset(c, i);
        let xhat = (x[j] - mean) * invstd;
        dx[j] = scale * (incoming(j, mean, scale, shift) - mean_dy - xhat * mean_dy_xhat);
    }
}
