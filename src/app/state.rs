//! The window's shared state that is not the run: the pages' tabs, the device, the message
//! bar, the kept run and the settings remembered between starts.

use crate::train::TrainConfig;

use super::worker::DeviceInfo;

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

/// The run as last kept for the next start.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptInfo {
    pub global_step: u64,
    pub digest: u64,
    pub place: String,
    /// Bytes of storage the site uses (browser).
    pub storage_used: Option<u64>,
}

/// The settings remembered between starts (eframe's persistence: a file natively, the
/// browser's local storage on the web).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    pub config: TrainConfig,
    pub checkpoint_folder: String,
}

/// The key of [`Settings`] in eframe's storage.
pub const SETTINGS_KEY: &str = "resnet-wgpu settings";
