//! Models as data and the f64 CPU reference executor (no GPU): parameter counts and names
//! against torchvision / the seed network, tensor shapes, the reference backward against
//! central finite differences, the SGD and running-statistic updates, and inference with the
//! running statistics.

use resnet_wgpu::model::reference::{self, BN_MOMENTUM, ReferenceState};
use resnet_wgpu::model::{GammaInit, Init, Model, Op, ResNetConfig, Stem, Variant};
use resnet_wgpu::ops::sgd::SgdConfig;
use resnet_wgpu::rng::Rng;

fn count(model: &Model) -> usize {
    model.parameters().iter().map(|p| p.len()).sum()
}

fn names(model: &Model) -> Vec<String> {
    model.parameters().into_iter().map(|p| p.name).collect()
}

/// torchvision's count with 1000 classes, less the fc rows of classes 10..1000.
fn with_10_classes(imagenet_count: usize, features: usize) -> usize {
    imagenet_count - features * 990 - 990
}

#[test]
fn parameter_counts_match_torchvision() {
    let expected = [
        (Variant::ResNet18, 11_181_642),
        (Variant::ResNet34, 21_289_802),
        (Variant::ResNet50, 23_528_522),
        (Variant::ResNet101, with_10_classes(44_549_160, 2048)),
        (Variant::ResNet152, with_10_classes(60_192_808, 2048)),
    ];
    assert_eq!(with_10_classes(25_557_032, 2048), 23_528_522);
    assert_eq!(with_10_classes(11_689_512, 512), 11_181_642);
    for (variant, n) in expected {
        assert_eq!(count(&Model::new(variant, Stem::ImageNet)), n, "{variant:?}");
        // The CIFAR stem swaps the 7×7 conv1 (64·3·49) for a 3×3 one (64·3·9).
        assert_eq!(
            count(&Model::new(variant, Stem::Cifar)),
            n - 64 * 3 * 49 + 64 * 3 * 9,
            "{variant:?}"
        );
    }
}

#[test]
fn parameter_names_match_the_state_dicts() {
    let resnet50 = names(&Model::new(Variant::ResNet50, Stem::ImageNet));
    assert_eq!(
        &resnet50[..8],
        [
            "conv1.weight",
            "bn1.weight",
            "bn1.bias",
            "layer1.0.conv1.weight",
            "layer1.0.bn1.weight",
            "layer1.0.bn1.bias",
            "layer1.0.conv2.weight",
            "layer1.0.bn2.weight",
        ]
    );
    for name in [
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.bias",
        "layer2.0.downsample.0.weight",
        "layer3.5.conv3.weight",
        "layer4.2.bn3.weight",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(resnet50.iter().any(|n| n == name), "resnet50 lacks {name}");
    }
    for name in [
        "conv1.bias",
        "layer1.0.conv1.bias",
        "layer1.1.downsample.0.weight",
        "layer3.6.conv1.weight",
    ] {
        assert!(!resnet50.iter().any(|n| n == name), "resnet50 has {name}");
    }
    assert_eq!(&resnet50[resnet50.len() - 2..], ["fc.weight", "fc.bias"]);
    // Every name is unique.
    let mut sorted = resnet50.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), resnet50.len());

    let resnet18 = names(&Model::new(Variant::ResNet18, Stem::Cifar));
    assert!(resnet18.iter().any(|n| n == "layer2.0.downsample.1.weight"));
    assert!(!resnet18.iter().any(|n| n.starts_with("layer1.0.downsample")));
    assert!(!resnet18.iter().any(|n| n.contains("conv3")));

    let seed = names(&Model::new(Variant::Seed50, Stem::ImageNet));
    assert_eq!(
        &seed[..4],
        ["layer_1.weight", "layer_1.bias", "bn_1.weight", "bn_1.bias"]
    );
    for name in [
        "resblock1.conv1.weight",
        "resblock1.conv1.bias",
        "resblock1.shortcut.weight",
        "resblock1.shortcut.bias",
        "resblock4.shortcut.weight",
        "resblock16.bn3.bias",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(seed.iter().any(|n| n == name), "seed50 lacks {name}");
    }
    assert!(!seed.iter().any(|n| n.starts_with("resblock2.shortcut")));
    assert!(!seed.iter().any(|n| n.starts_with("resblock17.")));
    assert!(!seed.iter().any(|n| n.contains("downsample")));
}

