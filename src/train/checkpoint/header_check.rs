//! Range checks of every field of a checkpoint's header, run when a checkpoint is read: a
//! header is JSON anyone can edit, and a value out of range (a crop padding of 2^40, a batch
//! of 0, a step far past any epoch's end) would otherwise wrap, panic or mislead later.
//!
//! The bounds admit every checkpoint this program writes and refuse the rest with a message
//! that names the file, the field (its path in the header, e.g.
//! `config.augment.crop_padding`) and its value.

use std::fmt::Display;

use super::{CheckpointError, CheckpointHeader};
use crate::data::IMAGE_SIDE;
use crate::train::lr::LrSchedule;
use crate::train::{EpochMetrics, ModelSpec, OnNonFinite, TrainConfig, TrainState};

/// The model's bounds, those [`crate::model::ResNetConfig::validate`] applies (and the command
/// line with it): checked here too to point at the field out of range; `validate` runs after,
/// so the two always agree.
pub use crate::model::{MAX_BLOCKS_PER_STAGE, MAX_CLASSES, MAX_STAGES, MAX_UPSAMPLE, MAX_WIDTH};
/// Fewest classes a classifier can have.
pub const MIN_CLASSES: usize = 2;

/// Largest batch a header may ask for (the app offers up to 4,096).
pub const MAX_BATCH: usize = 65_536;
/// Most epochs a run may have (the app offers up to 1,000).
pub const MAX_EPOCHS: usize = 100_000;
/// Largest crop padding: with more, a crop of the 32-pixel image could miss it entirely.
pub const MAX_CROP_PADDING: usize = IMAGE_SIDE - 1;
/// Most images a run may hold out for validation (CIFAR-10 has 50,000 training images).
pub const MAX_VALIDATION: usize = 10_000_000;
/// Most steps an epoch may have: by far more batches than any data set this program reads.
pub const MAX_STEPS_PER_EPOCH: usize = 1_000_000_000;

/// What to do about a header that is out of range.
const DAMAGED: &str = "the header is damaged, choose another checkpoint";
/// What to do when a run's position lies beyond the epochs of the data it is resumed on.
const OTHER_DATA: &str = "this is not the data the run was trained on, load that data to resume it";

/// One field out of range: its path in the header, its value and the rule it breaks.
struct OutOfRange {
    field: String,
    value: String,
    rule: String,
}

/// `Ok` where `ok` holds, else `field` out of range with `value`, breaking `rule`.
fn require(ok: bool, field: &str, value: impl Display, rule: impl Display) -> Result<(), OutOfRange> {
    if ok {
        return Ok(());
    }
    Err(OutOfRange {
        field: field.to_string(),
        value: value.to_string(),
        rule: rule.to_string(),
    })
}

/// A count from `min` to `max`.
fn count(field: &str, value: usize, min: usize, max: usize) -> Result<(), OutOfRange> {
    require(
        value >= min,
        field,
        value,
        format_args!("it must be at least {min}"),
    )?;
    at_most(field, value, max)
}

/// A count of at most `max`.
fn at_most(field: &str, value: usize, max: usize) -> Result<(), OutOfRange> {
    require(
        value <= max,
        field,
        value,
        format_args!("it must be at most {max}"),
    )
}

/// A finite number greater than 0 (an f32 or f64, shown as it is stored).
fn positive<T: Into<f64> + Display + Copy>(field: &str, value: T) -> Result<(), OutOfRange> {
    let v: f64 = value.into();
    require(
        v.is_finite() && v > 0.0,
        field,
        value,
        "it must be a finite number greater than 0",
    )
}

/// A finite number of at least 0 (an f32 or f64, shown as it is stored).
fn non_negative<T: Into<f64> + Display + Copy>(field: &str, value: T) -> Result<(), OutOfRange> {
    let v: f64 = value.into();
    require(
        v.is_finite() && v >= 0.0,
        field,
        value,
        "it must be a finite number of at least 0",
    )
}

