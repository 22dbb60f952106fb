//! Kernel timing on the CPU clock, for adapters without timestamp queries: each candidate runs
//! alone, a submission at a time, and is timed from submission to completion.
//!
//! Each candidate runs up to three times (the median counts); it is dropped after one run once
//! it is clearly slower than the best so far, and long runs ([`LONG_RUN_SECONDS`]) are timed
//! once. Sampled launches (see the module above) are sized by the fastest rate seen so far; a
//! challenger first runs a sixteenth of the sample once, and stops there when it is clearly
//! slower.

use std::collections::HashSet;

use web_time::Instant;

use super::case::{CLEARLY_SLOWER, Case, CaseBuffers, CaseShape, LONG_RUN_SECONDS, SAMPLE_SECONDS, Timed};
use super::checks::{all_rejected, drop_rejected};
use crate::gpu::{Fault, GemmKey, GpuContext, GpuError, Launch, Variant};
use crate::shaders::Shader;

/// Times `variants` of `case` one after the other and keeps the fastest. `fastest_rate`
/// (FLOP/s of the fastest launch timed so far, 0 before the first) sizes the samples and
/// learns from this timing.
pub(super) async fn time_case(
    ctx: &GpuContext,
    case: &Case,
    variants: &[Variant],
    fastest_rate: &mut f64,
    warmed: &mut HashSet<Shader>,
) -> Result<Timed, GpuError> {
    let buffers = CaseBuffers::new(ctx, case);
    let mut best: Option<(f64, Variant)> = None;
    let mut timings = Vec::new();
    for &variant in variants {
        let candidate = time_candidate(ctx, &buffers, &case.shape, variant, best, fastest_rate, warmed);
        let outcome = within_scope(ctx, &case.key, variant, candidate).await?;
        let Some((seconds, whole)) = outcome else {
            continue;
        };
        timings.push((variant, seconds * 1e3));
        if whole && best.is_none_or(|(b, _)| seconds < b) {
            best = Some((seconds, variant));
        }
    }
    match best {
        Some((_, chosen)) => Ok(Timed { chosen, timings }),
        None => Err(all_rejected(&case.key, variants)),
    }
}

/// Median seconds of a launch, from up to three runs; fewer once it is clearly slower than
/// `best` or has taken [`LONG_RUN_SECONDS`].
async fn time_launch(ctx: &GpuContext, launch: &Launch, best: f64) -> Result<f64, GpuError> {
    let mut runs: Vec<f64> = Vec::new();
    loop {
        let start = Instant::now();
        ctx.submit("kernel tuning", &[launch]);
        ctx.finish().await?;
        runs.push(start.elapsed().as_secs_f64());
        let mut sorted = runs.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[(sorted.len() - 1) / 2];
        let spent: f64 = runs.iter().sum();
        if runs.len() >= 3 || median > CLEARLY_SLOWER * best || spent > LONG_RUN_SECONDS {
            return Ok(median);
        }
    }
}

/// Runs `timing` (which builds and runs launches of `variant`) inside a validation error
/// scope: `Ok(None)` where the device rejected the variant (its pipelines are dropped from the
/// cache), else what `timing` returned.
async fn within_scope<T>(
    ctx: &GpuContext,
    key: &GemmKey,
    variant: Variant,
    timing: impl std::future::Future<Output = Result<(T, Vec<Shader>), GpuError>>,
) -> Result<Option<T>, GpuError> {
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    let outcome = timing.await;
    ctx.fault_point(Fault::Candidate(variant));
    let rejected = scope.pop().await;
    let (value, kernels) = outcome?;
    match rejected {
        None => Ok(Some(value)),
        Some(error) => {
            drop_rejected(ctx, key, variant, &kernels, &error, "which is dropped");
            Ok(None)
        }
    }
}

/// Seconds of a whole launch of `variant`, estimated from a sample where the launch is long,
/// and whether it was timed in full rather than dropped after a probe that showed it clearly
/// slower than `best`; with the kernels the launch runs.
async fn time_candidate(
    ctx: &GpuContext,
    buffers: &CaseBuffers,
    shape: &CaseShape,
    variant: Variant,
    best: Option<(f64, Variant)>,
    fastest_rate: &mut f64,
    warmed: &mut HashSet<Shader>,
) -> Result<((f64, bool), Vec<Shader>), GpuError> {
    let flops = shape.flops();
    // Some adapters (lavapipe) build a pipeline at its first dispatch: the first launch to run
    // a kernel, cut to one workgroup along each dispatch's longest axis and untimed, keeps
    // that out of the timing.
    let mut warm_up = buffers.launch(ctx, shape, variant);
    if warm_up.shaders().iter().any(|s| !warmed.contains(s)) {
        warmed.extend(warm_up.shaders());
        warm_up.shrink(0.0);
        ctx.submit("kernel warm-up", &[&warm_up]);
        ctx.finish().await?;
    }
    if *fastest_rate == 0.0 {
        // A first sample only to learn how fast this device is.
        let (launch, kept) = buffers.sample(ctx, shape, variant, 1.0 / 64.0);
        *fastest_rate = flops * kept / time_launch(ctx, &launch, 0.0).await?;
    }
    let fraction = (SAMPLE_SECONDS * *fastest_rate / flops).min(1.0);
    let best_seconds = best.map_or(f64::INFINITY, |(b, _)| b);
    if best.is_some() && fraction < 1.0 {
        let (probe, kept) = buffers.sample(ctx, shape, variant, fraction / 16.0);
        let seconds = time_launch(ctx, &probe, 0.0).await? / kept;
        if seconds > CLEARLY_SLOWER * best_seconds {
            return Ok(((seconds, false), probe.shaders()));
        }
    }
    let (launch, kept) = buffers.sample(ctx, shape, variant, fraction);
    let seconds = time_launch(ctx, &launch, best_seconds * kept).await? / kept;
    *fastest_rate = fastest_rate.max(flops / seconds);
    Ok(((seconds, true), launch.shaders()))
}
