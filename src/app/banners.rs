//! What shows above the pages: the hint while a file is dragged over the window, the banner of a
//! failed device, and the offer of the run kept from last time.

use super::controls::Controls;
use super::files::KeptRun;
use super::request::Request;
use super::state::DeviceFailure;

/// Shades the window while files hover over it.
pub fn drop_hint(ctx: &egui::Context) {
    let painter = ctx.layer_painter(egui::LayerId::new(
        egui::Order::Foreground,
        egui::Id::unique("drop"),
    ));
    let screen = ctx.content_rect();
    painter.rect_filled(screen, 0.0, egui::Color32::from_black_alpha(160));
    painter.text(
        screen.center(),
        egui::Align2::CENTER_CENTER,
        "Drop: CIFAR-10 archive or batch files, a .safetensors checkpoint, or an image",
        egui::FontId::proportional(20.0),
        egui::Color32::WHITE,
    );
}

/// The banner after the device failed: what happened, and the way to continue.
pub fn device_failure(
    failure: &DeviceFailure,
    ui: &mut egui::Ui,
    controls: &mut Controls,
    requests: &mut Vec<Request>,
) {
    ui.colored_label(
        ui.visuals().error_fg_color,
        format!("The GPU failed: {}", failure.reason),
    );
    ui.horizontal_wrapped(|ui| {
        let text = match &failure.resume_from {
            Some(point) => format!("Reopen the GPU and continue from {point}"),
            None => "Reopen the GPU".to_string(),
        };
        let r = ui.button(text);
        controls.remember("Reopen the GPU", &r);
        if r.clicked() {
            requests.push(Request::ReopenDevice);
        }
        ui.label("Nothing was saved from the failed step; checkpoints on disk are as they were.");
    });
}

/// The offer of the run an earlier start kept: what it is and where, with Resume and Discard.
pub fn kept_offer(kept: &KeptRun, ui: &mut egui::Ui, controls: &mut Controls, requests: &mut Vec<Request>) {
    let header = &kept.checkpoint.header;
    let storage = kept.storage_used.map_or(String::new(), |used| {
        format!(
            " ({:.1} MiB of storage used by this site)",
            used as f64 / (1 << 20) as f64
        )
    });
    ui.label(format!(
        "Your last run is kept in {}{storage}: {}, epoch {}, step {}.",
        kept.place,
        header.config.model.describe(),
        header.state.epochs_done + 1,
        header.state.global_step
    ));
    ui.horizontal_wrapped(|ui| {
        let r = ui.button("Resume the kept run");
        controls.remember("Resume the kept run", &r);
        if r.clicked() {
            requests.push(Request::ResumeKeptRun);
        }
        let discard = if cfg!(target_arch = "wasm32") {
            "Discard it"
        } else {
            "Not now"
        };
        let r = ui.button(discard);
        controls.remember("Discard the kept run", &r);
        if r.clicked() {
            requests.push(Request::DiscardKeptRun);
        }
    });
}
