//! Planning without a device: which gradient buffers a backward pass needs and when each can be
//! reused, how much memory a configuration takes, and how finely a batch must be split to fit
//! the device's per-buffer limit.

use std::collections::HashMap;
use std::fmt;

use crate::model::{Model, Op, Shape};
use crate::ops::batch_norm::SAVED_PER_CHANNEL;

const F32: u64 = 4;

/// Gradient buffers ("slots") of the tensors of one backward pass.
///
/// The gradient of a tensor read by several layers is the sum of their contributions. Layers
/// are planned in reverse; the first contribution (from the last reader) overwrites, later ones
/// accumulate (only convolutions add into their target, and the planner checks it). A residual
/// add passes its output gradient to both inputs unchanged, so its inputs share the output's
/// slot instead of copying it: by the time the block's first convolution adds its contribution
/// there, every other reader of that slot has run.
///
/// A ReLU fused into the batch norm before it (see [`Model::relu_fused_into_batch_norm`]) runs
/// no backward of its own: its input shares its output's slot, and the batch norm's backward
/// reads the ReLU's output gradient from there.
///
/// A slot is free again once the backward of the layer that produced each of its tensors has
/// read it; a later tensor of exactly the same length takes it over (launchers check lengths
/// exactly, so slots are matched by length).
#[derive(Clone, Debug, PartialEq)]
pub struct GradientPlan {
    /// Length (f32 elements) of each slot.
    pub slot_len: Vec<usize>,
    /// The slot holding each tensor's gradient; `None` where no gradient flows.
    pub tensor_slot: Vec<Option<usize>>,
    /// Per layer: the slot its backward writes for its first input, and whether it adds to
    /// what is there. (The residual add writes nothing: its inputs share its slot.)
    pub input_grad_target: Vec<Option<(usize, bool)>>,
}

/// Whether each layer owns parameters (so its output needs a gradient even if its input does
/// not).
fn has_parameters(op: &Op) -> bool {
    matches!(op, Op::Conv { .. } | Op::BatchNorm { .. } | Op::Linear { .. })
}

impl GradientPlan {
    pub fn new(model: &Model, shapes: &[Shape]) -> Self {
        let numel = |t: usize| shapes[t].iter().product::<usize>();
        let tensors = shapes.len();
        let fused = model.relu_fused_into_batch_norm();
        let mut needs_grad = vec![false; tensors];
        for (i, layer) in model.layers.iter().enumerate() {
            needs_grad[i + 1] = has_parameters(&layer.op) || layer.inputs.iter().any(|&t| needs_grad[t]);
        }

        let mut plan = Self {
            slot_len: Vec::new(),
            tensor_slot: vec![None; tensors],
            input_grad_target: vec![None; model.layers.len()],
        };
        let mut pool = SlotPool::default();
        let output = model.output();
        let slot = pool.take(&mut plan.slot_len, numel(output));
        plan.tensor_slot[output] = Some(slot);
        pool.holders[slot] = 1;
        pool.written[slot] = true; // the loss backward writes it

        for (i, layer) in model.layers.iter().enumerate().rev() {
            let y = i + 1;
            let Some(y_slot) = plan.tensor_slot[y] else {
                continue; // nothing downstream needs this layer's gradient
            };
            for (j, &x) in layer.inputs.iter().enumerate() {
                if !needs_grad[x] {
                    continue;
                }
                let slot = match (plan.tensor_slot[x], &layer.op) {
                    (None, Op::Add) => y_slot,
                    (None, Op::Relu) if fused[i] => y_slot,
                    (None, _) => pool.take(&mut plan.slot_len, numel(x)),
                    (Some(slot), op) => {
                        assert!(
                            matches!(op, Op::Conv { .. }),
                            "tensor {x} gets gradient from several layers, and layer {i} ({op:?}) cannot add into it"
                        );
                        slot
                    }
                };
                if plan.tensor_slot[x].is_none() {
                    plan.tensor_slot[x] = Some(slot);
                    pool.holders[slot] += 1;
                }
                let accumulate = pool.written[slot];
                pool.written[slot] = true;
                if j == 0 {
                    plan.input_grad_target[i] = Some((slot, accumulate));
                }
            }
            // Layer i's backward was the last reader of y's gradient.
            pool.release(y_slot, plan.slot_len[y_slot]);
        }
        plan
    }
}

/// Slots being planned: free ones by length; per slot, how many of its tensors still wait for
/// their producer's backward, and whether it holds a value yet.
#[derive(Default)]
struct SlotPool {
    free: HashMap<usize, Vec<usize>>,
    holders: Vec<usize>,
    written: Vec<bool>,
}

