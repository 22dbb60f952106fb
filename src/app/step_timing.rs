//! Timing a training step of a model on the device, for the estimate shown before Start: a
//! step of a few images, then, where that predicts a short step, one of the whole batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::data::Cifar10;
use crate::gpu::{GemmKey, GpuContext, KernelPolicy, Variant};
use crate::schedule::{KernelCache, MemoryMode, Tuning, choose_kernels};
use crate::train::{Splits, TrainConfig, TrainError, Trainer};

/// Images in the first step timed for an estimate: few, so that even a large network on a
/// CPU adapter answers in seconds.
const PROBE_IMAGES: usize = 2;

/// A whole batch is timed as well when the probe predicts its step to take less than this
/// (seconds): a step of few images wastes much of the device, so the probe alone
/// overestimates, and its prediction is an upper bound.
const WHOLE_BATCH_SECONDS: f64 = 10.0;

/// What an estimate depends on: the model and its input size (the batch only scales it).
pub fn estimate_key(config: &TrainConfig) -> String {
    serde_json::to_string(&config.model).unwrap_or_default()
}

/// A first timed step shorter than this (seconds) is followed by a second one, which is the
/// one measured: the first use of each pipeline costs extra (lavapipe and SwiftShader compile
/// shaders at their first dispatch), which no later step pays.
const REPEAT_BELOW_SECONDS: f64 = 20.0;

/// What timing a training step of `config`'s model needs.
pub struct StepProbe<'a> {
    pub ctx: &'a GpuContext,
    pub config: &'a TrainConfig,
    pub data: &'a Arc<Cifar10>,
    pub policy: KernelPolicy,
    /// The memory mode asked for (`None`: the plan chooses).
    pub memory_mode: Option<MemoryMode>,
    pub cache: &'a KernelCache,
    /// The choices already made on this device (the cache's and the defaults elsewhere).
    pub known: &'a BTreeMap<GemmKey, Variant>,
    /// Raised when a run is asked for: the timing stops before its next network or step.
    pub run_asked: &'a AtomicBool,
}

impl StepProbe<'_> {
    /// Seconds per training image of the model: a step of [`PROBE_IMAGES`] images, then,
    /// where that predicts a short step, a step of the whole batch; each timed after its
    /// network (and pipelines) are built. `None` where a run was asked for meanwhile.
    pub async fn seconds_per_image(&self) -> Result<Option<f64>, TrainError> {
        let Some(per_image) = self.seconds_per_image_at(PROBE_IMAGES).await? else {
            return Ok(None);
        };
        let batch = self.config.batch.min(self.data.train.len());
        if batch > PROBE_IMAGES && per_image * batch as f64 <= WHOLE_BATCH_SECONDS {
            return self.seconds_per_image_at(batch).await;
        }
        Ok(Some(per_image))
    }

    /// Whether a run was asked for since the timing began.
    fn set_aside(&self) -> bool {
        self.run_asked.load(Ordering::SeqCst)
    }

    /// Seconds per image of a training step at `batch`: the second step where the first is
    /// short enough to afford one. Kernels are those this device already chose, then the cache's
    /// (the defaults elsewhere).
    async fn seconds_per_image_at(&self, batch: usize) -> Result<Option<f64>, TrainError> {
        let ctx = self.ctx;
        let probe = TrainConfig {
            batch,
            epochs: 1,
            validation: 0,
            ..self.config.clone()
        };
        let mut plan = probe.plan(ctx, self.policy, self.memory_mode)?;
        plan.kernels.measured = self.known.clone();
        choose_kernels(ctx, &mut plan, self.cache, Tuning::CacheOnly, |_, _| {}).await?;
        if self.set_aside() {
            return Ok(None);
        }
        let mut trainer = Trainer::from_plan(ctx, plan, probe, Splits::new(self.data, 0), None)?;
        let mut started = web_time::Instant::now();
        trainer.step(ctx).await?;
        if started.elapsed().as_secs_f64() < REPEAT_BELOW_SECONDS && self.data.train.len() >= 2 * batch {
            if self.set_aside() {
                return Ok(None);
            }
            started = web_time::Instant::now();
            trainer.step(ctx).await?;
        }
        Ok(Some(started.elapsed().as_secs_f64() / batch as f64))
    }
}
