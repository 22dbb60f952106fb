//! What the window and the training worker tell each other: the worker's commands, its events,
//! and the description of its device.

use std::sync::Arc;

use crate::data::Cifar10;
use crate::gpu::{GpuContext, KernelPolicy};
use crate::schedule::{KernelCache, MemoryReport, TuneReport};
use crate::train::{Checkpoint, EpochMetrics, EvalReport, StepReport, TrainConfig};

/// What the window asks the worker to do.
pub enum Command {
    /// A fresh run.
    Train {
        config: TrainConfig,
        data: Arc<Cifar10>,
        /// Weights to start from instead of a fresh initialisation.
        initial: Option<Box<crate::schedule::NetworkState>>,
    },
    /// Continue a saved run (paused until [`Command::Continue`]).
    Resume {
        checkpoint: Box<Checkpoint>,
        data: Arc<Cifar10>,
    },
    Pause,
    Continue,
    Stop,
    /// The report on the test set.
    Evaluate,
    /// Top-5 classes of one image (CHW bytes, 3×32×32).
    Classify {
        name: String,
        image: Vec<u8>,
    },
    /// The run as checkpoint bytes: for the person, or (`keep`) to keep for the next start.
    Save {
        keep: bool,
    },
    /// How later runs choose their kernels.
    SetKernelPolicy(KernelPolicy),
    /// The memory mode of later runs (`None`: each plan chooses).
    SetMemoryMode(Option<crate::schedule::MemoryMode>),
    /// Bytes a network's buffers may take in all, for runs started from now on.
    SetMemoryBudget(u64),
    /// After the device failed: open a new one and continue the run from its last good state
    /// (the last checkpoint saved or loaded, the last epoch's end, or the run's start).
    ReopenDevice,
    /// Destroys the device as a driver reset would (to try the recovery).
    LoseDevice,
    /// Makes the device report a real error the next time the worker's work reaches `at` (to
    /// try the failure path on a device that is still alive).
    ArmFault(crate::gpu::Fault),
    /// Puts a NaN into the next step's batch (to try a step that is not finite).
    PoisonNextStep,
    /// Where kernel choices are kept between runs.
    SetKernelCache(KernelCache),
    /// Times one training step of `config`'s model on a few images (while no run is going),
    /// for the estimate shown before Start.
    Estimate {
        config: TrainConfig,
        data: Arc<Cifar10>,
    },
}

/// The device the worker trains on.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub adapter: String,
    pub limits: Vec<(String, String)>,
    pub features: Vec<(String, bool)>,
    /// The largest buffer it binds and the memory budget (micro-batching thresholds).
    pub fit: crate::schedule::DeviceLimits,
    /// The memory mode asked for runs on it (`None`: each plan chooses).
    pub memory_mode: Option<crate::schedule::MemoryMode>,
    /// A CPU adapter (such as lavapipe or SwiftShader): fine for small networks only.
    pub cpu: bool,
}

/// What the worker reports.
pub enum Event {
    Device(DeviceInfo),
    /// Preparing a run: kernel choice (`done` of `total` launch shapes).
    Preparing {
        done: usize,
        total: usize,
    },
    /// The kernels chosen for the run about to start (`for_run`), or for the step timed for
    /// the estimate.
    Kernels {
        report: Box<TuneReport>,
        for_run: bool,
    },
    /// No usable GPU: the message says why and what to do.
    NoDevice(String),
    Started {
        memory: MemoryReport,
        steps_per_epoch: usize,
        total_steps: u64,
        resumed_history: Vec<EpochMetrics>,
        /// Steps done so far (0 for a fresh run).
        global_step: u64,
        paused: bool,
    },
    Step(StepReport),
    Epoch(EpochMetrics),
    Paused,
    Finished,
    Report(Box<EvalReport>),
    /// Per-layer weight and gradient norms after step `global_step`.
    LayerNorms {
        global_step: u64,
        norms: Vec<crate::schedule::LayerNorms>,
    },
    Classified {
        name: String,
        top: Vec<(usize, f64)>,
        /// Where the network looked for each class, or why it cannot be shown.
        heat: Result<crate::schedule::ClassMaps, String>,
    },
    /// The run's checkpoint, to save where the person asked, or (`keep`) to keep for the
    /// next start.
    Checkpoint {
        bytes: Vec<u8>,
        epochs_done: usize,
        global_step: u64,
        keep: bool,
    },
    /// Seconds one training image takes for the model `key` names (a measured step divided
    /// by its images), or why it could not be measured.
    Estimate {
        key: String,
        seconds_per_image: Result<f64, String>,
    },
    /// The step being timed for the estimate was set aside for a run that was asked for.
    EstimateSetAside,
    /// The device failed (an error it reported, a lost device): what happened, and where the
    /// run can continue from on a new device (none if no run had started).
    DeviceFailed {
        reason: String,
        resume_from: Option<String>,
    },
    Error(String),
}

/// What the window shows of `ctx`, with the memory mode asked for runs on it.
pub fn device_info(ctx: &GpuContext, memory_mode: Option<crate::schedule::MemoryMode>) -> DeviceInfo {
    let l = &ctx.limits;
    let mib = |b: u64| format!("{} MiB", b >> 20);
    DeviceInfo {
        adapter: ctx.describe(),
        limits: vec![
            ("max buffer".into(), mib(l.max_buffer_size)),
            (
                "max storage binding".into(),
                mib(l.max_storage_buffer_binding_size),
            ),
            (
                "storage buffers per stage".into(),
                l.max_storage_buffers_per_shader_stage.to_string(),
            ),
            (
                "invocations per workgroup".into(),
                l.max_compute_invocations_per_workgroup.to_string(),
            ),
            (
                "workgroup memory".into(),
                format!("{} KiB", l.max_compute_workgroup_storage_size >> 10),
            ),
            (
                "workgroups per dimension".into(),
                l.max_compute_workgroups_per_dimension.to_string(),
            ),
        ],
        features: vec![
            ("shader-f16".into(), ctx.features.shader_f16),
            ("subgroups".into(), ctx.features.subgroups),
            ("timestamp-query".into(), ctx.features.timestamp_query),
        ],
        fit: crate::schedule::Network::limits(ctx),
        memory_mode,
        cpu: ctx.adapter_info.device_type == wgpu::DeviceType::Cpu,
    }
}
