//! One failure path: a device error found anywhere in the app's worker (a training step, the
//! evaluation, the layer norms, copying the state to save it, a classification with its heat
//! map, the estimate, kernel timing) fails the run on a device that is still alive: the worker
//! reports the device's failure, saves nothing from the run, and continues it from its last
//! good state on a reopened device. Each test makes the device report a real validation error
//! at one place and drives the worker as the window does.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use resnet_wgpu::app::worker::{Command, Event, WorkerHandle, spawn};
use resnet_wgpu::data::{Cifar10, sample_dataset};
use resnet_wgpu::gpu::{Fault, KernelPolicy, Variant};
use resnet_wgpu::schedule::KernelCache;
use resnet_wgpu::train::TrainConfig;

fn name(event: &Event) -> String {
    match event {
        Event::Device(_) => "device".into(),
        Event::Preparing { .. } => "preparing".into(),
        Event::Kernels { .. } => "kernels".into(),
        Event::NoDevice(why) => format!("no device: {why}"),
        Event::Started { global_step, .. } => format!("started at step {global_step}"),
        Event::Step(s) => format!("step {}", s.global_step),
        Event::Epoch(m) => format!("epoch {}", m.epoch),
        Event::Paused => "paused".into(),
        Event::Finished => "finished".into(),
        Event::Report(_) => "report".into(),
        Event::LayerNorms { .. } => "layer norms".into(),
        Event::Classified { .. } => "classified".into(),
        Event::Checkpoint { global_step, .. } => format!("checkpoint at step {global_step}"),
        Event::Estimate {
            seconds_per_image, ..
        } => format!("estimate {seconds_per_image:?}"),
        Event::EstimateSetAside => "estimate set aside".into(),
        Event::DeviceFailed { reason, .. } => format!("device failed: {reason}"),
        Event::Error(text) => format!("error: {text}"),
    }
}

/// The worker, its events so far, and the run's data.
struct Worker {
    handle: WorkerHandle,
    seen: Vec<String>,
    data: Arc<Cifar10>,
    _cache: std::path::PathBuf,
}

impl Worker {
    /// A worker with its device open, its own kernel cache, and `policy`.
    fn new(policy: KernelPolicy) -> Self {
        let handle = spawn(egui::Context::default());
        let cache = std::env::temp_dir().join(format!(
            "resnet-wgpu-failure-kernels-{}-{}.json",
            std::process::id(),
            rand_suffix()
        ));
        let mut w = Self {
            handle,
            seen: Vec::new(),
            data: Arc::new(sample_dataset(96, 16, 5)),
            _cache: cache.clone(),
        };
        w.wait("the device", |e| matches!(e, Event::Device(_)));
        w.handle.send(Command::SetKernelCache(KernelCache::File(cache)));
        w.handle.send(Command::SetKernelPolicy(policy));
        w
    }

    fn send(&self, command: Command) {
        self.handle.send(command);
    }

    /// Waits for an event that `wanted` accepts, failing on a timeout with what was seen.
    fn wait(&mut self, what: &str, mut wanted: impl FnMut(&Event) -> bool) -> Event {
        let start = Instant::now();
        loop {
            match self.handle.events.try_recv() {
                Ok(event) => {
                    self.seen.push(name(&event));
                    if wanted(&event) {
                        return event;
                    }
                }
                Err(_) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(180),
                        "timed out waiting for {what}; seen: {:?}",
                        self.seen
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    fn config() -> TrainConfig {
        let mut config = common::small_config(16, 2);
        config.validation = 16;
        config
    }

    /// Starts a run and pauses it after two steps.
    fn run_two_steps(&mut self) {
        self.send(Command::Train {
            config: Self::config(),
            data: self.data.clone(),
            initial: None,
        });
        self.wait("two steps", |e| matches!(e, Event::Step(s) if s.global_step >= 2));
        self.send(Command::Pause);
        self.wait("the pause", |e| matches!(e, Event::Paused));
    }

    /// Waits for the device's failure; then checks that nothing is saved from the run and that
    /// the reopened device continues it.
    fn expect_failure_and_recovery(&mut self, at: &str) {
        let failed = self.wait(&format!("the device's failure at {at}"), |e| {
            matches!(
                e,
                Event::DeviceFailed { .. } | Event::Error(_) | Event::Checkpoint { .. }
            )
        });
        let Event::DeviceFailed { reason, .. } = failed else {
            panic!("{at}: a device error must fail the run; seen: {:?}", self.seen)
        };
        assert!(
            reason.contains("Usage flags") || reason.contains("usage"),
            "{at}: {reason}"
        );
        self.send(Command::Save { keep: true });
        let refused = self.wait("Save to be answered", |e| {
            matches!(e, Event::Error(_) | Event::Checkpoint { .. })
        });
        assert!(
            matches!(&refused, Event::Error(text) if text.contains("reopen it first")),
            "{at}: a failed run must not be saved; seen: {:?}",
            self.seen
        );
        self.send(Command::ReopenDevice);
        self.wait("the run on the reopened device", |e| {
            matches!(e, Event::Started { .. })
        });
    }
}

fn rand_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

const SUBGROUP: KernelPolicy = KernelPolicy::Only(Variant::Subgroup);

#[test]
fn a_device_error_in_a_training_step_fails_the_run() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    w.send(Command::ArmFault(Fault::Step));
    w.send(Command::Continue);
    w.expect_failure_and_recovery("a training step");
}

#[test]
fn a_device_error_in_the_evaluation_fails_the_run() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    w.send(Command::ArmFault(Fault::Predict));
    w.send(Command::Evaluate);
    w.expect_failure_and_recovery("the evaluation");
}

#[test]
fn a_device_error_reading_the_layer_norms_fails_the_run() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    // The norms are read at most once a second: after this pause the next step reads them.
    std::thread::sleep(Duration::from_millis(1500));
    w.send(Command::ArmFault(Fault::LayerNorms));
    w.send(Command::Continue);
    w.expect_failure_and_recovery("the layer norms");
}

