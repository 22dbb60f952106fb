//! Recomputation: a step that keeps only each residual block's input and output, and reruns a
//! block's forward before its backward, leaves exactly the weights, momentum (the gradients
//! plus weight decay, after the first step) and running statistics that keeping every
//! activation does, for each variant and the seed network, whole and in micro-batches. The
//! plan chooses the fastest mode that runs the batch whole, else the largest micro-batch.
//! Activations stored as f16 change a step by little, and recomputation with f16 storage is
//! bit-identical to f16 storage alone.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuContext, KernelPolicy};
use resnet_wgpu::model::{Model, Stem, Variant};
use resnet_wgpu::schedule::{
    DeviceLimits, MemoryMode, MemoryReport, Network, NetworkState, Plan, ScheduleError,
};

fn small(variant: Variant, stem: Stem) -> Model {
    let mut config = variant.config();
    config.widths = vec![8, 16];
    config.blocks = vec![2, 1];
    config.stem_width = 8;
    config.upsample = 32;
    Model::from_config(variant, stem, &config, 10)
}

/// The network's state after two steps in `mode` from the same start and data, and its GEMM
/// launches.
fn two_steps(
    ctx: &GpuContext,
    model: &Model,
    batch: usize,
    micro: usize,
    mode: MemoryMode,
) -> (NetworkState, usize) {
    let plan = Plan::new(
        model.clone(),
        batch,
        Network::limits(ctx),
        Some(micro),
        Some(mode),
        KernelPolicy::Auto,
    )
    .expect("a plan");
    assert_eq!((plan.micro_batch, plan.activations.mode), (micro, mode));
    let initial = model.initial_parameters(5);
    let net = Network::from_plan(ctx, plan, &initial, small_config(batch, 1).sgd).expect("a network");
    let mut rng = Rng::new(9);
    for _ in 0..2 {
        let images = rng.uniform_vec(batch * 3 * 32 * 32, 0.0, 1.0);
        let labels: Vec<u32> = (0..batch as u32).map(|i| (i * 7) % 10).collect();
        let stats = pollster::block_on(net.train_step(ctx, &images, &labels)).expect("a step");
        assert!(stats.non_finite.is_finite());
    }
    assert_no_device_error(ctx, "two steps");
    let state = pollster::block_on(net.read_state(ctx)).expect("the state");
    (state, net.gemm_launches().len())
}

#[test]
fn recomputation_is_bit_identical_to_keeping_every_activation() {
    let ctx = gpu();
    for (variant, stem) in [
        (Variant::ResNet18, Stem::Cifar),
        (Variant::ResNet50, Stem::ImageNet),
        (Variant::Seed50, Stem::Cifar),
    ] {
        let model = small(variant, stem);
        for micro in [8, 4] {
            for (kept, rerun) in [
                (MemoryMode::Full, MemoryMode::Recompute),
                (MemoryMode::F16, MemoryMode::RecomputeF16),
            ] {
                let what = format!("{variant:?} {stem:?}, micro-batches of {micro}, {}", rerun.name());
                let (full, full_gemms) = two_steps(&ctx, &model, 8, micro, kept);
                let (recomputed, recomputed_gemms) = two_steps(&ctx, &model, 8, micro, rerun);
                // The reruns were recorded: more convolutions run forward.
                assert!(recomputed_gemms > full_gemms, "{what}: nothing reran");
                let bits = |v: &[Vec<f32>]| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(
                    bits(&full.params) == bits(&recomputed.params),
                    "{what}: weights differ"
                );
                assert!(
                    bits(&full.momentum) == bits(&recomputed.momentum),
                    "{what}: momentum differs"
                );
                let running = |s: &NetworkState| {
                    s.running
                        .iter()
                        .flat_map(|(m, v)| m.iter().chain(v))
                        .map(|x| x.to_bits())
                        .collect::<Vec<_>>()
                };
                assert!(
                    running(&full) == running(&recomputed),
                    "{what}: running statistics differ"
                );
            }
        }
    }
}

