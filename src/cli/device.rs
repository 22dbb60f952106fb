//! `info` and `bench`: what the adapter offers, and how fast the convolution kernels run on it.

use resnet_wgpu::bench;
use resnet_wgpu::gpu::{GpuContext, KernelPolicy};
use resnet_wgpu::ops::conv2d::Direction;
use resnet_wgpu::schedule::MemoryMode;

pub fn print_info(ctx: &GpuContext) {
    let l = &ctx.limits;
    println!("adapter:  {}", ctx.describe());
    println!(
        "features: shader-f16 {}, subgroups {} (sizes {}..{}), timestamp-query {}",
        ctx.features.shader_f16,
        ctx.features.subgroups,
        ctx.adapter_info.subgroup_min_size,
        ctx.adapter_info.subgroup_max_size,
        ctx.features.timestamp_query
    );
    println!(
        "limits:   max buffer {} MiB, max storage binding {} MiB, {} storage buffers per stage",
        l.max_buffer_size >> 20,
        l.max_storage_buffer_binding_size >> 20,
        l.max_storage_buffers_per_shader_stage
    );
    println!(
        "memory:   budget {} MiB for a network's buffers (--memory changes it)",
        ctx.memory_budget() >> 20
    );
    println!("          in use: {}", ctx.memory_use());
    println!(
        "          workgroup: {} invocations, {} KiB shared memory, {} groups per dimension",
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroup_storage_size >> 10,
        l.max_compute_workgroups_per_dimension
    );
}

/// The networks whose convolution shapes the layer benchmarks time: ResNet-50 on 32-pixel
/// images at batch 32, and (unless `quick`) at 224 px, batch 8.
fn bench_networks(quick: bool) -> Vec<(&'static str, Vec<(String, resnet_wgpu::ops::conv2d::Conv2dShape)>)> {
    let mut networks = vec![(
        "ResNet-50, CIFAR stem, 32x32, batch 32",
        bench::resnet50_conv_shapes(32, 32, true),
    )];
    if !quick {
        networks.insert(
            0,
            (
                "ResNet-50, ImageNet stem, 224x224, batch 8",
                bench::resnet50_conv_shapes(8, 224, false),
            ),
        );
    }
    networks
}

pub fn run_bench(ctx: &GpuContext, gemm_size: usize, min_seconds: f64, quick: bool, layer: &str) {
    println!("adapter: {}", ctx.describe());
    println!(
        "every variant that applies is timed; each layer's row shows the fastest and its name, and the lines under it every variant's rate"
    );
    let yardsticks = bench::gemm_yardstick(ctx, gemm_size, min_seconds);
    let all: Vec<String> = yardsticks.iter().map(|(v, g)| format!("{v} {g:.2}")).collect();
    let yardstick = yardsticks[0].1;
    println!(
        "yardstick: {gemm_size}x{gemm_size}x{gemm_size} GEMM {yardstick:.2} GFLOP/s ({})\n",
        all.join(", ")
    );
    for (title, shapes) in bench_networks(quick) {
        println!("{title}");
        println!(
            "{:<18} {:>5} {:>5} {:>4} {:>5} {:>6} | {:>8} {:>8} {:>5} | {:>8} {:>8} {:>5} | {:>8} {:>8} {:>5}",
            "layer",
            "Cin",
            "Cout",
            "HxW",
            "k/s",
            "GFLOP",
            "fwd",
            "GFLOP/s",
            "ratio",
            "dgrad",
            "GFLOP/s",
            "ratio",
            "wgrad",
            "GFLOP/s",
            "ratio"
        );
        for (name, shape) in shapes.into_iter().filter(|(name, _)| name.contains(layer)) {
            let t = bench::time_conv(ctx, shape, min_seconds);
            print!(
                "{:<18} {:>5} {:>5} {:>4} {:>3}/{} {:>6.2}",
                name,
                shape.in_channels,
                shape.out_channels,
                shape.in_height,
                shape.kernel[0],
                shape.stride[0],
                shape.flops() / 1e9
            );
            for direction in 0..3 {
                let (variant, gflops) = t.best(direction);
                print!(
                    " | {:>8} {:>8.2} {:>5.2}",
                    variant.name(),
                    gflops,
                    gflops / yardstick
                );
            }
            println!();
            // Every variant of each direction, fastest first: which wins where.
            for (direction, times) in Direction::ALL.iter().zip(&t.variants) {
                let all: Vec<String> = times
                    .iter()
                    .map(|(v, seconds)| format!("{v} {:.2}", shape.flops() / seconds / 1e9))
                    .collect();
                println!("    {:<11} GFLOP/s: {}", direction.name(), all.join(", "));
            }
        }
        println!();
    }
}

