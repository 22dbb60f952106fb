//! Whole networks on the GPU: a training step against the CPU reference, and learning.

mod common;
use common::*;
use resnet_wgpu::data::{BatchOptions, BatchOrder, make_batch, sample_dataset};
use resnet_wgpu::model::{Model, ResNetConfig, Stem, Variant};
use resnet_wgpu::ops::sgd::SgdConfig;
use resnet_wgpu::schedule::Network;

fn tiny(variant: Variant, stem: Stem, bottleneck: bool) -> Model {
    let config = ResNetConfig {
        bottleneck,
        blocks: vec![1, 1],
        widths: vec![8, 16],
        stem_width: 8,
        upsample: 48,
    };
    Model::from_config(variant, stem, &config, 10)
}

fn initial(model: &Model, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    model
        .parameters()
        .iter()
        .map(|p| p.initial_values(&mut rng))
        .collect()
}

#[test]
fn short_training_on_sample_data_lowers_the_loss() {
    let ctx = gpu();
    let config = ResNetConfig {
        bottleneck: false,
        blocks: vec![1, 1],
        widths: vec![16, 32],
        stem_width: 16,
        upsample: 48,
    };
    let model = Model::from_config(Variant::ResNet18, Stem::Cifar, &config, 10);
    let batch = 32;
    let data = sample_dataset(256, 64, 1);
    let values = initial(&model, 2);
    let sgd = SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let net = Network::new(&ctx, model, batch, &values, sgd);
    let order = BatchOrder::shuffled(3);
    let mut rng = Rng::new(4);
    let mut losses = Vec::new();
    for epoch in 0..10 {
        let indices = order.epoch(epoch, data.train.len());
        for chunk in indices.chunks_exact(batch) {
            let b = make_batch(&data.train, chunk, BatchOptions::NONE, &mut rng);
            net.set_batch(&ctx, &b.images, &b.labels);
            net.submit_train_step(&ctx);
            losses.push(net.loss.read_blocking(&ctx)[0]);
        }
    }
    let first: f32 = losses[..4].iter().sum::<f32>() / 4.0;
    let last: f32 = losses[losses.len() - 4..].iter().sum::<f32>() / 4.0;
    assert!(
        losses.iter().all(|l| l.is_finite()),
        "a loss was not finite: {losses:?}"
    );
    assert!(
        last < 0.9 * first,
        "loss did not fall: first {first}, last {last}; all {losses:?}"
    );
}

/// One training step on the GPU and on the CPU reference from the same weights and batch.
fn check_step_against_reference(model: Model, batch: usize, seed: u64) {
    use resnet_wgpu::model::reference::{self, ReferenceState};
    let ctx = gpu();
    let values = initial(&model, seed);
    let mut rng = Rng::new(seed + 1);
    let images = rng.uniform_vec(batch * 3 * 32 * 32, 0.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-3,
    };
    let names: Vec<String> = model.parameters().iter().map(|p| p.name.clone()).collect();
    let widened: Vec<Vec<f64>> = values.iter().map(|v| to_f64(v)).collect();
    let mut state = ReferenceState::from_params(&model, widened);
    let expected = reference::train_step(&model, &mut state, &to_f64(&images), &labels, batch, sgd);
    for subgroups in variants(&ctx) {
        ctx.set_use_subgroups(subgroups);
        let net = Network::new(&ctx, model.clone(), batch, &values, sgd);
        net.set_batch(&ctx, &images, &labels);
        net.submit_train_step(&ctx);
        let loss = net.loss.read_blocking(&ctx);
        let tag = format!("{:?}/{:?} subgroups {subgroups}", model.variant, model.stem);
        assert!(
            (loss[0] as f64 - expected.loss).abs() < 1e-4,
            "{tag}: loss {} vs {}",
            loss[0],
            expected.loss
        );
        assert_eq!(loss[1] as f64, expected.correct, "{tag}: correct count");
        for (i, name) in names.iter().enumerate() {
            let scale = expected.grads[i].iter().fold(0.0f64, |m, g| m.max(g.abs()));
            let grad = net.grads[i].read_blocking(&ctx);
            assert_close(
                &format!("{tag} grad {name}"),
                &grad,
                &expected.grads[i],
                2e-4 * scale.max(1e-3),
                2e-3,
            );
            let updated = net.params[i].read_blocking(&ctx);
            assert_close(
                &format!("{tag} updated {name}"),
                &updated,
                &state.params[i],
                1e-5,
                1e-4,
            );
        }
        for (j, (mean, var)) in net.running.iter().enumerate() {
            assert_close(
                &format!("{tag} running mean {j}"),
                &mean.read_blocking(&ctx),
                &state.running[j].0,
                1e-5,
                1e-4,
            );
            assert_close(
                &format!("{tag} running var {j}"),
                &var.read_blocking(&ctx),
                &state.running[j].1,
                1e-5,
                1e-4,
            );
        }
    }
}

#[test]
fn training_step_matches_cpu_reference_seed_variant_imagenet_stem() {
    // Upsampling, 7×7/2 conv with bias, 2×2 max pool, bottlenecks, conv shortcuts without BN.
    check_step_against_reference(tiny(Variant::Seed50, Stem::ImageNet, true), 3, 10);
}

#[test]
fn training_step_matches_cpu_reference_torchvision_variants() {
    // 3×3/2 pad-1 max pool with downsample conv + BN; basic blocks with the CIFAR stem.
    check_step_against_reference(tiny(Variant::ResNet50, Stem::ImageNet, true), 2, 20);
    check_step_against_reference(tiny(Variant::ResNet18, Stem::Cifar, false), 4, 30);
}
