//! Checkpoint headers: every field is range-checked when a checkpoint is read, and a field out
//! of range is refused with one line naming the file, the field and its value, while every
//! checkpoint this program writes still loads. And weight files whose tensors are F16, BF16 or
//! F64: converted to float32 exactly, and counted. No GPU needed.

use resnet_wgpu::data::{BatchOptions, CIFAR10_CLASSES};
use resnet_wgpu::model::{Model, ResNetConfig, Stem, Variant};
use resnet_wgpu::schedule::NetworkState;
use resnet_wgpu::train::checkpoint::header_check::{
    MAX_BATCH, MAX_BLOCKS_PER_STAGE, MAX_CLASSES, MAX_CROP_PADDING, MAX_EPOCHS, MAX_STAGES, MAX_UPSAMPLE,
    MAX_WIDTH,
};
use resnet_wgpu::train::checkpoint::{Conversions, bf16_to_f32, f16_to_f32, load_weights_reporting};
use resnet_wgpu::train::{
    Checkpoint, CheckpointError, EpochMetrics, LrSchedule, LrState, ModelSpec, TrainConfig, TrainState,
};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{Value, json};

mod common;

const NAME: &str = "run.safetensors";

/// A two-stage ResNet-18-style network (CIFAR stem) of widths 8 and 16.
fn small_spec() -> ModelSpec {
    let mut spec = ModelSpec::named(Variant::ResNet18, Stem::Cifar);
    spec.config.widths = vec![8, 16];
    spec.config.blocks = vec![1, 1];
    spec.config.stem_width = 8;
    spec
}

/// A short run of the small network: batch 16, 5 epochs, crops and flips, plateau schedule.
fn small_config() -> TrainConfig {
    let mut config = TrainConfig::reference();
    config.model = small_spec();
    config.batch = 16;
    config.epochs = 5;
    config.augment = BatchOptions {
        hflip: true,
        crop_padding: Some(4),
    };
    config.validation = 16;
    config.max_steps = Some(40);
    config.max_micro_batch = Some(8);
    config
}

/// A fresh run's state, as the trainer starts it.
fn fresh_state(config: &TrainConfig) -> TrainState {
    TrainState::fresh(config)
}

/// The state of a run stopped in its third epoch (3 steps an epoch, one step into the third),
/// with a validation split, as the trainer leaves it: what a checkpoint mid-run holds.
fn mid_run_state(config: &TrainConfig) -> TrainState {
    let epoch = |e: usize| EpochMetrics {
        epoch: e,
        steps: 3,
        lr: 0.01,
        train_loss: 2.1 - 0.1 * e as f64,
        train_error: 0.8,
        val_loss: Some(2.2),
        val_error: Some(0.85),
        images_per_sec: 120.5,
        seconds: 0.7,
    };
    TrainState {
        epochs_done: 2,
        step_in_epoch: 1,
        global_step: 7,
        lr: LrState {
            lr: 0.01,
            best: Some(2.2),
            bad_epochs: 1,
        },
        rng_state: 0x1234_5678_9ABC_DEF0,
        epoch_loss_sum: 1.9,
        epoch_correct: 3,
        epoch_images: config.batch as u64,
        epoch_train_seconds: 0.2,
        history: vec![epoch(1), epoch(2)],
        skipped_steps: 0,
        skipped_in_a_row: 0,
    }
}

/// Zeros of every tensor `spec`'s model holds (ones for the running variances).
fn zero_network(spec: &ModelSpec) -> NetworkState {
    let model = spec.build();
    let params: Vec<Vec<f32>> = model.parameters().iter().map(|p| vec![0.0; p.len()]).collect();
    NetworkState {
        momentum: params.clone(),
        running: model
            .batch_norms()
            .iter()
            .map(|(_, c)| (vec![0.0; *c], vec![1.0; *c]))
            .collect(),
        params,
    }
}

fn class_names() -> Vec<String> {
    CIFAR10_CLASSES.map(String::from).to_vec()
}

/// The bytes of a checkpoint of `config` and `state`, as the trainer saves it.
fn checkpoint_bytes(config: &TrainConfig, state: &TrainState) -> Vec<u8> {
    let network = zero_network(&config.model);
    Checkpoint::new(config.clone(), state.clone(), class_names(), network).to_bytes()
}

