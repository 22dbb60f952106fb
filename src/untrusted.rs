//! Every reader of bytes from outside, as the app and the command line call it on a file a
//! person opens or drops: CIFAR-10 batches (binary and python pickles), CIFAR-10 archives,
//! checkpoints and weight files, and images to classify. Each returns nothing and must neither
//! panic nor allocate past what the bytes justify, whatever they are; the fuzz targets in
//! `fuzz/` call these, and `tests/fuzz_corpus.rs` replays their saved inputs on every test run.

use crate::data::{cifar, decode_image, load_cifar10_archive};
use crate::model::{Model, Stem, Variant};
use crate::train::Checkpoint;
use crate::train::checkpoint::load_weights;

/// One `data_batch_*.bin` / `test_batch.bin` of the binary version.
pub fn cifar_binary_batch(bytes: &[u8]) {
    let _ = cifar::parse_binary_batch("fuzzed.bin", bytes);
}

/// One pickled batch of the python version (the pickle reader).
pub fn cifar_python_batch(bytes: &[u8]) {
    let _ = cifar::parse_python_batch("fuzzed", bytes);
}

/// A `.tar.gz` archive of either version.
pub fn cifar_archive(bytes: &[u8]) {
    let _ = load_cifar10_archive("fuzzed.tar.gz", bytes);
}

/// A checkpoint (safetensors with this program's JSON header), read whole, and the same bytes
/// as a weight file for a small ResNet-18.
pub fn checkpoint(bytes: &[u8]) {
    if let Ok(checkpoint) = Checkpoint::from_bytes("fuzzed.safetensors", bytes) {
        let _ = checkpoint.check_model("fuzzed.safetensors", checkpoint.model());
    }
    let _ = load_weights("fuzzed.safetensors", bytes, &small_model(), None);
}

/// An image file to classify.
pub fn image(bytes: &[u8]) {
    let _ = decode_image("fuzzed image", bytes);
}

/// The model weight files are checked against in [`checkpoint`].
fn small_model() -> Model {
    let mut config = Variant::ResNet18.config();
    config.widths = vec![4, 8];
    config.blocks = vec![1, 1];
    config.stem_width = 4;
    Model::from_config(Variant::ResNet18, Stem::Cifar, &config, 10)
}
