//! Batched strided GEMM, the kernel behind 1×1 convolutions and the linear layer:
//!
//! `C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n] (+ bias) (+ old C when accumulating)`
//!
//! A, B and C are addressed through strides, so a transposed operand costs nothing. With
//! `reduce_batch` the batch index is summed too (weight gradients over a minibatch).

use crate::gpu::{GemmKey, GemmOp, GpuBuffer, GpuContext, KernelChoices, Launch, Variant, assert_f32};
use crate::shaders::{Kernel, Precision, STAGE_PLAIN};

/// Where a bias is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    None = 0,
    /// `bias[m]` added to every element of row m (a convolution's output channel).
    PerRow = 1,
    /// `bias[n]` added to every element of column n (a linear layer's output feature).
    PerColumn = 2,
}

/// The uniform struct of `matmul*.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch: u32,
    pub a_batch: u32,
    pub a_row: u32,
    pub a_k: u32,
    pub b_batch: u32,
    pub b_k: u32,
    pub b_col: u32,
    pub c_batch: u32,
    pub c_row: u32,
    pub bias_mode: u32,
    pub accumulate: u32,
    pub reduce_batch: u32,
    /// With `reduce_batch`: images summed by each z slice of the grid (the whole batch, or a
    /// chunk of it for split-K).
    pub z_chunk: u32,
    /// Whether the tiled kernels read A (B) 4 values at a time as one vec4 ([`Self::quads`]);
    /// set by the launcher.
    pub a_quads: u32,
    pub b_quads: u32,
}

impl MatmulParams {
    /// Contiguous row-major operands: A [batch, m, k], B [batch, k, n], C [batch, m, n].
    pub fn row_major(batch: usize, m: usize, n: usize, k: usize) -> Self {
        let (m, n, k) = (m as u32, n as u32, k as u32);
        Self {
            m,
            n,
            k,
            batch: batch as u32,
            a_batch: m * k,
            a_row: k,
            a_k: 1,
            b_batch: k * n,
            b_k: n,
            b_col: 1,
            c_batch: m * n,
            c_row: n,
            bias_mode: Bias::None as u32,
            accumulate: 0,
            reduce_batch: 0,
            z_chunk: 0,
            a_quads: 0,
            b_quads: 0,
        }
    }

    pub fn with_bias(mut self, bias: Bias) -> Self {
        self.bias_mode = bias as u32;
        self
    }

    /// Adds the product to what C already holds.
    pub fn accumulating(mut self, on: bool) -> Self {
        self.accumulate = on as u32;
        self
    }

    /// Sums over the batch into a single C [m, n].
    pub fn summed_over_batch(mut self) -> Self {
        self.reduce_batch = 1;
        self.z_chunk = self.batch;
        self
    }

    /// Number of C elements the kernel writes into.
    pub fn c_len(&self) -> usize {
        let batches = if self.reduce_batch == 1 {
            1
        } else {
            self.batch as usize
        };
        (batches - 1) * self.c_batch as usize + (self.m as usize - 1) * self.c_row as usize + self.n as usize
    }

    /// Number of A elements the kernel may read: one past the largest index.
    pub fn a_len(&self) -> usize {
        let last = |count: u32, stride: u32| (count as usize - 1) * stride as usize;
        last(self.batch, self.a_batch) + last(self.m, self.a_row) + last(self.k, self.a_k) + 1
    }

    /// Number of B elements the kernel may read: one past the largest index.
    pub fn b_len(&self) -> usize {
        let last = |count: u32, stride: u32| (count as usize - 1) * stride as usize;
        last(self.batch, self.b_batch) + last(self.k, self.b_k) + last(self.n, self.b_col) + 1
    }

