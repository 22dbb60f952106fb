//! The L2 norms of each layer's parameters and of their gradients after the last step: a run
//! that is diverging shows a growing gradient norm before its loss turns NaN.
//!
//! A layer's norm covers all its parameters (a convolution's weight and bias, a batch norm's
//! γ and β): `‖w‖ = √(Σ_tensors Σ_i w_i²)`, and the same for the gradients `∂L/∂w` of the
//! last step (the whole batch's, summed over micro-batches).

use super::Network;
use crate::gpu::{GpuBuffer, GpuContext, GpuError, Launch};
use crate::ops::sum_of_squares;

/// The largest share of training time that reading the norms may take: after a read of t
/// seconds the app waits t / NORMS_READ_SHARE seconds for the next (on a CPU adapter one read
/// of a ResNet-50's norms takes a sizeable part of a step).
pub const NORMS_READ_SHARE: f64 = 0.02;

/// One layer's norms after the last step.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerNorms {
    /// The parameters' common prefix in PyTorch's names ("layer1.0.conv1").
    pub layer: String,
    pub weight: f64,
    pub gradient: f64,
}

/// The launches that write the partial sums of squares of parameter p to slot p of `out` and
/// of its gradient to slot `P + p`, P parameters in all (see [`sum_of_squares::launch`]).
pub fn norm_launches(
    ctx: &GpuContext,
    params: &[GpuBuffer<f32>],
    grads: &[GpuBuffer<f32>],
    out: &GpuBuffer<f32>,
) -> Vec<Launch> {
    let count = params.len();
    let weights = params
        .iter()
        .enumerate()
        .map(|(p, w)| sum_of_squares::launch(ctx, w, out, p));
    let gradients = grads
        .iter()
        .enumerate()
        .map(|(p, g)| sum_of_squares::launch(ctx, g, out, count + p));
    weights.chain(gradients).collect()
}

impl Network {
    /// Per layer, in the model's order: the norms of its parameters and of their gradients
    /// from the last step.
    pub async fn layer_norms(&self, ctx: &GpuContext) -> Result<Vec<LayerNorms>, GpuError> {
        ctx.submit_all("layer norms", &self.launches.norms);
        let partials = self.buffers.norm_sums.read(ctx).await;
        ctx.check_at(crate::gpu::Fault::LayerNorms)?;
        let sums = sum_of_squares::sums_of_partials(&partials?);
        let names: Vec<String> = self.plan.model.parameters().into_iter().map(|p| p.name).collect();
        let (weights, gradients) = sums.split_at(names.len());
        Ok(group_by_layer(&names, weights, gradients))
    }
}

/// The layer a parameter belongs to: its name without the last part ("fc.weight" → "fc").
fn layer_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(layer, _)| layer)
}

/// Norms per layer from each parameter's sum of squares and its gradient's, in `names` order.
pub fn group_by_layer(names: &[String], weights: &[f64], gradients: &[f64]) -> Vec<LayerNorms> {
    let mut layers: Vec<(String, f64, f64)> = Vec::new();
    for ((name, &w), &g) in names.iter().zip(weights).zip(gradients) {
        let layer = layer_of(name);
        match layers.last_mut() {
            Some((last, ws, gs)) if last == layer => {
                *ws += w;
                *gs += g;
            }
            _ => layers.push((layer.to_string(), w, g)),
        }
    }
    layers
        .into_iter()
        .map(|(layer, w, g)| LayerNorms {
            layer,
            weight: w.sqrt(),
            gradient: g.sqrt(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_group_into_their_layers() {
        let names = ["conv1.weight", "bn1.weight", "bn1.bias", "fc.weight", "fc.bias"].map(String::from);
        let norms = group_by_layer(
            &names,
            &[9.0, 1.0, 3.0, 16.0, 9.0],
            &[4.0, 0.0, 0.0, 1.0, f64::NAN],
        );
        let layers: Vec<&str> = norms.iter().map(|n| n.layer.as_str()).collect();
        assert_eq!(layers, ["conv1", "bn1", "fc"]);
        assert_eq!((norms[0].weight, norms[0].gradient), (3.0, 2.0));
        assert_eq!((norms[1].weight, norms[1].gradient), (2.0, 0.0));
        assert_eq!(norms[2].weight, 5.0);
        assert!(norms[2].gradient.is_nan(), "a NaN gradient shows as NaN");
    }
}
