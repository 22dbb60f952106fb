//! The residual join: `y = a + b` (two inputs of one shape); backward `da = db = dy`, so both
//! inputs share the output's gradient buffer and nothing runs.

use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, InitStyle, LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::Shape;
use crate::ops::add;
use crate::ops::batch_norm::StepStatistics;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Add;

impl LayerOp for Add {
    fn describe(&self, input: Shape, _init: InitStyle) -> LayerDescription {
        LayerDescription {
            gradient_passes_to: vec![0, 1],
            ..LayerDescription::same_shape(input)
        }
    }

    fn forward(&self, io: &DeviceLayer, _train: Option<StepStatistics>) -> Launch {
        add::forward(io.ctx, io.inputs[0], io.inputs[1], io.output)
    }

    fn backward(&self, _io: &DeviceLayer, _grad: &DeviceGrad) -> Vec<Launch> {
        Vec::new()
    }

    fn forward_cpu(&self, io: &CpuLayer, _mode: CpuMode) -> (Vec<f64>, CpuKept) {
        (add::forward_cpu(io.inputs[0], io.inputs[1]), CpuKept::default())
    }

    fn backward_cpu(&self, _io: &CpuLayer, _y: &[f64], _kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        let (da, db) = add::backward_cpu(dy);
        CpuBackward {
            inputs: vec![da, db],
            params: Vec::new(),
        }
    }
}
