//! The scheduler: turns a [`Model`] and a batch size into GPU buffers, planned once, and the
//! launch lists of a training step (forward, loss, backward, SGD) and of inference.
//!
//! Planning ([`plan`]: gradient slots, memory, micro-batch), allocation ([`allocate`]),
//! recording the launch lists ([`record`]) and running them (here) are separate steps; kernel
//! variants are chosen before recording ([`tune`]).
//!
//! A batch too large for the device's per-buffer limit runs as equal micro-batches: each one's
//! forward and backward add into the parameter gradients (the loss gradient is divided by the
//! whole batch), and one SGD update follows. Batch norm then normalizes each micro-batch by its
//! own statistics and merges them into the step's, and the running statistics are updated once
//! per step from the whole batch's statistics.
//!
//! A step is applied whole or not at all: after its last backward, finiteness checks of every
//! gradient and batch-norm statistic flag the step's status record on the device (the loss
//! flags it too), and the SGD and running-statistic updates change nothing in a flagged step
//! ([`crate::ops::finite_check`]). The host learns it from the same read as the loss.

mod activations;
mod allocate;
mod grad_cam;
mod gradients;
mod kernel_cache;
mod memory;
mod norms;
mod parameters;
mod plan;
mod record;
mod tune;

pub use activations::{ActivationPlan, MemoryMode, Storage};
pub use allocate::Buffers;
pub use grad_cam::{CamSource, ClassMaps, grad_cam_cpu};
pub use gradients::GradientPlan;
pub use kernel_cache::KernelCache;
pub use memory::{MemoryReport, mib};
pub use norms::{LayerNorms, NORMS_READ_SHARE, group_by_layer};
pub use parameters::ParameterLayout;
pub use plan::{DeviceLimits, Plan};
pub use tune::{Clock, TuneReport, TunedLaunch, Tuning, choose_kernels};

use crate::gpu::{Fault, GpuBuffer, GpuContext, GpuError, Launch};
use crate::model::Model;
use crate::ops::finite_check::{self, NonFinite, STATUS_LEN};
use crate::ops::sgd::{self, SgdConfig};
use record::Launches;

/// Why a configuration cannot run on the device.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "one image at a time, {model} needs {need_total:.0} MiB of buffers, the largest \
         {need_buffer:.1} MiB; this device allows {max_buffer:.0} MiB per buffer and a budget \
         of {budget:.0} MiB in all (--memory changes the budget); choose a smaller model or \
         the CIFAR stem"
    )]
    TooLarge {
        model: String,
        need_buffer: f64,
        need_total: f64,
        max_buffer: f64,
        budget: f64,
    },
    #[error("batch size must be at least 1")]
    EmptyBatch,
    #[error(
        "memory mode {mode} stores activations as f16, which needs the device's shader-f16 \
         feature, and this device does not offer it: choose full or recompute (or auto)"
    )]
    NoF16 { mode: &'static str },
    #[error("{expected} initial tensors expected (one per parameter), got {got}")]
    WrongParameters { expected: usize, got: usize },
    #[error(
        "the device could not set up the network: {reason}. It needed {need:.0} MiB of buffers \
         with micro-batches of {micro_batch}; this device allows {max_buffer:.0} MiB per buffer \
         and the budget is {budget:.0} MiB. {instead}"
    )]
    Device {
        reason: String,
        need: f64,
        micro_batch: usize,
        max_buffer: f64,
        budget: f64,
        /// What would fit instead: a smaller micro-batch and its need, or a smaller model.
        instead: String,
    },
}

impl ScheduleError {
    /// [`ScheduleError::Device`] for a plan of `model` at `batch` in micro-batches of
    /// `micro_batch` that the device refused with `reason`: names the next smaller micro-batch
    /// (a divisor of the batch) and what it needs.
    pub fn device(plan: &Plan, reason: String) -> Self {
        let (model, batch, micro_batch, limits) = (&plan.model, plan.batch, plan.micro_batch, plan.limits);
        let mode = plan.activations.mode;
        let need = plan.memory.total();
        let smaller = (1..micro_batch).rev().find(|d| batch.is_multiple_of(*d));
        let instead = match smaller {
            Some(d) => {
                let need_d = MemoryReport::new(model, batch, d, mode).total();
                format!(
                    "Micro-batches of {d} would need {:.0} MiB: set --micro-batch {d} or a \
                     budget of at most {} MiB (--memory), or choose a smaller batch or model",
                    mib(need_d),
                    (need_d >> 20) + 1
                )
            }
            None => "Choose a smaller batch or model, or the CIFAR stem".into(),
        };
        ScheduleError::Device {
            reason,
            need: mib(need),
            micro_batch,
            max_buffer: mib(limits.max_buffer),
            budget: mib(limits.memory_budget),
            instead,
        }
    }

