//! Kernel choice by measurement: every GEMM-shaped launch of a network gets a variant that
//! applies to it; the choices are cached per adapter, so a second plan times nothing; a cache
//! that is damaged or from another adapter is ignored, with a note; a forced policy times
//! nothing and is obeyed; reporting without measuring shows the cache's choices and the
//! defaults elsewhere; both clocks (the GPU's timestamps, the CPU's) keep a variant they timed
//! and leave launches too small to matter at the default; and a network built on measured
//! choices still trains like the CPU reference says (see tests/network.rs for the step itself).

mod common;
use common::*;
use resnet_wgpu::gpu::GpuContext;
use resnet_wgpu::gpu::{KernelPolicy, Variant};
use resnet_wgpu::model::{Model, Stem, Variant as ModelVariant};
use resnet_wgpu::schedule::{
    Clock, KernelCache, MemoryMode, Network, Plan, TuneReport, Tuning, choose_kernels,
};

fn small_model() -> Model {
    let mut config = ModelVariant::ResNet18.config();
    config.widths = vec![8, 16];
    config.blocks = vec![1, 1];
    config.stem_width = 8;
    Model::from_config(ModelVariant::ResNet18, Stem::Cifar, &config, 10)
}

fn cache_in(name: &str) -> (std::path::PathBuf, KernelCache) {
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-kernels-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("kernels.json");
    (file.clone(), KernelCache::File(file))
}

/// Chooses the kernels of the small model's plan at batch 16 under `policy`.
fn choose_on(ctx: &GpuContext, policy: KernelPolicy, cache: &KernelCache, tuning: Tuning) -> TuneReport {
    let mut plan = Plan::new(small_model(), 16, Network::limits(ctx), None, None, policy).expect("a plan");
    let report =
        pollster::block_on(choose_kernels(ctx, &mut plan, cache, tuning, |_, _| {})).expect("kernel choice");
    // The plan holds what was measured for each launch the report says was timed.
    for launch in report.launches.iter().filter(|l| !l.timings.is_empty()) {
        assert_eq!(
            plan.kernels.measured.get(&launch.key),
            Some(&launch.variant),
            "{report}"
        );
    }
    report
}

fn plan(cache: &KernelCache, tuning: Tuning) -> TuneReport {
    let ctx = gpu(); // a fresh device each time: what a second start of the program sees
    choose_on(&ctx, KernelPolicy::Auto, cache, tuning)
}

#[test]
fn a_second_plan_on_the_same_adapter_times_nothing() {
    let (file, cache) = cache_in("second");
    let first = plan(&cache, Tuning::Measure);
    assert!(first.measured > 0, "{first}");
    assert_eq!(first.cached, 0, "{first}");
    assert!(file.is_file(), "the choices were not saved to {}", file.display());
    // Every launch (3 per convolution but the stem's input gradient, 3 for fc) is reported,
    // with a variant among those that apply.
    let convs = small_model()
        .layers
        .iter()
        .filter(|l| matches!(l.op, resnet_wgpu::model::Op::Conv(_)))
        .count();
    assert_eq!(first.launches.len(), 3 * convs - 1 + 3, "{first}");
    let second = plan(&cache, Tuning::Measure);
    assert_eq!(second.measured, 0, "the second plan timed launches: {second}");
    assert_eq!(second.cached, first.measured, "{second}");
    let variants = |r: &TuneReport| {
        r.launches
            .iter()
            .map(|l| (l.key.clone(), l.variant))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        variants(&first),
        variants(&second),
        "the cached choices differ from the measured ones"
    );
    assert!(second.cache_note.is_none(), "{:?}", second.cache_note);
}

