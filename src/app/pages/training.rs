//! The training page: live curves of the run (loss and error rate per epoch, batch loss per
//! step, the learning rate) and the per-layer weight and gradient norms.

use egui_plot::{HoverPosition, Legend, Line, Plot, PlotPoints, Points};

use crate::app::format::{format_metric, tick_decimals};
use crate::app::run::RunView;

/// Points of one metric per finished epoch.
fn per_epoch(run: &RunView, f: impl Fn(&crate::train::EpochMetrics) -> Option<f64>) -> Vec<[f64; 2]> {
    run.epochs
        .iter()
        .filter_map(|m| f(m).map(|v| [m.epoch as f64, v]))
        .collect()
}

/// One titled plot of named curves of (x, y) points. A curve of a single point (after the first
/// epoch) shows as a marker: a line needs two points to draw anything.
fn curves(
    ui: &mut egui::Ui,
    title: &str,
    x_label: &str,
    size: egui::Vec2,
    lines: Vec<(&str, Vec<[f64; 2]>)>,
) {
    ui.vertical(|ui| {
        ui.label(title);
        // The title may carry a count; the plot keeps one id.
        Plot::new(title.split(" (").next().unwrap_or(title))
            .width(size.x)
            .height(size.y)
            .legend(Legend::default())
            .x_axis_label(x_label)
            .include_x(1.0)
            .include_y(0.0)
            // A diverging loss reaches 1e38: its ticks and hover label in scientific notation.
            .y_axis_formatter(|mark, _| format_metric(mark.value, tick_decimals(mark.step_size)))
            .label_formatter(|hover| {
                let (name, position) = match hover {
                    HoverPosition::NearDataPoint {
                        plot_name, position, ..
                    } => (format!("{plot_name}\n"), position),
                    HoverPosition::Elsewhere { position } => (String::new(), position),
                };
                Some(format!(
                    "{name}x = {:.3}\ny = {}",
                    position.x,
                    format_metric(position.y, 3)
                ))
            })
            .show(ui, |p| {
                for (name, points) in lines {
                    if points.len() == 1 {
                        p.points(Points::new(name, PlotPoints::from(points)).radius(4.0));
                    } else {
                        p.line(Line::new(name, PlotPoints::from(points)));
                    }
                }
            });
    });
}

/// The curves of the run: loss and error rate per epoch, batch loss per step, the learning
/// rate, and the per-layer norms.
pub fn ui(ui: &mut egui::Ui, run: &RunView) {
    let size = egui::vec2(
        ui.available_width() / 2.0 - 8.0,
        (ui.available_height() / 3.0 - 30.0).max(120.0),
    );
    ui.horizontal(|ui| {
        let train = per_epoch(run, |m| Some(m.train_loss));
        let validation = per_epoch(run, |m| m.val_loss);
        curves(
            ui,
            "Loss per epoch",
            "epoch",
            size,
            vec![("train", train), ("validation", validation)],
        );
        let train = per_epoch(run, |m| Some(m.train_error));
        let validation = per_epoch(run, |m| m.val_error);
        curves(
            ui,
            "Error rate per epoch",
            "epoch",
            size,
            vec![("train", train), ("validation", validation)],
        );
    });
    ui.horizontal(|ui| {
        let title = format!("Batch loss per step ({} steps)", run.step_losses.len());
        curves(
            ui,
            &title,
            "step",
            size,
            vec![("batch loss", run.step_losses.clone())],
        );
        let lr = per_epoch(run, |m| Some(m.lr));
        curves(ui, "Learning rate per epoch", "epoch", size, vec![("lr", lr)]);
    });
    layer_norms(run, ui, egui::vec2(2.0 * size.x + 8.0, size.y));
}

/// The per-layer weight and gradient norms of the last step read, on a log scale by layer,
/// with the layer whose gradient is largest against its weights named.
fn layer_norms(run: &RunView, ui: &mut egui::Ui, size: egui::Vec2) {
    let Some((step, norms)) = &run.layer_norms else {
        ui.label("Per-layer norms: shown from the first training step.");
        return;
    };
    let log = |v: f64| if v > 0.0 { v.log10() } else { f64::NAN };
    let points = |f: &dyn Fn(&crate::schedule::LayerNorms) -> f64| -> Vec<[f64; 2]> {
        norms
            .iter()
            .enumerate()
            .map(|(i, n)| [i as f64, log(f(n))])
            .collect()
    };
    let steepest = norms
        .iter()
        .max_by(|a, b| (a.gradient / a.weight).total_cmp(&(b.gradient / b.weight)));
    let mut title = format!(
        "Per-layer norms after step {step} (log10, {} layers)",
        norms.len()
    );
    if let Some(n) = steepest {
        title += &format!(
            "; largest gradient for its weights: {} (|g| {:.3e}, |w| {:.3e})",
            n.layer, n.gradient, n.weight
        );
    }
    let names: Vec<String> = norms.iter().map(|n| n.layer.clone()).collect();
    ui.vertical(|ui| {
        ui.label(title);
        Plot::new("Per-layer norms")
            .width(size.x)
            .height(size.y)
            .legend(Legend::default())
            .x_axis_label("layer")
            .label_formatter(move |hover| match hover {
                HoverPosition::NearDataPoint {
                    plot_name, position, ..
                } => {
                    let layer = names.get(position.x.round() as usize).map_or("", String::as_str);
                    Some(format!("{plot_name} of {layer}: 10^{:.2}", position.y))
                }
                _ => None,
            })
            .show(ui, |p| {
                p.line(Line::new("weight", PlotPoints::from(points(&|n| n.weight))));
                p.line(Line::new("gradient", PlotPoints::from(points(&|n| n.gradient))));
            });
    });
}
