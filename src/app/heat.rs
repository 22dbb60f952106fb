//! The Grad-CAM heat map drawn over a classified image: one translucent texel per cell of the
//! last stage's grid, stretched over the image with linear filtering (the usual bilinear
//! upsampling of a class-activation map).

use crate::schedule::ClassMaps;

/// Colours from no evidence to the strongest: transparent blue, cyan, yellow, red.
const STOPS: [[f32; 4]; 4] = [
    [40.0, 60.0, 200.0, 0.0],
    [0.0, 200.0, 220.0, 110.0],
    [250.0, 220.0, 0.0, 160.0],
    [230.0, 20.0, 10.0, 200.0],
];

/// The colour of a map value scaled to [0, 1] (premultiplied alpha, as egui paints).
pub fn heat_color(v: f32) -> egui::Color32 {
    let x = v.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let t = x - i as f32;
    let [r, g, b, a] = std::array::from_fn(|k| STOPS[i][k] + t * (STOPS[i + 1][k] - STOPS[i][k]));
    egui::Color32::from_rgba_unmultiplied(r as u8, g as u8, b as u8, a as u8)
}

/// Whether `class`'s map is positive anywhere (ReLU leaves it all zero otherwise).
pub fn has_evidence(maps: &ClassMaps, class: usize) -> bool {
    maps.map(class).iter().any(|&v| v > 0.0)
}

/// The map of `class` as an image of `width × height` texels, each scaled by the map's
/// largest value; `None` where the class has no positive evidence anywhere.
pub fn heat_image(maps: &ClassMaps, class: usize) -> Option<egui::ColorImage> {
    let map = maps.map(class);
    let peak = map.iter().copied().fold(0.0f32, f32::max);
    (peak > 0.0).then(|| {
        let pixels = map.iter().map(|&v| heat_color(v / peak)).collect();
        egui::ColorImage::new([maps.width, maps.height], pixels)
    })
}

/// The cell (row, column) of the largest value of `class`'s map.
pub fn peak_cell(maps: &ClassMaps, class: usize) -> (usize, usize) {
    let map = maps.map(class);
    let best = (0..map.len())
        .max_by(|&a, &b| map[a].total_cmp(&map[b]).then(b.cmp(&a)))
        .unwrap_or(0);
    (best / maps.width, best % maps.width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(values: Vec<f32>, height: usize, width: usize) -> ClassMaps {
        ClassMaps {
            logits: vec![0.0; values.len() / (height * width)],
            maps: values,
            height,
            width,
        }
    }

    #[test]
    fn the_colour_scale_runs_from_transparent_to_opaque_red() {
        assert_eq!(heat_color(0.0).a(), 0);
        assert_eq!(heat_color(-1.0), heat_color(0.0));
        let top = heat_color(1.0);
        assert!(top.r() > 150 && top.g() < 50 && top.a() == 200, "{top:?}");
        assert!(heat_color(0.5).a() > heat_color(0.2).a());
    }

    #[test]
    fn the_image_is_scaled_to_its_peak_and_the_peak_is_found() {
        // Two classes on a 2 × 3 grid; class 1 has no positive evidence.
        let m = maps(
            vec![0.0, 1.0, 4.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            2,
            3,
        );
        let image = heat_image(&m, 0).unwrap();
        assert_eq!(image.size, [3, 2]);
        assert_eq!(image.pixels[2], heat_color(1.0));
        assert_eq!(image.pixels[4], heat_color(0.5));
        assert_eq!(peak_cell(&m, 0), (0, 2));
        assert!(heat_image(&m, 1).is_none());
    }
}
