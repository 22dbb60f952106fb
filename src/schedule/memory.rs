//! How much device memory a plan takes, by kind.

use std::fmt;

use super::activations::{ActivationPlan, MemoryMode, Storage};
use super::{GradientPlan, ParameterLayout};
use crate::model::{Model, Shape};
use crate::schedule::DeviceLimits;

const F32: u64 = 4;

/// Device memory of a configuration, by kind, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// Images in one batch, and in each micro-batch run on the device.
    pub batch: usize,
    pub micro_batch: usize,
    /// Whether activations are all kept or the blocks' recomputed, and their precision.
    pub mode: MemoryMode,
    /// Parameters, their gradients and momentum, and batch-norm running statistics.
    pub parameters: u64,
    /// The layers' outputs, at the mode's precision: those kept for the backward pass, and the
    /// scratch buffers of the recomputed ones.
    pub activations: u64,
    /// Gradients of activations, after reuse.
    pub activation_gradients: u64,
    /// What those gradients would take without reuse.
    pub activation_gradients_unshared: u64,
    /// Batch-norm saved statistics, max-pool argmax indices, labels, the loss and the sums of
    /// squares behind the per-layer norms.
    pub other: u64,
    /// The largest single buffer (the device's per-buffer binding limit applies to it).
    pub largest_buffer: u64,
}

impl MemoryReport {
    /// Plans `model` at micro-batch `micro_batch` (the device runs `batch` as
    /// `batch / micro_batch` micro-batches) in memory mode `mode`.
    pub fn new(model: &Model, batch: usize, micro_batch: usize, mode: MemoryMode) -> Self {
        let shapes = model.shapes(micro_batch);
        Self::of_plan(
            model,
            batch,
            micro_batch,
            &shapes,
            &GradientPlan::new(model, &shapes),
            &ActivationPlan::new(model, &shapes, mode),
        )
    }

    /// [`MemoryReport::new`] from the tensor shapes at the micro-batch and the gradient slots
    /// already planned.
    pub fn of_plan(
        model: &Model,
        batch: usize,
        micro_batch: usize,
        shapes: &[Shape],
        gradients: &GradientPlan,
        activations: &ActivationPlan,
    ) -> Self {
        let bytes = |len: usize| len.max(1) as u64 * F32;
        let activation_bytes = |len: usize| (len.max(1) * activations.mode.precision().bytes()) as u64;
        let numel = |s: &Shape| s.iter().product::<usize>();
        let layers = model.describe(micro_batch);
        let params: Vec<_> = layers.iter().flat_map(|d| &d.params).collect();
        let running: u64 = layers
            .iter()
            .filter_map(|d| d.statistics.as_ref())
            .map(|(_, c)| 2 * bytes(*c))
            .sum();
        // Parameters, gradients and momentum: three arenas of each parameter's slot.
        let slots = params
            .iter()
            .map(|p| ParameterLayout::slot_len(p.len()) as u64 * F32);
        let parameters = 3 * slots.sum::<u64>() + running;
        let kept = shapes
            .iter()
            .zip(&activations.storage)
            .filter(|(_, storage)| **storage == Storage::Kept)
            .map(|(s, _)| activation_bytes(numel(s)));
        let scratch = activations.scratch_len.iter().map(|&len| activation_bytes(len));
        let activation_buffers: Vec<u64> = kept.chain(scratch).collect();
        let activation_gradients = gradients.slot_len.iter().map(|&l| bytes(l)).sum();
        let activation_gradients_unshared = gradients
            .tensor_slot
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(t, _)| bytes(numel(&shapes[t])))
            .sum();
        let mut other =
            bytes(micro_batch) + bytes(2) + bytes(2 * params.len() * crate::ops::sum_of_squares::PARTIALS);
        for description in &layers {
            if let Some(len) = description.saved_len() {
                other += bytes(len);
            }
            if let Some(len) = description.argmax {
                other += bytes(len);
            }
        }
        let largest_buffer = (activation_buffers.iter().copied())
            .chain(gradients.slot_len.iter().map(|&l| bytes(l)))
            .chain(params.iter().map(|p| bytes(p.len())))
            .max()
            .unwrap_or(0);
        Self {
            batch,
            micro_batch,
            mode: activations.mode,
            parameters,
            activations: activation_buffers.iter().sum(),
            activation_gradients,
            activation_gradients_unshared,
            other,
            largest_buffer,
        }
    }

    pub fn total(&self) -> u64 {
        self.parameters + self.activations + self.activation_gradients + self.other
    }

    pub fn micro_batches(&self) -> usize {
        self.batch / self.micro_batch
    }

    /// "runs as 4 micro-batches of 32 (here a buffer may hold at most 128 MiB, and all of them
    /// 4096 MiB)", or `None` when the batch runs whole: the one wording of this fact for every
    /// screen.
    pub fn micro_batch_note(&self, limits: DeviceLimits) -> Option<String> {
        (self.micro_batch < self.batch).then(|| {
            format!(
                "runs as {} micro-batches of {} (here a buffer may hold at most {:.0} MiB, and all of them {:.0} MiB)",
                self.micro_batches(),
                self.micro_batch,
                mib(limits.max_buffer),
                mib(limits.memory_budget)
            )
        })
    }
}

/// Mebibytes, for messages.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "device memory: {:.1} MiB in all (largest buffer {:.1} MiB)",
            mib(self.total()),
            mib(self.largest_buffer)
        )?;
        writeln!(
            f,
            "  parameters, gradients, momentum, running stats: {:.1} MiB",
            mib(self.parameters)
        )?;
        writeln!(
            f,
            "  activations: {:.1} MiB ({}: {})",
            mib(self.activations),
            self.mode.name(),
            self.mode.describe()
        )?;
        writeln!(
            f,
            "  activation gradients: {:.1} MiB (reuse saves {:.1} MiB)",
            mib(self.activation_gradients),
            mib(self.activation_gradients_unshared - self.activation_gradients)
        )?;
        write!(
            f,
            "  saved statistics, indices, labels: {:.1} MiB",
            mib(self.other)
        )?;
        if self.micro_batch < self.batch {
            write!(
                f,
                "\n  batch {} runs as {} micro-batches of {} with gradient accumulation",
                self.batch,
                self.micro_batches(),
                self.micro_batch
            )?;
        }
        Ok(())
    }
}
