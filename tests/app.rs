//! The app's real widgets driven with egui_kittest: the sample data, starting, pausing and
//! stopping training, classifying a dropped image, and clear messages for bad files. The app
//! trains on its own GPU device (lavapipe in CI) in its worker thread, as it does natively.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use resnet_wgpu::app::App;

mod common;
use common::hostile;

/// A file dropped on the window.
#[derive(Debug)]
struct DroppedBytes {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl egui::DroppedFile for DroppedBytes {
    fn path(&self) -> &Path {
        &self.path
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        Ok(self.bytes.clone())
    }
}

/// The app at 1280 × 800, keeping its runs in a folder of its own.
fn harness() -> Harness<'static, App> {
    static HARNESSES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = HARNESSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let folder = std::env::temp_dir().join(format!("resnet-wgpu-app-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| {
            let mut app = App::new(cc);
            app.checkpoint_folder = folder.display().to_string();
            // The kernel choices of this test process, never the user's own.
            let kernels =
                std::env::temp_dir().join(format!("resnet-wgpu-app-kernels-{}.json", std::process::id()));
            app.set_kernel_cache(resnet_wgpu::schedule::KernelCache::File(kernels));
            app
        })
}

/// Steps the window until `done` holds (the worker runs in real time), or fails after `secs`.
fn wait_for(harness: &mut Harness<'static, App>, what: &str, secs: u64, mut done: impl FnMut(&App) -> bool) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; status: {}",
            harness.state().status().to_json()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    harness.step();
}

/// The app with its device ready and the small configuration chosen.
fn small_app() -> Harness<'static, App> {
    let mut h = harness();
    wait_for(&mut h, "the GPU", 60, device_ready);
    click(&mut h, "Small and fast");
    h.step();
    h
}

/// Starts the run, trains two steps, pauses, and waits for the run to be kept at the pause.
fn train_two_steps_and_pause(h: &mut Harness<'static, App>) {
    click(h, "Start");
    wait_for(h, "two training steps", 120, |a| a.status().global_step >= 2);
    click(h, "Pause");
    wait_for(h, "the pause", 30, |a| a.status().run == "paused");
    wait_for(h, "the run kept at the pause", 60, |a| a.status().kept.is_some());
}

/// Scrolls the control labelled `label` into view (the side panel scrolls) and clicks it.
fn click(harness: &mut Harness<'static, App>, label: &str) {
    harness.get_by_label(label).scroll_to_me();
    harness.step();
    harness.get_by_label(label).click();
}

fn drop_file(harness: &mut Harness<'static, App>, name: &str, bytes: Vec<u8>) {
    let file = DroppedBytes {
        path: PathBuf::from(format!("/nonexistent-dir/{name}")),
        bytes,
    };
    harness.input_mut().dropped_files.push(std::sync::Arc::new(file));
    harness.step();
}

fn device_ready(app: &App) -> bool {
    app.status().device == "ready"
}

fn png_of_a_disc() -> Vec<u8> {
    let image = image::RgbImage::from_fn(48, 48, |x, y| {
        let (dx, dy) = (x as f32 - 24.0, y as f32 - 24.0);
        if dx * dx + dy * dy < 200.0 {
            image::Rgb([240, 200, 30])
        } else {
            image::Rgb([30, 30, 90])
        }
    });
    png_bytes(&image)
}

fn png_bytes(image: &image::RgbImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .unwrap();
    bytes
}

/// Start pressed while a step is being timed for the estimate sets the timing aside: the run
/// starts without waiting for it, and no estimate (nor a failed one) is recorded.
#[test]
fn start_during_the_estimate_sets_the_estimate_aside() {
    let mut h = harness();
    wait_for(&mut h, "the GPU", 60, device_ready);
    wait_for(&mut h, "the estimate's timing", 30, |a| a.status().estimating);
    click(&mut h, "Start");
    h.step();
    wait_for(&mut h, "the first step", 120, |a| a.status().step_losses >= 1);
    let status = h.state().status();
    assert!(
        !status.estimating && status.estimate.is_none() && status.estimated_images_per_second.is_none(),
        "the estimate ran before the run: {:?}",
        status.estimate
    );
    assert!(h.query_by_label_contains("No estimate").is_none());
}

