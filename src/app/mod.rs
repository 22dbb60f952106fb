//! The egui app, natively and in the browser: data, model and hyper-parameters, training with
//! live curves, evaluation, classification of dropped images, checkpoints, and the device.
//!
//! The window never trains itself: a worker ([`worker`]) owns the GPU and the trainer, and the
//! window sends it commands and draws the events it reports.

mod banners;
mod files;
mod format;
mod heat;
mod kept;
mod messages;
#[cfg(not(target_arch = "wasm32"))]
pub mod screenshot;
mod setup;
mod status;
mod views;
pub mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::data::{Cifar10, sample_dataset};
use crate::schedule::MemoryReport;
use crate::train::{EpochMetrics, EvalReport, StepReport, TrainConfig};

pub use files::{FileKind, LoadedFile};
pub use status::Status;
use worker::{Command, DeviceInfo, Event, WorkerHandle};

/// Training images of the built-in sample data (and a sixth as many test images).
pub const SAMPLE_TRAIN: usize = 6000;

/// The page shown in the central area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Training,
    Evaluation,
    Classify,
    Data,
    Device,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Training,
        Tab::Evaluation,
        Tab::Classify,
        Tab::Data,
        Tab::Device,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Training => "Training",
            Tab::Evaluation => "Evaluation",
            Tab::Classify => "Classify",
            Tab::Data => "Data",
            Tab::Device => "Device",
        }
    }
}

/// Where the trainer's device stands.
pub enum DeviceState {
    Starting,
    Ready(DeviceInfo),
    Missing(String),
}

/// Where the run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Idle,
    Running,
    Paused,
    Finished,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Finished => "finished",
        }
    }
}

/// What the window knows of the current run.
pub struct RunView {
    pub state: RunState,
    pub config: Option<TrainConfig>,
    pub memory: Option<MemoryReport>,
    pub steps_per_epoch: usize,
    pub total_steps: u64,
    pub last_step: Option<StepReport>,
    /// (global step, batch loss) of every step.
    pub step_losses: Vec<[f64; 2]>,
    pub epochs: Vec<EpochMetrics>,
    /// While a run is being prepared: kernel shapes chosen of all.
    pub preparing: Option<(usize, usize)>,
    /// What a starting run does before its first step, and since when.
    pub starting: Option<(Starting, web_time::Instant)>,
    /// Seconds the last start took to build the network (buffers, pipelines) and to run its
    /// first step.
    pub first_step: Option<[f64; 2]>,
    /// Per-layer weight and gradient norms, and the step they are from.
    pub layer_norms: Option<(u64, Vec<crate::schedule::LayerNorms>)>,
}

/// The stages of a run's start after Start is pressed, before its first step is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Starting {
    /// Timing the kernel variants of each launch shape (or reading them from the cache).
    ChoosingKernels,
    /// Allocating the network's buffers and compiling its kernels' pipelines.
    BuildingNetwork,
    /// The first training step.
    FirstStep,
}

impl Starting {
    pub fn describe(self) -> &'static str {
        match self {
            Starting::ChoosingKernels => "choosing kernels",
            Starting::BuildingNetwork => {
                "building the network: allocating its buffers and compiling its kernels"
            }
            Starting::FirstStep => "running the first training step",
        }
    }
}

/// The last classified image.
pub struct Classified {
    pub name: String,
    pub image: Vec<u8>,
    pub top: Vec<(usize, f64)>,
    /// Grad-CAM of every class, or why there is none (`None` until classified).
    pub heat: Option<Result<crate::schedule::ClassMaps, String>>,
    /// The class whose map is shown: the top one until another is clicked.
    pub heat_class: Option<usize>,
}

/// The device failed during the run: what happened, and where the run continues from on a
/// new device.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceFailure {
    pub reason: String,
    /// "epoch 3, step 0": the last good state (none if no run had started).
    pub resume_from: Option<String>,
}

/// A message in the bar at the bottom: an error or a notice.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub error: bool,
    pub text: String,
}

