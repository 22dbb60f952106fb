//! The setup: data, model, hyper-parameters, the memory they need, the estimate, the run's
//! controls and checkpoints. A side panel, or a page of its own on a narrow screen.

mod estimate;
mod first_start;

use crate::data::Cifar10;
use crate::gpu::KernelPolicy;
use crate::model::{Stem, Variant};
use crate::schedule::{MemoryMode, mib};
use crate::shaders::Precision;
use crate::train::{LrSchedule, TrainConfig, default_validation};

use super::controls::Controls;
use super::files::{FileKind, InitialWeights};
use super::request::Request;
use super::run::{RunState, RunView, check_start};
use super::state::{DeviceState, KeptInfo};
pub use estimate::Estimates;

/// The setup's own state: the first start's choice, the estimates, a download.
#[derive(Default)]
pub struct SetupPanel {
    /// Why the configuration shown at start was chosen for this device (one line).
    pub default_choice: Option<String>,
    /// Training steps timed on this device, for the estimate shown before Start.
    pub estimates: Estimates,
    /// A download in progress: fraction done (if known) and what is happening.
    pub download: Option<(Option<f32>, String)>,
}

/// The app's shared state that the setup shows and edits, and where its requests go.
pub struct Shared<'a> {
    pub data: &'a Cifar10,
    pub data_source: &'a str,
    pub config: &'a mut TrainConfig,
    pub device: &'a mut DeviceState,
    pub run: &'a RunView,
    pub initial_weights: &'a mut Option<Box<InitialWeights>>,
    pub kept: Option<&'a KeptInfo>,
    pub checkpoint_folder: &'a mut String,
    pub controls: &'a mut Controls,
    pub requests: &'a mut Vec<Request>,
}

impl Shared<'_> {
    fn remember(&mut self, name: &str, response: &egui::Response) {
        self.controls.remember(name, response);
    }

    fn ask(&mut self, request: Request) {
        self.requests.push(request);
    }

    fn check_config(&self) -> Result<(), String> {
        check_start(
            self.device,
            self.config,
            self.initial_weights.as_deref(),
            self.data,
        )
    }
}

impl SetupPanel {
    /// Draws the setup's sections.
    pub fn ui(&mut self, ui: &mut egui::Ui, mut app: Shared<'_>) {
        let app = &mut app;
        self.data_section(app, ui);
        ui.separator();
        self.model_section(app, ui);
        ui.separator();
        memory_section(app, ui);
        ui.separator();
        self.run_section(app, ui);
        ui.separator();
        checkpoint_section(app, ui);
    }

    /// On the first device: the configuration for it where a `fresh` start (no settings
    /// remembered, no run) still shows the reference one; `default_choice` says which and why.
    pub fn choose_default(&mut self, cpu: bool, config: &mut TrainConfig, fresh: bool, train_images: usize) {
        if self.default_choice.is_none() {
            let choice = first_start::choose_for_device(cpu, config, fresh, train_images);
            self.default_choice = Some(choice.to_string());
        }
    }

    fn data_section(&mut self, app: &mut Shared<'_>, ui: &mut egui::Ui) {
        ui.heading("Data");
        ui.label(format!(
            "{}: {} training, {} test images",
            app.data_source,
            app.data.train.len(),
            app.data.test.len()
        ));
        ui.horizontal_wrapped(|ui| {
            let r = ui.button("Sample data");
            app.remember("Sample data", &r);
            if r.clicked() {
                app.ask(Request::UseSampleData);
            }
            if ui
                .button("Open CIFAR-10…")
                .on_hover_text("the downloaded .tar.gz archive or a batch file")
                .clicked()
            {
                app.ask(Request::Pick(FileKind::Dataset));
            }
            #[cfg(not(target_arch = "wasm32"))]
            if ui.button("Open folder…").clicked() {
                app.ask(Request::PickFolder);
            }
            #[cfg(not(target_arch = "wasm32"))]
            if ui
                .add_enabled(self.download.is_none(), egui::Button::new("Download CIFAR-10"))
                .on_hover_text("fetches the official archive (163 MiB) into ./data and checks its MD5")
                .clicked()
            {
                app.ask(Request::DownloadCifar10);
                self.download = Some((None, "connecting…".into()));
            }
        });
        if let Some((fraction, text)) = &self.download {
            match fraction {
                Some(f) => ui.add(egui::ProgressBar::new(*f).text(text.as_str())),
                None => ui.label(text.as_str()),
            };
        }
    }

