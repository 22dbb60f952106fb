//! The trainer: learning on real images, exact resume, the real seed ResNet-50, NaN stops,
//! checkpoints and weight files that do not fit.

mod common;
use common::*;
use resnet_wgpu::data::{BatchOptions, Cifar10, load_cifar10, sample_dataset};
use resnet_wgpu::gpu::KernelPolicy;
use resnet_wgpu::model::{Stem, Variant};
use resnet_wgpu::ops::sgd::SgdConfig;
use resnet_wgpu::schedule::MemoryMode;
use resnet_wgpu::train::checkpoint::load_weights;
use resnet_wgpu::train::{
    Checkpoint, CheckpointError, LrSchedule, ModelSpec, Progress, Splits, TrainConfig, TrainError,
    TrainMetrics, Trainer,
};

/// Runs `advance` until the trainer finishes; returns the metrics of each finished epoch.
fn run_to_end(
    ctx: &resnet_wgpu::gpu::GpuContext,
    trainer: &mut Trainer,
) -> Vec<resnet_wgpu::train::EpochMetrics> {
    let mut epochs = Vec::new();
    loop {
        match pollster::block_on(trainer.advance(ctx)).expect("training step") {
            Progress::Finished => return epochs,
            Progress::Epoch(m) => epochs.push(m),
            Progress::Step(_) => {}
        }
    }
}

fn digits() -> Cifar10 {
    load_cifar10(digits_dir()).expect("the digits load")
}

/// The digits run: a small ResNet, 6 epochs at batch 32.
fn digits_config() -> TrainConfig {
    TrainConfig {
        // The smallest network that shows it: three stages of 8/16/32 channels reach about 98 %
        // in 6 epochs.
        model: small_spec(&[8, 16, 32], &[1, 1, 1]),
        // Batch 32: the first stage's weight gradients then reduce over 32 × 32 × 32 values,
        // within what one kernel loop may run on lavapipe; at 64 they run split-K on the
        // portable tile, correct but many times slower there.
        batch: 32,
        epochs: 6,
        sgd: SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        lr_schedule: LrSchedule::Cosine { min_lr: 0.0 },
        augment: BatchOptions::NONE,
        shuffle: true,
        seed: 0,
        validation: 0,
        max_steps: None,
        train_metrics: TrainMetrics::Running,
        max_micro_batch: None,
        gamma: None,
        on_nonfinite: resnet_wgpu::train::OnNonFinite::Stop,
    }
}

/// Trains the digits run in `mode`; returns the test accuracy.
fn digits_accuracy(ctx: &resnet_wgpu::gpu::GpuContext, mode: MemoryMode) -> f64 {
    let data = digits();
    let config = digits_config();
    let plan = config.plan(ctx, KernelPolicy::Auto, Some(mode)).unwrap();
    let mut trainer = Trainer::from_plan(ctx, plan, config, Splits::new(&data, 0), None).unwrap();
    let epochs = run_to_end(ctx, &mut trainer);
    assert_eq!(epochs.len(), 6);
    let report = pollster::block_on(trainer.evaluate(ctx, &data.test)).unwrap();
    println!("digits after 6 epochs, memory mode {}:\n{report}", mode.name());
    assert!(
        report.accuracy >= 0.93,
        "memory mode {}: test accuracy {:.4} below 0.93; epochs: {epochs:#?}",
        mode.name(),
        report.accuracy
    );
    report.accuracy
}

/// A small ResNet learns the digits, with activations stored as f32 and as f16, the two within
/// a point of test accuracy.
#[test]
fn a_small_resnet_learns_the_handwritten_digits_with_f32_and_f16_activations() {
    let ctx = gpu();
    assert!(
        ctx.features.shader_f16,
        "this adapter offers no shader-f16 to test f16 storage on"
    );
    let (full, half) = (
        digits_accuracy(&ctx, MemoryMode::Full),
        digits_accuracy(&ctx, MemoryMode::F16),
    );
    assert!(
        (full - half).abs() <= 0.01,
        "test accuracy {half:.4} with f16 storage, {full:.4} with f32"
    );
}