#[test]
fn shapes_through_both_stems() {
    let batch = 3;
    for variant in Variant::ALL {
        for stem in [Stem::ImageNet, Stem::Cifar] {
            let model = Model::new(variant, stem);
            let shapes = model.shapes(batch);
            assert_eq!(shapes.len(), model.layers.len() + 1);
            assert_eq!(shapes[0], [batch, 3, 32, 32]);
            assert_eq!(shapes[model.output()], [batch, 10, 1, 1], "{variant:?} {stem:?}");
            let after = |pred: &dyn Fn(&Op) -> bool| {
                let i = model
                    .layers
                    .iter()
                    .position(|l| pred(&l.op))
                    .expect("layer present");
                (shapes[model.layers[i].inputs[0]], shapes[i + 1])
            };
            let (pool_in, _) = after(&|op| *op == Op::GlobalAvgPool);
            let features = if matches!(variant, Variant::ResNet18 | Variant::ResNet34) {
                512
            } else {
                2048
            };
            match stem {
                Stem::ImageNet => {
                    assert_eq!(after(&|op| matches!(op, Op::Upsample(_))).1, [batch, 3, 224, 224]);
                    assert_eq!(after(&|op| matches!(op, Op::Conv(_))).1, [batch, 64, 112, 112]);
                    assert_eq!(after(&|op| matches!(op, Op::MaxPool(_))).1, [batch, 64, 56, 56]);
                    assert_eq!(pool_in, [batch, features, 7, 7], "{variant:?}");
                }
                Stem::Cifar => {
                    assert!(
                        !model
                            .layers
                            .iter()
                            .any(|l| matches!(l.op, Op::Upsample(_) | Op::MaxPool(_)))
                    );
                    assert_eq!(after(&|op| matches!(op, Op::Conv(_))).1, [batch, 64, 32, 32]);
                    assert_eq!(pool_in, [batch, features, 4, 4], "{variant:?}");
                }
            }
        }
    }
}

/// The tiny networks of the gradient checks: every layer kind, both stems, both block types,
/// identity shortcuts, seed projection shortcuts (conv with bias) and torchvision downsample
/// (conv + BN).
fn tiny_models() -> Vec<(Model, usize)> {
    let bottleneck = ResNetConfig {
        bottleneck: true,
        blocks: vec![2, 1],
        widths: vec![2, 3],
        stem_width: 4,
        upsample: 16,
    };
    let basic = ResNetConfig {
        bottleneck: false,
        blocks: vec![2, 1],
        widths: vec![3, 4],
        stem_width: 3,
        upsample: 16,
    };
    vec![
        (
            Model::from_config(Variant::Seed50, Stem::ImageNet, &bottleneck, 5),
            3,
        ),
        (Model::from_config(Variant::ResNet18, Stem::Cifar, &basic, 4), 2),
        (
            Model::from_config(Variant::ResNet50, Stem::ImageNet, &bottleneck, 5),
            3,
        ),
    ]
}

/// Random parameters: the model's init for weights, γ ∈ [0.5, 1.5), β and biases ∈ [−0.5, 0.5)
/// (non-trivial values everywhere, unlike the ones/zeros init).
fn random_params(model: &Model, rng: &mut Rng) -> Vec<Vec<f64>> {
    model
        .parameters()
        .iter()
        .map(|spec| match spec.init {
            Init::Gamma(_) => (0..spec.len()).map(|_| rng.uniform(0.5, 1.5)).collect(),
            _ if spec.shape.len() == 1 => (0..spec.len()).map(|_| rng.uniform(-0.5, 0.5)).collect(),
            _ => spec.initial_values(rng).into_iter().map(f64::from).collect(),
        })
        .collect()
}

fn random_batch(model: &Model, batch: usize, rng: &mut Rng) -> (Vec<f64>, Vec<u32>) {
    let images = (0..batch * 3 * 32 * 32).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let labels = (0..batch).map(|_| rng.below(model.classes) as u32).collect();
    (images, labels)
}

/// `|fd − analytic| ≤ 1e-6` or relative error ≤ 1e-4.
fn close(fd: f64, analytic: f64) -> bool {
    let diff = (fd - analytic).abs();
    diff <= 1e-6 || diff <= 1e-4 * fd.abs().max(analytic.abs())
}

