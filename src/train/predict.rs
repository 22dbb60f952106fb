//! Inference over a data set: logits, the evaluation report, softmax and the top classes.

use super::EVAL_CHUNK;
use super::EvalReport;
use crate::data::{BatchOptions, Dataset, fill_batch};
use crate::gpu::{GpuContext, GpuError};
use crate::rng::Rng;
use crate::schedule::Network;

/// Logits `[N, classes]` of every image of `data` through `net` in inference mode.
pub async fn predict_logits(ctx: &GpuContext, net: &Network, data: &Dataset) -> Result<Vec<f32>, GpuError> {
    let mut logits = Vec::with_capacity(data.len() * net.plan.model.classes);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut rng = Rng::new(0);
    for chunk in indices.chunks(EVAL_CHUNK) {
        fill_batch(
            data,
            chunk,
            BatchOptions::NONE,
            &mut rng,
            &mut images,
            &mut labels,
        );
        logits.extend(net.predict(ctx, &images).await?);
    }
    Ok(logits)
}

/// The report of `net` on a labelled set.
pub async fn evaluate(ctx: &GpuContext, net: &Network, data: &Dataset) -> Result<EvalReport, GpuError> {
    let logits = predict_logits(ctx, net, data).await?;
    Ok(EvalReport::from_logits(&logits, &data.labels, &data.class_names))
}

/// Probabilities of every class for each image (softmax of the logits), in `[N][classes]`.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<Vec<f64>> {
    logits
        .chunks_exact(classes)
        .map(|row| {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            exps.iter().map(|e| e / sum).collect()
        })
        .collect()
}

/// The `k` most probable classes of one image: (class, probability), most probable first.
pub fn top_k(probabilities: &[f64], k: usize) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(k);
    ranked
}
