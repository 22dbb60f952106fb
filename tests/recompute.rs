//! Recomputation: a step that keeps only each residual block's input and output, and reruns a
//! block's forward before its backward, leaves exactly the weights, momentum (the gradients
//! plus weight decay, after the first step) and running statistics that keeping every
//! activation does, for each variant and the seed network, whole and in micro-batches. The
//! plan chooses the fastest mode that runs the batch whole, else the largest micro-batch.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuContext, KernelPolicy};
use resnet_wgpu::model::{Model, Stem, Variant};
use resnet_wgpu::schedule::{DeviceLimits, MemoryMode, Network, NetworkState, Plan};

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
            let what = format!("{variant:?} {stem:?}, micro-batches of {micro}");
            let (full, full_gemms) = two_steps(&ctx, &model, 8, micro, MemoryMode::Full);
            let (recomputed, recomputed_gemms) = two_steps(&ctx, &model, 8, micro, MemoryMode::Recompute);
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

/// Keeping each block's input and output only takes far less memory; the plan keeps every
/// activation where the batch runs whole that way, recomputes where only that runs it whole,
/// and says which and why.
#[test]
fn the_plan_recomputes_only_where_it_runs_a_larger_micro_batch() {
    let model = Model::new(Variant::Seed50, Stem::ImageNet);
    let limits = |gib: u64| DeviceLimits {
        max_buffer: 1 << 40,
        memory_budget: gib << 30,
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
