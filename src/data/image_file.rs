//! Ordinary image files (PNG, JPEG, BMP, GIF, WebP) → one 32×32 CIFAR-layout image, for
//! classifying a picture a person drops on the window.

use image::imageops::FilterType;

use super::{DataError, IMAGE_BYTES, IMAGE_SIDE};

/// Decodes `bytes` (format guessed from the content), composites any transparency over
/// white, crops the central square (CIFAR's objects are centred in square frames; stretching
/// would distort them), resizes it to 32×32 with a triangle (bilinear, area-aware when
/// shrinking) filter, and returns the 3,072 CHW bytes (1,024 R, 1,024 G, 1,024 B).
/// `name` names the file in errors.
pub fn decode_image(name: &str, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let img = image::load_from_memory(bytes).map_err(|e| DataError::NotImage {
        file: name.to_string(),
        reason: e.to_string(),
    })?;
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let side = w.min(h);
    if side == 0 {
        return Err(DataError::NotImage {
            file: name.to_string(),
            reason: format!("it is {w}×{h} pixels"),
        });
    }
    let square = image::imageops::crop_imm(&rgba, (w - side) / 2, (h - side) / 2, side, side);
    let small = image::imageops::resize(
        &*square,
        IMAGE_SIDE as u32,
        IMAGE_SIDE as u32,
        FilterType::Triangle,
    );
    let plane = IMAGE_SIDE * IMAGE_SIDE;
    let mut out = vec![0u8; IMAGE_BYTES];
    for (p, px) in small.pixels().enumerate() {
        let alpha = px[3] as u32;
        for c in 0..3 {
            // Over white: c·α + 255·(1 − α), rounded.
            out[c * plane + p] = ((px[c] as u32 * alpha + 255 * (255 - alpha) + 127) / 255) as u8;
        }
    }
    Ok(out)
}