impl SlotPool {
    fn take(&mut self, slot_len: &mut Vec<usize>, len: usize) -> usize {
        if let Some(slot) = self.free.get_mut(&len).and_then(Vec::pop) {
            self.written[slot] = false;
            return slot;
        }
        slot_len.push(len);
        self.holders.push(0);
        self.written.push(false);
        slot_len.len() - 1
    }

    fn release(&mut self, slot: usize, len: usize) {
        self.holders[slot] -= 1;
        if self.holders[slot] == 0 {
            self.free.entry(len).or_default().push(slot);
        }
    }
}

/// Device memory of a configuration, by kind, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    /// Images in one batch, and in each micro-batch run on the device.
    pub batch: usize,
    pub micro_batch: usize,
    /// Parameters, their gradients and momentum, and batch-norm running statistics.
    pub parameters: u64,
    /// Every layer's output (kept for the backward pass).
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
    /// `batch / micro_batch` micro-batches).
    pub fn new(model: &Model, batch: usize, micro_batch: usize) -> Self {
        let shapes = model.shapes(micro_batch);
        let bytes = |len: usize| len.max(1) as u64 * F32;
        let numel = |s: &Shape| s.iter().product::<usize>();
        let params = model.parameters();
        let running: u64 = model.batch_norms().iter().map(|(_, c)| 2 * bytes(*c)).sum();
        let parameters = params.iter().map(|p| 3 * bytes(p.len())).sum::<u64>() + running;
        let activations = shapes
            .iter()
            .zip(model.stored_tensors())
            .filter(|(_, stored)| *stored)
            .map(|(s, _)| bytes(numel(s)))
            .sum();
        let plan = GradientPlan::new(model, &shapes);
        let activation_gradients = plan.slot_len.iter().map(|&l| bytes(l)).sum();
        let activation_gradients_unshared = plan
            .tensor_slot
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(t, _)| bytes(numel(&shapes[t])))
            .sum();
        let mut other =
            bytes(micro_batch) + bytes(2) + bytes(2 * params.len() * crate::ops::sum_of_squares::PARTIALS);
        for (i, layer) in model.layers.iter().enumerate() {
            match layer.op {
                Op::BatchNorm { .. } => other += SAVED_PER_CHANNEL as u64 * bytes(shapes[i][1]),
                Op::MaxPool { .. } => other += bytes(numel(&shapes[i + 1])),
                _ => {}
            }
        }
        let largest_buffer = shapes
            .iter()
            .map(|s| bytes(numel(s)))
            .chain(params.iter().map(|p| bytes(p.len())))
            .max()
            .unwrap_or(0);
        Self {
            batch,
            micro_batch,
            parameters,
            activations,
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
        writeln!(f, "  activations: {:.1} MiB", mib(self.activations))?;
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

/// What a plan must fit on a device: the largest buffer it may bind, and the memory budget for
/// all its buffers together (see `GpuContext::memory_budget`), in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceLimits {
    pub max_buffer: u64,
    pub memory_budget: u64,
}

/// The largest micro-batch that divides `batch` and whose buffers fit `limits` (the largest
/// within the binding limit, all of them within the budget), at most `max_micro_batch`;
/// `None` when not even one image fits.
pub fn choose_micro_batch(
    model: &Model,
    batch: usize,
    limits: DeviceLimits,
    max_micro_batch: Option<usize>,
) -> Option<usize> {
    let cap = max_micro_batch.unwrap_or(batch).min(batch);
    (1..=cap).rev().filter(|&m| batch.is_multiple_of(m)).find(|&m| {
        let report = MemoryReport::new(model, batch, m);
        report.largest_buffer <= limits.max_buffer
            && report.total() <= limits.memory_budget
            && within_loop_bounds(model, m)
    })
}

/// Whether every kernel of a step at `micro_batch` images stays within the loop bound of the
/// software adapters: a batch norm's values per channel, the loss's rows times classes.
pub fn within_loop_bounds(model: &Model, micro_batch: usize) -> bool {
    let shapes = model.shapes(micro_batch);
    let batch_norms_fit = model.layers.iter().all(|layer| match layer.op {
        Op::BatchNorm { .. } => {
            let [n, _, h, w] = shapes[layer.inputs[0]];
            n * h * w <= crate::ops::batch_norm::MAX_PER_CHANNEL
        }
        _ => true,
    });
    let loss_fits = micro_batch.div_ceil(256) * (2 * model.classes + 1) <= crate::gpu::MAX_LOOP_ITERATIONS;
    batch_norms_fit && loss_fits
}
