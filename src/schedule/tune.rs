//! Kernel choice by measurement: before a network's launches are recorded, every GEMM-shaped
//! launch it will make (convolution forward, input gradient and weight gradient; pointwise
//! convolutions; the linear layer) is timed on this device in each variant that applies, and
//! the fastest is kept for that launch shape. Shapes already measured on this adapter come
//! from the [`KernelCache`] and are not timed again.
//!
//! Timing: each candidate runs alone, a submission at a time, up to three times (the median
//! counts); a candidate is dropped after one run once it is clearly slower (1.5×) than the best
//! so far, and long launches (60 ms) are timed once. The adapter's default variant goes
//! first, so that the others are usually dropped after one run.
//!
//! A launch that would take much longer than [`SAMPLE_SECONDS`] at the fastest rate seen so
//! far is timed on a sample: every candidate runs the same fraction of its workgroups (see
//! [`Launch::shrink`]), which does the same fraction of the work at the same speed. A
//! challenger to the best so far first runs a sixteenth of that once, and stops there when it is
//! clearly slower. On a CPU adapter that cuts a ResNet-50 plan's timing from several training
//! steps' worth to seconds; on a GPU, where whole launches take milliseconds, nothing is
//! sampled.

use std::collections::BTreeMap;

use web_time::Instant;

use super::{KernelCache, Plan};
use crate::gpu::{
    Fault, GemmKey, GpuBuffer, GpuContext, GpuError, KernelChoices, KernelPolicy, Launch, Variant,
};
use crate::model::GemmLaunch;
use crate::ops::conv2d::{self, Conv2dShape, Direction};
use crate::ops::matmul::{self, MatmulParams};
use crate::shaders::Precision;

/// One GEMM-shaped launch of a network and the variant it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct TunedLaunch {
    /// The layer's parameter name (`layer1.0.conv2`, `fc`).
    pub layer: String,
    /// `forward`, `input grad` or `weight grad`.
    pub direction: &'static str,
    pub key: GemmKey,
    pub variant: Variant,
    /// Milliseconds per variant where this run measured them (the first layer of a shape): of
    /// the whole launch, estimated from a sample where one was timed.
    pub timings: Vec<(Variant, f64)>,
}

/// What choosing the kernels of a network did.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneReport {
    pub policy: KernelPolicy,
    pub launches: Vec<TunedLaunch>,
    /// Distinct launch shapes timed now, and taken from the cache.
    pub measured: usize,
    pub cached: usize,
    pub seconds: f64,
    pub cache: String,
    /// Why the cache was ignored or could not be written, where that happened.
    pub cache_note: Option<String>,
}

impl std::fmt::Display for TuneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kernels ({}): {} launch shapes measured in {:.1} s, {} from the cache {}",
            self.policy.name(),
            self.measured,
            self.seconds,
            self.cached,
            self.cache
        )?;
        for l in &self.launches {
            write!(
                f,
                "\n  {:<24} {:<12} {:<9}",
                l.layer,
                l.direction,
                l.variant.name()
            )?;
            for (v, ms) in &l.timings {
                write!(f, " {}={ms:.2}ms", v.name())?;
            }
        }
        Ok(())
    }
}

/// A launch shape to choose for: how to build it in each of its candidate variants.
struct Case {
    layer: String,
    direction: &'static str,
    key: GemmKey,
    candidates: Vec<Variant>,
    shape: CaseShape,
    /// How its three tensors are stored (see [`Direction::operands`]).
    operands: [Precision; 3],
}

enum CaseShape {
    Conv(Direction, Conv2dShape),
    Matmul(MatmulParams),
}

impl CaseShape {
    /// Floating-point operations of the launch (2 per multiply-add).
    fn flops(&self) -> f64 {
        match self {
            CaseShape::Conv(_, s) => s.flops(),
            CaseShape::Matmul(p) => p.flops(),
        }
    }
}

