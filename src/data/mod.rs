//! Data: CIFAR-10 readers (both official layouts, folders or `.tar.gz`), a built-in
//! procedurally generated sample set, batch assembly with augmentation, and image-file decoding.
//! Nothing here touches the GPU.
//!
//! An image is always 3,072 bytes in CIFAR's own layout, CHW: 1,024 red bytes, then 1,024
//! green, then 1,024 blue, each plane 32×32 row-major (index `c·1024 + y·32 + x`).

pub mod augment;
pub mod cifar;
pub mod image_file;
mod pickle;
pub mod sample;

use std::ops::Range;

pub use augment::{Batch, BatchOptions, BatchOrder, fill_batch, make_batch};
pub use cifar::{load_cifar10, load_cifar10_archive, load_cifar10_files};
pub use image_file::decode_image;
pub use sample::sample_dataset;

/// Side of a CIFAR image in pixels.
pub const IMAGE_SIDE: usize = 32;
/// Colour channels (R, G, B).
pub const CHANNELS: usize = 3;
/// Bytes of one image: 3 × 32 × 32.
pub const IMAGE_BYTES: usize = CHANNELS * IMAGE_SIDE * IMAGE_SIDE;
/// Bytes of one record of the binary layout: 1 label byte, then the image.
pub const RECORD_BYTES: usize = 1 + IMAGE_BYTES;
/// Number of classes; labels are 0..=9.
pub const NUM_CLASSES: usize = 10;
/// Where CIFAR-10 is downloaded from; named in error messages.
pub const CIFAR_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar.html";
/// CIFAR-10's class names, in label order (the content of `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; NUM_CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// A labelled set of 32×32 colour images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    /// N × 3,072 bytes; image `i` is `images[i·3072 .. (i+1)·3072]`, CHW (see the module doc).
    pub images: Vec<u8>,
    /// N labels, each 0..=9.
    pub labels: Vec<u8>,
    /// The names of the 10 classes, in label order.
    pub class_names: Vec<String>,
}

/// CIFAR-10 (or a dataset in its layout): the training images and the held-out test images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cifar10 {
    pub train: Dataset,
    pub test: Dataset,
}

impl Dataset {
    /// A dataset from its parts. Panics if `images` is not `labels.len() × 3072` bytes.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, class_names: Vec<String>) -> Self {
        assert_eq!(
            images.len(),
            labels.len() * IMAGE_BYTES,
            "Dataset::new: {} image bytes for {} labels (want {} bytes per image)",
            images.len(),
            labels.len(),
            IMAGE_BYTES
        );
        Self {
            images,
            labels,
            class_names,
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 3,072 CHW bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// The name of class `label` (or the number, if the dataset has no name for it).
    pub fn class_name(&self, label: usize) -> String {
        self.class_names
            .get(label)
            .cloned()
            .unwrap_or_else(|| label.to_string())
    }

    /// How many images each class has.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Splits off the LAST `validation` images as a validation set: `(train, validation)`.
    /// The reference trains on the first 45,000 of CIFAR-10's 50,000 and validates on the last
    /// 5,000. Panics if `validation > len()`.
    pub fn split(&self, validation: usize) -> (Dataset, Dataset) {
        assert!(
            validation <= self.len(),
            "cannot hold out {validation} validation images from a set of {}",
            self.len()
        );
        let cut = self.len() - validation;
        (self.subset(0..cut), self.subset(cut..self.len()))
    }

    /// The images in `range`, copied into a new dataset.
    pub fn subset(&self, range: Range<usize>) -> Dataset {
        Dataset {
            images: self.images[range.start * IMAGE_BYTES..range.end * IMAGE_BYTES].to_vec(),
            labels: self.labels[range].to_vec(),
            class_names: self.class_names.clone(),
        }
    }

    /// The images at `indices` (in that order, repeats allowed), copied into a new dataset.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        Dataset {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            class_names: self.class_names.clone(),
        }
    }

    /// Appends `other`'s images and labels (the class names of `self` are kept).
    pub fn append(&mut self, other: &Dataset) {
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
    }
}

/// CHW (3 planes of 32×32) → HWC interleaved RGB (`[y][x][r,g,b]`), for display.
pub fn chw_to_rgb(chw: &[u8]) -> Vec<u8> {
    assert_eq!(chw.len(), IMAGE_BYTES);
    let plane = IMAGE_SIDE * IMAGE_SIDE;
    let mut rgb = vec![0u8; IMAGE_BYTES];
    for p in 0..plane {
        for c in 0..CHANNELS {
            rgb[p * CHANNELS + c] = chw[c * plane + p];
        }
    }
    rgb
}

/// What went wrong while reading data, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} holds no CIFAR-10 data: expected data_batch_1.bin… and test_batch.bin (binary \
         version) or data_batch_1… and test_batch (python version), a cifar-10-batches-bin/ or \
         cifar-10-batches-py/ folder, or the archive cifar-10-binary.tar.gz or \
         cifar-10-python.tar.gz; download one from {CIFAR_URL}"
    )]
    NoBatches { path: String },
    #[error(
        "{path} has {found} but no {missing}: the dataset is incomplete; download it again \
         from {CIFAR_URL}"
    )]
    MissingBatch {
        path: String,
        found: String,
        missing: String,
    },
    #[error(
        "{file} holds {len} bytes, not a whole number of 3,073-byte records: the file is \
         truncated or not CIFAR-10 binary; download it again from {CIFAR_URL}"
    )]
    NotWholeRecords { file: String, len: String },
    #[error("{file} is empty: download it again from {CIFAR_URL}")]
    Empty { file: String },
    #[error(
        "{file}: image {index} has label {label}, but CIFAR-10 labels are 0..9: the file is \
         damaged or not CIFAR-10; download it again from {CIFAR_URL}"
    )]
    BadLabel { file: String, index: usize, label: i64 },
    #[error(
        "{file} is not a CIFAR-10 python batch ({reason}); download the python version again \
         from {CIFAR_URL}"
    )]
    BadPickle { file: String, reason: String },
    #[error(
        "{file} is not a readable .tar.gz archive ({reason}): the download is incomplete or \
         damaged; download it again from {CIFAR_URL}"
    )]
    BadArchive { file: String, reason: String },
    #[error(
        "{file} is {size} bytes, more than any CIFAR-10 file ({limit} bytes at most): it is not \
         CIFAR-10 or it is damaged; download it again from {CIFAR_URL}"
    )]
    TooLarge { file: String, size: u64, limit: u64 },
    #[error(
        "{file} is not CIFAR-10 data: give a cifar-10-batches-bin/ or cifar-10-batches-py/ \
         folder, its parent, or the downloaded .tar.gz archive (from {CIFAR_URL})"
    )]
    NotCifar { file: String },
    #[error("{file} is not an image this program can read (PNG, JPEG, BMP, GIF, WebP): {reason}")]
    NotImage { file: String, reason: String },
}

/// `1234567` → `"1,234,567"`, for messages.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
