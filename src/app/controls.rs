//! The screen rectangles of the main controls, by name, as last drawn: the status snapshot
//! lists them so that a test can click them.

use std::collections::BTreeMap;

/// Rectangles (in points) of the main controls, by name.
#[derive(Default)]
pub struct Controls {
    rects: BTreeMap<String, egui::Rect>,
}

impl Controls {
    /// Notes where the control `name` was drawn this frame.
    pub fn remember(&mut self, name: &str, response: &egui::Response) {
        self.rects.insert(name.to_string(), response.rect);
    }

    /// Every control noted so far, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &egui::Rect)> {
        self.rects.iter()
    }
}