    fn model_section(&self, app: &mut Shared<'_>, ui: &mut egui::Ui) {
        ui.heading("Model");
        if let Some(choice) = &self.default_choice {
            ui.label(egui::RichText::new(choice).weak());
        }
        let train_images = app.data.train.len();
        let c = &mut *app.config;
        let before = c.model.clone();
        ui.horizontal(|ui| {
            let label = ui.label("Variant");
            egui::ComboBox::from_id_salt("variant")
                .selected_text(c.model.variant.name())
                .show_ui(ui, |ui| {
                    for v in Variant::ALL {
                        ui.selectable_value(&mut c.model.variant, v, v.name());
                    }
                })
                .response
                .labelled_by(label.id);
            let label = ui.label("Stem");
            egui::ComboBox::from_id_salt("stem")
                .selected_text(c.model.stem.name())
                .show_ui(ui, |ui| {
                    for s in Stem::ALL {
                        ui.selectable_value(&mut c.model.stem, s, s.name());
                    }
                })
                .response
                .labelled_by(label.id);
        });
        if c.model.variant != before.variant {
            c.model.config = c.model.variant.config();
        }
        ui.horizontal(|ui| {
            let r = ui
                .button("Reference")
                .on_hover_text("the blog's experiment: seed ResNet-50 at 224 px, batch 128, 40 epochs");
            if r.clicked() {
                *c = TrainConfig::reference();
                c.validation = default_validation(train_images);
            }
            let r = ui.button("Small and fast").on_hover_text(
                "a ResNet-18-style network with 16/32/64 channels on 32×32 input, batch 32, 5 epochs",
            );
            app.controls.remember("Small and fast", &r);
            if r.clicked() {
                *c = TrainConfig::small_and_fast();
                c.validation = default_validation(train_images);
            }
        });
        let c = &mut *app.config;
        egui::Grid::new("hyper").num_columns(2).show(ui, |ui| {
            let number = |ui: &mut egui::Ui, name: &str, value: egui::DragValue| {
                let label = ui.label(name);
                ui.add(value).labelled_by(label.id);
                ui.end_row();
            };
            number(
                ui,
                "Batch size",
                egui::DragValue::new(&mut c.batch).range(1..=4096),
            );
            number(ui, "Epochs", egui::DragValue::new(&mut c.epochs).range(1..=1000));
            let lr = egui::DragValue::new(&mut c.sgd.lr)
                .range(1e-6..=10.0)
                .speed(0.001)
                .max_decimals(5);
            number(ui, "Learning rate", lr);
            let momentum = egui::DragValue::new(&mut c.sgd.momentum)
                .range(0.0..=0.999)
                .speed(0.01);
            number(ui, "Momentum", momentum);
            let decay = egui::DragValue::new(&mut c.sgd.weight_decay)
                .range(0.0..=0.1)
                .speed(1e-5)
                .max_decimals(6);
            number(ui, "Weight decay", decay);
            let label = ui.label("Schedule");
            egui::ComboBox::from_id_salt("schedule")
                .selected_text(c.lr_schedule.name())
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut c.lr_schedule, LrSchedule::REFERENCE, "plateau");
                    ui.selectable_value(&mut c.lr_schedule, LrSchedule::Cosine { min_lr: 0.0 }, "cosine");
                    ui.selectable_value(&mut c.lr_schedule, LrSchedule::Constant, "constant");
                })
                .response
                .labelled_by(label.id);
            ui.end_row();
            number(
                ui,
                "Validation images",
                egui::DragValue::new(&mut c.validation).range(0..=50_000),
            );
        });
        ui.checkbox(&mut c.augment.hflip, "Random horizontal flips");
        let mut crop = c.augment.crop_padding.is_some();
        ui.checkbox(&mut crop, "Random crops (4-pixel padding)");
        c.augment.crop_padding = crop.then_some(4);
        ui.checkbox(&mut c.shuffle, "Shuffle every epoch");
        initial_weights_row(app, ui);
    }

    fn run_section(&self, app: &mut Shared<'_>, ui: &mut egui::Ui) {
        ui.heading("Training");
        let state = app.run.state;
        ui.horizontal(|ui| {
            let blocked = app.check_config().err();
            let ready = matches!(app.device, DeviceState::Ready(_))
                && state != RunState::Running
                && blocked.is_none();
            let r = ui.add_enabled(ready, egui::Button::new("Start"));
            app.remember("Start", &r);
            if r.clicked() {
                app.ask(Request::Start);
            }
            match state {
                RunState::Running => {
                    let r = ui.button("Pause");
                    app.remember("Pause", &r);
                    if r.clicked() {
                        app.ask(Request::Pause);
                    }
                }
                RunState::Paused => {
                    let r = ui.button("Resume");
                    app.remember("Resume", &r);
                    if r.clicked() {
                        app.ask(Request::Resume);
                    }
                }
                _ => {}
            }
            let r = ui.add_enabled(
                matches!(state, RunState::Running | RunState::Paused),
                egui::Button::new("Stop"),
            );
            app.remember("Stop", &r);
            if r.clicked() {
                app.ask(Request::Stop);
            }
        });
        if let (Some(reason), false) = (app.check_config().err(), state == RunState::Running) {
            ui.colored_label(ui.visuals().warn_fg_color, reason);
        }
        if matches!(state, RunState::Idle | RunState::Finished) {
            self.estimate_line(app, ui);
        }
        match (app.run.preparing, app.run.starting) {
            // The estimate's kernel choice shows in the estimate's line.
            (Some(_), None) => {}
            (Some((done, total)), Some(_)) => {
                ui.add(
                    egui::ProgressBar::new(done as f32 / total.max(1) as f32).text(format!(
                        "choosing kernels: {done} of {total} launch shapes timed on this device"
                    )),
                );
            }
            (None, Some((stage, since))) => {
                // Seconds, redrawn once a second: no spinner, whose redraw at the frame rate
                // takes a CPU adapter's cores from the step it waits for.
                ui.label(format!(
                    "{}… {:.0} s",
                    stage.describe(),
                    since.elapsed().as_secs_f64()
                ));
                ui.ctx().request_repaint_after(std::time::Duration::from_secs(1));
            }
            (None, None) => {}
        }
        if let (Some([built, first]), None) = (app.run.first_step, app.run.starting) {
            ui.label(format!(
                "Started in {}: network built in {}, first step {}",
                duration(built + first),
                duration(built),
                duration(first)
            ));
        }
        if let Some(s) = &app.run.last_step {
            let done = s.global_step as f32 / app.run.total_steps.max(1) as f32;
            let remaining = app.run.total_steps.saturating_sub(s.global_step) as f64;
            let batch = app.run.config.as_ref().map_or(1, |c| c.batch) as f64;
            let eta = remaining * batch / s.images_per_sec.max(1e-9);
            ui.add(egui::ProgressBar::new(done).text(format!(
                "epoch {} · step {}/{} · {:.1} img/s · ETA {}",
                s.epoch + 1,
                s.step + 1,
                app.run.steps_per_epoch,
                s.images_per_sec,
                duration(eta)
            )));
            ui.label(format!("batch loss {}", super::format::format_metric(s.loss, 4)));
        }
        ui.label(format!("state: {}", state.name()));
        let trained = !matches!(state, RunState::Idle);
        let r = ui.add_enabled(trained, egui::Button::new("Evaluate on test set"));
        app.remember("Evaluate", &r);
        if r.clicked() {
            app.ask(Request::Evaluate);
        }
    }

    /// Before Start: how long an epoch and the whole run should take, from a step measured on this
    /// device.
    fn estimate_line(&self, app: &Shared<'_>, ui: &mut egui::Ui) {
        match self.estimates.of_run(app.config, app.data) {
            Some(Ok((epoch, run))) => {
                ui.label(format!(
                    "Estimate: {} per epoch, {} for {} epochs (from a step timed on this device)",
                    duration(epoch),
                    duration(run),
                    app.config.epochs
                ));
            }
            Some(Err(e)) => {
                ui.label(egui::RichText::new(format!("No estimate: {e}")).weak());
            }
            // One bar from the kernel choice to the step's end: the panel keeps its height, so
            // the controls below and above stay where a person aims.
            None if self.estimates.is_timing() => {
                let (fraction, text) = match app.run.preparing {
                    Some((done, total)) => (
                        done as f32 / total.max(1) as f32,
                        format!("timing a step on this device: kernels {done} of {total}"),
                    ),
                    None => (1.0, "timing a step of this network on this device…".to_string()),
                };
                ui.add(egui::ProgressBar::new(fraction).text(text));
            }
            None => {}
        }
    }
}

