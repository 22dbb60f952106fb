// Batch normalization, inference forward, element-wise over x[N, C, S] (NCHW, S = H·W):
//   y = γ[c] · (x − running_mean[c]) / sqrt(running_var[c] + eps) + β[c],  y = max(y, 0) with `relu`
// One invocation per element, 256 per workgroup, on a 2-D grid of workgroups.
//
// Declared in prelude_batch_norm.wgsl (Params, offset), joined before this file when loaded.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let i = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if i >= params.batch * params.channels * params.spatial {
        return;
    }
    let c = (i / params.spatial) % params.channels;
    let invstd = 1.0 / sqrt(running_var[c] + params.eps);
    let v = (x[i] - running_mean[c]) * (gamma[c] * invstd) + beta[c];
    y[i] = select(v, max(v, 0.0), params.relu == 1u);
}