const H: f64 = 1e-6;

#[test]
fn reference_backward_matches_finite_differences() {
    for (m, (model, batch)) in tiny_models().into_iter().enumerate() {
        let mut rng = Rng::new(100 + m as u64);
        let params = random_params(&model, &mut rng);
        let (images, labels) = random_batch(&model, batch, &mut rng);
        let g = reference::gradients(&model, &params, &images, &labels, batch);
        let (loss, grads) = reference::loss_and_grads(&model, &params, &images, &labels, batch);
        assert_eq!((loss, &grads), (g.loss, &g.params));
        assert_eq!(loss, reference::loss(&model, &params, &images, &labels, batch));
        assert!(loss.is_finite() && loss > 0.0);

        let specs = model.parameters();
        let mut failures = Vec::new();
        let (mut checked, mut significant) = (0, 0);
        let mut check = |what: String, fd: f64, analytic: f64| {
            checked += 1;
            if analytic.abs() > 1e-4 {
                significant += 1;
            }
            if !close(fd, analytic) {
                failures.push(format!("{what}: finite difference {fd:e}, backward {analytic:e}"));
            }
        };
        // Two different elements of every parameter tensor (all have at least two).
        for (p, spec) in specs.iter().enumerate() {
            let first = rng.below(spec.len());
            let second = (first + 1 + rng.below(spec.len() - 1)) % spec.len();
            for j in [first, second] {
                let mut shifted = params.clone();
                shifted[p][j] = params[p][j] + H;
                let plus = reference::loss(&model, &shifted, &images, &labels, batch);
                shifted[p][j] = params[p][j] - H;
                let minus = reference::loss(&model, &shifted, &images, &labels, batch);
                check(
                    format!("{}[{j}]", spec.name),
                    (plus - minus) / (2.0 * H),
                    g.params[p][j],
                );
            }
        }
        // Input pixels: the ImageNet stem samples every second pixel (32 → 16), so half the
        // picks land on sampled pixels and the other half anywhere (often a zero gradient).
        for k in 0..8 {
            let (c, mut y, mut x) = (rng.below(3), rng.below(32), rng.below(32));
            if k % 2 == 0 {
                (y, x) = (y & !1, x & !1);
            }
            let i = ((rng.below(batch) * 3 + c) * 32 + y) * 32 + x;
            let mut shifted = images.clone();
            shifted[i] = images[i] + H;
            let plus = reference::loss(&model, &params, &shifted, &labels, batch);
            shifted[i] = images[i] - H;
            let minus = reference::loss(&model, &params, &shifted, &labels, batch);
            check(format!("input[{i}]"), (plus - minus) / (2.0 * H), g.input[i]);
        }
        assert!(
            failures.is_empty(),
            "{:?} {:?}:\n{}",
            model.variant,
            model.stem,
            failures.join("\n")
        );
        // Most checks must be of a gradient clearly above the absolute tolerance.
        assert!(
            significant * 2 > checked,
            "{:?}: only {significant} of {checked} gradients are significant",
            model.variant
        );
    }
}

