//! The central pages: training curves, the evaluation report, classification, the data and the
//! device.

use egui_plot::{HoverPosition, Legend, Line, Plot, PlotPoints, Points};

use super::files::FileKind;
use super::format::{TOP_K, format_metric, named_top_k, tick_decimals};
use super::{App, DeviceState};

/// Points of one metric per finished epoch.
fn per_epoch(app: &App, f: impl Fn(&crate::train::EpochMetrics) -> Option<f64>) -> Vec<[f64; 2]> {
    app.run
        .epochs
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

pub fn training(app: &mut App, ui: &mut egui::Ui) {
    let size = egui::vec2(
        ui.available_width() / 2.0 - 8.0,
        (ui.available_height() / 3.0 - 30.0).max(120.0),
    );
    ui.horizontal(|ui| {
        let train = per_epoch(app, |m| Some(m.train_loss));
        let validation = per_epoch(app, |m| m.val_loss);
        curves(
            ui,
            "Loss per epoch",
            "epoch",
            size,
            vec![("train", train), ("validation", validation)],
        );
        let train = per_epoch(app, |m| Some(m.train_error));
        let validation = per_epoch(app, |m| m.val_error);
        curves(
            ui,
            "Error rate per epoch",
            "epoch",
            size,
            vec![("train", train), ("validation", validation)],
        );
    });
    ui.horizontal(|ui| {
        let title = format!("Batch loss per step ({} steps)", app.run.step_losses.len());
        curves(
            ui,
            &title,
            "step",
            size,
            vec![("batch loss", app.run.step_losses.clone())],
        );
        let lr = per_epoch(app, |m| Some(m.lr));
        curves(ui, "Learning rate per epoch", "epoch", size, vec![("lr", lr)]);
    });
    layer_norms(app, ui, egui::vec2(2.0 * size.x + 8.0, size.y));
}

/// The per-layer weight and gradient norms of the last step read, on a log scale by layer,
/// with the layer whose gradient is largest against its weights named.
fn layer_norms(app: &App, ui: &mut egui::Ui, size: egui::Vec2) {
    let Some((step, norms)) = &app.run.layer_norms else {
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

pub fn evaluation(app: &mut App, ui: &mut egui::Ui) {
    let Some(report) = app.report.clone() else {
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
            confusion_heat_map(ui, &report);
        });
        ui.separator();
        ui.label("Misclassified test images (true -> predicted)");
        ui.horizontal_wrapped(|ui| {
            let ctx = ui.ctx().clone();
            let test = app.data.test.clone();
            let wrong = report
                .predictions
                .iter()
                .enumerate()
                .filter(|&(i, &p)| i < test.len() && p != test.label(i) as usize)
                .take(24);
            for (i, &p) in wrong {
                let texture = app.texture(&ctx, &format!("wrong {i}"), test.image(i));
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

/// The confusion matrix as a grid of cells shaded by each row's share.
fn confusion_heat_map(ui: &mut egui::Ui, report: &crate::train::EvalReport) {
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

pub fn classify(app: &mut App, ui: &mut egui::Ui) {
    ui.label("Drop an image file (PNG, JPEG, BMP, GIF, WebP) on the window, or pick one.");
    ui.horizontal(|ui| {
        if ui.button("Open image…").clicked() {
            app.files.pick(FileKind::Image);
        }
        let r = ui.button("Classify a random test image");
        app.remember("Classify test image", &r);
        if r.clicked() && !app.data.test.is_empty() {
            let i = (web_time::SystemTime::now()
                .duration_since(web_time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() as usize))
                % app.data.test.len();
            let rgb = crate::data::chw_to_rgb(app.data.test.image(i));
            let png = png_bytes(&rgb);
            let name = format!(
                "test image {i} ({})",
                app.data.test.class_name(app.data.test.label(i) as usize)
            );
            app.classify_bytes(&name, &png);
        }
    });
    ui.separator();
    let ctx = ui.ctx().clone();
    let Some(c) = &app.classified else { return };
    let (name, image, top) = (c.name.clone(), c.image.clone(), c.top.clone());
    let texture = app.texture(&ctx, &format!("classified {name}"), &image);
    ui.heading(&name);
    ui.horizontal_top(|ui| {
        ui.vertical(|ui| {
            let (rect, response) = ui.allocate_exact_size(egui::vec2(256.0, 256.0), egui::Sense::hover());
            app.remember("classified image", &response);
            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            ui.painter().image(texture.id(), rect, uv, egui::Color32::WHITE);
            if app.show_heat
                && let Some(heat) = heat_texture(app, &ctx)
            {
                ui.painter().image(heat.id(), rect, uv, egui::Color32::WHITE);
            }
            ui.checkbox(&mut app.show_heat, "Where the network looked (Grad-CAM)");
        });
        ui.vertical(|ui| {
            if top.is_empty() {
                ui.label("classifying…");
                return;
            }
            let names = app.data.train.class_names.clone();
            let shown = app.classified.as_ref().and_then(|c| c.heat_class);
            for (class, p) in named_top_k(&top, &names, TOP_K) {
                let name = names[class].as_str();
                ui.horizontal(|ui| {
                    let r = ui.selectable_label(shown == Some(class), name);
                    app.remember(&format!("heat {name}"), &r);
                    if r.on_hover_text("Show where the network looked for this class")
                        .clicked()
                        && let Some(c) = app.classified.as_mut()
                    {
                        c.heat_class = Some(class);
                    }
                    ui.add(
                        egui::ProgressBar::new(p as f32)
                            .desired_width(240.0)
                            .text(format!("{name}: {:.1} %", 100.0 * p)),
                    );
                });
            }
            heat_caption(app, ui, &names);
        });
    });
}

/// The shown class's heat map as a texture (made once per class), if it has one.
fn heat_texture(app: &mut App, ctx: &egui::Context) -> Option<egui::TextureHandle> {
    let c = app.classified.as_ref()?;
    let (Some(Ok(maps)), Some(class)) = (&c.heat, c.heat_class) else {
        return None;
    };
    let key = format!("heat {} {class}", c.name);
    if let Some(t) = app.textures.get(&key) {
        return Some(t.clone());
    }
    let image = super::heat::heat_image(maps, class)?;
    let texture = ctx.load_texture(&key, image, egui::TextureOptions::LINEAR);
    app.textures.insert(key, texture.clone());
    Some(texture)
}

/// What the heat map shows, or why there is none.
fn heat_caption(app: &App, ui: &mut egui::Ui, names: &[String]) {
    let Some(c) = &app.classified else { return };
    let class_name = |k: usize| names.get(k).map_or("?", String::as_str);
    let text = match (&c.heat, c.heat_class) {
        (Some(Err(why)), _) => format!("No heat map: {why}."),
        (Some(Ok(maps)), Some(class)) if !super::heat::has_evidence(maps, class) => format!(
            "Nothing in this image speaks for {}: its map is zero everywhere.",
            class_name(class)
        ),
        (Some(Ok(maps)), Some(class)) => format!(
            "Heat: where the evidence for {} lies (Grad-CAM of the last stage, {}×{} cells; \
             red is strongest). Click a class to see its map.",
            class_name(class),
            maps.height,
            maps.width
        ),
        _ => return,
    };
    ui.add_space(6.0);
    ui.add(egui::Label::new(egui::RichText::new(text).weak()).wrap());
}

/// A 32×32 RGB image as PNG bytes.
fn png_bytes(rgb: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let image = image::RgbImage::from_raw(32, 32, rgb.to_vec()).expect("32×32 RGB");
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("PNG encoding into memory");
    bytes
}

pub fn data(app: &mut App, ui: &mut egui::Ui) {
    let data = app.data.clone();
    ui.heading(&app.data_source);
    egui::Grid::new("counts").striped(true).show(ui, |ui| {
        ui.strong("class");
        for name in &data.train.class_names {
            ui.label(name);
        }
        ui.end_row();
        // The validation split is the last images of the training set.
        let train = &data.train.labels;
        let held_out = app.config.validation.min(train.len());
        let (fit, validation) = train.split_at(train.len() - held_out);
        for (split, labels) in [
            ("train", fit),
            ("validation", validation),
            ("test", &data.test.labels[..]),
        ] {
            ui.strong(split);
            let mut counts = vec![0; data.train.class_names.len()];
            for &l in labels {
                counts[l as usize] += 1;
            }
            for count in counts {
                ui.label(count.to_string());
            }
            ui.end_row();
        }
    });
    ui.separator();
    let ctx = ui.ctx().clone();
    egui::ScrollArea::vertical().show(ui, |ui| {
        let columns = ((ui.available_width() / 76.0).floor() as usize).max(1);
        egui::Grid::new("thumbnails").show(ui, |ui| {
            for i in 0..data.train.len().min(60) {
                let texture = app.texture(&ctx, &format!("data {i}"), data.train.image(i));
                ui.vertical(|ui| {
                    ui.image((texture.id(), egui::vec2(64.0, 64.0)));
                    ui.small(data.train.class_name(data.train.label(i) as usize));
                });
                if (i + 1) % columns == 0 {
                    ui.end_row();
                }
            }
        });
    });
}

pub fn device(app: &mut App, ui: &mut egui::Ui) {
    match &app.device {
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
            kernel_section(app, ui);
        }
    }
}

/// The kernel policy setting and the variant chosen for each GEMM-shaped launch of the last
/// run.
fn kernel_section(app: &mut App, ui: &mut egui::Ui) {
    use crate::gpu::{KernelPolicy, Variant};
    ui.separator();
    ui.heading("Kernels");
    let before = app.kernel_policy;
    ui.horizontal(|ui| {
        ui.label("Choice");
        egui::ComboBox::from_id_salt("kernel policy")
            .selected_text(app.kernel_policy.name())
            .show_ui(ui, |ui| {
                ui.selectable_value(
                    &mut app.kernel_policy,
                    KernelPolicy::Auto,
                    "auto (fastest measured)",
                );
                for v in Variant::ALL {
                    ui.selectable_value(&mut app.kernel_policy, KernelPolicy::Only(v), v.name());
                }
            });
    });
    if app.kernel_policy != before {
        app.worker
            .send(super::worker::Command::SetKernelPolicy(app.kernel_policy));
    }
    let Some(report) = &app.kernels else {
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
