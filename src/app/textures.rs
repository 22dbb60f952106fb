//! The textures a page draws, made once per key and kept until the page forgets them.

use std::collections::BTreeMap;

/// A page's textures by key.
#[derive(Default)]
pub struct Textures {
    by_key: BTreeMap<String, egui::TextureHandle>,
}

impl Textures {
    /// The texture of a 3×32×32 CHW image, made on first use.
    pub fn of_image(&mut self, ctx: &egui::Context, key: &str, chw: &[u8]) -> egui::TextureHandle {
        if let Some(t) = self.by_key.get(key) {
            return t.clone();
        }
        let rgb = crate::data::chw_to_rgb(chw);
        let image = egui::ColorImage::from_rgb([32, 32], &rgb);
        let texture = ctx.load_texture(key, image, egui::TextureOptions::NEAREST);
        self.by_key.insert(key.to_string(), texture.clone());
        texture
    }

    /// The texture of `key`, made from `make`'s image (smoothed) on first use; none where
    /// `make` gives no image.
    pub fn of(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        make: impl FnOnce() -> Option<egui::ColorImage>,
    ) -> Option<egui::TextureHandle> {
        if let Some(t) = self.by_key.get(key) {
            return Some(t.clone());
        }
        let texture = ctx.load_texture(key, make()?, egui::TextureOptions::LINEAR);
        self.by_key.insert(key.to_string(), texture.clone());
        Some(texture)
    }

    /// Forgets every texture (they are made again when next drawn).
    pub fn clear(&mut self) {
        self.by_key.clear();
    }
}
