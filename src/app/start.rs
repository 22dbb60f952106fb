//! How the app starts: its first state (the sample data, the reference configuration, no
//! run), the settings remembered from the last start, and the offer of the run it kept.

use std::sync::Arc;

use crate::data::sample_dataset;
use crate::train::{TrainConfig, default_validation};

use super::controls::Controls;
use super::files;
use super::pages::Pages;
use super::run::RunView;
use super::setup::SetupPanel;
use super::state::{DeviceState, SETTINGS_KEY, Settings, Tab};
use super::{App, SAMPLE_TRAIN, worker};

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
                validation: default_validation(app.data.train.len()),
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
                validation: default_validation(SAMPLE_TRAIN),
                ..TrainConfig::reference()
            },
            run: RunView::idle(),
            message: None,
            device_failure: None,
            reopening: false,
            tab: Tab::Training,
            files: files::Loader::new(ctx.clone()),
            controls: Controls::default(),
            loaded_checkpoint: None,
            checkpoint_folder: "checkpoints".into(),
            save_with_dialog: false,
            #[cfg(not(target_arch = "wasm32"))]
            screenshot: None,
            restored_settings: false,
            kept_offer: None,
            kept: None,
            keeping_step: None,
            loaded_digest: None,
            initial_weights: None,
            setup: SetupPanel::default(),
            pages: Pages::default(),
            setup_page: true,
            screen: egui::Vec2::ZERO,
            frames: 0,
        }
    }
}
