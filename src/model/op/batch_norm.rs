//! Batch norm over channels, optionally followed by a ReLU run in the same kernels (the
//! normalized tensor is then neither stored nor read). Parameters `{name}.weight` (γ) and
//! `{name}.bias` (β) [C]; it keeps `{name}.running_mean` and `{name}.running_var` [C].
//!
//! - training forward: `y = γ·(x − μ)/sqrt(σ² + eps) + β` with the batch's `μ` and biased
//!   `σ²` per channel (then `max(y, 0)` with `relu`);
//! - inference forward: the same with the running statistics;
//! - backward, from `g = dy` (or `dy·[y > 0]` with `relu`) and `x̂ = (x − μ)/sqrt(σ² + eps)`:
//!   `dβ = Σg`, `dγ = Σg·x̂`, `dx = γ·invstd/M·(M·g − Σg − x̂·Σg·x̂)`, `M = N·H·W`.

use super::{
    BatchStats, CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, InitStyle,
    LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::{Init, ParamSpec, Shape};
use crate::ops::batch_norm::{
    self, BnShape, DEFAULT_EPS, DEFAULT_MOMENTUM, Relu as FusedRelu, StepStatistics, TrainForwardCpu,
};
use crate::ops::relu;

/// The trainer's batch-norm constants in f64, for the CPU reference.
pub const BN_MOMENTUM: f64 = DEFAULT_MOMENTUM as f64;
pub const BN_EPS: f64 = DEFAULT_EPS as f64;

#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    pub name: String,
    /// A ReLU follows, run inside the batch norm's kernels.
    pub relu: bool,
}

impl BatchNorm {
    fn fused(&self) -> FusedRelu {
        match self.relu {
            true => FusedRelu::Fused,
            false => FusedRelu::None,
        }
    }
}

/// The normalization over [N, C, S] of an input of shape `input`.
pub(super) fn bn_shape(input: Shape) -> BnShape {
    let [n, c, h, w] = input;
    BnShape::new(n, c, h * w)
}

/// A batch norm named `name` over `input`: γ and β, and its statistics.
pub(super) fn describe_batch_norm(name: &str, input: Shape, init: InitStyle) -> LayerDescription {
    let c = input[1];
    LayerDescription {
        params: vec![
            ParamSpec {
                name: format!("{name}.weight"),
                shape: vec![c],
                init: Init::Gamma(init.gamma),
            },
            ParamSpec {
                name: format!("{name}.bias"),
                shape: vec![c],
                init: Init::Zeros,
            },
        ],
        statistics: Some((name.to_string(), c)),
        ..LayerDescription::same_shape(input)
    }
}

/// A CPU training forward's output, keeping its batch statistics for the backward.
pub(super) fn kept_statistics(f: TrainForwardCpu, shape: BnShape) -> (Vec<f64>, CpuKept) {
    let stats = BatchStats {
        mean: f.mean,
        var: f.var,
        invstd: f.invstd,
        count: shape.per_channel(),
    };
    let kept = CpuKept {
        stats: Some(stats),
        argmax: Vec::new(),
    };
    (f.y, kept)
}

/// The CPU reference of the normalization alone (before any ReLU or addition): its output
/// and, in training mode, the batch statistics.
pub(super) fn normalize_cpu(io: &CpuLayer, mode: CpuMode) -> (Vec<f64>, CpuKept) {
    let s = bn_shape(io.input_shapes[0]);
    let (x, gamma, beta) = (io.inputs[0], io.params[0], io.params[1]);
    match mode {
        CpuMode::Train => kept_statistics(batch_norm::train_forward_cpu(x, gamma, beta, s, BN_EPS), s),
        CpuMode::Eval(running) => {
            let (mean, var) = running.expect("a batch norm's running statistics");
            (
                batch_norm::inference_forward_cpu(x, gamma, beta, mean, var, s, BN_EPS),
                CpuKept::default(),
            )
        }
    }
}

/// The CPU reference of the normalization's backward from `g`, the gradient reaching it.
pub(super) fn normalize_backward_cpu(io: &CpuLayer, forward: &CpuKept, g: &[f64]) -> CpuBackward {
    let stats = forward.stats.as_ref().expect("a training forward's statistics");
    let b = batch_norm::backward_cpu(
        g,
        io.inputs[0],
        io.params[0],
        &stats.mean,
        &stats.invstd,
        bn_shape(io.input_shapes[0]),
    );
    CpuBackward {
        inputs: vec![b.dx],
        params: vec![b.dgamma, b.dbeta],
    }
}

impl LayerOp for BatchNorm {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn describe(&self, input: Shape, init: InitStyle) -> LayerDescription {
        describe_batch_norm(&self.name, input, init)
    }

    fn forward(&self, io: &DeviceLayer, train: Option<StepStatistics>) -> Launch {
        let shape = bn_shape(io.input_shapes[0]);
        let stats = io.statistics();
        let (x, gamma, beta, y) = (io.inputs[0], io.params[0], io.params[1], io.output);
        match train {
            Some(step) => {
                let buffers = batch_norm::TrainForwardBuffers {
                    x,
                    gamma,
                    beta,
                    y,
                    saved: stats.saved,
                };
                batch_norm::train_forward(
                    io.ctx,
                    shape,
                    DEFAULT_MOMENTUM,
                    DEFAULT_EPS,
                    self.fused(),
                    step,
                    &buffers,
                )
            }
            None => {
                let buffers = batch_norm::InferenceForwardBuffers {
                    x,
                    gamma,
                    beta,
                    running_mean: stats.running_mean,
                    running_var: stats.running_var,
                    y,
                };
                batch_norm::inference_forward(io.ctx, shape, DEFAULT_EPS, self.fused(), &buffers)
            }
        }
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        let (dx, _) = grad.dx.expect("a batch norm's input needs a gradient");
        let buffers = batch_norm::BackwardBuffers {
            dy: grad.dy,
            x: io.inputs[0],
            gamma: io.params[0],
            beta: io.params[1],
            saved: io.statistics().saved,
            dx,
            dgamma: io.grads[0],
            dbeta: io.grads[1],
        };
        let shape = bn_shape(io.input_shapes[0]);
        vec![batch_norm::backward(
            io.ctx,
            shape,
            self.fused(),
            &buffers,
            grad.accumulate,
        )]
    }

    fn forward_cpu(&self, io: &CpuLayer, mode: CpuMode) -> (Vec<f64>, CpuKept) {
        let (y, kept) = normalize_cpu(io, mode);
        match self.relu {
            true => (relu::forward_cpu(&y), kept),
            false => (y, kept),
        }
    }

    fn backward_cpu(&self, io: &CpuLayer, y: &[f64], kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        match self.relu {
            // g = dy·[y > 0]
            true => normalize_backward_cpu(io, kept, &relu::backward_cpu(y, dy)),
            false => normalize_backward_cpu(io, kept, dy),
        }
    }
}
