//! The end of a residual block as one layer: `y = max(bn(x) + s, 0)` over its two inputs, the
//! main branch `x` and the shortcut `s` (see [`crate::ops::batch_norm_add_relu`]). Parameters
//! and statistics are a batch norm's, named `{name}.*`. The shortcut's gradient is
//! `g = dy·[y > 0]`, which the backward leaves in the output's gradient buffer, so the
//! shortcut shares that buffer.

use super::batch_norm::{BN_EPS, bn_shape, describe_batch_norm, kept_statistics};
use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, InitStyle, LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::Shape;
use crate::ops::batch_norm::{DEFAULT_EPS, DEFAULT_MOMENTUM, StepStatistics};
use crate::ops::batch_norm_add_relu as op;

#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormAddRelu {
    /// The batch norm's name.
    pub name: String,
}

impl LayerOp for BatchNormAddRelu {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn describe(&self, input: Shape, init: InitStyle) -> LayerDescription {
        LayerDescription {
            gradient_passes_to: vec![1],
            ..describe_batch_norm(&self.name, input, init)
        }
    }

    fn forward(&self, io: &DeviceLayer, train: Option<StepStatistics>) -> Launch {
        let shape = bn_shape(io.input_shapes[0]);
        let stats = io.statistics();
        let (x, shortcut, gamma, beta, y) =
            (io.inputs[0], io.inputs[1], io.params[0], io.params[1], io.output);
        match train {
            Some(step) => {
                let buffers = op::TrainForwardBuffers {
                    x,
                    shortcut,
                    gamma,
                    beta,
                    y,
                    saved: stats.saved,
                };
                op::train_forward(io.ctx, shape, DEFAULT_MOMENTUM, DEFAULT_EPS, step, &buffers)
            }
            None => {
                let buffers = op::InferenceForwardBuffers {
                    x,
                    shortcut,
                    gamma,
                    beta,
                    running_mean: stats.running_mean,
                    running_var: stats.running_var,
                    y,
                };
                op::inference_forward(io.ctx, shape, DEFAULT_EPS, &buffers)
            }
        }
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        let (dx, _) = grad.dx.expect("the main branch needs a gradient");
        let buffers = op::BackwardBuffers {
            dy: grad.dy,
            y: io.output,
            x: io.inputs[0],
            gamma: io.params[0],
            beta: io.params[1],
            saved: io.statistics().saved,
            dx,
            dgamma: io.grads[0],
            dbeta: io.grads[1],
        };
        let shape = bn_shape(io.input_shapes[0]);
        vec![op::backward(io.ctx, shape, &buffers, grad.accumulate)]
    }

    fn forward_cpu(&self, io: &CpuLayer, mode: CpuMode) -> (Vec<f64>, CpuKept) {
        let s = bn_shape(io.input_shapes[0]);
        let (x, shortcut, gamma, beta) = (io.inputs[0], io.inputs[1], io.params[0], io.params[1]);
        match mode {
            CpuMode::Train => kept_statistics(op::train_forward_cpu(x, shortcut, gamma, beta, s, BN_EPS), s),
            CpuMode::Eval(running) => {
                let (mean, var) = running.expect("a batch norm's running statistics");
                let y = op::inference_forward_cpu(x, shortcut, gamma, beta, mean, var, s, BN_EPS);
                (y, CpuKept::default())
            }
        }
    }

    fn backward_cpu(&self, io: &CpuLayer, y: &[f64], kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        let stats = kept.stats.as_ref().expect("a training forward's statistics");
        let (b, g) = op::backward_cpu(
            dy,
            y,
            io.inputs[0],
            io.params[0],
            &stats.mean,
            &stats.invstd,
            bn_shape(io.input_shapes[0]),
        );
        CpuBackward {
            inputs: vec![b.dx, g],
            params: vec![b.dgamma, b.dbeta],
        }
    }
}
