//! 2-D max pooling, NCHW, PyTorch semantics (`nn.MaxPoolShape(kernel, stride, padding)`, no
//! dilation, `ceil_mode=False`).
//!
//! Shapes: `x[N, C, H, W] → y[N, C, OH, OW]` with `OH = ⌊(H + 2p − k)/s⌋ + 1` (`OW` likewise),
//! `y[n,c,oh,ow] = max over kh, kw < k of x[n, c, oh·s − p + kh, ow·s − p + kw]`, where
//! positions in the padding count as −∞ (never selected). The forward pass also records
//! `argmax[n,c,oh,ow]`, the flat index `h·W + w` inside the input plane of the first maximal
//! element in row-major window order.
//!
//! Backward: `dx[n,c,h,w] = Σ dy[n,c,oh,ow]` over the outputs whose argmax is `(h, w)`. The GPU
//! computes it as a gather, one invocation per input element over the windows containing it,
//! so no atomics are needed and the result is deterministic.

use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups, same_precision};
use crate::shaders::Kernel;

/// Parameters of `max_pool_forward.wgsl` and `max_pool_backward.wgsl` (32 bytes), declared once
/// in `prelude_max_pool.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MaxPoolParams {
    /// `N · C`.
    pub planes: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel: u32,
    pub stride: u32,
    pub pad: u32,
}

/// The shape of a max-pool layer: input `[batch, channels, in_h, in_w]`, square window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPoolShape {
    pub batch: usize,
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel: usize,
    pub stride: usize,
    pub pad: usize,
}

impl MaxPoolShape {
    /// Checks the configuration as PyTorch does: a positive window and stride, padding at most
    /// half the window (so every window holds a real element) and at least one output.
    pub fn new(
        batch: usize,
        channels: usize,
        in_h: usize,
        in_w: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        assert!(
            kernel > 0 && stride > 0,
            "max pool: kernel and stride must be positive"
        );
        assert!(
            pad <= kernel / 2,
            "max pool: padding {pad} exceeds half the kernel {kernel}"
        );
        assert!(
            in_h + 2 * pad >= kernel && in_w + 2 * pad >= kernel,
            "max pool: the {kernel}×{kernel} window does not fit in the padded {in_h}×{in_w} input"
        );
        Self {
            batch,
            channels,
            in_h,
            in_w,
            kernel,
            stride,
            pad,
        }
    }

    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad - self.kernel) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad - self.kernel) / self.stride + 1
    }

    pub fn planes(&self) -> usize {
        self.batch * self.channels
    }

    /// Elements of `x` and `dx`.
    pub fn input_len(&self) -> usize {
        self.planes() * self.in_h * self.in_w
    }

    /// Elements of `y`, `argmax` and `dy`.
    pub fn output_len(&self) -> usize {
        self.planes() * self.out_h() * self.out_w()
    }

    pub fn params(&self) -> MaxPoolParams {
        let fits = |v: usize| u32::try_from(v).expect("max pool: tensor too large for u32 indexing");
        fits(self.input_len());
        fits(self.output_len());
        fits(self.in_h + self.pad + self.stride);
        fits(self.in_w + self.pad + self.stride);
        MaxPoolParams {
            planes: fits(self.planes()),
            in_h: fits(self.in_h),
            in_w: fits(self.in_w),
            out_h: fits(self.out_h()),
            out_w: fits(self.out_w()),
            kernel: fits(self.kernel),
            stride: fits(self.stride),
            pad: fits(self.pad),
        }
    }
}

/// `y` and `argmax` (`u32`) have `shape.output_len()` elements, `x` has `shape.input_len()`.
pub fn forward(
    ctx: &GpuContext,
    shape: &MaxPoolShape,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    argmax: &GpuBuffer<u32>,
) -> Launch {
    assert_eq!(
        x.len(),
        shape.input_len(),
        "max pool forward: x has the wrong length"
    );
    assert_eq!(
        y.len(),
        shape.output_len(),
        "max pool forward: y has the wrong length"
    );
    assert_eq!(
        argmax.len(),
        shape.output_len(),
        "max pool forward: argmax has the wrong length"
    );
    Launch::linear(
        ctx,
        Kernel::MaxPoolForward.stored(&[same_precision(&[x, y])]),
        &shape.params(),
        &[x.bind(), y.bind(), argmax.bind()],
        flat_workgroups(shape.output_len()),
    )
}

