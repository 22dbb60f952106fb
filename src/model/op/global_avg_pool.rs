//! Global average pooling: [N, C, H, W] → [N, C, 1, 1], `y[n,c] = Σ_hw x[n,c,h,w]/(H·W)`;
//! backward `dx[n,c,h,w] = dy[n,c]/(H·W)`.

use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, InitStyle, LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::Shape;
use crate::ops::batch_norm::StepStatistics;
use crate::ops::global_avg_pool;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalAvgPool;

impl LayerOp for GlobalAvgPool {
    fn describe(&self, input: Shape, _init: InitStyle) -> LayerDescription {
        let [n, c, _, _] = input;
        LayerDescription {
            output: [n, c, 1, 1],
            ..LayerDescription::same_shape(input)
        }
    }

    fn forward(&self, io: &DeviceLayer, _train: Option<StepStatistics>) -> Launch {
        global_avg_pool::forward(io.ctx, io.input_shapes[0], io.inputs[0], io.output)
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        grad.dx
            .map(|(dx, _)| global_avg_pool::backward(io.ctx, io.input_shapes[0], grad.dy, dx))
            .into_iter()
            .collect()
    }

    fn forward_cpu(&self, io: &CpuLayer, _mode: CpuMode) -> (Vec<f64>, CpuKept) {
        (
            global_avg_pool::forward_cpu(io.input_shapes[0], io.inputs[0]),
            CpuKept::default(),
        )
    }

    fn backward_cpu(&self, io: &CpuLayer, _y: &[f64], _kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        CpuBackward {
            inputs: vec![global_avg_pool::backward_cpu(io.input_shapes[0], dy)],
            params: Vec::new(),
        }
    }
}
