//! The egui app, natively and in the browser: data, model and hyper-parameters, training with
//! live curves, evaluation, classification of dropped images, checkpoints, and the device.
//!
//! The window never trains itself: a worker ([`worker`]) owns the GPU and the trainer, and the
//! window sends it commands and draws the events it reports.
//!
//! This file holds the [`App`] (the state the whole window shares, and each page's own) and
//! the window's layout. The setup (`setup`) and each page ([`pages`]) draw from their own
//! state and what they are given, and collect requests (`request`), which the app carries out
//! (`actions`) once the frame's panels are drawn; the worker's events and the file loader's
//! results change the state in `events`.

mod actions;
mod banners;
mod controls;
mod events;
mod files;
mod format;
mod heat;
mod kept;
mod messages;
pub mod pages;
mod request;
mod run;
#[cfg(not(target_arch = "wasm32"))]
pub mod screenshot;
mod setup;
mod start;
mod state;
pub mod status;
mod step_timing;
mod textures;
pub mod worker;

use std::sync::Arc;

use crate::data::Cifar10;
use crate::train::TrainConfig;

use controls::Controls;
pub use files::{FileKind, LoadedFile};
use pages::Pages;
use request::Request;
pub use run::{RunState, RunView, Starting};
pub use setup::SetupPanel;
pub use state::{DeviceFailure, DeviceState, KeptInfo, Message, Settings, Tab};
use worker::WorkerHandle;

/// Training images of the built-in sample data (and a sixth as many test images).
pub const SAMPLE_TRAIN: usize = 6000;

/// Below this width (in points) the setup is a page of its own instead of a side panel.
const NARROW_WIDTH: f32 = 640.0;

/// The app: what the whole window shares (the worker, the device, the data, the configuration,
/// the run, the message bar, the kept run), and the setup's and the pages' own state.
pub struct App {
    worker: WorkerHandle,
    pub device: DeviceState,
    pub data: Arc<Cifar10>,
    pub data_source: String,
    pub config: TrainConfig,
    pub run: RunView,
    pub message: Option<Message>,
    /// Set when the device failed, until it is reopened.
    pub device_failure: Option<DeviceFailure>,
    /// The device is being reopened after a failure.
    reopening: bool,
    pub tab: Tab,
    /// Files being read or loaded off the window's thread.
    files: files::Loader,
    /// Screen rectangles of the main controls, for the status snapshot.
    controls: Controls,
    /// The checkpoint being loaded, named in the notice once the worker has it.
    loaded_checkpoint: Option<String>,
    /// Natively, where Save writes checkpoints.
    pub checkpoint_folder: String,
    /// Natively, the next checkpoint goes through the save dialog instead of the folder.
    save_with_dialog: bool,
    /// Natively, a scripted run that ends with a screenshot.
    #[cfg(not(target_arch = "wasm32"))]
    pub screenshot: Option<screenshot::ScreenshotPlan>,
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
    /// The setup's own state.
    pub setup: SetupPanel,
    /// The central pages' own state.
    pub pages: Pages,
    /// On a narrow screen: the setup page is shown instead of the tab's page.
    setup_page: bool,
    /// The window's size in points (the unit of the controls' rectangles in the status).
    screen: egui::Vec2,
    /// Frames drawn so far: a test reads a rectangle, then waits for a later frame.
    frames: u64,
}

impl App {
    /// The row of tabs (with a Setup tab on a narrow screen).
    fn tabs(&mut self, ui: &mut egui::Ui, narrow: bool, setup_page: bool) {
        ui.horizontal_wrapped(|ui| {
            ui.heading("ResNet on WebGPU");
            ui.separator();
            if narrow {
                let r = ui.selectable_label(setup_page, "Setup");
                self.controls.remember("tab Setup", &r);
                if r.clicked() {
                    self.setup_page = true;
                }
            }
            for tab in Tab::ALL {
                let r = ui.selectable_label(!setup_page && self.tab == tab, tab.title());
                self.controls.remember(&format!("tab {}", tab.title()), &r);
                if r.clicked() {
                    self.tab = tab;
                    self.setup_page = false;
                }
            }
        });
    }

    /// The setup, scrolling.
    fn setup_ui(&mut self, ui: &mut egui::Ui, requests: &mut Vec<Request>) {
        let shared = setup::Shared {
            data: &self.data,
            data_source: &self.data_source,
            config: &mut self.config,
            device: &mut self.device,
            run: &self.run,
            initial_weights: &mut self.initial_weights,
            kept: self.kept.as_ref(),
            checkpoint_folder: &mut self.checkpoint_folder,
            controls: &mut self.controls,
            requests,
        };
        egui::ScrollArea::vertical().show(ui, |ui| self.setup.ui(ui, shared));
    }

    /// The page of the selected tab.
    fn page_ui(&mut self, ui: &mut egui::Ui, requests: &mut Vec<Request>) {
        match self.tab {
            Tab::Training => pages::training::ui(ui, &self.run),
            Tab::Evaluation => self.pages.evaluation.ui(ui, &self.data.test),
            Tab::Classify => self
                .pages
                .classify
                .ui(ui, &self.data, &mut self.controls, requests),
            Tab::Data => self
                .pages
                .data
                .ui(ui, &self.data, &self.data_source, self.config.validation),
            Tab::Device => self.pages.device.ui(ui, &self.device, requests),
        }
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
        let mut requests = Vec::new();
        egui::Panel::top("tabs").show(ui, |ui| self.tabs(ui, narrow, setup_page));
        if let Some(failure) = &self.device_failure {
            egui::Panel::top("device failure").show(ui, |ui| {
                banners::device_failure(failure, ui, &mut self.controls, &mut requests)
            });
        }
        if let Some(kept) = &self.kept_offer {
            egui::Panel::top("kept run").show(ui, |ui| {
                banners::kept_offer(kept, ui, &mut self.controls, &mut requests)
            });
        }
        egui::Panel::bottom("message").show(ui, |ui| {
            match &self.message {
                Some(m) if m.error => ui.colored_label(ui.visuals().error_fg_color, &m.text),
                Some(m) => ui.label(&m.text),
                None => ui.label("Drop a CIFAR-10 archive, a checkpoint or an image on the window."),
            };
        });
        if !narrow {
            egui::Panel::left("setup")
                .default_size(340.0)
                .show(ui, |ui| self.setup_ui(ui, &mut requests));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            if setup_page {
                self.setup_ui(ui, &mut requests);
            } else {
                self.page_ui(ui, &mut requests);
            }
        });
        for request in requests {
            self.carry_out(request);
        }
        if files::is_hovering(&ctx) {
            banners::drop_hint(&ctx);
        }
        self.publish_status();
        #[cfg(not(target_arch = "wasm32"))]
        self.step_screenshot(&ctx);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        #[cfg(not(target_arch = "wasm32"))]
        if self.screenshot.is_some() {
            return;
        }
        eframe::set_value(storage, state::SETTINGS_KEY, &self.settings());
    }
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
