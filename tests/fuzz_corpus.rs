//! Replays every saved input of the fuzz targets (`fuzz/corpus/<target>/`: the seeds, real
//! files, and what fuzzing kept; `fuzz/regressions/<target>/`: every input that once crashed
//! or ran slowly) through the same readers, on the stable toolchain: none may panic, and each
//! former crash or slow input is done within a second.

use std::path::Path;

use resnet_wgpu::untrusted;

/// A reader of untrusted bytes.
type Reader = fn(&[u8]);

const TARGETS: &[(&str, Reader)] = &[
    ("cifar_binary", untrusted::cifar_binary_batch),
    ("cifar_python", untrusted::cifar_python_batch),
    ("cifar_archive", untrusted::cifar_archive),
    ("checkpoint", untrusted::checkpoint),
    ("image", untrusted::image),
];

/// The files of `dir` (none when it does not exist).
fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.expect("readable entry").path()).collect();
    files.sort();
    files
}

#[test]
fn every_saved_fuzz_input_is_read_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for &(target, read) in TARGETS {
        let seeds = inputs(&root.join("corpus").join(target));
        assert!(!seeds.is_empty(), "fuzz/corpus/{target} holds no inputs");
        let crashes = inputs(&root.join("regressions").join(target));
        for file in seeds.iter().chain(&crashes) {
            let bytes = std::fs::read(file).unwrap();
            let start = std::time::Instant::now();
            let outcome = std::panic::catch_unwind(|| read(&bytes));
            let seconds = start.elapsed().as_secs_f64();
            assert!(outcome.is_ok(), "{target} panicked on {}", file.display());
            if crashes.contains(file) {
                assert!(
                    seconds < 1.0,
                    "{target} took {seconds:.1} s on {}",
                    file.display()
                );
            }
        }
        println!(
            "{target}: {} corpus inputs, {} former crashes",
            seeds.len(),
            crashes.len()
        );
    }
}
