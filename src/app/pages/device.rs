//! The device page: the adapter, its limits and features, how kernels are chosen and which
//! were chosen for the last run; or, where there is no GPU, what to do.

use crate::app::request::Request;
use crate::app::state::DeviceState;
use crate::gpu::{KernelPolicy, Variant};
use crate::schedule::TuneReport;

/// The device page's own state: how runs choose their kernels, and what the last run chose.
#[derive(Default)]
pub struct DevicePage {
    /// The kernels chosen for the last run.
    pub kernels: Option<TuneReport>,
    /// How runs choose their kernels.
    pub kernel_policy: KernelPolicy,
}

impl DevicePage {
    /// The adapter, its limits and features, and the kernels; a page saying what to do where
    /// there is no GPU.
    pub fn ui(&mut self, ui: &mut egui::Ui, device: &DeviceState, requests: &mut Vec<Request>) {
        match device {
            DeviceState::Starting => {
                ui.label("Opening the GPU…");
            }
            DeviceState::Missing(why) => {
                ui.heading("No GPU available");
                ui.label(why);
                ui.label(
                    "This app trains on the GPU through WebGPU. In a browser, use a current Chrome or Edge \
                     (WebGPU enabled); on Linux without a GPU, install Mesa's lavapipe \
                     (apt-get install mesa-vulkan-drivers).",
                );
            }
            DeviceState::Ready(info) => {
                ui.heading("Device");
                ui.label(&info.adapter);
                egui::Grid::new("limits").striped(true).show(ui, |ui| {
                    for (k, v) in &info.limits {
                        ui.label(k);
                        ui.label(v);
                        ui.end_row();
                    }
                    for (k, on) in &info.features {
                        ui.label(k);
                        ui.label(if *on { "yes" } else { "no" });
                        ui.end_row();
                    }
                });
                self.kernel_section(ui, requests);
            }
        }
    }

    /// The kernel policy setting and the variant chosen for each GEMM-shaped launch of the last
    /// run.
    fn kernel_section(&mut self, ui: &mut egui::Ui, requests: &mut Vec<Request>) {
        ui.separator();
        ui.heading("Kernels");
        let before = self.kernel_policy;
        ui.horizontal(|ui| {
            ui.label("Choice");
            egui::ComboBox::from_id_salt("kernel policy")
                .selected_text(self.kernel_policy.name())
                .show_ui(ui, |ui| {
                    ui.selectable_value(
                        &mut self.kernel_policy,
                        KernelPolicy::Auto,
                        "auto (fastest measured)",
                    );
                    for v in Variant::ALL {
                        ui.selectable_value(&mut self.kernel_policy, KernelPolicy::Only(v), v.name());
                    }
                });
        });
        if self.kernel_policy != before {
            requests.push(Request::SetKernelPolicy(self.kernel_policy));
        }
        let Some(report) = &self.kernels else {
            ui.label("Chosen when a run starts.");
            return;
        };
        ui.label(format!(
            "{} launch shapes measured in {:.1} s, {} from the cache ({})",
            report.measured, report.seconds, report.cached, report.cache
        ));
        if let Some(note) = &report.cache_note {
            ui.colored_label(ui.visuals().warn_fg_color, note);
        }
        egui::ScrollArea::vertical().max_height(300.0).show(ui, |ui| {
            egui::Grid::new("kernels").striped(true).show(ui, |ui| {
                for l in &report.launches {
                    ui.label(&l.layer);
                    ui.label(l.direction);
                    ui.label(l.variant.name());
                    let timings: Vec<String> = l
                        .timings
                        .iter()
                        .map(|(v, ms)| format!("{v} {ms:.2} ms"))
                        .collect();
                    ui.small(timings.join(", "));
                    ui.end_row();
                }
            });
        });
    }
}
