//! The data page: the class counts of each split and sample images of the loaded data.

use crate::app::textures::Textures;
use crate::data::Cifar10;

/// The data page's own state: the textures of its sample images.
#[derive(Default)]
pub struct DataPage {
    /// Textures of the first training images.
    images: Textures,
}

impl DataPage {
    /// Forgets the images of the data shown so far (new data was loaded).
    pub fn forget_images(&mut self) {
        self.images.clear();
    }

    /// The class counts of each split of `data` (the last `validation` training images being
    /// the validation split) and its first training images.
    pub fn ui(&mut self, ui: &mut egui::Ui, data: &Cifar10, source: &str, validation: usize) {
        ui.heading(source);
        egui::Grid::new("counts").striped(true).show(ui, |ui| {
            ui.strong("class");
            for name in &data.train.class_names {
                ui.label(name);
            }
            ui.end_row();
            // The validation split is the last images of the training set.
            let train = &data.train.labels;
            let held_out = validation.min(train.len());
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
                    let texture = self
                        .images
                        .of_image(&ctx, &format!("data {i}"), data.train.image(i));
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
}