#[test]
fn sample_data_trains_pauses_stops_and_classifies_a_dropped_image() {
    let mut h = harness();
    wait_for(&mut h, "the GPU", 60, device_ready);
    let status = h.state().status();
    assert_eq!(status.data_source, "built-in sample data");
    assert_eq!((status.train_images, status.test_images), (6000, 1000));
    assert_eq!(status.run, "idle");
    // On a CPU adapter the first start offers the small network, says why, and estimates the
    // run from a step timed on this device before anything is started.
    assert!(
        status.variant.starts_with("resnet18 (cifar stem)"),
        "{}",
        status.variant
    );
    let choice = status.default_choice.unwrap();
    assert!(choice.contains("CPU") && choice.contains("small"), "{choice}");
    assert!(h.query_by_label(&choice).is_some());
    wait_for(&mut h, "the estimate", 120, |a| a.status().estimate.is_some());
    let [epoch, run] = h.state().status().estimate.unwrap();
    assert!(
        epoch > 0.0 && (run - 5.0 * epoch).abs() < 1e-6 * run,
        "{epoch} {run}"
    );
    assert!(h.query_by_label_contains("Estimate: ").is_some());

    click(&mut h, "Small and fast");
    h.step();
    assert!(
        h.state()
            .config
            .model
            .describe()
            .contains("resnet18 (cifar stem)")
    );
    click(&mut h, "Start");
    h.step();
    // From the first frame after Start the panel says what the run is doing (choosing
    // kernels, building the network, the first step), then how long the start took.
    let mut stages = Vec::new();
    wait_for(&mut h, "three training steps", 120, |a| {
        let status = a.status();
        if let Some(stage) = status.starting
            && stages.last() != Some(&stage)
        {
            stages.push(stage);
        }
        status.step_losses >= 3
    });
    // (Building may pass between two frames where the estimate compiled the pipelines.)
    let order = ["choosing kernels", "building the network", "running the first"];
    let rank = |stage: &str| order.iter().position(|o| stage.starts_with(o));
    let ranks: Vec<_> = stages.iter().map(|s| rank(s)).collect();
    assert!(
        ranks.iter().all(Option::is_some) && ranks.is_sorted(),
        "{stages:?}"
    );
    assert_eq!(ranks.first(), Some(&Some(0)), "{stages:?}");
    assert_eq!(ranks.last(), Some(&Some(2)), "{stages:?}");
    // The estimate came from a warm step: the run trains at the estimated rate, give or take
    // the noise of a shared machine (a cold first step overestimated it fortyfold).
    let status = h.state().status();
    let (estimated, measured) = (
        status.estimated_images_per_second.unwrap(),
        status.images_per_second.unwrap(),
    );
    assert!(
        (estimated / measured - 1.0).abs() < 0.75,
        "estimated {estimated:.1} images/s, trained at {measured:.1}"
    );
    let [built, first] = h.state().status().first_step.expect("the start's timing");
    assert!(built > 0.0 && first > 0.0, "{built} {first}");
    assert!(h.query_by_label_contains("Started in ").is_some());
    assert_eq!(h.state().status().run, "running");
    assert!(h.query_by_label_contains("Batch loss per step").is_some());
    // The Training page shows the per-layer weight and gradient norms of a recent step.
    wait_for(&mut h, "the layer norms", 30, |a| a.status().layer_norms > 0);
    let status = h.state().status();
    assert!(status.layer_norms >= 10, "{}", status.layer_norms);
    let largest = status.largest_gradient_norm.unwrap();
    assert!(largest.is_finite() && largest > 0.0, "{largest}");
    assert!(h.query_by_label_contains("Per-layer norms after step").is_some());

    click(&mut h, "Pause");
    wait_for(&mut h, "the pause", 30, |a| a.status().run == "paused");
    let steps = h.state().status().step_losses;
    for _ in 0..20 {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        h.state().status().step_losses <= steps + 1,
        "training went on while paused"
    );
    click(&mut h, "Resume");
    wait_for(&mut h, "more steps", 60, |a| a.status().step_losses >= steps + 2);
    click(&mut h, "Stop");
    wait_for(&mut h, "the stop", 30, |a| a.status().run == "finished");

    drop_file(&mut h, "disc.png", png_of_a_disc());
    wait_for(&mut h, "the classification", 30, |a| a.status().top.len() == 5);
    let status = h.state().status();
    assert_eq!(status.tab, "Classify");
    assert_eq!(status.classified.as_deref(), Some("disc.png"));
    let total: f64 = status.top.iter().map(|t| t.1).sum();
    assert!(total <= 1.0 + 1e-9 && status.top.windows(2).all(|w| w[0].1 >= w[1].1));
    assert!(
        h.query_by_label_contains(&format!("{}:", status.top[0].0))
            .is_some()
    );

    click(&mut h, "Evaluate on test set");
    wait_for(&mut h, "the test report", 60, |a| {
        a.status().test_accuracy.is_some()
    });
    assert!(h.query_by_label("macro avg").is_some() && h.query_by_label("weighted avg").is_some());

    // Save the run, load the checkpoint back by dropping it, and continue training from it.
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-app-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    h.state_mut().checkpoint_folder = dir.display().to_string();
    click(&mut h, "Save");
    wait_for(&mut h, "the saved checkpoint", 60, |a| {
        a.status().message.is_some_and(|m| m.contains("checkpoint saved"))
    });
    let file = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".safetensors"), "{name}");
    let steps = h.state().status().global_step;
    drop_file(&mut h, &name, std::fs::read(&file).unwrap());
    wait_for(&mut h, "the loaded run", 60, |a| {
        a.status().message.is_some_and(|m| m.contains("press Resume")) && a.status().run == "paused"
    });
    click(&mut h, "Resume");
    wait_for(&mut h, "training to continue from the checkpoint", 60, move |a| {
        a.status().global_step > steps
    });
    click(&mut h, "Stop");
    wait_for(&mut h, "the stop", 30, |a| a.status().run == "finished");
}

