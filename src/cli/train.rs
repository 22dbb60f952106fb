//! `train`, `eval` and `classify`.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use resnet_wgpu::data::{BatchOptions, decode_image};
use resnet_wgpu::gpu::{GpuContext, KernelPolicy};
use resnet_wgpu::model::{GammaInit, Model};
use resnet_wgpu::ops::sgd::SgdConfig;
use resnet_wgpu::schedule::{Network, Plan};
use resnet_wgpu::train::checkpoint::load_weights_reporting;
use resnet_wgpu::train::{
    Checkpoint, LrSchedule, ModelSpec, OnNonFinite, Progress, Splits, TrainConfig, TrainMetrics, Trainer,
    default_validation, evaluate, softmax_rows, top_k,
};

use super::output::{MetricsWriter, plot_curves};
use super::{DataArgs, StemArg, VariantArg};

#[derive(Clone, Copy, ValueEnum)]
pub enum ScheduleArg {
    /// ReduceLROnPlateau on the validation loss (the reference).
    Plateau,
    /// Cosine annealing to 0 over the epochs.
    Cosine,
    /// A constant learning rate.
    Constant,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum TrainMetricsArg {
    /// A pass over the training set in inference mode after each epoch (the reference).
    Eval,
    /// The running mean of the epoch's batches (no extra pass).
    Running,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OnNonFiniteArg {
    /// Stop with a message naming the step (the weights are those before it).
    Stop,
    /// Skip the step and go on; stop after --max-skipped-in-a-row such steps in a row.
    Skip,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GammaArg {
    /// γ = 1 (PyTorch since 1.2, torchvision's ResNets).
    Ones,
    /// γ ~ U[0, 1) (PyTorch up to 1.1, as in the post).
    Uniform,
}

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum, default_value = "seed50")]
    variant: VariantArg,
    #[arg(long, value_enum, default_value = "imagenet")]
    stem: StemArg,
    /// Base widths of the stages, e.g. 16,32,64 for a small network (default: the variant's).
    #[arg(long, value_delimiter = ',', value_name = "W,W,…")]
    widths: Option<Vec<usize>>,
    /// Blocks per stage, e.g. 1,1,1 (default: the variant's).
    #[arg(long, value_delimiter = ',', value_name = "N,N,…")]
    blocks: Option<Vec<usize>>,
    /// Size the ImageNet stem upsamples to (32: none).
    #[arg(long, default_value_t = 224)]
    upsample: usize,
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f32,
    #[arg(long, value_enum, default_value = "plateau")]
    schedule: ScheduleArg,
    /// Plateau: epochs without improvement before the rate drops.
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Plateau: the factor the rate is multiplied by.
    #[arg(long, default_value_t = 0.1)]
    factor: f64,
    /// No random horizontal flips.
    #[arg(long)]
    no_flip: bool,
    /// Random 32×32 crops of the image padded by 4 pixels.
    #[arg(long)]
    crop: bool,
    /// Visit the training images in their stored order.
    #[arg(long)]
    no_shuffle: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// How batch norm's γ starts (default: uniform for seed50, as in the post's PyTorch 1.1;
    /// ones for the torchvision variants).
    #[arg(long, value_enum, value_name = "INIT")]
    bn_gamma: Option<GammaArg>,
    /// Training images held out for validation, taken from the end (default: 5,000 for the
    /// full CIFAR-10, a tenth of the training images for smaller sets).
    #[arg(long)]
    validation: Option<usize>,
    /// Stop after this many steps in all.
    #[arg(long)]
    max_steps: Option<u64>,
    #[arg(long, value_enum, default_value = "eval")]
    train_metrics: TrainMetricsArg,
    /// Run each batch as micro-batches of at most this many images.
    #[arg(long)]
    micro_batch: Option<usize>,
    /// What a step whose loss, gradients or batch statistics are not finite does: such a step
    /// is never applied; `stop` ends the run, `skip` goes on with the next batch (default:
    /// stop, or a resumed run's own setting).
    #[arg(long, value_enum)]
    on_nonfinite: Option<OnNonFiniteArg>,
    /// With --on-nonfinite skip: stop after this many skipped steps in a row.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    max_skipped_in_a_row: u32,
    /// Initial weights: a safetensors file of state_dict tensors (torchvision names).
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// With --init: keep a fresh final layer when the file's has another number of classes.
    #[arg(long, requires = "init")]
    new_head: bool,
    /// Where checkpoints (last.safetensors, best.safetensors), metrics and the plot go.
    #[arg(long, default_value = "checkpoints", value_name = "DIR")]
    checkpoint_dir: PathBuf,
    /// Continue a saved run from its checkpoint (its own settings; --epochs and --max-steps
    /// may extend it).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// Metrics file: .csv or .jsonl (default DIR/metrics.csv).
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    /// No progress bar (one line per epoch only).
    #[arg(long)]
    quiet: bool,
    /// After each epoch (and its checkpoint), print the memory in use: device allocations and
    /// bytes, host memory resident. A long run should stay flat from the second epoch on.
    #[arg(long)]
    track_memory: bool,
}

