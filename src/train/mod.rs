//! The trainer: epochs of shuffled, augmented batches through a [`Network`], per-epoch metrics,
//! the learning-rate schedule, evaluation reports and checkpoints.
//!
//! Everything a run depends on (weights, momentum, running statistics, the augmentation RNG,
//! the position in the epoch, the schedule's state) is in [`TrainState`] and the network, so a
//! run saved at any step and resumed continues exactly as if never stopped. The methods are
//! `async` so that the same code runs natively (blocking on them) and in the browser (awaiting
//! them between frames).

pub mod checkpoint;
mod config;
mod error;
pub mod lr;
mod predict;
pub mod report;
mod spec;

use serde::{Deserialize, Serialize};
use web_time::Instant;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use config::{OnNonFinite, TrainConfig, TrainMetrics};
pub use error::TrainError;
pub use lr::{LrSchedule, LrState};
pub use predict::{evaluate, predict_logits, softmax_rows, top_k};
pub use report::{ClassScores, EvalReport};
pub use spec::ModelSpec;

use crate::data::{BatchOrder, Cifar10, Dataset, fill_batch};
use crate::gpu::{GpuContext, GpuError, KernelPolicy};
use crate::ops::finite_check::NonFinite;
use crate::ops::sgd::SgdConfig;
use crate::rng::Rng;
use crate::schedule::{Network, NetworkState, Plan};

/// Metrics of one finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1 for the first epoch.
    pub epoch: usize,
    pub steps: u64,
    /// Learning rate used during the epoch.
    pub lr: f64,
    pub train_loss: f64,
    pub train_error: f64,
    pub val_loss: Option<f64>,
    pub val_error: Option<f64>,
    /// Training images per second over the epoch's steps (evaluation excluded).
    pub images_per_sec: f64,
    /// Seconds of the epoch, evaluation included.
    pub seconds: f64,
}

/// Where a run stands; saved in checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub epochs_done: usize,
    pub step_in_epoch: usize,
    pub global_step: u64,
    pub lr: LrState,
    /// The augmentation RNG's state.
    pub rng_state: u64,
    /// Sums over the current epoch's steps so far.
    pub epoch_loss_sum: f64,
    pub epoch_correct: u64,
    pub epoch_images: u64,
    pub epoch_train_seconds: f64,
    pub history: Vec<EpochMetrics>,
    /// Steps skipped as not finite ([`OnNonFinite::Skip`]): in all, and in a row up to now.
    #[serde(default)]
    pub skipped_steps: u64,
    #[serde(default)]
    pub skipped_in_a_row: u32,
}

impl TrainState {
    /// Where a fresh run of `config` starts: nothing done, the learning rate and the
    /// augmentation RNG as the configuration seeds them.
    pub fn fresh(config: &TrainConfig) -> Self {
        Self {
            epochs_done: 0,
            step_in_epoch: 0,
            global_step: 0,
            lr: LrState::new(config.sgd.lr as f64),
            rng_state: config.seed ^ 0xA076_1D64_78BD_642F,
            epoch_loss_sum: 0.0,
            epoch_correct: 0,
            epoch_images: 0,
            epoch_train_seconds: 0.0,
            history: Vec::new(),
            skipped_steps: 0,
            skipped_in_a_row: 0,
        }
    }
}

/// One training step's outcome.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepReport {
    /// 0-based epoch and step within it.
    pub epoch: usize,
    pub step: usize,
    pub global_step: u64,
    pub loss: f64,
    pub accuracy: f64,
    pub images_per_sec: f64,
    /// What was not finite where the step was skipped ([`OnNonFinite::Skip`]); empty for a
    /// step that was applied.
    pub non_finite: NonFinite,
}

/// What [`Trainer::advance`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    Step(StepReport),
    Epoch(EpochMetrics),
    Finished,
}

/// The validation split that suits a training set of `train_images`: the reference's 5,000 for
/// the full CIFAR-10 (50,000 images), a tenth of the images for smaller sets.
pub fn default_validation(train_images: usize) -> usize {
    if train_images >= 50_000 {
        5_000
    } else {
        train_images / 10
    }
}

/// Training, validation and test sets of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    pub train: Dataset,
    pub validation: Dataset,
    pub test: Dataset,
}