#[test]
fn bad_files_give_clear_messages_and_keep_the_state() {
    let mut h = harness();
    wait_for(&mut h, "the GPU", 60, device_ready);
    let before = h.state().status();

    // A random file dropped as a dataset.
    drop_file(
        &mut h,
        "noise.bin",
        (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
    );
    wait_for(&mut h, "the dataset error", 30, |a| a.status().error);
    let status = h.state().status();
    assert!(
        status.message.as_deref().unwrap().contains("CIFAR-10"),
        "{:?}",
        status.message
    );
    assert_eq!(
        (status.train_images, status.data_source.as_str()),
        (before.train_images, "built-in sample data")
    );
    // A checkpoint whose header holds a field out of range: one line naming it.
    let bad_batch = hostile::checkpoint_with_header(&small_checkpoint(), |header| {
        header["config"]["batch"] = serde_json::json!(0)
    });
    drop_file(&mut h, "bad-batch.safetensors", bad_batch);
    wait_for(&mut h, "the header error", 30, |a| {
        a.status()
            .message
            .is_some_and(|m| m.contains("config.batch is 0"))
    });
    let message = h.state().status().message.unwrap();
    assert!(
        h.state().status().error && message.lines().count() == 1,
        "{message}"
    );

    // The sample data can be loaded again from its button.
    click(&mut h, "Sample data");
    wait_for(&mut h, "the sample data", 10, |a| {
        a.status()
            .message
            .is_some_and(|m| m.starts_with("loaded built-in sample data"))
    });

    // A truncated archive.
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        encoder.write_all(&vec![7u8; 100_000]).unwrap();
        encoder.finish().unwrap();
    }
    gz.truncate(gz.len() / 2);
    h.state_mut().message = None;
    drop_file(&mut h, "cifar-10-binary.tar.gz", gz);
    wait_for(&mut h, "the archive error", 30, |a| a.status().error);
    let message = h.state().status().message.unwrap();
    assert!(
        message.contains("cifar-10-binary.tar.gz") && message.contains("download it again"),
        "{message}"
    );
    assert_eq!(h.state().status().train_images, before.train_images);

    // A text file named as an image.
    h.state_mut().message = None;
    drop_file(&mut h, "photo.png", b"these are words, not pixels".to_vec());
    wait_for(&mut h, "the image error", 30, |a| a.status().error);
    let message = h.state().status().message.unwrap();
    assert!(
        message.contains("photo.png") && message.contains("not an image"),
        "{message}"
    );

    // A checkpoint of another variant than the one selected (the reference seed ResNet-50).
    let checkpoint = small_checkpoint();
    h.state_mut().message = None;
    drop_file(&mut h, "other.safetensors", checkpoint);
    wait_for(&mut h, "the checkpoint error", 30, |a| a.status().error);
    let message = h.state().status().message.unwrap();
    assert!(
        message.contains("other.safetensors") && message.contains("resnet18"),
        "{message}"
    );
    assert_eq!(
        h.state().status().variant,
        before.variant,
        "the selected model is kept"
    );
    assert_eq!(h.state().status().run, "idle");
    // The message is on screen.
    assert!(h.query_by_label_contains("other.safetensors").is_some());

    // Files built to make a careless reader allocate without bound: each is refused from its
    // header, off the window's thread, and the window keeps drawing.
    let claiming = hostile::checkpoint_claiming_ten_billion_blocks(&small_checkpoint());
    for (name, bytes, expected) in [
        (
            "terabyte.tar.gz",
            hostile::archive_claiming_a_terabyte(),
            "more than any CIFAR-10 file",
        ),
        (
            "bomb.tar.gz",
            hostile::archive_that_inflates_past_any_cifar_file(),
            "more than any CIFAR-10 file",
        ),
        ("blocks.safetensors", claiming, "blocks"),
    ] {
        h.state_mut().message = None;
        let start = Instant::now();
        drop_file(&mut h, name, bytes);
        wait_for(&mut h, name, 30, |a| a.status().error);
        let seconds = start.elapsed().as_secs_f64();
        let message = h.state().status().message.unwrap();
        assert!(message.contains(name) && message.contains(expected), "{message}");
        println!("{name}: refused in {seconds:.2} s: {message}");
        assert!(seconds < 1.0, "{name} took {seconds:.2} s to refuse");
        let status = h.state().status();
        assert_eq!(
            (status.train_images, status.variant.as_str(), status.run),
            (before.train_images, before.variant.as_str(), "idle"),
            "{name} changed the app's state"
        );
    }
}

