//! Fully connected: [N, F, 1, 1] → [N, out, 1, 1]; `{name}.weight` [out, F] and
//! `{name}.bias` [out]. Forward `y = x·Wᵀ + b`; backward `dW = dyᵀ·x`, `db = Σ_n dy[n, ·]`,
//! `dx = dy·W` (the three GEMMs of [`LinearGemms`]).

use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, GemmLaunch, InitStyle,
    LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::{Init, ParamSpec, Shape};
use crate::ops::batch_norm::StepStatistics;
use crate::ops::conv2d::Direction;
use crate::ops::linear::{self, LinearGemms};
use crate::ops::{bias_grad, matmul};

#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub name: String,
    pub out_features: usize,
}

impl Linear {
    /// Its GEMMs on an input of shape `input`; the weight gradient adds with `accumulate`.
    fn gemms(&self, input: Shape, accumulate: bool) -> LinearGemms {
        let [n, c, h, w] = input;
        LinearGemms::new(n, c * h * w, self.out_features, accumulate)
    }
}

impl LayerOp for Linear {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn output_channels(&self, _input: usize) -> usize {
        self.out_features
    }

    fn describe(&self, input: Shape, _init: InitStyle) -> LayerDescription {
        let [n, c, h, w] = input;
        let (features, out) = (c * h * w, self.out_features);
        let init = Init::UniformFanIn { fan_in: features };
        let params = vec![
            ParamSpec {
                name: format!("{}.weight", self.name),
                shape: vec![out, features],
                init,
            },
            ParamSpec {
                name: format!("{}.bias", self.name),
                shape: vec![out],
                init,
            },
        ];
        let gemms = self.gemms(input, false);
        LayerDescription {
            output: [n, out, 1, 1],
            params,
            gemms: vec![
                GemmLaunch::Matmul(Direction::Forward, gemms.forward),
                GemmLaunch::Matmul(Direction::WeightGrad, gemms.weight_grad),
                GemmLaunch::Matmul(Direction::InputGrad, gemms.input_grad),
            ],
            forward_flops: 2.0 * (n * out * features) as f64,
            ..LayerDescription::same_shape(input)
        }
    }

    fn forward(&self, io: &DeviceLayer, _train: Option<StepStatistics>) -> Launch {
        let gemms = self.gemms(io.input_shapes[0], false);
        matmul::launch(
            io.ctx,
            io.kernels,
            &gemms.forward,
            io.inputs[0],
            io.weight(),
            io.bias(),
            io.output,
        )
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        let n = io.input_shapes[0][0];
        let gemms = self.gemms(io.input_shapes[0], grad.accumulate);
        let mut launches = vec![
            bias_grad::backward(
                io.ctx,
                (n, self.out_features, 1),
                grad.dy,
                io.grads[1],
                grad.accumulate,
            ),
            matmul::launch(
                io.ctx,
                io.kernels,
                &gemms.weight_grad,
                grad.dy,
                io.inputs[0],
                None,
                io.grads[0],
            ),
        ];
        if let Some((dx, _)) = grad.dx {
            launches.push(matmul::launch(
                io.ctx,
                io.kernels,
                &gemms.input_grad,
                grad.dy,
                io.weight(),
                None,
                dx,
            ));
        }
        launches
    }

    fn forward_cpu(&self, io: &CpuLayer, _mode: CpuMode) -> (Vec<f64>, CpuKept) {
        let [n, f, h, w] = io.input_shapes[0];
        assert_eq!(h * w, 1, "reference: a linear layer reads [B, F, 1, 1]");
        (
            linear::forward_cpu(io.inputs[0], io.params[0], io.params[1], n, f, self.out_features),
            CpuKept::default(),
        )
    }

    fn backward_cpu(&self, io: &CpuLayer, _y: &[f64], _kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        let [n, f, _, _] = io.input_shapes[0];
        let out = self.out_features;
        CpuBackward {
            inputs: vec![linear::input_grad_cpu(dy, io.params[0], n, f, out)],
            params: vec![
                linear::weight_grad_cpu(dy, io.inputs[0], n, f, out),
                bias_grad::backward_cpu(dy, n, out, 1),
            ],
        }
    }
}
