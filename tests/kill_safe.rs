//! A training process killed with SIGKILL, at random moments and while it writes a checkpoint,
//! always leaves a checkpoint that loads, and the run resumes from it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use resnet_wgpu::train::Checkpoint;

/// Kills in all: every other one as soon as a checkpoint's temporary file appears (during a
/// write), the others after a pseudo-random delay. At least half must land during a write.
const KILLS: usize = 10;

/// A small run whose epochs (5 steps) end, and write `last.safetensors`, several times a second.
fn train(dir: &Path, resume: bool, max_steps: Option<u64>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_resnet-wgpu"));
    command
        .env("RUST_LOG", "error")
        .env("RESNET_WGPU_CACHE_DIR", dir.join("kernel-cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .args([
            "train",
            "--sample",
            "--sample-size",
            "96",
            "--quiet",
            "--checkpoint-dir",
        ])
        .arg(dir);
    if resume {
        command.arg("--resume").arg(dir.join("last.safetensors"));
    } else {
        command.args([
            "--variant",
            "resnet18",
            "--stem",
            "cifar",
            "--widths",
            "8,16",
            "--blocks",
            "1,1",
            "--batch",
            "16",
            "--validation",
            "16",
            "--train-metrics",
            "running",
            "--epochs",
            "100000",
        ]);
    }
    if let Some(steps) = max_steps {
        command.args(["--max-steps", &steps.to_string()]);
    }
    command.spawn().expect("the program starts")
}

/// Polls `done` until it holds, every `pause`; with a zero `pause` without sleeping (only
/// yielding the processor), so that what follows comes within microseconds of the change.
fn wait_for(what: &str, deadline: Duration, pause: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "waited {deadline:?} for {what}");
        if pause.is_zero() {
            std::thread::yield_now();
        } else {
            std::thread::sleep(pause);
        }
    }
}

/// The step the checkpoint on disk was taken at; panics when it does not load.
fn saved_step(path: &Path, kill: usize) -> u64 {
    let checkpoint = Checkpoint::load(path).unwrap_or_else(|e| panic!("after kill {kill}: {e}"));
    checkpoint.header.state.global_step
}

#[test]
fn a_killed_run_always_leaves_a_checkpoint_that_loads_and_resumes() {
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let last = dir.join("last.safetensors");
    let partial = dir.join("last.safetensors.partial");
    let mut step = 0;
    let mut during_write = 0;
    let mut random = 0x2545_f491_4f6c_dd1du64;
    for kill in 0..KILLS {
        let mut child = train(&dir, kill > 0, None);
        let before = std::fs::metadata(&last).and_then(|m| m.modified()).ok();
        // Let it write at least one checkpoint of its own first.
        wait_for(
            "a checkpoint",
            Duration::from_secs(120),
            Duration::from_millis(1),
            || std::fs::metadata(&last).and_then(|m| m.modified()).ok() != before,
        );
        if kill % 2 == 1 {
            // The temporary file lives from its creation to its rename, a few milliseconds
            // (serializing, writing, flushing to disk): watched without sleeping, the kill
            // follows its appearance well within that, even on a busy machine.
            let what = "a checkpoint being written";
            wait_for(what, Duration::from_secs(60), Duration::ZERO, || partial.exists());
        } else {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            std::thread::sleep(Duration::from_millis(random % 400));
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        during_write += partial.exists() as usize;
        let now = saved_step(&last, kill);
        assert!(now >= step, "after kill {kill}: step {now} after {step}");
        step = now;
    }
    println!("{KILLS} kills survived, {during_write} of them while a checkpoint was being written");
    assert!(
        during_write >= KILLS / 2,
        "only {during_write} of {KILLS} kills landed during a write"
    );

    // The last checkpoint resumes and trains on.
    let child = train(&dir, true, Some(step + 3));
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(saved_step(&last, KILLS), step + 3);
    std::fs::remove_dir_all(&dir).unwrap();
}
