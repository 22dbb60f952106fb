//! The layer ops. Each op is one file here that states everything about it as a layer: its
//! description (output shape, parameters, kept buffers, GEMM launches, FLOPs), its launches
//! over the buffers the scheduler gives it (forward and backward) and its CPU reference in f64
//! (forward and backward). The kernels and their launchers are in [`crate::ops`].
//!
//! [`Op`] lists the ops, and [`Op::layer`] is the one match that turns an op into its
//! behaviour: adding an op is its file here, one variant and one arm.

mod add;
mod batch_norm;
mod batch_norm_add_relu;
mod conv;
mod global_avg_pool;
mod linear;
mod max_pool;
mod relu;
mod upsample;

pub use add::Add;
pub use batch_norm::{BN_EPS, BN_MOMENTUM, BatchNorm};
pub use batch_norm_add_relu::BatchNormAddRelu;
pub use conv::Conv;
pub use global_avg_pool::GlobalAvgPool;
pub use linear::Linear;
pub use max_pool::MaxPool;
pub use relu::Relu;
pub use upsample::Upsample;

use super::{GammaInit, ParamSpec, Shape};
use crate::gpu::{GpuBuffer, GpuContext, KernelChoices, Launch};
use crate::ops::batch_norm::{BnShape, StepStatistics};
use crate::ops::conv2d::{Conv2dShape, Direction};
use crate::ops::matmul::MatmulParams;

/// One operation of the network. Parameters are named as in PyTorch's `state_dict`.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Upsample(Upsample),
    Conv(Conv),
    BatchNorm(BatchNorm),
    Relu,
    MaxPool(MaxPool),
    Add,
    /// The end of a residual block: batch norm of the first input, plus the second, then ReLU.
    BatchNormAddRelu(BatchNormAddRelu),
    GlobalAvgPool,
    Linear(Linear),
}

impl Op {
    /// What this op does as a layer.
    pub fn layer(&self) -> &dyn LayerOp {
        match self {
            Op::Upsample(op) => op,
            Op::Conv(op) => op,
            Op::BatchNorm(op) => op,
            Op::Relu => &Relu,
            Op::MaxPool(op) => op,
            Op::Add => &Add,
            Op::BatchNormAddRelu(op) => op,
            Op::GlobalAvgPool => &GlobalAvgPool,
            Op::Linear(op) => op,
        }
    }

    /// The name its parameters carry; `None` for an op without parameters.
    pub fn name(&self) -> Option<&str> {
        self.layer().name()
    }

    /// This op applied to an input of shape `input` (its first input where it has two).
    pub fn describe(&self, input: Shape, init: InitStyle) -> LayerDescription {
        self.layer().describe(input, init)
    }
}

/// What every layer op states and does.
pub trait LayerOp {
    /// The name its parameters carry; `None` for an op without parameters.
    fn name(&self) -> Option<&str> {
        None
    }

    /// Output channels for `input` channels (of its first input).
    fn output_channels(&self, input: usize) -> usize {
        input
    }

    /// The layer applied to an input of shape `input` (its first input where it has two).
    fn describe(&self, input: Shape, init: InitStyle) -> LayerDescription;

    /// Its forward launch, in training mode (batch statistics, treated as `step` says) or,
    /// with `None`, inference mode (running statistics).
    fn forward(&self, io: &DeviceLayer, train: Option<StepStatistics>) -> Launch;

    /// Its backward launches: parameter gradients, and its first input's gradient where
    /// `grad.dx` asks for it.
    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch>;

    /// The CPU reference of its forward, in f64: its output and what it keeps for the backward.
    fn forward_cpu(&self, io: &CpuLayer, mode: CpuMode) -> (Vec<f64>, CpuKept);

    /// The CPU reference of its backward from the output gradient `dy`, given its forward's
    /// output `y` and what it kept.
    fn backward_cpu(&self, io: &CpuLayer, y: &[f64], kept: &CpuKept, dy: &[f64]) -> CpuBackward;
}

/// How parameters start: torchvision's ResNet init, or PyTorch's layer defaults (the seed
/// post's), with batch norm's γ as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitStyle {
    pub torchvision: bool,
    pub gamma: GammaInit,
}

/// One GEMM-shaped launch of a layer's step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GemmLaunch {
    Conv(Direction, Conv2dShape),
    /// A linear layer's launch in one of the three directions.
    Matmul(Direction, MatmulParams),
}

impl GemmLaunch {
    pub fn direction(&self) -> Direction {
        match self {
            GemmLaunch::Conv(d, _) | GemmLaunch::Matmul(d, _) => *d,
        }
    }
}

