//! Why a run stopped with an error, and which errors are the device's.

use super::CheckpointError;
use crate::gpu::GpuError;
use crate::ops::finite_check::NonFinite;
use crate::schedule::ScheduleError;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(
        "step {step} of epoch {epoch} was not finite ({}; loss {loss:.4e}, lr {lr:.4e}){}: the \
         step was not applied, so the weights are those before it, and training stopped. Lower \
         the learning rate and start again, or resume from the last checkpoint",
        what.describe(),
        if *skipped > 0 { format!(" after {skipped} skipped steps in a row") } else { String::new() }
    )]
    NonFinite {
        what: NonFinite,
        loss: f32,
        epoch: usize,
        step: usize,
        lr: f64,
        /// Steps skipped in a row before this one ([`OnNonFinite::Skip`]).
        skipped: u32,
    },
    #[error(
        "the training set has {images} images after holding out {validation} for validation, \
         fewer than one batch of {batch}; lower the batch size or the validation split"
    )]
    TooFewImages {
        images: usize,
        validation: usize,
        batch: usize,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "the GPU failed: {0}. The run stopped and nothing was saved from this point on; the last \
         checkpoint is intact. If the device ran out of memory, choose a smaller batch \
         (--micro-batch) or model; otherwise restart and resume from the last checkpoint"
    )]
    Device(String),
}

impl TrainError {
    /// Where this is an error of the device (an error it reported, a failed read-back, a lost
    /// device), what it said: the run's state on the device is no longer trusted.
    pub fn device_failure(&self) -> Option<String> {
        match self {
            TrainError::Device(reason) | TrainError::Gpu(GpuError::Validation(reason)) => {
                Some(reason.clone())
            }
            TrainError::Gpu(e @ GpuError::ReadBack(_)) => Some(e.to_string()),
            TrainError::Gpu(
                GpuError::NoAdapter(_) | GpuError::NoCompute(..) | GpuError::RequestDevice { .. },
            )
            | TrainError::Schedule(_)
            | TrainError::NonFinite { .. }
            | TrainError::TooFewImages { .. }
            | TrainError::Checkpoint(_) => None,
        }
    }
}
