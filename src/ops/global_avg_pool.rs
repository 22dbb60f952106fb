//! Global average pooling, NCHW: `x[N, C, H, W] → y[N, C]` with
//! `y[n,c] = (1 / (H·W)) Σ_{h,w} x[n,c,h,w]` (PyTorch's `AdaptiveAvgPool2d(1)` + flatten).
//!
//! Backward: `dx[n,c,h,w] = dy[n,c] / (H·W)`.
//! On the GPU the forward pass sums each plane in order in one invocation: deterministic.

use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups, same_precision};
use crate::shaders::Kernel;

/// Parameters of `global_avg_pool_forward.wgsl` and `global_avg_pool_backward.wgsl`
/// (16 bytes), declared once in `prelude_global_avg_pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GlobalAvgPoolParams {
    /// `N · C`.
    pub planes: u32,
    /// `H · W`.
    pub hw: u32,
    pub _pad: [u32; 2],
}

impl GlobalAvgPoolParams {
    /// For an input of shape `[N, C, H, W]`.
    pub fn new(shape: [usize; 4]) -> Self {
        let [n, c, h, w] = shape;
        assert!(h * w > 0, "global average pool: empty planes");
        let fits =
            |v: usize| u32::try_from(v).expect("global average pool: tensor too large for u32 indexing");
        fits(n * c * h * w);
        Self {
            planes: fits(n * c),
            hw: fits(h * w),
            _pad: [0; 2],
        }
    }
}

/// `x` is `[N, C, H, W]` = `shape`, `y` is `[N, C]`.
pub fn forward(ctx: &GpuContext, shape: [usize; 4], x: &GpuBuffer<f32>, y: &GpuBuffer<f32>) -> Launch {
    let [n, c, h, w] = shape;
    assert_eq!(
        x.len(),
        n * c * h * w,
        "global average pool forward: x has the wrong length"
    );
    assert_eq!(
        y.len(),
        n * c,
        "global average pool forward: y has the wrong length"
    );
    Launch::linear(
        ctx,
        Kernel::GlobalAvgPoolForward.stored(&[same_precision(&[x, y])]),
        &GlobalAvgPoolParams::new(shape),
        &[x.bind(), y.bind()],
        flat_workgroups(n * c),
    )
}

/// `dy` is `[N, C]`, `dx` is `[N, C, H, W]` = `shape` (fully overwritten).
pub fn backward(ctx: &GpuContext, shape: [usize; 4], dy: &GpuBuffer<f32>, dx: &GpuBuffer<f32>) -> Launch {
    let [n, c, h, w] = shape;
    assert_eq!(
        dy.len(),
        n * c,
        "global average pool backward: dy has the wrong length"
    );
    assert_eq!(
        dx.len(),
        n * c * h * w,
        "global average pool backward: dx has the wrong length"
    );
    Launch::linear(
        ctx,
        Kernel::GlobalAvgPoolBackward.plain(),
        &GlobalAvgPoolParams::new(shape),
        &[dy.bind(), dx.bind()],
        flat_workgroups(dx.len()),
    )
}

/// `x[N, C, H, W] → y[N, C]`, `y[n,c] = mean_{h,w} x[n,c,h,w]`.
pub fn forward_cpu(shape: [usize; 4], x: &[f64]) -> Vec<f64> {
    let [n, c, h, w] = shape;
    assert_eq!(x.len(), n * c * h * w);
    x.chunks_exact(h * w)
        .map(|plane| plane.iter().sum::<f64>() / (h * w) as f64)
        .collect()
}

/// `dy[N, C] → dx[N, C, H, W]`, `dx[n,c,h,w] = dy[n,c] / (H·W)`.
pub fn backward_cpu(shape: [usize; 4], dy: &[f64]) -> Vec<f64> {
    let [n, c, h, w] = shape;
    assert_eq!(dy.len(), n * c);
    dy.iter()
        .flat_map(|&g| std::iter::repeat_n(g / (h * w) as f64, h * w))
        .collect()
}
