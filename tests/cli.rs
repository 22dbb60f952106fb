//! The command line end to end: train on the sample data, evaluate the checkpoint, classify an
//! image; and its messages for bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

/// The program, with its kernel choices kept in a folder of this test run rather than the
/// user's cache folder.
fn program() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resnet-wgpu"));
    command
        .env("RUST_LOG", "error")
        .env("RESNET_WGPU_CACHE_DIR", common::kernel_cache_dir());
    command
}

fn run(args: &[&str]) -> Output {
    let out = program().args(args).output().expect("the program starts");
    println!(
        "$ resnet-wgpu {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 40×30 PNG of a red disc on a blue background.
fn write_png(path: &Path) {
    let image = image::RgbImage::from_fn(40, 30, |x, y| {
        let (dx, dy) = (x as f32 - 20.0, y as f32 - 15.0);
        if dx * dx + dy * dy < 100.0 {
            image::Rgb([220, 30, 30])
        } else {
            image::Rgb([20, 20, 160])
        }
    });
    image.save(path).unwrap();
}

const SMALL: &[&str] = &[
    "--sample",
    "--sample-size",
    "320",
    "--variant",
    "resnet18",
    "--stem",
    "cifar",
    "--widths",
    "8,16",
    "--blocks",
    "1,1",
    "--batch",
    "32",
    "--validation",
    "64",
    "--quiet",
];

#[test]
fn train_then_eval_then_classify_on_the_sample_data() {
    let dir = scratch("flow");
    let dir_arg = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--checkpoint-dir",
        dir_arg,
    ];
    args.extend_from_slice(SMALL);
    let out = run(&args);
    assert!(out.status.success(), "train failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("epoch   1:") && text.contains("epoch   2:"),
        "{text}"
    );
    assert!(text.contains("device memory"), "{text}");
    assert!(
        text.contains("macro avg"),
        "the test report follows training: {text}"
    );
    for file in [
        "last.safetensors",
        "best.safetensors",
        "metrics.csv",
        "curves.png",
    ] {
        assert!(dir.join(file).is_file(), "{file} was not written");
    }
    // The kernel choices it measured are kept in the test's cache folder.
    let kernels = common::kernel_cache_dir().join("kernels.json");
    assert!(kernels.is_file(), "{} was not written", kernels.display());
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and one line per epoch: {csv}");
    assert!(csv.starts_with("epoch,steps,lr,train_loss"), "{csv}");
    let png = image::open(dir.join("curves.png")).expect("the plot is a PNG");
    assert!(png.width() > 600 && png.height() > 200);

    let checkpoint = dir.join("last.safetensors");
    let ckpt = checkpoint.to_str().unwrap();
    let out = run(&["eval", "--checkpoint", ckpt, "--sample", "--sample-size", "320"]);
    assert!(out.status.success(), "eval failed: {}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "precision",
        "recall",
        "f1-score",
        "support",
        "macro avg",
        "weighted avg",
        "confusion matrix",
        "disc",
    ] {
        assert!(text.contains(needle), "eval output lacks {needle}: {text}");
    }

    let image = dir.join("disc.png");
    write_png(&image);
    let out = run(&["classify", "--checkpoint", ckpt, image.to_str().unwrap()]);
    assert!(out.status.success(), "classify failed: {}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<f64> = text
        .lines()
        .filter_map(|l| l.trim().strip_suffix('%'))
        .map(|l| l.split_whitespace().last().unwrap().parse().unwrap())
        .collect();
    assert_eq!(rows.len(), 5, "top-5 classes: {text}");
    assert!(
        rows.windows(2).all(|w| w[0] >= w[1]),
        "most probable first: {text}"
    );
    assert!(rows.iter().sum::<f64>() <= 100.01, "{text}");

    // Resume the finished run for one more epoch: it continues at epoch 3.
    let jsonl = dir.join("more.jsonl");
    let out = run(&[
        "train",
        "--resume",
        ckpt,
        "--epochs",
        "3",
        "--checkpoint-dir",
        dir_arg,
        "--sample",
        "--sample-size",
        "320",
        "--quiet",
        "--metrics",
        jsonl.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "resume failed: {}", stderr(&out));
    assert!(
        stdout(&out).contains("epoch   3:") && !stdout(&out).contains("epoch   1:"),
        "{}",
        stdout(&out)
    );
    // Metrics as JSON lines: one object for the one new epoch.
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(lines.lines().count(), 1, "{lines}");
    assert!(
        lines.starts_with("{\"epoch\":3,") && lines.contains("\"val_loss\":"),
        "{lines}"
    );
}

#[test]
fn bad_input_gets_a_clear_error_and_loses_nothing() {
    let dir = scratch("bad");
    let dir_arg = dir.to_str().unwrap();
    // A first run leaves a good checkpoint.
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--lr",
        "0.05",
        "--checkpoint-dir",
        dir_arg,
    ];
    args.extend_from_slice(SMALL);
    assert!(run(&args).status.success());
    let checkpoint = dir.join("last.safetensors");
    let good = std::fs::read(&checkpoint).unwrap();

    // A learning rate that blows the loss up stops the run; the checkpoint stays intact.
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--checkpoint-dir",
        dir_arg,
        "--lr",
        "1e12",
    ];
    args.extend_from_slice(SMALL);
    let out = run(&args);
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(
        text.contains("was not finite") && text.contains("not applied"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        good,
        "the last good checkpoint is untouched"
    );

    // A text file as an image.
    let text_file = dir.join("notes.txt");
    std::fs::write(&text_file, "not an image").unwrap();
    let out = run(&[
        "classify",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        text_file.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not an image"), "{}", stderr(&out));

    // A random file as a dataset, and as a checkpoint.
    let out = run(&[
        "train",
        "--data",
        text_file.to_str().unwrap(),
        "--checkpoint-dir",
        dir_arg,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not CIFAR-10") || stderr(&out).contains("not a readable"),
        "{}",
        stderr(&out)
    );
    let out = run(&["eval", "--checkpoint", text_file.to_str().unwrap(), "--sample"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a safetensors file"),
        "{}",
        stderr(&out)
    );

    // Files built to make a careless reader allocate without bound: a one-line error from the
    // header alone, and the checkpoint folder as it was.
    let hostile = [
        ("terabyte.tar.gz", common::hostile::archive_claiming_a_terabyte()),
        (
            "bomb.tar.gz",
            common::hostile::archive_that_inflates_past_any_cifar_file(),
        ),
        (
            "blocks.safetensors",
            common::hostile::checkpoint_claiming_ten_billion_blocks(&good),
        ),
    ];
    for (name, bytes) in hostile {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let path = path.to_str().unwrap();
        let args = if name.ends_with(".safetensors") {
            vec!["eval", "--checkpoint", path, "--sample"]
        } else {
            vec!["train", "--data", path, "--checkpoint-dir", dir_arg]
        };
        let start = std::time::Instant::now();
        let out = run(&args);
        let seconds = start.elapsed().as_secs_f64();
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.contains(name) && err.trim().lines().count() == 1, "{err}");
        println!("{name}: refused in {seconds:.2} s (the whole process): {err}");
        assert_eq!(std::fs::read(&checkpoint).unwrap(), good, "after {name}");
    }

    // No data at all.
    let out = run(&["train", "--checkpoint-dir", dir_arg]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--data") && stderr(&out).contains("--sample"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn info_reports_the_adapter_and_the_memory_of_a_configuration() {
    let out = run(&["info", "--variant", "seed50", "--batch", "128"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("adapter:") && text.contains("max storage binding"),
        "{text}"
    );
    assert!(
        text.contains("device memory") && text.contains("micro-batches"),
        "{text}"
    );
}

#[test]
fn a_memory_budget_splits_the_batch_or_says_what_does_not_fit() {
    let out = run(&[
        "info",
        "--variant",
        "seed50",
        "--batch",
        "128",
        "--memory",
        "2048",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("budget 2048 MiB"), "{text}");
    let in_all: f64 = text
        .split("device memory: ")
        .nth(1)
        .and_then(|rest| rest.split(" MiB").next())
        .and_then(|mib| mib.parse().ok())
        .unwrap_or_else(|| panic!("no total in {text}"));
    assert!(in_all <= 2048.0 && text.contains("micro-batches of"), "{text}");

    let out = run(&["info", "--variant", "seed50", "--batch", "128", "--memory", "100"]);
    assert!(!out.status.success());
    let error = stderr(&out);
    let model = resnet_wgpu::model::Model::new(
        resnet_wgpu::model::Variant::Seed50,
        resnet_wgpu::model::Stem::ImageNet,
    );
    // One image in the mode that needs least on this device.
    let least = match common::gpu().features.shader_f16 {
        true => resnet_wgpu::schedule::MemoryMode::RecomputeF16,
        false => resnet_wgpu::schedule::MemoryMode::Recompute,
    };
    let one_image = resnet_wgpu::schedule::MemoryReport::new(&model, 128, 1, least).total();
    let needs = format!("needs {:.0} MiB", resnet_wgpu::schedule::mib(one_image));
    assert!(
        error.contains("budget of 100 MiB") && error.contains(&needs) && error.contains("--memory"),
        "{error} (expected: {needs})"
    );
}

/// A checkpoint whose header holds a field out of range (here a batch of 0) is refused before
/// anything else, in one line that names the file, the field and its value. No GPU needed:
/// `eval` and `classify` read the checkpoint first.
#[test]
fn a_checkpoint_field_out_of_range_is_named_in_one_line() {
    use resnet_wgpu::schedule::NetworkState;
    use resnet_wgpu::train::{Checkpoint, TrainState};
    let dir = scratch("header");
    let config = common::small_config(16, 2);
    let model = config.model.build();
    let params: Vec<Vec<f32>> = model.parameters().iter().map(|p| vec![0.0; p.len()]).collect();
    let network = NetworkState::fresh(&model, params);
    let state = TrainState::fresh(&config);
    let names = resnet_wgpu::data::CIFAR10_CLASSES.map(String::from).to_vec();
    let good = Checkpoint::new(config, state, names, network).to_bytes();
    let bad = common::hostile::with_header_edited(&good, "\\\"batch\\\":16", "\\\"batch\\\":0");
    let path = dir.join("zero-batch.safetensors");
    std::fs::write(&path, bad).unwrap();
    let path = path.to_str().unwrap();
    for args in [
        vec!["eval", "--checkpoint", path, "--sample"],
        vec!["classify", "--checkpoint", path, "any.png"],
    ] {
        let out = run(&args);
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(
            err.contains("zero-batch.safetensors: config.batch is 0; it must be at least 1"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

/// `--init` takes weights stored in half precision (as many published weights are), converts
/// them to float32 and says how many it converted; the run starts from them.
#[test]
fn initial_weights_in_half_precision_are_converted_and_counted() {
    use resnet_wgpu::model::{Stem, Variant};
    use safetensors::tensor::{Dtype, TensorView};
    let dir = scratch("init-f16");
    let mut spec = resnet_wgpu::train::ModelSpec::named(Variant::ResNet18, Stem::Cifar);
    spec.config.widths = vec![8, 16];
    spec.config.blocks = vec![1, 1];
    spec.config.stem_width = 8;
    let model = spec.build();
    // Every parameter 0.0999755859375 (F16 0x2E66), running statistics in F32.
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = model
        .parameters()
        .iter()
        .map(|p| {
            let bytes = std::iter::repeat_n(0x2E66u16.to_le_bytes(), p.len())
                .flatten()
                .collect();
            (p.name.clone(), Dtype::F16, p.shape.clone(), bytes)
        })
        .collect();
    for (bn, c) in model.batch_norms() {
        for (stat, value) in [("running_mean", 0.0f32), ("running_var", 1.0)] {
            let bytes = std::iter::repeat_n(value.to_le_bytes(), c).flatten().collect();
            tensors.push((format!("{bn}.{stat}"), Dtype::F32, vec![c], bytes));
        }
    }
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    let file = dir.join("half.safetensors");
    std::fs::write(&file, safetensors::serialize(views, None).unwrap()).unwrap();
    let parameters = model.parameters().len();
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--max-steps",
        "1",
        "--init",
        file.to_str().unwrap(),
        "--checkpoint-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("converted {parameters} tensors from F16 to float32")),
        "{text}"
    );
}
