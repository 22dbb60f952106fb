//! Kernel timing from the GPU's timestamp queries: the candidates of many launch shapes run in
//! one submission, each in a pass that writes a timestamp at its beginning and end, and are
//! read back at once. On the CPU clock each run is a round trip to the device, which in a
//! browser costs tens of milliseconds, more than most sampled launches; here a batch of shapes
//! costs four round trips in all (its error scopes, and three read-backs).
//!
//! A batch takes shapes until their scratch buffers pass [`FLUSH_BYTES`] (at least one), and
//! runs in three submissions:
//! 1. warm-ups: the first candidate to run each kernel, cut to one workgroup along its longest
//!    axis, untimed (adapters
//!    such as lavapipe build a pipeline at its first dispatch), and, before the first batch, a
//!    sample that measures how fast this device is;
//! 2. probes, where launches are sampled: a sixteenth of the sample of every candidate, once;
//!    a candidate clearly slower than the best probe of its shape goes no further;
//! 3. the timing: the sample (or the whole launch) of every remaining candidate, three times
//!    over, in rounds; the median counts, and the fastest is chosen (the default on a tie, as
//!    where launches are shorter than the clock's resolution). A shape that its probes left
//!    one candidate is not timed again: that one is chosen.

use std::collections::HashSet;

use super::case::{CLEARLY_SLOWER, Case, CaseBuffers, LONG_RUN_SECONDS, SAMPLE_SECONDS, Timed};
use super::checks::{FLUSH_BYTES, all_rejected, drop_rejected};
use crate::gpu::{Fault, GpuContext, GpuError, Launch, Variant, launch_times};
use crate::shaders::Shader;

/// Runs of each candidate's timed sample; the median counts.
const RUNS: usize = 3;

/// A candidate variant of one shape of the batch.
struct Trial {
    /// Index of its shape in the batch.
    case: usize,
    variant: Variant,
    /// Its timed sample, and the fraction of the launch's work that it does.
    sample: (Launch, f64),
    /// Estimated seconds of the whole launch from its probe (infinite where it had none).
    probe: f64,
    /// Estimated seconds of the whole launch from each timed run of its sample.
    runs: Vec<f64>,
    /// Whether it goes on to be timed (not dropped after its probe).
    timed: bool,
}

impl Trial {
    /// The median of its runs, or its probe where it had none (the last of its shape after the
    /// probes).
    fn seconds(&self) -> f64 {
        if self.runs.is_empty() {
            return self.probe;
        }
        let mut runs = self.runs.clone();
        runs.sort_by(f64::total_cmp);
        runs.get((runs.len().max(1) - 1) / 2)
            .copied()
            .unwrap_or(f64::INFINITY)
    }
}