#[test]
fn a_lost_device_is_reopened_and_the_run_continues_from_the_last_checkpoint() {
    let mut h = harness();
    wait_for(&mut h, "the GPU", 60, device_ready);
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-lost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    h.state_mut().checkpoint_folder = dir.display().to_string();
    click(&mut h, "Small and fast");
    h.step();
    train_two_steps_and_pause(&mut h);
    click(&mut h, "Save");
    wait_for(&mut h, "the saved checkpoint", 60, |a| {
        a.status().message.is_some_and(|m| m.contains("checkpoint saved"))
    });
    let saved_step = h.state().status().global_step;
    let file = dir.join("resnet-epoch0.safetensors");
    let kept_file = dir.join("app-run.safetensors");
    let (saved, kept) = (std::fs::read(&file).unwrap(), std::fs::read(&kept_file).unwrap());
    click(&mut h, "Resume");
    wait_for(&mut h, "a step after the checkpoint", 60, move |a| {
        a.status().global_step > saved_step
    });

    // The device goes away mid-run, as in a driver reset.
    h.state_mut().lose_device();
    wait_for(&mut h, "the failure to be seen", 60, |a| a.status().device_failed);
    let status = h.state().status();
    assert!(status.error, "{status:?}");
    let message = status.message.unwrap();
    assert!(
        message.contains("the GPU failed") && message.contains("nothing was saved"),
        "{message}"
    );
    assert_eq!(status.run, "paused");
    // Nothing is written from the failed device, and the checkpoint on disk is untouched.
    click(&mut h, "Save");
    wait_for(&mut h, "Save to be refused", 30, |a| {
        a.status().message.is_some_and(|m| m.contains("reopen it first"))
    });
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["app-run.safetensors", "resnet-epoch0.safetensors"],
        "only the saved and the kept checkpoint are in {dir:?}"
    );
    assert_eq!(
        std::fs::read(&file).unwrap(),
        saved,
        "the checkpoint on disk changed"
    );
    assert_eq!(std::fs::read(&kept_file).unwrap(), kept, "the kept run changed");

    let offer = format!("Reopen the GPU and continue from epoch 1, step {saved_step}");
    click(&mut h, &offer);
    let resumed = format!("training continues from step {saved_step}");
    wait_for(&mut h, "the run on the new device", 120, move |a| {
        device_ready(a) && a.status().message.is_some_and(|m| m.contains(&resumed))
    });
    wait_for(&mut h, "training to continue", 120, move |a| {
        a.status().run == "running" && a.status().global_step > saved_step
    });
    let status = h.state().status();
    // The curve keeps the steps up to the checkpoint and goes on from there.
    assert_eq!(status.step_losses as u64, status.global_step);
    click(&mut h, "Stop");
    wait_for(&mut h, "the stop", 30, |a| a.status().run == "finished");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_step_that_is_not_finite_pauses_the_run_and_keeps_the_weights_before_it() {
    let mut h = small_app();
    train_two_steps_and_pause(&mut h);
    let folder = std::path::PathBuf::from(&h.state().checkpoint_folder);
    let kept_file = folder.join("app-run.safetensors");
    let kept_before = std::fs::read(&kept_file).expect("the run kept at the pause");
    let step_before = h.state().status().global_step;

    h.state_mut().poison_next_step();
    click(&mut h, "Resume");
    wait_for(&mut h, "the step that is not finite to pause the run", 120, |a| {
        let s = a.status();
        s.run == "paused" && s.error && s.message.is_some_and(|m| m.contains("not finite"))
    });
    let status = h.state().status();
    let message = status.message.clone().unwrap();
    assert!(
        message.contains(&format!("step {}", step_before + 1))
            && message.contains("not applied")
            && message.contains("Lower the learning rate"),
        "{message}"
    );
    assert!(
        !status.device_failed,
        "a step that is not finite is not a device failure"
    );
    assert_eq!(
        status.global_step, step_before,
        "the step that was not finite is not counted"
    );
    // The run kept at this pause is the one before the step, bit for bit, and finite.
    wait_for(&mut h, "the run kept at the pause", 60, |a| {
        a.status().kept.is_some()
    });
    let kept = std::fs::read(&kept_file).unwrap();
    assert!(
        kept == kept_before,
        "the kept run changed after a step that was not finite"
    );
    let checkpoint = resnet_wgpu::train::Checkpoint::from_bytes("kept", &kept).unwrap();
    assert_eq!(checkpoint.header.state.global_step, step_before);
    let network = &checkpoint.network;
    assert!(
        network
            .params
            .iter()
            .chain(&network.momentum)
            .flatten()
            .all(|v| v.is_finite()),
        "the kept weights are finite"
    );

    // Resume trains on from the finite weights.
    click(&mut h, "Resume");
    wait_for(&mut h, "steps after the one that was not finite", 120, move |a| {
        a.status().global_step >= step_before + 2
    });
    let status = h.state().status();
    assert!(status.last_loss.is_some_and(f64::is_finite), "{status:?}");
    click(&mut h, "Stop");
    wait_for(&mut h, "the stop", 30, |a| a.status().run == "finished");
}

