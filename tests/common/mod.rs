//! Shared by the GPU tests: opening the adapter (loudly failing without one) and helpers.
#![allow(dead_code)]

pub mod hostile;

use resnet_wgpu::data::BatchOptions;
use resnet_wgpu::gpu::{GpuBuffer, GpuContext, KernelPolicy, Variant};
use resnet_wgpu::model::{ResNetConfig, Stem};
#[allow(unused_imports)]
pub use resnet_wgpu::ops::check::{compare, to_f64};
use resnet_wgpu::ops::sgd::SgdConfig;
pub use resnet_wgpu::rng::Rng;
use resnet_wgpu::train::{LrSchedule, ModelSpec, OnNonFinite, TrainConfig, TrainMetrics};

/// Opens the GPU or fails the test with instructions. Tests never pass by skipping.
pub fn gpu() -> GpuContext {
    match GpuContext::new_blocking() {
        Ok(ctx) => ctx,
        Err(e) => panic!(
            "GPU tests need a WebGPU adapter and none could be opened: {e}\n\
             On Debian/Ubuntu without a GPU: `apt-get install -y mesa-vulkan-drivers` (lavapipe)."
        ),
    }
}

/// The kernel policies to test on this adapter: each variant forced in turn (where a variant
/// does not apply to a launch, the launch takes its default). The subgroup variants must exist
/// where the adapter offers subgroups (lavapipe does).
pub fn kernel_policies(ctx: &GpuContext) -> Vec<KernelPolicy> {
    let mut variants = vec![
        Variant::Portable,
        Variant::Tiled,
        Variant::Tiled64,
        Variant::Narrow,
        Variant::SplitK,
        Variant::SplitKTiled,
    ];
    if ctx.features.subgroups {
        variants.extend([Variant::Subgroup, Variant::SubgroupWide]);
    } else if std::env::var_os("RESNET_WGPU_ALLOW_NO_SUBGROUPS").is_none() {
        panic!(
            "the adapter {} offers no subgroups, so the subgroup kernels cannot be tested here; \
             set RESNET_WGPU_ALLOW_NO_SUBGROUPS=1 to test only the other kernels",
            ctx.describe()
        )
    }
    variants.into_iter().map(KernelPolicy::Only).collect()
}

/// A network of `model` at `batch` images in micro-batches of at most `micro`, its launches
/// picking their variant as `policy` says.
pub fn network(
    ctx: &GpuContext,
    model: resnet_wgpu::model::Model,
    batch: usize,
    micro: usize,
    policy: KernelPolicy,
    values: &[Vec<f32>],
    sgd: SgdConfig,
) -> resnet_wgpu::schedule::Network {
    use resnet_wgpu::schedule::{Network, Plan};
    let plan = Plan::new(model, batch, Network::limits(ctx), Some(micro), None, policy).expect("a plan");
    Network::from_plan(ctx, plan, values, sgd).expect("a network")
}

/// The kernel variants to test on this adapter, each asked for by name (launchers refuse a
/// variant that does not apply to a shape, so a test never quietly runs another one).
pub fn kernel_variants(ctx: &GpuContext) -> Vec<Variant> {
    kernel_policies(ctx)
        .into_iter()
        .map(|policy| match policy {
            KernelPolicy::Only(v) => v,
            KernelPolicy::Auto => unreachable!("every policy names a variant"),
        })
        .collect()
}

/// Fails the test where the device reported an error (a launch it rejected leaves its output
/// as it was, which a comparison may not notice).
pub fn assert_no_device_error(ctx: &GpuContext, what: &str) {
    if let Some(error) = ctx.take_error() {
        panic!("{what}: the device reported an error: {error}");
    }
}

/// Asserts that `launch` runs `variant`, as its launcher was asked: marked so, and its first
/// kernel that variant's (the body of its tile loop, its subgroup width; split-K sums its
/// partial sums, made on the portable or tiled kernel, in a second dispatch).
pub fn assert_ran(launch: &resnet_wgpu::gpu::Launch, variant: Variant, what: &str) {
    use resnet_wgpu::shaders::{GEMM_NARROW, GEMM_TILE, GEMM_TILED, Overrides};
    assert_eq!(
        launch.variant,
        Some(variant),
        "{what}: the launch runs another variant"
    );
    let shaders = launch.shaders();
    let first = shaders[0].kernel;
    let runs = match variant {
        Variant::Portable => first.bodies().first() == Some(&GEMM_TILE),
        Variant::Subgroup => first.uses_subgroups() && first.overrides() == Overrides::Defaults,
        Variant::SubgroupWide => first.overrides() == Overrides::WideLanes,
        Variant::Tiled => {
            first.bodies().first() == Some(&GEMM_TILED) && first.overrides() == Overrides::Defaults
        }
        Variant::Tiled64 => {
            first.bodies().first() == Some(&GEMM_TILED) && first.overrides() == Overrides::Tile64
        }
        Variant::Narrow => first.bodies().first() == Some(&GEMM_NARROW),
        // The partial sums on the portable or tiled tile loop, then their sum.
        Variant::SplitK => shaders.len() == 2 && first.bodies().first() == Some(&GEMM_TILE),
        Variant::SplitKTiled => {
            shaders.len() == 2
                && first.bodies().first() == Some(&GEMM_TILED)
                && first.overrides() == Overrides::Defaults
        }
    };
    assert!(runs, "{what}: {variant} launched {}", first.name());
}

