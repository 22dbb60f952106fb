//! 2-D convolution (cross-correlation, as PyTorch) in NCHW layout, forward and backward.
//!
//! Shapes: x [B, Cin, H, W], w [Cout, Cin, KH, KW], bias [Cout], y [B, Cout, OH, OW] with
//! `OH = (H + 2·ph − KH) / sh + 1` (and likewise OW); padding reads zeros.
//!
//! - forward:      `y[b,co,oh,ow] = bias[co] + Σ_{ci,kh,kw} w[co,ci,kh,kw] · x[b,ci,oh·sh−ph+kh, ow·sw−pw+kw]`
//! - input grad:   `dx[b,ci,ih,iw] = Σ_{co,kh,kw} w[co,ci,kh,kw] · dy[b,co,oh,ow]` where `ih = oh·sh−ph+kh`
//! - weight grad:  `dw[co,ci,kh,kw] = Σ_{b,oh,ow} dy[b,co,oh,ow] · x[b,ci,oh·sh−ph+kh, ow·sw−pw+kw]`
//! - bias grad:    `db[co] = Σ_{b,oh,ow} dy[b,co,oh,ow]` (see [`crate::ops::bias_grad`]).
//!
//! Each GEMM runs as an implicit GEMM (no im2col buffer); a 1×1, stride-1, unpadded
//! convolution runs as a plain GEMM ([`crate::ops::matmul`]).

use crate::gpu::{GemmOp, GpuBuffer, GpuContext, KernelChoices, Launch, Variant, assert_f32, same_precision};
use crate::ops::matmul;
use crate::ops::split_k;
use crate::shaders::{GEMM_TILED, Kernel, Precision};

mod shape;
mod variants;

pub use shape::{Conv2dParams, Conv2dShape};
pub use variants::{applies, candidates, launch_key, split_k_chunks, subgroup_weight_grad_chunks, variants};
use variants::{
    assert_applies, choose, forward_gemm, implicit_gemm_grid, input_grad_gemm, subgroup_kernel,
    weight_grad_gemm,
};

/// The three GEMMs of a convolution layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    InputGrad,
    WeightGrad,
}

impl Direction {
    pub const ALL: [Direction; 3] = [Direction::Forward, Direction::InputGrad, Direction::WeightGrad];

    /// How the launch's three tensors, in the order its launcher takes them (forward: x, w,
    /// y; input gradient: dy, w, dx; weight gradient: dy, x, dw; a linear layer's alike), are
    /// stored where activations are stored at `activations`: gradients and weights are f32.
    pub fn operands(self, activations: Precision) -> [Precision; 3] {
        let f32 = Precision::F32;
        match self {
            Direction::Forward => [activations, f32, activations],
            Direction::InputGrad => [f32, f32, f32],
            Direction::WeightGrad => [f32, activations, f32],
        }
    }

    /// "forward", "input grad" or "weight grad", for reports.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::InputGrad => "input grad",
            Direction::WeightGrad => "weight grad",
        }
    }

    pub(super) fn op(self) -> GemmOp {
        match self {
            Direction::Forward => GemmOp::ConvForward,
            Direction::InputGrad => GemmOp::ConvInputGrad,
            Direction::WeightGrad => GemmOp::ConvWeightGrad,
        }
    }
}

/// `y = conv(x, w) + bias`, on the variant `kernels` picks for the shape.
pub fn forward(
    ctx: &GpuContext,
    kernels: &KernelChoices,
    shape: &Conv2dShape,
    x: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    y: &GpuBuffer<f32>,
) -> Launch {
    let (key, variant) = choose(ctx, kernels, Direction::Forward, shape, [x, w, y]);
    forward_with(ctx, variant, shape, x, w, bias, y)
        .chosen_for(key)
        .counting(shape.flops())
}

