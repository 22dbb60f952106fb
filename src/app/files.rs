//! Files in and out of the app: dropped files, file dialogs, reading and checking datasets,
//! checkpoints and images off the window's thread (a hostile file never freezes the window),
//! and saving checkpoints (a file natively, a download in the browser).

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};

use crate::data::{Cifar10, load_cifar10_archive, load_cifar10_files};

use crate::schedule::NetworkState;
use crate::train::checkpoint::{WeightsReport, load_weights_reporting};
use crate::train::{Checkpoint, CheckpointError, ModelSpec, TrainConfig};

/// What a file is taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// CIFAR-10: an archive, batch files, or (natively) a folder.
    Dataset,
    Checkpoint,
    Image,
}

impl FileKind {
    /// Guesses from the name: `.safetensors` is a checkpoint, image extensions an image, the
    /// rest data.
    pub fn of(name: &str) -> Self {
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit('.').next().unwrap_or("");
        match ext {
            "safetensors" => FileKind::Checkpoint,
            "png" | "jpg" | "jpeg" | "bmp" | "gif" | "webp" => FileKind::Image,
            _ => FileKind::Dataset,
        }
    }
}

/// A file read into memory (or, natively, a path to load from).
pub struct LoadedFile {
    pub kind: FileKind,
    pub name: String,
    pub bytes: Result<Vec<u8>, String>,
    /// Native: where it is on disk (a dataset folder has no bytes, only this).
    pub path: Option<std::path::PathBuf>,
}

impl LoadedFile {
    pub fn from_bytes(kind: FileKind, name: &str, bytes: Vec<u8>) -> Self {
        Self {
            kind,
            name: name.to_string(),
            bytes: Ok(bytes),
            path: None,
        }
    }
}

/// Weights to start a run from (what `train --init --new-head` does on the command line): a
/// `state_dict` in torchvision's names, its final layer fresh where it has another number of
/// classes.
pub struct InitialWeights {
    pub name: String,
    /// The model they fit.
    pub model: ModelSpec,
    pub state: NetworkState,
    pub report: WeightsReport,
}

impl InitialWeights {
    fn read(name: &str, bytes: &[u8], config: &TrainConfig) -> Result<Self, String> {
        let model = config.model.build();
        let fresh = config.initial_parameters(&model);
        let (state, report) = load_weights_reporting(name, bytes, &model, Some(&fresh)).map_err(|e| {
            format!(
                "{name} is no checkpoint of this program, and as initial weights for {}: {e}",
                config.model.describe()
            )
        })?;
        Ok(Self {
            name: name.to_string(),
            model: config.model.clone(),
            state,
            report,
        })
    }
}

/// A run kept by an earlier start.
pub struct KeptRun {
    pub checkpoint: Box<Checkpoint>,
    /// Where it is kept: a path, or this browser's storage.
    pub place: String,
    /// Bytes of storage this site uses in all (browser).
    pub storage_used: Option<u64>,
    /// Digest of the kept file's bytes.
    pub digest: u64,
}

/// What finished off the window's thread.
pub enum Done {
    File(LoadedFile),
    Dataset(Result<(Cifar10, String), String>),
    /// A checkpoint read and checked (its name, and the checkpoint or why it does not load).
    Checkpoint(String, Result<Box<Checkpoint>, String>),
    /// Initial weights read from a safetensors file of `state_dict` tensors (its name, and
    /// the weights or why they do not fit the model).
    Weights(String, Result<Box<InitialWeights>, String>),
    /// An image decoded to 3×32×32 CHW bytes (its name, and the pixels or why not).
    Image(String, Result<Vec<u8>, String>),
    Saved(Result<String, String>),
    /// The run was kept for the next start: the kept bytes' digest, where, and the storage
    /// the site uses (browser).
    Kept(Result<(u64, String, Option<u64>), String>),
    /// What an earlier start kept (none if nothing).
    KeptRun(Result<Option<KeptRun>, String>),
    /// The kept run was removed (browser).
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    Discarded(Result<(), String>),
    /// A download's progress (native): the fraction done (if the size is known) and a
    /// description; an empty description when it has ended.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Downloading(Option<f32>, String),
}

/// Runs file work in the background and hands back the results.
pub struct Loader {
    sender: UnboundedSender<Done>,
    receiver: UnboundedReceiver<Done>,
    repaint: egui::Context,
}

/// The files dropped on the window this frame.
pub fn dropped(ctx: &egui::Context) -> Vec<egui::DroppedFileHandle> {
    ctx.input(|i| i.raw.dropped_files.clone())
}