/// `argmax` is the forward pass's; `dy` has `shape.output_len()` elements, `dx` is fully
/// overwritten and has `shape.input_len()`.
pub fn backward(
    ctx: &GpuContext,
    shape: &MaxPoolShape,
    argmax: &GpuBuffer<u32>,
    dy: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
) -> Launch {
    assert_eq!(
        argmax.len(),
        shape.output_len(),
        "max pool backward: argmax has the wrong length"
    );
    assert_eq!(
        dy.len(),
        shape.output_len(),
        "max pool backward: dy has the wrong length"
    );
    assert_eq!(
        dx.len(),
        shape.input_len(),
        "max pool backward: dx has the wrong length"
    );
    Launch::linear(
        ctx,
        Kernel::MaxPoolBackward.plain(),
        &shape.params(),
        &[argmax.bind(), dy.bind(), dx.bind()],
        flat_workgroups(shape.input_len()),
    )
}

/// Returns `(y, argmax)`, both `[N, C, OH, OW]`, for `x[N, C, H, W]`.
/// `y[n,c,oh,ow] = x[n,c,h*,w*]` with `(h*, w*)` the first maximum in row-major window order
/// (a NaN counts as the maximum, as in PyTorch); `argmax = h*·W + w*`.
pub fn forward_cpu(shape: &MaxPoolShape, x: &[f64]) -> (Vec<f64>, Vec<u32>) {
    assert_eq!(x.len(), shape.input_len());
    let (h_in, w_in, h_out, w_out) = (shape.in_h, shape.in_w, shape.out_h(), shape.out_w());
    let mut y = Vec::with_capacity(shape.output_len());
    let mut argmax = Vec::with_capacity(shape.output_len());
    for plane in x.chunks_exact(h_in * w_in) {
        for oh in 0..h_out {
            for ow in 0..w_out {
                let h0 = (oh * shape.stride) as isize - shape.pad as isize;
                let w0 = (ow * shape.stride) as isize - shape.pad as isize;
                let (mut best, mut best_index) = (f64::NEG_INFINITY, None);
                for h in h0.max(0)..(h0 + shape.kernel as isize).min(h_in as isize) {
                    for w in w0.max(0)..(w0 + shape.kernel as isize).min(w_in as isize) {
                        let index = h as usize * w_in + w as usize;
                        let v = plane[index];
                        if best_index.is_none() || v > best || v.is_nan() {
                            best = v;
                            best_index = Some(index);
                        }
                    }
                }
                let index = best_index.expect("every window holds an element");
                y.push(best);
                argmax.push(index as u32);
            }
        }
    }
    (y, argmax)
}

/// `dx[n,c,h,w] = Σ dy[n,c,oh,ow]` over the outputs with `argmax[n,c,oh,ow] = h·W + w`.
/// `argmax` and `dy` are `[N, C, OH, OW]`; returns `dx[N, C, H, W]`.
pub fn backward_cpu(shape: &MaxPoolShape, argmax: &[u32], dy: &[f64]) -> Vec<f64> {
    assert_eq!(argmax.len(), shape.output_len());
    assert_eq!(dy.len(), shape.output_len());
    let in_plane = shape.in_h * shape.in_w;
    let out_plane = shape.out_h() * shape.out_w();
    let mut dx = vec![0.0; shape.input_len()];
    for p in 0..shape.planes() {
        for o in 0..out_plane {
            dx[p * in_plane + argmax[p * out_plane + o] as usize] += dy[p * out_plane + o];
        }
    }
    dx
}