impl TrainArgs {
    /// The run's settings for a training set of `train_images`.
    fn config(&self, train_images: usize) -> TrainConfig {
        let mut model = ModelSpec::named(self.variant.into(), self.stem.into());
        if let Some(w) = &self.widths {
            model.config.widths = w.clone();
        }
        if let Some(b) = &self.blocks {
            model.config.blocks = b.clone();
        }
        if let Some(first) = self.widths.as_ref().and_then(|w| w.first()) {
            model.config.stem_width = *first;
        }
        model.config.upsample = self.upsample;
        TrainConfig {
            model,
            batch: self.batch,
            epochs: self.epochs,
            sgd: SgdConfig {
                lr: self.lr,
                momentum: self.momentum,
                weight_decay: self.weight_decay,
            },
            lr_schedule: match self.schedule {
                ScheduleArg::Plateau => LrSchedule::Plateau {
                    factor: self.factor,
                    patience: self.patience,
                    threshold: 1e-4,
                },
                ScheduleArg::Cosine => LrSchedule::Cosine { min_lr: 0.0 },
                ScheduleArg::Constant => LrSchedule::Constant,
            },
            augment: BatchOptions {
                hflip: !self.no_flip,
                crop_padding: self.crop.then_some(4),
            },
            shuffle: !self.no_shuffle,
            seed: self.seed,
            validation: self
                .validation
                .unwrap_or_else(|| default_validation(train_images)),
            max_steps: self.max_steps,
            train_metrics: match self.train_metrics {
                TrainMetricsArg::Eval => TrainMetrics::Eval,
                TrainMetricsArg::Running => TrainMetrics::Running,
            },
            max_micro_batch: self.micro_batch,
            gamma: self.bn_gamma.map(|g| match g {
                GammaArg::Ones => GammaInit::Ones,
                GammaArg::Uniform => GammaInit::Uniform,
            }),
            on_nonfinite: self.on_nonfinite().unwrap_or_default(),
        }
    }

    /// The policy for steps that are not finite, where one was given.
    fn on_nonfinite(&self) -> Option<OnNonFinite> {
        self.on_nonfinite.map(|policy| match policy {
            OnNonFiniteArg::Stop => OnNonFinite::Stop,
            OnNonFiniteArg::Skip => OnNonFinite::Skip {
                in_a_row: self.max_skipped_in_a_row,
            },
        })
    }
}

fn validate(config: &TrainConfig) -> Result<(), String> {
    let c = &config.model.config;
    if config.batch == 0 || config.epochs == 0 {
        return Err("--batch and --epochs must be at least 1".into());
    }
    c.validate(config.model.classes)
        .map_err(|reason| format!("--widths, --blocks or --upsample: {reason}"))?;
    if !(config.sgd.lr > 0.0 && config.sgd.lr.is_finite()) {
        return Err("--lr must be a positive number".into());
    }
    // The ranges a saved run is held to when it is read back.
    config
        .check()
        .map_err(|reason| format!("a setting is out of range: {reason}; change the matching option"))
}

/// Plans a configuration and chooses its kernels (measured, or from the cache), saying how
/// long it took.
fn prepare_kernels(
    ctx: &GpuContext,
    config: &TrainConfig,
    device: &super::DeviceOptions,
) -> Result<Plan, Box<dyn std::error::Error>> {
    let cache = resnet_wgpu::schedule::KernelCache::default_location();
    let mut plan = config.plan(ctx, device.kernels, device.memory_mode)?;
    println!("{}", plan.mode_note());
    let report = pollster::block_on(resnet_wgpu::schedule::choose_kernels(
        ctx,
        &mut plan,
        &cache,
        resnet_wgpu::schedule::Tuning::Measure,
        |_, _| {},
    ))?;
    println!(
        "kernels ({}): {} launch shapes measured in {:.1} s, {} from the cache",
        report.policy.name(),
        report.measured,
        report.seconds,
        report.cached
    );
    if let Some(note) = &report.cache_note {
        println!("{note}");
    }
    Ok(plan)
}

