//! The plan of a run, made once before a buffer exists: the micro-batch split, the memory it
//! takes and the kernel variant of every GEMM-shaped launch. The network is built from it
//! whole; the app and the command line show it.

use super::activations::{ActivationPlan, MemoryMode};
use super::{GradientPlan, MemoryReport, ParameterLayout, ScheduleError};
use crate::gpu::{KernelChoices, KernelPolicy};
use crate::model::{Model, Shape};
use crate::shaders::Precision;

/// Everything decided about running `model` at `batch` images a step on a device.
#[derive(Clone, Debug)]
pub struct Plan {
    pub model: Model,
    /// Images per step, and per micro-batch run on the device (a divisor of `batch`).
    pub batch: usize,
    pub micro_batch: usize,
    /// Shapes of every tensor at the micro-batch (index = tensor id).
    pub shapes: Vec<Shape>,
    /// Which buffer holds each activation gradient in the backward pass.
    pub gradients: GradientPlan,
    /// Where each activation lives: kept, or recomputed in a block's scratch buffers.
    pub activations: ActivationPlan,
    /// Where parameters, their gradients and momentum live: ranges of a few arenas.
    pub parameters: ParameterLayout,
    /// Whether the memory mode was asked for, rather than chosen here.
    pub mode_given: bool,
    /// Each memory mode tried and the largest micro-batch it allows (`None`: not even one
    /// image fits): what the choice of mode was made from.
    pub mode_options: Vec<(MemoryMode, Option<usize>)>,
    /// What the plan was made to fit.
    pub limits: DeviceLimits,
    pub memory: MemoryReport,
    /// The variant each GEMM-shaped launch runs: the policy, and the choices measured on the
    /// device (`schedule::choose_kernels` fills them in).
    pub kernels: KernelChoices,
}

impl Plan {
    /// Plans `model` at `batch` images within `limits`, in micro-batches of at most
    /// `max_micro_batch` (and smaller where a buffer would not fit), in memory mode `mode`
    /// (`None`: the fastest that runs the batch whole, else the one that allows the largest
    /// micro-batch), launches picking their variant as `policy` says.
    pub fn new(
        model: Model,
        batch: usize,
        limits: DeviceLimits,
        max_micro_batch: Option<usize>,
        mode: Option<MemoryMode>,
        policy: KernelPolicy,
    ) -> Result<Self, ScheduleError> {
        if batch == 0 {
            return Err(ScheduleError::EmptyBatch);
        }
        let offered = |m: &MemoryMode| limits.shader_f16 || m.precision() == Precision::F32;
        let tried: Vec<MemoryMode> = match mode {
            Some(m) if !offered(&m) => return Err(ScheduleError::NoF16 { mode: m.name() }),
            Some(m) => vec![m],
            None => MemoryMode::ALL.into_iter().filter(offered).collect(),
        };
        let mode_options: Vec<(MemoryMode, Option<usize>)> = tried
            .iter()
            .map(|&m| (m, choose_micro_batch(&model, batch, limits, max_micro_batch, m)))
            .collect();
        // The largest micro-batch; of two modes that allow the same, the faster (listed first).
        let best = mode_options
            .iter()
            .filter_map(|&(m, micro)| Some((micro?, m)))
            .fold(None, |best: Option<(usize, MemoryMode)>, (micro, m)| match best {
                Some((b, _)) if b >= micro => best,
                _ => Some((micro, m)),
            });
        let Some((micro_batch, mode_chosen)) = best else {
            let name = format!("{} ({} stem)", model.variant.name(), model.stem.name());
            let last = *tried.last().expect("a mode");
            return Err(ScheduleError::too_large(name, &model, batch, limits, last));
        };
        let shapes = model.shapes(micro_batch);
        let gradients = GradientPlan::new(&model, &shapes);
        let activations = ActivationPlan::new(&model, &shapes, mode_chosen);
        Ok(Self {
            memory: MemoryReport::of_plan(&model, batch, micro_batch, &shapes, &gradients, &activations),
            gradients,
            activations,
            parameters: ParameterLayout::new(
                &model.parameters().iter().map(|p| p.len()).collect::<Vec<_>>(),
                limits.max_buffer,
            ),
            mode_given: mode.is_some(),
            mode_options,
            shapes,
            model,
            batch,
            micro_batch,
            limits,
            kernels: KernelChoices {
                policy,
                measured: Default::default(),
            },
        })
    }
}

impl Plan {
    /// The memory mode and why: "memory mode recompute: each block's forward reruns before
    /// its backward, since full would run micro-batches of 16 at most", the one wording for
    /// every screen.
    pub fn mode_note(&self) -> String {
        let mode = self.activations.mode;
        let mut note = format!("memory mode {}: {}", mode.name(), mode.describe());
        if self.mode_given {
            note.push_str(", as asked");
            return note;
        }
        // The cheaper modes tried, and the largest micro-batch any of them allows.
        let cheaper: Vec<&(MemoryMode, Option<usize>)> =
            self.mode_options.iter().take_while(|(m, _)| *m != mode).collect();
        if let Some(best) = cheaper.iter().max_by_key(|(_, micro)| *micro) {
            let names: Vec<&str> = cheaper.iter().map(|(m, _)| m.name()).collect();
            match best.1 {
                Some(m) => note.push_str(&format!(
                    ", since {} would run micro-batches of {m} at most",
                    names.join(" or ")
                )),
                None => note.push_str(&format!(", since {} would not fit one image", names.join(" or "))),
            }
        }
        if !self.limits.shader_f16 {
            note.push_str(" (no f16 storage: the device does not offer shader-f16)");
        }
        note
    }
}

/// What a plan must fit on a device: the largest buffer it may bind, and the memory budget for
/// all its buffers together (see `GpuContext::memory_budget`), in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    pub max_buffer: u64,
    pub memory_budget: u64,
    /// Whether the device offers `shader-f16` (and so the f16 memory modes).
    pub shader_f16: bool,
}

/// The largest micro-batch that divides `batch` and whose buffers fit `limits` (the largest
/// within the binding limit, all of them within the budget), at most `max_micro_batch`;
/// `None` when not even one image fits. The one place the micro-batch is decided.
fn choose_micro_batch(
    model: &Model,
    batch: usize,
    limits: DeviceLimits,
    max_micro_batch: Option<usize>,
    mode: MemoryMode,
) -> Option<usize> {
    let cap = max_micro_batch.unwrap_or(batch).min(batch);
    (1..=cap).rev().filter(|&m| batch.is_multiple_of(m)).find(|&m| {
        let report = MemoryReport::new(model, batch, m, mode);
        report.largest_buffer <= limits.max_buffer
            && report.total() <= limits.memory_budget
            && within_loop_bounds(model, m)
    })
}

/// Whether every kernel of a step at `micro_batch` images stays within the loop bound of the
/// software adapters: a batch norm's values per channel, the loss's rows times classes.
fn within_loop_bounds(model: &Model, micro_batch: usize) -> bool {
    let batch_norms_fit = model.describe(micro_batch).iter().all(|d| {
        let [n, _, h, w] = d.output;
        d.statistics.is_none() || n * h * w <= crate::ops::batch_norm::MAX_PER_CHANNEL
    });
    let loss_fits = micro_batch.div_ceil(256) * (2 * model.classes + 1) <= crate::gpu::MAX_LOOP_ITERATIONS;
    batch_norms_fit && loss_fits
}
