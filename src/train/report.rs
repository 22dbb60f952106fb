//! Classification metrics from logits: loss, accuracy, per-class precision, recall, F1 and
//! support, their macro and weighted averages, and the confusion matrix, as scikit-learn's
//! `classification_report` and `confusion_matrix` define them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one class (or an average).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// Scores of a model on a labelled set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub class_names: Vec<String>,
    /// Mean softmax cross-entropy.
    pub loss: f64,
    pub accuracy: f64,
    pub per_class: Vec<ClassScores>,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Predicted class of each example, in order.
    pub predictions: Vec<usize>,
}

/// Softmax cross-entropy of one row of logits against its label, and the row's argmax
/// (first index on ties).
pub fn row_loss_and_argmax(row: &[f32], label: usize) -> (f64, usize) {
    let mut best = 0;
    for (k, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = k;
        }
    }
    let max = row[best] as f64;
    let log_sum = row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
    (log_sum - row[label] as f64, best)
}

/// `x / y`, 0 where `y` is 0 (scikit-learn's `zero_division=0`).
fn ratio(x: f64, y: f64) -> f64 {
    if y == 0.0 { 0.0 } else { x / y }
}

impl EvalReport {
    /// `logits` [N, K] row-major, `labels` [N] each `< K`.
    pub fn from_logits(logits: &[f32], labels: &[u8], class_names: &[String]) -> Self {
        let classes = class_names.len();
        assert_eq!(logits.len(), labels.len() * classes, "report: logits per label");
        let mut confusion = vec![vec![0; classes]; classes];
        let mut predictions = Vec::with_capacity(labels.len());
        let mut loss = 0.0;
        for (row, &label) in logits.chunks_exact(classes).zip(labels) {
            let (l, predicted) = row_loss_and_argmax(row, label as usize);
            loss += l;
            confusion[label as usize][predicted] += 1;
            predictions.push(predicted);
        }
        let n = labels.len();
        let correct: usize = (0..classes).map(|k| confusion[k][k]).sum();
        let per_class: Vec<ClassScores> = (0..classes)
            .map(|k| {
                let tp = confusion[k][k] as f64;
                let predicted: usize = (0..classes).map(|t| confusion[t][k]).sum();
                let support: usize = confusion[k].iter().sum();
                let precision = ratio(tp, predicted as f64);
                let recall = ratio(tp, support as f64);
                ClassScores {
                    precision,
                    recall,
                    f1: ratio(2.0 * precision * recall, precision + recall),
                    support,
                }
            })
            .collect();
        let average = |weight: &dyn Fn(&ClassScores) -> f64| {
            let total: f64 = per_class.iter().map(weight).sum();
            let mean = |f: &dyn Fn(&ClassScores) -> f64| {
                ratio(per_class.iter().map(|s| weight(s) * f(s)).sum::<f64>(), total)
            };
            ClassScores {
                precision: mean(&|s| s.precision),
                recall: mean(&|s| s.recall),
                f1: mean(&|s| s.f1),
                support: n,
            }
        };
        Self {
            class_names: class_names.to_vec(),
            loss: ratio(loss, n as f64),
            accuracy: ratio(correct as f64, n as f64),
            macro_avg: average(&|_| 1.0),
            weighted_avg: average(&|s| s.support as f64),
            per_class,
            confusion,
            predictions,
        }
    }

    pub fn error_rate(&self) -> f64 {
        1.0 - self.accuracy
    }
}

impl fmt::Display for EvalReport {
    /// The layout of scikit-learn's `classification_report`, then the confusion matrix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .class_names
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(12);
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: &ClassScores| {
            writeln!(
                f,
                "{name:>width$} {:>9.4} {:>9.4} {:>9.4} {:>9}",
                s.precision, s.recall, s.f1, s.support
            )
        };
        writeln!(
            f,
            "{:>width$} {:>9} {:>9} {:>9} {:>9}",
            "", "precision", "recall", "f1-score", "support"
        )?;
        writeln!(f)?;
        for (name, s) in self.class_names.iter().zip(&self.per_class) {
            row(f, name, s)?;
        }
        writeln!(f)?;
        let n = self.macro_avg.support;
        writeln!(
            f,
            "{:>width$} {:>9} {:>9} {:>9.4} {:>9}",
            "accuracy", "", "", self.accuracy, n
        )?;
        row(f, "macro avg", &self.macro_avg)?;
        row(f, "weighted avg", &self.weighted_avg)?;
        writeln!(
            f,
            "\nloss {:.4}\n\nconfusion matrix (rows: true class, columns: predicted)",
            self.loss
        )?;
        for (name, counts) in self.class_names.iter().zip(&self.confusion) {
            write!(f, "{name:>width$}")?;
            for c in counts {
                write!(f, " {c:>5}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_hand_counts() {
        // Three classes; true labels 0,0,1,1,2,2 predicted 0,1,1,1,2,0 (logit 1 at the
        // prediction, 0 elsewhere).
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let labels = [0u8, 0, 1, 1, 2, 2];
        let predicted = [0usize, 1, 1, 1, 2, 0];
        let mut logits = vec![0.0f32; 18];
        for (i, &p) in predicted.iter().enumerate() {
            logits[i * 3 + p] = 1.0;
        }
        let r = EvalReport::from_logits(&logits, &labels, &names);
        assert_eq!(r.confusion, vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 1]]);
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // Class a: precision 1/2, recall 1/2; b: 2/3, 1; c: 1, 1/2.
        assert!((r.per_class[1].precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.per_class[1].f1 - 0.8).abs() < 1e-12);
        assert!((r.per_class[2].f1 - 2.0 / 3.0).abs() < 1e-12);
        let macro_f1 = (0.5 + 0.8 + 2.0 / 3.0) / 3.0;
        assert!((r.macro_avg.f1 - macro_f1).abs() < 1e-12);
        // Equal supports: weighted equals macro.
        assert!((r.weighted_avg.f1 - macro_f1).abs() < 1e-12);
        // loss: each row −log(e/(e+2)) = log(e+2) − 1.
        let row_loss = (1f64.exp() + 2.0).ln() - 1.0;
        let wrong = (1f64.exp() + 2.0).ln();
        assert!((r.loss - (4.0 * row_loss + 2.0 * wrong) / 6.0).abs() < 1e-9);
        let text = r.to_string();
        assert!(text.contains("macro avg") && text.contains("weighted avg") && text.contains("accuracy"));
    }
}
