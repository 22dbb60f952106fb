//! Batch normalization over NCHW tensors, per channel, training and inference.
//!
//! Shapes: x, y, dy, dx are `[N, C, S]` with `S = H·W` (NCHW, spatial axes flattened);
//! gamma, beta, the saved `mean`/`invstd` and the running statistics are `[C]`. With
//! `M = N·S` values per channel:
//!
//! - training forward: `mean = Σx/M`, `var = Σ(x − mean)²/M` (biased; one pass of Welford
//!   updates merged with Chan's formula), `invstd = 1/sqrt(var + eps)`,
//!   `y = γ·(x − mean)·invstd + β`; saves `mean` and `invstd` in `saved[..2C]`, and the step's
//!   (count, mean, M2) in `saved[2C..5C]`: a batch run as micro-batches merges each one's into
//!   them ([`StepStatistics`]);
//! - the running statistics move once per step, from the whole batch, after its backward
//!   ([`running_update`], skipped where the step was not finite):
//!   `running_mean ← (1 − m)·running_mean + m·mean`,
//!   `running_var ← (1 − m)·running_var + m·var·M/(M − 1)` (unbiased; `var` itself when M = 1,
//!   where PyTorch refuses to train);
//! - inference forward: `y = γ·(x − running_mean)/sqrt(running_var + eps) + β`;
//! - backward (from `x` and the saved `mean`, `invstd`; `xhat = (x − mean)·invstd`):
//!   `dβ = Σdy`, `dγ = Σdy·xhat`, `dx = γ·invstd/M·(M·dy − Σdy − xhat·Σdy·xhat)`.
//!
//! Each can be fused with the ReLU that follows the batch norm ([`Relu::Fused`]): the forward
//! writes `max(y, 0)`, and the backward takes the ReLU's output gradient and masks it where the
//! recomputed `γ·xhat + β` is not positive, so the normalized tensor is never stored.
//!
//! The reductions run a power-of-two number of lanes per channel (up to a workgroup of 256;
//! several channels share a workgroup when they hold few values) with fixed tree reductions. A
//! channel of more than [`PART_VALUES`] values runs in parts, a workgroup each, over two
//! dispatches: each part's partial results (kept in `saved`), then each part's output from the
//! channel's results merged over its parts in order. Results are identical run to run.

use super::finite_check::STATUS_LEN;
use crate::gpu::{
    GpuBuffer, GpuContext, Launch, MAX_LOOP_ITERATIONS, assert_f32, flat_workgroups, same_precision,
};
use crate::shaders::{Kernel, Shader};

/// Weight of the new batch statistic in the running averages (PyTorch's default), the one
/// value the trainer and the CPU reference use.
pub const DEFAULT_MOMENTUM: f32 = 0.1;
/// Added to the variance before the square root (PyTorch's default).
pub const DEFAULT_EPS: f32 = 1e-5;

/// Values per lane that the training kernels aim for (below 256 lanes per channel). Fewer
/// lanes per channel mean fewer levels in the merge tree and more channels per workgroup; on
/// lavapipe, where a workgroup's cost is mostly its barriers, 32 values per lane made the batch
/// norms of a 32-pixel ResNet-50 step 2.8× faster than one value per lane (8: 2.2×, 128: 2.9×;
/// measured by changing this constant and running `bench --steps --config "ResNet-50, ImageNet
/// stem, 32"`, whose per-kernel breakdown gives the batch-norm times).
pub const VALUES_PER_LANE: usize = 32;

/// An NCHW shape with the spatial axes flattened: `[batch, channels, spatial]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BnShape {
    pub batch: usize,
    pub channels: usize,
    /// `H·W`.
    pub spatial: usize,
}

/// Values of a channel that one workgroup of the training kernels takes: a channel with more
/// runs in parts, several workgroups each (see [`BnShape::parts`]), so that a layer of few
/// channels and many values still spreads over a GPU's cores.
pub const PART_VALUES: usize = 256 * VALUES_PER_LANE;

/// The most values per channel the training kernels take: lane 0 of every workgroup merges its
/// channel's parts in a loop, and llvmpipe ends an invocation's loops after
/// [`MAX_LOOP_ITERATIONS`] in all (the part's own values and the merge tree take the rest).
pub const MAX_PER_CHANNEL: usize = PART_VALUES * (MAX_LOOP_ITERATIONS / 2);