/// The activation layout measured: every pointwise (1×1, stride-1) convolution of ResNet-50,
/// each direction on its fastest variant, with activations channels-first (NCHW, as the network
/// stores them: per-image GEMMs, or the implicit-GEMM kernels on small planes) and
/// channels-last (NHWC: one GEMM over every pixel of the batch), and the ratio of their rates.
pub fn run_layout_bench(ctx: &GpuContext, min_seconds: f64, quick: bool, layer: &str) {
    println!("adapter: {}", ctx.describe());
    println!(
        "pointwise convolutions, each direction on its fastest variant: NCHW (the network's layout) against NHWC"
    );
    for (title, shapes) in bench_networks(quick) {
        println!("\n{title}");
        println!(
            "{:<18} {:>5} {:>5} {:>4} | {:>30} | {:>30} | {:>30}",
            "layer",
            "Cin",
            "Cout",
            "HxW",
            "fwd NCHW / NHWC GFLOP/s",
            "dgrad NCHW / NHWC",
            "wgrad NCHW / NHWC"
        );
        for (name, shape) in shapes
            .into_iter()
            .filter(|(name, s)| name.contains(layer) && s.is_pointwise())
        {
            let nchw = bench::time_conv(ctx, shape, min_seconds);
            let nhwc = bench::channels_last_gemms(&shape)
                .map(|p| bench::time_gemm(ctx, &p, min_seconds).first().copied());
            print!(
                "{:<18} {:>5} {:>5} {:>4}",
                name, shape.in_channels, shape.out_channels, shape.in_height
            );
            for (direction, last) in nhwc.iter().enumerate() {
                let (first_variant, first) = nchw.best(direction);
                let cell = match last {
                    Some((variant, seconds)) => {
                        let gflops = shape.flops() / seconds / 1e9;
                        format!(
                            "{first:.1} {first_variant} / {gflops:.1} {variant} {:.2}x",
                            gflops / first
                        )
                    }
                    None => format!("{first:.1} {first_variant} / none applies"),
                };
                print!(" | {cell:>30}");
            }
            println!();
        }
    }
}