/// `bytes` (a checkpoint) with its JSON header edited by `edit`.
fn with_header(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    common::hostile::checkpoint_with_header(bytes, edit)
}

/// Asserts that `bytes` are refused for `field`, with one line naming the file, the field and
/// `value`.
fn assert_refused(bytes: &[u8], field: &str, value: &str) {
    let error = Checkpoint::from_bytes(NAME, bytes).expect_err(field);
    let text = error.to_string();
    println!("{text}");
    match &error {
        CheckpointError::BadField {
            field: f, value: v, ..
        } => assert_eq!((f.as_str(), v.as_str()), (field, value), "{text}"),
        other => panic!("{field}: expected a field out of range, got {other:?}"),
    }
    assert!(
        text.starts_with(&format!("{NAME}: {field} is {value}; ")),
        "{text}"
    );
    assert!(text.contains("choose another checkpoint"), "{text}");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
}

#[test]
fn checkpoints_this_program_writes_load_back_unchanged() {
    let reference = TrainConfig::reference();
    let small = small_config();
    let mut cosine_done = small_config();
    cosine_done.lr_schedule = LrSchedule::Cosine { min_lr: 0.0 };
    cosine_done.max_steps = None;
    cosine_done.max_micro_batch = None;
    cosine_done.augment.crop_padding = None;
    // A finished cosine run: its rate ends at exactly 0, every epoch in the history.
    let mut finished = mid_run_state(&cosine_done);
    finished.lr = LrState::new(0.0);
    finished.history = (1..=5)
        .map(|e| EpochMetrics {
            epoch: e,
            val_loss: None,
            val_error: None,
            ..finished.history[0].clone()
        })
        .collect();
    finished.epochs_done = 5;
    finished.step_in_epoch = 0;
    finished.global_step = 15;
    finished.epoch_loss_sum = 0.0;
    finished.epoch_correct = 0;
    finished.epoch_images = 0;
    // A run that skipped steps that were not finite (the epoch counts only applied steps).
    let mut skipping = mid_run_state(&small);
    skipping.skipped_steps = 2;
    skipping.skipped_in_a_row = 1;
    skipping.epoch_images = 0;
    skipping.epoch_correct = 0;
    skipping.epoch_loss_sum = 0.0;

    let cases = [
        ("reference, fresh", &reference, fresh_state(&reference)),
        ("reference, mid-run", &reference, mid_run_state(&reference)),
        ("small, fresh", &small, fresh_state(&small)),
        ("small, mid-run", &small, mid_run_state(&small)),
        ("small, skipping", &small, skipping),
        ("cosine, finished", &cosine_done, finished),
    ];
    for (what, config, state) in cases {
        let bytes = checkpoint_bytes(config, &state);
        let loaded = Checkpoint::from_bytes(NAME, &bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(&loaded.header.config, config, "{what}");
        assert_eq!(loaded.header.state, state, "{what}");
        assert_eq!(loaded.header.class_names, class_names(), "{what}");
        assert_eq!(loaded.network, zero_network(&config.model), "{what}");
    }
}

#[test]
fn every_named_variant_and_stem_passes_and_the_bounds_are_the_models() {
    let mut config = small_config();
    for variant in Variant::ALL {
        for stem in Stem::ALL {
            config.model = ModelSpec::named(variant, stem);
            let state = mid_run_state(&config);
            let header =
                Checkpoint::new(config.clone(), state, class_names(), zero_network(&small_spec())).header;
            header
                .check(NAME)
                .unwrap_or_else(|e| panic!("{} {}: {e}", variant.name(), stem.name()));
        }
    }
    // The largest configuration the header admits is one the model admits too, and one past
    // any of its bounds is refused by both.
    let largest = ResNetConfig {
        bottleneck: true,
        blocks: vec![MAX_BLOCKS_PER_STAGE; MAX_STAGES],
        widths: vec![MAX_WIDTH; MAX_STAGES],
        stem_width: MAX_WIDTH,
        upsample: MAX_UPSAMPLE,
    };
    assert_eq!(largest.validate(MAX_CLASSES), Ok(()));
    let past = [
        ResNetConfig {
            blocks: vec![MAX_BLOCKS_PER_STAGE; MAX_STAGES + 1],
            widths: vec![MAX_WIDTH; MAX_STAGES + 1],
            ..largest.clone()
        },
        ResNetConfig {
            blocks: vec![MAX_BLOCKS_PER_STAGE + 1; MAX_STAGES],
            ..largest.clone()
        },
        ResNetConfig {
            widths: vec![MAX_WIDTH + 1; MAX_STAGES],
            ..largest.clone()
        },
        ResNetConfig {
            upsample: MAX_UPSAMPLE + 1,
            ..largest.clone()
        },
    ];
    for config in past {
        assert!(config.validate(10).is_err(), "{config:?}");
    }
    assert!(largest.validate(MAX_CLASSES + 1).is_err());
}

/// The largest run the header admits builds its model, and every size computed from it (each
/// tensor's bytes at the largest batch, and their sum) fits in 64 bits.
#[test]
fn the_largest_admitted_run_builds_and_its_sizes_fit() {
    let mut config = small_config();
    for stem in Stem::ALL {
        config.model = ModelSpec {
            variant: Variant::ResNet50,
            stem,
            config: ResNetConfig {
                bottleneck: true,
                blocks: vec![MAX_BLOCKS_PER_STAGE; MAX_STAGES],
                widths: vec![MAX_WIDTH; MAX_STAGES],
                stem_width: MAX_WIDTH,
                upsample: MAX_UPSAMPLE,
            },
            classes: MAX_CLASSES,
        };
        config.batch = MAX_BATCH;
        config.epochs = MAX_EPOCHS;
        config.augment.crop_padding = Some(MAX_CROP_PADDING);
        config.max_micro_batch = Some(MAX_BATCH);
        let names = (0..MAX_CLASSES).map(|c| c.to_string()).collect();
        let header = Checkpoint::new(
            config.clone(),
            fresh_state(&config),
            names,
            zero_network(&small_spec()),
        )
        .header;
        header.check(NAME).unwrap();
        let model: Model = config.model.build();
        let bytes = |shape: &[usize]| {
            shape
                .iter()
                .try_fold(4u64, |n, &d| n.checked_mul(d as u64))
                .unwrap_or_else(|| panic!("{shape:?} overflows"))
        };
        let activations = model
            .shapes(MAX_BATCH)
            .iter()
            .map(|s| bytes(s))
            .try_fold(0u64, u64::checked_add)
            .expect("the activations' bytes fit");
        let parameters = model
            .parameters()
            .iter()
            .map(|p| bytes(&p.shape))
            .try_fold(0u64, u64::checked_add)
            .expect("the parameters' bytes fit");
        println!(
            "{} stem: {} layers, {activations} bytes of activations, {parameters} of parameters",
            stem.name(),
            model.layers.len()
        );
    }
}

#[test]
fn each_field_out_of_range_is_named_with_its_value() {
    let config = small_config();
    let good = checkpoint_bytes(&config, &mid_run_state(&config));
    Checkpoint::from_bytes(NAME, &good).expect("the unedited checkpoint loads");
    // (field, the edit, the value as the message shows it)
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |path: &'static str, value: Value| -> Edit {
        Box::new(move |h: &mut Value| {
            *h.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = value.clone()
        })
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("config.batch", set("/config/batch", json!(0)), "0"),
        ("config.batch", set("/config/batch", json!(65_537)), "65537"),
        ("config.epochs", set("/config/epochs", json!(0)), "0"),
        ("config.epochs", set("/config/epochs", json!(100_001)), "100001"),
        (
            "config.augment.crop_padding",
            set("/config/augment/crop_padding", json!(1u64 << 40)),
            "1099511627776",
        ),
        (
            "config.augment.crop_padding",
            set("/config/augment/crop_padding", json!(32)),
            "32",
        ),
        ("config.sgd.lr", set("/config/sgd/lr", json!(0.0)), "0"),
        ("config.sgd.lr", set("/config/sgd/lr", json!(-0.1)), "-0.1"),
        (
            "config.sgd.momentum",
            set("/config/sgd/momentum", json!(1.0)),
            "1",
        ),
        (
            "config.sgd.momentum",
            set("/config/sgd/momentum", json!(-0.5)),
            "-0.5",
        ),
        (
            "config.sgd.weight_decay",
            set("/config/sgd/weight_decay", json!(-0.0001)),
            "-0.0001",
        ),
        (
            "config.lr_schedule.factor",
            set("/config/lr_schedule/factor", json!(1.5)),
            "1.5",
        ),
        (
            "config.lr_schedule.factor",
            set("/config/lr_schedule/factor", json!(0.0)),
            "0",
        ),
        (
            "config.lr_schedule.patience",
            set("/config/lr_schedule/patience", json!(1_000_000_000_000u64)),
            "1000000000000",
        ),
        (
            "config.lr_schedule.threshold",
            set("/config/lr_schedule/threshold", json!(1.0)),
            "1",
        ),
        (
            "config.lr_schedule.min_lr",
            set("/config/lr_schedule", json!({"kind": "cosine", "min_lr": -0.5})),
            "-0.5",
        ),
        (
            "config.validation",
            set("/config/validation", json!(1_000_000_000_000u64)),
            "1000000000000",
        ),
        ("config.max_steps", set("/config/max_steps", json!(0)), "0"),
        (
            "config.max_micro_batch",
            set("/config/max_micro_batch", json!(0)),
            "0",
        ),
        (
            "config.max_micro_batch",
            set("/config/max_micro_batch", json!(17)),
            "17",
        ),
        (
            "config.on_nonfinite.skip.in_a_row",
            set("/config/on_nonfinite", json!({"skip": {"in_a_row": 0}})),
            "0",
        ),
        (
            "config.model.classes",
            set("/config/model/classes", json!(1)),
            "1",
        ),
        (
            "config.model.classes",
            set("/config/model/classes", json!(1_000_000)),
            "1000000",
        ),
        (
            "config.model.config.blocks",
            set("/config/model/config/blocks", json!([])),
            "a list of 0",
        ),
        (
            "config.model.config.blocks[1]",
            set("/config/model/config/blocks/1", json!(0)),
            "0",
        ),
        (
            "config.model.config.blocks[0]",
            set("/config/model/config/blocks/0", json!(10_000_000_000u64)),
            "10000000000",
        ),
        (
            "config.model.config.widths",
            set("/config/model/config/widths", json!([8, 16, 32])),
            "a list of 3",
        ),
        (
            "config.model.config.widths[0]",
            set("/config/model/config/widths/0", json!(0)),
            "0",
        ),
        (
            "config.model.config.widths[1]",
            set("/config/model/config/widths/1", json!(4097)),
            "4097",
        ),
        (
            "config.model.config.stem_width",
            set("/config/model/config/stem_width", json!(0)),
            "0",
        ),
        (
            "config.model.config.upsample",
            set("/config/model/config/upsample", json!(16)),
            "16",
        ),
        (
            "config.model.config.upsample",
            set("/config/model/config/upsample", json!(1024)),
            "1024",
        ),
        ("state.epochs_done", set("/state/epochs_done", json!(6)), "6"),
        (
            "state.step_in_epoch",
            set("/state/step_in_epoch", json!(1_000_000_000_000u64)),
            "1000000000000",
        ),
        ("state.global_step", set("/state/global_step", json!(0)), "0"),
        (
            "state.global_step",
            set("/state/global_step", json!(u64::MAX)),
            "18446744073709551615",
        ),
        ("state.lr.lr", set("/state/lr/lr", json!(-0.01)), "-0.01"),
        ("state.lr.bad_epochs", set("/state/lr/bad_epochs", json!(3)), "3"),
        ("state.epoch_images", set("/state/epoch_images", json!(17)), "17"),
        (
            "state.epoch_correct",
            set("/state/epoch_correct", json!(17)),
            "17",
        ),
        (
            "state.epoch_train_seconds",
            set("/state/epoch_train_seconds", json!(-1.0)),
            "-1",
        ),
        ("state.skipped_steps", set("/state/skipped_steps", json!(8)), "8"),
        (
            "state.skipped_in_a_row",
            set("/state/skipped_in_a_row", json!(1)),
            "1",
        ),
        (
            "state.history",
            Box::new(|h: &mut Value| {
                h.pointer_mut("/state/history")
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                    .pop();
            }),
            "a list of 1",
        ),
        (
            "state.history[1].epoch",
            set("/state/history/1/epoch", json!(5)),
            "5",
        ),
        (
            "state.history[0].steps",
            set("/state/history/0/steps", json!(1_000_000_000_000u64)),
            "1000000000000",
        ),
        (
            "state.history[0].lr",
            set("/state/history/0/lr", json!(-1.0)),
            "-1",
        ),
        (
            "state.history[1].train_error",
            set("/state/history/1/train_error", json!(1.5)),
            "1.5",
        ),
        (
            "state.history[0].val_error",
            set("/state/history/0/val_error", json!(-0.1)),
            "-0.1",
        ),
        (
            "state.history[0].images_per_sec",
            set("/state/history/0/images_per_sec", json!(-3.0)),
            "-3",
        ),
        (
            "state.history[1].seconds",
            set("/state/history/1/seconds", json!(-0.5)),
            "-0.5",
        ),
        (
            "class_names",
            Box::new(|h: &mut Value| {
                h["class_names"].as_array_mut().unwrap().pop();
            }),
            "a list of 9",
        ),
    ];
    for (field, edit, value) in cases {
        assert_refused(&with_header(&good, edit), field, value);
    }
}

