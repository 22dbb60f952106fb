//! What kernel choice does with variants the device rejects: cached choices are run once
//! before they are trusted, and a rejected variant's pipelines are dropped so that they are
//! never reused.

use super::case::{Case, CaseBuffers};
use crate::gpu::{Fault, GemmKey, GpuContext, GpuError, KernelChoices, Variant};
use crate::shaders::Shader;

/// Says that the device rejected `variant` for `key` (and what happens to it), and drops the
/// pipelines of its `shaders` so that they are never reused.
pub(super) fn drop_rejected(
    ctx: &GpuContext,
    key: &GemmKey,
    variant: Variant,
    shaders: &[Shader],
    error: &wgpu::Error,
    outcome: &str,
) {
    log::warn!(
        "kernel choice: {key}: the device rejected {variant}, {outcome}: {}",
        crate::gpu::describe_error(error)
    );
    for &shader in shaders {
        ctx.forget_pipeline(shader);
    }
}

/// The error of a launch shape whose every variant the device rejected.
pub(super) fn all_rejected(key: &GemmKey, variants: &[Variant]) -> GpuError {
    GpuError::Validation(format!(
        "{key}: the device rejected every kernel variant ({})",
        variants.iter().map(|v| v.name()).collect::<Vec<_>>().join(", ")
    ))
}

/// Bytes of scratch buffers after which kernel checks and timings wait for the device, so that
/// the buffers of those already run can go.
pub(super) const FLUSH_BYTES: u64 = 256 << 20;

/// Runs each choice taken `from_cache` that would otherwise be timed once on a small sample
/// (its first workgroups), each in an error scope of its own, and returns the shapes
/// whose choice the device rejected (their pipelines are dropped). The checks are submitted
/// together and awaited at once: one at a time, their round trips to the device cost seconds
/// in a browser.
pub(super) async fn rejected_cached_choices(
    ctx: &GpuContext,
    cases: &[Case],
    kernels: &KernelChoices,
    from_cache: &std::collections::BTreeSet<GemmKey>,
) -> Result<Vec<GemmKey>, GpuError> {
    let mut checked = std::collections::BTreeSet::new();
    let mut pending = Vec::new();
    let mut unflushed = 0;
    for case in cases {
        if !from_cache.contains(&case.key)
            || case.worth_timing(ctx).len() < 2
            || !checked.insert(case.key.clone())
        {
            continue;
        }
        let variant = kernels.pick(&case.key, &case.candidates);
        let buffers = CaseBuffers::new(ctx, case);
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let (launch, _) = buffers.sample(ctx, &case.shape, variant, 0.0);
        ctx.submit("kernel check", &[&launch]);
        ctx.fault_point(Fault::Candidate(variant));
        pending.push((case.key.clone(), variant, launch.shaders(), scope.pop()));
        // The device keeps the buffers until the check has run.
        unflushed += buffers.bytes();
        if unflushed > FLUSH_BYTES {
            ctx.finish().await?;
            unflushed = 0;
        }
    }
    ctx.finish().await?;
    let mut rejected = Vec::new();
    for (key, variant, kernels, popped) in pending {
        if let Some(error) = popped.await {
            drop_rejected(
                ctx,
                &key,
                variant,
                &kernels,
                &error,
                "its cached choice, which is timed anew",
            );
            rejected.push(key);
        }
    }
    Ok(rejected)
}