/// Chooses a variant for each of `cases` among its `variants` by timing them on the GPU's
/// clock. `fastest_rate` (FLOP/s of the fastest launch timed so far, 0 before the first) sizes
/// the samples and learns from this timing; `progress` hears how many shapes are done.
pub(super) async fn time_cases(
    ctx: &GpuContext,
    cases: &[(&Case, Vec<Variant>)],
    fastest_rate: &mut f64,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Timed>, GpuError> {
    let mut warmed = HashSet::new();
    let mut out = Vec::with_capacity(cases.len());
    let mut batch: Vec<(&Case, &[Variant], CaseBuffers)> = Vec::new();
    let mut bytes = 0;
    for (i, (case, variants)) in cases.iter().enumerate() {
        let buffers = CaseBuffers::new(ctx, case);
        bytes += buffers.bytes();
        batch.push((case, variants, buffers));
        if bytes > FLUSH_BYTES || i + 1 == cases.len() {
            out.extend(time_batch(ctx, &batch, fastest_rate, &mut warmed).await?);
            batch.clear();
            bytes = 0;
            progress(out.len());
        }
    }
    Ok(out)
}

/// One batch of shapes, each with its candidates and scratch buffers (see the module's notes).
async fn time_batch(
    ctx: &GpuContext,
    batch: &[(&Case, &[Variant], CaseBuffers)],
    fastest_rate: &mut f64,
    warmed: &mut HashSet<Shader>,
) -> Result<Vec<Timed>, GpuError> {
    // 1. Warm-ups, and the device's speed where it is not known yet.
    let (accepted, warm_ups) = accepted_candidates(ctx, batch, warmed).await?;
    // The device's speed, from the smallest of the candidates' samples of a sixty-fourth
    // (each at least a few workgroups: a launch of one workgroup runs whole).
    let rate_sample = (*fastest_rate == 0.0).then(|| {
        let samples = accepted.iter().map(|&(c, variant)| {
            let (case, _, buffers) = &batch[c];
            let (launch, kept) = buffers.sample(ctx, &case.shape, variant, 1.0 / 64.0);
            (launch, kept * case.shape.flops())
        });
        samples
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("a candidate was accepted")
    });
    let untimed: Vec<&Launch> = warm_ups.iter().collect();
    let timed: Vec<&Launch> = rate_sample.iter().map(|(l, _)| l).collect();
    let seconds = read_times(ctx, &untimed, &timed).await?;
    if let Some((_, flops)) = &rate_sample {
        *fastest_rate = rate(*flops, seconds[0]);
    }
    // Each shape's sample runs for about SAMPLE_SECONDS at the fastest rate.
    let mut trials: Vec<Trial> = accepted
        .into_iter()
        .map(|(c, variant)| {
            let (case, _, buffers) = &batch[c];
            let fraction = SAMPLE_SECONDS * *fastest_rate / case.shape.flops();
            Trial {
                case: c,
                variant,
                sample: buffers.sample(ctx, &case.shape, variant, fraction),
                probe: f64::INFINITY,
                runs: Vec::new(),
                timed: true,
            }
        })
        .collect();

    // 2. Probes where a shape's samples are part of its launch and it has several candidates:
    // a sixteenth of the sample, or the sample itself (a run) where no less can be kept.
    let candidates: Vec<usize> = (0..batch.len())
        .map(|c| trials.iter().filter(|t| t.case == c).count())
        .collect();
    let probes: Vec<(usize, Launch, f64)> = trials
        .iter()
        .enumerate()
        .filter(|(_, t)| t.sample.1 < 1.0 && candidates[t.case] > 1)
        .map(|(i, t)| {
            let (case, _, buffers) = &batch[t.case];
            let fraction = SAMPLE_SECONDS * *fastest_rate / case.shape.flops() / 16.0;
            let (launch, kept) = buffers.sample(ctx, &case.shape, t.variant, fraction);
            (i, launch, kept)
        })
        .collect();
    let timed: Vec<&Launch> = probes.iter().map(|(_, l, _)| l).collect();
    let seconds = read_times(ctx, &[], &timed).await?;
    for ((i, _, kept), s) in probes.iter().zip(seconds) {
        let t = &mut trials[*i];
        t.probe = s / kept;
        if *kept >= t.sample.1 {
            t.runs.push(t.probe);
        }
    }
    let mut best_probe = vec![f64::INFINITY; batch.len()];
    for t in &trials {
        best_probe[t.case] = best_probe[t.case].min(t.probe);
    }
    for t in &mut trials {
        // A best probe of 0 (shorter than the clock's resolution) says nothing of the others.
        let best = best_probe[t.case];
        t.timed = best == 0.0 || t.probe <= CLEARLY_SLOWER * best || t.probe == f64::INFINITY;
    }

    // 3. The timing: the remaining candidates' samples in rounds, RUNS runs in all each (one
    // where a run takes LONG_RUN_SECONDS: as its probe said, or, unprobed, at the fastest rate;
    // none where its probes left a shape one candidate, which is chosen on its probe).
    let mut remaining = vec![0; batch.len()];
    for t in trials.iter().filter(|t| t.timed) {
        remaining[t.case] += 1;
    }
    let run_seconds = |t: &Trial| match t.probe.is_finite() {
        true => t.probe * t.sample.1,
        false => batch[t.case].0.shape.flops() * t.sample.1 / *fastest_rate,
    };
    let wanted = |t: &Trial| match (remaining[t.case], run_seconds(t) > LONG_RUN_SECONDS) {
        (1, _) => 0,
        (_, true) => 1,
        (_, false) => RUNS,
    };
    let rounds: Vec<Vec<usize>> = (0..RUNS)
        .map(|r| {
            (0..trials.len())
                .filter(|&i| trials[i].timed && trials[i].runs.len() + r < wanted(&trials[i]))
                .collect()
        })
        .collect();
    let timed: Vec<&Launch> = rounds.iter().flatten().map(|&i| &trials[i].sample.0).collect();
    let seconds = read_times(ctx, &[], &timed).await?;
    for (&i, s) in rounds.iter().flatten().zip(seconds) {
        let kept = trials[i].sample.1;
        trials[i].runs.push(s / kept);
    }
    for t in trials.iter().filter(|t| t.timed) {
        let (case, _, _) = &batch[t.case];
        *fastest_rate = fastest_rate.max(rate(case.shape.flops(), t.seconds()));
    }

    batch
        .iter()
        .enumerate()
        .map(|(c, (case, variants, _))| {
            let mine = || trials.iter().filter(move |t| t.case == c);
            // The first of the fastest, in the order of preference.
            let chosen = mine()
                .filter(|t| t.timed)
                .fold(None::<&Trial>, |best, t| match best {
                    Some(b) if b.seconds() <= t.seconds() => Some(b),
                    _ => Some(t),
                })
                .ok_or_else(|| all_rejected(&case.key, variants))?;
            let ms = |t: &Trial| 1e3 * if t.timed { t.seconds() } else { t.probe };
            Ok(Timed {
                chosen: chosen.variant,
                timings: mine().map(|t| (t.variant, ms(t))).collect(),
            })
        })
        .collect()
}

/// FLOP/s of `flops` done in `seconds`: unbounded where the clock did not advance (a launch
/// shorter than its resolution), so that such launches run whole.
fn rate(flops: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        flops / seconds
    } else {
        f64::INFINITY
    }
}

