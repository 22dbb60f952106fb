//! The command line (native): `info` and `bench`.

use clap::{Parser, Subcommand};

use resnet_wgpu::bench;
use resnet_wgpu::gpu::GpuContext;

#[derive(Parser)]
#[command(
    name = "resnet-wgpu",
    version,
    about = "Train ResNets on CIFAR-10 on the GPU through WebGPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the adapter: name, backend, limits and optional features.
    Info,
    /// Time the convolution kernels on every ResNet-50 layer shape against a square GEMM.
    Bench {
        /// Side of the square GEMM used as the yardstick.
        #[arg(long, default_value_t = 1024)]
        gemm_size: usize,
        /// Minimum seconds to time each kernel (at least one run after a warm-up run).
        #[arg(long, default_value_t = 0.3)]
        min_seconds: f64,
        /// Use only the portable kernels, even where the adapter offers subgroups.
        #[arg(long)]
        no_subgroups: bool,
        /// Only the yardstick GEMM and the 32×32 CIFAR-stem network (faster).
        #[arg(long)]
        quick: bool,
        /// Only the layers whose name contains this text.
        #[arg(long, default_value = "")]
        layer: String,
    },
}

pub fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let Some(command) = cli.command else {
        // The desktop app will open here; until then, say what the binary can do.
        use clap::CommandFactory;
        Cli::command().print_help()?;
        println!("\nThe desktop app is not part of this build yet; use a subcommand above.");
        return Ok(());
    };
    match command {
        Command::Info => {
            let ctx = GpuContext::new_blocking()?;
            print_info(&ctx);
        }
        Command::Bench {
            gemm_size,
            min_seconds,
            no_subgroups,
            quick,
            layer,
        } => {
            let ctx = GpuContext::new_blocking()?;
            ctx.set_use_subgroups(!no_subgroups);
            run_bench(&ctx, gemm_size, min_seconds, quick, &layer);
        }
    }
    Ok(())
}

fn print_info(ctx: &GpuContext) {
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
        "          workgroup: {} invocations, {} KiB shared memory, {} groups per dimension",
        l.max_compute_invocations_per_workgroup,
        l.max_compute_workgroup_storage_size >> 10,
        l.max_compute_workgroups_per_dimension
    );
}

fn run_bench(ctx: &GpuContext, gemm_size: usize, min_seconds: f64, quick: bool, layer: &str) {
    println!("adapter: {}", ctx.describe());
    println!(
        "kernels: {}",
        if ctx.uses_subgroups() {
            "subgroup variants"
        } else {
            "portable variants"
        }
    );
    let yardstick = bench::gemm_yardstick(ctx, gemm_size, min_seconds);
    println!("yardstick: {gemm_size}x{gemm_size}x{gemm_size} GEMM {yardstick:.2} GFLOP/s\n");
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
    for (title, shapes) in networks {
        println!("{title}");
        println!(
            "{:<18} {:>5} {:>5} {:>4} {:>5} {:>3} {:>6} | {:>9} {:>7} {:>5} | {:>9} {:>7} {:>5} | {:>9} {:>7} {:>5}",
            "layer",
            "Cin",
            "Cout",
            "HxW",
            "k/s",
            "",
            "GFLOP",
            "fwd ms",
            "GFLOP/s",
            "ratio",
            "dgrad ms",
            "GFLOP/s",
            "ratio",
            "wgrad ms",
            "GFLOP/s",
            "ratio"
        );
        for (name, shape) in shapes.into_iter().filter(|(name, _)| name.contains(layer)) {
            let t = bench::time_conv(ctx, shape, min_seconds);
            print!(
                "{:<18} {:>5} {:>5} {:>4} {:>3}/{} {:>3} {:>6.2}",
                name,
                shape.in_channels,
                shape.out_channels,
                shape.in_height,
                shape.kernel[0],
                shape.stride[0],
                "",
                shape.flops() / 1e9
            );
            for i in 0..3 {
                print!(
                    " | {:>9.2} {:>7.2} {:>5.2}",
                    t.seconds[i] * 1e3,
                    t.gflops[i],
                    t.gflops[i] / yardstick
                );
            }
            println!();
        }
        println!();
    }
}
