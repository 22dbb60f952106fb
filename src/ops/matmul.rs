//! Batched strided GEMM, the kernel behind 1×1 convolutions and the linear layer:
//!
//! `C[z, m, n] = Σ_k A[z, m, k] · B[z, k, n] (+ bias) (+ old C when accumulating)`
//!
//! A, B and C are addressed through strides, so a transposed operand costs nothing. With
//! `reduce_batch` the batch index is summed too (weight gradients over a minibatch).

use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::shaders::Kernel;

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
    pub _pad: u32,
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
            _pad: 0,
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

    /// Multiply-adds × 2.
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// Prepares the GEMM on the fastest variant the device offers.
pub fn launch(
    ctx: &GpuContext,
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
    let z = if params.reduce_batch == 1 { 1 } else { params.batch };
    let (kernel, tile_m, tile_n) = if ctx.uses_subgroups() {
        (Kernel::MatmulSubgroup, 16, 32)
    } else {
        (Kernel::Matmul, 64, 64)
    };
    let bias = bias.map_or(ctx.placeholder(), |b| &b.buffer);
    Launch::new(
        ctx,
        kernel,
        params,
        &[&a.buffer, &b.buffer, bias, &c.buffer],
        [params.n.div_ceil(tile_n), params.m.div_ceil(tile_m), z],
    )
}

/// CPU reference: returns the new contents of C, given its old contents `c`.
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