/// [`forward`] on a given variant, which must apply to the shape ([`applies`]).
pub fn forward_with(
    ctx: &GpuContext,
    variant: Variant,
    shape: &Conv2dShape,
    x: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    y: &GpuBuffer<f32>,
) -> Launch {
    assert_eq!(x.len(), shape.input_len(), "conv2d forward: input size");
    assert_eq!(w.len(), shape.weight_len(), "conv2d forward: weight size");
    assert_eq!(y.len(), shape.output_len(), "conv2d forward: output size");
    assert_applies(ctx, Direction::Forward, shape, variant);
    if shape.runs_as_gemm() {
        return matmul::launch_with(ctx, variant, &forward_gemm(shape, bias.is_some()), w, x, bias, y);
    }
    let mut params = shape.params(bias.is_some(), false);
    let kernel = match variant {
        Variant::Subgroup | Variant::SubgroupWide => subgroup_kernel(
            variant,
            Kernel::Conv2dForwardSubgroup,
            Kernel::Conv2dForwardSubgroupWide,
        ),
        Variant::Portable => Kernel::Conv2dForward,
        Variant::Tiled => Kernel::Conv2dForwardTiled,
        Variant::Tiled64 => Kernel::Conv2dForwardTiled64,
        Variant::Narrow => Kernel::Conv2dForwardNarrow,
        Variant::SplitK | Variant::SplitKTiled => {
            unreachable!("checked above: split-K runs weight gradients only")
        }
    };
    let grid = implicit_gemm_grid(
        ctx,
        variant,
        shape.out_channels,
        shape.batch * shape.out_height() * shape.out_width(),
    );
    params.quads = reads_quads(kernel, Direction::Forward, shape, 0) as u32;
    let bias = bias.map_or(ctx.placeholder().as_entire_buffer_binding(), |b| b.bind());
    let buffers = with_quad_view(kernel, vec![x.bind(), w.bind(), bias, y.bind()], w);
    let kernel = kernel.stored(&[same_precision(&[x, y])]);
    Launch::new(ctx, kernel, &params, &buffers, grid).ran(variant)
}

/// Whether a kernel reads A of this direction in quads, 4 values as one vec4
/// ([`Conv2dParams::quads`]): the tiled kernels, where the forward's rows of w (K = Cin·KH·KW
/// values), or the weight gradient's planes of dy (OH·OW values) and its chunks of the
/// reduction (`k_chunk` values, 0 for whole), are multiples of 4. The input gradient reads its
/// weights transposed, and every other operand is gathered: value by value.
fn reads_quads(kernel: Kernel, direction: Direction, shape: &Conv2dShape, k_chunk: u32) -> bool {
    let four = |n: usize| n.is_multiple_of(4);
    has_quad_view(kernel)
        && match direction {
            Direction::Forward => four(shape.in_channels * shape.kernel[0] * shape.kernel[1]),
            Direction::WeightGrad => four(shape.out_height() * shape.out_width()) && four(k_chunk as usize),
            Direction::InputGrad => false,
        }
}

/// Whether a forward or weight-gradient kernel binds a vec4 view of its A (conv2d_forward.wgsl,
/// conv2d_weight_grad.wgsl): the tiled ones.
fn has_quad_view(kernel: Kernel) -> bool {
    kernel.bodies().contains(&GEMM_TILED)
}

/// A forward or weight-gradient kernel's `buffers`, and after them, where it has one
/// ([`has_quad_view`]), the vec4 view of `a`.
fn with_quad_view<'a>(
    kernel: Kernel,
    mut buffers: Vec<wgpu::BufferBinding<'a>>,
    a: &'a GpuBuffer<f32>,
) -> Vec<wgpu::BufferBinding<'a>> {
    if has_quad_view(kernel) {
        buffers.push(a.bind());
    }
    buffers
}

