//! A scripted run of the window (native): optionally train a few steps of the small
//! configuration, save a PNG of what the window shows, and close. Used to check the real window
//! under a virtual display and to make the README's picture.

use std::path::PathBuf;

use super::App;
use super::state::{DeviceState, Tab};
use crate::train::TrainConfig;

pub struct ScreenshotPlan {
    pub path: PathBuf,
    /// Train this many steps of the small configuration first (0: none).
    pub train_steps: usize,
    /// The page to show (the evaluation page is shown after evaluating).
    pub tab: Tab,
    frames: u32,
    started: bool,
    evaluating: bool,
    /// The frame at which the page was first shown.
    shown_at: Option<u32>,
    requested: bool,
}

impl ScreenshotPlan {
    pub fn new(path: PathBuf, train_steps: usize, tab: Tab) -> Self {
        Self {
            path,
            train_steps,
            tab,
            frames: 0,
            started: false,
            evaluating: false,
            shown_at: None,
            requested: false,
        }
    }
}

impl App {
    /// Advances the scripted run, if there is one, by one frame.
    pub(super) fn step_screenshot(&mut self, ctx: &egui::Context) {
        let Some(plan) = self.screenshot.as_mut() else {
            return;
        };
        plan.frames += 1;
        ctx.request_repaint();
        let ready = match &self.device {
            DeviceState::Ready(_) => true,
            DeviceState::Missing(_) => plan.frames > 10, // show the no-GPU page
            DeviceState::Starting => false,
        };
        if !ready || plan.requested {
            return;
        }
        let (train_steps, started) = (plan.train_steps, plan.started);
        if train_steps > 0 && !started {
            self.config = TrainConfig::small_and_fast();
            self.start_training();
            self.screenshot.as_mut().expect("the plan is there").started = true;
            return;
        }
        if self.run.step_losses.len() < train_steps {
            return;
        }
        // With nothing to train, the picture is of the start: the device's default and the
        // estimate from a step timed on it.
        if train_steps == 0 && matches!(self.device, DeviceState::Ready(_)) && self.estimate().is_none() {
            return;
        }
        let plan = self.screenshot.as_mut().expect("the plan is there");
        let tab = plan.tab;
        if tab == Tab::Evaluation && self.pages.evaluation.report.is_none() {
            if !plan.evaluating {
                plan.evaluating = true;
                self.pause();
                self.evaluate();
            }
            return;
        }
        self.tab = tab;
        let plan = self.screenshot.as_mut().expect("the plan is there");
        let shown = *plan.shown_at.get_or_insert(plan.frames);
        if plan.frames < 20 || plan.frames < shown + 5 {
            return; // let the layout settle
        }
        plan.requested = true;
        let (path, window) = (plan.path.clone(), ctx.clone());
        self.pause();
        ctx.request_screenshot(move |image| {
            let rgba: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
            let [w, h] = image.size;
            match image::RgbaImage::from_raw(w as u32, h as u32, rgba).map(|i| i.save(&path)) {
                Some(Ok(())) => println!("screenshot: {}", path.display()),
                Some(Err(e)) => eprintln!("error: cannot write {}: {e}", path.display()),
                None => eprintln!("error: the screenshot had an unexpected size"),
            }
            window.send_viewport_cmd(egui::ViewportCommand::Close);
        });
    }
}
