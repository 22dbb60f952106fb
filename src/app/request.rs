//! What the person asks for with a button of a page, the setup or a banner. The pages draw
//! from their own state and what they are given, and collect requests; the app carries them
//! out once the frame's pages are drawn.

use crate::gpu::KernelPolicy;

use super::files::FileKind;

/// A request from a control of the window.
pub enum Request {
    /// Use the built-in sample data.
    UseSampleData,
    /// Choose a file of this kind with the system's dialog.
    Pick(FileKind),
    /// Natively: choose a folder holding CIFAR-10.
    #[cfg(not(target_arch = "wasm32"))]
    PickFolder,
    /// Natively: download CIFAR-10 into `./data`.
    #[cfg(not(target_arch = "wasm32"))]
    DownloadCifar10,
    /// Bytes a network's buffers may take in all, for runs started from now on.
    SetMemoryBudget(u64),
    /// The memory mode of runs started from now on (`None`: each plan chooses).
    SetMemoryMode(Option<crate::schedule::MemoryMode>),
    Start,
    Pause,
    Resume,
    Stop,
    /// The report on the test set.
    Evaluate,
    /// Save the run's checkpoint into the checkpoint folder (a download in the browser).
    Save,
    /// Natively: save the run's checkpoint through the system's save dialog.
    #[cfg(not(target_arch = "wasm32"))]
    SaveAs,
    /// Classify an image file's bytes.
    Classify {
        name: String,
        bytes: Vec<u8>,
    },
    /// How later runs choose their kernels.
    SetKernelPolicy(KernelPolicy),
    /// Open a new device after a failure and continue the run.
    ReopenDevice,
    /// Load the run an earlier start kept.
    ResumeKeptRun,
    /// Decline the run an earlier start kept.
    DiscardKeptRun,
}