/// Values JSON cannot carry (serde_json writes them as null, which does not read back as a
/// number, and refuses a number past the field's range) are refused all the same where a
/// header is checked directly.
#[test]
fn non_finite_values_are_refused() {
    let config = small_config();
    let good = checkpoint_bytes(&config, &mid_run_state(&config));
    let past_f32 = with_header(&good, |h| h["config"]["sgd"]["lr"] = json!(1e39));
    let error = Checkpoint::from_bytes(NAME, &past_f32).unwrap_err();
    assert!(matches!(error, CheckpointError::BadHeader { .. }), "{error:?}");
    let base = Checkpoint::new(
        config.clone(),
        mid_run_state(&config),
        class_names(),
        zero_network(&config.model),
    )
    .header;
    type Edit = fn(&mut resnet_wgpu::train::checkpoint::CheckpointHeader);
    let cases: [(&str, Edit, &str); 6] = [
        ("config.sgd.lr", |h| h.config.sgd.lr = f32::NAN, "NaN"),
        (
            "state.epoch_loss_sum",
            |h| h.state.epoch_loss_sum = f64::NAN,
            "NaN",
        ),
        ("state.lr.best", |h| h.state.lr.best = Some(f64::INFINITY), "inf"),
        ("state.lr.lr", |h| h.state.lr.lr = f64::INFINITY, "inf"),
        (
            "state.history[0].train_loss",
            |h| h.state.history[0].train_loss = f64::NEG_INFINITY,
            "-inf",
        ),
        (
            "state.history[1].val_loss",
            |h| h.state.history[1].val_loss = Some(f64::NAN),
            "NaN",
        ),
    ];
    for (field, edit, value) in cases {
        let mut header = base.clone();
        edit(&mut header);
        let text = header.check(NAME).expect_err(field).to_string();
        assert!(
            text.starts_with(&format!("{NAME}: {field} is {value}; ")),
            "{text}"
        );
    }
}