    /// Whether A and B can be read in quads, 4 values consecutive in memory loaded as one
    /// vec4: an operand whose stride is 1 along the axis the tiled kernels stage it along (k
    /// where its k stride is 1, else its rows or columns), and whose other strides are
    /// multiples of 4, so that every quad starting at a multiple of 4 along that axis starts
    /// at a multiple of 4 in memory (bound ranges start at multiples of 256 bytes).
    pub fn quads(&self) -> [bool; 2] {
        let aligned = |other: u32, batch_stride: u32| {
            other.is_multiple_of(4) && (self.batch == 1 || batch_stride.is_multiple_of(4))
        };
        // Staged along k where its k stride is 1, else along its rows (columns), which must
        // then have stride 1.
        let a = match (self.a_k, self.a_row) {
            (1, row) => aligned(row, self.a_batch),
            (k, 1) => aligned(k, self.a_batch),
            _ => false,
        };
        let b = match (self.b_k, self.b_col) {
            (1, col) => aligned(col, self.b_batch),
            (k, 1) => aligned(k, self.b_batch),
            _ => false,
        };
        [a, b]
    }

    /// The parameters with [`Self::quads`] set.
    fn reading_quads(mut self) -> Self {
        let [a, b] = self.quads();
        self.a_quads = a as u32;
        self.b_quads = b as u32;
        self
    }