/// Where a run starts from: a fresh initialisation, or weights from a safetensors file in
/// torchvision's names (`train --init --new-head` on the command line).
fn initial_weights_row(app: &mut Shared<'_>, ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Initial weights:");
        match &*app.initial_weights {
            Some(w) => {
                ui.label(format!(
                    "{} ({} tensors loaded, {} new)",
                    w.name,
                    w.report.loaded,
                    w.report.fresh.len()
                ))
                .on_hover_text(if w.report.fresh.is_empty() {
                    "every tensor of the model comes from the file".to_string()
                } else {
                    format!("new: {}", w.report.fresh.join(", "))
                });
                if ui.button("Clear").clicked() {
                    *app.initial_weights = None;
                }
            }
            None => {
                ui.label("fresh");
                let r = ui
                    .button("Open weights…")
                    .on_hover_text("a safetensors state_dict in torchvision's names; a final layer of another number of classes starts fresh");
                app.remember("Open weights", &r);
                if r.clicked() {
                    app.ask(Request::Pick(FileKind::Checkpoint));
                }
            }
        }
    });
}

fn memory_section(app: &mut Shared<'_>, ui: &mut egui::Ui) {
    let DeviceState::Ready(info) = &mut app.device else {
        ui.label("Memory: waiting for the device…");
        return;
    };
    let mut budget_mib = info.fit.memory_budget >> 20;
    ui.horizontal(|ui| {
        ui.label("Memory budget");
        ui.add(
            egui::DragValue::new(&mut budget_mib)
                .range(64..=1 << 20)
                .speed(64)
                .suffix(" MiB"),
        )
        .on_hover_text(
            "What the network's buffers may take in all; larger batches run as micro-batches to fit",
        );
    });
    if budget_mib << 20 != info.fit.memory_budget {
        info.fit.memory_budget = budget_mib << 20;
        app.requests.push(Request::SetMemoryBudget(budget_mib << 20));
    }
    let before = info.memory_mode;
    ui.horizontal(|ui| {
        ui.label("Memory mode");
        let name = |mode: Option<MemoryMode>| mode.map_or("auto", MemoryMode::name);
        egui::ComboBox::from_id_salt("memory mode")
            .selected_text(name(info.memory_mode))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut info.memory_mode, None, "auto (the fastest that fits)");
                for mode in MemoryMode::ALL {
                    let offered = info.fit.shader_f16 || mode.precision() == Precision::F32;
                    ui.add_enabled_ui(offered, |ui| {
                        ui.selectable_value(&mut info.memory_mode, Some(mode), mode.name())
                            .on_disabled_hover_text(
                                "f16 storage needs shader-f16, which this device does not offer",
                            );
                    });
                }
            })
            .response
            .on_hover_text(
                "full keeps every activation for the backward pass; recompute keeps each residual \
                 block's input and output and reruns the block's forward before its backward \
                 (less memory, about one more forward pass a step); f16 and recompute-f16 store \
                 activations as f16 (half the memory, where the device offers shader-f16)",
            );
    });
    if info.memory_mode != before {
        app.requests.push(Request::SetMemoryMode(info.memory_mode));
    }
    let info = info.clone();
    // The plan the run will make: the same batch, limits, micro-batch cap and memory mode.
    match app
        .config
        .plan_within(info.fit, KernelPolicy::Auto, info.memory_mode)
    {
        Ok(plan) => {
            let m = plan.memory;
            ui.label(format!(
                "Needs {:.0} MiB of device memory ({:.1} M parameters)",
                mib(m.total()),
                plan.model.parameters().iter().map(|p| p.len()).sum::<usize>() as f64 / 1e6
            ));
            if let Some(note) = m.micro_batch_note(info.fit) {
                ui.label(format!("Each batch {note}"));
            }
            ui.label(plan.mode_note());
        }
        Err(e) => {
            ui.colored_label(ui.visuals().error_fg_color, e.to_string());
        }
    }
}