#[test]
fn a_resumed_run_matches_an_uninterrupted_one_bit_for_bit() {
    let ctx = gpu();
    // 48 training images, batch 16: 3 steps an epoch; 7 steps cross two epoch ends (with
    // evaluation and a schedule step) and stop mid-epoch.
    let data = sample_dataset(64, 16, 3);
    let mut config = small_config(16, 5);
    config.max_steps = Some(7);
    let mut straight = Trainer::new(&ctx, config.clone(), Splits::new(&data, 16), None).unwrap();
    run_to_end(&ctx, &mut straight);
    let straight_state = pollster::block_on(straight.net.read_state(&ctx)).unwrap();

    config.max_steps = Some(4);
    let mut first = Trainer::new(&ctx, config, Splits::new(&data, 16), None).unwrap();
    run_to_end(&ctx, &mut first);
    assert_eq!((first.state.epochs_done, first.state.step_in_epoch), (1, 1));
    let bytes = pollster::block_on(first.checkpoint(&ctx)).unwrap().to_bytes();
    drop(first);
    let checkpoint = Checkpoint::from_bytes("mid-run", &bytes).unwrap();
    let mut resumed = Trainer::resume(&ctx, &checkpoint, Splits::new(&data, 16)).unwrap();
    resumed.config.max_steps = Some(7);
    run_to_end(&ctx, &mut resumed);
    let resumed_state = pollster::block_on(resumed.net.read_state(&ctx)).unwrap();

    assert_eq!(
        without_timings(&resumed.state),
        without_timings(&straight.state),
        "run state (step, RNG, schedule, history)"
    );
    for (k, (a, b)) in straight_state
        .params
        .iter()
        .zip(&resumed_state.params)
        .enumerate()
    {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "parameter {k} differs"
        );
    }
    assert_eq!(straight_state, resumed_state, "momentum and running statistics");
}

/// The state with its wall-clock measurements cleared (they differ run to run).
fn without_timings(state: &resnet_wgpu::train::TrainState) -> resnet_wgpu::train::TrainState {
    let mut s = state.clone();
    s.epoch_train_seconds = 0.0;
    for m in &mut s.history {
        m.seconds = 0.0;
        m.images_per_sec = 0.0;
    }
    s
}

#[test]
fn a_short_run_of_the_seed_resnet50_lowers_the_loss() {
    let ctx = gpu();
    // Four sample images as one batch at 224 px, the reference's SGD: the loss of those
    // images falls step by step.
    let data = sample_dataset(4, 0, 5);
    let config = TrainConfig {
        model: ModelSpec::named(Variant::Seed50, Stem::ImageNet),
        batch: 4,
        epochs: 5,
        validation: 0,
        augment: BatchOptions::NONE,
        train_metrics: TrainMetrics::Running,
        ..TrainConfig::reference()
    };
    let mut trainer = Trainer::new(&ctx, config, Splits::new(&data, 0), None).unwrap();
    let epochs = run_to_end(&ctx, &mut trainer);
    let (first, last) = (epochs[0].train_loss, epochs[4].train_loss);
    assert!(epochs.iter().all(|e| e.train_loss.is_finite()), "{epochs:#?}");
    println!(
        "seed ResNet-50 epoch losses: {:?}",
        epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>()
    );
    assert!(
        last < 0.8 * first,
        "loss did not fall: {first} → {last}; {epochs:#?}"
    );
}

