//! The estimate shown before Start: a training step of the selected model timed on this device
//! (once per model, in the background), turned into seconds per epoch and for the whole run.

use std::collections::BTreeMap;

use crate::app::step_timing::estimate_key;
use crate::data::Cifar10;
use crate::train::{TrainConfig, TrainMetrics};

/// Seconds per training image measured for each model, and whether one is being timed.
#[derive(Default)]
pub struct Estimates {
    /// Measured seconds per training image, or why it could not be measured, by model
    /// ([`estimate_key`]).
    measured: BTreeMap<String, Result<f64, String>>,
    /// A step is being timed.
    timing: bool,
}

impl Estimates {
    /// Whether `config`'s model is still to be timed (and nothing is being timed now).
    pub fn wanted(&self, config: &TrainConfig) -> bool {
        !self.timing && !self.measured.contains_key(&estimate_key(config))
    }

    /// A step is being timed from now on.
    pub fn timing_started(&mut self) {
        self.timing = true;
    }

    /// The timed step ended without a result (the device failed, or a run was asked for).
    pub fn timing_ended(&mut self) {
        self.timing = false;
    }

    /// The measurement of the model `key` names.
    pub fn measured(&mut self, key: String, seconds_per_image: Result<f64, String>) {
        self.timing = false;
        self.measured.insert(key, seconds_per_image);
    }

    /// Whether a step is being timed.
    pub fn is_timing(&self) -> bool {
        self.timing
    }

    /// Seconds per training image of `config`'s model, or why it could not be measured;
    /// `None` before it is measured.
    pub fn seconds_per_image(&self, config: &TrainConfig) -> Option<&Result<f64, String>> {
        self.measured.get(&estimate_key(config))
    }

    /// Seconds per epoch and for the whole run of `config` on `data`, from the measured step;
    /// `None` before it is measured.
    pub fn of_run(&self, config: &TrainConfig, data: &Cifar10) -> Option<Result<(f64, f64), String>> {
        let per_image = match self.seconds_per_image(config)? {
            Ok(s) => *s,
            Err(e) => return Some(Err(e.clone())),
        };
        let train = data.train.len().saturating_sub(config.validation);
        let trained = (train / config.batch.max(1) * config.batch) as f64;
        // Inference takes about a third of a training step per image.
        let evaluated = config.validation as f64
            + match config.train_metrics {
                TrainMetrics::Eval => train as f64,
                TrainMetrics::Running => 0.0,
            };
        let epoch = per_image * (trained + evaluated / 3.0);
        Some(Ok((epoch, epoch * config.epochs as f64)))
    }
}
