//! What defines a run: its model, batch, optimiser, schedule, data handling and policies.

use serde::{Deserialize, Serialize};

use super::{LrSchedule, ModelSpec};
use crate::data::BatchOptions;
use crate::gpu::{GpuContext, KernelPolicy};
use crate::model::{GammaInit, Model, Stem, Variant};
use crate::ops::sgd::SgdConfig;
use crate::schedule::{DeviceLimits, MemoryMode, Network, Plan, ScheduleError};

/// How training-set loss and error are measured each epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainMetrics {
    /// A pass over the training set in inference mode after the epoch, as the reference does.
    Eval,
    /// The mean of the epoch's batch losses and errors while training (no extra pass).
    Running,
}

/// What a run does with a step whose loss, gradients or batch statistics are not finite.
/// Either way the step changed nothing on the device: the weights, momentum and running
/// statistics are those before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNonFinite {
    /// Stop the run with an error naming the step.
    #[default]
    Stop,
    /// Skip the step (its batch is used up) and go on; stop once this many steps in a row were
    /// skipped.
    Skip { in_a_row: u32 },
}

/// Everything that defines a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelSpec,
    pub batch: usize,
    pub epochs: usize,
    pub sgd: SgdConfig,
    /// How the learning rate moves over the run (read from older files as `schedule`).
    #[serde(alias = "schedule")]
    pub lr_schedule: LrSchedule,
    pub augment: BatchOptions,
    pub shuffle: bool,
    pub seed: u64,
    /// Images taken from the end of the training set to validate on.
    pub validation: usize,
    /// Stop after this many steps in all (a short run or a smoke test).
    pub max_steps: Option<u64>,
    pub train_metrics: TrainMetrics,
    /// Run each batch as micro-batches of at most this many images (they are also split
    /// automatically when a buffer would exceed the device's limit).
    pub max_micro_batch: Option<usize>,
    /// How batch norm's γ starts; `None`: the variant's default ([`Variant::default_gamma`]).
    #[serde(default)]
    pub gamma: Option<GammaInit>,
    /// What a step that is not finite does to the run.
    #[serde(default)]
    pub on_nonfinite: OnNonFinite,
}

impl TrainConfig {
    /// The reference experiment: seed ResNet-50 (upsampled to 224), batch 128, 40 epochs,
    /// SGD lr 0.01 momentum 0.9 weight decay 1e-4, ReduceLROnPlateau, horizontal flips,
    /// 45,000/5,000 split, train metrics in inference mode.
    pub fn reference() -> Self {
        Self {
            model: ModelSpec::named(Variant::Seed50, Stem::ImageNet),
            batch: 128,
            epochs: 40,
            sgd: SgdConfig::REFERENCE,
            lr_schedule: LrSchedule::REFERENCE,
            augment: BatchOptions::REFERENCE,
            shuffle: true,
            seed: 0,
            validation: 5_000,
            max_steps: None,
            train_metrics: TrainMetrics::Eval,
            max_micro_batch: None,
            gamma: None,
            on_nonfinite: OnNonFinite::Stop,
        }
    }

    /// A configuration that trains in minutes on a CPU adapter: a ResNet-18 with the CIFAR
    /// stem, one block per stage of widths 16, 32 and 64, batch 32, 5 epochs, cosine schedule.
    pub fn small_and_fast() -> Self {
        let mut model = ModelSpec::named(Variant::ResNet18, Stem::Cifar);
        model.config.widths = vec![16, 32, 64];
        model.config.blocks = vec![1, 1, 1];
        model.config.stem_width = 16;
        TrainConfig {
            model,
            batch: 32,
            epochs: 5,
            sgd: SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 5e-4,
            },
            lr_schedule: LrSchedule::Cosine { min_lr: 0.0 },
            validation: 500,
            train_metrics: TrainMetrics::Running,
            ..TrainConfig::reference()
        }
    }

    /// How batch norm's γ starts in this run.
    pub fn gamma_init(&self) -> GammaInit {
        self.gamma.unwrap_or(self.model.variant.default_gamma())
    }

    /// A fresh run's initial parameters (drawn with `seed`, γ as [`Self::gamma_init`] says).
    pub fn initial_parameters(&self, model: &Model) -> Vec<Vec<f32>> {
        model.initial_parameters_with(self.seed, self.gamma_init())
    }

    /// The plan of this configuration on `ctx`: its micro-batches, memory and, launches picking
    /// their variant as `policy` says (nothing measured yet: see
    /// [`crate::schedule::choose_kernels`]).
    pub fn plan(
        &self,
        ctx: &GpuContext,
        policy: KernelPolicy,
        mode: Option<MemoryMode>,
    ) -> Result<Plan, ScheduleError> {
        self.plan_within(Network::limits(ctx), policy, mode)
    }

    /// [`TrainConfig::plan`] for a device of the given limits (what the app shows before a run).
    /// `mode` is the memory mode asked for (`None`: the plan chooses).
    pub fn plan_within(
        &self,
        limits: DeviceLimits,
        policy: KernelPolicy,
        mode: Option<MemoryMode>,
    ) -> Result<Plan, ScheduleError> {
        Plan::new(
            self.model.build(),
            self.batch,
            limits,
            self.max_micro_batch,
            mode,
            policy,
        )
    }
}
