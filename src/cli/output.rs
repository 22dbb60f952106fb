//! Files a training run writes besides checkpoints: per-epoch metrics (CSV or JSON lines) and
//! a PNG of the loss, error-rate and learning-rate curves.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use plotters::prelude::*;
use resnet_wgpu::train::EpochMetrics;

/// Appends one record per epoch to a `.csv` (with a header) or `.jsonl` file.
pub enum MetricsWriter {
    Csv(Box<csv::Writer<File>>),
    JsonLines(File),
}

impl MetricsWriter {
    /// Creates (or, when `append`, extends) the file; the extension picks the format.
    pub fn create(path: &Path, append: bool) -> Result<Self, String> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| format!("cannot write metrics to {path:?}: {e}"))?;
        Ok(match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") | Some("json") => MetricsWriter::JsonLines(file),
            _ => MetricsWriter::Csv(Box::new(
                csv::WriterBuilder::new()
                    .has_headers(!(append && existed))
                    .from_writer(file),
            )),
        })
    }

    pub fn write(&mut self, m: &EpochMetrics) -> Result<(), String> {
        let result = match self {
            MetricsWriter::Csv(w) => w
                .serialize(m)
                .map_err(|e| e.to_string())
                .and_then(|_| w.flush().map_err(|e| e.to_string())),
            MetricsWriter::JsonLines(f) => serde_json::to_string(m)
                .map_err(|e| e.to_string())
                .and_then(|line| writeln!(f, "{line}").map_err(|e| e.to_string())),
        };
        result.map_err(|e| format!("cannot write metrics: {e}"))
    }
}

/// A curve: its legend, its (epoch, value) points and its colour.
type Curve<'a> = (&'a str, Vec<(f64, f64)>, RGBColor);

/// Draws train and validation loss, error rate and the learning rate per epoch into a PNG.
pub fn plot_curves(history: &[EpochMetrics], path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    // plotters draws text with a font registered by name; the one egui ships serves here.
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        epaint_default_fonts::UBUNTU_LIGHT,
    )
    .map_err(|_| "the plot font could not be loaded")?;
    let root = BitMapBackend::new(path, (1200, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let last = history.last().map_or(1, |m| m.epoch) as f64;
    let series = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
            .collect()
    };
    let charts: [(&str, Vec<Curve>); 3] = [
        (
            "loss",
            vec![
                ("train", series(&|m| Some(m.train_loss)), BLUE),
                ("validation", series(&|m| m.val_loss), RED),
            ],
        ),
        (
            "error rate",
            vec![
                ("train", series(&|m| Some(m.train_error)), BLUE),
                ("validation", series(&|m| m.val_error), RED),
            ],
        ),
        ("learning rate", vec![("lr", series(&|m| Some(m.lr)), GREEN)]),
    ];
    for (panel, (title, lines)) in panels.iter().zip(charts) {
        let top = lines
            .iter()
            .flat_map(|l| l.1.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(1e-12)
            * 1.05;
        let mut chart = ChartBuilder::on(panel)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(1.0..last.max(2.0), 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (name, points, color) in lines.into_iter().filter(|l| !l.1.is_empty()) {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