/// `dx (+)= ∂L/∂x` from `dy`; with `accumulate` the result is added to what `dx` holds (a
/// tensor that also receives gradient from a residual shortcut).
pub fn input_grad(
    ctx: &GpuContext,
    kernels: &KernelChoices,
    shape: &Conv2dShape,
    dy: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    let (key, variant) = choose(ctx, kernels, Direction::InputGrad, shape, [dy, w, dx]);
    input_grad_with(ctx, variant, shape, dy, w, dx, accumulate)
        .chosen_for(key)
        .counting(shape.flops())
}

/// [`input_grad`] on a given variant, which must apply to the shape ([`applies`]).
pub fn input_grad_with(
    ctx: &GpuContext,
    variant: Variant,
    shape: &Conv2dShape,
    dy: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    assert_eq!(dy.len(), shape.output_len(), "conv2d input grad: dy size");
    assert_eq!(w.len(), shape.weight_len(), "conv2d input grad: weight size");
    assert_eq!(dx.len(), shape.input_len(), "conv2d input grad: dx size");
    assert_applies(ctx, Direction::InputGrad, shape, variant);
    if shape.runs_as_gemm() {
        return matmul::launch_with(ctx, variant, &input_grad_gemm(shape, accumulate), w, dy, None, dx);
    }
    let params = shape.params(false, accumulate);
    let kernel = match variant {
        Variant::Subgroup | Variant::SubgroupWide => subgroup_kernel(
            variant,
            Kernel::Conv2dInputGradSubgroup,
            Kernel::Conv2dInputGradSubgroupWide,
        ),
        Variant::Portable => Kernel::Conv2dInputGrad,
        Variant::Tiled => Kernel::Conv2dInputGradTiled,
        Variant::Tiled64 => Kernel::Conv2dInputGradTiled64,
        Variant::Narrow => Kernel::Conv2dInputGradNarrow,
        Variant::SplitK | Variant::SplitKTiled => {
            unreachable!("checked above: split-K runs weight gradients only")
        }
    };
    // One z slice per stride phase (prelude_conv2d_input_grad.wgsl), each as wide as the
    // largest phase, ⌈H/sh⌉·⌈W/sw⌉ pixels an image.
    let [sh, sw] = shape.stride;
    let phase_pixels = shape.in_height.div_ceil(sh) * shape.in_width.div_ceil(sw);
    let [x, y, wraps] = implicit_gemm_grid(ctx, variant, shape.in_channels, shape.batch * phase_pixels);
    let grid = [x, y, wraps * (sh * sw) as u32];
    assert_f32(&[dy, dx]);
    Launch::new(
        ctx,
        kernel.plain(),
        &params,
        &[dy.bind(), w.bind(), dx.bind()],
        grid,
    )
    .ran(variant)
}

/// `dw (+)= ∂L/∂w` from `dy` and the layer's input `x`; with `accumulate` the result is added
/// to what `dw` holds (gradient accumulation over micro-batches).
pub fn weight_grad(
    ctx: &GpuContext,
    kernels: &KernelChoices,
    shape: &Conv2dShape,
    dy: &GpuBuffer<f32>,
    x: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    let (key, variant) = choose(ctx, kernels, Direction::WeightGrad, shape, [dy, x, dw]);
    weight_grad_with(ctx, variant, shape, dy, x, dw, accumulate)
        .chosen_for(key)
        .counting(shape.flops())
}

