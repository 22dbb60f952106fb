//! ReLU: `y = max(x, 0)`; backward `dx = dy·[y > 0]`.

use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, InitStyle, LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::Shape;
use crate::ops::batch_norm::StepStatistics;
use crate::ops::relu;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Relu;

impl LayerOp for Relu {
    fn describe(&self, input: Shape, _init: InitStyle) -> LayerDescription {
        LayerDescription::same_shape(input)
    }

    fn forward(&self, io: &DeviceLayer, _train: Option<StepStatistics>) -> Launch {
        relu::forward(io.ctx, io.inputs[0], io.output)
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        grad.dx
            .map(|(dx, _)| relu::backward(io.ctx, io.output, grad.dy, dx))
            .into_iter()
            .collect()
    }

    fn forward_cpu(&self, io: &CpuLayer, _mode: CpuMode) -> (Vec<f64>, CpuKept) {
        (relu::forward_cpu(io.inputs[0]), CpuKept::default())
    }

    fn backward_cpu(&self, _io: &CpuLayer, y: &[f64], _kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        CpuBackward {
            inputs: vec![relu::backward_cpu(y, dy)],
            params: Vec::new(),
        }
    }
}