/// Closing the app loses nothing: the settings and the run kept when it was paused come back
/// at the next start, which offers to resume the run at the kept step with the same weights.
#[test]
fn the_next_start_remembers_the_settings_and_offers_the_kept_run() {
    let mut h = small_app();
    h.state_mut().config.epochs = 7;
    train_two_steps_and_pause(&mut h);
    let kept = h.state().status().kept.unwrap();
    assert!(kept.global_step >= 2, "{kept:?}");
    let folder = h.state().checkpoint_folder.clone();
    assert_eq!(
        kept.place,
        Path::new(&folder)
            .join("app-run.safetensors")
            .display()
            .to_string()
    );
    let settings = h.state().settings();
    drop(h);

    let remembered = settings.clone();
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 800.0))
        .build_eframe(move |cc| App::with_settings(&cc.egui_ctx, Some(remembered)));
    wait_for(&mut h, "the offer of the kept run", 60, |a| {
        a.status().kept_offer.is_some()
    });
    let offer = h.state().status().kept_offer.unwrap();
    assert_eq!(
        (offer.global_step, &offer.digest),
        (kept.global_step, &kept.digest)
    );
    assert_eq!(h.state().config.epochs, 7);
    assert_eq!(h.state().checkpoint_folder, folder);
    assert!(h.query_by_label_contains("Your last run is kept in").is_some());
    click(&mut h, "Resume the kept run");
    wait_for(&mut h, "the kept run to load", 60, |a| {
        a.status().message.is_some_and(|m| m.contains("press Resume"))
    });
    let status = h.state().status();
    assert_eq!(status.run, "paused");
    assert_eq!(status.loaded_digest.as_ref(), Some(&kept.digest));
    assert!(status.kept_offer.is_none());
    click(&mut h, "Resume");
    let step = kept.global_step;
    wait_for(&mut h, "training to go on", 120, move |a| {
        a.status().run == "running" && a.status().global_step > step
    });
    let status = h.state().status();
    assert_eq!(status.step_losses as u64, status.global_step - step);
    click(&mut h, "Stop");
    wait_for(&mut h, "the stop", 30, |a| a.status().run == "finished");
    let _ = std::fs::remove_dir_all(&folder);
}

