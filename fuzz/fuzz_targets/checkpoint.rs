#![no_main]

//! A checkpoint read whole, and the same bytes as a weight file; then, for a checkpoint that is
//! accepted, the ranges its header was checked against, restated: an accepted header holds only
//! values that the trainer and the model handle without overflow or panic.

use resnet_wgpu::schedule::MemoryReport;
use resnet_wgpu::train::checkpoint::header_check::{
    MAX_BATCH, MAX_CROP_PADDING, MAX_EPOCHS, MAX_STEPS_PER_EPOCH, MIN_CLASSES,
};
use resnet_wgpu::train::{Checkpoint, LrSchedule};

const NAME: &str = "fuzzed.safetensors";

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| {
    resnet_wgpu::untrusted::checkpoint(bytes);
    if let Ok(checkpoint) = Checkpoint::from_bytes(NAME, bytes) {
        accepted_header_is_in_range(&checkpoint);
    }
});

fn accepted_header_is_in_range(checkpoint: &Checkpoint) {
    let header = &checkpoint.header;
    let (config, state) = (&header.config, &header.state);
    // The same checks pass again, and the model's own.
    assert!(header.check(NAME).is_ok());
    assert!(config.model.config.validate(config.model.classes).is_ok());

    assert!((1..=MAX_BATCH).contains(&config.batch));
    assert!((1..=MAX_EPOCHS).contains(&config.epochs));
    assert!(config.model.classes >= MIN_CLASSES);
    assert_eq!(header.class_names.len(), config.model.classes);
    assert!(config.sgd.lr.is_finite() && config.sgd.lr > 0.0);
    assert!((0.0..1.0).contains(&config.sgd.momentum));
    assert!(config.sgd.weight_decay.is_finite() && config.sgd.weight_decay >= 0.0);
    match config.schedule {
        LrSchedule::Constant => {}
        LrSchedule::Plateau {
            factor,
            patience,
            threshold,
        } => {
            assert!(factor > 0.0 && factor < 1.0 && patience <= MAX_EPOCHS && (0.0..1.0).contains(&threshold))
        }
        LrSchedule::Cosine { min_lr } => assert!(min_lr.is_finite() && min_lr >= 0.0),
    }
    assert!(config.augment.crop_padding.is_none_or(|p| p <= MAX_CROP_PADDING));
    assert!(config.max_steps.is_none_or(|m| m >= 1));
    assert!(
        config
            .max_micro_batch
            .is_none_or(|m| (1..=config.batch).contains(&m))
    );

    assert!(state.epochs_done <= config.epochs);
    assert!(state.step_in_epoch <= MAX_STEPS_PER_EPOCH);
    assert!(state.global_step >= state.step_in_epoch as u64);
    assert!(state.epoch_correct <= state.epoch_images);
    assert!(state.epoch_images <= state.step_in_epoch as u64 * config.batch as u64);
    assert!(state.lr.lr.is_finite() && state.lr.lr >= 0.0);
    assert!(state.lr.bad_epochs <= state.epochs_done);
    assert_eq!(state.history.len(), state.epochs_done);

    // What is computed from the configuration without a device: the model, its shapes at the
    // run's batch, and the memory it would need at that batch in one piece.
    let model = config.model.build();
    let shapes = model.shapes(config.batch);
    assert_eq!(shapes.len(), model.layers.len() + 1);
    assert_eq!(model.parameters().len(), checkpoint.network.params.len());
    // Its sums overflow nowhere (the fuzz build checks arithmetic overflow).
    let memory = MemoryReport::new(&model, config.batch, config.batch);
    std::hint::black_box(memory.total());
}