/// Any finite number.
fn finite(field: &str, value: f64) -> Result<(), OutOfRange> {
    require(value.is_finite(), field, value, "it must be a finite number")
}

/// A rate from 0 to 1 (an error rate).
fn rate(field: &str, value: f64) -> Result<(), OutOfRange> {
    require(
        (0.0..=1.0).contains(&value),
        field,
        value,
        "it must be a number from 0 to 1",
    )
}

/// The model: classes, and the stages' blocks and widths within the model's own bounds (those
/// the command line also applies), so that every size computed from them fits.
fn check_model(spec: &ModelSpec) -> Result<(), OutOfRange> {
    count("config.model.classes", spec.classes, MIN_CLASSES, MAX_CLASSES)?;
    let c = &spec.config;
    // A list is shown by its length where the length is what is wrong: it may be long.
    require(
        (1..=MAX_STAGES).contains(&c.blocks.len()),
        "config.model.config.blocks",
        format_args!("a list of {}", c.blocks.len()),
        format_args!("it must have one entry per stage, 1 to {MAX_STAGES} stages"),
    )?;
    require(
        c.widths.len() == c.blocks.len(),
        "config.model.config.widths",
        format_args!("a list of {}", c.widths.len()),
        format_args!(
            "it must have one entry per stage, {} as config.model.config.blocks has",
            c.blocks.len()
        ),
    )?;
    for (i, &blocks) in c.blocks.iter().enumerate() {
        let field = format!("config.model.config.blocks[{i}]");
        count(&field, blocks, 1, MAX_BLOCKS_PER_STAGE)?;
    }
    for (i, &width) in c.widths.iter().enumerate() {
        let field = format!("config.model.config.widths[{i}]");
        count(&field, width, 1, MAX_WIDTH)?;
    }
    count("config.model.config.stem_width", c.stem_width, 1, MAX_WIDTH)?;
    // Upsampling below the image's own size would shrink it; the stem needs the full image.
    count(
        "config.model.config.upsample",
        c.upsample,
        IMAGE_SIDE,
        MAX_UPSAMPLE,
    )?;
    // Whatever else the model itself refuses.
    require(
        c.validate(spec.classes).is_ok(),
        "config.model.config",
        format_args!("{c:?}"),
        "it must be a configuration the model accepts",
    )
}

/// Everything that defines the run.
fn check_config(config: &TrainConfig) -> Result<(), OutOfRange> {
    check_model(&config.model)?;
    count("config.batch", config.batch, 1, MAX_BATCH)?;
    count("config.epochs", config.epochs, 1, MAX_EPOCHS)?;
    positive("config.sgd.lr", config.sgd.lr)?;
    let momentum = config.sgd.momentum;
    require(
        (0.0..1.0).contains(&momentum),
        "config.sgd.momentum",
        momentum,
        "it must be at least 0 and less than 1",
    )?;
    non_negative("config.sgd.weight_decay", config.sgd.weight_decay)?;
    match config.lr_schedule {
        LrSchedule::Constant => {}
        LrSchedule::Plateau {
            factor,
            patience,
            threshold,
        } => {
            require(
                factor > 0.0 && factor < 1.0,
                "config.lr_schedule.factor",
                factor,
                "it must be greater than 0 and less than 1",
            )?;
            at_most("config.lr_schedule.patience", patience, MAX_EPOCHS)?;
            require(
                (0.0..1.0).contains(&threshold),
                "config.lr_schedule.threshold",
                threshold,
                "it must be at least 0 and less than 1",
            )?;
        }
        LrSchedule::Cosine { min_lr } => non_negative("config.lr_schedule.min_lr", min_lr)?,
    }
    // `hflip`, `shuffle`, `seed`, `train_metrics` and `gamma`: every value is valid.
    if let Some(padding) = config.augment.crop_padding {
        at_most("config.augment.crop_padding", padding, MAX_CROP_PADDING)?;
    }
    at_most("config.validation", config.validation, MAX_VALIDATION)?;
    if let Some(steps) = config.max_steps {
        require(steps >= 1, "config.max_steps", steps, "it must be at least 1")?;
    }
    if let Some(micro) = config.max_micro_batch {
        require(
            micro >= 1,
            "config.max_micro_batch",
            micro,
            "it must be at least 1",
        )?;
        require(
            micro <= config.batch,
            "config.max_micro_batch",
            micro,
            format_args!("it must be at most config.batch ({})", config.batch),
        )?;
    }
    match config.on_nonfinite {
        OnNonFinite::Stop => {}
        OnNonFinite::Skip { in_a_row } => require(
            in_a_row >= 1,
            "config.on_nonfinite.skip.in_a_row",
            in_a_row,
            "it must be at least 1",
        )?,
    }
    Ok(())
}