#[test]
fn a_loss_that_turns_non_finite_stops_training_with_the_weights_of_the_step_before() {
    let ctx = gpu();
    let data = sample_dataset(64, 16, 3);
    let mut config = small_config(16, 3);
    config.sgd.lr = 1e12;
    let mut trainer = Trainer::new(&ctx, config, Splits::new(&data, 16), None).unwrap();
    let (error, before) = loop {
        let before = pollster::block_on(trainer.checkpoint(&ctx)).expect("a checkpoint");
        match pollster::block_on(trainer.advance(&ctx)) {
            Err(e) => break (e, before),
            Ok(Progress::Finished) => panic!("training with lr 1e12 finished without a non-finite step"),
            Ok(_) => {}
        }
    };
    assert!(matches!(error, TrainError::NonFinite { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("was not finite") && text.contains("not applied") && text.contains("learning rate"),
        "{text}"
    );
    // The step was not applied: the device holds exactly the state before it, all finite.
    let after = pollster::block_on(trainer.checkpoint(&ctx)).expect("a checkpoint after the failed step");
    assert_eq!(after, before, "a step that is not finite changed the run");
    let finite = |tensors: &[Vec<f32>]| tensors.iter().flatten().all(|v| v.is_finite());
    assert!(finite(&after.network.params) && finite(&after.network.momentum));
    assert!(
        after
            .network
            .running
            .iter()
            .all(|(m, v)| finite(std::slice::from_ref(m)) && finite(std::slice::from_ref(v)))
    );
}

#[test]
fn checkpoints_that_do_not_fit_are_refused_with_what_is_wrong() {
    let ctx = gpu();
    let data = sample_dataset(32, 0, 3);
    let mut trainer = Trainer::new(&ctx, small_config(16, 1), Splits::new(&data, 0), None).unwrap();
    let checkpoint = pollster::block_on(trainer.checkpoint(&ctx)).unwrap();
    let bytes = checkpoint.to_bytes();

    let garbage = Checkpoint::from_bytes("noise.bin", b"certainly not safetensors").unwrap_err();
    assert!(
        matches!(garbage, CheckpointError::NotSafetensors { .. }),
        "{garbage}"
    );
    let truncated = Checkpoint::from_bytes("cut.safetensors", &bytes[..bytes.len() / 2]).unwrap_err();
    assert!(
        matches!(truncated, CheckpointError::NotSafetensors { .. }),
        "{truncated}"
    );

    let other = small_spec(&[8, 16, 32], &[1, 1, 1]);
    let refused = checkpoint.check_model("run.safetensors", &other).unwrap_err();
    assert!(refused.to_string().contains("resnet18"), "{refused}");
    checkpoint
        .check_model("run.safetensors", &small_spec(&[8, 16], &[1, 1]))
        .unwrap();

    // As initial weights for another shape: every missing, extra and mis-shaped tensor named.
    let wider = small_spec(&[8, 32], &[1, 1]).build();
    let e = load_weights("run.safetensors", &bytes, &wider, None).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, CheckpointError::Mismatch { .. }), "{text}");
    assert!(
        text.contains("wrong shape") && text.contains("layer2.0.conv1.weight"),
        "{text}"
    );

    // Another number of classes: refused, unless a fresh head is asked for.
    let mut eleven = small_spec(&[8, 16], &[1, 1]);
    eleven.classes = 11;
    let model = eleven.build();
    let e = load_weights("run.safetensors", &bytes, &model, None).unwrap_err();
    assert!(e.to_string().contains("fc.weight"), "{e}");
    let fresh: Vec<Vec<f32>> = model.initial_parameters(1);
    let loaded = load_weights("run.safetensors", &bytes, &model, Some(&fresh)).unwrap();
    assert_eq!(
        loaded.params.last(),
        fresh.last(),
        "the head keeps its fresh values"
    );
    assert_eq!(
        loaded.params[0], checkpoint.network.params[0],
        "the rest comes from the file"
    );
}

#[test]
fn weights_named_as_torchvision_load_into_the_torchvision_variant() {
    use safetensors::tensor::{Dtype, TensorView};
    let model = ModelSpec::named(Variant::ResNet18, Stem::ImageNet).build();
    let params: Vec<Vec<f32>> = model.initial_parameters(9);
    // A state_dict as torchvision saves it: parameters, running statistics and the int64
    // num_batches_tracked counters.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (spec, p) in model.parameters().iter().zip(&params) {
        tensors.push((spec.name.clone(), spec.shape.clone(), le(p)));
    }
    for (bn, c) in model.batch_norms() {
        tensors.push((format!("{bn}.running_mean"), vec![c], le(&vec![0.5; c])));
        tensors.push((format!("{bn}.running_var"), vec![c], le(&vec![2.0; c])));
        tensors.push((
            format!("{bn}.num_batches_tracked"),
            vec![],
            7i64.to_le_bytes().to_vec(),
        ));
    }
    let names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
    assert!(names.contains(&"layer2.0.downsample.1.running_var") && names.contains(&"fc.bias"));
    let views = tensors.iter().map(|(n, s, b)| {
        let dtype = if n.ends_with("num_batches_tracked") {
            Dtype::I64
        } else {
            Dtype::F32
        };
        (n.clone(), TensorView::new(dtype, s.clone(), b).unwrap())
    });
    let bytes = safetensors::serialize(views, None).unwrap();
    let loaded = load_weights("resnet18.safetensors", &bytes, &model, None).unwrap();
    assert_eq!(loaded.params, params);
    assert!(
        loaded
            .running
            .iter()
            .all(|(m, v)| m.iter().all(|&x| x == 0.5) && v.iter().all(|&x| x == 2.0))
    );
    // Not a checkpoint of this program: it says how to use the file instead.
    let e = Checkpoint::from_bytes("resnet18.safetensors", &bytes).unwrap_err();
    assert!(matches!(e, CheckpointError::NoHeader { .. }), "{e}");
    assert!(e.to_string().contains("--init"), "{e}");
}