pub fn run_train(args: TrainArgs, device: super::DeviceOptions) -> Result<(), Box<dyn std::error::Error>> {
    let start = std::time::Instant::now();
    let ctx = device.open_gpu()?;
    let data = args.data.load()?;
    let mut trainer = match &args.resume {
        Some(path) => {
            let checkpoint = Checkpoint::load(path)?;
            let plan = prepare_kernels(&ctx, &checkpoint.header.config, &device)?;
            let mut trainer = Trainer::resume_from_plan(
                &ctx,
                plan,
                &checkpoint,
                Splits::new(&data, checkpoint.header.config.validation),
            )?;
            trainer.config.epochs = trainer.config.epochs.max(args.epochs);
            trainer.config.max_steps = args.max_steps;
            validate(&trainer.config)?;
            if let Some(policy) = args.on_nonfinite() {
                trainer.config.on_nonfinite = policy;
            }
            println!(
                "resuming {} at epoch {}, step {} of {path:?}",
                trainer.config.model.describe(),
                trainer.state.epochs_done + 1,
                trainer.state.step_in_epoch
            );
            trainer
        }
        None => {
            let config = args.config(data.train.len());
            validate(&config)?;
            let initial = match &args.init {
                Some(path) => {
                    let model = config.model.build();
                    let fresh: Vec<Vec<f32>> = config.initial_parameters(&model);
                    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
                    let head = args.new_head.then_some(&fresh[..]);
                    let (state, report) =
                        load_weights_reporting(&path.display().to_string(), &bytes, &model, head)?;
                    let converted = report
                        .converted
                        .describe()
                        .map_or(String::new(), |c| format!("; {c}"));
                    println!(
                        "initial weights: {} tensors from {path:?}, {} fresh{converted}",
                        report.loaded,
                        report.fresh.len()
                    );
                    Some(state)
                }
                None => None,
            };
            let splits = Splits::new(&data, config.validation);
            let plan = prepare_kernels(&ctx, &config, &device)?;
            Trainer::from_plan(&ctx, plan, config, splits, initial)?
        }
    };
    let config = trainer.config.clone();
    println!(
        "ready to train {:.1} s after start (device, data, kernel choice, pipelines)",
        start.elapsed().as_secs_f64()
    );
    println!("adapter: {}", ctx.describe());
    println!(
        "model: {}, {} parameters; data: {} train, {} validation, {} test images",
        config.model.describe(),
        trainer
            .net
            .plan
            .model
            .parameters()
            .iter()
            .map(|p| p.len())
            .sum::<usize>(),
        trainer.data.train.len(),
        trainer.data.validation.len(),
        trainer.data.test.len()
    );
    println!("{}", trainer.net.plan.memory);
    if args.track_memory {
        println!("memory before the first step: {}", ctx.memory_use());
    }

    let dir = &args.checkpoint_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
    let metrics_path = args.metrics.clone().unwrap_or_else(|| dir.join("metrics.csv"));
    let mut metrics = MetricsWriter::create(&metrics_path, args.resume.is_some())?;
    let bar = progress_bar(&trainer, args.quiet);
    let mut best_val = trainer
        .state
        .history
        .iter()
        .filter_map(|m| m.val_loss)
        .fold(f64::INFINITY, f64::min);
    let outcome = loop {
        match pollster::block_on(trainer.advance(&ctx)) {
            Err(e) => break Err(e),
            Ok(Progress::Finished) => break Ok(()),
            Ok(Progress::Step(s)) => {
                if !s.non_finite.is_finite() {
                    say(
                        &bar,
                        format!(
                            "epoch {} step {}: skipped, {} was not finite (loss {:.4e}); {} skipped in all",
                            s.epoch + 1,
                            s.step + 1,
                            s.non_finite.describe(),
                            s.loss,
                            trainer.state.skipped_steps
                        ),
                    );
                }
                bar.set_position(s.global_step);
                bar.set_message(format!(
                    "epoch {}/{} step {}/{} loss {:.4} {:.1} img/s",
                    s.epoch + 1,
                    config.epochs,
                    s.step + 1,
                    trainer.steps_per_epoch(),
                    s.loss,
                    s.images_per_sec
                ));
            }
            Ok(Progress::Epoch(m)) => {
                say(
                    &bar,
                    format!(
                        "epoch {:>3}: train loss {:.4} error {:.4} | validation loss {} error {} | lr {:.2e} | {:.1} img/s, {:.0} s",
                        m.epoch,
                        m.train_loss,
                        m.train_error,
                        m.val_loss.map_or("-".into(), |v| format!("{v:.4}")),
                        m.val_error.map_or("-".into(), |v| format!("{v:.4}")),
                        m.lr,
                        m.images_per_sec,
                        m.seconds
                    ),
                );
                metrics.write(&m)?;
                let checkpoint = pollster::block_on(trainer.checkpoint(&ctx))?;
                checkpoint.save(&dir.join("last.safetensors"))?;
                if let Some(v) = m.val_loss.filter(|&v| v < best_val) {
                    best_val = v;
                    checkpoint.save(&dir.join("best.safetensors"))?;
                }
                if args.track_memory {
                    say(
                        &bar,
                        format!("memory after epoch {:>3}: {}", m.epoch, ctx.memory_use()),
                    );
                }
            }
        }
    };
    bar.finish_and_clear();
    outcome?;
    // A run stopped by --max-steps inside an epoch still saves where it stands.
    let checkpoint = pollster::block_on(trainer.checkpoint(&ctx))?;
    checkpoint.save(&dir.join("last.safetensors"))?;
    if !trainer.state.history.is_empty() {
        let plot = dir.join("curves.png");
        plot_curves(&trainer.state.history, &plot)?;
        println!("curves: {}", plot.display());
    }
    println!("checkpoint: {}", dir.join("last.safetensors").display());
    println!("metrics: {}", metrics_path.display());
    if !trainer.data.test.is_empty() {
        let report = pollster::block_on(trainer.evaluate(&ctx, &trainer.data.test))?;
        println!("\ntest set ({} images)\n{report}", trainer.data.test.len());
    }
    Ok(())
}