/// Where the run stands against the data it is resumed on: the step within its epoch must lie
/// within an epoch of that data.
#[test]
fn the_position_is_checked_against_the_steps_of_an_epoch() {
    let config = small_config();
    let mut state = mid_run_state(&config);
    state.step_in_epoch = 3;
    let header = Checkpoint::new(config.clone(), state, class_names(), zero_network(&config.model)).header;
    header
        .check_position(NAME, 3)
        .expect("the last step of an epoch of 3");
    header.check_position(NAME, 100).expect("within a longer epoch");
    let error = header.check_position(NAME, 2).unwrap_err();
    let text = error.to_string();
    println!("{text}");
    assert!(matches!(error, CheckpointError::BadField { .. }), "{error:?}");
    assert!(
        text.starts_with(&format!("{NAME}: state.step_in_epoch is 3; it must be at most 2")),
        "{text}"
    );
    assert!(text.contains("the data the run was trained on"), "{text}");
}

/// Every tensor of `model`'s parameters, each encoded by `encode` as `dtype`, and the running
/// statistics as F32: a weight file as torchvision's `state_dict`, converted.
fn weight_file(model: &Model, params: &[Vec<u8>], dtype_of: impl Fn(usize) -> Dtype) -> Vec<u8> {
    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (k, (spec, data)) in model.parameters().iter().zip(params).enumerate() {
        tensors.push((spec.name.clone(), dtype_of(k), spec.shape.clone(), data.clone()));
    }
    for (bn, c) in model.batch_norms() {
        tensors.push((
            format!("{bn}.running_mean"),
            Dtype::F32,
            vec![c],
            f32_bytes(&vec![0.0; c]),
        ));
        tensors.push((
            format!("{bn}.running_var"),
            Dtype::F32,
            vec![c],
            f32_bytes(&vec![1.0; c]),
        ));
    }
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views, None).unwrap()
}

