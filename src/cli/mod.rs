//! The command line (native): `train`, `eval`, `classify`, `info` and `bench`. Without a
//! subcommand the desktop app opens.

mod device;
mod output;
mod train;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use resnet_wgpu::data::{Cifar10, load_cifar10, sample_dataset};
use resnet_wgpu::gpu::{GpuContext, KernelPolicy};
use resnet_wgpu::model::{Stem, Variant};
use resnet_wgpu::schedule::MemoryMode;

#[derive(Parser)]
#[command(
    name = "resnet-wgpu",
    version,
    about = "Train ResNets on CIFAR-10 on the GPU through WebGPU. Without a command, the desktop app opens."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Kernel variant of the convolutions and GEMMs: `auto` times the variants that apply on
    /// this device for each launch shape and keeps the fastest (cached per adapter), or one of
    /// portable, subgroup, subgroup-wide, tiled, tiled-64, narrow, split-k, split-k-tiled wherever it
    /// applies.
    #[arg(long, global = true, default_value = "auto", value_parser = KernelPolicy::parse)]
    pub kernels: KernelPolicy,
    /// What the network's buffers may take in all, in MiB (default: 6144 on a discrete GPU,
    /// 4096 on a CPU adapter, 2048 on other GPUs); a batch that needs more runs as
    /// micro-batches that fit.
    #[arg(long, global = true, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub memory: Option<u64>,
    /// How a training step holds its activations: `full` keeps every one for the backward pass,
    /// `recompute` keeps each residual block's input and output and reruns the block's forward
    /// before its backward (less memory, about one more forward pass); `f16` and
    /// `recompute-f16` store activations as f16 (half the memory; needs shader-f16); `auto`
    /// takes the fastest that runs the batch whole, else the one that allows the largest
    /// micro-batch.
    #[arg(long, global = true, default_value = "auto", value_parser = |text: &str| MemoryMode::parse(text).map(MemoryModeArg))]
    pub memory_mode: MemoryModeArg,
}

/// `--memory-mode`: a mode, or `None` for `auto`.
#[derive(Clone, Copy, Debug)]
pub struct MemoryModeArg(pub Option<MemoryMode>);

/// What the command line says about the device: how the launches of its plans pick their
/// kernel variant (`--kernels`), and the memory budget in MiB (`--memory`).
#[derive(Clone, Copy, Debug)]
pub struct DeviceOptions {
    pub kernels: KernelPolicy,
    pub memory_mib: Option<u64>,
    /// The memory mode asked for (`--memory-mode`; `None`: each plan chooses).
    pub memory_mode: Option<MemoryMode>,
}