/// Keeping each block's input and output only takes far less memory; the plan keeps every
/// activation where the batch runs whole that way, recomputes where only that runs it whole,
/// and says which and why.
#[test]
fn the_plan_recomputes_only_where_it_runs_a_larger_micro_batch() {
    let model = Model::new(Variant::Seed50, Stem::ImageNet);
    // A device without shader-f16: the f32 modes only.
    let limits = |gib: u64| DeviceLimits {
        max_buffer: 1 << 40,
        memory_budget: gib << 30,
        shader_f16: false,
    };
    let plan =
        |gib, mode| Plan::new(model.clone(), 128, limits(gib), None, mode, KernelPolicy::Auto).unwrap();
    let full = plan(64, Some(MemoryMode::Full));
    let recomputed = plan(64, Some(MemoryMode::Recompute));
    assert!(
        recomputed.memory.activations * 2 < full.memory.activations,
        "{} against {}",
        recomputed.memory,
        full.memory
    );
    // Room for everything: every activation kept.
    let roomy = plan(64, None);
    assert_eq!(
        (roomy.activations.mode, roomy.micro_batch),
        (MemoryMode::Full, 128)
    );
    assert!(
        roomy.mode_note().contains("every activation kept"),
        "{}",
        roomy.mode_note()
    );
    // Within 6 GiB keeping everything splits the batch; recomputing runs more of it at once.
    let tight = plan(6, None);
    let full_tight = plan(6, Some(MemoryMode::Full));
    assert_eq!(tight.activations.mode, MemoryMode::Recompute, "{}", tight.memory);
    assert!(tight.micro_batch > full_tight.micro_batch);
    let note = tight.mode_note();
    assert!(
        note.contains("recompute") && note.contains(&format!("micro-batches of {}", full_tight.micro_batch)),
        "{note}"
    );
    // Asked for, a mode is kept even where the other would run more at once.
    let asked = plan(6, Some(MemoryMode::Full));
    assert!(asked.mode_note().contains("as asked"), "{}", asked.mode_note());
}

/// With shader-f16, the cheapest mode (f16 storage and recomputation) keeps at most 40 MiB of
/// activations per image of the seed network at 224 px, so that the reference batch of 128 runs
/// whole within 6 GiB and as micro-batches of at least 32 within 2 GiB; the plan says why it
/// chose each mode. Without shader-f16 no plan stores f16, a plan chosen says so, and one asked
/// for is refused with what to do.
#[test]
fn the_plan_stores_activations_as_f16_where_the_device_offers_it_and_that_runs_more_at_once() {
    let model = Model::new(Variant::Seed50, Stem::ImageNet);
    let limits = |gib: u64, shader_f16| DeviceLimits {
        max_buffer: 1 << 40,
        memory_budget: gib << 30,
        shader_f16,
    };
    let plan = |gib, f16, mode| {
        Plan::new(
            model.clone(),
            128,
            limits(gib, f16),
            None,
            mode,
            KernelPolicy::Auto,
        )
    };
    let per_image = |mode| MemoryReport::new(&model, 128, 1, mode).activations as f64 / (1 << 20) as f64;
    let cheapest = per_image(MemoryMode::RecomputeF16);
    assert!(cheapest <= 40.0, "{cheapest:.1} MiB of activations per image");
    assert!(
        (per_image(MemoryMode::F16) * 2.0 - per_image(MemoryMode::Full)).abs() < 0.01,
        "f16 halves every activation"
    );

    let whole = plan(6, true, None).unwrap();
    assert_eq!(
        (whole.activations.mode, whole.micro_batch),
        (MemoryMode::RecomputeF16, 128),
        "{}",
        whole.memory
    );
    let note = whole.mode_note();
    assert!(
        note.contains("recompute-f16") && note.contains("full or f16 or recompute"),
        "{note}"
    );
    // Within a browser's 2 GiB: micro-batches of at least 32 in the cheapest mode, and no mode
    // runs larger ones (the faster of those that tie).
    let browser = plan(2, true, None).unwrap();
    let cheapest = plan(2, true, Some(MemoryMode::RecomputeF16)).unwrap();
    assert!(
        cheapest.micro_batch >= 32,
        "micro-batches of {}",
        cheapest.micro_batch
    );
    assert_eq!(
        browser.micro_batch,
        cheapest.micro_batch,
        "{}",
        browser.mode_note()
    );
    // Room for f16 storage alone: no recomputation.
    let roomier = plan(10, true, None).unwrap();
    assert_eq!(
        (roomier.activations.mode, roomier.micro_batch),
        (MemoryMode::F16, 128),
        "{}",
        roomier.memory
    );

    let without = plan(6, false, None).unwrap();
    assert_eq!(without.activations.mode, MemoryMode::Recompute);
    assert!(without.micro_batch < 128);
    assert!(
        without.mode_note().contains("does not offer shader-f16"),
        "{}",
        without.mode_note()
    );
    for mode in [MemoryMode::F16, MemoryMode::RecomputeF16] {
        match plan(6, false, Some(mode)) {
            Err(e @ ScheduleError::NoF16 { .. }) => {
                assert!(e.to_string().contains("choose full or recompute"), "{e}")
            }
            other => panic!(
                "{} without shader-f16: {:?}",
                mode.name(),
                other.map(|p| p.memory)
            ),
        }
    }
}