#[test]
fn a_damaged_cache_or_one_from_another_adapter_is_ignored_with_a_note() {
    let (file, cache) = cache_in("ignored");
    let first = plan(&cache, Tuning::Measure);
    let good = std::fs::read_to_string(&file).expect("cache written");

    std::fs::write(&file, "{ not json").unwrap();
    let damaged = plan(&cache, Tuning::Measure);
    let note = damaged.cache_note.clone().unwrap_or_default();
    assert!(note.contains("damaged"), "{note}");
    assert_eq!(
        damaged.measured, first.measured,
        "a damaged cache must not be used"
    );

    let mut other: serde_json::Value = serde_json::from_str(&good).unwrap();
    other["adapter"] = "Some Other GPU | Vulkan | driver | 1.0".into();
    std::fs::write(&file, other.to_string()).unwrap();
    let foreign = plan(&cache, Tuning::Measure);
    let note = foreign.cache_note.clone().unwrap_or_default();
    assert!(note.contains("Some Other GPU"), "{note}");
    assert_eq!(
        foreign.measured, first.measured,
        "another adapter's cache must not be used"
    );
}

#[test]
fn a_forced_policy_times_nothing_and_is_obeyed_where_it_applies() {
    let (_, cache) = cache_in("forced");
    let ctx = gpu();
    let report = choose_on(
        &ctx,
        KernelPolicy::Only(Variant::Portable),
        &cache,
        Tuning::Measure,
    );
    assert_eq!(report.measured, 0, "{report}");
    assert!(
        report.launches.iter().all(|l| l.variant == Variant::Portable),
        "{report}"
    );
    assert!(KernelPolicy::parse("tiled") == Ok(KernelPolicy::Only(Variant::Tiled)));
    assert!(
        KernelPolicy::parse("fastest")
            .unwrap_err()
            .contains("auto, portable")
    );
}

/// The identity the cache stores its choices under, as `kernel_cache.rs` writes it: adapter
/// name, backend, driver and driver version.
fn adapter_id(ctx: &resnet_wgpu::gpu::GpuContext) -> String {
    let info = &ctx.adapter_info;
    format!(
        "{} | {:?} | {} | {}",
        info.name, info.backend, info.driver, info.driver_info
    )
}

/// The variant of every launch of a report, by launch shape.
fn variants_by_shape(report: &TuneReport) -> std::collections::BTreeMap<String, Variant> {
    report
        .launches
        .iter()
        .map(|l| (l.key.0.clone(), l.variant))
        .collect()
}

#[test]
fn cache_only_reports_the_cached_choice_where_there_is_one_and_the_default_elsewhere() {
    let (file, cache) = cache_in("cache-only");
    let ctx = gpu();
    let choose = |policy, cache: &KernelCache| choose_on(&ctx, policy, cache, Tuning::CacheOnly);
    // Nothing cached: every launch shows its default.
    let defaults = variants_by_shape(&choose(KernelPolicy::Auto, &KernelCache::None));

    // A shape and a variant that applies to it but is not its default: forcing each variant
    // in turn (nothing is timed) shows where it applies.
    let (shape, cached_variant) = Variant::ALL
        .into_iter()
        .find_map(|v| {
            let forced = variants_by_shape(&choose(KernelPolicy::Only(v), &KernelCache::None));
            forced
                .into_iter()
                .find(|(key, variant)| *variant == v && defaults[key] != v)
        })
        .expect("some launch shape has a variant other than its default");

    // The cache holds that choice for this adapter, in the form `KernelCache` reads.
    let stored = serde_json::json!({
        "adapter": adapter_id(&ctx),
        "choices": { (shape.clone()): cached_variant.name() },
    });
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, stored.to_string()).unwrap();

    let report = choose(KernelPolicy::Auto, &cache);
    assert!(report.cache_note.is_none(), "{:?}", report.cache_note);
    assert_eq!(report.measured, 0, "{report}");
    assert_eq!(
        report.cached, 1,
        "the one cached shape is reported as cached: {report}"
    );
    assert!(
        report.launches.iter().all(|l| l.timings.is_empty()),
        "a launch was timed: {report}"
    );
    let shown = variants_by_shape(&report);
    assert_eq!(shown.len(), defaults.len(), "{report}");
    for (key, variant) in &shown {
        let expected = if *key == shape {
            cached_variant
        } else {
            defaults[key]
        };
        assert_eq!(*variant, expected, "{key}: {report}");
    }
    // Reporting leaves the cache as it was.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stored.to_string());
    std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
}

