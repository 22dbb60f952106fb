//! Bias gradient: `db[c] = Σ_{n,p} dy[n, c, p]` for `dy` of shape `[N, C, P]` (`P = H·W` for a
//! convolution, `P = 1` for a linear layer whose `dy` is `[N, C]`); `db` is `[C]`.
//!
//! One workgroup of 256 per channel with a fixed tree reduction: identical results run to run.
//! `db` is overwritten, or added to with `accumulate` (micro-batches).

use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::shaders::Kernel;

/// The kernel's uniform (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BiasGradParams {
    pub batch: u32,
    pub channels: u32,
    pub spatial: u32,
    /// 1: add to `db` instead of overwriting it.
    pub accumulate: u32,
}

impl BiasGradParams {
    pub fn new(batch: usize, channels: usize, spatial: usize, accumulate: bool) -> Self {
        assert!(
            batch * channels * spatial <= u32::MAX as usize,
            "bias grad: tensor too large for u32 indices"
        );
        Self {
            batch: batch as u32,
            channels: channels as u32,
            spatial: spatial as u32,
            accumulate: accumulate as u32,
        }
    }
}

/// `dy`: `[batch, channels, spatial]`; `db`: `[channels]`, overwritten or, with `accumulate`,
/// added to.
pub fn backward(
    ctx: &GpuContext,
    (batch, channels, spatial): (usize, usize, usize),
    dy: &GpuBuffer<f32>,
    db: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    assert_eq!(
        dy.len(),
        batch * channels * spatial,
        "bias grad: dy has the wrong length"
    );
    assert_eq!(db.len(), channels, "bias grad: db has the wrong length");
    Launch::linear(
        ctx,
        Kernel::BiasGrad.plain(),
        &BiasGradParams::new(batch, channels, spatial, accumulate),
        &[dy.bind(), db.bind()],
        channels as u32,
    )
}

/// CPU reference: `dy` `[batch, channels, spatial]` → `db` `[channels]`.
pub fn backward_cpu(dy: &[f64], batch: usize, channels: usize, spatial: usize) -> Vec<f64> {
    assert_eq!(dy.len(), batch * channels * spatial);
    (0..channels)
        .map(|c| {
            (0..batch)
                .flat_map(|n| (0..spatial).map(move |p| dy[(n * channels + c) * spatial + p]))
                .sum()
        })
        .collect()
}
