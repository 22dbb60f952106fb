//! Nearest upsampling to `size`×`size`: `y[n,c,oh,ow] = x[n,c,⌊oh·IH/OH⌋,⌊ow·IW/OW⌋]`;
//! backward `dx[n,c,ih,iw] = Σ dy` over the output pixels that read (ih, iw).

use super::{
    CpuBackward, CpuKept, CpuLayer, CpuMode, DeviceGrad, DeviceLayer, InitStyle, LayerDescription, LayerOp,
};
use crate::gpu::Launch;
use crate::model::Shape;
use crate::ops::batch_norm::StepStatistics;
use crate::ops::upsample::{self, UpsampleShape};

#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    pub size: usize,
}

impl Upsample {
    fn shape(&self, input: Shape) -> UpsampleShape {
        let [n, c, h, w] = input;
        UpsampleShape::new(n, c, (h, w), (self.size, self.size))
    }
}

impl LayerOp for Upsample {
    fn describe(&self, input: Shape, _init: InitStyle) -> LayerDescription {
        let [n, c, _, _] = input;
        LayerDescription {
            output: [n, c, self.size, self.size],
            ..LayerDescription::same_shape(input)
        }
    }

    fn forward(&self, io: &DeviceLayer, _train: Option<StepStatistics>) -> Launch {
        upsample::forward(io.ctx, &self.shape(io.input_shapes[0]), io.inputs[0], io.output)
    }

    fn backward(&self, io: &DeviceLayer, grad: &DeviceGrad) -> Vec<Launch> {
        grad.dx
            .map(|(dx, _)| upsample::backward(io.ctx, &self.shape(io.input_shapes[0]), grad.dy, dx))
            .into_iter()
            .collect()
    }

    fn forward_cpu(&self, io: &CpuLayer, _mode: CpuMode) -> (Vec<f64>, CpuKept) {
        (
            upsample::forward_cpu(&self.shape(io.input_shapes[0]), io.inputs[0]),
            CpuKept::default(),
        )
    }

    fn backward_cpu(&self, io: &CpuLayer, _y: &[f64], _kept: &CpuKept, dy: &[f64]) -> CpuBackward {
        CpuBackward {
            inputs: vec![upsample::backward_cpu(&self.shape(io.input_shapes[0]), dy)],
            params: Vec::new(),
        }
    }
}
