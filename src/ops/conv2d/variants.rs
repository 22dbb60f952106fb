//! Which variants run a convolution's three GEMMs, and the GEMM forms, launch keys, chunking
//! and grids they use.

use super::{Conv2dShape, Direction};
use crate::gpu::{GemmKey, GpuBuffer, GpuContext, KernelChoices, Variant};
use crate::ops::matmul::{self, Bias, MatmulParams};
use crate::shaders::{Kernel, Precision};

/// Forward as per-image GEMMs: y[b] [Cout, P] = w [Cout, Cin] · x[b] [Cin, P].
pub(super) fn forward_gemm(shape: &Conv2dShape, has_bias: bool) -> MatmulParams {
    let mut p = MatmulParams::row_major(shape.batch, shape.out_channels, shape.pixels(), shape.in_channels);
    p.a_batch = 0;
    p.with_bias(if has_bias { Bias::PerRow } else { Bias::None })
}

/// Input gradient as per-image GEMMs: dx[b] [Cin, P] = wᵀ [Cin, Cout] · dy[b] [Cout, P].
pub(super) fn input_grad_gemm(shape: &Conv2dShape, accumulate: bool) -> MatmulParams {
    let mut p = MatmulParams::row_major(shape.batch, shape.in_channels, shape.pixels(), shape.out_channels);
    p.a_batch = 0;
    p.a_row = 1;
    p.a_k = shape.in_channels as u32;
    p.accumulating(accumulate)
}

/// Weight gradient as one GEMM summed over images: dw [Cout, Cin] = Σ_b dy[b] [Cout, P] ·
/// x[b]ᵀ [P, Cin].
pub(super) fn weight_grad_gemm(shape: &Conv2dShape, accumulate: bool) -> MatmulParams {
    let pixels = shape.pixels() as u32;
    let mut p = MatmulParams::row_major(shape.batch, shape.out_channels, shape.in_channels, shape.pixels())
        .summed_over_batch()
        .accumulating(accumulate);
    p.a_batch = shape.out_channels as u32 * pixels;
    p.a_row = pixels;
    p.a_k = 1;
    p.b_batch = shape.in_channels as u32 * pixels;
    p.b_k = 1;
    p.b_col = pixels;
    p
}

/// The launch shape whose kernel choice a direction of this convolution uses: the GEMM's
/// where it runs as a GEMM, else the convolution's own.
pub fn launch_key(direction: Direction, shape: &Conv2dShape, operands: [Precision; 3]) -> GemmKey {
    if shape.runs_as_gemm() {
        let gemm = match direction {
            Direction::Forward => forward_gemm(shape, false),
            Direction::InputGrad => input_grad_gemm(shape, false),
            Direction::WeightGrad => weight_grad_gemm(shape, false),
        };
        return matmul::gemm_key(&gemm, operands);
    }
    let s = shape;
    GemmKey::new(
        direction.op(),
        format_args!(
            "b{} {}x{}x{} -> {} k{}x{} s{}x{} p{}x{}",
            s.batch,
            s.in_channels,
            s.in_height,
            s.in_width,
            s.out_channels,
            s.kernel[0],
            s.kernel[1],
            s.stride[0],
            s.stride[1],
            s.padding[0],
            s.padding[1]
        ),
    )
    .at(operands)
}

/// The variants of a direction of this convolution, whatever the adapter offers, in order of
/// preference when nothing was measured.
pub fn variants(direction: Direction, shape: &Conv2dShape, bound: Option<usize>) -> Vec<Variant> {
    if shape.runs_as_gemm() {
        let gemm = match direction {
            Direction::Forward => forward_gemm(shape, false),
            Direction::InputGrad => input_grad_gemm(shape, false),
            Direction::WeightGrad => weight_grad_gemm(shape, false),
        };
        return matmul::variants(&gemm, bound);
    }
    if direction != Direction::WeightGrad {
        return vec![
            Variant::Portable,
            Variant::Subgroup,
            Variant::SubgroupWide,
            Variant::Tiled,
            Variant::Tiled64,
            Variant::Narrow,
        ];
    }
    let mut all = Vec::new();
    if weight_grad_reduction(shape) <= bound.unwrap_or(usize::MAX) {
        all.extend([Variant::Portable, Variant::Tiled, Variant::Tiled64]);
    }
    if subgroup_weight_grad_chunks(shape, bound).is_some() {
        all.extend([Variant::Subgroup, Variant::SubgroupWide]);
    }
    for split in [Variant::SplitK, Variant::SplitKTiled] {
        let tile = split.split_tile().expect("a split-K variant");
        if split_k_chunks(shape, bound, tile).is_some() {
            all.push(split);
        }
    }
    all
}

/// The variants of a direction of this convolution that run on this adapter, in order of
/// preference when nothing was measured.
pub fn candidates(ctx: &GpuContext, direction: Direction, shape: &Conv2dShape) -> Vec<Variant> {
    let all = ctx.applicable(&variants(direction, shape, ctx.reduction_bound()));
    if all.is_empty() {
        // Nothing splits this reduction here (more than 65,535 column tiles, or no subgroups):
        // the portable kernel sums it whole, which llvmpipe cuts short past MAX_REDUCTION.
        return vec![Variant::Portable];
    }
    all
}