/// One step with activations stored as f16 against the CPU reference run on the tensors the
/// device stores (the input and each layer's output rounded to f16), on the seed network, a
/// torchvision ResNet-50 and a ResNet-18.
///
/// The device computes in f32 where the reference computes in f64, so a value that lies next
/// to a rounding boundary of f16 may round the other way: the first layer's output matches to
/// one f16 unit in the last place, the rest by far more closely than f32 storage would (such
/// a flip is a perturbation of the same size as f16's own rounding, which batch norms amplify
/// layer after layer in these small networks at initialization). A tensor wired at the wrong
/// precision or read as the wrong type would be off entirely.
#[test]
fn an_f16_step_matches_the_reference_with_its_stored_tensors_rounded_to_f16() {
    use resnet_wgpu::model::reference;
    use resnet_wgpu::shaders::Precision;
    let ctx = gpu();
    assert!(
        ctx.features.shader_f16,
        "this adapter offers no shader-f16 to test f16 storage on"
    );
    for (variant, seed) in [
        (Variant::Seed50, 30u64),
        (Variant::ResNet50, 31),
        (Variant::ResNet18, 32),
    ] {
        let model = small(variant, Stem::Cifar);
        let batch = 4;
        let values = model.initial_parameters(seed);
        let mut rng = Rng::new(seed + 1);
        let images = rng.uniform_vec(batch * 3 * 32 * 32, 0.0, 1.0);
        let labels: Vec<u32> = (0..batch).map(|_| rng.below(10) as u32).collect();
        let widened: Vec<Vec<f64>> = values.iter().map(|v| to_f64(v)).collect();
        let at = |precision| {
            reference::gradients_stored(&model, &widened, &to_f64(&images), &labels, batch, precision)
        };
        let (expected, unrounded) = (at(Precision::F16), at(Precision::F32));
        let plan = Plan::new(
            model.clone(),
            batch,
            Network::limits(&ctx),
            None,
            Some(MemoryMode::F16),
            KernelPolicy::Auto,
        )
        .expect("a plan");
        let net = Network::from_plan(&ctx, plan, &values, small_config(batch, 1).sgd).expect("a network");
        let stats = pollster::block_on(net.train_step(&ctx, &images, &labels)).expect("a step");
        assert_no_device_error(&ctx, "an f16 step");
        let what = format!("{variant:?} with f16 activations");
        assert!(
            (stats.loss as f64 - expected.loss).abs() < 1e-3,
            "{what}: loss {} vs {}",
            stats.loss,
            expected.loss
        );

        // The first layer's output: a few values one f16 step away, the rest equal.
        let trace =
            reference::forward_train_stored(&model, &widened, &to_f64(&images), batch, Precision::F16);
        let first = net.buffers.activations[1].read_blocking(&ctx);
        let mut flipped = 0;
        for (&g, &r) in first.iter().zip(&trace.tensors[1]) {
            if g as f64 != r {
                flipped += 1;
                // One f16 step (2⁻¹⁰ of the value) and the f32 arithmetic's error of a sum of
                // 27 terms of order 1, which dominates near zero.
                let step = r.abs().max(g.abs() as f64) / 1024.0 + 1e-6;
                assert!((g as f64 - r).abs() <= step, "{what}: first layer {g} vs {r}");
            }
        }
        assert!(
            flipped * 100 < first.len(),
            "{what}: {flipped} of {} first-layer values differ",
            first.len()
        );

        // The gradients: each near the rounded reference's, and together far nearer to it than
        // to f32 storage's.
        let norm = |a: &[f64]| a.iter().map(|v| v * v).sum::<f64>().sqrt();
        let distance = |a: &[f64], b: &[f64]| norm(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>());
        let largest = expected.params.iter().map(|e| norm(e)).fold(0.0, f64::max);
        let (mut off_reference, mut off_f32) = (0.0, 0.0);
        for (i, spec) in model.parameters().iter().enumerate() {
            let grad = to_f64(&net.buffers.grads[i].read_blocking(&ctx));
            let (e, u) = (&expected.params[i], &unrounded.params[i]);
            let off = distance(&grad, e);
            // Convolution biases under a batch norm have no gradient (the norm removes any shift):
            // both sides are rounding noise there.
            if norm(e) > 1e-6 * largest {
                assert!(
                    off <= 0.25 * norm(e),
                    "{what}: grad {} off by {:.3} of its norm",
                    spec.name,
                    off / norm(e)
                );
            }
            off_reference += off * off;
            off_f32 += distance(e, u).powi(2);
        }
        println!(
            "{what}: gradients {:.4} from the rounded reference's, which are {:.4} from f32 storage's",
            off_reference.sqrt(),
            off_f32.sqrt()
        );
        assert!(
            off_reference < 0.25 * off_f32,
            "{what}: no nearer the f16 reference than f32 storage is"
        );
    }
}