impl BnShape {
    pub fn new(batch: usize, channels: usize, spatial: usize) -> Self {
        assert!(
            batch * spatial <= MAX_PER_CHANNEL,
            "batch norm: {batch} images of {spatial} values per channel exceed the kernels' loop \
             bound of {MAX_PER_CHANNEL} values per channel; use smaller micro-batches"
        );
        Self {
            batch,
            channels,
            spatial,
        }
    }

    /// Elements of x.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per channel, `M = N·S`.
    pub fn per_channel(&self) -> usize {
        self.batch * self.spatial
    }

    /// Invocations per channel of the training kernels: enough for [`VALUES_PER_LANE`] values
    /// each, rounded up to a power of two, at most a whole workgroup of 256. A workgroup then
    /// handles `256 / lanes` channels.
    pub fn lanes(&self) -> usize {
        self.per_channel()
            .div_ceil(VALUES_PER_LANE)
            .next_power_of_two()
            .min(256)
    }

    /// Parts of each channel in the training kernels: one where a channel holds at most
    /// [`PART_VALUES`] values (a workgroup holds whole channels), else one workgroup per
    /// [`PART_VALUES`] (the last one shorter). Several parts take two dispatches: each part's
    /// partial results, then the output from the channel's results merged in a fixed order.
    pub fn parts(&self) -> usize {
        self.per_channel().div_ceil(PART_VALUES)
    }

    /// Workgroups of each dispatch of the training kernels.
    fn training_workgroups(&self) -> u32 {
        match self.parts() {
            1 => self.channels.div_ceil(256 / self.lanes()) as u32,
            parts => (self.channels * parts) as u32,
        }
    }

    /// Floats of the `saved` buffer: per channel the batch's mean and invstd for the backward,
    /// the step's count, mean and M2 over its micro-batches ([`SAVED_PER_CHANNEL`] in all),
    /// then, where channels run in parts, three partial results per part.
    pub fn saved_len(&self) -> usize {
        let partials = match self.parts() {
            1 => 0,
            parts => 3 * parts,
        };
        (SAVED_PER_CHANNEL + partials) * self.channels
    }
}

/// Floats per channel of the `saved` buffer's first region: the batch's mean and invstd for the
/// backward, then the step's count, mean and M2 over its micro-batches.
pub const SAVED_PER_CHANNEL: usize = 5;

/// What a training forward does with the running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStatistics {
    /// The first (or only) micro-batch of a step: write its count, mean and M2 to `saved[2C..5C]`.
    Start,
    /// A later micro-batch: merge its statistics into `saved[2C..5C]`.
    Merge,
    /// A rerun of a forward already counted (recomputation): save the batch's mean and
    /// invstd for the backward again, and leave `saved[2C..5C]` alone.
    Rerun,
}

/// The uniform of the batch-norm kernels (48 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BatchNormParams {
    pub batch: u32,
    pub channels: u32,
    pub spatial: u32,
    /// Weight of the new batch statistic in the running averages (PyTorch's `momentum`).
    pub momentum: f32,
    pub eps: f32,
    /// Backward only: 1 adds to `dgamma` and `dbeta` instead of overwriting them.
    pub accumulate: u32,
    /// 1: fused with the ReLU that follows (see [`Relu`]).
    pub relu: u32,
    /// Training kernels: invocations per channel (see [`BnShape::lanes`]).
    pub lanes: u32,
    /// Training forward: a [`StepStatistics`] as 0 or 1.
    pub step_stats: u32,
    /// Training kernels: parts per channel ([`BnShape::parts`]), the dispatch's phase (0:
    /// partial results, 1: output; 0 with one part) and the values of a part.
    pub parts: u32,
    pub phase: u32,
    pub part_len: u32,
}

/// Whether a batch-norm launch includes the ReLU that follows it in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relu {
    None,
    Fused,
}

impl BatchNormParams {
    pub fn new(shape: BnShape, momentum: f32, eps: f32) -> Self {
        assert!(
            shape.len() <= u32::MAX as usize,
            "batch norm: tensor too large for u32 indices"
        );
        assert!(shape.per_channel() > 0, "batch norm: empty channels");
        Self {
            batch: shape.batch as u32,
            channels: shape.channels as u32,
            spatial: shape.spatial as u32,
            momentum,
            eps,
            accumulate: 0,
            relu: 0,
            lanes: shape.lanes() as u32,
            step_stats: 0,
            parts: shape.parts() as u32,
            phase: 0,
            part_len: PART_VALUES as u32,
        }
    }

    fn with_relu(self, relu: Relu) -> Self {
        Self {
            relu: (relu == Relu::Fused) as u32,
            ..self
        }
    }
}