/// The candidates of the batch that the device accepts (each its shape's index and variant),
/// and warm-ups for the kernels they run that are not in `warmed` yet: the launch whose warm-up
/// does least among those running a kernel, cut to one workgroup along each dispatch's longest
/// axis (adapters such as lavapipe build a pipeline at its first dispatch; a kernel's pipeline
/// serves every shape). Each candidate is built in an
/// error scope of its own, and the scopes are awaited together; a rejected variant is dropped
/// (with its pipelines).
async fn accepted_candidates(
    ctx: &GpuContext,
    batch: &[(&Case, &[Variant], CaseBuffers)],
    warmed: &mut HashSet<Shader>,
) -> Result<(Vec<(usize, Variant)>, Vec<Launch>), GpuError> {
    let mut pending = Vec::new();
    for (c, (case, variants, buffers)) in batch.iter().enumerate() {
        for &variant in variants.iter() {
            let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let mut warm_up = buffers.launch(ctx, &case.shape, variant);
            let kept = warm_up.shrink(0.0);
            ctx.fault_point(Fault::Candidate(variant));
            pending.push((c, variant, warm_up, kept, scope.pop()));
        }
    }
    let mut accepted = Vec::new();
    let mut candidates = Vec::new();
    for (c, variant, warm_up, kept, popped) in pending {
        match popped.await {
            None => {
                accepted.push((c, variant));
                candidates.push((batch[c].0.shape.flops() * kept, warm_up));
            }
            Some(error) => {
                let key = &batch[c].0.key;
                drop_rejected(ctx, key, variant, &warm_up.shaders(), &error, "which is dropped");
            }
        }
    }
    // Each kernel warms up on the launch whose warm-up does the least work.
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut warm_ups = Vec::new();
    for (_, warm_up) in candidates {
        let shaders = warm_up.shaders();
        if shaders.iter().any(|s| !warmed.contains(s)) {
            warmed.extend(shaders);
            warm_ups.push(warm_up);
        }
    }
    match accepted.is_empty() {
        true => Err(all_rejected(&batch[0].0.key, batch[0].1)),
        false => Ok((accepted, warm_ups)),
    }
}

/// [`launch_times`], on an adapter that has timestamp queries.
async fn read_times(ctx: &GpuContext, untimed: &[&Launch], timed: &[&Launch]) -> Result<Vec<f64>, GpuError> {
    if untimed.is_empty() && timed.is_empty() {
        return Ok(Vec::new());
    }
    launch_times(ctx, untimed, timed).await?.ok_or_else(|| {
        GpuError::Validation("kernel timing on the GPU's clock needs timestamp queries".into())
    })
}
