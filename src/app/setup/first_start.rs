//! The configuration a first start picks for the device it finds.

use crate::train::{TrainConfig, default_validation};

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
                ..TrainConfig::small_and_fast()
            };
            "This adapter is a CPU, where the reference takes minutes a step: the small network is \
             chosen"
        }
        (true, false) => "This adapter is a CPU: large networks train slowly here",
        (false, _) => "A GPU: the reference experiment is chosen",
    }
}