/// Buffers of the training forward. `x`, `y`: `[N, C, S]`; `saved` `[5C]`
/// ([`SAVED_PER_CHANNEL`]); the others `[C]`. `saved` receives the batch mean and invstd for
/// [`backward`], and the step's statistics with micro-batches; the running statistics are
/// updated in place.
pub struct TrainForwardBuffers<'a> {
    pub x: &'a GpuBuffer<f32>,
    pub gamma: &'a GpuBuffer<f32>,
    pub beta: &'a GpuBuffer<f32>,
    pub y: &'a GpuBuffer<f32>,
    pub saved: &'a GpuBuffer<f32>,
}

/// Buffers of the inference forward. `x`, `y`: `[N, C, S]`; the others `[C]`.
pub struct InferenceForwardBuffers<'a> {
    pub x: &'a GpuBuffer<f32>,
    pub gamma: &'a GpuBuffer<f32>,
    pub beta: &'a GpuBuffer<f32>,
    pub running_mean: &'a GpuBuffer<f32>,
    pub running_var: &'a GpuBuffer<f32>,
    pub y: &'a GpuBuffer<f32>,
}

/// Buffers of the backward. `dy`, `x` (the forward input), `dx`: `[N, C, S]`; `saved` `[5C]` as
/// written by [`train_forward`]; the others `[C]`.
pub struct BackwardBuffers<'a> {
    pub dy: &'a GpuBuffer<f32>,
    pub x: &'a GpuBuffer<f32>,
    pub gamma: &'a GpuBuffer<f32>,
    pub beta: &'a GpuBuffer<f32>,
    pub saved: &'a GpuBuffer<f32>,
    pub dx: &'a GpuBuffer<f32>,
    pub dgamma: &'a GpuBuffer<f32>,
    pub dbeta: &'a GpuBuffer<f32>,
}

pub(crate) fn check_lengths(
    name: &str,
    shape: BnShape,
    full: &[&GpuBuffer<f32>],
    per_channel: &[&GpuBuffer<f32>],
) {
    for b in full {
        assert_eq!(
            b.len(),
            shape.len(),
            "{name}: a [N, C, S] buffer has the wrong length"
        );
    }
    for b in per_channel {
        assert_eq!(
            b.len(),
            shape.channels,
            "{name}: a [C] buffer has the wrong length"
        );
    }
}

pub(crate) fn check_saved(shape: BnShape, saved: &GpuBuffer<f32>) {
    assert_eq!(
        saved.len(),
        shape.saved_len(),
        "batch norm: saved holds BnShape::saved_len values"
    );
}

/// A training kernel's launch over `shape` (bindings from 1 in order): one dispatch where a
/// workgroup holds whole channels, else phase 0 then phase 1 over every part of every channel
/// (see [`BnShape::parts`]).
pub(crate) fn training_launch(
    ctx: &GpuContext,
    shader: Shader,
    params: BatchNormParams,
    buffers: &[wgpu::BufferBinding<'_>],
    shape: BnShape,
) -> Launch {
    let workgroups = shape.training_workgroups();
    let first = Launch::linear(ctx, shader, &params, buffers, workgroups);
    match shape.parts() {
        1 => first,
        _ => {
            // Compulsory traffic is that of one dispatch: the second reads what the first did.
            let bytes = first.bytes;
            let second = BatchNormParams { phase: 1, ..params };
            let mut both = first.then(Launch::linear(ctx, shader, &second, buffers, workgroups));
            both.bytes = bytes;
            both
        }
    }
}

/// Training forward: batch statistics, `y`, and the saved statistics, the step's started or
/// merged into as `step` says.
pub fn train_forward(
    ctx: &GpuContext,
    shape: BnShape,
    momentum: f32,
    eps: f32,
    relu: Relu,
    step: StepStatistics,
    b: &TrainForwardBuffers,
) -> Launch {
    check_lengths("batch norm train forward", shape, &[b.x, b.y], &[b.gamma, b.beta]);
    check_saved(shape, b.saved);
    training_launch(
        ctx,
        Kernel::BatchNormTrainForward.stored(&[same_precision(&[b.x, b.y])]),
        BatchNormParams {
            step_stats: step as u32,
            ..BatchNormParams::new(shape, momentum, eps).with_relu(relu)
        },
        &[
            b.x.bind(),
            b.gamma.bind(),
            b.beta.bind(),
            b.y.bind(),
            b.saved.bind(),
        ],
        shape,
    )
}

/// The buffers of the running statistics' update.
#[derive(Clone, Copy)]
pub struct RunningUpdateBuffers<'a> {
    /// `[5C]`, as the step's training forwards left it.
    pub saved: &'a GpuBuffer<f32>,
    /// `[C]` each, updated in place.
    pub running_mean: &'a GpuBuffer<f32>,
    pub running_var: &'a GpuBuffer<f32>,
    /// The step's status record: nothing changes where it flags a value that is not finite.
    pub status: &'a GpuBuffer<u32>,
}