/// A `state_dict` of the model in torchvision's names, as torchvision saves it (parameters,
/// running statistics, int64 counters), with a final layer of `classes` outputs.
fn torchvision_weights(spec: &resnet_wgpu::train::ModelSpec, classes: usize) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let model = spec.build();
    let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (p, values) in model.parameters().iter().zip(model.initial_parameters(5)) {
        let (shape, values) = match p.name.as_str() {
            "fc.weight" => (vec![classes, p.shape[1]], vec![0.01; classes * p.shape[1]]),
            "fc.bias" => (vec![classes], vec![0.0; classes]),
            _ => (p.shape.clone(), values),
        };
        tensors.push((p.name.clone(), Dtype::F32, shape, le(&values)));
    }
    for (bn, c) in model.batch_norms() {
        tensors.push((
            format!("{bn}.running_mean"),
            Dtype::F32,
            vec![c],
            le(&vec![0.0; c]),
        ));
        tensors.push((
            format!("{bn}.running_var"),
            Dtype::F32,
            vec![c],
            le(&vec![1.0; c]),
        ));
        let counter = 3i64.to_le_bytes().to_vec();
        tensors.push((format!("{bn}.num_batches_tracked"), Dtype::I64, vec![], counter));
    }
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()));
    safetensors::serialize(views, None).unwrap()
}

/// Pretrained weights in torchvision's names (an ImageNet-style 1000-class head) start a run
/// from the Model panel: the panel says how many tensors loaded and which are new (the final
/// layer), Start trains from them, and another model is refused with the reason.
#[test]
fn pretrained_weights_in_torchvision_names_start_a_run() {
    let mut h = small_app();
    assert!(h.query_by_label("Open weights…").is_some());
    let spec = h.state().config.model.clone();
    let model = spec.build();
    let tensors = model.parameters().len() + 2 * model.batch_norms().len();
    drop_file(&mut h, "pretrained.safetensors", torchvision_weights(&spec, 1000));
    wait_for(&mut h, "the weights", 30, |a| {
        a.status().initial_weights.is_some() || a.status().error
    });
    let status = h.state().status();
    let (name, loaded, fresh) = status.initial_weights.expect("the weights loaded");
    assert_eq!(name, "pretrained.safetensors");
    assert_eq!(fresh, ["fc.weight", "fc.bias"]);
    assert_eq!(loaded, tensors - 2);
    let shown = format!("pretrained.safetensors ({loaded} tensors loaded, 2 new)");
    assert!(h.query_by_label(&shown).is_some());
    assert!(
        status
            .message
            .unwrap()
            .contains("Start trains from these weights")
    );

    // Weights of another model: Start says why it is refused.
    click(&mut h, "Reference");
    h.step();
    let reason = h.state().check_config().unwrap_err();
    assert!(
        reason.contains("initial weights") && reason.contains("pretrained.safetensors"),
        "{reason}"
    );
    click(&mut h, "Small and fast");
    h.step();
    click(&mut h, "Start");
    wait_for(&mut h, "a step from the weights", 120, |a| {
        a.status().global_step >= 1
    });
    assert!(h.state().status().last_loss.is_some_and(f64::is_finite));
    click(&mut h, "Stop");
    wait_for(&mut h, "the stop", 30, |a| a.status().run == "finished");

    // A file that fits neither as a checkpoint nor as weights of the model.
    let other = resnet_wgpu::train::ModelSpec::named(
        resnet_wgpu::model::Variant::ResNet18,
        resnet_wgpu::model::Stem::ImageNet,
    );
    drop_file(&mut h, "other.safetensors", torchvision_weights(&other, 10));
    wait_for(&mut h, "the refusal", 30, |a| a.status().error);
    let message = h.state().status().message.unwrap();
    assert!(
        message.contains("other.safetensors") && message.contains("initial weights"),
        "{message}"
    );
}

