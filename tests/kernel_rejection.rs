//! Kernel timing inside error scopes: a variant the device rejects while it is timed is
//! dropped, never chosen and never cached, and the device's error does not leak out of the
//! timing; a cached choice that the device later rejects is timed anew. Both on the GPU's
//! clock (lavapipe has timestamp queries) and on the CPU's (a device without them).

mod common;
use common::*;
use resnet_wgpu::gpu::{Fault, GpuContext, KernelPolicy, Variant};
use resnet_wgpu::model::Model;
use resnet_wgpu::schedule::{Clock, KernelCache, Network, Plan, TuneReport, Tuning, choose_kernels};

fn small_model() -> Model {
    small_spec(&[8, 16], &[1, 1]).build()
}

/// A kernel cache of this test alone.
fn cache_in(name: &str) -> (std::path::PathBuf, KernelCache) {
    let file = kernel_cache_dir().join(format!("rejection-{name}.json"));
    let _ = std::fs::remove_file(&file);
    (file.clone(), KernelCache::File(file))
}

fn plan(ctx: &GpuContext, cache: &KernelCache) -> TuneReport {
    let mut plan = Plan::new(
        small_model(),
        16,
        Network::limits(ctx),
        None,
        None,
        KernelPolicy::Auto,
    )
    .expect("a plan");
    let report = pollster::block_on(choose_kernels(ctx, &mut plan, cache, Tuning::Measure, |_, _| {}))
        .expect("kernel choice");
    assert_eq!(
        ctx.take_error(),
        None,
        "a rejected candidate's error leaked out of the timing"
    );
    report
}

/// The cache's entries as (key, variant name) pairs.
fn cached_choices(file: &std::path::Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).expect("the cache was written");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        serde_json::Value::String(s) if k.contains(' ') => out.push((k.clone(), s.clone())),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&json, &mut out);
    out
}

/// A device whose kernel choice times on `clock` (see tests/kernel_choice.rs).
fn gpu_on(clock: Clock) -> GpuContext {
    let mut ctx = gpu();
    assert!(ctx.features.timestamp_query, "lavapipe offers timestamp queries");
    ctx.features.timestamp_query = clock == Clock::GpuTimestamps;
    ctx
}

#[test]
fn a_candidate_the_device_rejects_is_dropped_and_never_cached() {
    for clock in [Clock::GpuTimestamps, Clock::CpuWall] {
        dropped_and_never_cached(clock);
    }
}

fn dropped_and_never_cached(clock: Clock) {
    let ctx = gpu_on(clock);
    assert!(
        ctx.features.subgroups,
        "lavapipe offers subgroups: {}",
        ctx.describe()
    );
    let (file, cache) = cache_in(&format!("dropped-{}", clock.name().replace(' ', "-")));
    // The first launch shape that times the subgroup variant sees it rejected.
    ctx.arm_fault(Fault::Candidate(Variant::Subgroup));
    let report = plan(&ctx, &cache);
    assert_eq!(report.clock, clock, "{report}");
    let first = report
        .launches
        .iter()
        .find(|l| !l.timings.is_empty())
        .expect("a launch shape was timed");
    assert!(
        first.timings.iter().all(|(v, _)| *v != Variant::Subgroup),
        "the rejected variant has a timing: {first:?}"
    );
    assert_ne!(
        first.variant,
        Variant::Subgroup,
        "the rejected variant was chosen: {first:?}"
    );
    let cached = cached_choices(&file);
    let entry = cached
        .iter()
        .find(|(key, _)| *key == first.key.0)
        .unwrap_or_else(|| panic!("{} is cached: {cached:?}", first.key));
    assert_ne!(entry.1, "subgroup", "the rejected variant was cached");
    // Shapes timed after it still see the subgroup variant (only that candidate was dropped).
    assert!(
        report
            .launches
            .iter()
            .skip_while(|l| l.key != first.key)
            .skip(1)
            .any(|l| l.timings.iter().any(|(v, _)| *v == Variant::Subgroup)),
        "{report}"
    );
}

#[test]
fn a_cached_choice_the_device_rejects_is_timed_anew() {
    for clock in [Clock::GpuTimestamps, Clock::CpuWall] {
        timed_anew(clock);
    }
}

fn timed_anew(clock: Clock) {
    let (_, cache) = cache_in(&format!("retime-{}", clock.name().replace(' ', "-")));
    let first = plan(&gpu_on(clock), &cache);
    assert!(first.measured > 0 && first.cached == 0, "{first}");
    let again = plan(&gpu_on(clock), &cache);
    assert_eq!(
        again.measured, 0,
        "a second plan takes everything from the cache: {again}"
    );

    // On a new device the first cached choice is rejected when it is checked.
    let ctx = gpu_on(clock);
    let rejected = first
        .launches
        .iter()
        .find(|l| !l.timings.is_empty())
        .expect("a launch shape was timed");
    ctx.arm_fault(Fault::Candidate(rejected.variant));
    let retimed = plan(&ctx, &cache);
    assert_eq!(
        retimed.measured, 1,
        "the rejected choice alone is timed anew: {retimed}"
    );
    assert_eq!(retimed.cached, first.measured - 1, "{retimed}");
    let launch = retimed.launches.iter().find(|l| l.key == rejected.key).unwrap();
    assert!(
        !launch.timings.is_empty(),
        "{} was not timed anew: {retimed}",
        rejected.key
    );
}
