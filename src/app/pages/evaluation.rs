//! The evaluation page: per-class precision, recall, F1 and support, averages and accuracy;
//! the confusion matrix as a heat map; misclassified test images.

use crate::app::format::format_metric;
use crate::app::textures::Textures;
use crate::data::Dataset;
use crate::train::EvalReport;

/// The evaluation page's own state: the last report and the textures of its misclassified
/// images.
#[derive(Default)]
pub struct EvaluationPage {
    /// The last report on the test set (none before the first, and after a new run starts).
    pub report: Option<EvalReport>,
    /// Textures of the misclassified test images.
    images: Textures,
}

impl EvaluationPage {
    /// Shows a new report (the misclassified images are drawn again).
    pub fn show(&mut self, report: EvalReport) {
        self.report = Some(report);
        self.images.clear();
    }

    /// The report's table, the confusion matrix as a heat map, and misclassified `test`
    /// images.
    pub fn ui(&mut self, ui: &mut egui::Ui, test: &Dataset) {
        let Some(report) = &self.report else {
            ui.label("Train a model (or load a checkpoint), then press \"Evaluate on test set\".");
            return;
        };
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.heading(format!(
                "Test set: accuracy {:.2} %, loss {}",
                100.0 * report.accuracy,
                format_metric(report.loss, 4)
            ));
            ui.horizontal_top(|ui| {
                egui::Grid::new("report")
                    .striped(true)
                    .num_columns(5)
                    .show(ui, |ui| {
                        for h in ["class", "precision", "recall", "F1", "support"] {
                            ui.strong(h);
                        }
                        ui.end_row();
                        let rows = report
                            .class_names
                            .iter()
                            .map(String::as_str)
                            .zip(report.per_class.iter())
                            .chain([
                                ("macro avg", &report.macro_avg),
                                ("weighted avg", &report.weighted_avg),
                            ]);
                        for (name, s) in rows {
                            ui.label(name);
                            ui.label(format!("{:.4}", s.precision));
                            ui.label(format!("{:.4}", s.recall));
                            ui.label(format!("{:.4}", s.f1));
                            ui.label(s.support.to_string());
                            ui.end_row();
                        }
                    });
                ui.add_space(24.0);
                confusion_heat_map(ui, report);
            });
            ui.separator();
            ui.label("Misclassified test images (true -> predicted)");
            ui.horizontal_wrapped(|ui| {
                let ctx = ui.ctx().clone();
                let wrong = report
                    .predictions
                    .iter()
                    .enumerate()
                    .filter(|&(i, &p)| i < test.len() && p != test.label(i) as usize)
                    .take(24);
                for (i, &p) in wrong {
                    let texture = self.images.of_image(&ctx, &format!("wrong {i}"), test.image(i));
                    ui.vertical(|ui| {
                        ui.image((texture.id(), egui::vec2(64.0, 64.0)));
                        ui.small(format!(
                            "{} -> {}",
                            test.class_name(test.label(i) as usize),
                            test.class_name(p)
                        ));
                    });
                }
            });
        });
    }
}

/// The confusion matrix as a grid of cells shaded by each row's share.
fn confusion_heat_map(ui: &mut egui::Ui, report: &EvalReport) {
    let n = report.confusion.len();
    let cell = 34.0;
    let label_width = 90.0;
    let size = egui::vec2(label_width + cell * n as f32, 20.0 + cell * n as f32);
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let text = ui.visuals().text_color();
    let font = egui::FontId::proportional(11.0);
    painter.text(
        rect.min + egui::vec2(label_width, 0.0),
        egui::Align2::LEFT_TOP,
        "predicted ->",
        font.clone(),
        text,
    );
    for (t, row) in report.confusion.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f32;
        let y = rect.min.y + 20.0 + cell * t as f32;
        painter.text(
            egui::pos2(rect.min.x + label_width - 4.0, y + cell / 2.0),
            egui::Align2::RIGHT_CENTER,
            &report.class_names[t],
            font.clone(),
            text,
        );
        for (p, &count) in row.iter().enumerate() {
            let share = count as f32 / total;
            let x = rect.min.x + label_width + cell * p as f32;
            let cell_rect = egui::Rect::from_min_size(egui::pos2(x, y), egui::vec2(cell - 1.0, cell - 1.0));
            let shade = (255.0 * (1.0 - share)) as u8;
            let color = if t == p {
                egui::Color32::from_rgb(shade, 255 - (share * 80.0) as u8, shade)
            } else {
                egui::Color32::from_rgb(255 - (share * 60.0) as u8, shade, shade)
            };
            painter.rect_filled(cell_rect, 2.0, color);
            let ink = if share > 0.5 {
                egui::Color32::WHITE
            } else {
                egui::Color32::BLACK
            };
            painter.text(
                cell_rect.center(),
                egui::Align2::CENTER_CENTER,
                count.to_string(),
                font.clone(),
                ink,
            );
        }
    }
}