/// A checkpoint of a tiny ResNet-18 (CIFAR stem) trained for no steps.
fn small_checkpoint() -> Vec<u8> {
    use resnet_wgpu::train::{Checkpoint, TrainConfig, TrainState};
    let mut config = TrainConfig::reference();
    config.model = resnet_wgpu::train::ModelSpec::named(
        resnet_wgpu::model::Variant::ResNet18,
        resnet_wgpu::model::Stem::Cifar,
    );
    config.model.config.widths = vec![8, 16];
    config.model.config.blocks = vec![1, 1];
    config.model.config.stem_width = 8;
    let model = config.model.build();
    let params: Vec<Vec<f32>> = model.initial_parameters(1);
    let state = resnet_wgpu::schedule::NetworkState::fresh(&model, params);
    let progress = TrainState::fresh(&config);
    let names = resnet_wgpu::data::sample::SAMPLE_CLASSES
        .map(String::from)
        .to_vec();
    Checkpoint::new(config, progress, names, state).to_bytes()
}

/// Four classes told apart by the colour of one square on grey noise (red, green, blue,
/// yellow), placed anywhere; `count` images of `[3, 32, 32]` bytes and their labels.
fn coloured_squares(count: usize, seed: u64) -> resnet_wgpu::data::Dataset {
    let mut rng = resnet_wgpu::rng::Rng::new(seed);
    let mut images = Vec::with_capacity(count * 3 * 32 * 32);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let class = rng.below(4);
        let (top, left) = (rng.below(23), rng.below(23));
        images.extend(square_image(class, top, left, &mut rng));
        labels.push(class as u8);
    }
    let names = [
        "red", "green", "blue", "yellow", "-4", "-5", "-6", "-7", "-8", "-9",
    ];
    resnet_wgpu::data::Dataset::new(images, labels, names.map(String::from).to_vec())
}

/// One `[3, 32, 32]` image: grey noise, and a 9 × 9 square of `class`'s colour at (top, left).
fn square_image(class: usize, top: usize, left: usize, rng: &mut resnet_wgpu::rng::Rng) -> Vec<u8> {
    const COLOURS: [[u8; 3]; 4] = [[220, 30, 30], [30, 200, 30], [30, 40, 220], [220, 210, 30]];
    let mut image = vec![0u8; 3 * 32 * 32];
    for y in 0..32 {
        for x in 0..32 {
            let grey = 60 + rng.below(100) as u8;
            let inside = (top..top + 9).contains(&y) && (left..left + 9).contains(&x);
            for c in 0..3 {
                image[c * 1024 + y * 32 + x] = if inside { COLOURS[class][c] } else { grey };
            }
        }
    }
    image
}

fn png_of(chw: &[u8]) -> Vec<u8> {
    let rgb = resnet_wgpu::data::chw_to_rgb(chw);
    png_bytes(&image::RgbImage::from_raw(32, 32, rgb).unwrap())
}

