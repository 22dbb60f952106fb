//! Softmax cross-entropy over `logits[B, K]` (K classes) and `labels[B]` (u32, each `< K`).
//!
//! Forward: the batch-mean loss `(1/B)·Σ_b (logsumexp(logits[b]) − logits[b, label_b])`, with
//! `logsumexp(z) = max z + log Σ_k exp(z_k − max z)`, and the number of rows whose argmax is the
//! label (ties go to the first maximal index, as `torch.argmax`), written to a step's status
//! record ([`super::finite_check`]), which also flags a loss that is not finite. One workgroup of 256
//! with fixed tree reductions: identical results run to run.
//!
//! Backward of the mean loss over `D` rows: `dlogits[b, k] = (softmax(logits[b])[k] − [k = label_b])/D`,
//! where `D = B`, or the whole batch when these `B` rows are one micro-batch of it.

use super::finite_check::STATUS_LEN;
use crate::gpu::{GpuBuffer, GpuContext, Launch, MAX_LOOP_ITERATIONS};
use crate::shaders::Kernel;

/// The uniform of both kernels (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CrossEntropyParams {
    pub batch: u32,
    pub classes: u32,
    /// Rows the loss is averaged over (the backward divides by it).
    pub divisor: u32,
    pub _pad: u32,
}

impl CrossEntropyParams {
    pub fn new(batch: usize, classes: usize, divisor: usize) -> Self {
        assert!(
            batch > 0 && classes > 0,
            "cross-entropy: empty batch or no classes"
        );
        assert!(
            batch * classes <= u32::MAX as usize,
            "cross-entropy: logits too large for u32 indices"
        );
        assert!(
            divisor >= batch,
            "cross-entropy: the divisor counts at least the rows"
        );
        // Each invocation of the forward walks its rows' classes twice (llvmpipe ends an
        // invocation's loops after MAX_LOOP_ITERATIONS in all, without an error).
        assert!(
            batch.div_ceil(256) * (2 * classes + 1) <= MAX_LOOP_ITERATIONS,
            "cross-entropy: {batch} rows of {classes} classes exceed the kernel's loop bound; \
             use fewer classes or smaller micro-batches"
        );
        Self {
            batch: batch as u32,
            classes: classes as u32,
            divisor: divisor as u32,
            _pad: 0,
        }
    }
}

fn check(batch: usize, classes: usize, logits: &GpuBuffer<f32>, labels: &GpuBuffer<u32>) {
    assert_eq!(
        logits.len(),
        batch * classes,
        "cross-entropy: logits have the wrong length"
    );
    assert_eq!(labels.len(), batch, "cross-entropy: labels have the wrong length");
}

/// `logits` `[batch, classes]`, `labels` `[batch]` → the mean loss and the correct count in
/// `status` `[STATUS_LEN]` (read it with [`super::finite_check::decode`]).
pub fn forward(
    ctx: &GpuContext,
    batch: usize,
    classes: usize,
    logits: &GpuBuffer<f32>,
    labels: &GpuBuffer<u32>,
    status: &GpuBuffer<u32>,
) -> Launch {
    check(batch, classes, logits, labels);
    assert_eq!(
        status.len(),
        STATUS_LEN,
        "cross-entropy: the status record holds {STATUS_LEN} words"
    );
    Launch::new(
        ctx,
        Kernel::CrossEntropyForward.stored(&[logits.precision()]),
        &CrossEntropyParams::new(batch, classes, batch),
        &[logits.bind(), labels.bind(), status.bind()],
        [1, 1, 1],
    )
}

/// `logits` `[batch, classes]`, `labels` `[batch]` → `dlogits` `[batch, classes]`, the
/// gradient of the loss averaged over `divisor` rows (`batch` unless micro-batching).
pub fn backward(
    ctx: &GpuContext,
    batch: usize,
    classes: usize,
    divisor: usize,
    logits: &GpuBuffer<f32>,
    labels: &GpuBuffer<u32>,
    dlogits: &GpuBuffer<f32>,
) -> Launch {
    check(batch, classes, logits, labels);
    assert_eq!(
        dlogits.len(),
        batch * classes,
        "cross-entropy: dlogits have the wrong length"
    );
    Launch::linear(
        ctx,
        Kernel::CrossEntropyBackward.stored(&[logits.precision()]),
        &CrossEntropyParams::new(batch, classes, divisor),
        &[logits.bind(), labels.bind(), dlogits.bind()],
        (batch as u32).div_ceil(256),
    )
}

/// Row `b`'s maximum, its first index, and `log Σ_k exp(z_k − max)`.
fn row_stats(row: &[f64]) -> (f64, usize, f64) {
    let (mut best, mut best_k) = (row[0], 0);
    for (k, &v) in row.iter().enumerate().skip(1) {
        if v > best {
            (best, best_k) = (v, k);
        }
    }
    let log_sum = row.iter().map(|&v| (v - best).exp()).sum::<f64>().ln();
    (best, best_k, log_sum)
}

/// CPU reference of the forward: `[mean loss, correct count]`.
pub fn forward_cpu(logits: &[f64], labels: &[u32], classes: usize) -> [f64; 2] {
    assert_eq!(logits.len(), labels.len() * classes);
    let (mut loss, mut correct) = (0.0, 0.0);
    for (row, &label) in logits.chunks(classes).zip(labels) {
        let (best, best_k, log_sum) = row_stats(row);
        loss += best + log_sum - row[label as usize];
        if best_k == label as usize {
            correct += 1.0;
        }
    }
    [loss / labels.len() as f64, correct]
}

/// CPU reference of the backward of the mean loss: `dlogits` `[B, K]`.
pub fn backward_cpu(logits: &[f64], labels: &[u32], classes: usize) -> Vec<f64> {
    assert_eq!(logits.len(), labels.len() * classes);
    let batch = labels.len() as f64;
    let mut dlogits = Vec::with_capacity(logits.len());
    for (row, &label) in logits.chunks(classes).zip(labels) {
        let (best, _, log_sum) = row_stats(row);
        for (k, &v) in row.iter().enumerate() {
            let p = (v - best - log_sum).exp();
            dlogits.push((p - if k == label as usize { 1.0 } else { 0.0 }) / batch);
        }
    }
    dlogits
}