fn checkpoint_section(app: &mut Shared<'_>, ui: &mut egui::Ui) {
    ui.heading("Checkpoint");
    #[cfg(not(target_arch = "wasm32"))]
    ui.horizontal(|ui| {
        let label = ui.label("Folder");
        ui.text_edit_singleline(&mut *app.checkpoint_folder)
            .labelled_by(label.id);
    });
    ui.horizontal(|ui| {
        let trained = !matches!(app.run.state, RunState::Idle);
        let save = if cfg!(target_arch = "wasm32") {
            "Download"
        } else {
            "Save"
        };
        let r = ui.add_enabled(trained, egui::Button::new(save));
        app.remember("Save", &r);
        if r.clicked() {
            app.ask(Request::Save);
        }
        #[cfg(not(target_arch = "wasm32"))]
        if ui.add_enabled(trained, egui::Button::new("Save as…")).clicked() {
            app.ask(Request::SaveAs);
        }
        let load = if cfg!(target_arch = "wasm32") {
            "Upload…"
        } else {
            "Load…"
        };
        let r = ui.button(load);
        app.remember("Load", &r);
        if r.clicked() {
            app.ask(Request::Pick(FileKind::Checkpoint));
        }
    });
    let kept = match app.kept {
        Some(k) => format!(
            "The run is kept for the next start (step {}, at each epoch end and pause).",
            k.global_step
        ),
        None => "The run is kept for the next start at each epoch end and pause.".into(),
    };
    ui.label(egui::RichText::new(kept).weak());
}

/// "1 h 02 min", "3 min 05 s", "12 s", "0.4 s".
pub fn duration(seconds: f64) -> String {
    if seconds < 9.95 {
        return format!("{:.1} s", seconds.max(0.0));
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}