    /// Multiply-adds × 2.
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// Prepares the GEMM on the variant `kernels` picks for its shape on this device.
pub fn launch(
    ctx: &GpuContext,
    kernels: &KernelChoices,
    params: &MatmulParams,
    a: &GpuBuffer<f32>,
    b: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    c: &GpuBuffer<f32>,
) -> Launch {
    assert!(
        params.m > 0 && params.n > 0 && params.k > 0 && params.batch > 0,
        "empty GEMM {params:?}"
    );
    assert!(
        c.len() >= params.c_len(),
        "C holds {} values, the GEMM writes {}",
        c.len(),
        params.c_len()
    );
    assert_eq!(
        bias.is_some(),
        params.bias_mode != Bias::None as u32,
        "bias buffer and bias mode disagree"
    );
    let key = gemm_key(params, [a.precision(), b.precision(), c.precision()]);
    let variant = kernels.pick(&key, &candidates(ctx, params));
    launch_with(ctx, variant, params, a, b, bias, c)
        .chosen_for(key)
        .counting(params.flops())
}

/// Values one invocation sums (see [`MAX_REDUCTION`](crate::gpu::MAX_REDUCTION)): the k-loop, rounded up to the portable
/// tile's 16, and one more per image for the loop over images.
fn loop_iterations(p: &MatmulParams, images: usize) -> usize {
    images * ((p.k as usize).next_multiple_of(16) + 1)
}

/// The variants of the GEMM, whatever the adapter offers: all, except where one invocation
/// would loop past the adapter's reduction `bound` ([`GpuContext::reduction_bound`]). There
/// the batch is cut into chunks whose partial sums a second launch adds ([`must_split`]), and
/// the partial sums run on the portable kernel (split-K) or on either subgroup kernel, chosen
/// by measurement like any variant; none applies where split-K does not either (such a GEMM
/// cannot be launched, see [`launch`]). The tiled partial pass (split-K tiled) is for GPUs,
/// which have no bound.
pub fn variants(p: &MatmulParams, bound: Option<usize>) -> Vec<Variant> {
    let splits = |variant: Variant| {
        let tile = variant.split_tile().expect("a split-K variant");
        split_k_chunks(p, bound, tile).is_some()
    };
    if must_split(p, bound) {
        return match splits(Variant::SplitK) {
            true => vec![Variant::Subgroup, Variant::SubgroupWide, Variant::SplitK],
            false => Vec::new(),
        };
    }
    let mut all = vec![
        Variant::Portable,
        Variant::Subgroup,
        Variant::SubgroupWide,
        Variant::Tiled,
        Variant::Tiled64,
        Variant::Narrow,
    ];
    all.extend(
        [Variant::SplitK, Variant::SplitKTiled]
            .into_iter()
            .filter(|&v| splits(v)),
    );
    all
}

/// The variants of the GEMM that run on this adapter, in order of preference when nothing was
/// measured.
pub fn candidates(ctx: &GpuContext, p: &MatmulParams) -> Vec<Variant> {
    ctx.applicable(&variants(p, ctx.reduction_bound()))
}

/// Whether `variant` can run the GEMM on this adapter.
pub fn applies(ctx: &GpuContext, p: &MatmulParams, variant: Variant) -> bool {
    ctx.runs(variant) && variants(p, ctx.reduction_bound()).contains(&variant)
}

/// Whether one invocation would loop past the reduction `bound` over the whole batch of a
/// batch-summed GEMM: then every variant sums it in chunks (see [`variants`]).
fn must_split(p: &MatmulParams, bound: Option<usize>) -> bool {
    let summed = if p.reduce_batch == 1 { p.batch as usize } else { 1 };
    loop_iterations(p, summed) > bound.unwrap_or(usize::MAX)
}

/// How many chunks a batch-summed GEMM with contiguous rows of C splits its batch into, where
/// its partial pass has square tiles of side `tile`: enough that no invocation loops past the
/// reduction `bound` where the adapter has one, and otherwise enough for about 512 workgroups in
/// all, at most 64; partial results of at most 64 M floats. `None` where it does not apply.
pub fn split_k_chunks(p: &MatmulParams, bound: Option<usize>, tile: usize) -> Option<usize> {
    let batch = p.batch as usize;
    let per_image = loop_iterations(p, 1);
    if p.reduce_batch != 1 || batch < 2 || p.c_row != p.n || per_image > bound.unwrap_or(usize::MAX) {
        return None;
    }
    let needed = bound.map_or(1, |b| batch.div_ceil(b / per_image));
    let tiles = (p.m as usize).div_ceil(tile) * (p.n as usize).div_ceil(tile);
    let by_work = 512usize.div_ceil(tiles).min(64);
    let chunks = needed.max(by_work).min(batch);
    // Equal chunks of whole images: the count that z_chunk = ceil(batch / chunks) gives.
    let chunks = batch.div_ceil(batch.div_ceil(chunks));
    (chunks >= 2 && chunks * p.c_len() <= 64 << 20).then_some(chunks)
}

/// The launch shape the kernel choice is made for: sizes and strides (bias and accumulation
/// change no timing that matters).
pub fn gemm_key(p: &MatmulParams, operands: [Precision; 3]) -> GemmKey {
    GemmKey::new(
        GemmOp::Matmul,
        format_args!(
            "z{} m{} n{} k{} a{}/{}/{} b{}/{}/{} c{}/{}{}",
            p.batch,
            p.m,
            p.n,
            p.k,
            p.a_batch,
            p.a_row,
            p.a_k,
            p.b_batch,
            p.b_k,
            p.b_col,
            p.c_batch,
            p.c_row,
            if p.reduce_batch == 1 { " summed" } else { "" }
        ),
    )
    .at(operands)
}

/// [`launch`] with a given variant, which must apply to the GEMM ([`applies`]).
pub fn launch_with(
    ctx: &GpuContext,
    variant: Variant,
    params: &MatmulParams,
    a: &GpuBuffer<f32>,
    b: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    c: &GpuBuffer<f32>,
) -> Launch {
    assert!(
        applies(ctx, params, variant),
        "{}: the {variant} kernels do not apply to this GEMM on this adapter (these do: {})",
        gemm_key(params, [a.precision(), b.precision(), c.precision()]),
        candidates(ctx, params)
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let params = &params.reading_quads();
    let z = if params.reduce_batch == 1 { 1 } else { params.batch };
    let kernel = match variant {
        Variant::Subgroup => Kernel::MatmulSubgroup,
        Variant::SubgroupWide => Kernel::MatmulSubgroupWide,
        Variant::Tiled | Variant::SplitKTiled => Kernel::MatmulTiled,
        Variant::Tiled64 => Kernel::MatmulTiled64,
        Variant::Narrow => Kernel::MatmulNarrow,
        Variant::Portable | Variant::SplitK => Kernel::Matmul,
    };
    let (tile_m, tile_n) = variant.tile(ctx.wide_lanes);
    if variant.split_tile().is_some() || must_split(params, ctx.reduction_bound()) {
        // The subgroup kernels split where they must into split-K's chunks.
        let chunks_tile = variant
            .split_tile()
            .or(Variant::SplitK.split_tile())
            .expect("split-K's tile");
        let chunks =
            split_k_chunks(params, ctx.reduction_bound(), chunks_tile).expect("split-K applies to this GEMM");
        let split = split_k(ctx, params, chunks, (kernel, tile_m, tile_n), a, b, bias, c);
        return split.ran(variant);
    }
    let bias = bias.map_or(ctx.placeholder().as_entire_buffer_binding(), |b| b.bind());
    Launch::new(
        ctx,
        kernel.stored(&[a.precision(), b.precision(), c.precision()]),
        params,
        &bindings(kernel, a, b, bias, c.bind()),
        [params.n.div_ceil(tile_n), params.m.div_ceil(tile_m), z],
    )
    .ran(variant)
}

/// The buffers a GEMM kernel binds: A, B, the bias and C, and on the tiled kernels vec4 views
/// of A and B, from which they read quads (body_stage_plain.wgsl).
fn bindings<'a>(
    kernel: Kernel,
    a: &'a GpuBuffer<f32>,
    b: &'a GpuBuffer<f32>,
    bias: wgpu::BufferBinding<'a>,
    c: wgpu::BufferBinding<'a>,
) -> Vec<wgpu::BufferBinding<'a>> {
    let mut all = vec![a.bind(), b.bind(), bias, c];
    if kernel.bodies().contains(&STAGE_PLAIN) {
        all.extend([a.bind(), b.bind()]);
    }
    all
}

