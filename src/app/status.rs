//! A JSON snapshot of the app's state for tests and scripts. In the browser the page reads it
//! with `resnetStatus()` (see `web/index.html`); natively, tests call [`App::status`].
//! Every field comes from the app's own state; `controls` gives the screen rectangles
//! (x, y, width, height in points; `screen` converts them to the page's pixels) of the main
//! buttons so that a test can click them.

use std::collections::BTreeMap;

use serde::Serialize;

use super::App;
use super::format::{TOP_K, named_top_k};
use super::pages::classify::Classified;
use super::state::DeviceState;

#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// "starting", "ready" or "missing".
    pub device: &'static str,
    pub adapter: Option<String>,
    pub data_source: String,
    pub train_images: usize,
    pub test_images: usize,
    pub variant: String,
    /// "idle", "running", "paused" or "finished".
    pub run: &'static str,
    pub global_step: u64,
    pub total_steps: u64,
    pub step_losses: usize,
    pub last_loss: Option<f64>,
    pub epochs_done: usize,
    pub test_accuracy: Option<f64>,
    pub classified: Option<String>,
    /// The top classes of the classified image that the data names: (class name, probability).
    pub top: Vec<(String, f64)>,
    /// The heat map shown over the classified image, or why there is none.
    pub heat: Option<HeatStatus>,
    pub message: Option<String>,
    pub error: bool,
    /// The device failed and waits to be reopened.
    pub device_failed: bool,
    /// Why the configuration shown at start was chosen for this device.
    pub default_choice: Option<String>,
    /// Estimated seconds per epoch and for the whole run (from a step timed on the device).
    pub estimate: Option<[f64; 2]>,
    /// A step is being timed for the estimate.
    pub estimating: bool,
    /// Training images per second: as estimated before Start, and as the last step ran.
    pub estimated_images_per_second: Option<f64>,
    pub images_per_second: Option<f64>,
    /// What a starting run does before its first step ("choosing kernels", …).
    pub starting: Option<&'static str>,
    /// Seconds the last start took to build the network and to run its first step.
    pub first_step: Option<[f64; 2]>,
    /// Layers with norms from the last step read, and the largest gradient norm among them.
    pub layer_norms: usize,
    pub largest_gradient_norm: Option<f64>,
    /// The run an earlier start kept, offered back.
    pub kept_offer: Option<KeptStatus>,
    /// The run as last kept for the next start.
    pub kept: Option<KeptStatus>,
    /// Digest of the checkpoint file last loaded.
    pub loaded_digest: Option<String>,
    /// Weights the next run starts from: file name, tensors loaded, tensors new.
    pub initial_weights: Option<(String, usize, Vec<String>)>,
    pub tab: String,
    /// The window's size in points: a page of W CSS pixels has W / screen[0] of them per point.
    pub screen: [f32; 2],
    /// Frames drawn so far (the controls are those of the last one).
    pub frames: u64,
    /// Rectangles of the main controls in points: x, y, width, height.
    pub controls: BTreeMap<String, [f32; 4]>,
}

/// The Grad-CAM map of one class: its grid, the cell of its peak (row, column), and the
/// image pixel (y, x) at that cell's centre; or why there is none.
#[derive(Clone, Debug, Serialize)]
pub struct HeatStatus {
    pub class: Option<String>,
    pub cells: [usize; 2],
    pub peak_cell: [usize; 2],
    pub peak_pixel: [f32; 2],
    pub none_because: Option<String>,
}

/// A kept run: its step, the digest of its file (hex), where, and the site's storage use.
#[derive(Clone, Debug, Serialize)]
pub struct KeptStatus {
    pub global_step: u64,
    pub digest: String,
    pub place: String,
    pub storage_used: Option<u64>,
}

impl App {
    /// The app's state as JSON (for tests and scripts).
    pub fn status(&self) -> Status {
        Status::of(self)
    }

    /// Makes the snapshot readable from JavaScript (browser only).
    pub(super) fn publish_status(&self) {
        #[cfg(target_arch = "wasm32")]
        LATEST.with(|s| *s.borrow_mut() = Status::of(self).to_json());
    }
}

