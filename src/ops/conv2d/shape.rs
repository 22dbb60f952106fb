//! The geometry of a convolution layer, and the parameter struct its kernels receive.

use std::ops::Range;

/// The geometry of one convolution layer at a given batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dShape {
    pub batch: usize,
    pub in_channels: usize,
    pub in_height: usize,
    pub in_width: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

/// The uniform struct of `conv2d_*.wgsl`, declared once in `prelude_conv2d.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dParams {
    pub batch: u32,
    pub in_channels: u32,
    pub in_height: u32,
    pub in_width: u32,
    pub out_channels: u32,
    pub out_height: u32,
    pub out_width: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub has_bias: u32,
    pub accumulate: u32,
    /// Weight gradients: values of the reduction summed by each chunk; 0 where the portable
    /// and tiled kernels sum it whole.
    pub k_chunk: u32,
    /// The kernel rows `[live_h_start, live_h_end)` and columns `[live_w_start, live_w_end)`
    /// that reach the input ([`Conv2dShape::live_taps`]); the subgroup kernels skip the others.
    pub live_h_start: u32,
    pub live_h_end: u32,
    pub live_w_start: u32,
    pub live_w_end: u32,
    /// Whether the tiled kernels read A 4 values at a time as one vec4; set by the launcher
    /// (`reads_quads`).
    pub quads: u32,
}

impl Conv2dShape {
    /// A square kernel `k`, stride `s` and padding `p`.
    pub fn square(
        batch: usize,
        in_channels: usize,
        size: usize,
        out_channels: usize,
        k: usize,
        s: usize,
        p: usize,
    ) -> Self {
        Self {
            batch,
            in_channels,
            in_height: size,
            in_width: size,
            out_channels,
            kernel: [k, k],
            stride: [s, s],
            padding: [p, p],
        }
    }

    pub fn out_height(&self) -> usize {
        (self.in_height + 2 * self.padding[0] - self.kernel[0]) / self.stride[0] + 1
    }

    pub fn out_width(&self) -> usize {
        (self.in_width + 2 * self.padding[1] - self.kernel[1]) / self.stride[1] + 1
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_height * self.in_width
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_height() * self.out_width()
    }

    pub fn weight_len(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel[0] * self.kernel[1]
    }

    /// Floating-point operations of one of the three GEMMs (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        2.0 * self.output_len() as f64 * (self.in_channels * self.kernel[0] * self.kernel[1]) as f64
    }

    /// A 1×1, stride-1, unpadded convolution: a plain GEMM per image.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Whether the launchers run it as per-image GEMMs: pointwise, with enough pixels per
    /// image to fill the GEMM's column tiles. Below that (the 7×7 … 1×1 planes of late stages
    /// on small inputs) the implicit-GEMM kernels, whose columns run over batch × pixels, are
    /// far better fed.
    pub fn runs_as_gemm(&self) -> bool {
        self.is_pointwise() && self.pixels() >= GEMM_MIN_PIXELS
    }

    fn valid(&self) -> bool {
        self.batch > 0
            && self.in_channels > 0
            && self.out_channels > 0
            && self.kernel.iter().all(|&k| k > 0)
            && self.stride.iter().all(|&s| s > 0)
            && self.in_height + 2 * self.padding[0] >= self.kernel[0]
            && self.in_width + 2 * self.padding[1] >= self.kernel[1]
    }

    pub fn params(&self, has_bias: bool, accumulate: bool) -> Conv2dParams {
        assert!(self.valid(), "invalid convolution {self:?}");
        let u = |v: usize| v as u32;
        let [live_h, live_w] = self.live_taps();
        Conv2dParams {
            batch: u(self.batch),
            in_channels: u(self.in_channels),
            in_height: u(self.in_height),
            in_width: u(self.in_width),
            out_channels: u(self.out_channels),
            out_height: u(self.out_height()),
            out_width: u(self.out_width()),
            kernel_h: u(self.kernel[0]),
            kernel_w: u(self.kernel[1]),
            stride_h: u(self.stride[0]),
            stride_w: u(self.stride[1]),
            pad_h: u(self.padding[0]),
            pad_w: u(self.padding[1]),
            has_bias: has_bias as u32,
            accumulate: accumulate as u32,
            k_chunk: 0,
            live_h_start: u(live_h.start),
            live_h_end: u(live_h.end),
            live_w_start: u(live_w.start),
            live_w_end: u(live_w.end),
            quads: 0,
        }
    }

    /// The kernel rows and columns `[rows, columns]` that may read the input for some output
    /// position; the taps outside them read only padding. Tap `kh` reads input rows
    /// `oh·sh − ph + kh` for `oh < OH`, all padding unless `ph − (OH − 1)·sh ≤ kh < H + ph`
    /// (likewise `kw`); with stride 1 these are exactly the taps that reach the input. A 3×3
    /// kernel, padding 1, on a 1×1 plane (the last stage of a ResNet on 32-pixel images)
    /// reaches it with its centre only, and the other 8 taps add nothing. Where no tap reaches
    /// the input, the whole kernel.
    pub fn live_taps(&self) -> [Range<usize>; 2] {
        let live = |kernel: usize, pad: usize, reach: usize, size: usize| {
            let start = pad.saturating_sub(reach);
            let end = kernel.min(size + pad);
            if start < end { start..end } else { 0..kernel }
        };
        [
            live(
                self.kernel[0],
                self.padding[0],
                (self.out_height() - 1) * self.stride[0],
                self.in_height,
            ),
            live(
                self.kernel[1],
                self.padding[1],
                (self.out_width() - 1) * self.stride[1],
                self.in_width,
            ),
        ]
    }

    /// Weight-gradient columns `(ci, kh, kw)` whose taps are live: the N of the subgroup
    /// weight gradient's GEMM.
    pub(super) fn live_columns(&self) -> usize {
        let [rows, columns] = self.live_taps();
        self.in_channels * rows.len() * columns.len()
    }

    pub(super) fn pixels(&self) -> usize {
        self.in_height * self.in_width
    }
}

/// Pixels per image from which a pointwise convolution runs as per-image GEMMs.
const GEMM_MIN_PIXELS: usize = 64;
