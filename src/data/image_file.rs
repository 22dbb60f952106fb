//! Ordinary image files (PNG, JPEG, BMP, GIF, WebP) → one 32×32 CIFAR-layout image, for
//! classifying a picture a person drops on the window.

use image::imageops::FilterType;

use super::{DataError, IMAGE_BYTES, IMAGE_SIDE};

/// The longest side of an image to classify (a 268-megapixel square; photos are far smaller).
const MAX_SIDE: u32 = 16_384;

/// Pixels any image file may claim, however small: 4 Mi (16 MiB as RGBA).
const MIN_PIXEL_ALLOWANCE: u64 = 4 << 20;

/// Pixels an image file may claim per byte beyond that. Deflate and JPEG compress a flat
/// picture at most about 1000:1, so a header that claims more than this is damaged or built to
/// exhaust memory.
const PIXELS_PER_BYTE: u64 = 1024;

/// How many pixels a file of `len` bytes may decode to.
fn allowed_pixels(len: usize) -> u64 {
    (len as u64 * PIXELS_PER_BYTE).max(MIN_PIXEL_ALLOWANCE)
}

/// Decodes `bytes` (format guessed from the content), composites any transparency over
/// white, crops the central square (CIFAR's objects are centred in square frames; stretching
/// would distort them), resizes it to 32×32 with a triangle (bilinear, area-aware when
/// shrinking) filter, and returns the 3,072 CHW bytes (1,024 R, 1,024 G, 1,024 B).
/// `name` names the file in errors. An image whose header claims more pixels than its size
/// allows ([`allowed_pixels`]) is refused before decoding.
pub fn decode_image(name: &str, bytes: &[u8]) -> Result<Vec<u8>, DataError> {
    let not_image = |reason: String| DataError::NotImage {
        file: name.to_string(),
        reason,
    };
    let reader = || {
        image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| not_image(e.to_string()))
    };
    // The size in the header is checked before any pixel is decoded: a file of a few bytes
    // may claim millions of pixels.
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| not_image(e.to_string()))?;
    let allowed = allowed_pixels(bytes.len());
    if w as u64 * h as u64 > allowed || w.max(h) > MAX_SIDE {
        return Err(not_image(format!(
            "it claims {w}×{h} pixels in {} bytes, more than a picture of that size holds \
             (at most {MAX_SIDE} pixels a side and {allowed} pixels for this file): it is \
             damaged, or not a picture to classify",
            bytes.len()
        )));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    let mut reader = reader()?;
    reader.limits(limits);
    let img = reader.decode().map_err(|e| not_image(e.to_string()))?;
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