pub struct App {
    worker: WorkerHandle,
    pub device: DeviceState,
    pub data: Arc<Cifar10>,
    pub data_source: String,
    pub config: TrainConfig,
    pub run: RunView,
    pub report: Option<EvalReport>,
    pub classified: Option<Classified>,
    /// The Grad-CAM heat map is drawn over the classified image.
    pub show_heat: bool,
    pub message: Option<Message>,
    /// Why the configuration shown at start was chosen for this device (one line).
    pub default_choice: Option<String>,
    /// Measured seconds per training image, by model ([`worker::estimate_key`]).
    pub estimates: BTreeMap<String, Result<f64, String>>,
    /// A step of the selected model is being timed.
    estimating: bool,
    /// Set when the device failed, until it is reopened.
    pub device_failure: Option<DeviceFailure>,
    /// The device is being reopened after a failure.
    reopening: bool,
    pub tab: Tab,
    /// Files being read or loaded off the window's thread.
    files: files::Loader,
    textures: BTreeMap<String, egui::TextureHandle>,
    /// Screen rectangles of the main controls, for the status snapshot.
    controls: BTreeMap<String, egui::Rect>,
    /// The checkpoint being loaded, named in the notice once the worker has it.
    loaded_checkpoint: Option<String>,
    /// Natively, where Save writes checkpoints.
    pub checkpoint_folder: String,
    /// Natively, the next checkpoint goes through the save dialog instead of the folder.
    save_with_dialog: bool,
    /// A download in progress: fraction done (if known) and what is happening.
    pub download: Option<(Option<f32>, String)>,
    /// Natively, a scripted run that ends with a screenshot.
    #[cfg(not(target_arch = "wasm32"))]
    pub screenshot: Option<screenshot::ScreenshotPlan>,
    /// The kernels chosen for the last run, and how runs choose them.
    pub kernels: Option<crate::schedule::TuneReport>,
    pub kernel_policy: crate::gpu::KernelPolicy,
    /// The settings came from an earlier start (no first-start default is chosen then).
    restored_settings: bool,
    /// A run kept by an earlier start, offered back.
    pub kept_offer: Option<files::KeptRun>,
    /// The run as last kept for the next start.
    pub kept: Option<KeptInfo>,
    /// The step of the checkpoint on its way to being kept.
    keeping_step: Option<u64>,
    /// Digest of the checkpoint file last loaded (a dropped one, or the kept run).
    pub loaded_digest: Option<u64>,
    /// Weights the next run starts from, instead of a fresh initialisation.
    pub initial_weights: Option<Box<files::InitialWeights>>,
    /// On a narrow screen: the setup page is shown instead of the tab's page.
    setup_page: bool,
    /// The window's size in points (the unit of the controls' rectangles in the status).
    screen: egui::Vec2,
    /// Frames drawn so far: a test reads a rectangle, then waits for a later frame.
    frames: u64,
}

/// Below this width (in points) the setup is a page of its own instead of a side panel.
const NARROW_WIDTH: f32 = 640.0;

/// The settings remembered between starts (eframe's persistence: a file natively, the
/// browser's local storage on the web).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub config: TrainConfig,
    pub checkpoint_folder: String,
}

/// The key of [`Settings`] in eframe's storage.
const SETTINGS_KEY: &str = "resnet-wgpu settings";

/// The run as last kept for the next start.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptInfo {
    pub global_step: u64,
    pub digest: u64,
    pub place: String,
    /// Bytes of storage the site uses (browser).
    pub storage_used: Option<u64>,
}

impl App {
    /// The app with the sample data loaded, the settings of the last start (or the defaults),
    /// and an offer to resume the run the last start kept.
    pub fn new(cc: &eframe::CreationContext<'_>) -> Self {
        let settings = cc
            .storage
            .and_then(|storage| eframe::get_value::<Settings>(storage, SETTINGS_KEY));
        Self::with_settings(&cc.egui_ctx, settings)
    }

    /// [`App::new`] with the given remembered settings.
    pub fn with_settings(ctx: &egui::Context, settings: Option<Settings>) -> Self {
        let mut app = Self::with_context(ctx);
        if let Some(settings) = settings {
            app.config = TrainConfig {
                validation: crate::train::default_validation(app.data.train.len()),
                ..settings.config
            };
            app.checkpoint_folder = settings.checkpoint_folder;
            app.restored_settings = true;
        }
        app.files.find_kept_run(&app.checkpoint_folder);
        app
    }