/// One finished epoch's metrics, the `index`-th of the history.
fn check_epoch(index: usize, m: &EpochMetrics) -> Result<(), OutOfRange> {
    let field = |name: &str| format!("state.history[{index}].{name}");
    require(
        m.epoch == index + 1,
        &field("epoch"),
        m.epoch,
        format_args!("it must be {}, the entry's place in the history", index + 1),
    )?;
    require(
        m.steps <= MAX_STEPS_PER_EPOCH as u64,
        &field("steps"),
        m.steps,
        format_args!("it must be at most {MAX_STEPS_PER_EPOCH}"),
    )?;
    non_negative(&field("lr"), m.lr)?;
    finite(&field("train_loss"), m.train_loss)?;
    rate(&field("train_error"), m.train_error)?;
    if let Some(loss) = m.val_loss {
        finite(&field("val_loss"), loss)?;
    }
    if let Some(error) = m.val_error {
        rate(&field("val_error"), error)?;
    }
    non_negative(&field("images_per_sec"), m.images_per_sec)?;
    non_negative(&field("seconds"), m.seconds)
}

/// Where the run stands, against its configuration.
fn check_state(state: &TrainState, config: &TrainConfig) -> Result<(), OutOfRange> {
    require(
        state.epochs_done <= config.epochs,
        "state.epochs_done",
        state.epochs_done,
        format_args!("it must be at most config.epochs ({})", config.epochs),
    )?;
    at_most("state.step_in_epoch", state.step_in_epoch, MAX_STEPS_PER_EPOCH)?;
    let step_in_epoch = state.step_in_epoch as u64;
    require(
        state.global_step >= step_in_epoch,
        "state.global_step",
        state.global_step,
        format_args!("it must be at least state.step_in_epoch ({step_in_epoch})"),
    )?;
    // The finished epochs and the current one, each at most MAX_STEPS_PER_EPOCH steps (both
    // bounds are checked above, so the product cannot overflow).
    let most_steps = (state.epochs_done as u64 + 1) * MAX_STEPS_PER_EPOCH as u64;
    require(
        state.global_step <= most_steps,
        "state.global_step",
        state.global_step,
        format_args!("it must be at most {most_steps}, {MAX_STEPS_PER_EPOCH} steps per epoch"),
    )?;
    // A cosine schedule ends at its minimum, which may be 0.
    non_negative("state.lr.lr", state.lr.lr)?;
    if let Some(best) = state.lr.best {
        finite("state.lr.best", best)?;
    }
    require(
        state.lr.bad_epochs <= state.epochs_done,
        "state.lr.bad_epochs",
        state.lr.bad_epochs,
        format_args!("it must be at most state.epochs_done ({})", state.epochs_done),
    )?;
    // `rng_state`: every value is valid.
    finite("state.epoch_loss_sum", state.epoch_loss_sum)?;
    // Each step of the epoch added one batch of images (both bounded above: no overflow).
    let most_images = step_in_epoch * config.batch as u64;
    require(
        state.epoch_images <= most_images,
        "state.epoch_images",
        state.epoch_images,
        format_args!(
            "it must be at most {most_images}, state.step_in_epoch ({step_in_epoch}) batches of \
             config.batch ({})",
            config.batch
        ),
    )?;
    require(
        state.epoch_correct <= state.epoch_images,
        "state.epoch_correct",
        state.epoch_correct,
        format_args!("it must be at most state.epoch_images ({})", state.epoch_images),
    )?;
    non_negative("state.epoch_train_seconds", state.epoch_train_seconds)?;
    // Skipped steps are steps, and those in a row are among them. The count in a row is not
    // checked against config.on_nonfinite: a resumed run may change that setting.
    require(
        state.skipped_steps <= state.global_step,
        "state.skipped_steps",
        state.skipped_steps,
        format_args!("it must be at most state.global_step ({})", state.global_step),
    )?;
    require(
        u64::from(state.skipped_in_a_row) <= state.skipped_steps,
        "state.skipped_in_a_row",
        state.skipped_in_a_row,
        format_args!("it must be at most state.skipped_steps ({})", state.skipped_steps),
    )?;
    require(
        state.skipped_in_a_row < u32::MAX,
        "state.skipped_in_a_row",
        state.skipped_in_a_row,
        format_args!(
            "it must be less than {} so that one more can be counted",
            u32::MAX
        ),
    )?;
    require(
        state.history.len() == state.epochs_done,
        "state.history",
        format_args!("a list of {}", state.history.len()),
        format_args!(
            "it must hold one entry per finished epoch, state.epochs_done ({})",
            state.epochs_done
        ),
    )?;
    for (index, metrics) in state.history.iter().enumerate() {
        check_epoch(index, metrics)?;
    }
    Ok(())
}