/// `bits` repeated over `len` values, little-endian.
fn repeat_u16(bits: &[u16], len: usize) -> Vec<u8> {
    bits.iter()
        .cycle()
        .take(len)
        .flat_map(|b| b.to_le_bytes())
        .collect()
}

/// Bit for bit, NaN as NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn half_precision_converts_exactly_for_every_value() {
    // Named values: ±1, −2, the smallest subnormal, the largest subnormal, the smallest
    // normal, the largest finite, ±∞, −0 and a NaN.
    let named: [(u16, f32); 11] = [
        (0x3C00, 1.0),
        (0xBC00, -1.0),
        (0xC000, -2.0),
        (0x0001, 2f32.powi(-24)),
        (0x03FF, 1023.0 * 2f32.powi(-24)),
        (0x0400, 2f32.powi(-14)),
        (0x7BFF, 65504.0),
        (0x7C00, f32::INFINITY),
        (0xFC00, f32::NEG_INFINITY),
        (0x8000, -0.0),
        (0x7E00, f32::NAN),
    ];
    for (bits, value) in named {
        assert!(same(f16_to_f32(bits), value), "{bits:#06x}: {}", f16_to_f32(bits));
    }
    // Every one of the 65,536 values against the definition: (−1)^s · 2^(e−15) · (1 + m/1024)
    // for normal numbers, (−1)^s · 2^−14 · m/1024 for subnormal ones.
    for bits in 0..=u16::MAX {
        let (s, e, m) = (
            bits >> 15,
            i32::from((bits >> 10) & 0x1f),
            f64::from(bits & 0x3ff),
        );
        let sign = if s == 1 { -1.0 } else { 1.0 };
        let expected = match e {
            0 => sign * 2f64.powi(-14) * m / 1024.0,
            31 if m == 0.0 => sign * f64::INFINITY,
            31 => f64::NAN,
            _ => sign * 2f64.powi(e - 15) * (1.0 + m / 1024.0),
        } as f32;
        let got = f16_to_f32(bits);
        assert!(same(got, expected), "{bits:#06x}: {got} but {expected}");
        assert_eq!(got.is_sign_negative(), s == 1, "{bits:#06x}: sign");
    }
    // bfloat16: the top half of an f32.
    let named: [(u16, f32); 6] = [
        (0x3F80, 1.0),
        (0xC000, -2.0),
        (0x0001, 2f32.powi(-133)),
        (0x7F80, f32::INFINITY),
        (0x8000, -0.0),
        (0x7FC0, f32::NAN),
    ];
    for (bits, value) in named {
        assert!(
            same(bf16_to_f32(bits), value),
            "{bits:#06x}: {}",
            bf16_to_f32(bits)
        );
    }
}

