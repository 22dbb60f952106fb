//! Learning-rate schedules, stepped once per epoch.

use serde::{Deserialize, Serialize};

/// How the learning rate changes from epoch to epoch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The same rate throughout.
    Constant,
    /// PyTorch's `ReduceLROnPlateau(mode="min", threshold_mode="rel", cooldown=0, min_lr=0)` on
    /// the validation loss: after more than `patience` epochs without a loss below
    /// `best·(1 − threshold)`, the rate is multiplied by `factor`.
    Plateau {
        factor: f64,
        patience: usize,
        threshold: f64,
    },
    /// PyTorch's `CosineAnnealingLR(T_max = epochs, eta_min = min_lr)`:
    /// `lr_e = min_lr + (lr_0 − min_lr)·(1 + cos(π·e/epochs))/2` after epoch `e`.
    Cosine { min_lr: f64 },
}

impl LrSchedule {
    /// The reference experiment's schedule.
    pub const REFERENCE: LrSchedule = LrSchedule::Plateau {
        factor: 0.1,
        patience: 10,
        threshold: 1e-4,
    };

    pub fn name(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Plateau { .. } => "plateau",
            LrSchedule::Cosine { .. } => "cosine",
        }
    }
}

/// What a schedule carries between epochs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrState {
    pub lr: f64,
    /// Plateau: the best validation loss so far (`None` before the first epoch) and the epochs
    /// since it.
    pub best: Option<f64>,
    pub bad_epochs: usize,
}

impl LrState {
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            best: None,
            bad_epochs: 0,
        }
    }

    /// Steps the schedule after `epochs_done` epochs (1 after the first) of `total_epochs`,
    /// with the epoch's validation loss; returns the rate for the next epoch.
    pub fn step(
        &mut self,
        schedule: &LrSchedule,
        base_lr: f64,
        epochs_done: usize,
        total_epochs: usize,
        validation_loss: f64,
    ) -> f64 {
        match *schedule {
            LrSchedule::Constant => {}
            LrSchedule::Plateau {
                factor,
                patience,
                threshold,
            } => {
                let improved = self
                    .best
                    .is_none_or(|best| validation_loss < best * (1.0 - threshold));
                if improved {
                    self.best = Some(validation_loss);
                    self.bad_epochs = 0;
                } else {
                    self.bad_epochs += 1;
                }
                if self.bad_epochs > patience {
                    let reduced = self.lr * factor;
                    // PyTorch skips reductions smaller than its eps of 1e-8.
                    if self.lr - reduced > 1e-8 {
                        self.lr = reduced;
                    }
                    self.bad_epochs = 0;
                }
            }
            LrSchedule::Cosine { min_lr } => {
                let t = epochs_done.min(total_epochs) as f64 / total_epochs.max(1) as f64;
                self.lr = min_lr + (base_lr - min_lr) * (1.0 + (std::f64::consts::PI * t).cos()) / 2.0;
            }
        }
        self.lr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plateau_reduces_after_more_than_patience_bad_epochs() {
        let schedule = LrSchedule::Plateau {
            factor: 0.1,
            patience: 2,
            threshold: 1e-4,
        };
        let mut state = LrState::new(0.01);
        let losses = [1.0, 0.9, 0.95, 0.9, 0.89995, 0.5];
        let rates: Vec<f64> = losses
            .iter()
            .enumerate()
            .map(|(e, &l)| state.step(&schedule, 0.01, e + 1, 10, l))
            .collect();
        // Epochs 3, 4 and 5 do not beat 0.9 by the relative threshold: the third such epoch
        // reduces the rate; 0.5 then improves.
        assert_eq!(rates[..4], [0.01, 0.01, 0.01, 0.01]);
        assert!((rates[4] - 0.001).abs() < 1e-15, "{rates:?}");
        assert!((rates[5] - 0.001).abs() < 1e-15, "{rates:?}");
        assert_eq!(state.best, Some(0.5));
    }

    #[test]
    fn cosine_goes_from_base_to_min_over_the_epochs() {
        let schedule = LrSchedule::Cosine { min_lr: 0.0 };
        let mut state = LrState::new(0.1);
        let half = state.step(&schedule, 0.1, 2, 4, 0.0);
        assert!((half - 0.05).abs() < 1e-12);
        let end = state.step(&schedule, 0.1, 4, 4, 0.0);
        assert!(end.abs() < 1e-12);
    }
}