/// Prints a line above the progress bar (or plainly when the bar is hidden).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn progress_bar(trainer: &Trainer, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(trainer.total_steps());
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps, ETA {eta} | {msg}")
            .expect("the template is valid"),
    );
    bar.set_position(trainer.state.global_step);
    bar
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Test,
    Validation,
    Train,
}

#[derive(Args)]
pub struct EvalArgs {
    /// The checkpoint to evaluate.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Also write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// A network holding a checkpoint's weights, for inference.
fn inference_network(
    ctx: &GpuContext,
    checkpoint: &Checkpoint,
    kernels: KernelPolicy,
) -> Result<Network, Box<dyn std::error::Error>> {
    let model: Model = checkpoint.model().build();
    let plan = Plan::new(model, 64, Network::limits(ctx), None, None, kernels)?;
    let net = Network::from_plan(ctx, plan, &checkpoint.network.params, SgdConfig::REFERENCE)?;
    net.write_state(ctx, &checkpoint.network);
    Ok(net)
}

pub fn run_eval(args: EvalArgs, device: super::DeviceOptions) -> Result<(), Box<dyn std::error::Error>> {
    let kernels = device.kernels;
    let checkpoint = Checkpoint::load(&args.checkpoint)?;
    let data = args.data.load()?;
    let ctx = device.open_gpu()?;
    let splits = Splits::new(&data, checkpoint.header.config.validation);
    let (name, set) = match args.split {
        SplitArg::Test => ("test", &splits.test),
        SplitArg::Validation => ("validation", &splits.validation),
        SplitArg::Train => ("train", &splits.train),
    };
    if set.is_empty() {
        return Err(format!("the {name} split is empty").into());
    }
    let (outputs, names) = (checkpoint.model().classes, &set.class_names);
    if names.len() != outputs {
        return Err(format!(
            "{} has {outputs} outputs, but the data names {} classes ({}): evaluate it on data of \
             the classes it was trained on ({})",
            args.checkpoint.display(),
            names.len(),
            names.join(", "),
            checkpoint.header.class_names.join(", ")
        )
        .into());
    }
    let net = inference_network(&ctx, &checkpoint, kernels)?;
    let report = pollster::block_on(evaluate(&ctx, &net, set))?;
    println!(
        "{} after {} epochs, {} set ({} images)\n\n{report}",
        checkpoint.model().describe(),
        checkpoint.header.state.epochs_done,
        name,
        set.len()
    );
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), Box<dyn std::error::Error>> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {path:?}: {e}"))?;
    Ok(())
}

#[derive(Args)]
pub struct ClassifyArgs {
    /// The checkpoint to classify with.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Image files (PNG, JPEG, BMP, GIF, WebP), resized to 32×32.
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

pub fn run_classify(
    args: ClassifyArgs,
    device: super::DeviceOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let kernels = device.kernels;
    let checkpoint = Checkpoint::load(&args.checkpoint)?;
    let mut pixels = Vec::new();
    for path in &args.images {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
        let chw = decode_image(&path.display().to_string(), &bytes)?;
        pixels.extend(chw.iter().map(|&b| b as f32 / 255.0));
    }
    let ctx = device.open_gpu()?;
    let net = inference_network(&ctx, &checkpoint, kernels)?;
    let logits = pollster::block_on(net.predict(&ctx, &pixels))?;
    let names = &checkpoint.header.class_names;
    for (path, probabilities) in args
        .images
        .iter()
        .zip(softmax_rows(&logits, net.plan.model.classes))
    {
        println!("{}", path.display());
        for (class, p) in top_k(&probabilities, 5) {
            let name = names.get(class).map_or("?", String::as_str);
            println!("  {name:<12} {:>6.2} %", 100.0 * p);
        }
    }
    Ok(())
}