/// The whole header: configuration, state, and one class name per class of the model.
fn check_header(header: &CheckpointHeader) -> Result<(), OutOfRange> {
    check_config(&header.config)?;
    check_state(&header.state, &header.config)?;
    let classes = header.config.model.classes;
    require(
        header.class_names.len() == classes,
        "class_names",
        format_args!("a list of {}", header.class_names.len()),
        format_args!("it must name each class of config.model.classes ({classes})"),
    )
}

impl OutOfRange {
    fn into_error(self, name: &str, remedy: &'static str) -> CheckpointError {
        CheckpointError::BadField {
            name: name.to_string(),
            field: self.field,
            value: self.value,
            rule: self.rule,
            remedy,
        }
    }
}

impl TrainConfig {
    /// Checks every setting against the range a checkpoint's header is held to; the error names
    /// the first setting out of range, its value and its range (`sgd.momentum is 1; …`).
    pub fn check(&self) -> Result<(), String> {
        check_config(self).map_err(|f| {
            let field = f.field.strip_prefix("config.").unwrap_or(&f.field);
            format!("{field} is {}; {}", f.value, f.rule)
        })
    }
}

impl CheckpointHeader {
    /// Checks every field of the header against its range; `name` (the file) is used in the
    /// message, which names the first field out of range and its value.
    pub fn check(&self, name: &str) -> Result<(), CheckpointError> {
        check_header(self).map_err(|f| f.into_error(name, DAMAGED))
    }

    /// Checks that the run's position lies within an epoch of `steps_per_epoch` steps (the
    /// data it is resumed on): the header alone cannot tell, as the steps of an epoch depend on
    /// the data's size.
    pub fn check_position(&self, name: &str, steps_per_epoch: usize) -> Result<(), CheckpointError> {
        let step = self.state.step_in_epoch;
        require(
            step <= steps_per_epoch,
            "state.step_in_epoch",
            step,
            format_args!(
                "it must be at most {steps_per_epoch}, the steps of an epoch of this data at \
                 batch {}",
                self.config.batch
            ),
        )
        .map_err(|f| f.into_error(name, OTHER_DATA))
    }
}
