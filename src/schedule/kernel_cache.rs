//! The kernel choices measured on an adapter, kept between runs: natively a JSON file in the
//! user's cache folder, in the browser an entry of `localStorage`. A file that is damaged or
//! was written for another adapter (name, backend, driver) is ignored, with a log line.

use std::collections::BTreeMap;

use crate::gpu::{GemmKey, GpuContext, Variant};

/// The stored form: which adapter the choices were measured on, and the choices.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredChoices {
    pub adapter: String,
    pub choices: BTreeMap<GemmKey, Variant>,
}

/// The identity of an adapter for the cache: name, backend, driver and driver version.
pub fn adapter_id(ctx: &GpuContext) -> String {
    let info = &ctx.adapter_info;
    format!(
        "{} | {:?} | {} | {}",
        info.name, info.backend, info.driver, info.driver_info
    )
}

/// Where measured choices are kept.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelCache {
    /// Not kept: every plan measures again.
    None,
    /// A JSON file (native).
    File(std::path::PathBuf),
    /// A `localStorage` entry of this name (browser).
    LocalStorage(String),
}

impl KernelCache {
    /// The default place: `$RESNET_WGPU_CACHE_DIR/kernels.json`, else `kernels.json` in the
    /// user's cache folder (`~/.cache/resnet-wgpu` on Linux) natively, `localStorage` in the
    /// browser.
    pub fn default_location() -> Self {
        if cfg!(target_arch = "wasm32") {
            return KernelCache::LocalStorage("resnet-wgpu-kernels".into());
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let folder = std::env::var_os("RESNET_WGPU_CACHE_DIR")
                .map(std::path::PathBuf::from)
                .or_else(|| dirs::cache_dir().map(|d| d.join("resnet-wgpu")));
            if let Some(folder) = folder {
                return KernelCache::File(folder.join("kernels.json"));
            }
        }
        KernelCache::None
    }

    /// The choices stored for this adapter. Nothing when none are stored, and nothing with a
    /// note saying why (also logged) when the stored text is damaged or belongs to another
    /// adapter.
    pub fn load(&self, ctx: &GpuContext) -> (BTreeMap<GemmKey, Variant>, Option<String>) {
        let Some(text) = self.read_text() else {
            return (BTreeMap::new(), None);
        };
        let ignored = |why: String| {
            let note = format!("kernel cache {self} ignored: {why}; measuring again");
            log::warn!("{note}");
            (BTreeMap::new(), Some(note))
        };
        let stored: StoredChoices = match serde_json::from_str(&text) {
            Ok(stored) => stored,
            Err(e) => return ignored(format!("it is damaged ({e})")),
        };
        let adapter = adapter_id(ctx);
        if stored.adapter != adapter {
            return ignored(format!(
                "it was measured on '{}', not on '{adapter}'",
                stored.adapter
            ));
        }
        (stored.choices, None)
    }

    /// Stores `choices` for this adapter, replacing what was stored. Failing to store is not
    /// an error (the next plan measures again): it is logged and returned as a note.
    pub fn save(&self, ctx: &GpuContext, choices: &BTreeMap<GemmKey, Variant>) -> Option<String> {
        let stored = StoredChoices {
            adapter: adapter_id(ctx),
            choices: choices.clone(),
        };
        let text = serde_json::to_string_pretty(&stored).expect("choices serialize");
        let note = format!(
            "kernel cache {self} could not be written ({})",
            self.write_text(&text).err()?
        );
        log::warn!("{note}");
        Some(note)
    }

    fn read_text(&self) -> Option<String> {
        match self {
            KernelCache::None => None,
            #[cfg(not(target_arch = "wasm32"))]
            KernelCache::File(path) => std::fs::read_to_string(path).ok(),
            #[cfg(target_arch = "wasm32")]
            KernelCache::LocalStorage(key) => local_storage()?.get_item(key).ok().flatten(),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn write_text(&self, text: &str) -> Result<(), String> {
        match self {
            KernelCache::None => Ok(()),
            #[cfg(not(target_arch = "wasm32"))]
            // Written whole, flushed, then renamed: a reader never sees half a file.
            KernelCache::File(path) => {
                crate::fs_atomic::write_atomically(path, text.as_bytes()).map_err(|e| e.to_string())
            }
            #[cfg(target_arch = "wasm32")]
            KernelCache::LocalStorage(key) => local_storage()
                .ok_or("no localStorage")?
                .set_item(key, text)
                .map_err(|e| format!("{e:?}")),
            #[allow(unreachable_patterns)]
            _ => Err("not available on this platform".into()),
        }
    }
}

impl std::fmt::Display for KernelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelCache::None => f.write_str("(none)"),
            KernelCache::File(path) => write!(f, "{}", path.display()),
            KernelCache::LocalStorage(key) => write!(f, "localStorage[{key}]"),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn local_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}