/// [`weight_grad`] on a given variant, which must apply to the shape ([`applies`]).
pub fn weight_grad_with(
    ctx: &GpuContext,
    variant: Variant,
    shape: &Conv2dShape,
    dy: &GpuBuffer<f32>,
    x: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    assert_eq!(dy.len(), shape.output_len(), "conv2d weight grad: dy size");
    assert_eq!(x.len(), shape.input_len(), "conv2d weight grad: input size");
    assert_eq!(dw.len(), shape.weight_len(), "conv2d weight grad: dw size");
    assert_applies(ctx, Direction::WeightGrad, shape, variant);
    assert_f32(&[dy, dw]);
    if shape.runs_as_gemm() {
        return matmul::launch_with(
            ctx,
            variant,
            &weight_grad_gemm(shape, accumulate),
            dy,
            x,
            None,
            dw,
        );
    }
    let columns = shape.in_channels * shape.kernel[0] * shape.kernel[1];
    if let Some(tile) = variant.split_tile() {
        let chunks = split_k_chunks(shape, ctx.reduction_bound(), tile)
            .expect("split-K applies to this weight gradient");
        let k_total = shape.batch * shape.out_height() * shape.out_width();
        // The partial pass writes its sums whole (the shared store adds the old value only
        // where `accumulate` is set); the second pass adds into dw where asked.
        // Chunks of a multiple of 4 values, which the tiled kernels may read in quads.
        let mut params = shape.params(false, false);
        params.k_chunk = k_total.div_ceil(chunks).next_multiple_of(4) as u32;
        let grid = [
            columns.div_ceil(tile) as u32,
            shape.out_channels.div_ceil(tile) as u32,
            chunks as u32,
        ];
        let kernel = tile_loop_weight_grad(variant);
        return weight_grad_in_chunks(ctx, kernel, &params, grid, chunks, shape, dy, x, dw, accumulate)
            .ran(variant);
    }
    if variant.uses_subgroups() {
        return subgroup_weight_grad(ctx, variant, shape, dy, x, dw, accumulate).ran(variant);
    }
    let kernel = tile_loop_weight_grad(variant);
    let mut params = shape.params(false, accumulate);
    params.quads = reads_quads(kernel, Direction::WeightGrad, shape, 0) as u32;
    let grid = implicit_gemm_grid(ctx, variant, shape.out_channels, columns);
    let buffers = with_quad_view(kernel, vec![dy.bind(), x.bind(), dw.bind()], dy);
    Launch::new(ctx, kernel.stored(&[x.precision()]), &params, &buffers, grid).ran(variant)
}

/// The weight-gradient kernel of a variant that runs a tile loop (portable or tiled, whole or
/// split-K).
fn tile_loop_weight_grad(variant: Variant) -> Kernel {
    match variant {
        Variant::Portable | Variant::SplitK => Kernel::Conv2dWeightGrad,
        Variant::Tiled | Variant::SplitKTiled => Kernel::Conv2dWeightGradTiled,
        Variant::Tiled64 => Kernel::Conv2dWeightGradTiled64,
        Variant::Subgroup | Variant::SubgroupWide => unreachable!("the subgroup kernels run no tile loop"),
        Variant::Narrow => unreachable!("not a weight-gradient variant: refused by assert_applies"),
    }
}

/// The subgroup weight gradient: in one launch where the batch fits one invocation's loops,
/// else per chunk of whole images into partial sums that a second launch adds in order.
fn subgroup_weight_grad(
    ctx: &GpuContext,
    variant: Variant,
    shape: &Conv2dShape,
    dy: &GpuBuffer<f32>,
    x: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    let chunks = subgroup_weight_grad_chunks(shape, ctx.reduction_bound())
        .expect("the subgroup weight gradient applies");
    let images_per_chunk = shape.batch.div_ceil(chunks);
    let chunks = shape.batch.div_ceil(images_per_chunk);
    let [x_tiles, m_tiles, wraps] =
        implicit_gemm_grid(ctx, variant, shape.out_channels, shape.live_columns());
    let kernel = subgroup_kernel(
        variant,
        Kernel::Conv2dWeightGradSubgroup,
        Kernel::Conv2dWeightGradSubgroupWide,
    );
    let grid = [x_tiles, m_tiles * chunks as u32, wraps];
    let mut params = shape.params(false, accumulate && chunks == 1);
    params.k_chunk = (images_per_chunk * shape.out_height() * shape.out_width()) as u32;
    if chunks == 1 {
        let buffers = [dy.bind(), x.bind(), dw.bind()];
        return Launch::new(ctx, kernel.stored(&[x.precision()]), &params, &buffers, grid);
    }
    weight_grad_in_chunks(ctx, kernel, &params, grid, chunks, shape, dy, x, dw, accumulate)
}