/// The wide subgroup kernels: a workgroup of a whole number of the adapter's subgroups, at
/// least 16 lanes; timed where the subgroups are wider than 8 lanes, and run when named.
#[test]
fn wide_subgroup_kernels_fill_the_devices_subgroups_and_are_timed_where_they_can_help() {
    use resnet_wgpu::ops::conv2d::{self, Conv2dShape, Direction};
    let ctx = gpu();
    let widest = ctx.adapter_info.subgroup_max_size;
    assert!(
        (16..=64).contains(&ctx.wide_lanes) && ctx.wide_lanes.is_multiple_of(widest.max(1)),
        "{} lanes for subgroups of up to {widest}",
        ctx.wide_lanes
    );
    let shape = Conv2dShape::square(2, 8, 8, 16, 3, 1, 1);
    assert_eq!(
        conv2d::candidates(&ctx, Direction::Forward, &shape).contains(&Variant::SubgroupWide),
        ctx.features.subgroups,
        "the wide kernels run wherever the adapter has subgroups"
    );
    assert_eq!(ctx.wide_worth_timing(), widest > 8);
    let report = choose_on(&ctx, KernelPolicy::Auto, &KernelCache::None, Tuning::Measure);
    let timed_wide = report
        .launches
        .iter()
        .flat_map(|l| &l.timings)
        .any(|(v, _)| *v == Variant::SubgroupWide);
    assert_eq!(
        timed_wide,
        widest > 8,
        "timed only where the subgroups are wider than 8 lanes (here {widest}): {report}"
    );
    let forced = choose_on(
        &ctx,
        KernelPolicy::Only(Variant::SubgroupWide),
        &KernelCache::None,
        Tuning::Measure,
    );
    assert!(
        forced.launches.iter().any(|l| l.variant == Variant::SubgroupWide),
        "named, the wide kernels run: {forced}"
    );
}

/// The launches timed are those the network records: every GEMM-shaped launch of a network
/// built from the plan is a shape the report lists and runs the variant chosen for it, and
/// every shape the report lists is launched (the tuner times no copy of the launch list), with
/// activations stored as f32 and as f16 (whose launches are timed at f16, under keys of their
/// own).
#[test]
fn the_timed_launches_are_the_ones_the_network_records() {
    let ctx = gpu();
    let (_, cache) = cache_in("recorded");
    let mut keys = Vec::new();
    for mode in [MemoryMode::Full, MemoryMode::F16] {
        let mut plan = Plan::new(
            small_model(),
            16,
            Network::limits(&ctx),
            Some(8),
            Some(mode),
            KernelPolicy::Auto,
        )
        .expect("a plan");
        let report = pollster::block_on(choose_kernels(
            &ctx,
            &mut plan,
            &cache,
            Tuning::Measure,
            |_, _| {},
        ))
        .expect("kernel choice");
        assert!(report.measured > 0, "{}: nothing timed: {report}", mode.name());
        let initial = plan.model.initial_parameters(3);
        let net = Network::from_plan(&ctx, plan, &initial, small_config(16, 1).sgd).expect("a network");
        let recorded: std::collections::BTreeSet<_> = net.gemm_launches().into_iter().collect();
        let timed: std::collections::BTreeSet<_> = report
            .launches
            .iter()
            .map(|l| (l.key.clone(), Some(l.variant)))
            .collect();
        assert!(!recorded.is_empty());
        assert_eq!(recorded, timed, "{}: {report}", mode.name());
        assert_no_device_error(&ctx, "the network");
        keys.push(
            timed
                .into_iter()
                .map(|(key, _)| key)
                .collect::<std::collections::BTreeSet<_>>(),
        );
    }
    // The forward and weight-gradient launches bind activations: their f16 keys are others.
    assert!(keys[0] != keys[1] && !keys[1].is_subset(&keys[0]), "{keys:?}");
}

