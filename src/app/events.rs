//! The news the window receives: the worker's events and the file loader's results, each
//! turned into changes of the app's state.

use super::App;
use super::files::Done;
use super::run::{RunState, Starting};
use super::state::{DeviceFailure, DeviceState, KeptInfo, Tab};
use super::worker::Event;

impl App {
    /// Applies the worker's and the file loader's news.
    pub(super) fn poll(&mut self) {
        while let Ok(event) = self.worker.events.try_recv() {
            self.apply(event);
        }
        while let Some(done) = self.files.poll() {
            self.finished(done);
        }
    }

    /// A file read, loaded, saved or kept off the window's thread.
    fn finished(&mut self, done: Done) {
        match done {
            Done::File(file) => self.open_file(file),
            Done::Dataset(Ok((data, source))) => self.set_data(data, source),
            Done::Dataset(Err(e)) => self.error(e),
            Done::Checkpoint(name, Ok(checkpoint)) => self.use_checkpoint(&name, *checkpoint),
            Done::Image(name, Ok(image)) => self.classify_image(name, image),
            Done::Weights(name, Ok(weights)) => {
                let report = &weights.report;
                self.notice(format!(
                    "{name}: {} tensors loaded, {} new{}{}: Start trains from these weights",
                    report.loaded,
                    report.fresh.len(),
                    if report.fresh.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", report.fresh.join(", "))
                    },
                    report
                        .converted
                        .describe()
                        .map_or(String::new(), |c| format!("; {c}"))
                ));
                self.initial_weights = Some(weights);
            }
            Done::Weights(name, Err(e)) => self.error(with_name(&name, e)),
            Done::Checkpoint(name, Err(e)) | Done::Image(name, Err(e)) => self.error(with_name(&name, e)),
            Done::Saved(Ok(place)) => self.notice(format!("checkpoint saved to {place}")),
            Done::Saved(Err(e)) => self.error(e),
            Done::Kept(Ok((digest, place, storage_used))) => {
                self.kept = self.keeping_step.take().map(|global_step| KeptInfo {
                    global_step,
                    digest,
                    place,
                    storage_used,
                });
            }
            Done::Kept(Err(e)) => {
                self.keeping_step = None;
                self.error(format!("the run could not be kept for the next start: {e}"));
            }
            Done::KeptRun(Ok(offer)) => self.kept_offer = offer,
            Done::KeptRun(Err(e)) | Done::Discarded(Err(e)) => self.error(e),
            Done::Discarded(Ok(())) => self.notice("the kept run was discarded"),
            Done::Downloading(fraction, text) => {
                self.setup.download = (!text.is_empty()).then_some((fraction, text));
            }
        }
    }

    /// One of the worker's events.
    fn apply(&mut self, event: Event) {
        match event {
            Event::Device(info) => {
                let fresh = !self.restored_settings && self.run.state == RunState::Idle;
                let train_images = self.data.train.len();
                self.setup
                    .choose_default(info.cpu, &mut self.config, fresh, train_images);
                self.device = DeviceState::Ready(info);
            }
            Event::Estimate {
                key,
                seconds_per_image,
            } => self.setup.estimates.measured(key, seconds_per_image),
            Event::EstimateSetAside => self.setup.estimates.timing_ended(),
            Event::Preparing { done, total } => self.run.preparing = Some((done, total)),
            Event::Kernels { report, for_run } => {
                self.run.preparing = None;
                self.pages.device.kernels = Some(*report);
                // The estimate's kernels, chosen while a start waited, do not move the start on.
                if for_run && self.run.starting.is_some() {
                    self.run.starting = Some((Starting::BuildingNetwork, web_time::Instant::now()));
                }
            }
            Event::NoDevice(why) => {
                self.error(format!("no GPU: {why}"));
                self.device = DeviceState::Missing(why);
                self.tab = Tab::Device;
            }
            Event::Started {
                memory,
                steps_per_epoch,
                total_steps,
                resumed_history,
                global_step,
                paused,
            } => {
                // After a device failure the run continues from an earlier step: the steps
                // after it are undone.
                self.run
                    .step_losses
                    .retain(|[step, _]| *step <= global_step as f64);
                self.run.memory = Some(memory);
                self.run.steps_per_epoch = steps_per_epoch;
                self.run.total_steps = total_steps;
                self.run.epochs = resumed_history;
                self.run.state = if paused {
                    RunState::Paused
                } else {
                    RunState::Running
                };
                self.run.starting = match self.run.starting {
                    Some((Starting::BuildingNetwork, since)) if !paused => {
                        let built = since.elapsed().as_secs_f64();
                        self.run.first_step = Some([built, 0.0]);
                        Some((Starting::FirstStep, web_time::Instant::now()))
                    }
                    _ => None,
                };
                let limits = match &self.device {
                    DeviceState::Ready(info) => info.fit,
                    DeviceState::Starting | DeviceState::Missing(_) => crate::schedule::DeviceLimits {
                        max_buffer: memory.largest_buffer,
                        memory_budget: memory.total(),
                        shader_f16: memory.mode.precision() == crate::shaders::Precision::F16,
                    },
                };
                let split = memory
                    .micro_batch_note(limits)
                    .map_or(String::new(), |note| format!("; each batch {note}"));
                let what = match (&self.loaded_checkpoint.take(), self.reopening) {
                    (Some(name), _) => format!("loaded {name}: press Resume to continue"),
                    (None, true) => {
                        format!("the GPU was reopened; training continues from step {global_step}")
                    }
                    (None, false) => "training".into(),
                };
                self.reopening = false;
                self.notice(format!(
                    "{what} ({:.0} MiB of device memory{split})",
                    crate::schedule::mib(memory.total())
                ));
            }
            Event::Step(s) => {
                if let (Some((Starting::FirstStep, since)), Some([_, first])) =
                    (self.run.starting, self.run.first_step.as_mut())
                {
                    *first = since.elapsed().as_secs_f64();
                    self.run.starting = None;
                }
                self.run.step_losses.push([s.global_step as f64, s.loss]);
                self.run.last_step = Some(s);
                self.run.state = RunState::Running;
            }
            Event::LayerNorms { global_step, norms } => self.run.layer_norms = Some((global_step, norms)),
            Event::Epoch(m) => {
                self.notice(format!(
                    "epoch {} done: validation error {}",
                    m.epoch,
                    m.val_error.map_or("-".into(), |e| format!("{:.2} %", 100.0 * e))
                ));
                self.run.epochs.push(m);
                self.keep_run();
            }
            Event::Paused => {
                if self.run.state == RunState::Running {
                    self.run.state = RunState::Paused;
                }
                self.keep_run();
            }
            Event::Finished => {
                self.run.starting = None;
                self.run.state = RunState::Finished;
                self.keep_run();
                self.notice("training finished: evaluate it, save it, or classify an image");
            }
            Event::Report(report) => {
                self.notice(format!("test accuracy {:.2} %", 100.0 * report.accuracy));
                self.pages.evaluation.show(*report);
                self.tab = Tab::Evaluation;
            }
            Event::Classified { name, top, heat } => self.pages.classify.classified(&name, top, heat),
            Event::Checkpoint {
                bytes,
                global_step,
                keep: true,
                ..
            } => {
                self.keeping_step = Some(global_step);
                self.files.keep_run(bytes, &self.checkpoint_folder);
            }
            Event::Checkpoint {
                bytes, epochs_done, ..
            } => {
                let name = format!("resnet-epoch{epochs_done}.safetensors");
                #[cfg(not(target_arch = "wasm32"))]
                if self.save_with_dialog {
                    return self.files.save_as(name, bytes);
                }
                self.files.save(name, bytes, &self.checkpoint_folder);
            }
            Event::DeviceFailed { reason, resume_from } => {
                self.run.starting = None;
                if self.run.state == RunState::Running {
                    self.run.state = RunState::Paused;
                }
                self.run.last_step = None;
                self.setup.estimates.timing_ended(); // a step being timed ended with the device
                self.error(format!(
                    "the GPU failed: {reason}; nothing was saved from the failed step"
                ));
                self.device_failure = Some(DeviceFailure { reason, resume_from });
            }
            Event::Error(text) => {
                self.run.starting = None;
                self.error(text);
            }
        }
    }
}

/// An error about a file, naming the file (once).
fn with_name(name: &str, error: String) -> String {
    if error.contains(name) {
        error
    } else {
        format!("{name}: {error}")
    }
}
