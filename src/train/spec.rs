//! Which network a run trains.

use serde::{Deserialize, Serialize};

use crate::model::{Model, ResNetConfig, Stem, Variant};

/// Which network: a variant's naming and initialisation, a stem, and the shape of its stages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub variant: Variant,
    pub stem: Stem,
    pub config: ResNetConfig,
    pub classes: usize,
}

impl ModelSpec {
    /// A named variant at its published shape, 10 classes.
    pub fn named(variant: Variant, stem: Stem) -> Self {
        Self {
            variant,
            stem,
            config: variant.config(),
            classes: 10,
        }
    }

    pub fn build(&self) -> Model {
        Model::from_config(self.variant, self.stem, &self.config, self.classes)
    }

    /// "resnet50 (cifar stem)", or with the stage widths when they are not the published ones.
    pub fn describe(&self) -> String {
        let mut text = format!("{} ({} stem)", self.variant.name(), self.stem.name());
        if self.config != self.variant.config() {
            text += &format!(
                ", blocks {:?}, widths {:?}",
                self.config.blocks, self.config.widths
            );
        }
        text
    }
}
