//! Element-wise add, the residual connection: `out = a + b` over tensors of any (equal) shape.
//!
//! Backward: `∂out/∂a = ∂out/∂b = 1`, so the gradient `dy` of `out` flows unchanged to both
//! branches (no kernel: both branches read `dy`'s buffer). Where a tensor receives gradient
//! from two paths (a block's input feeds both the main branch and the identity shortcut), the
//! two gradients are summed with this same kernel: `forward(ctx, &grad_main, &grad_shortcut,
//! &grad_sum)`. The output must be a third buffer, distinct from both inputs.

use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups, same_precision};
use crate::shaders::Kernel;

/// Parameters of `add.wgsl` (16 bytes; `Params` in `prelude_len.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AddParams {
    /// Number of elements.
    pub len: u32,
    pub _pad: [u32; 3],
}

impl AddParams {
    pub fn new(len: usize) -> Self {
        Self {
            len: u32::try_from(len).expect("add: tensor too large for u32 indexing"),
            _pad: [0; 3],
        }
    }
}

/// `out = a + b`; all three have the same length and `out` is neither `a` nor `b`.
pub fn forward(ctx: &GpuContext, a: &GpuBuffer<f32>, b: &GpuBuffer<f32>, out: &GpuBuffer<f32>) -> Launch {
    assert!(
        a.len() == b.len() && b.len() == out.len(),
        "add: lengths differ ({}, {}, {})",
        a.len(),
        b.len(),
        out.len()
    );
    assert!(
        out.buffer != a.buffer && out.buffer != b.buffer,
        "add: the output must be a buffer distinct from both inputs"
    );
    Launch::linear(
        ctx,
        Kernel::Add.stored(&[same_precision(&[a, b, out])]),
        &AddParams::new(a.len()),
        &[a.bind(), b.bind(), out.bind()],
        flat_workgroups(a.len()),
    )
}

/// `out[i] = a[i] + b[i]`.
pub fn forward_cpu(a: &[f64], b: &[f64]) -> Vec<f64> {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&a, &b)| a + b).collect()
}

/// The gradients `(da, db)` for the gradient `dy` of the output: both equal `dy`.
pub fn backward_cpu(dy: &[f64]) -> (Vec<f64>, Vec<f64>) {
    (dy.to_vec(), dy.to_vec())
}