impl Status {
    fn of(app: &App) -> Self {
        let names = &app.data.train.class_names;
        let classified = app.pages.classify.classified.as_ref();
        Self {
            device: match app.device {
                DeviceState::Starting => "starting",
                DeviceState::Ready(_) => "ready",
                DeviceState::Missing(_) => "missing",
            },
            adapter: match &app.device {
                DeviceState::Ready(info) => Some(info.adapter.clone()),
                DeviceState::Starting | DeviceState::Missing(_) => None,
            },
            data_source: app.data_source.clone(),
            train_images: app.data.train.len(),
            test_images: app.data.test.len(),
            variant: app.config.model.describe(),
            run: app.run.state.name(),
            global_step: app.run.last_step.map_or(0, |s| s.global_step),
            total_steps: app.run.total_steps,
            step_losses: app.run.step_losses.len(),
            last_loss: app.run.last_step.map(|s| s.loss),
            epochs_done: app.run.epochs.len(),
            test_accuracy: app.pages.evaluation.report.as_ref().map(|r| r.accuracy),
            classified: classified.map(|c| c.name.clone()),
            // As the Classify page lists them: only the classes the data names.
            top: classified
                .map(|c| {
                    named_top_k(&c.top, names, TOP_K)
                        .into_iter()
                        .map(|(k, p)| (names[k].clone(), p))
                        .collect()
                })
                .unwrap_or_default(),
            heat: classified.and_then(|c| heat_status(c, names)),
            message: app.message.as_ref().map(|m| m.text.clone()),
            error: app.message.as_ref().is_some_and(|m| m.error),
            device_failed: app.device_failure.is_some(),
            default_choice: app.setup.default_choice.clone(),
            estimate: app.estimate().and_then(Result::ok).map(|(e, r)| [e, r]),
            estimating: app.setup.estimates.is_timing(),
            estimated_images_per_second: app
                .setup
                .estimates
                .seconds_per_image(&app.config)
                .and_then(|e| e.as_ref().ok())
                .map(|seconds| 1.0 / seconds),
            images_per_second: app.run.last_step.map(|s| s.images_per_sec),
            starting: app.run.starting.map(|(stage, _)| stage.describe()),
            layer_norms: app.run.layer_norms.as_ref().map_or(0, |(_, n)| n.len()),
            largest_gradient_norm: app
                .run
                .layer_norms
                .as_ref()
                .and_then(|(_, n)| n.iter().map(|n| n.gradient).reduce(f64::max)),
            first_step: app.run.first_step.filter(|_| app.run.starting.is_none()),
            kept_offer: app.kept_offer.as_ref().map(|k| KeptStatus {
                global_step: k.checkpoint.header.state.global_step,
                digest: format!("{:016x}", k.digest),
                place: k.place.clone(),
                storage_used: k.storage_used,
            }),
            kept: app.kept.as_ref().map(|k| KeptStatus {
                global_step: k.global_step,
                digest: format!("{:016x}", k.digest),
                place: k.place.clone(),
                storage_used: k.storage_used,
            }),
            loaded_digest: app.loaded_digest.map(|d| format!("{d:016x}")),
            initial_weights: app
                .initial_weights
                .as_ref()
                .map(|w| (w.name.clone(), w.report.loaded, w.report.fresh.clone())),
            tab: app.tab.title().to_string(),
            screen: [app.screen.x, app.screen.y],
            frames: app.frames,
            controls: app
                .controls
                .iter()
                .map(|(k, r)| (k.clone(), [r.min.x, r.min.y, r.width(), r.height()]))
                .collect(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the status serializes")
    }
}

#[cfg(target_arch = "wasm32")]
thread_local! {
    static LATEST: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// The latest snapshot as JSON (browser only; `"{}"` before the first frame).
#[cfg(target_arch = "wasm32")]
pub fn latest() -> String {
    LATEST.with(|s| {
        let s = s.borrow();
        if s.is_empty() { "{}".into() } else { s.clone() }
    })
}

fn heat_status(c: &Classified, names: &[String]) -> Option<HeatStatus> {
    let status = match c.heat.as_ref()? {
        Err(why) => HeatStatus {
            class: None,
            cells: [0, 0],
            peak_cell: [0, 0],
            peak_pixel: [0.0, 0.0],
            none_because: Some(why.clone()),
        },
        Ok(maps) => {
            let class = c.heat_class?;
            let (row, col) = super::heat::peak_cell(maps, class);
            let side = crate::data::IMAGE_SIDE as f32;
            HeatStatus {
                class: names.get(class).cloned(),
                cells: [maps.height, maps.width],
                peak_cell: [row, col],
                peak_pixel: [
                    (row as f32 + 0.5) * side / maps.height as f32,
                    (col as f32 + 0.5) * side / maps.width as f32,
                ],
                none_because: None,
            }
        }
    };
    Some(status)
}
