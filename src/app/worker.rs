//! The app's training worker: owns the GPU device and the [`Trainer`], takes [`Command`]s and
//! reports [`Event`]s. The same async loop runs on a thread natively (blocking on it) and as a
//! task in the browser, where each GPU read-back awaits the browser's event loop, so the page
//! never blocks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_channel::mpsc::{TryRecvError, UnboundedReceiver, UnboundedSender, unbounded};

use super::messages::device_info;
pub use super::messages::{Command, DeviceInfo, Event};
use super::step_timing::{StepProbe, estimate_key};
use crate::data::Cifar10;
use crate::gpu::{GemmKey, GpuContext, GpuError, KernelPolicy, Variant};
use crate::schedule::{KernelCache, MemoryMode, NORMS_READ_SHARE, Plan, Tuning, choose_kernels};
use crate::train::{Checkpoint, Progress, Splits, TrainConfig, TrainError, Trainer, softmax_rows, top_k};

/// Sends events to the window and wakes it to draw them.
#[derive(Clone)]
pub struct EventSink {
    sender: UnboundedSender<Event>,
    repaint: egui::Context,
}

impl EventSink {
    fn send(&self, event: Event) {
        let _ = self.sender.unbounded_send(event);
        self.repaint.request_repaint();
    }
}

/// The window's end of the worker.
pub struct WorkerHandle {
    commands: UnboundedSender<Command>,
    /// Raised when a run is asked for: a step being timed for the estimate is then set aside,
    /// so that the run starts without waiting for it.
    run_asked: Arc<AtomicBool>,
    pub events: UnboundedReceiver<Event>,
    /// The trainer thread, and a channel that disconnects when it ends.
    #[cfg(not(target_arch = "wasm32"))]
    thread: Option<(std::thread::JoinHandle<()>, std::sync::mpsc::Receiver<()>)>,
}

impl WorkerHandle {
    pub fn send(&self, command: Command) {
        if matches!(command, Command::Train { .. } | Command::Resume { .. }) {
            self.run_asked.store(true, Ordering::SeqCst);
        }
        let _ = self.commands.unbounded_send(command);
    }
}

/// How long closing the window waits for the trainer to finish its step and free the device.
#[cfg(not(target_arch = "wasm32"))]
const SHUTDOWN_WAIT_SECONDS: u64 = 20;

/// Closing the window closes the worker's command channel; the worker returns after its
/// current step and frees the device. Waiting for that keeps the device's teardown from
/// racing the process's exit (the driver's own exit handlers), which can corrupt the heap.
#[cfg(not(target_arch = "wasm32"))]
impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.commands.close_channel();
        let Some((thread, ended)) = self.thread.take() else {
            return;
        };
        let wait = std::time::Duration::from_secs(SHUTDOWN_WAIT_SECONDS);
        match ended.recv_timeout(wait) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                log::warn!("the trainer did not finish its step within {SHUTDOWN_WAIT_SECONDS} s; leaving it")
            }
            _ => {
                if thread.join().is_err() {
                    log::warn!("the trainer thread panicked");
                }
            }
        }
    }
}

/// Starts the worker: a thread natively, a browser task on the web.
pub fn spawn(repaint: egui::Context) -> WorkerHandle {
    let (commands, command_rx) = unbounded();
    let (sender, events) = unbounded();
    let sink = EventSink { sender, repaint };
    let run_asked = Arc::new(AtomicBool::new(false));
    let worker_run_asked = run_asked.clone();
    #[cfg(not(target_arch = "wasm32"))]
    let thread = {
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("trainer".into())
            .spawn(move || {
                let _ended = ended_tx; // dropped when the worker returns, even by a panic
                pollster::block_on(run(command_rx, sink, worker_run_asked))
            })
            .expect("the trainer thread starts");
        Some((thread, ended))
    };
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_futures::spawn_local(run(command_rx, sink, worker_run_asked));
    WorkerHandle {
        commands,
        run_asked,
        events,
        #[cfg(not(target_arch = "wasm32"))]
        thread,
    }
}

