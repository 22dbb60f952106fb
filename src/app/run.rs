//! What the window knows of the run: its state, its progress and curves, the stages of its
//! start, and why Start cannot run a configuration.

use crate::data::Cifar10;
use crate::schedule::MemoryReport;
use crate::train::{EpochMetrics, StepReport, TrainConfig};

use super::files::InitialWeights;
use super::state::DeviceState;

/// Where the run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Idle,
    Running,
    Paused,
    Finished,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Finished => "finished",
        }
    }
}

/// What the window knows of the current run.
pub struct RunView {
    pub state: RunState,
    pub config: Option<TrainConfig>,
    pub memory: Option<MemoryReport>,
    pub steps_per_epoch: usize,
    pub total_steps: u64,
    pub last_step: Option<StepReport>,
    /// (global step, batch loss) of every step.
    pub step_losses: Vec<[f64; 2]>,
    pub epochs: Vec<EpochMetrics>,
    /// While a run is being prepared: kernel shapes chosen of all.
    pub preparing: Option<(usize, usize)>,
    /// What a starting run does before its first step, and since when.
    pub starting: Option<(Starting, web_time::Instant)>,
    /// Seconds the last start took to build the network (buffers, pipelines) and to run its
    /// first step.
    pub first_step: Option<[f64; 2]>,
    /// Per-layer weight and gradient norms, and the step they are from.
    pub layer_norms: Option<(u64, Vec<crate::schedule::LayerNorms>)>,
}

impl RunView {
    /// No run yet.
    pub fn idle() -> Self {
        Self {
            state: RunState::Idle,
            config: None,
            memory: None,
            steps_per_epoch: 0,
            total_steps: 0,
            last_step: None,
            step_losses: Vec::new(),
            epochs: Vec::new(),
            preparing: None,
            starting: None,
            first_step: None,
            layer_norms: None,
        }
    }
}

/// The stages of a run's start after Start is pressed, before its first step is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starting {
    /// Timing the kernel variants of each launch shape (or reading them from the cache).
    ChoosingKernels,
    /// Allocating the network's buffers and compiling its kernels' pipelines.
    BuildingNetwork,
    /// The first training step.
    FirstStep,
}

impl Starting {
    pub fn describe(self) -> &'static str {
        match self {
            Starting::ChoosingKernels => "choosing kernels",
            Starting::BuildingNetwork => {
                "building the network: allocating its buffers and compiling its kernels"
            }
            Starting::FirstStep => "running the first training step",
        }
    }
}

/// Why Start cannot run `config` on `data` on this device (starting from `initial` weights
/// where there are some), if it cannot.
pub fn check_start(
    device: &DeviceState,
    config: &TrainConfig,
    initial: Option<&InitialWeights>,
    data: &Cifar10,
) -> Result<(), String> {
    if let DeviceState::Missing(why) = device {
        return Err(format!("no GPU to train on: {why}"));
    }
    config
        .check()
        .map_err(|reason| format!("a setting is out of range: {reason}"))?;
    if let Some(w) = initial.filter(|w| w.model != config.model) {
        return Err(format!(
            "the initial weights {} are for {}: choose that model, or clear them",
            w.name,
            w.model.describe()
        ));
    }
    let images = data.train.len().saturating_sub(config.validation);
    if images < config.batch {
        return Err(format!(
            "{images} training images after the validation split: fewer than one batch of {}; lower the batch size or the validation split",
            config.batch
        ));
    }
    Ok(())
}