/// The running statistics' update, once per step, from the step's statistics that the training
/// forwards of its micro-batches left in `saved` (the first ran with [`StepStatistics::Start`],
/// the others with [`StepStatistics::Merge`]); nothing changes in a step flagged as not finite.
pub fn running_update(ctx: &GpuContext, shape: BnShape, momentum: f32, b: &RunningUpdateBuffers) -> Launch {
    let RunningUpdateBuffers {
        saved,
        running_mean,
        running_var,
        status,
    } = *b;
    assert_eq!(
        status.len(),
        STATUS_LEN,
        "batch norm running update: the status record holds {STATUS_LEN} words"
    );
    check_lengths(
        "batch norm running update",
        shape,
        &[],
        &[running_mean, running_var],
    );
    check_saved(shape, saved);
    Launch::linear(
        ctx,
        Kernel::BatchNormRunningUpdate.plain(),
        &BatchNormParams::new(shape, momentum, 0.0),
        &[
            saved.bind(),
            running_mean.bind(),
            running_var.bind(),
            status.bind(),
        ],
        flat_workgroups(shape.channels),
    )
}

/// Inference forward with the running statistics, element-wise.
pub fn inference_forward(
    ctx: &GpuContext,
    shape: BnShape,
    eps: f32,
    relu: Relu,
    b: &InferenceForwardBuffers,
) -> Launch {
    check_lengths(
        "batch norm inference forward",
        shape,
        &[b.x, b.y],
        &[b.gamma, b.beta],
    );
    Launch::linear(
        ctx,
        Kernel::BatchNormInferenceForward.stored(&[same_precision(&[b.x, b.y])]),
        &BatchNormParams::new(shape, 0.0, eps).with_relu(relu),
        &[
            b.x.bind(),
            b.gamma.bind(),
            b.beta.bind(),
            b.running_mean.bind(),
            b.running_var.bind(),
            b.y.bind(),
        ],
        flat_workgroups(shape.len()),
    )
}

/// Training backward: `dx` (overwritten), `dgamma` and `dbeta` (overwritten or, with
/// `accumulate`, added to). With [`Relu::Fused`], `dy` is the gradient of the ReLU's output.
pub fn backward(
    ctx: &GpuContext,
    shape: BnShape,
    relu: Relu,
    b: &BackwardBuffers,
    accumulate: bool,
) -> Launch {
    check_lengths(
        "batch norm backward",
        shape,
        &[b.dy, b.x, b.dx],
        &[b.gamma, b.beta, b.dgamma, b.dbeta],
    );
    check_saved(shape, b.saved);
    assert_f32(&[b.dy, b.dx]);
    training_launch(
        ctx,
        Kernel::BatchNormBackward.stored(&[b.x.precision()]),
        BatchNormParams {
            accumulate: accumulate as u32,
            ..BatchNormParams::new(shape, 0.0, 0.0).with_relu(relu)
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
        ],
        shape,
    )
}

/// Offset of element `(n, c, p)` of an `[N, C, S]` tensor.
fn at(shape: BnShape, n: usize, c: usize, p: usize) -> usize {
    (n * shape.channels + c) * shape.spatial + p
}

/// What the training forward computes, in f64.
#[derive(Clone, Debug)]
pub struct TrainForwardCpu {
    /// `[N, C, S]`.
    pub y: Vec<f64>,
    /// `[C]` batch mean.
    pub mean: Vec<f64>,
    /// `[C]` biased batch variance.
    pub var: Vec<f64>,
    /// `[C]` `1/sqrt(var + eps)`.
    pub invstd: Vec<f64>,
}