impl Splits {
    /// The last `validation` training images validate (the reference's 45,000/5,000 split).
    pub fn new(data: &Cifar10, validation: usize) -> Self {
        let validation = validation.min(data.train.len());
        let (train, val) = data.train.split(validation);
        Self {
            train,
            validation: val,
            test: data.test.clone(),
        }
    }
}

/// Images per evaluation chunk copied to the device at once.
const EVAL_CHUNK: usize = 512;

/// A run in progress: its network on the device, its data and its state.
pub struct Trainer {
    pub config: TrainConfig,
    pub net: Network,
    pub data: Splits,
    pub state: TrainState,
    batch_images: Vec<f32>,
    batch_labels: Vec<u32>,
    /// The current epoch's visiting order, drawn once per epoch.
    order: Option<(usize, Vec<usize>)>,
    /// The error the device reported during the run's work: the weights on the device are no
    /// longer trusted, so the run neither steps nor checkpoints again.
    device_failure: Option<String>,
    /// Makes the next step's batch hold a NaN (tests of what follows a step that is not finite).
    poison_next_step: bool,
}

impl Trainer {
    /// A fresh run: weights drawn from the variant's initialisation with the run's seed, or
    /// `initial` (in `Model::parameters()` order).
    ///
    /// Kernels are the defaults for the adapter; [`Trainer::from_plan`] runs a plan whose
    /// kernels were chosen ([`choose_kernels`]).
    pub fn new(
        ctx: &GpuContext,
        config: TrainConfig,
        data: Splits,
        initial: Option<NetworkState>,
    ) -> Result<Self, TrainError> {
        let plan = config.plan(ctx, KernelPolicy::Auto, None)?;
        Self::from_plan(ctx, plan, config, data, initial)
    }

    /// [`Trainer::new`] on `plan`, which must be this configuration's ([`TrainConfig::plan`]).
    pub fn from_plan(
        ctx: &GpuContext,
        plan: Plan,
        config: TrainConfig,
        data: Splits,
        initial: Option<NetworkState>,
    ) -> Result<Self, TrainError> {
        let state = TrainState::fresh(&config);
        let params = match &initial {
            Some(s) => s.params.clone(),
            None => config.initial_parameters(&plan.model),
        };
        Self::assemble(ctx, plan, config, data, state, &params, initial.as_ref())
    }

    /// Continues a saved run on `data` (normally the same data it was trained on); refused
    /// where the run's position lies beyond an epoch of `data`. Kernels as in [`Trainer::new`].
    pub fn resume(ctx: &GpuContext, checkpoint: &Checkpoint, data: Splits) -> Result<Self, TrainError> {
        let plan = checkpoint.header.config.plan(ctx, KernelPolicy::Auto, None)?;
        Self::resume_from_plan(ctx, plan, checkpoint, data)
    }

    /// [`Trainer::resume`] on `plan`, which must be the checkpoint's configuration's.
    pub fn resume_from_plan(
        ctx: &GpuContext,
        plan: Plan,
        checkpoint: &Checkpoint,
        data: Splits,
    ) -> Result<Self, TrainError> {
        let h = &checkpoint.header;
        h.check_position("the checkpoint", data.train.len() / h.config.batch.max(1))?;
        Self::assemble(
            ctx,
            plan,
            h.config.clone(),
            data,
            h.state.clone(),
            &checkpoint.network.params,
            Some(&checkpoint.network),
        )
    }

    fn assemble(
        ctx: &GpuContext,
        plan: Plan,
        config: TrainConfig,
        data: Splits,
        state: TrainState,
        params: &[Vec<f32>],
        full_state: Option<&NetworkState>,
    ) -> Result<Self, TrainError> {
        if data.train.len() < config.batch {
            return Err(TrainError::TooFewImages {
                images: data.train.len(),
                validation: data.validation.len(),
                batch: config.batch,
            });
        }
        assert!(
            plan.batch == config.batch && plan.model == config.model.build(),
            "the plan is of another configuration"
        );
        let mut sgd = config.sgd;
        sgd.lr = state.lr.lr as f32;
        let net = Network::from_plan(ctx, plan, params, sgd)?;
        if let Some(s) = full_state {
            net.write_state(ctx, s);
        }
        Ok(Self {
            config,
            net,
            data,
            state,
            batch_images: Vec::new(),
            batch_labels: Vec::new(),
            order: None,
            device_failure: None,
            poison_next_step: false,
        })
    }

