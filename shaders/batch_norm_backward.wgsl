// Batch normalization, training backward, over x[N, C, S] (NCHW, S = H·W), M = N·S.
//
// Reads the forward input x and the mean[c] and invstd[c] saved by the training forward, and
// recomputes xhat = (x − mean) · invstd. One workgroup per channel (2-D grid) with two fixed
// tree reductions in workgroup memory (deterministic):
//   dbeta[c]  = Σ dy
//   dgamma[c] = Σ dy · xhat
//   dx        = γ · invstd / M · (M · dy − Σ dy − xhat · Σ dy · xhat)
// dgamma and dbeta are overwritten, or added to when `accumulate` is 1 (gradient accumulation
// over micro-batches); dx is always overwritten.

struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    momentum: f32,
    eps: f32,
    accumulate: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> save_mean: array<f32>;
@group(0) @binding(5) var<storage, read> save_invstd: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;

const WORKGROUP: u32 = 256u;

var<workgroup> partial_dy: array<f32, 256>;
var<workgroup> partial_dy_xhat: array<f32, 256>;

// Offset in x of the channel's i-th element (i over n, then the spatial position).
fn offset(c: u32, i: u32) -> u32 {
    let n = i / params.spatial;
    let p = i - n * params.spatial;
    return (n * params.channels + c) * params.spatial + p;
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
    let mean = save_mean[c];
    let invstd = save_invstd[c];

    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    for (var i = lane; i < count; i += WORKGROUP) {
        let j = offset(c, i);
        let g = dy[j];
        sum_dy += g;
        sum_dy_xhat += g * ((x[j] - mean) * invstd);
    }
    partial_dy[lane] = sum_dy;
    partial_dy_xhat[lane] = sum_dy_xhat;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lane < stride {
            partial_dy[lane] += partial_dy[lane + stride];
            partial_dy_xhat[lane] += partial_dy_xhat[lane + stride];
        }
        workgroupBarrier();
    }
    let total_dy = partial_dy[0];
    let total_dy_xhat = partial_dy_xhat[0];

    if lane == 0u {
        let keep = select(0.0, 1.0, params.accumulate != 0u);
        dgamma[c] = keep * dgamma[c] + total_dy_xhat;
        dbeta[c] = keep * dbeta[c] + total_dy;
    }

    let mean_dy = total_dy / f32(count);
    let mean_dy_xhat = total_dy_xhat / f32(count);
    let scale = gamma[c] * invstd;
    for (var i = lane; i < count; i += WORKGROUP) {
        let j = offset(c, i);
        let xhat = (x[j] - mean) * invstd;
        dx[j] = scale * (dy[j] - mean_dy - xhat * mean_dy_xhat);
    }
}