#[test]
fn sgd_and_running_statistics_after_train_steps() {
    let (model, batch) = tiny_models().swap_remove(0);
    let mut rng = Rng::new(7);
    let params = random_params(&model, &mut rng);
    let (images, labels) = random_batch(&model, batch, &mut rng);
    let sgd = SgdConfig {
        lr: 0.1,
        momentum: 0.9,
        weight_decay: 1e-2,
    };
    let (lr, mu, wd) = (sgd.lr as f64, sgd.momentum as f64, sgd.weight_decay as f64);
    let mut state = ReferenceState::from_params(&model, params.clone());
    assert!(
        state
            .running
            .iter()
            .all(|(m, v)| m.iter().all(|&m| m == 0.0) && v.iter().all(|&v| v == 1.0))
    );

    // First step: v = g + wd·w, w' = w − lr·v.
    let trace = reference::forward_train(&model, &params, &images, batch);
    let (loss, grads) = reference::loss_and_grads(&model, &params, &images, &labels, batch);
    let step = reference::train_step(&model, &mut state, &images, &labels, batch, sgd);
    assert_eq!(
        (step.loss, &step.grads),
        (loss, &grads),
        "grads are from before the update"
    );
    assert!(step.correct >= 0.0 && step.correct <= batch as f64);
    for (p, spec) in model.parameters().iter().enumerate() {
        for j in 0..spec.len() {
            let g = grads[p][j] + wd * params[p][j];
            let expected = params[p][j] - lr * g;
            assert!(
                (state.params[p][j] - expected).abs() <= 1e-12,
                "{}[{j}]",
                spec.name
            );
            assert!(
                (state.momentum_buffers[p][j] - g).abs() <= 1e-12,
                "{}[{j}]",
                spec.name
            );
        }
    }
    // Running statistics: r ← 0.9·r + 0.1·stat, the variance unbiased.
    assert_eq!(state.running.len(), trace.batch_stats.len());
    for ((mean, var), stats) in state.running.iter().zip(&trace.batch_stats) {
        let m = stats.count as f64;
        for c in 0..mean.len() {
            assert!((mean[c] - BN_MOMENTUM * stats.mean[c]).abs() <= 1e-12);
            let unbiased = stats.var[c] * m / (m - 1.0);
            assert!((var[c] - ((1.0 - BN_MOMENTUM) + BN_MOMENTUM * unbiased)).abs() <= 1e-12);
        }
    }

    // Second step: v' = μ·v + g' + wd·w', w'' = w' − lr·v'.
    let (w1, v1) = (state.params.clone(), state.momentum_buffers.clone());
    let (_, grads1) = reference::loss_and_grads(&model, &w1, &images, &labels, batch);
    let step = reference::train_step(&model, &mut state, &images, &labels, batch, sgd);
    assert_eq!(step.grads, grads1);
    for p in 0..w1.len() {
        for j in 0..w1[p].len() {
            let v = mu * v1[p][j] + grads1[p][j] + wd * w1[p][j];
            assert!((state.momentum_buffers[p][j] - v).abs() <= 1e-12);
            assert!((state.params[p][j] - (w1[p][j] - lr * v)).abs() <= 1e-12);
        }
    }
    // Two steps of plain gradient descent on one batch lower its loss.
    assert!(reference::loss(&model, &state.params, &images, &labels, batch) < loss);
}

#[test]
fn inference_with_the_batch_statistics_reproduces_training_logits() {
    for (model, batch) in tiny_models() {
        let mut rng = Rng::new(11);
        let mut state = ReferenceState::initial(&model, &mut rng);
        state.params = random_params(&model, &mut rng);
        let (images, _) = random_batch(&model, batch, &mut rng);
        let trace = reference::forward_train(&model, &state.params, &images, batch);
        // Inference normalises with (x − r_mean)/sqrt(r_var + eps): with the running statistics
        // set to the batch's biased ones, it is the training forward.
        state.running = trace
            .batch_stats
            .iter()
            .map(|s| (s.mean.clone(), s.var.clone()))
            .collect();
        let logits = reference::forward_eval(&model, &state, &images, batch);
        assert_eq!(logits.len(), batch * model.classes);
        for (a, b) in logits.iter().zip(trace.logits()) {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} vs {b}");
        }
        // With fresh statistics (mean 0, variance 1) the logits differ.
        let fresh = ReferenceState::from_params(&model, state.params.clone());
        let logits = reference::forward_eval(&model, &fresh, &images, batch);
        assert!(
            logits
                .iter()
                .zip(trace.logits())
                .any(|(a, b)| (a - b).abs() > 1e-6)
        );
    }
}

/// Custom widths on the seed variant keep every residual add's two inputs the same shape: a
/// stage that keeps its width across a stride gets a projection shortcut too. And sizes read
/// from a file or typed are checked before anything is built.
#[test]
fn custom_seed_widths_build_consistent_shapes_and_absurd_sizes_are_refused() {
    let mut config = Variant::Seed50.config();
    config.widths = vec![16, 16];
    config.blocks = vec![1, 1];
    config.stem_width = 16;
    let model = Model::from_config(Variant::Seed50, Stem::Cifar, &config, 10);
    let shapes = model.shapes(2);
    for (i, layer) in model.layers.iter().enumerate() {
        if matches!(layer.op, Op::Add) {
            assert_eq!(
                shapes[layer.inputs[0]], shapes[layer.inputs[1]],
                "add at layer {i}"
            );
        }
    }
    assert!(config.validate(10).is_ok());
    for (what, bad) in [
        (
            "blocks",
            ResNetConfig {
                blocks: vec![10_000_000_000, 4, 6, 3],
                ..Variant::Seed50.config()
            },
        ),
        (
            "widths",
            ResNetConfig {
                widths: vec![64, 0, 256, 512],
                ..Variant::Seed50.config()
            },
        ),
        (
            "upsample",
            ResNetConfig {
                upsample: 100_000,
                ..Variant::Seed50.config()
            },
        ),
        (
            "stages",
            ResNetConfig {
                blocks: vec![],
                widths: vec![],
                ..Variant::Seed50.config()
            },
        ),
    ] {
        let message = bad.validate(10).expect_err(what);
        assert!(!message.is_empty(), "{what}");
    }
    assert!(Variant::Seed50.config().validate(0).is_err(), "0 classes");
}