/// CPU reference of the training forward (running statistics: see [`update_running_cpu`]).
pub fn train_forward_cpu(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    shape: BnShape,
    eps: f64,
) -> TrainForwardCpu {
    assert_eq!(x.len(), shape.len());
    let m = shape.per_channel() as f64;
    let mut out = TrainForwardCpu {
        y: vec![0.0; x.len()],
        mean: vec![0.0; shape.channels],
        var: vec![0.0; shape.channels],
        invstd: vec![0.0; shape.channels],
    };
    for c in 0..shape.channels {
        let values =
            || (0..shape.batch).flat_map(move |n| (0..shape.spatial).map(move |p| at(shape, n, c, p)));
        let mean = values().map(|j| x[j]).sum::<f64>() / m;
        let var = values().map(|j| (x[j] - mean).powi(2)).sum::<f64>() / m;
        let invstd = 1.0 / (var + eps).sqrt();
        for j in values() {
            out.y[j] = gamma[c] * (x[j] - mean) * invstd + beta[c];
        }
        (out.mean[c], out.var[c], out.invstd[c]) = (mean, var, invstd);
    }
    out
}

/// CPU reference of the running-statistic update, in place: `count` is `M = N·S`, `var` the
/// biased batch variance, made unbiased with `M/(M − 1)` (left as is when `M = 1`).
pub fn update_running_cpu(
    running_mean: &mut [f64],
    running_var: &mut [f64],
    mean: &[f64],
    var: &[f64],
    count: usize,
    momentum: f64,
) {
    let correction = if count > 1 {
        count as f64 / (count - 1) as f64
    } else {
        1.0
    };
    for c in 0..mean.len() {
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean[c];
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * var[c] * correction;
    }
}

/// CPU reference of the whole batch's statistics from equal parts (micro-batches of `count`
/// values per channel each): `parts` holds each part's `(mean, biased var)` per channel. Returns
/// the whole batch's mean and biased variance per channel,
/// `mean = Σ mean_j / k`, `var = Σ (var_j + (mean_j − mean)²) / k`.
pub fn combine_parts_cpu(parts: &[(Vec<f64>, Vec<f64>)]) -> (Vec<f64>, Vec<f64>) {
    let k = parts.len() as f64;
    let channels = parts[0].0.len();
    let mean: Vec<f64> = (0..channels)
        .map(|c| parts.iter().map(|(m, _)| m[c]).sum::<f64>() / k)
        .collect();
    let var = (0..channels)
        .map(|c| {
            parts
                .iter()
                .map(|(m, v)| v[c] + (m[c] - mean[c]).powi(2))
                .sum::<f64>()
                / k
        })
        .collect();
    (mean, var)
}

/// CPU reference of the inference forward.
pub fn inference_forward_cpu(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
    shape: BnShape,
    eps: f64,
) -> Vec<f64> {
    assert_eq!(x.len(), shape.len());
    (0..x.len())
        .map(|i| {
            let c = (i / shape.spatial) % shape.channels;
            gamma[c] * (x[i] - running_mean[c]) / (running_var[c] + eps).sqrt() + beta[c]
        })
        .collect()
}

/// What the backward computes, in f64: `dx` `[N, C, S]`, `dgamma` and `dbeta` `[C]`.
#[derive(Clone, Debug)]
pub struct BackwardCpu {
    pub dx: Vec<f64>,
    pub dgamma: Vec<f64>,
    pub dbeta: Vec<f64>,
}

/// CPU reference of the training backward, from the forward input `x` and the batch `mean` and
/// `invstd` of the training forward.
pub fn backward_cpu(
    dy: &[f64],
    x: &[f64],
    gamma: &[f64],
    mean: &[f64],
    invstd: &[f64],
    shape: BnShape,
) -> BackwardCpu {
    assert!(dy.len() == shape.len() && x.len() == shape.len());
    let m = shape.per_channel() as f64;
    let mut out = BackwardCpu {
        dx: vec![0.0; x.len()],
        dgamma: vec![0.0; shape.channels],
        dbeta: vec![0.0; shape.channels],
    };
    for c in 0..shape.channels {
        let values =
            || (0..shape.batch).flat_map(move |n| (0..shape.spatial).map(move |p| at(shape, n, c, p)));
        let xhat = |j: usize| (x[j] - mean[c]) * invstd[c];
        let sum_dy: f64 = values().map(|j| dy[j]).sum();
        let sum_dy_xhat: f64 = values().map(|j| dy[j] * xhat(j)).sum();
        for j in values() {
            out.dx[j] = gamma[c] * invstd[c] / m * (m * dy[j] - sum_dy - xhat(j) * sum_dy_xhat);
        }
        out.dgamma[c] = sum_dy_xhat;
        out.dbeta[c] = sum_dy;
    }
    out
}