/// The worker's state besides the device.
struct Session {
    trainer: Option<Trainer>,
    running: bool,
    /// The run's last state known good, to continue from after the device fails.
    last_good: Option<Box<Checkpoint>>,
    /// The device has failed; the run waits for [`Command::ReopenDevice`].
    failed: bool,
    /// When the layer norms were last read, and how many seconds that read took.
    norms_read: Option<(web_time::Instant, f64)>,
    /// Where kernel choices are kept between runs.
    kernel_cache: KernelCache,
    /// How the next run's launches pick their kernel variant.
    kernel_policy: KernelPolicy,
    /// The memory mode asked for the next run (`None`: its plan chooses).
    memory_mode: Option<MemoryMode>,
    /// The kernel choices measured or checked on this device so far: a later plan starts from
    /// them, so that nothing is timed twice on one device even where the cache keeps nothing.
    known_kernels: BTreeMap<GemmKey, Variant>,
    /// Raised by the window when it asks for a run ([`WorkerHandle::send`]); lowered when that
    /// Train or Resume is handled (started or refused).
    run_asked: Arc<AtomicBool>,
}

/// The least seconds between two reads of the layer norms while training.
const NORMS_EVERY_SECONDS: f64 = 1.0;

/// Sends the layer norms of the last step: at once with `now`, else at most every
/// [`NORMS_EVERY_SECONDS`] and within [`NORMS_READ_SHARE`] of the time.
async fn send_layer_norms(
    ctx: &GpuContext,
    session: &mut Session,
    events: &EventSink,
    now: bool,
) -> Result<(), GpuError> {
    let due = session.norms_read.is_none_or(|(at, took)| {
        at.elapsed().as_secs_f64() >= NORMS_EVERY_SECONDS.max(took / NORMS_READ_SHARE)
    });
    let Some(t) = session.trainer.as_ref() else {
        return Ok(());
    };
    if !(now || due) || ctx.is_lost() {
        return Ok(());
    }
    let started = web_time::Instant::now();
    let norms = t.net.layer_norms(ctx).await?;
    session.norms_read = Some((started, started.elapsed().as_secs_f64()));
    events.send(Event::LayerNorms {
        global_step: t.state.global_step,
        norms,
    });
    Ok(())
}

/// The worker loop: runs commands, and training steps while a run is going.
async fn run(mut commands: UnboundedReceiver<Command>, events: EventSink, run_asked: Arc<AtomicBool>) {
    let mut ctx = match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => return events.send(Event::NoDevice(e.to_string())),
    };
    events.send(Event::Device(device_info(&ctx, None)));
    let mut session = Session {
        trainer: None,
        running: false,
        last_good: None,
        failed: false,
        norms_read: None,
        kernel_cache: KernelCache::default_location(),
        kernel_policy: KernelPolicy::Auto,
        memory_mode: None,
        known_kernels: BTreeMap::new(),
        run_asked,
    };
    loop {
        let command = if session.running {
            match commands.try_recv() {
                Ok(c) => Some(c),
                Err(TryRecvError::Closed) => return,
                Err(TryRecvError::Empty) => None, // nothing waiting: train on
            }
        } else {
            match commands.recv().await {
                Ok(c) => Some(c),
                Err(_) => return, // the window has closed
            }
        };
        match command {
            Some(Command::ReopenDevice) => {
                if let Some(new) = reopen(&ctx, &mut session, &events).await {
                    ctx = new;
                }
                continue;
            }
            Some(command) => {
                handle(&ctx, command, &mut session, &events).await;
                continue;
            }
            None => {}
        }
        let Some(t) = session.trainer.as_mut() else {
            session.running = false;
            continue;
        };
        match t.advance(&ctx).await {
            Ok(Progress::Step(s)) => {
                events.send(Event::Step(s));
                if let Err(e) = send_layer_norms(&ctx, &mut session, &events, false).await {
                    fail(&ctx, &mut session, &events, e.into());
                }
            }
            Ok(Progress::Epoch(m)) => {
                events.send(Event::Epoch(m));
                remember_good_state(&ctx, &mut session, &events).await;
            }
            Ok(Progress::Finished) => {
                session.running = false;
                events.send(Event::Finished);
            }
            Err(e) => {
                // The norms of the step that failed (a step that was not finite) show which
                // layers grew. A device error while reading them outranks a step that was only
                // not finite: the run must fail, not pause and be kept.
                let norms = send_layer_norms(&ctx, &mut session, &events, true).await;
                let error = match norms {
                    Err(device) if e.device_failure().is_none() => device.into(),
                    _ => e,
                };
                fail(&ctx, &mut session, &events, error)
            }
        }
    }
}

