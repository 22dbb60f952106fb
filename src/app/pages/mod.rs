//! The pages of the central area, one file each, with the state that only that page uses.
//! The training page has none of its own: it draws the run, which the whole window shares.

pub mod classify;
pub mod data;
pub mod device;
pub mod evaluation;
pub mod training;

/// The state of the pages that have their own.
#[derive(Default)]
pub struct Pages {
    pub evaluation: evaluation::EvaluationPage,
    pub classify: classify::ClassifyPage,
    pub data: data::DataPage,
    pub device: device::DevicePage,
}
