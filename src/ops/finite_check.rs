//! A training step's status on the device, and the finiteness checks that decide whether the
//! step is applied.
//!
//! The status is a `u32 [STATUS_LEN]` record: `[LOSS]` the last micro-batch's mean loss (the
//! bits of an f32), `[CORRECT]` its correct predictions, `[FLAGS]` a set of [`NonFinite`] bits
//! gathered over the whole step. The cross-entropy forward writes the first two and sets
//! [`NonFinite::LOSS`] for a loss that is not finite; [`check`] sets a flag where any value of a
//! buffer (a gradient, a batch norm's statistics) is not finite. The SGD update and the
//! running-statistics update read `[FLAGS]` and change nothing when any bit is set, so a step
//! is applied whole or not at all, with no read-back before the update. The host reads the
//! record once per micro-batch, as it reads the loss.

use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups};
use crate::shaders::Kernel;

/// Words of the status record.
pub const STATUS_LEN: usize = 4;
/// Index of the loss's bits.
pub const LOSS: usize = 0;
/// Index of the correct count.
pub const CORRECT: usize = 1;
/// Index of the non-finite flags (`STATUS_FLAGS` in the kernels that read or set them).
pub const FLAGS: usize = 2;

/// What was not finite in a step: a set of bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NonFinite(pub u32);

impl NonFinite {
    /// The mean loss of a micro-batch.
    pub const LOSS: u32 = 1;
    /// A parameter gradient.
    pub const GRADIENT: u32 = 2;
    /// A batch norm's batch statistics (what the running statistics would move towards).
    pub const STATISTICS: u32 = 4;

    /// Whether nothing was flagged: the step was applied.
    pub fn is_finite(self) -> bool {
        self.0 == 0
    }

    /// "the loss and a gradient": what was not finite, for messages.
    pub fn describe(self) -> String {
        let parts: Vec<&str> = [
            (Self::LOSS, "the loss"),
            (Self::GRADIENT, "a gradient"),
            (Self::STATISTICS, "a batch norm's statistics"),
        ]
        .iter()
        .filter(|(bit, _)| self.0 & bit != 0)
        .map(|&(_, name)| name)
        .collect();
        match parts.as_slice() {
            [] => "nothing".into(),
            [one] => one.to_string(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        }
    }
}

/// The kernel's uniform (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FiniteCheckParams {
    pub len: u32,
    /// The [`NonFinite`] bit to set.
    pub flag: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Sets `flag` in `status[FLAGS]` where any value of `values` `[len]` is infinite or NaN.
pub fn check(ctx: &GpuContext, values: &GpuBuffer<f32>, flag: u32, status: &GpuBuffer<u32>) -> Launch {
    assert_eq!(
        status.len(),
        STATUS_LEN,
        "finite check: status holds {STATUS_LEN} words"
    );
    assert!(
        values.len() <= u32::MAX as usize,
        "finite check: buffer too large for u32 indices"
    );
    Launch::linear(
        ctx,
        Kernel::FiniteCheck.plain(),
        &FiniteCheckParams {
            len: values.len() as u32,
            flag,
            _pad0: 0,
            _pad1: 0,
        },
        &[values.bind(), status.bind()],
        flat_workgroups(values.len().div_ceil(4)),
    )
}

/// CPU reference of [`check`]: the flags after checking `values`, starting from `flags`.
pub fn check_cpu(values: &[f32], flag: u32, flags: u32) -> u32 {
    if values.iter().all(|v| v.is_finite()) {
        flags
    } else {
        flags | flag
    }
}

/// A read status record: (mean loss, correct count, flags).
pub fn decode(status: &[u32]) -> (f32, u32, NonFinite) {
    assert_eq!(
        status.len(),
        STATUS_LEN,
        "a status record holds {STATUS_LEN} words"
    );
    (
        f32::from_bits(status[LOSS]),
        status[CORRECT],
        NonFinite(status[FLAGS]),
    )
}
