//! The last run, kept between starts so that closing the window or reloading the page loses
//! nothing. The app keeps the run's checkpoint (weights, optimizer state, settings and
//! per-epoch metrics) at every epoch end, when paused and when finished: natively as
//! `app-run.safetensors` in the checkpoint folder (written atomically), in the browser in the
//! site's origin-private file system (`resnetRunStore` in `web/index.html`). At the next start
//! it offers the kept run back.

use super::files::{Done, KeptRun, Loader};
use crate::train::Checkpoint;

/// The kept run's file name in the checkpoint folder (natively).
#[cfg(not(target_arch = "wasm32"))]
pub const KEPT_NAME: &str = "app-run.safetensors";

/// FNV-1a digest of a file's bytes: two equal digests mean the same weights were kept and
/// loaded back.
pub fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The kept file's bytes, parsed into an offer (`None` where nothing is kept).
fn offer(bytes: Option<Vec<u8>>, place: String, storage_used: Option<u64>) -> Done {
    let Some(bytes) = bytes else {
        return Done::KeptRun(Ok(None));
    };
    let kept = Checkpoint::from_bytes(&place, &bytes)
        .map(|checkpoint| {
            Some(KeptRun {
                checkpoint: Box::new(checkpoint),
                place,
                storage_used,
                digest: digest(&bytes),
            })
        })
        .map_err(|e| format!("the run kept from last time cannot be used: {e}"));
    Done::KeptRun(kept)
}

impl Loader {
    /// Keeps the run's checkpoint for the next start.
    pub fn keep_run(&self, bytes: Vec<u8>, folder: &str) {
        let kept = digest(&bytes);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let path = std::path::Path::new(folder).join(KEPT_NAME);
            self.background(move || {
                let done = super::files::save_file(&path, &bytes);
                Done::Kept(done.map(|_| (kept, path.display().to_string(), None)))
            });
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = folder;
            self.spawn(async move {
                let done = web::call("save", Some(&bytes)).await;
                Done::Kept(done.map(|(_, used)| (kept, web::PLACE.to_string(), Some(used))))
            });
        }
    }

    /// Looks for a run kept by an earlier start.
    pub fn find_kept_run(&self, folder: &str) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let path = std::path::Path::new(folder).join(KEPT_NAME);
            self.background(move || {
                let place = path.display().to_string();
                match std::fs::read(&path) {
                    Ok(bytes) => offer(Some(bytes), place, None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => offer(None, place, None),
                    Err(e) => Done::KeptRun(Err(format!("cannot read {place}: {e}"))),
                }
            });
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = folder;
            self.spawn(async move {
                match web::call("load", None).await {
                    Ok((bytes, used)) => offer(bytes, web::PLACE.to_string(), Some(used)),
                    Err(e) => Done::KeptRun(Err(e)),
                }
            });
        }
    }

    /// Forgets the kept run: in the browser its file is removed; natively the file stays (it
    /// is the person's checkpoint) and only the offer goes.
    pub fn discard_kept_run(&self) {
        #[cfg(target_arch = "wasm32")]
        self.spawn(async move {
            match web::call("discard", None).await {
                Ok(_) => Done::Discarded(Ok(())),
                Err(e) => Done::Discarded(Err(e)),
            }
        });
    }
}

#[cfg(target_arch = "wasm32")]
mod web {
    use wasm_bindgen::{JsCast, JsValue};

    pub const PLACE: &str = "this browser's storage for this site";

    /// Calls `resnetRunStore[method](bytes)` and awaits its `{ bytes, used }`.
    pub async fn call(method: &str, bytes: Option<&[u8]>) -> Result<(Option<Vec<u8>>, u64), String> {
        let fail = |e: JsValue| {
            let text = e
                .as_string()
                .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())));
            format!(
                "the browser's storage failed: {}",
                text.unwrap_or_else(|| format!("{e:?}"))
            )
        };
        let window = web_sys::window().ok_or("no window")?;
        let store = js_sys::Reflect::get(&window, &"resnetRunStore".into()).map_err(fail)?;
        let function: js_sys::Function = js_sys::Reflect::get(&store, &method.into())
            .map_err(fail)?
            .dyn_into()
            .map_err(|_| "the page has no run store".to_string())?;
        let argument = bytes.map_or(JsValue::UNDEFINED, |b| js_sys::Uint8Array::from(b).into());
        let promise: js_sys::Promise = function
            .call1(&store, &argument)
            .map_err(fail)?
            .dyn_into()
            .map_err(|_| "the run store gave no promise".to_string())?;
        let answer = wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map_err(fail)?;
        let bytes = js_sys::Reflect::get(&answer, &"bytes".into()).map_err(fail)?;
        let used = js_sys::Reflect::get(&answer, &"used".into()).map_err(fail)?;
        let bytes = bytes.dyn_ref::<js_sys::Uint8Array>().map(|array| array.to_vec());
        Ok((bytes, used.as_f64().unwrap_or(0.0) as u64))
    }
}
