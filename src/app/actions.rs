//! What the app does when asked: by its controls (see [`Request`]), by the news it receives,
//! or by a test or script through its public methods.

use std::sync::Arc;

use crate::data::{Cifar10, sample_dataset};

use super::files::{FileKind, LoadedFile};
use super::request::Request;
use super::run::{RunState, Starting, check_start};
use super::state::{DeviceState, Message, Tab};
use super::worker::Command;
use super::{App, SAMPLE_TRAIN};

impl App {
    /// Carries out a request of one of the window's controls.
    pub(super) fn carry_out(&mut self, request: Request) {
        match request {
            Request::UseSampleData => self.use_sample_data(),
            Request::Pick(kind) => self.files.pick(kind),
            #[cfg(not(target_arch = "wasm32"))]
            Request::PickFolder => self.files.pick_folder(),
            #[cfg(not(target_arch = "wasm32"))]
            Request::DownloadCifar10 => self.files.download_cifar10("data"),
            Request::SetMemoryBudget(bytes) => self.worker.send(Command::SetMemoryBudget(bytes)),
            Request::SetMemoryMode(mode) => self.worker.send(Command::SetMemoryMode(mode)),
            Request::Start => self.start_training(),
            Request::Pause => self.pause(),
            Request::Resume => self.resume(),
            Request::Stop => self.stop(),
            Request::Evaluate => self.evaluate(),
            Request::Save => self.save_checkpoint(),
            #[cfg(not(target_arch = "wasm32"))]
            Request::SaveAs => self.save_checkpoint_as(),
            Request::Classify { name, bytes } => self.classify_bytes(&name, &bytes),
            Request::SetKernelPolicy(policy) => self.worker.send(Command::SetKernelPolicy(policy)),
            Request::ReopenDevice => self.reopen_device(),
            Request::ResumeKeptRun => self.resume_kept_run(),
            Request::DiscardKeptRun => self.discard_kept_run(),
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
    pub(super) fn keep_run(&mut self) {
        if self.run.config.is_some() && self.device_failure.is_none() {
            self.worker.send(Command::Save { keep: true });
        }
    }

    /// Shows a notice in the message bar.
    pub(super) fn notice(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            error: false,
            text: text.into(),
        });
    }

    /// Shows an error in the message bar.
    pub(super) fn error(&mut self, text: impl Into<String>) {
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
        self.pages.evaluation.report = None;
        self.worker.send(Command::Train {
            config: self.config.clone(),
            data: self.data.clone(),
            initial: self.initial_weights.as_ref().map(|w| Box::new(w.state.clone())),
        });
        self.notice("starting…");
    }

    /// Why Start cannot run the configuration on the loaded data, if it cannot.
    pub fn check_config(&self) -> Result<(), String> {
        check_start(
            &self.device,
            &self.config,
            self.initial_weights.as_deref(),
            &self.data,
        )
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

    /// Asks the worker to time a step of the selected model, once per model, while idle.
    pub(super) fn request_estimate(&mut self) {
        let idle = matches!(self.run.state, RunState::Idle | RunState::Finished);
        let ready = matches!(self.device, DeviceState::Ready(_)) && self.device_failure.is_none();
        if !ready || !idle || !self.setup.estimates.wanted(&self.config) {
            return;
        }
        if self.data.train.len() < 2 {
            return;
        }
        self.setup.estimates.timing_started();
        self.worker.send(Command::Estimate {
            config: self.config.clone(),
            data: self.data.clone(),
        });
    }

    /// Seconds per epoch and for the whole run of the selected configuration on the loaded
    /// data, from the measured step; `None` before it is measured.
    pub fn estimate(&self) -> Option<Result<(f64, f64), String>> {
        self.setup.estimates.of_run(&self.config, &self.data)
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
    pub(super) fn classify_image(&mut self, name: String, image: Vec<u8>) {
        self.worker.send(Command::Classify {
            name: name.clone(),
            image: image.clone(),
        });
        self.pages.classify.classifying(name, image);
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
        self.pages.data.forget_images();
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
    pub(super) fn use_checkpoint(&mut self, name: &str, checkpoint: crate::train::Checkpoint) {
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
}