#[test]
fn weights_in_f16_bf16_and_f64_load_converted_and_counted() {
    let model = small_spec().build();
    let specs = model.parameters();
    let lens: Vec<usize> = specs.iter().map(|p| p.len()).collect();

    // Every parameter as F16: the first values are the named ones, then repeated.
    let f16_bits = [0x3C00, 0xC000, 0x0001, 0x03FF, 0x7BFF, 0x8000];
    let f16_values = f16_bits.map(f16_to_f32);
    assert_eq!(&f16_values[..2], &[1.0, -2.0]);
    let params: Vec<Vec<u8>> = lens.iter().map(|&n| repeat_u16(&f16_bits, n)).collect();
    let bytes = weight_file(&model, &params, |_| Dtype::F16);
    let (state, report) = load_weights_reporting("half.safetensors", &bytes, &model, None).unwrap();
    for (p, &n) in state.params.iter().zip(&lens) {
        let expected: Vec<f32> = f16_values.iter().copied().cycle().take(n).collect();
        assert!(p.iter().zip(&expected).all(|(&a, &b)| same(a, b)));
    }
    assert_eq!(state.params[0][2], 2f32.powi(-24), "the smallest subnormal");
    assert_eq!(
        report.converted,
        Conversions {
            f16: specs.len(),
            bf16: 0,
            f64: 0
        }
    );
    let note = report.converted.describe().unwrap();
    println!("{note}");
    assert_eq!(
        note,
        format!("converted {} tensors from F16 to float32", specs.len())
    );

    // A mix: BF16, F64 and F32 parameters in turn.
    let dtype_of = |k: usize| [Dtype::BF16, Dtype::F64, Dtype::F32][k % 3];
    let bf16_bits = [0x3F80, 0xC000, 0x0001];
    let f64_values = [0.1f64, -2.5, 3.0e38, 1e-50];
    let params: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(k, &n)| match dtype_of(k) {
            Dtype::BF16 => repeat_u16(&bf16_bits, n),
            Dtype::F64 => f64_values
                .iter()
                .cycle()
                .take(n)
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            _ => (0..n).flat_map(|i| (i as f32 * 0.5).to_le_bytes()).collect(),
        })
        .collect();
    let bytes = weight_file(&model, &params, dtype_of);
    let (state, report) = load_weights_reporting("mixed.safetensors", &bytes, &model, None).unwrap();
    for (k, (p, &n)) in state.params.iter().zip(&lens).enumerate() {
        let expected: Vec<f32> = match dtype_of(k) {
            Dtype::BF16 => [1.0, -2.0, 2f32.powi(-133)]
                .iter()
                .copied()
                .cycle()
                .take(n)
                .collect(),
            // Rounded to the nearest f32, as `as` does: 0.1 → 0.1f32, 1e-50 → 0.
            Dtype::F64 => [0.1f32, -2.5, 3.0e38, 0.0]
                .iter()
                .copied()
                .cycle()
                .take(n)
                .collect(),
            _ => (0..n).map(|i| i as f32 * 0.5).collect(),
        };
        assert_eq!(p, &expected, "tensor {k}");
    }
    let expected = Conversions {
        bf16: (0..specs.len()).filter(|k| k % 3 == 0).count(),
        f64: (0..specs.len()).filter(|k| k % 3 == 1).count(),
        f16: 0,
    };
    assert_eq!(report.converted, expected);
    let note = report.converted.describe().unwrap();
    println!("{note}");
    assert_eq!(
        note,
        format!(
            "converted {} tensors to float32 ({} from BF16, {} from F64)",
            expected.total(),
            expected.bf16,
            expected.f64
        )
    );

    // All float32: nothing converted, nothing to say.
    let params: Vec<Vec<u8>> = lens.iter().map(|&n| vec![0u8; 4 * n]).collect();
    let bytes = weight_file(&model, &params, |_| Dtype::F32);
    let (_, report) = load_weights_reporting("plain.safetensors", &bytes, &model, None).unwrap();
    assert_eq!(report.converted, Conversions::default());
    assert_eq!(report.converted.describe(), None);
}

#[test]
fn integer_weights_get_a_clear_error() {
    let model = small_spec().build();
    let params: Vec<Vec<u8>> = model
        .parameters()
        .iter()
        .map(|p| vec![0u8; 4 * p.len()])
        .collect();
    let bytes = weight_file(&model, &params, |k| if k == 1 { Dtype::I32 } else { Dtype::F32 });
    let error = load_weights_reporting("ints.safetensors", &bytes, &model, None).unwrap_err();
    let text = error.to_string();
    println!("{text}");
    assert!(matches!(error, CheckpointError::Dtype { .. }), "{error:?}");
    let tensor = &model.parameters()[1].name;
    assert!(
        text.starts_with("ints.safetensors")
            && text.contains(&format!("tensor {tensor} is I32"))
            && text.contains("F32, F16, BF16 and F64"),
        "{text}"
    );
}
