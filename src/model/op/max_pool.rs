//! Max pooling with a square window: `y = max` over the window (padding never selected); it
//! keeps the argmax of each output for the backward, `dx = Σ dy` over the windows whose
//! maximum sits at the element.

use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, InitStyle, LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::Shape;
use crate::ops::batch_norm::StepStatistics;
use crate::ops::max_pool::{self, MaxPoolShape};

#[derive(Clone, Debug, PartialEq)]
pub struct MaxPool {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl MaxPool {
    fn shape(&self, input: Shape) -> MaxPoolShape {
        let [n, c, h, w] = input;
        MaxPoolShape::new(n, c, h, w, self.kernel, self.stride, self.padding)
    }

    /// Output side of the window over a side of `size`.
    fn windowed(&self, size: usize) -> usize {
        (size + 2 * self.padding - self.kernel) / self.stride + 1
    }
}

impl LayerOp for MaxPool {
    fn describe(&self, input: Shape, _init: InitStyle) -> LayerDescription {
        let [n, c, h, w] = input;
        let output = [n, c, self.windowed(h), self.windowed(w)];
        LayerDescription {
            output,
            argmax: Some(output.iter().product()),
            ..LayerDescription::same_shape(input)
        }
    }

    fn forward(&self, io: &DeviceLayer, _train: Option<StepStatistics>) -> Launch {
        let argmax = io.argmax.expect("a max pool's argmax");
        max_pool::forward(
            io.ctx,
            &self.shape(io.input_shapes[0]),
            io.inputs[0],
            io.output,
            argmax,
        )
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        let argmax = io.argmax.expect("a max pool's argmax");
        grad.dx
            .map(|(dx, _)| max_pool::backward(io.ctx, &self.shape(io.input_shapes[0]), argmax, grad.dy, dx))
            .into_iter()
            .collect()
    }

    fn forward_cpu(&self, io: &CpuLayer, _mode: CpuMode) -> (Vec<f64>, CpuKept) {
        let (y, argmax) = max_pool::forward_cpu(&self.shape(io.input_shapes[0]), io.inputs[0]);
        (y, CpuKept { stats: None, argmax })
    }

    fn backward_cpu(&self, io: &CpuLayer, _y: &[f64], kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        CpuBackward {
            inputs: vec![max_pool::backward_cpu(
                &self.shape(io.input_shapes[0]),
                &kept.argmax,
                dy,
            )],
            params: Vec::new(),
        }
    }
}