/// Whether `variant` can run this direction of the convolution on this adapter: one of its
/// [`variants`] (or the portable fallback of [`candidates`]) whose operations the adapter has.
pub fn applies(ctx: &GpuContext, direction: Direction, shape: &Conv2dShape, variant: Variant) -> bool {
    ctx.runs(variant)
        && (variants(direction, shape, ctx.reduction_bound()).contains(&variant)
            || candidates(ctx, direction, shape) == [variant])
}

/// Panics with the launch and the variants that apply where a caller asks for one that does not.
pub(super) fn assert_applies(ctx: &GpuContext, direction: Direction, shape: &Conv2dShape, variant: Variant) {
    assert!(
        applies(ctx, direction, shape, variant),
        "{}: the {variant} kernels do not apply to this launch on this adapter (these do: {})",
        launch_key(direction, shape, [Precision::F32; 3]),
        candidates(ctx, direction, shape)
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// How many chunks of whole images the subgroup weight gradient sums separately so that no
/// invocation loops past the reduction `bound` where the adapter has one (its loops run
/// B·OH·OW + B·OH + B times in all): 1 where the whole batch fits, and always where there is no
/// bound. `None` where one image alone is too long, or the partial sums would take more than
/// 64 M floats.
pub fn subgroup_weight_grad_chunks(shape: &Conv2dShape, bound: Option<usize>) -> Option<usize> {
    let per_image = shape.out_height() * shape.out_width() + shape.out_height() + 1;
    let images_per_chunk = bound.map_or(shape.batch, |b| b / per_image);
    if images_per_chunk == 0 {
        return None;
    }
    let chunks = shape.batch.div_ceil(images_per_chunk);
    (chunks == 1 || chunks * shape.weight_len() <= 64 << 20).then_some(chunks)
}

/// The length of a weight gradient's reduction, `K = B·OH·OW`.
pub(super) fn weight_grad_reduction(shape: &Conv2dShape) -> usize {
    shape.batch * shape.out_height() * shape.out_width()
}

/// The key of a direction of this convolution over these three tensors (as its launcher takes
/// them), and the variant `kernels` picks for it on this adapter.
pub(super) fn choose(
    ctx: &GpuContext,
    kernels: &KernelChoices,
    direction: Direction,
    shape: &Conv2dShape,
    [a, b, c]: [&GpuBuffer<f32>; 3],
) -> (GemmKey, Variant) {
    let key = launch_key(direction, shape, [a.precision(), b.precision(), c.precision()]);
    let variant = kernels.pick(&key, &candidates(ctx, direction, shape));
    (key, variant)
}

/// The kernel of a subgroup variant: the 8-lane one, or the wide one.
pub(super) fn subgroup_kernel(variant: Variant, eight_lanes: Kernel, wide: Kernel) -> Kernel {
    match variant {
        Variant::Subgroup => eight_lanes,
        Variant::SubgroupWide => wide,
        other => unreachable!("{other} is not a subgroup variant"),
    }
}

/// The grid for an implicit-GEMM kernel: tiles of N on x, wrapping onto z past 65,535 (the
/// kernels read tile `x + z · num_workgroups.x`; spare tiles past N store nothing), tiles of M
/// on y.
pub(super) fn implicit_gemm_grid(ctx: &GpuContext, variant: Variant, m: usize, n: usize) -> [u32; 3] {
    let (tile_m, tile_n) = variant.tile(ctx.wide_lanes);
    let n_tiles = n.div_ceil(tile_n as usize) as u32;
    let wraps = n_tiles.div_ceil(65_535);
    [n_tiles.div_ceil(wraps), m.div_ceil(tile_m as usize) as u32, wraps]
}

/// How many chunks a split-K weight gradient whose partial pass has square tiles of side `tile`
/// cuts its reduction (K = B·OH·OW) into: where the adapter has a reduction `bound`, enough that
/// no chunk is longer than 32,768 values (within [`MAX_REDUCTION`](crate::gpu::MAX_REDUCTION));
/// and otherwise enough for about 512 workgroups in all with chunks of at least 1,024 values, at
/// most 64 chunks; partial sums of at most 64 M floats. `None` where splitting does not apply
/// (one chunk, or more than 65,535 column tiles).
pub fn split_k_chunks(shape: &Conv2dShape, bound: Option<usize>, tile: usize) -> Option<usize> {
    let k_total = weight_grad_reduction(shape);
    let columns = shape.in_channels * shape.kernel[0] * shape.kernel[1];
    if columns.div_ceil(tile) > 65_535 {
        return None;
    }
    let tiles = columns.div_ceil(tile) * shape.out_channels.div_ceil(tile);
    let needed = bound.map_or(1, |_| k_total.div_ceil(MAX_SPLIT_CHUNK));
    let by_work = 512usize.div_ceil(tiles).min(k_total / 1024).min(64);
    let chunks = needed.max(by_work);
    (chunks >= 2 && chunks * shape.weight_len() <= 64 << 20).then_some(chunks)
}

/// The longest chunk of a split-K reduction.
pub(super) const MAX_SPLIT_CHUNK: usize = 32_768;
