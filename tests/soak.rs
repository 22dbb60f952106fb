//! A soak run: several epochs of a small network, each ending as the command line's do (metrics,
//! evaluation, a checkpoint written to disk), with device and host memory flat from the second
//! epoch on. Alone in its test binary, so that the process's resident memory is this run's.

mod common;
use common::*;
use resnet_wgpu::data::sample_dataset;
use resnet_wgpu::train::{Checkpoint, Progress, Splits, TrainConfig, Trainer};

const EPOCHS: usize = 5;

fn soak_config() -> TrainConfig {
    TrainConfig {
        model: small_spec(&[16, 32, 64], &[1, 1, 1]),
        seed: 3,
        validation: 64,
        max_micro_batch: Some(16),
        ..small_config(32, EPOCHS)
    }
}

#[test]
fn memory_stays_flat_from_the_second_epoch_on() {
    let ctx = gpu();
    let data = sample_dataset(320, 64, 1);
    let config = soak_config();
    let splits = Splits::new(&data, config.validation);
    let mut trainer = Trainer::new(&ctx, config, splits, None).expect("the run starts");
    let dir = std::env::temp_dir().join(format!("resnet-wgpu-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let path = dir.join("last.safetensors");
    let mut after_epoch = Vec::new();
    let mut checkpoint_bytes = 0;
    loop {
        match pollster::block_on(trainer.advance(&ctx)).expect("a training step") {
            Progress::Finished => break,
            Progress::Step(_) => {}
            Progress::Epoch(m) => {
                let report = pollster::block_on(trainer.evaluate(&ctx, &trainer.data.test))
                    .expect("the test-set report");
                assert!(report.accuracy.is_finite());
                let checkpoint = pollster::block_on(trainer.checkpoint(&ctx)).expect("a checkpoint");
                checkpoint.save(&path).expect("the checkpoint is written");
                let reloaded = Checkpoint::load(&path).expect("the checkpoint reads back");
                checkpoint_bytes = reloaded.to_bytes().len() as u64;
                let usage = ctx.memory_use();
                println!("epoch {}: {usage}", m.epoch);
                after_epoch.push(usage);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(after_epoch.len(), EPOCHS);
    let device: Vec<_> = after_epoch
        .iter()
        .map(|u| u.device.expect("the Vulkan backend reports its allocations"))
        .collect();
    for (epoch, d) in device.iter().enumerate().skip(2) {
        assert_eq!(
            (d.allocations, d.allocated),
            (device[1].allocations, device[1].allocated),
            "device memory after epoch {} differs from after epoch 2",
            epoch + 1
        );
    }
    let host: Vec<u64> = after_epoch
        .iter()
        .map(|u| u.host_resident.expect("Linux reports the resident set"))
        .collect();
    let growth = host[EPOCHS - 1].saturating_sub(host[1]);
    // A checkpoint kept alive per epoch would add `checkpoint_bytes` each time (three times over
    // the epochs checked); allocator noise stays well below one.
    assert!(
        growth < checkpoint_bytes,
        "host memory grew by {growth} bytes from epoch 2 to epoch {EPOCHS} (one checkpoint is \
         {checkpoint_bytes} bytes): {host:?}"
    );
}