/// A buffer full of NaN, so that any element a kernel fails to write shows up in comparisons.
pub fn poisoned(ctx: &GpuContext, label: &str, len: usize) -> GpuBuffer<f32> {
    upload(ctx, label, &vec![f32::NAN; len])
}

/// Runs `launch` twice, reading `out` after each run, and asserts bit-identical results.
pub fn assert_deterministic(
    ctx: &GpuContext,
    name: &str,
    launch: &resnet_wgpu::gpu::Launch,
    out: &GpuBuffer<f32>,
) {
    ctx.run_blocking(name, &[launch]);
    let first = out.read_blocking(ctx);
    ctx.run_blocking(name, &[launch]);
    let second = out.read_blocking(ctx);
    let differing = first
        .iter()
        .zip(&second)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{name}: {differing} of {} elements differ between two runs",
        first.len()
    );
}

pub fn upload(ctx: &GpuContext, label: &str, values: &[f32]) -> GpuBuffer<f32> {
    GpuBuffer::from_slice(ctx, label, values)
}

pub fn zeros(ctx: &GpuContext, label: &str, len: usize) -> GpuBuffer<f32> {
    GpuBuffer::zeros(ctx, label, len)
}

/// Panics with the comparison's message when GPU and reference disagree.
pub fn assert_close(name: &str, gpu: &[f32], reference: &[f64], atol: f64, rtol: f64) {
    if let Err(message) = compare(name, gpu, reference, atol, rtol) {
        panic!("{message}");
    }
}

/// Central finite difference of a scalar function `f` of `x`, in f64, for every element.
pub fn numeric_gradient(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let mut point = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * (1.0 + x[i].abs());
            point[i] = x[i] + h;
            let up = f(&point);
            point[i] = x[i] - h;
            let down = f(&point);
            point[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Asserts two f64 gradients agree (analytic backward vs finite differences).
pub fn assert_gradient(name: &str, analytic: &[f64], numeric: &[f64]) {
    assert_eq!(analytic.len(), numeric.len(), "{name}: lengths differ");
    let (mut worst, mut worst_i) = (0.0f64, 0usize);
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let err = (a - n).abs() / (1e-6 + 1e-5 * n.abs().max(a.abs()));
        if err > worst {
            worst = err;
            worst_i = i;
        }
    }
    assert!(
        worst <= 1.0,
        "{name}: backward disagrees with finite differences at index {worst_i}: analytic {} vs numeric {}",
        analytic[worst_i],
        numeric[worst_i]
    );
}

/// A weighted sum `Σ w_i y_i` with fixed pseudo-random weights: a scalar loss whose gradient
/// with respect to `y` is `w`, used to check backward passes.
pub fn probe_weights(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The real handwritten digits in CIFAR binary layout: `$DIGITS_CIFAR_BIN`, else the shared
/// data folder beside the checkout, else `/work/shared/data/digits-cifar-bin`.
pub fn digits_dir() -> std::path::PathBuf {
    let candidates = [
        std::env::var("DIGITS_CIFAR_BIN").unwrap_or_default(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/digits-cifar-bin").to_string(),
        "/work/shared/data/digits-cifar-bin".to_string(),
    ];
    candidates
        .iter()
        .filter(|c| !c.is_empty())
        .map(std::path::PathBuf::from)
        .find(|p| p.join("test_batch.bin").is_file())
        .unwrap_or_else(|| {
            panic!("the digits test data was not found; set DIGITS_CIFAR_BIN to its folder (tried {candidates:?})")
        })
}

/// A ResNet-18-style network (CIFAR stem) of the given stage widths and blocks.
pub fn small_spec(widths: &[usize], blocks: &[usize]) -> ModelSpec {
    ModelSpec {
        variant: resnet_wgpu::model::Variant::ResNet18,
        stem: Stem::Cifar,
        config: ResNetConfig {
            bottleneck: false,
            blocks: blocks.to_vec(),
            widths: widths.to_vec(),
            stem_width: widths[0],
            upsample: 224,
        },
        classes: 10,
    }
}

/// A short run of a two-stage network: what the trainer tests start from.
pub fn small_config(batch: usize, epochs: usize) -> TrainConfig {
    TrainConfig {
        model: small_spec(&[8, 16], &[1, 1]),
        batch,
        epochs,
        sgd: SgdConfig {
            lr: 0.05,
            momentum: 0.9,
            weight_decay: 1e-4,
        },
        lr_schedule: LrSchedule::REFERENCE,
        augment: BatchOptions {
            hflip: true,
            crop_padding: Some(4),
        },
        shuffle: true,
        seed: 7,
        validation: 16,
        max_steps: None,
        train_metrics: TrainMetrics::Eval,
        max_micro_batch: None,
        gamma: None,
        on_nonfinite: OnNonFinite::Stop,
    }
}

/// A kernel cache folder of this test process (for `RESNET_WGPU_CACHE_DIR`), so that a program
/// a test starts neither reads nor writes the kernel choices kept in the user's own cache
/// folder.
pub fn kernel_cache_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("resnet-wgpu-test-kernels-{}", std::process::id()))
}

/// Tolerance for a sum of `count` values of order 1 accumulated in f32.
pub fn sum_atol(count: usize) -> f64 {
    1e-4 * (count as f64 / 1_000.0).sqrt().max(1.0)
}