/// Reports an error of the worker's work, the one path every error takes. An error of the
/// device (one it reported, a failed read-back, a lost device), wherever it was found, fails
/// the run: nothing is saved from it, and it waits to continue from its last good state on a
/// new device. Any other error (a step that was not finite, a configuration that does not fit)
/// only pauses it.
fn fail(ctx: &GpuContext, session: &mut Session, events: &EventSink, error: TrainError) {
    session.running = false;
    let device_failure = error
        .device_failure()
        .or_else(|| ctx.is_lost().then(|| error.to_string()));
    let Some(reason) = device_failure else {
        events.send(Event::Error(error.to_string()));
        return events.send(Event::Paused);
    };
    session.failed = true;
    if let Some(t) = session.trainer.as_mut() {
        t.mark_device_failed(reason.clone());
    }
    events.send(Event::DeviceFailed {
        reason,
        resume_from: resume_point(session),
    });
}

/// "epoch 3, step 10": where the run continues from on a new device.
fn resume_point(session: &Session) -> Option<String> {
    session.last_good.as_ref().map(|c| {
        let s = &c.header.state;
        format!("epoch {}, step {}", s.epochs_done + 1, s.step_in_epoch)
    })
}

/// Copies the run's state off the device as the point to continue from if the device fails;
/// a copy that fails is reported as the device's failure.
async fn remember_good_state(ctx: &GpuContext, session: &mut Session, events: &EventSink) {
    let Some(t) = session.trainer.as_mut() else {
        return;
    };
    match t.checkpoint(ctx).await {
        Ok(c) => session.last_good = Some(Box::new(c)),
        Err(e) => fail(ctx, session, events, e),
    }
}

/// Opens a new device (with the old one's settings) and continues the run from its last good
/// state. Returns the new device, or `None` (with an event saying why) if none opens.
async fn reopen(old: &GpuContext, session: &mut Session, events: &EventSink) -> Option<GpuContext> {
    session.running = false;
    let ctx = match GpuContext::new().await {
        Ok(ctx) => ctx,
        Err(e) => {
            events.send(Event::DeviceFailed {
                reason: format!("no GPU could be opened again: {e}"),
                resume_from: resume_point(session),
            });
            return None;
        }
    };
    let data = session.trainer.take().map(|t| t.data);
    ctx.set_memory_budget(old.memory_budget());
    session.failed = false;
    session.known_kernels.clear(); // measured on the old device
    // The settings carry over to the new device.
    events.send(Event::Device(device_info(&ctx, session.memory_mode)));
    let (Some(config), Some(data)) = (session.last_good.as_ref().map(|c| c.header.config.clone()), data)
    else {
        return Some(ctx);
    };
    let plan = match prepare_kernels(&ctx, &config, session, events, true).await {
        Ok(plan) => plan,
        Err(e) => {
            fail(&ctx, session, events, e);
            return Some(ctx);
        }
    };
    let checkpoint = session.last_good.as_ref().expect("checked above");
    match Trainer::resume_from_plan(&ctx, plan, checkpoint, data) {
        Ok(t) => {
            events.send(started(&t, false));
            session.running = !t.is_finished();
            session.trainer = Some(t);
        }
        Err(e) => events.send(Event::Error(e.to_string())),
    }
    Some(ctx)
}