pub fn is_hovering(ctx: &egui::Context) -> bool {
    ctx.input(|i| !i.raw.hovered_files.is_empty())
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Loader {
    pub fn new(repaint: egui::Context) -> Self {
        let (sender, receiver) = unbounded();
        Self {
            sender,
            receiver,
            repaint,
        }
    }

    pub fn poll(&mut self) -> Option<Done> {
        self.receiver.try_recv().ok()
    }

    fn finish(sender: &UnboundedSender<Done>, repaint: &egui::Context, done: Done) {
        let _ = sender.unbounded_send(done);
        repaint.request_repaint();
    }

    /// Runs `work` in the background (a thread natively; at once in the browser, which has
    /// none) and delivers its result.
    pub(super) fn background(&self, work: impl FnOnce() -> Done + Send + 'static) {
        let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
        #[cfg(not(target_arch = "wasm32"))]
        std::thread::spawn(move || Self::finish(&sender, &repaint, work()));
        #[cfg(target_arch = "wasm32")]
        Self::finish(&sender, &repaint, work());
    }

    /// Browser: runs `work` on the page's event loop and delivers its result.
    #[cfg(target_arch = "wasm32")]
    pub(super) fn spawn(&self, work: impl std::future::Future<Output = Done> + 'static) {
        let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
        wasm_bindgen_futures::spawn_local(async move { Self::finish(&sender, &repaint, work.await) });
    }

    /// Reads a dropped file (natively from its path; in the browser asynchronously).
    pub fn read_dropped(&self, file: egui::DroppedFileHandle) {
        let name = file_name(file.path());
        let kind = FileKind::of(&name);
        #[cfg(not(target_arch = "wasm32"))]
        self.background(move || {
            let path = file.path().to_path_buf();
            let bytes = if path.is_dir() {
                Err("a folder".to_string())
            } else {
                file.bytes()
            };
            let kind = if path.is_dir() { FileKind::Dataset } else { kind };
            Done::File(LoadedFile {
                kind,
                name,
                bytes,
                path: Some(path),
            })
        });
        #[cfg(target_arch = "wasm32")]
        {
            let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let bytes = file.bytes_async().await;
                Self::finish(
                    &sender,
                    &repaint,
                    Done::File(LoadedFile {
                        kind,
                        name,
                        bytes,
                        path: None,
                    }),
                );
            });
        }
    }

    /// Loads CIFAR-10 from a file (archive or one batch file of its folder) or folder.
    pub fn load_dataset(&self, file: LoadedFile) {
        let name = file.name.clone();
        self.background(move || {
            let result = match (&file.path, file.bytes) {
                // Natively a folder, or a batch file beside the others, loads from disk.
                #[cfg(not(target_arch = "wasm32"))]
                (Some(path), _) if path.exists() => crate::data::load_cifar10(path),
                (_, Ok(bytes)) if is_archive(&name) => load_cifar10_archive(&name, &bytes),
                (_, Ok(bytes)) => load_cifar10_files(vec![(name.clone(), bytes)]),
                (_, Err(e)) => return Done::Dataset(Err(format!("cannot read {name}: {e}"))),
            };
            Done::Dataset(result.map(|data| (data, name)).map_err(|e| e.to_string()))
        });
    }

    /// Reads and checks a checkpoint (header bounds, tensor shapes) in the background. A
    /// safetensors file that is no checkpoint of this program (torchvision's names, no run
    /// header) is read as initial weights for `config`'s model instead.
    pub fn read_checkpoint(&self, file: LoadedFile, config: TrainConfig) {
        self.background(move || {
            let bytes = match file.bytes {
                Ok(bytes) => bytes,
                Err(e) => return Done::Checkpoint(file.name, Err(e)),
            };
            match Checkpoint::from_bytes(&file.name, &bytes) {
                Ok(checkpoint) => Done::Checkpoint(file.name, Ok(Box::new(checkpoint))),
                Err(CheckpointError::NoHeader { .. }) => {
                    let weights = InitialWeights::read(&file.name, &bytes, &config);
                    Done::Weights(file.name, weights.map(Box::new))
                }
                Err(e) => Done::Checkpoint(file.name, Err(e.to_string())),
            }
        });
    }

    /// Decodes an image to the network's 32×32 input in the background.
    pub fn decode_image(&self, file: LoadedFile) {
        self.background(move || {
            let image = file
                .bytes
                .and_then(|bytes| crate::data::decode_image(&file.name, &bytes).map_err(|e| e.to_string()));
            Done::Image(file.name, image)
        });
    }

    /// Asks for a file of `kind` with the system's dialog.
    pub fn pick(&self, kind: FileKind) {
        let filter: (&str, &[&str]) = match kind {
            FileKind::Dataset => ("CIFAR-10", &["gz", "tgz", "tar", "bin"]),
            FileKind::Checkpoint => ("Checkpoint", &["safetensors"]),
            FileKind::Image => ("Image", &["png", "jpg", "jpeg", "bmp", "gif", "webp"]),
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
            std::thread::spawn(move || {
                let picked = rfd::FileDialog::new().add_filter(filter.0, filter.1).pick_file();
                let Some(path) = picked else { return };
                let name = file_name(&path);
                let bytes = std::fs::read(&path).map_err(|e| e.to_string());
                let file = LoadedFile {
                    kind,
                    name,
                    bytes,
                    path: Some(path),
                };
                Self::finish(&sender, &repaint, Done::File(file));
            });
        }
        #[cfg(target_arch = "wasm32")]
        {
            let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let Some(handles) = rfd::AsyncFileDialog::new()
                    .add_filter(filter.0, filter.1)
                    .pick_files()
                    .await
                else {
                    return;
                };
                let mut files = Vec::new();
                for h in handles {
                    files.push((h.file_name(), h.read().await));
                }
                if files.len() > 1 && kind == FileKind::Dataset {
                    let source = format!("{} batch files", files.len());
                    let data = load_cifar10_files(files)
                        .map(|d| (d, source))
                        .map_err(|e| e.to_string());
                    return Self::finish(&sender, &repaint, Done::Dataset(data));
                }
                for (name, bytes) in files {
                    Self::finish(
                        &sender,
                        &repaint,
                        Done::File(LoadedFile::from_bytes(kind, &name, bytes)),
                    );
                }
            });
        }
    }

    /// Natively: a folder holding CIFAR-10.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn pick_folder(&self) {
        let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
        std::thread::spawn(move || {
            let Some(path) = rfd::FileDialog::new().pick_folder() else {
                return;
            };
            let file = LoadedFile {
                kind: FileKind::Dataset,
                name: path.display().to_string(),
                bytes: Err("a folder".into()),
                path: Some(path),
            };
            Self::finish(&sender, &repaint, Done::File(file));
        });
    }

    /// Natively: downloads CIFAR-10 into `folder` (MD5-checked), then loads it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn download_cifar10(&self, folder: &str) {
        let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
        let dir = std::path::PathBuf::from(folder);
        std::thread::spawn(move || {
            let mut last = 0;
            let result = crate::download::download_cifar10(&dir, |done, total| {
                if done - last < 1 << 20 && Some(done) != total {
                    return; // report every MiB
                }
                last = done;
                let fraction = total.map(|t| done as f32 / t.max(1) as f32);
                let text = format!("downloading CIFAR-10: {} MiB", done >> 20);
                Self::finish(&sender, &repaint, Done::Downloading(fraction, text));
            });
            let done = match result {
                Ok(path) => Done::File(LoadedFile {
                    kind: FileKind::Dataset,
                    name: path.display().to_string(),
                    bytes: Err("not read".into()),
                    path: Some(path),
                }),
                Err(e) => Done::Dataset(Err(e.to_string())),
            };
            Self::finish(&sender, &repaint, Done::Downloading(None, String::new()));
            Self::finish(&sender, &repaint, done);
        });
    }

    /// Natively: asks where to save the checkpoint with the system's dialog, then writes it.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_as(&self, name: String, bytes: Vec<u8>) {
        let (sender, repaint) = (self.sender.clone(), self.repaint.clone());
        std::thread::spawn(move || {
            let Some(path) = rfd::FileDialog::new().set_file_name(&name).save_file() else {
                return;
            };
            let done = save_file(&path, &bytes).map(|_| path.display().to_string());
            Self::finish(&sender, &repaint, Done::Saved(done));
        });
    }

    /// Saves checkpoint bytes: natively into `folder` (atomically), in the browser as a
    /// download.
    pub fn save(&self, name: String, bytes: Vec<u8>, folder: &str) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let path = std::path::Path::new(folder).join(&name);
            self.background(move || {
                Done::Saved(save_file(&path, &bytes).map(|_| path.display().to_string()))
            });
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = folder;
            let done = download(&name, &bytes).map(|_| format!("your downloads ({name})"));
            Self::finish(&self.sender, &self.repaint, Done::Saved(done));
        }
    }
}

fn is_archive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".tar.gz") || lower.ends_with(".tgz") || lower.ends_with(".tar") || lower.ends_with(".gz")
}

/// Saves checkpoint bytes to `path` atomically (natively); the error names the file and the
/// step that failed ("cannot write …: …").
#[cfg(not(target_arch = "wasm32"))]
pub(super) fn save_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    crate::fs_atomic::write_atomically(path, bytes).map_err(|e| e.to_string())
}

/// Offers bytes as a file download in the browser.
#[cfg(target_arch = "wasm32")]
fn download(name: &str, bytes: &[u8]) -> Result<(), String> {
    use wasm_bindgen::JsCast;
    let fail = |e: wasm_bindgen::JsValue| format!("the download failed: {e:?}");
    let array = js_sys::Uint8Array::from(bytes);
    let parts = js_sys::Array::of1(&array);
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(fail)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(fail)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document to download from")?;
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(fail)?
        .dyn_into()
        .map_err(|_| "cannot create a link".to_string())?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    web_sys::Url::revoke_object_url(&url).map_err(fail)
}
