//! A training step is applied whole or not at all: where its loss, a gradient or a batch
//! statistic is not finite, the device leaves parameters, momentum and running statistics
//! bit-identical to before the step (one and several micro-batches), and the trainer stops or
//! skips as the run's policy says. The finiteness-check kernel against its CPU reference.

mod common;
use common::*;
use resnet_wgpu::data::{BatchOptions, make_batch, sample_dataset};
use resnet_wgpu::gpu::{GpuBuffer, GpuContext, KernelPolicy};
use resnet_wgpu::model::{Model, ResNetConfig, Stem, Variant};
use resnet_wgpu::ops::finite_check::{self, NonFinite, STATUS_LEN};
use resnet_wgpu::ops::sgd::SgdConfig;
use resnet_wgpu::schedule::{Network, NetworkState};
use resnet_wgpu::train::{OnNonFinite, Progress, Splits, TrainError, Trainer};

fn tiny() -> Model {
    let config = ResNetConfig {
        bottleneck: false,
        blocks: vec![1, 1],
        widths: vec![8, 16],
        stem_width: 8,
        upsample: 48,
    };
    Model::from_config(Variant::ResNet18, Stem::Cifar, &config, 10)
}

fn state(ctx: &GpuContext, net: &Network) -> NetworkState {
    let state = pollster::block_on(net.read_state(ctx)).expect("the state reads back");
    assert_eq!(ctx.take_error(), None, "the device reported an error");
    state
}

fn bits(state: &NetworkState) -> Vec<u32> {
    let running = state.running.iter().flat_map(|(m, v)| m.iter().chain(v));
    state
        .params
        .iter()
        .chain(&state.momentum)
        .flatten()
        .chain(running)
        .map(|v| v.to_bits())
        .collect()
}

/// Two healthy steps, a step whose batch holds a NaN, then a healthy one, in micro-batches of
/// `micro` images: the poisoned step is flagged and changes nothing, the next one trains on.
fn poisoned_step_changes_nothing(micro: usize) {
    let ctx = gpu();
    let model = tiny();
    let batch = 8;
    let values = model.initial_parameters(5);
    let sgd = SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let net = network(&ctx, model, batch, micro, KernelPolicy::Auto, &values, sgd);
    assert_eq!(net.plan.micro_batch, micro);
    let data = sample_dataset(32, 8, 2);
    let mut rng = Rng::new(3);
    let indices: Vec<usize> = (0..data.train.len()).collect();
    let mut batches = indices
        .chunks_exact(batch)
        .map(|chunk| make_batch(&data.train, chunk, BatchOptions::NONE, &mut rng));
    for _ in 0..2 {
        let b = batches.next().unwrap();
        let stats = pollster::block_on(net.train_step(&ctx, &b.images, &b.labels)).unwrap();
        assert!(
            stats.non_finite.is_finite(),
            "a healthy step was flagged: {stats:?}"
        );
    }
    let before = state(&ctx, &net);
    assert!(
        before.momentum.iter().flatten().any(|&v| v != 0.0),
        "momentum is in play"
    );

    let mut b = batches.next().unwrap();
    // In the last micro-batch, so that the earlier ones' gradients are finite.
    let last_image = (batch - 1) * resnet_wgpu::schedule::IMAGE_LEN;
    b.images[last_image + 17] = f32::NAN;
    let stats = pollster::block_on(net.train_step(&ctx, &b.images, &b.labels)).unwrap();
    // The first ReLU may turn the NaN into zeros (the loss can stay finite), but the
    // gradients and the batch statistics cannot hide it.
    assert!(
        stats.non_finite.0 & NonFinite::GRADIENT != 0 && stats.non_finite.0 & NonFinite::STATISTICS != 0,
        "the poisoned step was not flagged as it should be: {stats:?}"
    );
    let after = state(&ctx, &net);
    assert!(
        bits(&after) == bits(&before),
        "micro-batches of {micro}: a step that was not finite changed the parameters, momentum or running statistics"
    );

    let b = batches.next().unwrap();
    let stats = pollster::block_on(net.train_step(&ctx, &b.images, &b.labels)).unwrap();
    assert!(
        stats.non_finite.is_finite() && stats.loss.is_finite(),
        "{stats:?}"
    );
    let trained = state(&ctx, &net);
    assert!(bits(&trained) != bits(&before), "the next healthy step trained");
    assert!(bits(&trained).iter().all(|&b| f32::from_bits(b).is_finite()));
}

#[test]
fn a_step_that_is_not_finite_changes_nothing_on_the_device() {
    poisoned_step_changes_nothing(8);
}