    /// Full batches per epoch (a last partial batch is dropped: batch norm needs the whole
    /// batch on the device at once).
    pub fn steps_per_epoch(&self) -> usize {
        self.data.train.len() / self.config.batch
    }

    pub fn total_steps(&self) -> u64 {
        let all = (self.steps_per_epoch() * self.config.epochs) as u64;
        self.config.max_steps.map_or(all, |m| m.min(all))
    }

    pub fn is_finished(&self) -> bool {
        self.state.epochs_done >= self.config.epochs
            || self.config.max_steps.is_some_and(|m| self.state.global_step >= m)
    }

    /// Runs the next step, or closes the epoch when its steps are done.
    pub async fn advance(&mut self, ctx: &GpuContext) -> Result<Progress, TrainError> {
        if self.state.epochs_done >= self.config.epochs {
            return Ok(Progress::Finished);
        }
        if self.state.step_in_epoch >= self.steps_per_epoch() {
            return Ok(Progress::Epoch(self.finish_epoch(ctx).await?));
        }
        if self.is_finished() {
            return Ok(Progress::Finished);
        }
        Ok(Progress::Step(self.step(ctx).await?))
    }

    /// One training step on the next batch of the epoch.
    pub async fn step(&mut self, ctx: &GpuContext) -> Result<StepReport, TrainError> {
        if let Some(reason) = &self.device_failure {
            return Err(TrainError::Device(reason.clone()));
        }
        let started = Instant::now();
        let batch = self.config.batch;
        let epoch = self.state.epochs_done;
        let step = self.state.step_in_epoch;
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let order = if self.config.shuffle {
                BatchOrder::shuffled(self.config.seed)
            } else {
                BatchOrder::sequential()
            };
            self.order = Some((epoch, order.epoch(epoch as u64, self.data.train.len())));
        }
        let indices = &self.order.as_ref().expect("drawn above").1;
        let mut rng = Rng::new(self.state.rng_state);
        fill_batch(
            &self.data.train,
            &indices[step * batch..(step + 1) * batch],
            self.config.augment,
            &mut rng,
            &mut self.batch_images,
            &mut self.batch_labels,
        );
        if std::mem::take(&mut self.poison_next_step) {
            self.batch_images[0] = f32::NAN;
        }
        let stats = self
            .net
            .train_step(ctx, &self.batch_images, &self.batch_labels)
            .await
            .map_err(|e| self.failed(e))?;
        if !stats.non_finite.is_finite() {
            let skipped = self.state.skipped_in_a_row;
            let stop = match self.config.on_nonfinite {
                OnNonFinite::Stop => true,
                OnNonFinite::Skip { in_a_row } => skipped + 1 >= in_a_row,
            };
            if stop {
                // The run stays where it was before the step: a resumed or saved run is finite.
                return Err(TrainError::NonFinite {
                    what: stats.non_finite,
                    loss: stats.loss,
                    epoch: epoch + 1,
                    step: step + 1,
                    lr: self.state.lr.lr,
                    skipped,
                });
            }
            log::warn!(
                "skipped step {} of epoch {}: {} was not finite (loss {:e})",
                step + 1,
                epoch + 1,
                stats.non_finite.describe(),
                stats.loss
            );
        }
        let applied = stats.non_finite.is_finite();
        let seconds = started.elapsed().as_secs_f64();
        let s = &mut self.state;
        s.rng_state = rng.state;
        s.step_in_epoch += 1;
        s.global_step += 1;
        s.epoch_train_seconds += seconds;
        if applied {
            s.epoch_loss_sum += stats.loss as f64;
            s.epoch_correct += stats.correct as u64;
            s.epoch_images += batch as u64;
            s.skipped_in_a_row = 0;
        } else {
            s.skipped_steps += 1;
            s.skipped_in_a_row += 1;
        }
        Ok(StepReport {
            epoch,
            step,
            global_step: s.global_step,
            loss: stats.loss as f64,
            accuracy: stats.correct as f64 / batch as f64,
            images_per_sec: batch as f64 / seconds.max(1e-9),
            non_finite: stats.non_finite,
        })
    }

    /// Whether the device reported an error during this run's work: the run neither steps
    /// nor checkpoints again (continue from its last checkpoint on a new device).
    pub fn device_failed(&self) -> bool {
        self.device_failure.is_some()
    }

    /// Marks the run as failed by a device error found outside its own methods (reading the
    /// layer norms, a classification): it neither steps nor checkpoints again.
    pub fn mark_device_failed(&mut self, reason: String) {
        self.device_failure.get_or_insert(reason);
    }

    /// Puts a NaN into the next step's batch, so that its loss is not finite.
    pub fn poison_next_step(&mut self) {
        self.poison_next_step = true;
    }

    /// The error of GPU work of this run; an error the device reported (see
    /// [`GpuContext::check`]) or a failed read-back marks the run as failed, so it neither
    /// steps nor checkpoints again.
    fn failed(&mut self, error: GpuError) -> TrainError {
        let error = TrainError::from(error);
        match error.device_failure() {
            Some(reason) => {
                self.device_failure.get_or_insert(reason.clone());
                TrainError::Device(reason)
            }
            None => error,
        }
    }

    /// Measures the epoch's metrics, steps the learning-rate schedule and starts the next epoch.
    pub async fn finish_epoch(&mut self, ctx: &GpuContext) -> Result<EpochMetrics, TrainError> {
        let started = Instant::now();
        let steps = self.state.step_in_epoch as u64;
        let (train_loss, train_error) = match self.config.train_metrics {
            TrainMetrics::Running => {
                // Over the steps that were applied (skipped ones have no finite loss).
                let s = &self.state;
                let applied = s.epoch_images / self.config.batch as u64;
                (
                    s.epoch_loss_sum / applied.max(1) as f64,
                    1.0 - s.epoch_correct as f64 / s.epoch_images.max(1) as f64,
                )
            }
            TrainMetrics::Eval => {
                let r = self.evaluate(ctx, &self.data.train).await;
                let r = r.map_err(|e| self.failed(e))?;
                (r.loss, r.error_rate())
            }
        };
        let (val_loss, val_error) = if self.data.validation.is_empty() {
            (None, None)
        } else {
            let r = self.evaluate(ctx, &self.data.validation).await;
            let r = r.map_err(|e| self.failed(e))?;
            (Some(r.loss), Some(r.error_rate()))
        };
        let s = &mut self.state;
        let metrics = EpochMetrics {
            epoch: s.epochs_done + 1,
            steps,
            lr: s.lr.lr,
            train_loss,
            train_error,
            val_loss,
            val_error,
            images_per_sec: s.epoch_images as f64 / s.epoch_train_seconds.max(1e-9),
            seconds: s.epoch_train_seconds + started.elapsed().as_secs_f64(),
        };
        s.epochs_done += 1;
        s.step_in_epoch = 0;
        s.epoch_loss_sum = 0.0;
        s.epoch_correct = 0;
        s.epoch_images = 0;
        s.epoch_train_seconds = 0.0;
        let monitored = val_loss.unwrap_or(train_loss);
        let base = self.config.sgd.lr as f64;
        let lr = s.lr.step(
            &self.config.lr_schedule,
            base,
            s.epochs_done,
            self.config.epochs,
            monitored,
        );
        s.history.push(metrics.clone());
        let sgd = SgdConfig {
            lr: lr as f32,
            ..self.net.sgd()
        };
        self.net.set_sgd(ctx, sgd);
        Ok(metrics)
    }

    /// Logits of every image of `data`, in order, in inference mode.
    pub async fn logits(&self, ctx: &GpuContext, data: &Dataset) -> Result<Vec<f32>, GpuError> {
        predict_logits(ctx, &self.net, data).await
    }

    /// The report (loss, accuracy, per-class scores, confusion) on a labelled set.
    pub async fn evaluate(&self, ctx: &GpuContext, data: &Dataset) -> Result<EvalReport, GpuError> {
        evaluate(ctx, &self.net, data).await
    }

    /// Copies the run to a checkpoint. A device error while copying marks the run as failed.
    pub async fn checkpoint(&mut self, ctx: &GpuContext) -> Result<Checkpoint, TrainError> {
        if let Some(reason) = &self.device_failure {
            return Err(TrainError::Device(format!(
                "{reason}; nothing is saved from a run after its device failed (the last saved \
                 checkpoint is intact)"
            )));
        }
        let state = self.net.read_state(ctx).await.map_err(|e| self.failed(e))?;
        Ok(Checkpoint::new(
            self.config.clone(),
            self.state.clone(),
            self.data.train.class_names.clone(),
            state,
        ))
    }
}