    /// [`ScheduleError::TooLarge`] for `model` (named `name`) at one image per micro-batch in
    /// memory mode `mode`.
    pub fn too_large(
        name: String,
        model: &Model,
        batch: usize,
        limits: DeviceLimits,
        mode: MemoryMode,
    ) -> Self {
        let one = MemoryReport::new(model, batch, 1, mode);
        ScheduleError::TooLarge {
            model: name,
            need_buffer: mib(one.largest_buffer),
            need_total: mib(one.total()),
            max_buffer: mib(limits.max_buffer),
            budget: mib(limits.memory_budget),
        }
    }
}

/// Mean loss and correct predictions of one training step, and what was not finite in it
/// (where anything was, the step changed nothing on the device).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    pub correct: usize,
    pub non_finite: NonFinite,
}

/// Parameters, momentum buffers and running statistics, copied to the CPU (checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkState {
    /// In `Model::parameters()` order.
    pub params: Vec<Vec<f32>>,
    pub momentum: Vec<Vec<f32>>,
    /// (mean, var) per batch norm, in `Model::batch_norms()` order.
    pub running: Vec<(Vec<f32>, Vec<f32>)>,
}

impl NetworkState {
    /// `params` (in `Model::parameters()` order) with no momentum yet and the running
    /// statistics batch norm starts with (mean 0, variance 1).
    pub fn fresh(model: &Model, params: Vec<Vec<f32>>) -> Self {
        Self {
            momentum: params.iter().map(|p| vec![0.0; p.len()]).collect(),
            running: model
                .batch_norms()
                .iter()
                .map(|(_, c)| (vec![0.0; *c], vec![1.0; *c]))
                .collect(),
            params,
        }
    }
}

/// Every buffer of a model at one (micro-)batch size, and the launches that use them: built
/// whole from its [`Plan`].
pub struct Network {
    /// What it was built from: the model, batch, micro-batch, shapes, memory and kernel choices.
    pub plan: Plan,
    pub buffers: Buffers,
    launches: Launches,
    sgd_config: SgdConfig,
}

impl Network {
    /// Every GEMM-shaped launch recorded (training and inference) whose variant the plan's
    /// kernel choices picked: its shape key and the variant it runs.
    pub fn gemm_launches(&self) -> Vec<(crate::gpu::GemmKey, Option<crate::gpu::Variant>)> {
        let l = &self.launches;
        [&l.train_first, &l.train_accumulate, &l.eval]
            .into_iter()
            .flatten()
            .filter_map(|launch| Some((launch.gemm.clone()?, launch.variant)))
            .collect()
    }

    /// Runs one training step on a batch (images [B, 3, 32, 32] in [0, 1], labels [B]) and
    /// returns its mean loss and correct count, or the error the device reported meanwhile.
    /// Where the loss, a gradient or a batch statistic was not finite, the step changed nothing
    /// on the device (parameters, momentum and running statistics are as before it) and
    /// `non_finite` says what.
    pub async fn train_step(
        &self,
        ctx: &GpuContext,
        images: &[f32],
        labels: &[u32],
    ) -> Result<StepStats, GpuError> {
        assert_eq!(
            labels.len(),
            self.plan.batch,
            "train step: one label per image of the batch"
        );
        assert_eq!(
            images.len(),
            self.plan.batch * IMAGE_LEN,
            "train step: image data length"
        );
        let m = self.plan.micro_batch;
        let mut loss_sum = 0.0;
        let mut correct = 0;
        let mut non_finite = NonFinite::default();
        self.buffers.status.write(ctx, &[0; STATUS_LEN]);
        for k in 0..self.plan.batch / m {
            self.buffers.activations[0].write(ctx, &images[k * m * IMAGE_LEN..(k + 1) * m * IMAGE_LEN]);
            self.buffers.labels.write(ctx, &labels[k * m..(k + 1) * m]);
            let last = (k + 1) * m == self.plan.batch;
            let launches = if k == 0 {
                &self.launches.train_first
            } else {
                &self.launches.train_accumulate
            };
            let once_per_step: &[&Vec<Launch>] = if last {
                &[&self.launches.check, &self.launches.sgd, &self.launches.running]
            } else {
                &[]
            };
            let step_launches = once_per_step.iter().flat_map(|list| list.iter());
            ctx.submit_all("train step", launches.iter().chain(step_launches));
            let read = self.buffers.status.read(ctx).await;
            ctx.check_at(Fault::Step)?;
            let (loss, right, flags) = finite_check::decode(&read?);
            loss_sum += loss;
            correct += right as usize;
            non_finite = flags;
        }
        Ok(StepStats {
            loss: loss_sum / (self.plan.batch / m) as f32,
            correct,
            non_finite,
        })
    }