#[test]
fn a_device_error_copying_the_state_to_save_it_fails_the_run() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    w.send(Command::ArmFault(Fault::StateCopy));
    w.send(Command::Save { keep: false });
    w.expect_failure_and_recovery("the state copy");
}

#[test]
fn a_device_error_in_a_classification_fails_the_run() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    w.send(Command::ArmFault(Fault::GradCam));
    w.send(Command::Classify {
        name: "grey".into(),
        image: vec![128; 3 * 32 * 32],
    });
    w.expect_failure_and_recovery("the classification's heat map");
}

#[test]
fn a_device_error_in_the_estimate_fails_the_run() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    w.send(Command::ArmFault(Fault::Step));
    w.send(Command::Estimate {
        config: Worker::config(),
        data: w.data.clone(),
    });
    w.expect_failure_and_recovery("the estimate");
}

#[test]
fn a_device_error_while_timing_kernels_fails_the_run_and_caches_nothing() {
    let mut w = Worker::new(KernelPolicy::Auto);
    w.run_two_steps();
    w.send(Command::ArmFault(Fault::KernelTiming));
    // A new run of another shape times its kernels anew.
    let mut config = Worker::config();
    config.batch = 8;
    w.send(Command::Train {
        config,
        data: w.data.clone(),
        initial: None,
    });
    let failed = w.wait("the device's failure while timing", |e| {
        matches!(
            e,
            Event::DeviceFailed { .. } | Event::Started { .. } | Event::Error(_)
        )
    });
    assert!(
        matches!(failed, Event::DeviceFailed { .. }),
        "a device error while timing kernels must fail the run; seen: {:?}",
        w.seen
    );
    let cached = std::fs::read_to_string(&w._cache).unwrap_or_default();
    assert!(
        !cached.contains(" b8 ") && !cached.contains("b8 "),
        "nothing of the failed timing is cached: {cached}"
    );
}

#[test]
fn a_device_error_reading_the_norms_of_a_step_that_was_not_finite_fails_the_run() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    w.send(Command::PoisonNextStep);
    w.send(Command::ArmFault(Fault::LayerNorms));
    w.send(Command::Continue);
    w.expect_failure_and_recovery("the norms after a step that was not finite");
}

/// A run asked for while the device is marked failed is refused, and leaves nothing behind that
/// would set later estimates aside: after the device is reopened, an estimate is timed.
#[test]
fn a_start_refused_on_a_failed_device_does_not_set_later_estimates_aside() {
    let mut w = Worker::new(SUBGROUP);
    w.run_two_steps();
    w.send(Command::ArmFault(Fault::Step));
    w.send(Command::Continue);
    w.wait("the failure", |e| matches!(e, Event::DeviceFailed { .. }));
    w.send(Command::Train {
        config: Worker::config(),
        data: w.data.clone(),
        initial: None,
    });
    w.wait(
        "the refusal",
        |e| matches!(e, Event::Error(text) if text.contains("reopen it first")),
    );
    w.send(Command::ReopenDevice);
    w.wait("the run on the reopened device", |e| {
        matches!(e, Event::Started { .. })
    });
    w.send(Command::Pause);
    w.wait("the pause", |e| matches!(e, Event::Paused));
    w.send(Command::Estimate {
        config: Worker::config(),
        data: w.data.clone(),
    });
    let answer = w.wait("the estimate", |e| {
        matches!(e, Event::Estimate { .. } | Event::EstimateSetAside)
    });
    assert!(
        matches!(
            answer,
            Event::Estimate {
                seconds_per_image: Ok(_),
                ..
            }
        ),
        "seen: {:?}",
        w.seen
    );
}