/// A device whose kernel choice times on `clock`: lavapipe has timestamp queries; without them
/// (as the test makes it) a device times on the CPU clock.
fn gpu_on(clock: Clock) -> GpuContext {
    let mut ctx = gpu();
    assert!(
        ctx.features.timestamp_query,
        "lavapipe offers timestamp queries: {}",
        ctx.describe()
    );
    ctx.features.timestamp_query = clock == Clock::GpuTimestamps;
    ctx
}

#[test]
fn both_clocks_keep_a_variant_they_timed_and_leave_tiny_launches_at_the_default() {
    for clock in [Clock::GpuTimestamps, Clock::CpuWall] {
        let ctx = gpu_on(clock);
        let (file, cache) = cache_in(&format!("clock-{}", clock.name().replace(' ', "-")));
        let report = choose_on(&ctx, KernelPolicy::Auto, &cache, Tuning::Measure);
        assert_eq!(report.clock, clock, "{report}");
        assert!(report.measured > 0 && file.is_file(), "{report}");
        for launch in report.launches.iter().filter(|l| !l.timings.is_empty()) {
            assert!(launch.timings.len() >= 2, "one candidate timed: {report}");
            let (_, chosen) = launch
                .timings
                .iter()
                .find(|(v, _)| *v == launch.variant)
                .unwrap_or_else(|| panic!("{}: the chosen variant has no timing: {report}", launch.key));
            assert!(chosen.is_finite() && *chosen >= 0.0, "{report}");
            // Noise aside, nothing timed was faster than the variant kept.
            assert!(
                launch.timings.iter().all(|(_, ms)| 2.0 * ms >= *chosen),
                "{}: a variant timed clearly faster than the one kept: {report}",
                launch.key
            );
        }
        // The linear layer's launches (16 × 10 × 16 multiply-adds) are too small to time.
        let fc: Vec<_> = report.launches.iter().filter(|l| l.layer == "fc").collect();
        assert_eq!(fc.len(), 3, "{report}");
        for launch in fc {
            assert!(launch.timings.is_empty(), "{} was timed: {report}", launch.key);
        }
        assert_no_device_error(&ctx, clock.name());
    }
}

#[test]
fn the_gpu_clock_reads_each_launch_of_one_submission() {
    use resnet_wgpu::ops::matmul::{self, MatmulParams};
    let ctx = gpu();
    let p = MatmulParams::row_major(1, 512, 512, 512);
    let zeros = |len| resnet_wgpu::gpu::GpuBuffer::zeros(&ctx, "timed", len);
    let (a, b, c) = (zeros(512 * 512), zeros(512 * 512), zeros(512 * 512));
    let whole = matmul::launch_with(&ctx, Variant::Portable, &p, &a, &b, None, &c);
    let mut eighth = matmul::launch_with(&ctx, Variant::Portable, &p, &a, &b, None, &c);
    let kept = eighth.shrink(1.0 / 8.0);
    assert!(kept <= 0.125, "{kept}");
    let times = pollster::block_on(resnet_wgpu::gpu::launch_times(
        &ctx,
        &[&whole],
        &[&whole, &eighth, &whole],
    ))
    .expect("read-back")
    .expect("lavapipe offers timestamp queries");
    assert_eq!(times.len(), 3);
    assert_no_device_error(&ctx, "the timed launches");
    // Each timed launch reads its own time: the eighth takes less than either whole launch.
    assert!(times.iter().all(|t| *t > 0.0), "{times:?}");
    assert!(times[1] < times[0] && times[1] < times[2], "{times:?}");
}
