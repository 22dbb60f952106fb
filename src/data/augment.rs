//! Batch assembly: images of a [`Dataset`] → a float tensor [B, 3, 32, 32] in [0, 1]
//! (`u8 / 255`, no mean subtraction, as the reference), with optional random horizontal flip
//! and random crop with zero padding; and the order in which an epoch visits the images.
//!
//! All randomness comes from a [`Rng`] the caller owns, so a run (and a resumed run) is
//! reproducible.

use std::ops::Range;

use super::{CHANNELS, Dataset, IMAGE_BYTES, IMAGE_SIDE};
use crate::rng::Rng;

/// Augmentations applied while assembling a batch. The default is none (evaluation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BatchOptions {
    /// Mirror each image left–right with probability 1/2 (`RandomHorizontalFlip`).
    pub hflip: bool,
    /// Pad by this many zero pixels on every side and crop a random 32×32 window
    /// (`RandomCrop(32, padding=4)` is `Some(4)`).
    pub crop_padding: Option<usize>,
}

impl BatchOptions {
    /// No augmentation.
    pub const NONE: Self = Self {
        hflip: false,
        crop_padding: None,
    };
    /// The reference's training augmentation: horizontal flip only.
    pub const REFERENCE: Self = Self {
        hflip: true,
        crop_padding: None,
    };
}

/// A batch ready for upload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// [B, 3, 32, 32] row-major, values in [0, 1].
    pub images: Vec<f32>,
    /// [B] class indices.
    pub labels: Vec<u32>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Fills `images` ([B, 3, 32, 32], resized to fit; each value `u8 as f32 / 255.0`, correctly
/// rounded, exactly as PyTorch's `ToTensor`) and `labels` ([B]) with the images of
/// `data` at `indices`, augmented per `opts` with randomness from `rng`. The buffers are
/// reused, so a training loop allocates nothing per step.
///
/// Per image, the draws are: crop offsets (dy, then dx, each uniform in 0..=2·padding) if
/// cropping, then the flip (one `next_u64`, low bit) if flipping. Output pixel (y, x) of
/// channel c is source pixel (y + dy − p, x' + dx − p), where x' = 31 − x if flipped else x,
/// and zero where that falls outside the image.
pub fn fill_batch(
    data: &Dataset,
    indices: &[usize],
    opts: BatchOptions,
    rng: &mut Rng,
    images: &mut Vec<f32>,
    labels: &mut Vec<u32>,
) {
    let side = IMAGE_SIDE;
    let plane = side * side;
    images.clear();
    images.resize(indices.len() * IMAGE_BYTES, 0.0);
    labels.clear();
    labels.extend(indices.iter().map(|&i| data.labels[i] as u32));

    for (b, &i) in indices.iter().enumerate() {
        let src = data.image(i);
        let dst = &mut images[b * IMAGE_BYTES..(b + 1) * IMAGE_BYTES];
        let (dy, dx) = match opts.crop_padding {
            Some(p) if p > 0 => {
                let oy = rng.below(2 * p + 1) as isize - p as isize;
                let ox = rng.below(2 * p + 1) as isize - p as isize;
                (oy, ox)
            }
            _ => (0, 0),
        };
        let flip = opts.hflip && rng.next_u64() & 1 == 1;
        if dy == 0 && dx == 0 && !flip {
            // The common case: a straight conversion.
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s as f32 / 255.0;
            }
            continue;
        }
        for c in 0..CHANNELS {
            for y in 0..side {
                let sy = y as isize + dy;
                let row = &mut dst[c * plane + y * side..c * plane + (y + 1) * side];
                if !(0..side as isize).contains(&sy) {
                    row.fill(0.0);
                    continue;
                }
                let src_row = &src[c * plane + sy as usize * side..][..side];
                for (x, d) in row.iter_mut().enumerate() {
                    let xs = if flip { side - 1 - x } else { x };
                    let sx = xs as isize + dx;
                    *d = if (0..side as isize).contains(&sx) {
                        src_row[sx as usize] as f32 / 255.0
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// [`fill_batch`] into new buffers.
pub fn make_batch(data: &Dataset, indices: &[usize], opts: BatchOptions, rng: &mut Rng) -> Batch {
    let mut batch = Batch::default();
    fill_batch(data, indices, opts, rng, &mut batch.images, &mut batch.labels);
    batch
}

/// The order in which an epoch visits a dataset: a permutation drawn afresh for every epoch
/// from `(seed, epoch)` alone, so a run resumed at epoch e sees the same order as the
/// original; or the plain order 0..n when `shuffle` is off (evaluation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOrder {
    pub seed: u64,
    pub shuffle: bool,
}

impl BatchOrder {
    pub fn shuffled(seed: u64) -> Self {
        Self { seed, shuffle: true }
    }

    pub fn sequential() -> Self {
        Self {
            seed: 0,
            shuffle: false,
        }
    }

    /// The indices 0..n in the order epoch `epoch` visits them.
    pub fn epoch(&self, epoch: u64, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        if self.shuffle {
            // Mix the epoch into a fresh stream: consecutive epochs must not share a
            // (shifted) SplitMix sequence.
            let mixed = Rng::new(self.seed ^ epoch.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64();
            Rng::new(mixed).shuffle(&mut order);
        }
        order
    }

    /// The ranges of `order` that make the batches of an epoch of `n` images: full batches of
    /// `batch_size`, then the remainder as a last, smaller batch unless `drop_last`
    /// (PyTorch's `DataLoader` keeps it by default).
    pub fn batches(n: usize, batch_size: usize, drop_last: bool) -> Vec<Range<usize>> {
        assert!(batch_size > 0, "batch size must be at least 1");
        let mut out = Vec::with_capacity(n.div_ceil(batch_size));
        let mut start = 0;
        while start < n {
            let end = (start + batch_size).min(n);
            if end - start < batch_size && drop_last {
                break;
            }
            out.push(start..end);
            start = end;
        }
        out
    }
}
