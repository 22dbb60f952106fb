//! The classify page: an image dropped or picked, shown at 32×32 with its top classes and,
//! over it, where the network looked (the Grad-CAM heat map of the class chosen).

use crate::app::controls::Controls;
use crate::app::files::FileKind;
use crate::app::format::{TOP_K, named_top_k};
use crate::app::heat;
use crate::app::request::Request;
use crate::app::textures::Textures;
use crate::data::Cifar10;
use crate::schedule::ClassMaps;

/// The last classified image.
pub struct Classified {
    pub name: String,
    pub image: Vec<u8>,
    pub top: Vec<(usize, f64)>,
    /// Grad-CAM of every class, or why there is none (`None` until classified).
    pub heat: Option<Result<ClassMaps, String>>,
    /// The class whose map is shown: the top one until another is clicked.
    pub heat_class: Option<usize>,
}

/// The classify page's own state: the image, its classes and heat maps, and their textures.
pub struct ClassifyPage {
    /// The last image sent to be classified (none before the first).
    pub classified: Option<Classified>,
    /// The Grad-CAM heat map is drawn over the classified image.
    pub show_heat: bool,
    /// The texture of the image being classified (one at a time: a new image replaces it, even
    /// one of the same name).
    images: Textures,
    /// Textures of the heat maps of the last classified image, by class.
    heat_maps: Textures,
}

impl Default for ClassifyPage {
    fn default() -> Self {
        Self {
            classified: None,
            show_heat: true,
            images: Textures::default(),
            heat_maps: Textures::default(),
        }
    }
}

impl ClassifyPage {
    /// An image (3×32×32 CHW) sent to be classified: shown at once, its classes once they come.
    pub fn classifying(&mut self, name: String, image: Vec<u8>) {
        self.images.clear();
        self.classified = Some(Classified {
            name,
            image,
            top: Vec::new(),
            heat: None,
            heat_class: None,
        });
    }

    /// The classes and heat maps of the image `name`; ignored where another image was sent
    /// since.
    pub fn classified(&mut self, name: &str, top: Vec<(usize, f64)>, heat: Result<ClassMaps, String>) {
        let Some(c) = self.classified.as_mut().filter(|c| c.name == name) else {
            return;
        };
        c.heat_class = top.first().map(|&(class, _)| class);
        c.top = top;
        c.heat = Some(heat);
        self.heat_maps.clear();
    }

    /// The page: buttons to pick or draw an image, then the image with its heat map and its
    /// top classes of `data`.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        data: &Cifar10,
        controls: &mut Controls,
        requests: &mut Vec<Request>,
    ) {
        ui.label("Drop an image file (PNG, JPEG, BMP, GIF, WebP) on the window, or pick one.");
        ui.horizontal(|ui| {
            if ui.button("Open image…").clicked() {
                requests.push(Request::Pick(FileKind::Image));
            }
            let r = ui.button("Classify a random test image");
            controls.remember("Classify test image", &r);
            if r.clicked() && !data.test.is_empty() {
                let i = (web_time::SystemTime::now()
                    .duration_since(web_time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos() as usize))
                    % data.test.len();
                let rgb = crate::data::chw_to_rgb(data.test.image(i));
                let name = format!(
                    "test image {i} ({})",
                    data.test.class_name(data.test.label(i) as usize)
                );
                requests.push(Request::Classify {
                    name,
                    bytes: png_bytes(&rgb),
                });
            }
        });
        ui.separator();
        let ctx = ui.ctx().clone();
        let Some(c) = &self.classified else { return };
        let texture = self
            .images
            .of_image(&ctx, &format!("classified {}", c.name), &c.image);
        ui.heading(&c.name);
        let names = &data.train.class_names;
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                let (rect, response) = ui.allocate_exact_size(egui::vec2(256.0, 256.0), egui::Sense::hover());
                controls.remember("classified image", &response);
                let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
                ui.painter().image(texture.id(), rect, uv, egui::Color32::WHITE);
                if self.show_heat
                    && let Some(heat) = self.heat_texture(&ctx)
                {
                    ui.painter().image(heat.id(), rect, uv, egui::Color32::WHITE);
                }
                ui.checkbox(&mut self.show_heat, "Where the network looked (Grad-CAM)");
            });
            ui.vertical(|ui| {
                let Some(c) = self.classified.as_mut() else { return };
                if c.top.is_empty() {
                    ui.label("classifying…");
                    return;
                }
                let shown = c.heat_class;
                for (class, p) in named_top_k(&c.top, names, TOP_K) {
                    let name = names[class].as_str();
                    ui.horizontal(|ui| {
                        let r = ui.selectable_label(shown == Some(class), name);
                        controls.remember(&format!("heat {name}"), &r);
                        if r.on_hover_text("Show where the network looked for this class")
                            .clicked()
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
                heat_caption(c, ui, names);
            });
        });
    }

    /// The shown class's heat map as a texture (made once per class), if it has one.
    fn heat_texture(&mut self, ctx: &egui::Context) -> Option<egui::TextureHandle> {
        let c = self.classified.as_ref()?;
        let (Some(Ok(maps)), Some(class)) = (&c.heat, c.heat_class) else {
            return None;
        };
        let key = format!("heat {} {class}", c.name);
        self.heat_maps.of(ctx, &key, || heat::heat_image(maps, class))
    }
}

/// What the heat map shows, or why there is none.
fn heat_caption(c: &Classified, ui: &mut egui::Ui, names: &[String]) {
    let class_name = |k: usize| names.get(k).map_or("?", String::as_str);
    let text = match (&c.heat, c.heat_class) {
        (Some(Err(why)), _) => format!("No heat map: {why}."),
        (Some(Ok(maps)), Some(class)) if !heat::has_evidence(maps, class) => format!(
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