/// Split-K over the batch of a batch-summed GEMM: each of `chunks` z slices sums its chunk of
/// images into its own partial C in a scratch buffer, on `kernel` (tiles of `tile_m` ×
/// `tile_n`), then the partials are added in chunk order (with the bias and the old C as asked).
#[allow(clippy::too_many_arguments)]
fn split_k(
    ctx: &GpuContext,
    params: &MatmulParams,
    chunks: usize,
    (kernel, tile_m, tile_n): (Kernel, u32, u32),
    a: &GpuBuffer<f32>,
    b: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    c: &GpuBuffer<f32>,
) -> Launch {
    assert!(bias.is_none(), "split-K GEMMs take no bias");
    assert_f32(&[c]);
    let len = params.c_len();
    let partial = ctx.scratch(chunks * len).prefix(chunks * len);
    let mut p = *params;
    p.z_chunk = params.batch.div_ceil(chunks as u32);
    p.c_batch = len as u32;
    p.accumulate = 0;
    let partials = Launch::new(
        ctx,
        kernel.stored(&[a.precision(), b.precision(), partial.precision()]),
        &p,
        &bindings(
            kernel,
            a,
            b,
            ctx.placeholder().as_entire_buffer_binding(),
            partial.bind(),
        ),
        [p.n.div_ceil(tile_n), p.m.div_ceil(tile_m), chunks as u32],
    );
    let total = crate::ops::split_k::sum(ctx, &partial, chunks, len, c, params.accumulate == 1);
    partials.then(total)
}

pub fn matmul_cpu(p: &MatmulParams, a: &[f64], b: &[f64], bias: Option<&[f64]>, c: &[f64]) -> Vec<f64> {
    let mut out = c.to_vec();
    let u = |v: u32| v as usize;
    let z_outputs = if p.reduce_batch == 1 { 1 } else { u(p.batch) };
    for zo in 0..z_outputs {
        for m in 0..u(p.m) {
            for n in 0..u(p.n) {
                let mut sum = 0.0;
                let batches: Vec<usize> = if p.reduce_batch == 1 {
                    (0..u(p.batch)).collect()
                } else {
                    vec![zo]
                };
                for z in batches {
                    for k in 0..u(p.k) {
                        sum += a[z * u(p.a_batch) + m * u(p.a_row) + k * u(p.a_k)]
                            * b[z * u(p.b_batch) + k * u(p.b_k) + n * u(p.b_col)];
                    }
                }
                match (p.bias_mode, bias) {
                    (1, Some(bias)) => sum += bias[m],
                    (2, Some(bias)) => sum += bias[n],
                    _ => {}
                }
                let at = zo * u(p.c_batch) + m * u(p.c_row) + n;
                out[at] = if p.accumulate == 1 { out[at] + sum } else { sum };
            }
        }
    }
    out
}
