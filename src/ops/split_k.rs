//! The second step of a split-K GEMM: the partial results of its chunks, `partial [chunks,
//! len]`, added in chunk order into `out [len]`:
//!
//! `out[i] = Σ_{s < chunks} partial[s·len + i]` (`+ out[i]` when accumulating)
//!
//! A fixed order, no atomics: the same result run after run.

use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups};
use crate::shaders::Kernel;

/// The uniform struct of `split_k_sum.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SplitKSumParams {
    pub len: u32,
    pub chunks: u32,
    pub accumulate: u32,
    pub _pad: u32,
}

/// Adds `chunks` partial results of `len` values each, chunk by chunk, into the first `len`
/// values of `out` (overwriting them, or adding to them with `accumulate`).
pub fn sum(
    ctx: &GpuContext,
    partial: &GpuBuffer<f32>,
    chunks: usize,
    len: usize,
    out: &GpuBuffer<f32>,
    accumulate: bool,
) -> Launch {
    assert!(
        partial.len() >= chunks * len,
        "split-K sum: partial results too short"
    );
    assert!(out.len() >= len, "split-K sum: output too short");
    let params = SplitKSumParams {
        len: len as u32,
        chunks: chunks as u32,
        accumulate: accumulate as u32,
        _pad: 0,
    };
    Launch::linear(
        ctx,
        Kernel::SplitKSum.plain(),
        &params,
        &[partial.bind(), out.bind()],
        flat_workgroups(len),
    )
}

/// CPU reference.
pub fn sum_cpu(partial: &[f64], chunks: usize, out: &[f64], accumulate: bool) -> Vec<f64> {
    (0..out.len())
        .map(|i| {
            let total: f64 = (0..chunks).map(|s| partial[s * out.len() + i]).sum();
            if accumulate { total + out[i] } else { total }
        })
        .collect()
}