/// Every GEMM-shaped launch of one training step of `plan` (as each layer describes them; input
/// gradients only where a gradient flows).
fn cases(ctx: &GpuContext, plan: &Plan) -> Vec<Case> {
    let model = &plan.model;
    let mut out = Vec::new();
    for (i, (layer, description)) in model
        .layers
        .iter()
        .zip(model.describe(plan.micro_batch))
        .enumerate()
    {
        let needs_input_grad = plan.gradients.input_grad_target[i].is_some();
        for gemm in description.gemms {
            if gemm.direction() == Direction::InputGrad && !needs_input_grad {
                continue;
            }
            let operands = gemm.direction().operands(plan.activations.mode.precision());
            let (key, candidates, shape) = match gemm {
                GemmLaunch::Conv(d, s) => (
                    conv2d::launch_key(d, &s, operands),
                    conv2d::candidates(ctx, d, &s),
                    CaseShape::Conv(d, s),
                ),
                GemmLaunch::Matmul(_, p) => (
                    matmul::gemm_key(&p, operands),
                    matmul::candidates(ctx, &p),
                    CaseShape::Matmul(p),
                ),
            };
            out.push(Case {
                layer: layer
                    .op
                    .name()
                    .expect("a layer with GEMMs has parameters")
                    .to_string(),
                direction: gemm.direction().name(),
                key,
                candidates,
                shape,
                operands,
            });
        }
    }
    out
}

/// The candidates of a case worth timing on this adapter: all but the wide subgroup kernels
/// where the adapter's subgroups are 8 lanes wide (see [`GpuContext::wide_worth_timing`]), and
/// the tiled kernels of a convolution that does not run as a GEMM on a CPU adapter (see
/// [`GpuContext::tiled_convolutions_worth_timing`]).
fn worth_timing(ctx: &GpuContext, case: &Case) -> Vec<Variant> {
    let wide_too = ctx.wide_worth_timing();
    let tiled_too = match &case.shape {
        CaseShape::Conv(_, s) => s.runs_as_gemm() || ctx.tiled_convolutions_worth_timing(),
        CaseShape::Matmul(_) => true,
    };
    case.candidates
        .iter()
        .copied()
        .filter(|&v| (v != Variant::SubgroupWide || wide_too) && (v != Variant::Tiled || tiled_too))
        .collect()
}

/// Buffers of one case's launch, and the launch in a given variant.
struct CaseBuffers {
    a: GpuBuffer<f32>,
    b: GpuBuffer<f32>,
    c: GpuBuffer<f32>,
    bias: Option<GpuBuffer<f32>>,
}

impl CaseBuffers {
    /// Bytes of the buffers.
    fn bytes(&self) -> u64 {
        let buffers = [Some(&self.a), Some(&self.b), Some(&self.c), self.bias.as_ref()];
        buffers.into_iter().flatten().map(GpuBuffer::size_bytes).sum()
    }

    fn new(ctx: &GpuContext, shape: &CaseShape, operands: [Precision; 3]) -> Self {
        let zeros = |label: &str, len: usize| GpuBuffer::zeros(ctx, label, len.max(1));
        let [a_at, b_at, c_at] = operands;
        let stored =
            |label: &str, len: usize, precision| GpuBuffer::zeros_stored(ctx, label, len.max(1), precision);
        match shape {
            CaseShape::Conv(d, s) => {
                let (a, b, c) = match d {
                    Direction::Forward => (s.input_len(), s.weight_len(), s.output_len()),
                    Direction::InputGrad => (s.output_len(), s.weight_len(), s.input_len()),
                    Direction::WeightGrad => (s.output_len(), s.input_len(), s.weight_len()),
                };
                Self {
                    a: stored("tuning input", a, a_at),
                    b: stored("tuning operand", b, b_at),
                    c: stored("tuning output", c, c_at),
                    bias: None,
                }
            }
            CaseShape::Matmul(p) => Self {
                a: stored("tuning A", p.a_len(), a_at),
                b: stored("tuning B", p.b_len(), b_at),
                c: stored("tuning C", p.c_len(), c_at),
                bias: (p.bias_mode != 0).then(|| zeros("tuning bias", p.m.max(p.n) as usize)),
            },
        }
    }