/// With activations stored as f16, inference (the logits of any number of images) and Grad-CAM
/// run on the f16 buffers and agree with f32 storage's within f16's rounding.
#[test]
fn inference_and_grad_cam_run_on_f16_activations() {
    let ctx = gpu();
    assert!(
        ctx.features.shader_f16,
        "this adapter offers no shader-f16 to test f16 storage on"
    );
    let model = small(Variant::ResNet18, Stem::Cifar);
    let values = model.initial_parameters(60);
    let images = Rng::new(61).uniform_vec(7 * 3 * 32 * 32, 0.0, 1.0);
    let run = |mode| {
        let plan = Plan::new(
            model.clone(),
            4,
            Network::limits(&ctx),
            None,
            Some(mode),
            KernelPolicy::Auto,
        )
        .expect("a plan");
        let net = Network::from_plan(&ctx, plan, &values, small_config(4, 1).sgd).expect("a network");
        let logits = pollster::block_on(net.predict(&ctx, &images)).expect("logits");
        let cam = pollster::block_on(net.grad_cam(&ctx, &images[..3 * 32 * 32]))
            .expect("grad-cam")
            .expect("a pooled last stage");
        assert_no_device_error(&ctx, mode.name());
        (logits, cam)
    };
    let (logits32, cam32) = run(MemoryMode::Full);
    let (logits16, cam16) = run(MemoryMode::F16);
    assert_eq!(logits16.len(), 7 * 10);
    assert_close("logits", &logits16, &to_f64(&logits32), 2e-3, 1e-2);
    assert!(
        logits16 != logits32,
        "the f16 network computed exactly what f32's did"
    );
    let scale = cam32.maps.iter().fold(0.0f32, |m, &v| m.max(v)) as f64;
    assert_close(
        "grad-cam maps",
        &cam16.maps,
        &to_f64(&cam32.maps),
        1e-2 * scale,
        1e-2,
    );
}