async fn handle(ctx: &GpuContext, command: Command, session: &mut Session, events: &EventSink) {
    let device_work = match &command {
        Command::Train { .. }
        | Command::Resume { .. }
        | Command::Continue
        | Command::Evaluate
        | Command::Classify { .. }
        | Command::Save { .. }
        | Command::Estimate { .. } => true,
        Command::Pause
        | Command::Stop
        | Command::SetKernelPolicy(_)
        | Command::SetMemoryMode(_)
        | Command::SetMemoryBudget(_)
        | Command::ReopenDevice
        | Command::LoseDevice
        | Command::ArmFault(_)
        | Command::PoisonNextStep
        | Command::SetKernelCache(_) => false,
    };
    if matches!(command, Command::Train { .. } | Command::Resume { .. }) {
        // The run asked for is handled now: started, or refused just below.
        session.run_asked.store(false, Ordering::SeqCst);
    }
    if session.failed && device_work {
        return events.send(Event::Error(
            "the GPU failed: reopen it first (the button above the pages)".into(),
        ));
    }
    match command {
        Command::Train {
            config,
            data,
            initial,
        } => {
            session.trainer = None; // free the old run's buffers first
            session.last_good = None;
            let prepared = prepare_kernels(ctx, &config, session, events, true);
            let plan = match prepared.await {
                Ok(plan) => plan,
                Err(e) => return fail(ctx, session, events, e),
            };
            let splits = Splits::new(&data, config.validation);
            match Trainer::from_plan(ctx, plan, config, splits, initial.map(|state| *state)) {
                Ok(t) => {
                    events.send(started(&t, false));
                    session.trainer = Some(t);
                    session.running = true;
                    remember_good_state(ctx, session, events).await;
                }
                Err(e) => events.send(Event::Error(e.to_string())),
            }
        }
        Command::Resume { checkpoint, data } => {
            let config = &checkpoint.header.config;
            let prepared = prepare_kernels(ctx, config, session, events, true);
            let plan = match prepared.await {
                Ok(plan) => plan,
                Err(e) => return fail(ctx, session, events, e),
            };
            let splits = Splits::new(&data, checkpoint.header.config.validation);
            match Trainer::resume_from_plan(ctx, plan, &checkpoint, splits) {
                Ok(t) => {
                    events.send(started(&t, true));
                    session.trainer = Some(t);
                    session.running = false;
                    session.last_good = Some(checkpoint);
                }
                Err(e) => events.send(Event::Error(e.to_string())),
            }
        }
        Command::Pause => {
            session.running = false;
            events.send(Event::Paused);
        }
        Command::Continue => session.running = session.trainer.as_ref().is_some_and(|t| !t.is_finished()),
        Command::Stop => {
            session.running = false;
            events.send(Event::Finished);
        }
        Command::Evaluate => match session.trainer.as_ref() {
            None => events.send(Event::Error("train a model or load a checkpoint first".into())),
            Some(t) if t.data.test.is_empty() => {
                events.send(Event::Error("the data has no test images".into()))
            }
            Some(t) => match t.evaluate(ctx, &t.data.test).await {
                Ok(r) => events.send(Event::Report(Box::new(r))),
                Err(e) => fail(ctx, session, events, e.into()),
            },
        },
        Command::Classify { name, image } => match session.trainer.as_ref() {
            None => events.send(Event::Error(
                "train a model or load a checkpoint before classifying".into(),
            )),
            Some(t) => {
                let pixels: Vec<f32> = image.iter().map(|&b| b as f32 / 255.0).collect();
                // Ranked among the classes the data names (a network may have more outputs).
                let named = t.data.train.class_names.len().clamp(1, t.net.plan.model.classes);
                match t.net.grad_cam(ctx, &pixels).await {
                    Ok(Some(maps)) => {
                        let probabilities = &softmax_rows(&maps.logits, t.net.plan.model.classes)[0];
                        let heat = match maps.height * maps.width {
                            1 => Err("the last stage sees this input as a single cell, so there is \
                                      no map to show: the CIFAR stem or a larger input keeps a grid"
                                .to_string()),
                            _ => Ok(maps),
                        };
                        events.send(Event::Classified {
                            name,
                            top: top_k(&probabilities[..named], 5),
                            heat,
                        });
                    }
                    Ok(None) => match t.net.predict(ctx, &pixels).await {
                        Ok(logits) => events.send(Event::Classified {
                            name,
                            top: top_k(&softmax_rows(&logits, t.net.plan.model.classes)[0][..named], 5),
                            heat: Err("this network has no pooled last stage to map".to_string()),
                        }),
                        Err(e) => fail(ctx, session, events, e.into()),
                    },
                    Err(e) => fail(ctx, session, events, e.into()),
                }
            }
        },
        Command::SetKernelPolicy(policy) => session.kernel_policy = policy,
        Command::SetMemoryMode(mode) => session.memory_mode = mode,
        Command::SetMemoryBudget(bytes) => ctx.set_memory_budget(bytes),
        Command::Save { keep } => match session.trainer.as_mut() {
            None => events.send(Event::Error("nothing to save yet: train a model first".into())),
            Some(t) => match t.checkpoint(ctx).await {
                Ok(c) => {
                    events.send(Event::Checkpoint {
                        bytes: c.to_bytes(),
                        epochs_done: t.state.epochs_done,
                        global_step: t.state.global_step,
                        keep,
                    });
                    session.last_good = Some(Box::new(c));
                }
                Err(e) => fail(ctx, session, events, e),
            },
        },
        Command::LoseDevice => ctx.device.destroy(),
        Command::ArmFault(at) => ctx.arm_fault(at),
        Command::PoisonNextStep => {
            if let Some(t) = session.trainer.as_mut() {
                t.poison_next_step();
            }
        }
        Command::SetKernelCache(cache) => session.kernel_cache = cache,
        Command::Estimate { config, data } => {
            let key = estimate_key(&config);
            let seconds_per_image = if session.running {
                Err("a run is going".to_string())
            } else {
                match measure_step(ctx, &config, &data, session, events).await {
                    // The device failed while timing: the run waits for a new one.
                    Err(e) if e.device_failure().is_some() || ctx.is_lost() => {
                        events.send(Event::Estimate {
                            key,
                            seconds_per_image: Err(e.to_string()),
                        });
                        return fail(ctx, session, events, e);
                    }
                    // A run was asked for: it goes first.
                    Ok(None) => return events.send(Event::EstimateSetAside),
                    Ok(Some(seconds)) => Ok(seconds),
                    Err(e) => Err(e.to_string()),
                }
            };
            events.send(Event::Estimate {
                key,
                seconds_per_image,
            });
        }
        // The worker loop, which owns the device, reopens it.
        Command::ReopenDevice => {}
    }
}

