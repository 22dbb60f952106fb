//! Square convolution: [N, Cin, H, W] → [N, Cout, OH, OW]; parameters `{name}.weight`
//! [Cout, Cin, k, k] and, with `bias`, `{name}.bias` [Cout].
//!
//! - forward: `y = conv(x, W) + b`
//! - weight gradient: `dW[co,ci,kh,kw] = Σ_{n,oh,ow} dy[n,co,oh,ow]·x[n,ci,oh·s−p+kh,ow·s−p+kw]`
//! - bias gradient: `db[co] = Σ_{n,oh,ow} dy[n,co,oh,ow]`
//! - input gradient: `dx[n,ci,ih,iw] = Σ_{co,kh,kw} W[co,ci,kh,kw]·dy[n,co,oh,ow]`, added
//!   into the other readers' contributions where there are some.

use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, GemmLaunch, InitStyle,
    LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::{Init, ParamSpec, Shape};
use crate::ops::batch_norm::StepStatistics;
use crate::ops::bias_grad;
use crate::ops::conv2d::{self, Conv2dShape, Direction};

#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    pub name: String,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub bias: bool,
}

impl Conv {
    /// The convolution this layer computes on an input of shape `input`.
    pub fn shape(&self, input: Shape) -> Conv2dShape {
        let [batch, in_channels, in_height, in_width] = input;
        Conv2dShape {
            batch,
            in_channels,
            in_height,
            in_width,
            out_channels: self.out_channels,
            kernel: [self.kernel, self.kernel],
            stride: [self.stride, self.stride],
            padding: [self.padding, self.padding],
        }
    }
}

impl LayerOp for Conv {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn output_channels(&self, _input: usize) -> usize {
        self.out_channels
    }

    fn describe(&self, input: Shape, init: InitStyle) -> LayerDescription {
        let shape = self.shape(input);
        let (c, k, out) = (input[1], self.kernel, self.out_channels);
        let fan_in = c * k * k;
        let weight_init = match init.torchvision {
            true => Init::NormalFanOut { fan_out: out * k * k },
            false => Init::UniformFanIn { fan_in },
        };
        let mut params = vec![ParamSpec {
            name: format!("{}.weight", self.name),
            shape: vec![out, c, k, k],
            init: weight_init,
        }];
        if self.bias {
            params.push(ParamSpec {
                name: format!("{}.bias", self.name),
                shape: vec![out],
                init: Init::UniformFanIn { fan_in },
            });
        }
        LayerDescription {
            output: [input[0], out, shape.out_height(), shape.out_width()],
            params,
            gemms: Direction::ALL
                .iter()
                .map(|&d| GemmLaunch::Conv(d, shape))
                .collect(),
            forward_flops: shape.flops(),
            input_grad_adds: true,
            ..LayerDescription::same_shape(input)
        }
    }

    fn forward(&self, io: &DeviceLayer, _train: Option<StepStatistics>) -> Launch {
        let shape = self.shape(io.input_shapes[0]);
        conv2d::forward(
            io.ctx,
            io.kernels,
            &shape,
            io.inputs[0],
            io.weight(),
            io.bias(),
            io.output,
        )
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        let shape = self.shape(io.input_shapes[0]);
        let mut launches = Vec::new();
        if self.bias {
            let [n, co, oh, ow] = io.output_shape;
            launches.push(bias_grad::backward(
                io.ctx,
                (n, co, oh * ow),
                grad.dy,
                io.grads[1],
                grad.accumulate,
            ));
        }
        launches.push(conv2d::weight_grad(
            io.ctx,
            io.kernels,
            &shape,
            grad.dy,
            io.inputs[0],
            io.grads[0],
            grad.accumulate,
        ));
        if let Some((dx, add_into)) = grad.dx {
            launches.push(conv2d::input_grad(
                io.ctx,
                io.kernels,
                &shape,
                grad.dy,
                io.weight(),
                dx,
                add_into,
            ));
        }
        launches
    }

    fn forward_cpu(&self, io: &CpuLayer, _mode: CpuMode) -> (Vec<f64>, CpuKept) {
        let shape = self.shape(io.input_shapes[0]);
        let bias = io.params.get(1).copied();
        (
            conv2d::forward_cpu(&shape, io.inputs[0], io.params[0], bias),
            CpuKept::default(),
        )
    }

    fn backward_cpu(&self, io: &CpuLayer, _y: &[f64], _kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        let s = self.shape(io.input_shapes[0]);
        let mut params = vec![conv2d::weight_grad_cpu(&s, dy, io.inputs[0])];
        if self.bias {
            params.push(bias_grad::backward_cpu(
                dy,
                s.batch,
                s.out_channels,
                s.out_height() * s.out_width(),
            ));
        }
        CpuBackward {
            inputs: vec![conv2d::input_grad_cpu(&s, dy, io.params[0])],
            params,
        }
    }
}
