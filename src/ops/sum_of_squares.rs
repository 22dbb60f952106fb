//! Sum of squares of a flat tensor, `s = Σ_i x[i]²`, for the L2 norms `‖x‖ = √s` of each
//! layer's weights and gradients. Each launch reduces one tensor with one workgroup into one
//! slot of a shared output buffer, so that one read-back returns every tensor's sum.

use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::shaders::Kernel;

/// Parameters of `sum_of_squares.wgsl` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SumOfSquaresParams {
    pub len: u32,
    pub slot: u32,
    pub _pad: [u32; 2],
}

/// `out[slot] = Σ_i x[i]²` over all of `x`.
pub fn launch(ctx: &GpuContext, x: &GpuBuffer<f32>, out: &GpuBuffer<f32>, slot: usize) -> Launch {
    assert!(slot < out.len(), "sum of squares: slot {slot} outside the output");
    let len = u32::try_from(x.len()).expect("sum of squares: tensor too large for u32 indexing");
    let params = SumOfSquaresParams {
        len,
        slot: slot as u32,
        _pad: [0; 2],
    };
    Launch::new(
        ctx,
        Kernel::SumOfSquares,
        &params,
        &[&x.buffer, &out.buffer],
        [1, 1, 1],
    )
}

pub fn sum_of_squares_cpu(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}