/// After a short run on coloured squares, a dropped image with its square in one corner is
/// classified by the square's colour, and the heat map of the top class peaks in that corner,
/// for each corner; clicking another class shows that class's map. Saves the Classify page to
/// target/screenshots/app-heat-map.png.
#[test]
fn the_heat_map_puts_the_evidence_where_the_square_is() {
    let mut h = small_app();
    let data = resnet_wgpu::data::Cifar10 {
        train: coloured_squares(1600, 70),
        test: coloured_squares(200, 71),
    };
    h.state_mut().set_data(data, "coloured squares".into());
    h.state_mut().config.epochs = 2;
    h.state_mut().config.validation = 160;
    h.step();
    click(&mut h, "Start");
    wait_for(&mut h, "the run to finish", 300, |a| a.status().run == "finished");

    let mut rng = resnet_wgpu::rng::Rng::new(72);
    // (class, square's top-left corner, the quadrant's rows and columns in image pixels)
    let corners = [
        (0, (1, 1), (0.0, 16.0), (0.0, 16.0)),
        (1, (1, 22), (0.0, 16.0), (16.0, 32.0)),
        (2, (22, 1), (16.0, 32.0), (0.0, 16.0)),
        (3, (22, 22), (16.0, 32.0), (16.0, 32.0)),
    ];
    let names = ["red", "green", "blue", "yellow"];
    for (class, (top, left), rows, cols) in corners {
        let name = format!("{} square at {top},{left}.png", names[class]);
        drop_file(&mut h, &name, png_of(&square_image(class, top, left, &mut rng)));
        wait_for(&mut h, "the heat map", 60, |a| {
            a.status().classified.as_deref() == Some(name.as_str()) && a.status().heat.is_some()
        });
        let status = h.state().status();
        assert_eq!(status.top[0].0, names[class], "{:?}", status.top);
        let heat = status.heat.unwrap();
        assert_eq!(heat.class.as_deref(), Some(names[class]));
        assert_eq!(heat.cells, [8, 8], "the small network's last stage is 8 × 8");
        let [y, x] = heat.peak_pixel;
        assert!(
            (rows.0..rows.1).contains(&y) && (cols.0..cols.1).contains(&x),
            "{name}: the heat peaks at {:?}, outside the square's quadrant",
            heat.peak_pixel
        );
    }
    assert!(
        h.query_by_label_contains("Heat: where the evidence for yellow lies")
            .is_some()
    );
    let other = h.state().status().top[1].0.clone();
    click(&mut h, &other);
    h.step();
    assert_eq!(h.state().status().heat.unwrap().class, Some(other));
    click(&mut h, "yellow");
    h.step();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    h.render().unwrap().save(shots.join("app-heat-map.png")).unwrap();
}

/// The memory the setup panel shows is the plan the run makes: with a micro-batch cap set, the
/// figure shown before Start is the one the run allocates (a figure planned without the cap
/// would be the whole batch's).
#[test]
fn the_memory_shown_before_start_is_what_the_run_allocates() {
    use resnet_wgpu::app::DeviceState;
    use resnet_wgpu::gpu::KernelPolicy;
    use resnet_wgpu::schedule::mib;
    use resnet_wgpu::train::TrainConfig;
    let mut h = small_app();
    h.state_mut().config.max_micro_batch = Some(4);
    h.step();
    let DeviceState::Ready(info) = &h.state().device else {
        panic!("the device is ready")
    };
    let config = h.state().config.clone();
    let planned = config.plan_within(info.fit, KernelPolicy::Auto, None).unwrap();
    let uncapped = TrainConfig {
        max_micro_batch: None,
        ..config
    };
    let whole = uncapped.plan_within(info.fit, KernelPolicy::Auto, None).unwrap();
    assert!(
        planned.memory.total() != whole.memory.total() && planned.micro_batch == 4,
        "the cap changes the plan: {} against {}",
        planned.memory,
        whole.memory
    );
    let shown = format!("Needs {:.0} MiB of device memory", mib(planned.memory.total()));
    assert!(
        h.query_by_label_contains(&shown).is_some(),
        "the setup shows '{shown}'"
    );
    click(&mut h, "Start");
    wait_for(&mut h, "the run's allocation", 120, |a| a.run.memory.is_some());
    let allocated = h.state().run.memory.expect("the run reported its memory");
    assert_eq!(
        allocated, planned.memory,
        "the run allocates what the setup showed"
    );
    click(&mut h, "Stop");
}
