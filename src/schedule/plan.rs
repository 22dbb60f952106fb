//! The plan of a run, made once before a buffer exists: the micro-batch split, the memory it
//! takes and the kernel variant of every GEMM-shaped launch. The network is built from it
//! whole; the app and the command line show it.

use super::activations::{ActivationPlan, MemoryMode};
use super::{GradientPlan, MemoryReport, ParameterLayout, ScheduleError};
use crate::gpu::{KernelChoices, KernelPolicy};
use crate::model::{Model, Shape};

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
        let tried: Vec<MemoryMode> = match mode {
            Some(m) => vec![m],
            None => MemoryMode::ALL.to_vec(),
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
    /// The memory mode and why: "memory mode recompute: keeping every activation would run
    /// micro-batches of 16 at most", the one wording for every screen.
    pub fn mode_note(&self) -> String {
        let mode = self.activations.mode;
        let why = match (self.mode_given, mode) {
            (true, _) => "as asked".to_string(),
            (false, MemoryMode::Full) => "every activation kept from the forward to the backward".to_string(),
            (false, MemoryMode::Recompute) => {
                let full = self.mode_options.iter().find(|(m, _)| *m == MemoryMode::Full);
                match full.and_then(|(_, micro)| *micro) {
                    Some(m) => format!(
                        "each block's forward reruns before its backward, since keeping every activation would run micro-batches of {m} at most"
                    ),
                    None => "each block's forward reruns before its backward, since keeping every activation would not fit one image".to_string(),
                }
            }
        };
        format!("memory mode {}: {why}", mode.name())
    }
}

/// What a plan must fit on a device: the largest buffer it may bind, and the memory budget for
/// all its buffers together (see `GpuContext::memory_budget`), in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    pub max_buffer: u64,
    pub memory_budget: u64,
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
