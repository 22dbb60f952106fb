//! The end of a residual block as one op: batch norm of `x`, plus the shortcut `s`, then ReLU,
//! over NCHW tensors `[N, C, S]` (`S = H·W`; x, s, y, dy, dx all of that shape):
//!
//! - training forward: `y = max(γ·(x − mean)·invstd + β + s, 0)` with the batch statistics,
//!   saved as [`batch_norm::train_forward`] saves them;
//! - inference forward: the same with the running statistics;
//! - backward: `g = dy·[y > 0]` is the gradient of both the shortcut and the batch norm's
//!   output. It is written over `dy` (the shortcut's gradient shares that buffer), and the batch
//!   norm's backward runs on it: `dβ = Σg`, `dγ = Σg·xhat`,
//!   `dx = γ·invstd/M·(M·g − Σg − xhat·Σg·xhat)`.
//!
//! Against batch norm, add and ReLU as three layers, neither the normalized tensor nor the sum
//! is stored, and two element-wise passes forward and one backward are saved. The kernels share
//! the batch norm's bodies, so the arithmetic is the same operations in the same order.

use super::batch_norm::{self, BatchNormParams, BnShape, check_lengths, check_saved, training_launch};
use super::{add, relu};
use crate::gpu::{GpuBuffer, GpuContext, Launch, assert_f32, flat_workgroups, same_precision};
use crate::shaders::Kernel;

pub struct TrainForwardBuffers<'a> {
    pub x: &'a GpuBuffer<f32>,
    pub shortcut: &'a GpuBuffer<f32>,
    pub gamma: &'a GpuBuffer<f32>,
    pub beta: &'a GpuBuffer<f32>,
    pub y: &'a GpuBuffer<f32>,
    pub saved: &'a GpuBuffer<f32>,
}

pub struct InferenceForwardBuffers<'a> {
    pub x: &'a GpuBuffer<f32>,
    pub shortcut: &'a GpuBuffer<f32>,
    pub gamma: &'a GpuBuffer<f32>,
    pub beta: &'a GpuBuffer<f32>,
    pub running_mean: &'a GpuBuffer<f32>,
    pub running_var: &'a GpuBuffer<f32>,
    pub y: &'a GpuBuffer<f32>,
}

pub struct BackwardBuffers<'a> {
    /// The output's gradient, replaced by `g = dy·[y > 0]` (the shortcut's gradient).
    pub dy: &'a GpuBuffer<f32>,
    /// The forward's output.
    pub y: &'a GpuBuffer<f32>,
    pub x: &'a GpuBuffer<f32>,
    pub gamma: &'a GpuBuffer<f32>,
    pub beta: &'a GpuBuffer<f32>,
    pub saved: &'a GpuBuffer<f32>,
    pub dx: &'a GpuBuffer<f32>,
    pub dgamma: &'a GpuBuffer<f32>,
    pub dbeta: &'a GpuBuffer<f32>,
}

pub fn train_forward(
    ctx: &GpuContext,
    shape: BnShape,
    momentum: f32,
    eps: f32,
    step: batch_norm::StepStatistics,
    b: &TrainForwardBuffers,
) -> Launch {
    check_lengths(
        "batch norm + add + ReLU train forward",
        shape,
        &[b.x, b.shortcut, b.y],
        &[b.gamma, b.beta],
    );
    check_saved(shape, b.saved);
    training_launch(
        ctx,
        Kernel::BatchNormAddReluTrainForward.stored(&[same_precision(&[b.x, b.shortcut, b.y])]),
        BatchNormParams {
            step_stats: step as u32,
            ..BatchNormParams::new(shape, momentum, eps)
        },
        &[
            b.x.bind(),
            b.gamma.bind(),
            b.beta.bind(),
            b.y.bind(),
            b.saved.bind(),
            b.shortcut.bind(),
        ],
        shape,
    )
}

pub fn inference_forward(ctx: &GpuContext, shape: BnShape, eps: f32, b: &InferenceForwardBuffers) -> Launch {
    check_lengths(
        "batch norm + add + ReLU inference forward",
        shape,
        &[b.x, b.shortcut, b.y],
        &[b.gamma, b.beta, b.running_mean, b.running_var],
    );
    Launch::linear(
        ctx,
        Kernel::BatchNormAddReluInferenceForward.stored(&[same_precision(&[b.x, b.shortcut, b.y])]),
        &BatchNormParams::new(shape, 0.0, eps),
        &[
            b.x.bind(),
            b.gamma.bind(),
            b.beta.bind(),
            b.running_mean.bind(),
            b.running_var.bind(),
            b.y.bind(),
            b.shortcut.bind(),
        ],
        flat_workgroups(shape.len()),
    )
}

/// dγ and dβ are overwritten, or added to with `accumulate`; dx is overwritten; dy is
/// replaced by the shortcut's gradient.
pub fn backward(ctx: &GpuContext, shape: BnShape, b: &BackwardBuffers, accumulate: bool) -> Launch {
    check_lengths(
        "batch norm + add + ReLU backward",
        shape,
        &[b.dy, b.y, b.x, b.dx],
        &[b.gamma, b.beta, b.dgamma, b.dbeta],
    );
    check_saved(shape, b.saved);
    assert_f32(&[b.dy, b.dx]);
    training_launch(
        ctx,
        Kernel::BatchNormAddReluBackward.stored(&[same_precision(&[b.x, b.y])]),
        BatchNormParams {
            accumulate: accumulate as u32,
            ..BatchNormParams::new(shape, 0.0, 0.0)
        },
        &[
            b.dy.bind(),
            b.x.bind(),
            b.gamma.bind(),
            b.beta.bind(),
            b.saved.bind(),
            b.dx.bind(),
            b.dgamma.bind(),
            b.dbeta.bind(),
            b.y.bind(),
        ],
        shape,
    )
}

/// CPU reference of the training forward: `y = max(bn(x) + s, 0)`, with the batch statistics
/// of the normalization.
pub fn train_forward_cpu(
    x: &[f64],
    shortcut: &[f64],
    gamma: &[f64],
    beta: &[f64],
    shape: BnShape,
    eps: f64,
) -> batch_norm::TrainForwardCpu {
    let mut f = batch_norm::train_forward_cpu(x, gamma, beta, shape, eps);
    f.y = add_relu_cpu(&f.y, shortcut);
    f
}

/// CPU reference of the inference forward.
#[allow(clippy::too_many_arguments)]
pub fn inference_forward_cpu(
    x: &[f64],
    shortcut: &[f64],
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
    shape: BnShape,
    eps: f64,
) -> Vec<f64> {
    let v = batch_norm::inference_forward_cpu(x, gamma, beta, running_mean, running_var, shape, eps);
    add_relu_cpu(&v, shortcut)
}

/// `max(v + s, 0)`: the add's and the ReLU's references.
fn add_relu_cpu(v: &[f64], shortcut: &[f64]) -> Vec<f64> {
    relu::forward_cpu(&add::forward_cpu(v, shortcut))
}

/// CPU reference of the backward from the forward's output `y`: the batch norm's gradients
/// and `g = dy·[y > 0]`, the shortcut's gradient.
pub fn backward_cpu(
    dy: &[f64],
    y: &[f64],
    x: &[f64],
    gamma: &[f64],
    mean: &[f64],
    invstd: &[f64],
    shape: BnShape,
) -> (batch_norm::BackwardCpu, Vec<f64>) {
    let g = relu::backward_cpu(y, dy);
    (batch_norm::backward_cpu(&g, x, gamma, mean, invstd, shape), g)
}