/// A layer as the rest of the program sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDescription {
    /// Output shape [N, C, H, W].
    pub output: Shape,
    /// Parameters it owns: weight (or γ) first, then bias (or β).
    pub params: Vec<ParamSpec>,
    /// A batch norm's name and channels: it keeps running statistics (2 × C) and the step's
    /// saved statistics (`BnShape::saved_len` of its normalization).
    pub statistics: Option<(String, usize)>,
    /// Elements of the argmax indices a max pool keeps for its backward (one per output).
    pub argmax: Option<usize>,
    /// Its GEMM-shaped launches in a training step.
    pub gemms: Vec<GemmLaunch>,
    /// Multiply-adds × 2 of its forward pass.
    pub forward_flops: f64,
    /// Inputs whose gradient is the output's gradient as its backward leaves it: they share
    /// the output's gradient buffer instead of receiving a copy.
    pub gradient_passes_to: Vec<usize>,
    /// Whether its backward can add its first input's gradient into what is there (the
    /// other readers' contributions), so that input may have several readers.
    pub input_grad_adds: bool,
}

impl LayerDescription {
    /// Floats of a batch norm's saved statistics at this description's batch (its output has
    /// the normalized shape); `None` for other layers.
    pub fn saved_len(&self) -> Option<usize> {
        let [batch, channels, h, w] = self.output;
        let shape = BnShape {
            batch,
            channels,
            spatial: h * w,
        };
        self.statistics.as_ref().map(|_| shape.saved_len())
    }

    /// A layer whose output has the shape of its input and that owns nothing.
    pub fn same_shape(input: Shape) -> Self {
        Self {
            output: input,
            params: Vec::new(),
            statistics: None,
            argmax: None,
            gemms: Vec::new(),
            forward_flops: 0.0,
            gradient_passes_to: Vec::new(),
            input_grad_adds: false,
        }
    }
}

/// The running statistics and the step's saved statistics of a batch norm.
pub struct StatisticsBuffers<'a> {
    pub running_mean: &'a GpuBuffer<f32>,
    pub running_var: &'a GpuBuffer<f32>,
    pub saved: &'a GpuBuffer<f32>,
}

/// The device buffers one layer's launches read and write.
pub struct DeviceLayer<'a> {
    pub ctx: &'a GpuContext,
    pub kernels: &'a KernelChoices,
    /// Its inputs' activations and shapes [N, C, H, W], in order.
    pub inputs: Vec<&'a GpuBuffer<f32>>,
    pub input_shapes: Vec<Shape>,
    pub output: &'a GpuBuffer<f32>,
    pub output_shape: Shape,
    /// Its parameters and their gradients, in the order it describes them.
    pub params: Vec<&'a GpuBuffer<f32>>,
    pub grads: Vec<&'a GpuBuffer<f32>>,
    pub statistics: Option<StatisticsBuffers<'a>>,
    pub argmax: Option<&'a GpuBuffer<u32>>,
}

impl DeviceLayer<'_> {
    pub fn weight(&self) -> &GpuBuffer<f32> {
        self.params[0]
    }

    pub fn bias(&self) -> Option<&GpuBuffer<f32>> {
        self.params.get(1).copied()
    }

    pub fn statistics(&self) -> &StatisticsBuffers<'_> {
        self.statistics.as_ref().expect("a layer with statistics")
    }
}

/// The gradient buffers of one layer's backward.
pub struct DeviceGrad<'a> {
    /// The output's gradient.
    pub dy: &'a GpuBuffer<f32>,
    /// Where its first input's gradient goes, and whether it adds to what is there; `None`
    /// where no gradient flows to that input.
    pub dx: Option<(&'a GpuBuffer<f32>, bool)>,
    /// Parameter gradients are added to (later micro-batches) rather than overwritten.
    pub accumulate: bool,
}

/// Per-channel statistics of one batch norm in a training forward, each `[C]`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f64>,
    /// Biased: `Σ(x − mean)²/M`.
    pub var: Vec<f64>,
    /// `1/sqrt(var + eps)`.
    pub invstd: Vec<f64>,
    /// `M = B·H·W`, the values per channel.
    pub count: usize,
}

/// One layer's tensors in the CPU reference, flat NCHW in f64.
pub struct CpuLayer<'a> {
    pub inputs: Vec<&'a [f64]>,
    pub input_shapes: Vec<Shape>,
    /// Its parameters, in the order it describes them.
    pub params: Vec<&'a [f64]>,
}

/// How the CPU reference's forward normalizes.
#[derive(Clone, Copy)]
pub enum CpuMode<'a> {
    /// With the batch statistics.
    Train,
    /// With this layer's running statistics (mean, variance), where it has them.
    Eval(Option<(&'a [f64], &'a [f64])>),
}

/// What a layer's CPU forward keeps for its backward, besides its output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CpuKept {
    /// A batch norm's batch statistics (training mode).
    pub stats: Option<BatchStats>,
    /// A max pool's argmax (flat index in the input plane); empty otherwise.
    pub argmax: Vec<u32>,
}

/// What a layer's CPU backward produced.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuBackward {
    /// Per input: its gradient from this layer.
    pub inputs: Vec<Vec<f64>>,
    /// Per parameter, in the order it describes them.
    pub params: Vec<Vec<f64>>,
}