/// The layer slots that the scheduler and the reference index by name the parameters that
/// [`Model::parameters`] lists at those indices, and number every batch norm and max pool.
#[test]
fn layer_slots_point_at_each_layers_own_parameters() {
    for variant in [Variant::ResNet18, Variant::ResNet50, Variant::Seed50] {
        for stem in [Stem::Cifar, Stem::ImageNet] {
            let model = Model::new(variant, stem);
            let params = model.parameters();
            let slots = model.layer_slots();
            assert_eq!(slots.len(), model.layers.len());
            let (mut used, mut batch_norms, mut pools) = (0, 0, 0);
            for (layer, slot) in model.layers.iter().zip(&slots) {
                let name = match layer.op.name() {
                    Some(name) => name,
                    None => {
                        assert_eq!((slot.weight, slot.bias), (None, None));
                        if matches!(layer.op, Op::MaxPool(_)) {
                            assert_eq!(slot.max_pool, Some(pools));
                            pools += 1;
                        }
                        continue;
                    }
                };
                let weight = slot.weight.expect("a weight");
                assert_eq!(params[weight].name, format!("{name}.weight"));
                used += 1;
                if let Some(bias) = slot.bias {
                    assert_eq!(params[bias].name, format!("{name}.bias"));
                    used += 1;
                }
                if matches!(layer.op, Op::BatchNorm(_) | Op::BatchNormAddRelu(_)) {
                    assert_eq!(slot.batch_norm, Some(batch_norms));
                    batch_norms += 1;
                }
            }
            assert_eq!(used, params.len(), "every parameter has a layer");
            assert_eq!(batch_norms, model.batch_norms().len());
        }
    }
}

/// Batch norm's γ starts as each variant's source did: U[0, 1) in the seed network (PyTorch
/// 1.1), ones in torchvision's; either can be asked for.
#[test]
fn batch_norm_gamma_starts_as_the_variant_asks_or_as_chosen() {
    let gammas = |model: &Model, values: &[Vec<f32>]| -> Vec<f32> {
        model
            .parameters()
            .iter()
            .zip(values)
            .filter(|(spec, _)| matches!(spec.init, Init::Gamma(_)))
            .flat_map(|(_, v)| v.clone())
            .collect()
    };
    for (variant, default) in [
        (Variant::Seed50, GammaInit::Uniform),
        (Variant::ResNet18, GammaInit::Ones),
        (Variant::ResNet50, GammaInit::Ones),
    ] {
        assert_eq!(variant.default_gamma(), default, "{variant:?}");
        let model = Model::new(variant, Stem::Cifar);
        let by_default = model.initial_parameters(3);
        let uniform = model.initial_parameters_with(3, GammaInit::Uniform);
        let ones = model.initial_parameters_with(3, GammaInit::Ones);
        assert_eq!(
            by_default,
            if default == GammaInit::Ones {
                ones.clone()
            } else {
                uniform.clone()
            }
        );

        let g = gammas(&model, &uniform);
        assert!(g.iter().all(|v| (0.0..1.0).contains(v)), "{variant:?}: U[0, 1)");
        let mean = g.iter().sum::<f32>() / g.len() as f32;
        assert!(
            (mean - 0.5).abs() < 0.02,
            "{variant:?}: mean of {} draws {mean}",
            g.len()
        );
        assert!(
            gammas(&model, &ones).iter().all(|&v| v == 1.0),
            "{variant:?}: ones"
        );
    }
}