#[test]
fn a_micro_batched_step_that_is_not_finite_changes_nothing_on_the_device() {
    poisoned_step_changes_nothing(4);
}

#[test]
fn skipping_steps_that_are_not_finite_goes_on_and_stops_after_too_many_in_a_row() {
    let ctx = gpu();
    // Six steps per epoch: every step below is within the first.
    let data = sample_dataset(112, 16, 3);
    let mut config = small_config(16, 2);
    config.on_nonfinite = OnNonFinite::Skip { in_a_row: 2 };
    let mut trainer = Trainer::new(&ctx, config, Splits::new(&data, 16), None).unwrap();
    let step = |t: &mut Trainer| pollster::block_on(t.advance(&ctx));
    let Ok(Progress::Step(first)) = step(&mut trainer) else {
        panic!("a healthy first step")
    };
    assert!(first.non_finite.is_finite());
    let before = pollster::block_on(trainer.checkpoint(&ctx)).unwrap().network;

    trainer.poison_next_step();
    let Ok(Progress::Step(skipped)) = step(&mut trainer) else {
        panic!("the poisoned step is skipped, not an error")
    };
    assert!(!skipped.non_finite.is_finite(), "{skipped:?}");
    assert_eq!(
        (trainer.state.skipped_steps, trainer.state.skipped_in_a_row),
        (1, 1)
    );
    assert_eq!(trainer.state.global_step, 2, "a skipped step uses up its batch");
    let after = pollster::block_on(trainer.checkpoint(&ctx)).unwrap().network;
    assert!(
        bits(&after) == bits(&before),
        "a skipped step changed the network"
    );

    let healthy = match step(&mut trainer) {
        Ok(Progress::Step(s)) => s,
        other => panic!("a healthy step after the skipped one, not {other:?}"),
    };
    assert!(healthy.non_finite.is_finite());
    assert_eq!(trainer.state.skipped_in_a_row, 0, "a healthy step ends the row");

    trainer.poison_next_step();
    assert!(matches!(step(&mut trainer), Ok(Progress::Step(_))));
    trainer.poison_next_step();
    let error = step(&mut trainer).expect_err("the second skipped step in a row stops the run");
    assert!(
        matches!(error, TrainError::NonFinite { skipped: 1, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("after 1 skipped steps in a row"),
        "{error}"
    );
    assert_eq!(trainer.state.skipped_steps, 2);
}

fn run_check(ctx: &GpuContext, values: &[f32], flag: u32, start: u32) -> u32 {
    let buffer = GpuBuffer::from_slice(ctx, "checked values", values);
    let mut initial = [0u32; STATUS_LEN];
    initial[finite_check::FLAGS] = start;
    let status = GpuBuffer::from_slice(ctx, "status", &initial);
    let launch = finite_check::check(ctx, &buffer, flag, &status);
    ctx.run_blocking("finite check", &[&launch]);
    let read = status.read_blocking(ctx);
    assert_eq!(ctx.take_error(), None, "the device reported an error");
    finite_check::decode(&read).2.0
}

#[test]
fn the_finite_check_flags_infinities_and_nans_anywhere_and_nothing_else() {
    let ctx = gpu();
    let mut rng = Rng::new(9);
    // Lengths that are not multiples of four (an invocation checks four values), past one
    // workgroup of 256 invocations, and a long buffer.
    for len in [1, 3, 255, 1025, 70_001, 256 * 65_535 + 301] {
        let mut values: Vec<f32> = (0..len).map(|_| rng.uniform(-1e30, 1e30) as f32).collect();
        // Finite extremes: the largest, the smallest normal and a subnormal.
        values[0] = f32::MAX;
        values[len / 2] = f32::MIN_POSITIVE / 4.0;
        values[len - 1] = -f32::MAX;
        assert_eq!(
            run_check(&ctx, &values, 4, 1),
            finite_check::check_cpu(&values, 4, 1),
            "len {len}: finite"
        );
        assert_eq!(
            run_check(&ctx, &values, 4, 1),
            1,
            "len {len}: finite values set nothing"
        );
        for (at, bad) in [
            (0, f32::NAN),
            (len / 3, f32::INFINITY),
            (len - 1, f32::NEG_INFINITY),
        ] {
            let mut poisoned = values.clone();
            poisoned[at] = bad;
            let expected = finite_check::check_cpu(&poisoned, 2, 1);
            assert_eq!(expected, 3);
            assert_eq!(
                run_check(&ctx, &poisoned, 2, 1),
                expected,
                "len {len}: {bad} at {at}"
            );
        }
    }
}