impl DeviceOptions {
    /// Opens the GPU with the memory budget given.
    pub fn open_gpu(&self) -> Result<GpuContext, resnet_wgpu::gpu::GpuError> {
        let ctx = GpuContext::new_blocking()?;
        if let Some(mib) = self.memory_mib {
            ctx.set_memory_budget(mib << 20);
        }
        Ok(ctx)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Open the desktop app (the default without a command).
    App {
        /// Save a PNG of the window once it is ready, then close.
        #[arg(long, value_name = "FILE")]
        screenshot: Option<PathBuf>,
        /// With --screenshot: first train this many steps of the small configuration.
        #[arg(long, default_value_t = 0, requires = "screenshot")]
        train_steps: usize,
        /// With --screenshot: the page to show (training, evaluation, classify, data, device).
        #[arg(long, default_value = "training", requires = "screenshot")]
        tab: String,
    },
    /// Train a model; the defaults are the reference experiment (seed ResNet-50, 40 epochs).
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint: per-class precision, recall, F1, support and the confusion matrix.
    Eval(train::EvalArgs),
    /// Classify image files with a checkpoint: the top-5 classes and their probabilities.
    Classify(train::ClassifyArgs),
    /// Download CIFAR-10 (python version) and check its published MD5.
    Download {
        /// The folder to save cifar-10-python.tar.gz in.
        #[arg(long, default_value = "data", value_name = "DIR")]
        to: PathBuf,
    },
    /// Show the adapter (name, backend, limits, features) and the memory a configuration needs.
    Info(InfoArgs),
    /// Time the convolution kernels on every ResNet-50 layer shape against a square GEMM.
    Bench {
        /// Side of the square GEMM used as the yardstick.
        #[arg(long, default_value_t = 1024)]
        gemm_size: usize,
        /// Minimum seconds to time each kernel (at least one run after a warm-up run).
        #[arg(long, default_value_t = 0.3)]
        min_seconds: f64,
        /// Only the yardstick GEMM and the 32×32 CIFAR-stem network (faster).
        #[arg(long)]
        quick: bool,
        /// Only the layers whose name contains this text.
        #[arg(long, default_value = "")]
        layer: String,
        /// Also time whole training steps of the three reference configurations, with a
        /// per-kernel breakdown of one step.
        #[arg(long)]
        steps: bool,
        /// Instead of the layer table: each pointwise convolution's three GEMMs with
        /// activations channels-first (NCHW, the network's layout) and channels-last (NHWC).
        #[arg(long, conflicts_with = "steps")]
        layout: bool,
        /// With --steps: only the configurations whose title contains this text (e.g. "32 px").
        #[arg(long, default_value = "")]
        config: String,
        /// With --steps: the adapter's peak fp32 GFLOP/s, to print each kernel's fraction of it
        /// (known GPUs have theirs from a table of datasheet figures).
        #[arg(long, value_name = "GFLOPS", requires = "peak_gbs")]
        peak_gflops: Option<f64>,
        /// With --steps: the adapter's peak memory bandwidth in GB/s.
        #[arg(long, value_name = "GBS", requires = "peak_gflops")]
        peak_gbs: Option<f64>,
    },
}

/// Where the images come from.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// CIFAR-10: a folder with the batches (binary or python version), its parent, or the
    /// downloaded .tar.gz archive.
    #[arg(long, value_name = "PATH", conflicts_with = "sample")]
    pub data: Option<PathBuf>,
    /// Use the built-in sample data (10 procedurally drawn shape classes) instead.
    #[arg(long)]
    pub sample: bool,
    /// Training images of the sample data (a sixth as many test images).
    #[arg(long, default_value_t = 6000, value_name = "N")]
    pub sample_size: usize,
}