    /// Logits [count, classes] of `count` images in inference mode (running statistics); any
    /// count, run in chunks of the micro-batch size.
    pub async fn predict(&self, ctx: &GpuContext, images: &[f32]) -> Result<Vec<f32>, GpuError> {
        assert_eq!(images.len() % IMAGE_LEN, 0, "predict: whole images expected");
        let count = images.len() / IMAGE_LEN;
        let m = self.plan.micro_batch;
        let classes = self.plan.model.classes;
        let mut logits = Vec::with_capacity(count * classes);
        let mut chunk = vec![0.0; m * IMAGE_LEN];
        for start in (0..count).step_by(m) {
            let n = m.min(count - start);
            chunk[..n * IMAGE_LEN].copy_from_slice(&images[start * IMAGE_LEN..(start + n) * IMAGE_LEN]);
            chunk[n * IMAGE_LEN..].fill(0.0);
            self.buffers.activations[0].write(ctx, &chunk);
            ctx.submit_all("inference", &self.launches.eval);
            let out = self.buffers.activations[self.plan.model.output()].read(ctx).await;
            ctx.check_at(Fault::Predict)?;
            let out = out?;
            logits.extend_from_slice(&out[..n * classes]);
        }
        Ok(logits)
    }

    /// Changes the learning rate (and the other SGD settings) of later steps.
    pub fn set_sgd(&mut self, ctx: &GpuContext, config: SgdConfig) {
        self.sgd_config = config;
        for (launch, arena) in self.launches.sgd.iter().zip(&self.buffers.param_arenas) {
            launch.set_params(ctx, &sgd::SgdParams::new(arena.len(), config));
        }
    }

    pub fn sgd(&self) -> SgdConfig {
        self.sgd_config
    }

    /// Copies parameters, momentum and running statistics to the CPU.
    pub async fn read_state(&self, ctx: &GpuContext) -> Result<NetworkState, GpuError> {
        // One read-back of everything: parameters, momentum, then each running mean and variance.
        let b = &self.buffers;
        let running = b.running.iter().flat_map(|(mean, var)| [mean, var]);
        let all: Vec<&GpuBuffer<f32>> = b.params.iter().chain(&b.momentum).chain(running).collect();
        let mut values = GpuBuffer::read_all(ctx, &all).await?.into_iter();
        let params = values.by_ref().take(b.params.len()).collect();
        let momentum = values.by_ref().take(b.momentum.len()).collect();
        let mut running = Vec::with_capacity(b.running.len());
        while let (Some(mean), Some(var)) = (values.next(), values.next()) {
            running.push((mean, var));
        }
        ctx.check_at(Fault::StateCopy)?;
        Ok(NetworkState {
            params,
            momentum,
            running,
        })
    }

    /// Overwrites parameters, momentum and running statistics (shapes must match the model).
    pub fn write_state(&self, ctx: &GpuContext, state: &NetworkState) {
        assert_eq!(
            state.params.len(),
            self.buffers.params.len(),
            "write state: parameter count"
        );
        assert_eq!(
            state.running.len(),
            self.buffers.running.len(),
            "write state: batch norm count"
        );
        for ((p, v), (values, momentum)) in self
            .buffers
            .params
            .iter()
            .zip(&self.buffers.momentum)
            .zip(state.params.iter().zip(&state.momentum))
        {
            p.write(ctx, values);
            v.write(ctx, momentum);
        }
        for ((mean, var), (m, v)) in self.buffers.running.iter().zip(&state.running) {
            mean.write(ctx, m);
            var.write(ctx, v);
        }
    }

    /// Launches of one training step on one micro-batch, for timing each kernel.
    pub fn step_launches(&self) -> impl Iterator<Item = &Launch> {
        self.launches
            .train_first
            .iter()
            .chain(&self.launches.check)
            .chain(&self.launches.sgd)
            .chain(&self.launches.running)
    }
}

/// Floats of one 3×32×32 input image.
pub const IMAGE_LEN: usize = 3 * 32 * 32;