#[test]
fn micro_batched_training_reports_its_split_and_learns() {
    let ctx = gpu();
    let data = sample_dataset(128, 32, 2);
    let mut config = small_config(32, 3);
    config.max_micro_batch = Some(8);
    config.validation = 32;
    let mut trainer = Trainer::new(&ctx, config, Splits::new(&data, 32), None).unwrap();
    assert_eq!((trainer.net.plan.batch, trainer.net.plan.micro_batch), (32, 8));
    assert!(
        trainer
            .net
            .plan
            .memory
            .to_string()
            .contains("4 micro-batches of 8")
    );
    let epochs = run_to_end(&ctx, &mut trainer);
    assert_eq!(epochs.len(), 3);
    assert!(
        epochs
            .iter()
            .all(|e| e.train_loss.is_finite() && e.val_loss.is_some_and(f64::is_finite))
    );
}

#[test]
fn errors_the_device_reports_are_kept_for_the_caller_instead_of_panicking() {
    let ctx = gpu();
    assert_eq!(ctx.take_error(), None);
    // A buffer beyond the device's limit is a validation error the device reports by itself.
    let _too_big = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("too big"),
        size: ctx.limits.max_buffer_size + 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let error = ctx.take_error().expect("the error is kept");
    assert!(!error.is_empty());
    assert_eq!(ctx.take_error(), None, "taken once");
}

/// Makes the device report a validation error of its own, as a rejected launch would: a buffer
/// whose usages cannot go together, created outside any error scope.
fn inject_device_error(ctx: &resnet_wgpu::gpu::GpuContext) {
    let _ = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 16,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
}

#[test]
fn a_device_error_during_a_step_stops_the_run_and_nothing_is_saved_from_it() {
    let ctx = gpu();
    let data = sample_dataset(48, 16, 3);
    let mut trainer = Trainer::new(&ctx, small_config(16, 2), Splits::new(&data, 16), None).unwrap();
    pollster::block_on(trainer.step(&ctx)).expect("a healthy first step");
    let before = pollster::block_on(trainer.checkpoint(&ctx)).expect("a checkpoint before the failure");

    inject_device_error(&ctx);
    let error = pollster::block_on(trainer.step(&ctx)).expect_err("the step must fail");
    let text = error.to_string();
    assert!(matches!(error, TrainError::Device(_)), "{error:?}");
    assert!(
        text.contains("the GPU failed") && text.contains("checkpoint is intact"),
        "{text}"
    );
    assert_eq!(trainer.state.global_step, 1, "the failed step is not counted");
    // The run stays stopped, and no checkpoint is taken from the device's state any more.
    assert!(matches!(
        pollster::block_on(trainer.step(&ctx)),
        Err(TrainError::Device(_))
    ));
    let refused = pollster::block_on(trainer.checkpoint(&ctx)).expect_err("no checkpoint after a failure");
    assert!(refused.to_string().contains("nothing is saved"), "{refused}");
    // Nothing of the failed step is kept: the run stands where the last checkpoint left it.
    assert_eq!(
        trainer.state, before.header.state,
        "the failed step changed the run's state"
    );
}

#[test]
fn a_device_error_while_allocating_says_what_the_plan_needed() {
    let ctx = gpu();
    let data = sample_dataset(48, 16, 3);
    inject_device_error(&ctx);
    let error = Trainer::new(&ctx, small_config(16, 2), Splits::new(&data, 16), None)
        .err()
        .expect("setting up must fail");
    let text = error.to_string();
    // What was needed, what the device allows, and what would fit instead.
    assert!(
        text.contains("could not set up the network")
            && text.contains("with micro-batches of 16")
            && text.contains("MiB per buffer")
            && text.contains("Micro-batches of 8 would need")
            && text.contains("--micro-batch 8"),
        "{text}"
    );
}

#[test]
fn a_destroyed_device_stops_the_run_with_a_clear_error() {
    let ctx = gpu();
    let data = sample_dataset(48, 16, 3);
    let mut trainer = Trainer::new(&ctx, small_config(16, 2), Splits::new(&data, 16), None).unwrap();
    pollster::block_on(trainer.step(&ctx)).expect("a healthy first step");
    ctx.device.destroy();
    let error = pollster::block_on(trainer.step(&ctx)).expect_err("the step must fail");
    assert!(matches!(error, TrainError::Device(_)), "{error:?}");
    assert!(error.to_string().contains("device was lost"), "{error}");
    assert!(
        pollster::block_on(trainer.checkpoint(&ctx)).is_err(),
        "no checkpoint from a lost device"
    );
}