/// Seconds per training image of `config`'s model, its kernels chosen first (see
/// [`StepProbe::seconds_per_image`]); `None` where a run was asked for meanwhile.
async fn measure_step(
    ctx: &GpuContext,
    config: &TrainConfig,
    data: &Arc<Cifar10>,
    session: &mut Session,
    events: &EventSink,
) -> Result<Option<f64>, crate::train::TrainError> {
    if session.run_asked.load(Ordering::SeqCst) {
        return Ok(None);
    }
    prepare_kernels(ctx, config, session, events, false).await?;
    StepProbe {
        ctx,
        config,
        data,
        policy: session.kernel_policy,
        memory_mode: session.memory_mode,
        cache: &session.kernel_cache,
        known: &session.known_kernels,
        run_asked: &session.run_asked,
    }
    .seconds_per_image()
    .await
}

/// Plans a configuration and chooses its kernels (from what this device already measured, the
/// cache, or measured now), reporting progress; the session keeps the choices. `for_run`: for
/// a run about to start, not for the step timed for the estimate.
async fn prepare_kernels(
    ctx: &GpuContext,
    config: &TrainConfig,
    session: &mut Session,
    events: &EventSink,
    for_run: bool,
) -> Result<Plan, crate::train::TrainError> {
    let mut plan = config.plan(ctx, session.kernel_policy, session.memory_mode)?;
    plan.kernels.measured = session.known_kernels.clone();
    let report = choose_kernels(
        ctx,
        &mut plan,
        &session.kernel_cache,
        Tuning::Measure,
        |done, total| events.send(Event::Preparing { done, total }),
    )
    .await?;
    session.known_kernels = plan.kernels.measured.clone();
    events.send(Event::Kernels {
        report: Box::new(report),
        for_run,
    });
    Ok(plan)
}

fn started(t: &Trainer, paused: bool) -> Event {
    Event::Started {
        memory: t.net.plan.memory,
        steps_per_epoch: t.steps_per_epoch(),
        total_steps: t.total_steps(),
        resumed_history: t.state.history.clone(),
        global_step: t.state.global_step,
        paused,
    }
}
