//! The configuration a first start picks for the device it finds.

use crate::data::BatchOptions;
use crate::model::{Stem, Variant};
use crate::train::{LrSchedule, ModelSpec, TrainConfig, TrainMetrics, default_validation};

/// A configuration that trains in minutes on a CPU adapter.
pub fn small_and_fast() -> TrainConfig {
    let mut model = ModelSpec::named(Variant::ResNet18, Stem::Cifar);
    model.config.widths = vec![16, 32, 64];
    model.config.blocks = vec![1, 1, 1];
    model.config.stem_width = 16;
    TrainConfig {
        model,
        batch: 32,
        epochs: 5,
        sgd: crate::ops::sgd::SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 5e-4,
        },
        lr_schedule: LrSchedule::Cosine { min_lr: 0.0 },
        augment: BatchOptions::REFERENCE,
        validation: 500,
        train_metrics: TrainMetrics::Running,
        ..TrainConfig::reference()
    }
}

/// On the first device: a CPU adapter gets the small configuration (the reference takes
/// minutes a step there) where `config` is still the reference one of a `fresh` start, a GPU
/// keeps the reference. Says which and why, in one line.
pub fn choose_for_device(
    cpu: bool,
    config: &mut TrainConfig,
    fresh: bool,
    train_images: usize,
) -> &'static str {
    let untouched = fresh
        && *config
            == TrainConfig {
                validation: config.validation,
                ..TrainConfig::reference()
            };
    match (cpu, untouched) {
        (true, true) => {
            *config = TrainConfig {
                validation: default_validation(train_images),
                ..small_and_fast()
            };
            "This adapter is a CPU, where the reference takes minutes a step: the small network is \
             chosen"
        }
        (true, false) => "This adapter is a CPU: large networks train slowly here",
        (false, _) => "A GPU: the reference experiment is chosen",
    }
}