    fn launch(&self, ctx: &GpuContext, shape: &CaseShape, variant: Variant) -> Launch {
        match shape {
            CaseShape::Conv(Direction::Forward, s) => {
                conv2d::forward_with(ctx, variant, s, &self.a, &self.b, None, &self.c)
            }
            CaseShape::Conv(Direction::InputGrad, s) => {
                conv2d::input_grad_with(ctx, variant, s, &self.a, &self.b, &self.c, false)
            }
            CaseShape::Conv(Direction::WeightGrad, s) => {
                conv2d::weight_grad_with(ctx, variant, s, &self.a, &self.b, &self.c, false)
            }
            CaseShape::Matmul(p) => {
                matmul::launch_with(ctx, variant, p, &self.a, &self.b, self.bias.as_ref(), &self.c)
            }
        }
    }
}

/// Past this much time a candidate's timing stops: a run that long is timed well enough once.
const LONG_RUN_SECONDS: f64 = 0.06;

/// How long a sampled launch should run at the fastest rate seen so far.
pub const SAMPLE_SECONDS: f64 = 0.005;

/// The fewest workgroups a sample keeps, so that it still spreads over a CPU adapter's threads
/// (GPUs, whose launches are short, are not sampled).
const MIN_SAMPLE_WORKGROUPS: f64 = 4.0;

