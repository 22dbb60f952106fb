//! Nearest-neighbour upsampling (resizing), NCHW: `x[N, C, IH, IW] → y[N, C, OH, OW]` with
//! `y[n,c,oh,ow] = x[n, c, ⌊oh·IH/OH⌋, ⌊ow·IW/OW⌋]`, the source index computed in exact
//! integer arithmetic. This is PyTorch's `mode='nearest'` for integer ratios (32 → 224); for
//! other ratios PyTorch's floating-point scale may pick a neighbouring pixel.
//!
//! Backward: `dx[n,c,ih,iw] = Σ dy[n,c,oh,ow]` over the output pixels that read `(ih, iw)`:
//! rows `⌈ih·OH/IH⌉ ≤ oh < ⌈(ih+1)·OH/IH⌉` and columns likewise. The GPU computes it as a
//! gather, one invocation per input pixel: no atomics, deterministic.

use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups, same_precision};
use crate::shaders::Kernel;

/// Parameters of `upsample_nearest_forward.wgsl` and `upsample_nearest_backward.wgsl`
/// (32 bytes), declared once in `prelude_upsample.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct UpsampleParams {
    /// `N · C`.
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub _pad: [u32; 3],
}

/// The shape of a nearest resize: `[batch, channels, in_h, in_w] → [batch, channels, out_h, out_w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpsampleShape {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl UpsampleShape {
    pub fn new(
        batch: usize,
        channels: usize,
        (in_h, in_w): (usize, usize),
        (out_h, out_w): (usize, usize),
    ) -> Self {
        assert!(
            in_h > 0 && in_w > 0 && out_h > 0 && out_w > 0,
            "upsample: spatial sizes must be positive"
        );
        Self {
            batch,
            channels,
            in_h,
            in_w,
            out_h,
            out_w,
        }
    }

    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Elements of `x` and `dx`.
    pub fn input_len(&self) -> usize {
        self.planes() * self.in_h * self.in_w
    }

    /// Elements of `y` and `dy`.
    pub fn output_len(&self) -> usize {
        self.planes() * self.out_h * self.out_w
    }

    pub fn params(&self) -> UpsampleParams {
        let fits = |v: usize| u32::try_from(v).expect("upsample: tensor too large for u32 indexing");
        fits(self.input_len());
        fits(self.output_len());
        // The largest intermediate products of the index arithmetic in both kernels.
        fits((self.in_h + 1) * self.out_h + self.in_h);
        fits((self.in_w + 1) * self.out_w + self.in_w);
        UpsampleParams {
            planes: fits(self.planes()),
            in_h: fits(self.in_h),
            in_w: fits(self.in_w),
            out_h: fits(self.out_h),
            out_w: fits(self.out_w),
            _pad: [0; 3],
        }
    }
}

/// `x` has `shape.input_len()` elements, `y` has `shape.output_len()`.
pub fn forward(ctx: &GpuContext, shape: &UpsampleShape, x: &GpuBuffer<f32>, y: &GpuBuffer<f32>) -> Launch {
    assert_eq!(
        x.len(),
        shape.input_len(),
        "upsample forward: x has the wrong length"
    );
    assert_eq!(
        y.len(),
        shape.output_len(),
        "upsample forward: y has the wrong length"
    );
    Launch::linear(
        ctx,
        Kernel::UpsampleNearestForward.stored(&[same_precision(&[x, y])]),
        &shape.params(),
        &[x.bind(), y.bind()],
        flat_workgroups(shape.output_len()),
    )
}

/// `dy` has `shape.output_len()` elements, `dx` has `shape.input_len()` (fully overwritten).
pub fn backward(ctx: &GpuContext, shape: &UpsampleShape, dy: &GpuBuffer<f32>, dx: &GpuBuffer<f32>) -> Launch {
    assert_eq!(
        dy.len(),
        shape.output_len(),
        "upsample backward: dy has the wrong length"
    );
    assert_eq!(
        dx.len(),
        shape.input_len(),
        "upsample backward: dx has the wrong length"
    );
    Launch::linear(
        ctx,
        Kernel::UpsampleNearestBackward.plain(),
        &shape.params(),
        &[dy.bind(), dx.bind()],
        flat_workgroups(shape.input_len()),
    )
}

/// `x[N, C, IH, IW] → y[N, C, OH, OW]`, `y[n,c,oh,ow] = x[n,c,⌊oh·IH/OH⌋,⌊ow·IW/OW⌋]`.
pub fn forward_cpu(shape: &UpsampleShape, x: &[f64]) -> Vec<f64> {
    assert_eq!(x.len(), shape.input_len());
    let mut y = Vec::with_capacity(shape.output_len());
    for plane in x.chunks_exact(shape.in_h * shape.in_w) {
        for oh in 0..shape.out_h {
            let ih = oh * shape.in_h / shape.out_h;
            for ow in 0..shape.out_w {
                let iw = ow * shape.in_w / shape.out_w;
                y.push(plane[ih * shape.in_w + iw]);
            }
        }
    }
    y
}

/// `dy[N, C, OH, OW] → dx[N, C, IH, IW]`: each `dy` element is added to the input pixel its
/// forward value came from (a scatter here; the GPU gathers the same sums).
pub fn backward_cpu(shape: &UpsampleShape, dy: &[f64]) -> Vec<f64> {
    assert_eq!(dy.len(), shape.output_len());
    let in_plane = shape.in_h * shape.in_w;
    let mut dx = vec![0.0; shape.input_len()];
    for (p, plane) in dy.chunks_exact(shape.out_h * shape.out_w).enumerate() {
        for oh in 0..shape.out_h {
            let ih = oh * shape.in_h / shape.out_h;
            for ow in 0..shape.out_w {
                let iw = ow * shape.in_w / shape.out_w;
                dx[p * in_plane + ih * shape.in_w + iw] += plane[oh * shape.out_w + ow];
            }
        }
    }
    dx
}
