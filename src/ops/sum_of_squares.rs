//! Sum of squares of a flat tensor, `s = Σ_i x[i]²`, for the L2 norms `‖x‖ = √s` of each
//! layer's weights and gradients. Each launch reduces one tensor with [`PARTIALS`] workgroups
//! into one slot of [`PARTIALS`] partial sums in a shared output buffer, so that one read-back
//! returns every tensor's partials; [`sums_of_partials`] adds them in a fixed order.

use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::shaders::Kernel;

/// Parameters of `sum_of_squares.wgsl` (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SumOfSquaresParams {
    pub len: u32,
    pub slot: u32,
    /// Workgroups of the launch, each writing one partial sum.
    pub partials: u32,
    pub _pad: u32,
}

/// Workgroups per tensor: enough to spread a large tensor over a CPU's cores or a GPU's
/// compute units, few enough that each partial of a small tensor is cheap.
pub const PARTIALS: usize = 16;

/// `out[slot·P .. (slot+1)·P]` = partial sums whose total is `Σ_i x[i]²`, P = [`PARTIALS`].
pub fn launch(ctx: &GpuContext, x: &GpuBuffer<f32>, out: &GpuBuffer<f32>, slot: usize) -> Launch {
    assert!(
        (slot + 1) * PARTIALS <= out.len(),
        "sum of squares: slot {slot} outside the output"
    );
    let len = u32::try_from(x.len()).expect("sum of squares: tensor too large for u32 indexing");
    let params = SumOfSquaresParams {
        len,
        slot: slot as u32,
        partials: PARTIALS as u32,
        _pad: 0,
    };
    Launch::new(
        ctx,
        Kernel::SumOfSquares.plain(),
        &params,
        &[x.bind(), out.bind()],
        [PARTIALS as u32, 1, 1],
    )
}

/// Each slot's sum of squares from its [`PARTIALS`] partials (read back from `out`), added in
/// order in f64.
pub fn sums_of_partials(partials: &[f32]) -> Vec<f64> {
    partials
        .chunks(PARTIALS)
        .map(|slot| slot.iter().map(|&p| p as f64).sum())
        .collect()
}

pub fn sum_of_squares_cpu(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}
