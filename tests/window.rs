//! The real desktop window under a virtual X display (Xvfb): it opens, trains a few steps of
//! the small configuration, and saves a screenshot of itself to `target/screenshots/`
//! (`native.png`, the training page; `native-estimate.png`, the first start with its estimate;
//! `native-evaluation.png`, the evaluation page).

mod common;

use std::process::Command;

#[test]
fn the_window_opens_trains_and_takes_a_screenshot() {
    screenshot("native.png", &["--train-steps", "8"]);
}

#[test]
fn the_window_opens_with_an_estimate_before_training() {
    screenshot("native-estimate.png", &["--train-steps", "0"]);
}

#[test]
fn the_window_shows_the_evaluation_page() {
    screenshot(
        "native-evaluation.png",
        &["--train-steps", "40", "--tab", "evaluation"],
    );
}

fn screenshot(name: &str, args: &[&str]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(name);
    let _ = std::fs::remove_file(&shot);
    // `xvfb-run -a` takes the first free display; two windows started at once can both take
    // it, and the later one's server then fails to start: it tries again.
    let mut tries = 0;
    let out = loop {
        let out = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x800x24"])
            .arg(env!("CARGO_BIN_EXE_resnet-wgpu"))
            .arg("app")
            .args(args)
            .arg("--screenshot")
            .arg(&shot)
            .env("RUST_LOG", "error")
            // The app's kernel choices are kept in a folder of this test run, not the user's.
            .env("RESNET_WGPU_CACHE_DIR", common::kernel_cache_dir())
            .output()
            .unwrap_or_else(|e| {
                panic!("xvfb-run did not start ({e}): install it with `apt-get install xvfb`")
            });
        tries += 1;
        let raced = String::from_utf8_lossy(&out.stderr).contains("Xvfb failed to start");
        if !raced || tries == 5 {
            break out;
        }
        let jitter = u64::from(std::process::id() % 7) * 200;
        std::thread::sleep(std::time::Duration::from_millis((300 + jitter) * tries));
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the window failed: {stdout}\n{stderr}");
    let image = image::open(&shot).expect("the screenshot is a PNG").to_rgb8();
    assert_eq!((image.width(), image.height()), (1280, 800));
    // Not a blank window: many distinct colours (text, plots, the loss curve).
    let mut colours: Vec<[u8; 3]> = image.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 50,
        "the screenshot looks blank ({} colours)",
        colours.len()
    );
}
