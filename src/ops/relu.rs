//! ReLU: `y = max(x, 0)`; backward `dx = dy · [y > 0]`.

use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups, same_precision};
use crate::shaders::Kernel;

/// Parameters of the element-wise kernels that only need a length.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LenParams {
    pub len: u32,
    pub _pad: [u32; 3],
}

impl LenParams {
    pub fn new(len: usize) -> Self {
        Self {
            len: len as u32,
            _pad: [0; 3],
        }
    }
}

pub fn forward(ctx: &GpuContext, x: &GpuBuffer<f32>, y: &GpuBuffer<f32>) -> Launch {
    assert_eq!(x.len(), y.len());
    Launch::linear(
        ctx,
        Kernel::ReluForward.stored(&[same_precision(&[x, y])]),
        &LenParams::new(x.len()),
        &[x.bind(), y.bind()],
        flat_workgroups(x.len()),
    )
}

/// `y` is the forward output.
pub fn backward(ctx: &GpuContext, y: &GpuBuffer<f32>, dy: &GpuBuffer<f32>, dx: &GpuBuffer<f32>) -> Launch {
    assert!(y.len() == dy.len() && dy.len() == dx.len());
    Launch::linear(
        ctx,
        Kernel::ReluBackward.stored(&[y.precision()]),
        &LenParams::new(y.len()),
        &[y.bind(), dy.bind(), dx.bind()],
        flat_workgroups(y.len()),
    )
}

pub fn forward_cpu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

pub fn backward_cpu(y: &[f64], dy: &[f64]) -> Vec<f64> {
    y.iter()
        .zip(dy)
        .map(|(&y, &g)| if y > 0.0 { g } else { 0.0 })
        .collect()
}
