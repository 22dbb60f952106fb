//! Bias gradient: `db[c] = Σ_{n,p} dy[n, c, p]` for `dy` of shape `[N, C, P]` (`P = H·W` for a
//! convolution, `P = 1` for a linear layer whose `dy` is `[N, C]`); `db` is `[C]`.
//!
//! A workgroup of 256 sums up to [`PART_VALUES`] values of a channel with a fixed tree
//! reduction; a channel with more runs in parts, a workgroup each, whose sums a second dispatch
//! adds in the same fixed way, so that a layer of few channels and many values still spreads
//! over a GPU's cores. Identical results run to run. `db` is overwritten, or added to with
//! `accumulate` (micro-batches).

use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::shaders::Kernel;

/// Values of a channel that one workgroup sums (256 per lane). At the batches a GPU trains
/// that still spreads a layer of few channels (a 224-pixel network at batch 128: 25 parts a
/// channel in the stem, 7 in the first stage), and on lavapipe each part's tree of barriers
/// costs time: parts of 8,192 made the seed network's bias gradients 1.3× slower there, parts
/// of 65,536 were within run-to-run noise of one workgroup per channel (`bench --steps --quick
/// --config seed`, per-kernel breakdown, alternating runs).
pub const PART_VALUES: usize = 65_536;

/// The kernel's uniform (32 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BiasGradParams {
    pub batch: u32,
    pub channels: u32,
    pub spatial: u32,
    /// 1: add to `db` instead of overwriting it.
    pub accumulate: u32,
    /// Parts per channel ([`parts`]) and values per part.
    pub parts: u32,
    pub part_len: u32,
    /// The dispatch: 0, each part's sum (a channel's whole sum where it has one part); 1, the
    /// parts' sums added into `db`.
    pub phase: u32,
    pub pad: u32,
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
            parts: parts(batch * spatial) as u32,
            part_len: PART_VALUES as u32,
            phase: 0,
            pad: 0,
        }
    }
}

/// How many parts a channel of `values` values is summed in: a workgroup each.
pub fn parts(values: usize) -> usize {
    values.div_ceil(PART_VALUES).max(1)
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
    let params = BiasGradParams::new(batch, channels, spatial, accumulate);
    let parts = params.parts as usize;
    if parts == 1 {
        let placeholder = ctx.placeholder().as_entire_buffer_binding();
        let buffers = [dy.bind(), db.bind(), placeholder];
        return Launch::linear(ctx, Kernel::BiasGrad.plain(), &params, &buffers, channels as u32);
    }
    // Each part's sum in the shared scratch buffer, then their sum per channel.
    let partial = ctx.scratch(channels * parts).prefix(channels * parts);
    let buffers = [dy.bind(), db.bind(), partial.bind()];
    let workgroups = (channels * parts) as u32;
    let sums = Launch::linear(ctx, Kernel::BiasGrad.plain(), &params, &buffers, workgroups);
    let total = BiasGradParams { phase: 1, ..params };
    sums.then(Launch::linear(
        ctx,
        Kernel::BiasGrad.plain(),
        &total,
        &buffers,
        channels as u32,
    ))
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