/// A weight gradient whose reduction `kernel` sums chunk by chunk into the shared scratch
/// buffer (`partial [chunks, Cout·Cin·KH·KW]`), then [`split_k::sum`] adds the chunks in order
/// into `dw`.
#[allow(clippy::too_many_arguments)]
fn weight_grad_in_chunks(
    ctx: &GpuContext,
    kernel: Kernel,
    params: &Conv2dParams,
    grid: [u32; 3],
    chunks: usize,
    shape: &Conv2dShape,
    dy: &GpuBuffer<f32>,
    x: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    let partial = ctx
        .scratch(chunks * shape.weight_len())
        .prefix(chunks * shape.weight_len());
    let mut params = *params;
    params.quads = reads_quads(kernel, Direction::WeightGrad, shape, params.k_chunk) as u32;
    let buffers = with_quad_view(kernel, vec![dy.bind(), x.bind(), partial.bind()], dy);
    let partials = Launch::new(ctx, kernel.stored(&[x.precision()]), &params, &buffers, grid);
    partials.then(split_k::sum(
        ctx,
        &partial,
        chunks,
        shape.weight_len(),
        dw,
        accumulate,
    ))
}

/// Calls `f(b, co, ci, oh, ow, x_index, w_index, y_index)` for every term of the convolution
/// sum whose input position lies inside the image: the three references share this walk.
fn for_each_term(s: &Conv2dShape, mut f: impl FnMut(usize, usize, usize)) {
    let (oh_n, ow_n) = (s.out_height(), s.out_width());
    let [kh_n, kw_n] = s.kernel;
    for b in 0..s.batch {
        for co in 0..s.out_channels {
            for oh in 0..oh_n {
                for ow in 0..ow_n {
                    let y_at = ((b * s.out_channels + co) * oh_n + oh) * ow_n + ow;
                    for ci in 0..s.in_channels {
                        for kh in 0..kh_n {
                            let ih = (oh * s.stride[0] + kh) as isize - s.padding[0] as isize;
                            if ih < 0 || ih >= s.in_height as isize {
                                continue;
                            }
                            for kw in 0..kw_n {
                                let iw = (ow * s.stride[1] + kw) as isize - s.padding[1] as isize;
                                if iw < 0 || iw >= s.in_width as isize {
                                    continue;
                                }
                                let x_at = ((b * s.in_channels + ci) * s.in_height + ih as usize)
                                    * s.in_width
                                    + iw as usize;
                                let w_at = ((co * s.in_channels + ci) * kh_n + kh) * kw_n + kw;
                                f(x_at, w_at, y_at);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// CPU reference of the forward pass.
pub fn forward_cpu(s: &Conv2dShape, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let pixels = s.out_height() * s.out_width();
    let mut y: Vec<f64> = (0..s.output_len())
        .map(|i| bias.map_or(0.0, |b| b[(i / pixels) % s.out_channels]))
        .collect();
    for_each_term(s, |x_at, w_at, y_at| y[y_at] += w[w_at] * x[x_at]);
    y
}

/// CPU reference of the input gradient.
pub fn input_grad_cpu(s: &Conv2dShape, dy: &[f64], w: &[f64]) -> Vec<f64> {
    let mut dx = vec![0.0; s.input_len()];
    for_each_term(s, |x_at, w_at, y_at| dx[x_at] += w[w_at] * dy[y_at]);
    dx
}

/// CPU reference of the weight gradient.
pub fn weight_grad_cpu(s: &Conv2dShape, dy: &[f64], x: &[f64]) -> Vec<f64> {
    let mut dw = vec![0.0; s.weight_len()];
    for_each_term(s, |x_at, w_at, y_at| dw[w_at] += dy[y_at] * x[x_at]);
    dw
}