    /// What is remembered for the next start.
    pub fn settings(&self) -> Settings {
        Settings {
            config: self.config.clone(),
            checkpoint_folder: self.checkpoint_folder.clone(),
        }
    }

    fn with_context(ctx: &egui::Context) -> Self {
        Self {
            worker: worker::spawn(ctx.clone()),
            device: DeviceState::Starting,
            data: Arc::new(sample_dataset(SAMPLE_TRAIN, SAMPLE_TRAIN / 6, 1)),
            data_source: "built-in sample data".into(),
            config: TrainConfig {
                validation: crate::train::default_validation(SAMPLE_TRAIN),
                ..TrainConfig::reference()
            },
            run: RunView {
                state: RunState::Idle,
                config: None,
                memory: None,
                steps_per_epoch: 0,
                total_steps: 0,
                last_step: None,
                step_losses: Vec::new(),
                epochs: Vec::new(),
                preparing: None,
                starting: None,
                first_step: None,
                layer_norms: None,
            },
            kernels: None,
            kernel_policy: crate::gpu::KernelPolicy::Auto,
            report: None,
            classified: None,
            message: None,
            device_failure: None,
            default_choice: None,
            estimates: BTreeMap::new(),
            estimating: false,
            reopening: false,
            tab: Tab::Training,
            files: files::Loader::new(ctx.clone()),
            textures: BTreeMap::new(),
            controls: BTreeMap::new(),
            loaded_checkpoint: None,
            checkpoint_folder: "checkpoints".into(),
            download: None,
            save_with_dialog: false,
            #[cfg(not(target_arch = "wasm32"))]
            screenshot: None,
            restored_settings: false,
            kept_offer: None,
            kept: None,
            keeping_step: None,
            loaded_digest: None,
            initial_weights: None,
            setup_page: true,
            screen: egui::Vec2::ZERO,
            frames: 0,
            show_heat: true,
        }
    }

    /// Loads the kept run (paused, ready to resume), with its own settings.
    pub fn resume_kept_run(&mut self) {
        let Some(kept) = self.kept_offer.take() else {
            return;
        };
        if kept.checkpoint.header.class_names != self.data.train.class_names {
            self.error(format!(
                "the kept run was trained on other classes ({}); load the data it was trained on first",
                kept.checkpoint.header.class_names.join(", ")
            ));
            self.kept_offer = Some(kept);
            return;
        }
        self.config = kept.checkpoint.header.config.clone();
        self.loaded_digest = Some(kept.digest);
        self.use_checkpoint("the kept run", *kept.checkpoint);
    }

    /// Declines the kept run: in the browser its file is removed.
    pub fn discard_kept_run(&mut self) {
        if self.kept_offer.take().is_some() {
            self.files.discard_kept_run();
        }
    }

    /// Asks for the run's checkpoint to keep it for the next start.
    fn keep_run(&mut self) {
        if self.run.config.is_some() && self.device_failure.is_none() {
            self.worker.send(Command::Save { keep: true });
        }
    }