impl DataArgs {
    pub fn load(&self) -> Result<Cifar10, Box<dyn std::error::Error>> {
        match (&self.data, self.sample) {
            (Some(path), _) => Ok(load_cifar10(path)?),
            (None, true) => Ok(sample_dataset(self.sample_size, self.sample_size.div_ceil(6), 1)),
            (None, false) => {
                Err("give the data: --data PATH (CIFAR-10 folder or archive) or --sample".into())
            }
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum VariantArg {
    Seed50,
    Resnet18,
    Resnet34,
    Resnet50,
    Resnet101,
    Resnet152,
}

impl From<VariantArg> for Variant {
    fn from(v: VariantArg) -> Self {
        match v {
            VariantArg::Seed50 => Variant::Seed50,
            VariantArg::Resnet18 => Variant::ResNet18,
            VariantArg::Resnet34 => Variant::ResNet34,
            VariantArg::Resnet50 => Variant::ResNet50,
            VariantArg::Resnet101 => Variant::ResNet101,
            VariantArg::Resnet152 => Variant::ResNet152,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum StemArg {
    /// Upsample 32→224, 7×7/2 conv, max pool (the reference).
    Imagenet,
    /// 3×3 conv on the 32×32 input, no pooling.
    Cifar,
}

impl From<StemArg> for Stem {
    fn from(s: StemArg) -> Self {
        match s {
            StemArg::Imagenet => Stem::ImageNet,
            StemArg::Cifar => Stem::Cifar,
        }
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// Also report the device memory of this variant…
    #[arg(long, value_enum)]
    variant: Option<VariantArg>,
    /// …with this stem…
    #[arg(long, value_enum, default_value = "imagenet")]
    stem: StemArg,
    /// …at this batch size.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Time the kernel variants of every launch shape not yet in the cache (otherwise the
    /// kernel table shows the cached choices and the defaults).
    #[arg(long)]
    measure: bool,
    /// Plan for a device that binds at most this many MiB per buffer instead of this one's
    /// limit (with `--memory` for its budget: the plan for a GPU or a browser, shown here).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    max_buffer: Option<u64>,
    /// Plan for a device that offers shader-f16 (`true`: the f16 memory modes may run) or not
    /// (`false`: a browser on SwiftShader, say) instead of this one.
    #[arg(long, value_name = "true|false")]
    shader_f16: Option<bool>,
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
    let device = DeviceOptions {
        kernels: cli.kernels,
        memory_mib: cli.memory,
        memory_mode: cli.memory_mode.0,
    };
    let kernels = device.kernels;
    let Some(command) = cli.command else {
        return Ok(resnet_wgpu::app::run_native(None)?);
    };
    match command {
        Command::App {
            screenshot,
            train_steps,
            tab,
        } => {
            use resnet_wgpu::app::Tab;
            let tab = Tab::ALL
                .into_iter()
                .find(|t| t.title().eq_ignore_ascii_case(&tab))
                .ok_or_else(|| {
                    format!("no page {tab:?}: choose training, evaluation, classify, data or device")
                })?;
            let plan = screenshot
                .map(|path| resnet_wgpu::app::screenshot::ScreenshotPlan::new(path, train_steps, tab));
            Ok(resnet_wgpu::app::run_native(plan)?)
        }
        Command::Train(args) => train::run_train(*args, device),
        Command::Eval(args) => train::run_eval(args, device),
        Command::Download { to } => {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec}, ETA {eta}",
                )
                .expect("the template is valid"),
            );
            let path = resnet_wgpu::download::download_cifar10(&to, |done, total| {
                if let Some(t) = total {
                    bar.set_length(t);
                }
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            println!(
                "{} (MD5 checked); train with: resnet-wgpu train --data {}",
                path.display(),
                path.display()
            );
            Ok(())
        }
        Command::Classify(args) => train::run_classify(args, device),
        Command::Info(args) => {
            let ctx = device.open_gpu()?;
            device::print_info(&ctx);
            if let Some(variant) = args.variant {
                let mut config = resnet_wgpu::train::TrainConfig::reference();
                config.model = resnet_wgpu::train::ModelSpec::named(variant.into(), args.stem.into());
                config.batch = args.batch;
                println!("\n{}, batch {}", config.model.describe(), args.batch);
                let mut limits = resnet_wgpu::schedule::Network::limits(&ctx);
                if let Some(mib) = args.max_buffer {
                    limits.max_buffer = mib << 20;
                }
                if let Some(offered) = args.shader_f16 {
                    limits.shader_f16 = offered;
                }
                let mut plan = config.plan_within(limits, kernels, device.memory_mode)?;
                println!(
                    "planned for buffers of at most {:.0} MiB and a budget of {:.0} MiB, {} shader-f16",
                    resnet_wgpu::schedule::mib(limits.max_buffer),
                    resnet_wgpu::schedule::mib(limits.memory_budget),
                    if limits.shader_f16 { "with" } else { "without" }
                );
                println!("{}", plan.memory);
                println!("  {}", plan.mode_note());
                let cache = resnet_wgpu::schedule::KernelCache::default_location();
                let tuning = if args.measure {
                    resnet_wgpu::schedule::Tuning::Measure
                } else {
                    resnet_wgpu::schedule::Tuning::CacheOnly
                };
                let report = pollster::block_on(resnet_wgpu::schedule::choose_kernels(
                    &ctx,
                    &mut plan,
                    &cache,
                    tuning,
                    |_, _| {},
                ))?;
                println!("{report}");
            }
            Ok(())
        }
        Command::Bench {
            gemm_size,
            min_seconds,
            quick,
            layer,
            steps,
            layout,
            config,
            peak_gflops,
            peak_gbs,
        } => {
            let ctx = device.open_gpu()?;
            if steps {
                let given = peak_gflops
                    .zip(peak_gbs)
                    .map(|(gflops, gbs)| resnet_wgpu::bench::Peak { gflops, gbs });
                device::run_step_bench(&ctx, min_seconds, &config, kernels, device.memory_mode, given)?;
            } else if layout {
                device::run_layout_bench(&ctx, min_seconds, quick, &layer);
            } else {
                device::run_bench(&ctx, gemm_size, min_seconds, quick, &layer);
            }
            Ok(())
        }
    }
}