/// `fraction` of a launch's workgroups, or more to keep [`MIN_SAMPLE_WORKGROUPS`].
fn sample_fraction(launch: &Launch, fraction: f64) -> f64 {
    fraction
        .max(MIN_SAMPLE_WORKGROUPS / launch.workgroups() as f64)
        .min(1.0)
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
        if runs.len() >= 3 || median > 1.5 * best || spent > LONG_RUN_SECONDS {
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
    timing: impl std::future::Future<Output = Result<(T, Vec<crate::shaders::Shader>), GpuError>>,
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

/// Says that the device rejected `variant` for `key` (and what happens to it), and drops the
/// pipelines of its `shaders` so that they are never reused.
fn drop_rejected(
    ctx: &GpuContext,
    key: &GemmKey,
    variant: Variant,
    shaders: &[crate::shaders::Shader],
    error: &wgpu::Error,
    outcome: &str,
) {
    log::warn!(
        "kernel choice: {key}: the device rejected {variant}, {outcome}: {}",
        crate::gpu::describe_error(error)
    );
    for &shader in shaders {
        ctx.forget_pipeline(shader);
    }
}

/// Bytes of check buffers after which the checks of cached choices wait for the device, so
/// that the buffers of those already run can go.
const CHECK_FLUSH_BYTES: u64 = 256 << 20;

/// Runs the cached choice of each launch shape that would otherwise be timed once on a small
/// sample (its first workgroups), each in an error scope of its own, and returns the shapes
/// whose choice the device rejected (their pipelines are dropped). The checks are submitted
/// together and awaited at once: one at a time, their round trips to the device cost seconds
/// in a browser.
async fn rejected_cached_choices(
    ctx: &GpuContext,
    cases: &[Case],
    kernels: &KernelChoices,
) -> Result<Vec<GemmKey>, GpuError> {
    let mut checked = std::collections::BTreeSet::new();
    let mut pending = Vec::new();
    let mut unflushed = 0;
    for case in cases {
        let cached = kernels.measured.contains_key(&case.key);
        if !cached || worth_timing(ctx, case).len() < 2 || !checked.insert(case.key.clone()) {
            continue;
        }
        let variant = kernels.pick(&case.key, &case.candidates);
        let buffers = CaseBuffers::new(ctx, &case.shape, case.operands);
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut launch = buffers.launch(ctx, &case.shape, variant);
        launch.shrink(sample_fraction(&launch, 0.0));
        ctx.submit("kernel check", &[&launch]);
        ctx.fault_point(Fault::Candidate(variant));
        pending.push((case.key.clone(), variant, launch.shaders(), scope.pop()));
        // The device keeps the buffers until the check has run.
        unflushed += buffers.bytes();
        if unflushed > CHECK_FLUSH_BYTES {
            ctx.finish().await?;
            unflushed = 0;
        }
    }
    ctx.finish().await?;
    let mut rejected = Vec::new();
    for (key, variant, kernels, popped) in pending {
        if let Some(error) = popped.await {
            drop_rejected(
                ctx,
                &key,
                variant,
                &kernels,
                &error,
                "its cached choice, which is timed anew",
            );
            rejected.push(key);
        }
    }
    Ok(rejected)
}

/// Seconds of a whole launch of `variant`, estimated from a sample where the launch is long
/// (see the module's notes), and whether it was timed in full rather than dropped after a
/// probe that showed it clearly slower than `best`; with the kernels the launch runs.
/// `fastest_rate` (FLOP/s) sizes the samples and learns from this timing.
async fn time_candidate(
    ctx: &GpuContext,
    buffers: &CaseBuffers,
    shape: &CaseShape,
    variant: Variant,
    flops: f64,
    best: Option<(f64, Variant)>,
    fastest_rate: &mut f64,
) -> Result<((f64, bool), Vec<crate::shaders::Shader>), GpuError> {
    // Some adapters (lavapipe, SwiftShader) compile a pipeline at its first dispatch: one
    // workgroup of each dispatch first, untimed, keeps that out of the timing.
    let mut warm_up = buffers.launch(ctx, shape, variant);
    warm_up.shrink(0.0);
    ctx.submit("kernel warm-up", &[&warm_up]);
    ctx.finish().await?;
    if *fastest_rate == 0.0 {
        // A first sample only to learn how fast this device is.
        let mut launch = buffers.launch(ctx, shape, variant);
        let kept = launch.shrink(sample_fraction(&launch, 1.0 / 64.0));
        *fastest_rate = flops * kept / time_launch(ctx, &launch, 0.0).await?;
    }
    let fraction = (SAMPLE_SECONDS * *fastest_rate / flops).min(1.0);
    let best_seconds = best.map_or(f64::INFINITY, |(b, _)| b);
    // Where launches are sampled, a challenger first runs a sixteenth of the sample, once: one
    // that is clearly slower than the best is dropped at that cost.
    if best.is_some() && fraction < 1.0 {
        let mut probe = buffers.launch(ctx, shape, variant);
        let kept = probe.shrink(sample_fraction(&probe, fraction / 16.0));
        let seconds = time_launch(ctx, &probe, 0.0).await? / kept;
        if seconds > 1.5 * best_seconds {
            return Ok(((seconds, false), probe.shaders()));
        }
    }
    let mut launch = buffers.launch(ctx, shape, variant);
    let kept = launch.shrink(sample_fraction(&launch, fraction));
    let seconds = time_launch(ctx, &launch, best_seconds * kept).await? / kept;
    *fastest_rate = fastest_rate.max(flops / seconds);
    Ok(((seconds, true), launch.shaders()))
}

/// Whether [`choose_kernels`] may time launch shapes it has no measurement for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tuning {
    /// Time what the cache does not hold (and update the cache).
    Measure,
    /// Only report: the cache's choices, and the defaults elsewhere.
    CacheOnly,
}

/// Chooses the variant of every GEMM-shaped launch of `plan` and records the choices in it, so
/// that the network built from it uses them. Under
/// [`KernelPolicy::Auto`], shapes not in `cache` are timed (with [`Tuning::Measure`]), and the
/// cache is updated; under a fixed policy nothing is timed. `progress(done, total)` follows the
/// cases.
pub async fn choose_kernels(
    ctx: &GpuContext,
    plan: &mut Plan,
    cache: &KernelCache,
    tuning: Tuning,
    mut progress: impl FnMut(usize, usize),
) -> Result<TuneReport, GpuError> {
    let start = Instant::now();
    let policy = plan.kernels.policy;
    let cases = cases(ctx, plan);
    let kernels = &mut plan.kernels;
    let mut report = TuneReport {
        policy,
        launches: Vec::new(),
        measured: 0,
        cached: 0,
        seconds: 0.0,
        cache: cache.to_string(),
        cache_note: None,
    };
    let auto = policy == KernelPolicy::Auto;
    if auto {
        let (stored, note) = cache.load(ctx);
        report.cache_note = note;
        for (key, variant) in stored {
            kernels.measured.entry(key).or_insert(variant);
        }
        if tuning == Tuning::Measure {
            // A cached choice runs once before it is trusted; one the device rejects is timed
            // anew below.
            for key in rejected_cached_choices(ctx, &cases, kernels).await? {
                kernels.measured.remove(&key);
            }
        }
    }
    let mut timed: BTreeMap<GemmKey, Vec<(Variant, f64)>> = BTreeMap::new();
    let mut counted = std::collections::BTreeSet::new();
    // FLOP/s of the fastest launch timed so far (0 until the first sample): what sizes the
    // samples.
    let mut fastest_rate = 0.0_f64;
    for (done, case) in cases.iter().enumerate() {
        progress(done, cases.len());
        let first_of_shape = counted.insert(case.key.clone());
        let timed_variants = worth_timing(ctx, case);
        let measure = auto && tuning == Tuning::Measure && timed_variants.len() > 1;
        if measure && !kernels.measured.contains_key(&case.key) {
            let buffers = CaseBuffers::new(ctx, &case.shape, case.operands);
            let flops = case.shape.flops();
            let mut best: Option<(f64, Variant)> = None;
            let mut timings = Vec::new();
            for &variant in &timed_variants {
                let candidate = time_candidate(
                    ctx,
                    &buffers,
                    &case.shape,
                    variant,
                    flops,
                    best,
                    &mut fastest_rate,
                );
                let outcome = within_scope(ctx, &case.key, variant, candidate).await?;
                let Some((seconds, whole)) = outcome else {
                    continue;
                };
                timings.push((variant, seconds * 1e3));
                if whole && best.is_none_or(|(b, _)| seconds < b) {
                    best = Some((seconds, variant));
                }
            }
            let Some((_, chosen)) = best else {
                return Err(GpuError::Validation(format!(
                    "{}: the device rejected every kernel variant ({})",
                    case.key,
                    timed_variants
                        .iter()
                        .map(|v| v.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            log::info!("kernel choice: {} -> {chosen} ({timings:?})", case.key);
            kernels.measured.insert(case.key.clone(), chosen);
            timed.insert(case.key.clone(), timings);
            report.measured += 1;
        } else if auto && first_of_shape && kernels.measured.contains_key(&case.key) {
            report.cached += 1;
        }
        report.launches.push(TunedLaunch {
            layer: case.layer.clone(),
            direction: case.direction,
            key: case.key.clone(),
            variant: kernels.pick(&case.key, &case.candidates),
            timings: if first_of_shape {
                timed.get(&case.key).cloned().unwrap_or_default()
            } else {
                Vec::new()
            },
        });
    }
    // An error the device reported outside any one candidate fails the choice (and nothing
    // is cached from it).
    ctx.check_at(Fault::KernelTiming)?;
    progress(cases.len(), cases.len());
    if report.measured > 0
        && let Some(note) = cache.save(ctx, &kernels.measured)
    {
        report.cache_note = Some(note);
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
