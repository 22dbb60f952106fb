//! Whole networks on the GPU: a training step against the CPU reference, and learning.

mod common;
use common::*;
use resnet_wgpu::data::{BatchOptions, BatchOrder, make_batch, sample_dataset};
use resnet_wgpu::model::{Model, ResNetConfig, Stem, Variant};
use resnet_wgpu::ops::sgd::SgdConfig;
use resnet_wgpu::schedule::{MemoryMode, Network};

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
    let values = model.initial_parameters(2);
    let sgd = SgdConfig {
        lr: 0.05,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
    let net = Network::new(&ctx, model, batch, &values, sgd).unwrap();
    let order = BatchOrder::shuffled(3);
    let mut rng = Rng::new(4);
    let mut losses = Vec::new();
    for epoch in 0..10 {
        let indices = order.epoch(epoch, data.train.len());
        for chunk in indices.chunks_exact(batch) {
            let b = make_batch(&data.train, chunk, BatchOptions::NONE, &mut rng);
            let stats = pollster::block_on(net.train_step(&ctx, &b.images, &b.labels)).unwrap();
            losses.push(stats.loss);
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
    check_micro_batched_step_against_reference(model, batch, batch, seed);
}

/// As [`check_step_against_reference`], the GPU running the batch as micro-batches of
/// `micro` images: the reference sums each micro-batch's gradients weighted by its share of
/// the batch and updates the running statistics once, from the whole batch's statistics.
fn check_micro_batched_step_against_reference(model: Model, batch: usize, micro: usize, seed: u64) {
    use resnet_wgpu::model::reference::{self, ReferenceState};
    let ctx = gpu();
    let values = model.initial_parameters(seed);
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
    let expected = if micro == batch {
        reference::train_step(&model, &mut state, &to_f64(&images), &labels, batch, sgd)
    } else {
        micro_batched_reference_step(&model, &mut state, &images, &labels, micro, sgd)
    };
    for policy in kernel_policies(&ctx) {
        let net = network(&ctx, model.clone(), batch, micro, policy, &values, sgd);
        assert_eq!(
            net.plan.micro_batch, micro,
            "the network splits the batch as asked"
        );
        let stats = pollster::block_on(net.train_step(&ctx, &images, &labels)).unwrap();
        let tag = format!(
            "{:?}/{:?} micro {micro} kernels {policy:?}",
            model.variant, model.stem
        );
        assert!(
            (stats.loss as f64 - expected.loss).abs() < 1e-4,
            "{tag}: loss {} vs {}",
            stats.loss,
            expected.loss
        );
        assert_eq!(stats.correct as f64, expected.correct, "{tag}: correct count");
        for (i, name) in names.iter().enumerate() {
            let scale = expected.grads[i].iter().fold(0.0f64, |m, g| m.max(g.abs()));
            let grad = net.buffers.grads[i].read_blocking(&ctx);
            assert_close(
                &format!("{tag} grad {name}"),
                &grad,
                &expected.grads[i],
                2e-4 * scale.max(1e-3),
                2e-3,
            );
            let updated = net.buffers.params[i].read_blocking(&ctx);
            assert_close(
                &format!("{tag} updated {name}"),
                &updated,
                &state.params[i],
                1e-5,
                1e-4,
            );
        }
        for (j, (mean, var)) in net.buffers.running.iter().enumerate() {
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

#[test]
fn training_step_matches_cpu_reference_where_late_planes_are_smaller_than_the_kernel() {
    // 32-pixel input through the ImageNet stem: stages on 8, 4, 2 and 1 pixels a side, so the
    // last stage's 3×3 convolutions reach the input with part of the kernel (stride 2 on 2×2)
    // or the centre only (1×1): the taps the subgroup kernels skip.
    let config = ResNetConfig {
        bottleneck: false,
        blocks: vec![1, 1, 1, 1],
        widths: vec![4, 8, 8, 12],
        stem_width: 4,
        upsample: 32,
    };
    let model = Model::from_config(Variant::ResNet18, Stem::ImageNet, &config, 10);
    check_step_against_reference(model, 3, 40);
}

/// The reference of a micro-batched step: gradients of each micro-batch (mean over its own
/// images, so weighted by micro/batch), the running statistics updated once from the
/// micro-batches' statistics combined, one SGD.
fn micro_batched_reference_step(
    model: &Model,
    state: &mut resnet_wgpu::model::reference::ReferenceState,
    images: &[f32],
    labels: &[u32],
    micro: usize,
    sgd: SgdConfig,
) -> resnet_wgpu::model::reference::StepResult {
    use resnet_wgpu::model::reference;
    use resnet_wgpu::ops::{batch_norm, sgd as sgd_op};
    let batch = labels.len();
    let image_len = 3 * 32 * 32;
    let weight = micro as f64 / batch as f64;
    let mut grads: Vec<Vec<f64>> = state.params.iter().map(|p| vec![0.0; p.len()]).collect();
    let (mut loss, mut correct) = (0.0, 0.0);
    // Per batch norm: each micro-batch's (mean, biased var), and the values seen per channel.
    let mut parts: Vec<Vec<(Vec<f64>, Vec<f64>)>> = vec![Vec::new(); state.running.len()];
    let mut counts = vec![0; state.running.len()];
    for k in 0..batch / micro {
        let x = to_f64(&images[k * micro * image_len..(k + 1) * micro * image_len]);
        let y = &labels[k * micro..(k + 1) * micro];
        let g = reference::gradients(model, &state.params, &x, y, micro);
        loss += g.loss * weight;
        correct += g.correct;
        for (total, part) in grads.iter_mut().zip(&g.params) {
            total.iter_mut().zip(part).for_each(|(t, p)| *t += weight * p);
        }
        let trace = reference::forward_train(model, &state.params, &x, micro);
        for ((layer_parts, count), stats) in parts.iter_mut().zip(&mut counts).zip(&trace.batch_stats) {
            layer_parts.push((stats.mean.clone(), stats.var.clone()));
            *count += stats.count;
        }
    }
    for (((running_mean, running_var), layer_parts), &count) in
        state.running.iter_mut().zip(&parts).zip(&counts)
    {
        let (mean, var) = batch_norm::combine_parts_cpu(layer_parts);
        batch_norm::update_running_cpu(running_mean, running_var, &mean, &var, count, 0.1);
    }
    for ((w, v), g) in state
        .params
        .iter_mut()
        .zip(&mut state.momentum_buffers)
        .zip(&grads)
    {
        sgd_op::update_cpu(sgd, g, w, v);
    }
    reference::StepResult { loss, correct, grads }
}

#[test]
fn micro_batched_step_matches_cpu_reference() {
    check_micro_batched_step_against_reference(tiny(Variant::Seed50, Stem::ImageNet, true), 4, 2, 40);
    check_micro_batched_step_against_reference(tiny(Variant::ResNet18, Stem::Cifar, false), 6, 2, 41);
}

#[test]
fn predict_matches_reference_inference_for_any_count() {
    use resnet_wgpu::model::reference::{self, ReferenceState};
    let ctx = gpu();
    let model = tiny(Variant::ResNet18, Stem::Cifar, false);
    let values = model.initial_parameters(50);
    let net = Network::new(&ctx, model.clone(), 4, &values, SgdConfig::REFERENCE).unwrap();
    // 7 images: one full chunk of 4, one padded chunk of 3.
    let images = Rng::new(51).uniform_vec(7 * 3 * 32 * 32, 0.0, 1.0);
    let logits = pollster::block_on(net.predict(&ctx, &images)).unwrap();
    let state = ReferenceState::from_params(&model, values.iter().map(|v| to_f64(v)).collect());
    let expected = reference::forward_eval(&model, &state, &to_f64(&images), 7);
    assert_close("inference logits", &logits, &expected, 1e-4, 1e-3);
}

/// Grad-CAM of one image on the GPU (the network's kernels) against the CPU reference's
/// inference tensors, for every class, on two stems (last stages of 16×16 and 2×2 cells).
#[test]
fn grad_cam_matches_the_cpu_reference_for_every_class() {
    use resnet_wgpu::model::reference::{self, ReferenceState};
    use resnet_wgpu::schedule::{CamSource, grad_cam_cpu};
    let ctx = gpu();
    for (model, seed) in [
        (tiny(Variant::ResNet18, Stem::Cifar, false), 60),
        (tiny(Variant::Seed50, Stem::ImageNet, true), 61),
    ] {
        let values = model.initial_parameters(seed);
        let net = Network::new(&ctx, model.clone(), 3, &values, SgdConfig::REFERENCE).unwrap();
        let image = Rng::new(seed + 1).uniform_vec(3 * 32 * 32, 0.0, 1.0);
        let maps = pollster::block_on(net.grad_cam(&ctx, &image))
            .unwrap()
            .expect("a pooled last stage");
        let state = ReferenceState::from_params(&model, values.iter().map(|v| to_f64(v)).collect());
        let trace = reference::forward_eval_trace(&model, &state, &to_f64(&image), 1);
        let source = CamSource::of(&model).unwrap();
        let [_, c, h, w] = model.shapes(1)[source.features];
        assert_eq!((maps.height, maps.width), (h, w));
        let expected = grad_cam_cpu(
            &trace.tensors[source.features],
            &state.params[source.weight],
            model.classes,
            [c, h, w],
        );
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "some class has evidence somewhere");
        assert!(expected.contains(&0.0), "ReLU clips negative evidence");
        assert_close("grad-cam maps", &maps.maps, &expected, 1e-4 * scale, 1e-3);
        assert_close("grad-cam logits", &maps.logits, trace.logits(), 1e-4, 1e-3);
    }
}

#[test]
fn gradient_buffers_are_reused_and_memory_is_reported() {
    use resnet_wgpu::gpu::KernelPolicy;
    use resnet_wgpu::schedule::{DeviceLimits, MemoryReport, Plan};
    // The micro-batch a plan of the model at `batch` within `limits` chooses, every
    // activation kept (tests/recompute.rs covers the choice of mode).
    let choose_micro_batch = |model: &Model, batch, limits, cap| {
        Plan::new(
            model.clone(),
            batch,
            limits,
            cap,
            Some(MemoryMode::Full),
            KernelPolicy::Auto,
        )
        .ok()
        .map(|plan| plan.micro_batch)
    };
    let model = Model::new(Variant::Seed50, Stem::ImageNet);
    let report = MemoryReport::new(&model, 8, 8, MemoryMode::Full);
    assert!(
        report.activation_gradients * 3 < report.activation_gradients_unshared,
        "reuse should cut activation gradients by far more than 3×: {report}"
    );
    // 8 images of the seed network at 224 px: the stem output alone is 8×64×112×112 floats.
    assert_eq!(report.largest_buffer, 8 * 64 * 112 * 112 * 4);
    let text = report.to_string();
    assert!(text.contains("activations") && text.contains("MiB"), "{text}");
    // A 128 MiB binding limit splits the reference batch of 128 into micro-batches.
    let binding = |max_buffer| DeviceLimits {
        max_buffer,
        memory_budget: u64::MAX,
        shader_f16: false,
    };
    let micro = choose_micro_batch(&model, 128, binding(128 << 20), None).unwrap();
    assert!(micro < 128 && 128 % micro == 0, "micro-batch {micro}");
    assert!(MemoryReport::new(&model, 128, micro, MemoryMode::Full).largest_buffer <= 128 << 20);
    assert!(MemoryReport::new(&model, 128, micro * 2, MemoryMode::Full).largest_buffer > 128 << 20);
    assert_eq!(
        choose_micro_batch(&model, 128, binding(1 << 20), None),
        None,
        "one image needs more than 1 MiB"
    );
    // The reference configuration needs more than 5 GiB whole; within a 2 GiB budget (a
    // browser's) and no binding limit, it runs as the largest micro-batches that fit.
    let whole = MemoryReport::new(&model, 128, 128, MemoryMode::Full).total();
    assert!(whole > 5 << 30, "{whole} bytes");
    let budget = DeviceLimits {
        max_buffer: u64::MAX,
        memory_budget: 2 << 30,
        shader_f16: false,
    };
    let micro = choose_micro_batch(&model, 128, budget, None).unwrap();
    assert!(MemoryReport::new(&model, 128, micro, MemoryMode::Full).total() <= 2 << 30);
    let next = (micro + 1..=128).find(|m| 128 % m == 0).unwrap();
    assert!(
        MemoryReport::new(&model, 128, next, MemoryMode::Full).total() > 2 << 30,
        "micro {micro} is the largest that fits"
    );
    // And within 6 GiB (the default on a discrete GPU, so that it starts on an 8 GiB card).
    let gpu = DeviceLimits {
        max_buffer: u64::MAX,
        memory_budget: 6 << 30,
        shader_f16: false,
    };
    let micro = choose_micro_batch(&model, 128, gpu, None).unwrap();
    println!(
        "reference configuration: {:.0} MiB whole, {:.0} MiB as micro-batches of {micro}",
        whole as f64 / 1048576.0,
        MemoryReport::new(&model, 128, micro, MemoryMode::Full).total() as f64 / 1048576.0
    );
    assert!(micro >= 32, "micro-batches of {micro}");
}

/// After a step, the per-layer norms of weights and gradients are those of the buffers the
/// network holds (every parameter in its layer, none lost or counted twice).
#[test]
fn layer_norms_are_those_of_the_weights_and_gradients_of_the_last_step() {
    use resnet_wgpu::schedule::group_by_layer;
    let ctx = gpu();
    let model = tiny(Variant::ResNet18, Stem::Cifar, false);
    let values = model.initial_parameters(80);
    let net = network(
        &ctx,
        model.clone(),
        4,
        2,
        resnet_wgpu::gpu::KernelPolicy::Auto,
        &values,
        SgdConfig::REFERENCE,
    );
    let mut rng = Rng::new(81);
    let images = rng.uniform_vec(4 * 3 * 32 * 32, 0.0, 1.0);
    let labels: Vec<u32> = (0..4).map(|_| rng.below(10) as u32).collect();
    pollster::block_on(net.train_step(&ctx, &images, &labels)).unwrap();
    let norms = pollster::block_on(net.layer_norms(&ctx)).unwrap();
    let square_sum = |b: &resnet_wgpu::gpu::GpuBuffer<f32>| -> f64 {
        b.read_blocking(&ctx)
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
    };
    let names: Vec<String> = model.parameters().into_iter().map(|p| p.name).collect();
    let weights: Vec<f64> = net.buffers.params.iter().map(square_sum).collect();
    let gradients: Vec<f64> = net.buffers.grads.iter().map(square_sum).collect();
    let expected = group_by_layer(&names, &weights, &gradients);
    assert_eq!(norms.len(), expected.len());
    assert_eq!(norms.first().map(|n| n.layer.as_str()), Some("conv1"));
    assert_eq!(norms.last().map(|n| n.layer.as_str()), Some("fc"));
    for (got, want) in norms.iter().zip(&expected) {
        assert_eq!(got.layer, want.layer);
        assert!(want.gradient > 0.0, "{}: a step leaves a gradient", want.layer);
        for (what, g, w) in [
            ("weight", got.weight, want.weight),
            ("gradient", got.gradient, want.gradient),
        ] {
            assert!((g - w).abs() <= 1e-4 * w, "{} {what} norm {g} vs {w}", got.layer);
        }
    }
}

/// Parameters pack into arenas of at most the binding limit, each range starting at a
/// multiple of 256 bytes, none overlapping another, every parameter placed once; the memory
/// report counts the arenas' elements.
#[test]
fn parameters_pack_into_aligned_arenas_within_the_binding_limit() {
    use resnet_wgpu::schedule::ParameterLayout;
    let lens = [64 * 3 * 9, 64, 64, 5, 1, 4096, 70_000, 3, 128 * 64 * 9];
    let max_bytes = 300_000;
    let layout = ParameterLayout::new(&lens, max_bytes);
    assert_eq!(layout.place.len(), lens.len());
    assert!(layout.arena_len.len() > 1, "{layout:?}");
    for (k, &len) in layout.arena_len.iter().enumerate() {
        assert!(len * 4 <= max_bytes as usize, "arena {k} of {len} elements");
        let mut ranges: Vec<(usize, usize)> = (layout.place.iter().zip(&lens))
            .filter(|((arena, _), _)| *arena == k)
            .map(|(&(_, start), &len)| (start, start + len))
            .collect();
        ranges.sort();
        for pair in ranges.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "ranges overlap: {ranges:?}");
        }
        for (start, end) in ranges {
            assert!(
                start % 64 == 0 && end <= len,
                "range {start}..{end} in an arena of {len}"
            );
        }
    }
    let slots: usize = lens.iter().map(|&l| ParameterLayout::slot_len(l)).sum();
    assert_eq!(layout.arena_len.iter().sum::<usize>(), slots);
}