    fn notice(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            error: false,
            text: text.into(),
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            error: true,
            text: text.into(),
        });
    }

    /// Starts a fresh run of the configuration on the loaded data.
    pub fn start_training(&mut self) {
        if let Err(e) = self.check_config() {
            return self.error(e);
        }
        self.run.config = Some(self.config.clone());
        self.run.step_losses.clear();
        self.run.epochs.clear();
        self.run.last_step = None;
        self.run.first_step = None;
        self.run.layer_norms = None;
        self.run.starting = Some((Starting::ChoosingKernels, web_time::Instant::now()));
        self.report = None;
        self.worker.send(Command::Train {
            config: self.config.clone(),
            data: self.data.clone(),
            initial: self.initial_weights.as_ref().map(|w| Box::new(w.state.clone())),
        });
        self.notice("starting…");
    }

    /// Why Start cannot run the configuration on the loaded data, if it cannot.
    pub fn check_config(&self) -> Result<(), String> {
        if let DeviceState::Missing(why) = &self.device {
            return Err(format!("no GPU to train on: {why}"));
        }
        self.config
            .check()
            .map_err(|reason| format!("a setting is out of range: {reason}"))?;
        if let Some(w) = self
            .initial_weights
            .as_ref()
            .filter(|w| w.model != self.config.model)
        {
            return Err(format!(
                "the initial weights {} are for {}: choose that model, or clear them",
                w.name,
                w.model.describe()
            ));
        }
        let images = self.data.train.len().saturating_sub(self.config.validation);
        if images < self.config.batch {
            return Err(format!(
                "{images} training images after the validation split: fewer than one batch of {}; lower the batch size or the validation split",
                self.config.batch
            ));
        }
        Ok(())
    }

    pub fn pause(&mut self) {
        self.worker.send(Command::Pause);
    }

    pub fn resume(&mut self) {
        self.worker.send(Command::Continue);
        self.run.state = RunState::Running;
    }

    pub fn stop(&mut self) {
        self.worker.send(Command::Stop);
    }

    /// On the first device: a CPU adapter gets the small configuration (the reference takes
    /// minutes a step there), a GPU keeps the reference; `default_choice` says which and why.
    fn choose_default(&mut self, info: &DeviceInfo) {
        if self.default_choice.is_some() {
            return;
        }
        let untouched = !self.restored_settings
            && self.run.state == RunState::Idle
            && self.config
                == TrainConfig {
                    validation: self.config.validation,
                    ..TrainConfig::reference()
                };
        let choice = match (info.cpu, untouched) {
            (true, true) => {
                self.config = TrainConfig {
                    validation: crate::train::default_validation(self.data.train.len()),
                    ..setup::small_and_fast()
                };
                "This adapter is a CPU, where the reference takes minutes a step: the small \
                 network is chosen"
            }
            (true, false) => "This adapter is a CPU: large networks train slowly here",
            (false, _) => "A GPU: the reference experiment is chosen",
        };
        self.default_choice = Some(choice.to_string());
    }

    /// Asks the worker to time a step of the selected model, once per model, while idle.
    fn request_estimate(&mut self) {
        let idle = matches!(self.run.state, RunState::Idle | RunState::Finished);
        let key = worker::estimate_key(&self.config);
        let ready = matches!(self.device, DeviceState::Ready(_)) && self.device_failure.is_none();
        if !ready || !idle || self.estimating || self.estimates.contains_key(&key) {
            return;
        }
        if self.data.train.len() < 2 {
            return;
        }
        self.estimating = true;
        self.worker.send(Command::Estimate {
            config: self.config.clone(),
            data: self.data.clone(),
        });
    }

    /// Seconds per epoch and for the whole run of the selected configuration on the loaded
    /// data, from the measured step; `None` before it is measured.
    pub fn estimate(&self) -> Option<Result<(f64, f64), String>> {
        let key = worker::estimate_key(&self.config);
        let per_image = match self.estimates.get(&key)? {
            Ok(s) => *s,
            Err(e) => return Some(Err(e.clone())),
        };
        let train = self.data.train.len().saturating_sub(self.config.validation);
        let trained = (train / self.config.batch.max(1) * self.config.batch) as f64;
        // Inference takes about a third of a training step per image.
        let evaluated = self.config.validation as f64
            + match self.config.train_metrics {
                crate::train::TrainMetrics::Eval => train as f64,
                crate::train::TrainMetrics::Running => 0.0,
            };
        let epoch = per_image * (trained + evaluated / 3.0);
        Some(Ok((epoch, epoch * self.config.epochs as f64)))
    }

    /// Whether a step of the selected model is being timed.
    pub fn is_estimating(&self) -> bool {
        self.estimating
    }

    /// Opens a new device after a failure and continues the run from its last good state.
    pub fn reopen_device(&mut self) {
        self.device_failure = None;
        self.reopening = true;
        self.device = DeviceState::Starting;
        self.worker.send(Command::ReopenDevice);
        self.notice("reopening the GPU…");
    }

    /// Destroys the worker's device as a driver reset would, to try the recovery.
    pub fn lose_device(&mut self) {
        self.worker.send(Command::LoseDevice);
    }

    /// Makes the worker's device report a real error the next time its work reaches `at`, to
    /// try the failure path on a device that is still alive.
    pub fn arm_fault(&mut self, at: crate::gpu::Fault) {
        self.worker.send(Command::ArmFault(at));
    }

    /// Puts a NaN into the next training step's batch, to try a step that is not finite.
    pub fn poison_next_step(&mut self) {
        self.worker.send(Command::PoisonNextStep);
    }

    /// Where the worker keeps its kernel choices between runs (by default the user's cache
    /// folder; tests keep their own).
    pub fn set_kernel_cache(&mut self, cache: crate::schedule::KernelCache) {
        self.worker.send(Command::SetKernelCache(cache));
    }

    pub fn evaluate(&mut self) {
        self.worker.send(Command::Evaluate);
        self.notice("evaluating on the test set…");
    }

    pub fn save_checkpoint(&mut self) {
        self.save_with_dialog = false;
        self.worker.send(Command::Save { keep: false });
    }

    /// Natively: save through the system's file dialog.
    pub fn save_checkpoint_as(&mut self) {
        self.save_with_dialog = true;
        self.worker.send(Command::Save { keep: false });
    }

    /// Classifies an image file's bytes (any format the image decoder reads); the decoding
    /// runs off the window's thread.
    pub fn classify_bytes(&mut self, name: &str, bytes: &[u8]) {
        self.files
            .decode_image(LoadedFile::from_bytes(FileKind::Image, name, bytes.to_vec()));
    }

    /// Classifies a decoded 3×32×32 CHW image.
    fn classify_image(&mut self, name: String, image: Vec<u8>) {
        self.worker.send(Command::Classify {
            name: name.clone(),
            image: image.clone(),
        });
        self.classified = Some(Classified {
            name,
            image,
            top: Vec::new(),
            heat: None,
            heat_class: None,
        });
        self.tab = Tab::Classify;
    }

    /// Uses a newly loaded dataset (the old one stays if loading failed).
    pub fn set_data(&mut self, data: Cifar10, source: String) {
        self.notice(format!(
            "loaded {source}: {} training and {} test images",
            data.train.len(),
            data.test.len()
        ));
        self.config.validation = crate::train::default_validation(data.train.len());
        self.data = Arc::new(data);
        self.data_source = source;
        self.textures.retain(|k, _| !k.starts_with("data "));
    }

    pub fn use_sample_data(&mut self) {
        self.set_data(
            sample_dataset(SAMPLE_TRAIN, SAMPLE_TRAIN / 6, 1),
            "built-in sample data".into(),
        );
    }

    /// A checkpoint's bytes: read and checked off the window's thread, then loaded.
    pub fn load_checkpoint(&mut self, name: &str, bytes: &[u8]) {
        self.files.read_checkpoint(
            LoadedFile::from_bytes(FileKind::Checkpoint, name, bytes.to_vec()),
            self.config.clone(),
        );
    }

    /// A checked checkpoint: refused with a message if it is of another model than the one
    /// selected or of other classes; else its run is loaded, paused, ready to continue.
    fn use_checkpoint(&mut self, name: &str, checkpoint: crate::train::Checkpoint) {
        if let Err(e) = checkpoint.check_model(name, &self.config.model) {
            return self.error(e.to_string());
        }
        if checkpoint.header.class_names != self.data.train.class_names {
            return self.error(format!(
                "{name} was trained on other classes ({}); load the data it was trained on first",
                checkpoint.header.class_names.join(", ")
            ));
        }
        self.config = checkpoint.header.config.clone();
        self.run.config = Some(self.config.clone());
        self.run.step_losses.clear();
        self.run.last_step = None;
        self.loaded_checkpoint = Some(name.to_string());
        self.worker.send(Command::Resume {
            checkpoint: Box::new(checkpoint),
            data: self.data.clone(),
        });
    }

    /// Handles a file read from a dialog or dropped on the window.
    pub fn open_file(&mut self, file: LoadedFile) {
        match file.kind {
            FileKind::Dataset => self.files.load_dataset(file),
            FileKind::Checkpoint => self.files.read_checkpoint(file, self.config.clone()),
            FileKind::Image => self.files.decode_image(file),
        }
    }

    /// Applies the worker's and the file loader's news.
    fn poll(&mut self) {
        while let Ok(event) = self.worker.events.try_recv() {
            self.apply(event);
        }
        while let Some(done) = self.files.poll() {
            match done {
                files::Done::File(file) => self.open_file(file),
                files::Done::Dataset(Ok((data, source))) => self.set_data(data, source),
                files::Done::Dataset(Err(e)) => self.error(e),
                files::Done::Checkpoint(name, Ok(checkpoint)) => self.use_checkpoint(&name, *checkpoint),
                files::Done::Image(name, Ok(image)) => self.classify_image(name, image),
                files::Done::Weights(name, Ok(weights)) => {
                    let report = &weights.report;
                    self.notice(format!(
                        "{name}: {} tensors loaded, {} new{}{}: Start trains from these weights",
                        report.loaded,
                        report.fresh.len(),
                        if report.fresh.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", report.fresh.join(", "))
                        },
                        report
                            .converted
                            .describe()
                            .map_or(String::new(), |c| format!("; {c}"))
                    ));
                    self.initial_weights = Some(weights);
                }
                files::Done::Weights(name, Err(e)) => self.error(with_name(&name, e)),
                files::Done::Checkpoint(name, Err(e)) | files::Done::Image(name, Err(e)) => {
                    self.error(with_name(&name, e))
                }
                files::Done::Saved(Ok(place)) => self.notice(format!("checkpoint saved to {place}")),
                files::Done::Saved(Err(e)) => self.error(e),
                files::Done::Kept(Ok((digest, place, storage_used))) => {
                    self.kept = self.keeping_step.take().map(|global_step| KeptInfo {
                        global_step,
                        digest,
                        place,
                        storage_used,
                    });
                }
                files::Done::Kept(Err(e)) => {
                    self.keeping_step = None;
                    self.error(format!("the run could not be kept for the next start: {e}"));
                }
                files::Done::KeptRun(Ok(offer)) => self.kept_offer = offer,
                files::Done::KeptRun(Err(e)) | files::Done::Discarded(Err(e)) => self.error(e),
                files::Done::Discarded(Ok(())) => self.notice("the kept run was discarded"),
                files::Done::Downloading(fraction, text) => {
                    self.download = (!text.is_empty()).then_some((fraction, text));
                }
            }
        }
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Device(info) => {
                self.choose_default(&info);
                self.device = DeviceState::Ready(info);
            }
            Event::Estimate {
                key,
                seconds_per_image,
            } => {
                self.estimating = false;
                self.estimates.insert(key, seconds_per_image);
            }
            Event::Preparing { done, total } => self.run.preparing = Some((done, total)),
            Event::Kernels(report) => {
                self.run.preparing = None;
                self.kernels = Some(*report);
                if self.run.starting.is_some() {
                    self.run.starting = Some((Starting::BuildingNetwork, web_time::Instant::now()));
                }
            }
            Event::NoDevice(why) => {
                self.error(format!("no GPU: {why}"));
                self.device = DeviceState::Missing(why);
                self.tab = Tab::Device;
            }
            Event::Started {
                memory,
                steps_per_epoch,
                total_steps,
                resumed_history,
                global_step,
                paused,
            } => {
                // After a device failure the run continues from an earlier step: the steps
                // after it are undone.
                self.run
                    .step_losses
                    .retain(|[step, _]| *step <= global_step as f64);
                self.run.memory = Some(memory);
                self.run.steps_per_epoch = steps_per_epoch;
                self.run.total_steps = total_steps;
                self.run.epochs = resumed_history;
                self.run.state = if paused {
                    RunState::Paused
                } else {
                    RunState::Running
                };
                self.run.starting = match self.run.starting {
                    Some((Starting::BuildingNetwork, since)) if !paused => {
                        let built = since.elapsed().as_secs_f64();
                        self.run.first_step = Some([built, 0.0]);
                        Some((Starting::FirstStep, web_time::Instant::now()))
                    }
                    _ => None,
                };
                let limits = match &self.device {
                    DeviceState::Ready(info) => info.fit,
                    _ => crate::schedule::DeviceLimits {
                        max_buffer: memory.largest_buffer,
                        memory_budget: memory.total(),
                    },
                };
                let split = memory
                    .micro_batch_note(limits)
                    .map_or(String::new(), |note| format!("; each batch {note}"));
                let what = match (&self.loaded_checkpoint.take(), self.reopening) {
                    (Some(name), _) => format!("loaded {name}: press Resume to continue"),
                    (None, true) => {
                        format!("the GPU was reopened; training continues from step {global_step}")
                    }
                    (None, false) => "training".into(),
                };
                self.reopening = false;
                self.notice(format!(
                    "{what} ({:.0} MiB of device memory{split})",
                    crate::schedule::mib(memory.total())
                ));
            }
            Event::Step(s) => {
                if let (Some((Starting::FirstStep, since)), Some([_, first])) =
                    (self.run.starting, self.run.first_step.as_mut())
                {
                    *first = since.elapsed().as_secs_f64();
                    self.run.starting = None;
                }
                self.run.step_losses.push([s.global_step as f64, s.loss]);
                self.run.last_step = Some(s);
                self.run.state = RunState::Running;
            }
            Event::LayerNorms { global_step, norms } => self.run.layer_norms = Some((global_step, norms)),
            Event::Epoch(m) => {
                self.notice(format!(
                    "epoch {} done: validation error {}",
                    m.epoch,
                    m.val_error.map_or("-".into(), |e| format!("{:.2} %", 100.0 * e))
                ));
                self.run.epochs.push(m);
                self.keep_run();
            }
            Event::Paused => {
                if self.run.state == RunState::Running {
                    self.run.state = RunState::Paused;
                }
                self.keep_run();
            }
            Event::Finished => {
                self.run.starting = None;
                self.run.state = RunState::Finished;
                self.keep_run();
                self.notice("training finished: evaluate it, save it, or classify an image");
            }
            Event::Report(report) => {
                self.notice(format!("test accuracy {:.2} %", 100.0 * report.accuracy));
                self.report = Some(*report);
                self.textures.retain(|k, _| !k.starts_with("wrong "));
                self.tab = Tab::Evaluation;
            }
            Event::Classified { name, top, heat } => match &mut self.classified {
                Some(c) if c.name == name => {
                    c.heat_class = top.first().map(|&(class, _)| class);
                    c.top = top;
                    c.heat = Some(heat);
                    self.textures.retain(|k, _| !k.starts_with("heat "));
                }
                _ => {}
            },
            Event::Checkpoint {
                bytes,
                global_step,
                keep: true,
                ..
            } => {
                self.keeping_step = Some(global_step);
                self.files.keep_run(bytes, &self.checkpoint_folder);
            }
            Event::Checkpoint {
                bytes, epochs_done, ..
            } => {
                let name = format!("resnet-epoch{epochs_done}.safetensors");
                #[cfg(not(target_arch = "wasm32"))]
                if self.save_with_dialog {
                    return self.files.save_as(name, bytes);
                }
                self.files.save(name, bytes, &self.checkpoint_folder);
            }
            Event::DeviceFailed { reason, resume_from } => {
                self.run.starting = None;
                if self.run.state == RunState::Running {
                    self.run.state = RunState::Paused;
                }
                self.run.last_step = None;
                self.estimating = false; // a step being timed ended with the device
                self.error(format!(
                    "the GPU failed: {reason}; nothing was saved from the failed step"
                ));
                self.device_failure = Some(DeviceFailure { reason, resume_from });
            }
            Event::Error(text) => {
                self.run.starting = None;
                self.error(text);
            }
        }
    }

    /// The app's state as JSON (for tests and scripts).
    pub fn status(&self) -> Status {
        Status::of(self)
    }

    fn remember(&mut self, name: &str, response: &egui::Response) {
        self.controls.insert(name.to_string(), response.rect);
    }

    /// The texture of a 3×32×32 CHW image, made once per key.
    fn texture(&mut self, ctx: &egui::Context, key: &str, chw: &[u8]) -> egui::TextureHandle {
        if let Some(t) = self.textures.get(key) {
            return t.clone();
        }
        let rgb = crate::data::chw_to_rgb(chw);
        let image = egui::ColorImage::from_rgb([32, 32], &rgb);
        let texture = ctx.load_texture(key, image, egui::TextureOptions::NEAREST);
        self.textures.insert(key.to_string(), texture.clone());
        texture
    }
}

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        self.request_estimate();
        let ctx = ui.ctx().clone();
        for file in files::dropped(&ctx) {
            self.files.read_dropped(file);
        }
        self.screen = ctx.content_rect().size();
        self.frames += 1;
        // On a narrow screen (a phone) the setup is a page of its own instead of a side panel.
        let narrow = ctx.content_rect().width() < NARROW_WIDTH;
        let setup_page = narrow && self.setup_page;
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.heading("ResNet on WebGPU");
                ui.separator();
                if narrow {
                    let r = ui.selectable_label(setup_page, "Setup");
                    self.remember("tab Setup", &r);
                    if r.clicked() {
                        self.setup_page = true;
                    }
                }
                for tab in Tab::ALL {
                    let r = ui.selectable_label(!setup_page && self.tab == tab, tab.title());
                    self.remember(&format!("tab {}", tab.title()), &r);
                    if r.clicked() {
                        self.tab = tab;
                        self.setup_page = false;
                    }
                }
            });
        });
        if self.device_failure.is_some() {
            egui::Panel::top("device failure").show(ui, |ui| banners::device_failure(self, ui));
        }
        if self.kept_offer.is_some() {
            egui::Panel::top("kept run").show(ui, |ui| banners::kept_offer(self, ui));
        }
        egui::Panel::bottom("message").show(ui, |ui| {
            match &self.message {
                Some(m) if m.error => ui.colored_label(ui.visuals().error_fg_color, &m.text),
                Some(m) => ui.label(&m.text),
                None => ui.label("Drop a CIFAR-10 archive, a checkpoint or an image on the window."),
            };
        });
        if !narrow {
            egui::Panel::left("setup").default_size(340.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| setup::show(self, ui));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| match self.tab {
            _ if setup_page => {
                egui::ScrollArea::vertical().show(ui, |ui| setup::show(self, ui));
            }
            Tab::Training => views::training(self, ui),
            Tab::Evaluation => views::evaluation(self, ui),
            Tab::Classify => views::classify(self, ui),
            Tab::Data => views::data(self, ui),
            Tab::Device => views::device(self, ui),
        });
        if files::is_hovering(&ctx) {
            banners::drop_hint(&ctx);
        }
        status::publish(self);
        #[cfg(not(target_arch = "wasm32"))]
        screenshot::step(self, &ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        #[cfg(not(target_arch = "wasm32"))]
        if self.screenshot.is_some() {
            return;
        }
        eframe::set_value(storage, SETTINGS_KEY, &self.settings());
    }
}

/// The latest status snapshot as JSON (browser).
#[cfg(target_arch = "wasm32")]
pub fn status_json() -> String {
    status::latest()
}

/// Opens the desktop window.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_native(screenshot: Option<screenshot::ScreenshotPlan>) -> Result<(), String> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("ResNet on WebGPU")
            .with_inner_size([1280.0, 800.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "resnet-wgpu",
        options,
        Box::new(|cc| {
            let mut app = match screenshot {
                // A scripted run starts as a first start would, keeps its runs apart from the
                // person's, and remembers nothing.
                Some(_) => {
                    let folder =
                        std::env::temp_dir().join(format!("resnet-wgpu-script-{}", std::process::id()));
                    let mut app = App::with_settings(&cc.egui_ctx, None);
                    app.checkpoint_folder = folder.display().to_string();
                    app
                }
                None => App::new(cc),
            };
            app.screenshot = screenshot;
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| {
        format!(
            "the window could not open ({e}); on a machine without a display use the command line (--help)"
        )
    })
}

/// An error about a file, naming the file (once).
fn with_name(name: &str, error: String) -> String {
    if error.contains(name) {
        error
    } else {
        format!("{name}: {error}")
    }
}