/// Images per second of whole training steps for the three reference configurations, their
/// memory, and where one step's time goes, kernel by kernel (time, the GB/s of its compulsory
/// traffic, the GFLOP/s of GEMM-shaped kernels and, given the adapter's `peak` or where a table
/// knows it, their fractions of it): in `memory_mode`, or in each mode side by side (with the
/// step time's ratio to the full mode's). Only the configurations whose title contains `only`
/// run.
pub fn run_step_bench(
    ctx: &GpuContext,
    min_seconds: f64,
    only: &str,
    kernels: KernelPolicy,
    memory_mode: Option<MemoryMode>,
    peak: Option<resnet_wgpu::bench::Peak>,
) -> Result<(), Box<dyn std::error::Error>> {
    let known = resnet_wgpu::bench::known_peak(&ctx.adapter_info.name);
    let peak = match (peak, known) {
        (Some(given), _) => {
            println!(
                "peak: {:.0} GFLOP/s fp32, {:.0} GB/s (as given)",
                given.gflops, given.gbs
            );
            Some(given)
        }
        (None, Some((name, peak))) => {
            println!(
                "peak: {:.0} GFLOP/s fp32, {:.0} GB/s (datasheet figures of the {name}; --peak-gflops and --peak-gbs change them)",
                peak.gflops, peak.gbs
            );
            Some(peak)
        }
        (None, None) => None,
    };
    // Every mode this device runs (the f16 ones need shader-f16), or the one asked for.
    let offered = MemoryMode::ALL
        .into_iter()
        .filter(|m| ctx.features.shader_f16 || m.precision() == resnet_wgpu::shaders::Precision::F32);
    let modes = memory_mode.map_or(offered.collect(), |m| vec![m]);
    use resnet_wgpu::model::{Stem, Variant};
    use resnet_wgpu::train::ModelSpec;
    println!("adapter: {}", ctx.describe());
    let small = resnet_wgpu::train::TrainConfig::small_and_fast();
    let mut torchvision_32 = ModelSpec::named(Variant::ResNet50, Stem::ImageNet);
    torchvision_32.config.upsample = 32;
    let configs = [
        (
            "seed ResNet-50, 224 px (upsampled), batch 8",
            ModelSpec::named(Variant::Seed50, Stem::ImageNet),
            8,
        ),
        (
            "torchvision ResNet-50, ImageNet stem, 32 px, batch 32",
            torchvision_32,
            32,
        ),
        (
            "ResNet-18, CIFAR stem, 32 px, batch 64",
            ModelSpec::named(Variant::ResNet18, Stem::Cifar),
            64,
        ),
        (
            "the small network (the app's first start on a CPU adapter), 32 px, batch 32",
            small.model,
            small.batch,
        ),
    ];
    let runs = configs
        .into_iter()
        .filter(|(title, ..)| title.contains(only))
        .flat_map(|config| modes.iter().map(move |&mode| (config.clone(), mode)));
    let mut full_seconds = None;
    for ((title, spec, batch), mode) in runs {
        let t = bench::time_training_step(ctx, &spec.build(), batch, kernels, mode, min_seconds)?;
        println!("\n{title}, memory mode {}", mode.name());
        match (mode, full_seconds) {
            (MemoryMode::Full, _) => full_seconds = Some(t.seconds),
            (MemoryMode::F16 | MemoryMode::Recompute | MemoryMode::RecomputeF16, Some(full)) => {
                println!("  step time {:.2}× the full mode's", t.seconds / full)
            }
            (MemoryMode::F16 | MemoryMode::Recompute | MemoryMode::RecomputeF16, None) => {}
        }
        println!(
            "  step {:.3} s, {:.2} images/s, {:.1} GFLOP/s (forward + backward = 3× forward FLOPs)",
            t.seconds,
            batch as f64 / t.seconds,
            t.gflops
        );
        println!(
            "  network built in {:.2} s, first step {:.2} s ({:.2}× a later step: pipelines built at first use)",
            t.build_seconds,
            t.first_step_seconds,
            t.first_step_seconds / t.seconds
        );
        println!("  {}", t.memory.to_string().replace('\n', "\n  "));
        println!("  {}", t.kernels.to_string().lines().next().unwrap_or_default());
        println!(
            "  per-layer norms read: {:.1} ms, {:.2} % of a step (the app reads them at most once a second, within {:.0} % of the time)",
            t.layer_norms_seconds * 1e3,
            100.0 * t.layer_norms_seconds / t.seconds,
            100.0 * resnet_wgpu::schedule::NORMS_READ_SHARE
        );
        let how = if t.gpu_timestamps {
            "GPU time from timestamp queries"
        } else {
            "no timestamp queries here: each launch timed alone on the CPU clock, submission included"
        };
        println!("  per kernel ({how}; sum {:.3} s):", t.kernel_total());
        for k in t.by_kernel.iter().take(12) {
            let mut line = format!(
                "    {:<32} {:>4} launches {:>8.1} ms {:>5.1} % {:>8.1} GB/s",
                k.name,
                k.launches,
                k.seconds * 1e3,
                100.0 * k.seconds / t.kernel_total(),
                k.gbs()
            );
            if k.flops > 0.0 {
                line.push_str(&format!(" {:>8.1} GFLOP/s", k.gflops()));
            }
            if let Some(peak) = peak {
                line.push_str(&format!(
                    " | {:>5.1} % of peak bandwidth",
                    100.0 * k.gbs() / peak.gbs
                ));
                if k.flops > 0.0 {
                    line.push_str(&format!(
                        ", {:>5.1} % of peak fp32",
                        100.0 * k.gflops() / peak.gflops
                    ));
                }
            }
            println!("{line}");
        }
    }
    Ok(())
}
