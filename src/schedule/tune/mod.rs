//! Kernel choice by measurement: before a network's launches are recorded, every GEMM-shaped
//! launch it will make (convolution forward, input gradient and weight gradient; pointwise
//! convolutions; the linear layer) is timed on this device in each variant that applies, and
//! the fastest is kept for that launch shape. Shapes already measured on this adapter come
//! from the [`KernelCache`] and are not timed again; launches too small for the choice to
//! matter run the default.
//!
//! Where the adapter has timestamp queries, candidates are timed on the GPU's clock, many in
//! one submission ([`gpu_clock`]); elsewhere one at a time on the CPU clock ([`wall_clock`]).
//! The adapter's default variant goes first.
//!
//! A launch that would take much longer than a few milliseconds at the fastest rate seen so
//! far is timed on a sample: every candidate runs the same fraction of its workgroups (see
//! [`Launch::shrink`](crate::gpu::Launch::shrink)), which does the same fraction of the work
//! at the same speed. A challenger first runs a sixteenth of that once, and stops there when it
//! is clearly slower. On a CPU adapter that cuts a ResNet-50 plan's timing from several
//! training steps' worth to seconds; on a GPU, where whole launches take milliseconds, nothing
//! is sampled.

mod case;
mod checks;
mod gpu_clock;
mod wall_clock;

use std::collections::BTreeMap;

use web_time::Instant;

use super::{KernelCache, Plan};
use crate::gpu::{Fault, GemmKey, GpuContext, GpuError, KernelPolicy, Variant};
use crate::model::GemmLaunch;
use crate::ops::conv2d::{self, Direction};
use crate::ops::matmul;
use case::{Case, CaseShape, Timed};

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

/// The clock that times kernel candidates: the GPU's timestamps where the adapter has
/// timestamp queries, else the CPU's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// Timestamp queries: many candidates in one submission ([`gpu_clock`]).
    GpuTimestamps,
    /// Submission to completion, one candidate at a time ([`wall_clock`]).
    CpuWall,
}

impl Clock {
    pub fn of(ctx: &GpuContext) -> Self {
        match ctx.features.timestamp_query {
            true => Clock::GpuTimestamps,
            false => Clock::CpuWall,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Clock::GpuTimestamps => "GPU timestamps",
            Clock::CpuWall => "CPU clock",
        }
    }
}

/// What choosing the kernels of a network did.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneReport {
    pub policy: KernelPolicy,
    /// The clock that timed the candidates.
    pub clock: Clock,
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
            "kernels ({}): {} launch shapes measured in {:.1} s ({}), {} from the cache {}",
            self.policy.name(),
            self.measured,
            self.seconds,
            self.clock.name(),
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
    let clock = Clock::of(ctx);
    let mut report = TuneReport {
        policy,
        clock,
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
        // What the plan knew already was measured on this device; the cache's other entries
        // run once before they are trusted, and one the device rejects is timed anew below.
        let mut from_cache = std::collections::BTreeSet::new();
        for (key, variant) in stored {
            if !kernels.measured.contains_key(&key) {
                kernels.measured.insert(key.clone(), variant);
                from_cache.insert(key);
            }
        }
        if tuning == Tuning::Measure {
            for key in checks::rejected_cached_choices(ctx, &cases, kernels, &from_cache).await? {
                kernels.measured.remove(&key);
            }
        }
    }
    // The first case of each shape that is not measured yet, with the variants worth timing.
    let mut seen = std::collections::BTreeSet::new();
    let to_time: Vec<(&Case, Vec<Variant>)> = cases
        .iter()
        .filter(|case| auto && tuning == Tuning::Measure && !kernels.measured.contains_key(&case.key))
        .filter(|case| seen.insert(case.key.clone()))
        .map(|case| (case, case.worth_timing(ctx)))
        .filter(|(_, variants)| variants.len() > 1)
        .collect();
    progress(0, to_time.len());
    // FLOP/s of the fastest launch timed so far (0 until the first sample): what sizes the
    // samples.
    let mut fastest_rate = 0.0_f64;
    let outcomes: Vec<Timed> = match clock {
        Clock::GpuTimestamps => {
            let mut done = |n| progress(n, to_time.len());
            gpu_clock::time_cases(ctx, &to_time, &mut fastest_rate, &mut done).await?
        }
        Clock::CpuWall => {
            let mut out = Vec::with_capacity(to_time.len());
            let mut warmed = std::collections::HashSet::new();
            for (case, variants) in &to_time {
                let timed = wall_clock::time_case(ctx, case, variants, &mut fastest_rate, &mut warmed);
                out.push(timed.await?);
                progress(out.len(), to_time.len());
            }
            out
        }
    };
    let mut timed: BTreeMap<GemmKey, Vec<(Variant, f64)>> = BTreeMap::new();
    for ((case, _), outcome) in to_time.iter().zip(outcomes) {
        log::info!(
            "kernel choice: {} -> {} ({:?})",
            case.key,
            outcome.chosen,
            outcome.timings
        );
        kernels.measured.insert(case.key.clone(), outcome.chosen);
        timed.insert(case.key.clone(), outcome.timings);
    }
    report.measured = timed.len();
    let mut counted = std::collections::BTreeSet::new();
    for case in &cases {
        let first_of_shape = counted.insert(case.key.clone());
        if auto
            && first_of_shape
            && kernels.measured.contains_key(&case.key)
            && !timed.contains_key(&case.key)
        {
            report.cached += 1;
        }
        report.launches.push(TunedLaunch {
            layer: case.layer.clone(),
            direction: case.direction,
            key: case.key.clone(),
            variant: kernels.pick(&case.key, &case.candidates),
            timings: match first_of_shape {
                true => timed.get(&case.key).cloned().unwrap_or_default(),
                false => Vec::new(),
            },
        });
    }
    // An error the device reported outside any one candidate fails the choice (and nothing
    // is cached from it).
    ctx.check_at(Fault::KernelTiming)?;
    if report.measured > 0
        && let Some(note) = cache.save(ctx, &kernels.measured)
    {
        report.cache_note = Some(note);
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
