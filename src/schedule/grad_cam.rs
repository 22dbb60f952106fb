//! Grad-CAM from the last stage: where in an image the network found the evidence for each
//! class (Selvaraju et al., "Grad-CAM", 2017), computed with the network's own kernels.
//!
//! `A [C, h, w]` is the last stage's output for one image in inference mode (the tensor the
//! global average pool reads), `W [K, C]` the linear layer's weight, `y_c` the logit of class c:
//!
//! - `∂y_c/∂f = W[c, ·]` for the pooled features f [C]: the linear layer's input gradient of a
//!   one-hot row, for all K classes at once `G [K, C] = I [K, K] · W`;
//! - `∂y_c/∂A[k, i, j] = G[c, k] / (h·w)`: the pool's backward, `[K, C, h, w]`;
//! - `α[c, k] = mean_{i,j} ∂y_c/∂A[k, i, j]`: the pool's forward of that gradient, `[K, C]`;
//! - `map[c, i, j] = ReLU(Σ_k α[c, k] · A[k, i, j])`: a GEMM `[K, C] · [C, h·w]`, then ReLU.
//!
//! The maps are `[K, h, w]` on the last stage's grid; each image pixel lies in one cell.

use super::{IMAGE_LEN, Network};
use crate::gpu::{GpuBuffer, GpuContext, GpuError};
use crate::model::{Model, Op, TensorId};
use crate::ops::linear::LinearGemms;
use crate::ops::matmul::{self, MatmulParams, matmul_cpu};
use crate::ops::{global_avg_pool, relu};

/// The logits of one image and where the network looked for each class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassMaps {
    /// Logits `[K]`.
    pub logits: Vec<f32>,
    /// `[K, height, width]`: Grad-CAM of each class on the last stage's grid (≥ 0).
    pub maps: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

impl ClassMaps {
    /// The map of class `class`, `[height, width]`.
    pub fn map(&self, class: usize) -> &[f32] {
        let cells = self.height * self.width;
        &self.maps[class * cells..(class + 1) * cells]
    }
}

/// Where Grad-CAM reads a model: the last stage's output (what the global average pool
/// reads) and the linear layer's weight (its index in [`Model::parameters`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CamSource {
    pub features: TensorId,
    pub weight: usize,
}

impl CamSource {
    /// `None` unless the model ends in a global average pool followed by a linear layer.
    pub fn of(model: &Model) -> Option<Self> {
        let n = model.layers.len();
        let [.., pool, linear] = &model.layers[..] else {
            return None;
        };
        let ends_right = matches!(pool.op, Op::GlobalAvgPool)
            && matches!(linear.op, Op::Linear(_))
            && linear.inputs == [n - 1];
        let weight = model.layer_slots()[n - 1].weight?;
        ends_right.then_some(Self {
            features: pool.inputs[0],
            weight,
        })
    }
}

impl Network {
    /// The logits of one image `[3, 32, 32]` (values in [0, 1]) and its Grad-CAM maps for every
    /// class (see the module's description); `None` for a model without a pooled last stage.
    pub async fn grad_cam(&self, ctx: &GpuContext, image: &[f32]) -> Result<Option<ClassMaps>, GpuError> {
        assert_eq!(image.len(), IMAGE_LEN, "grad-cam: one image");
        let Some(source) = CamSource::of(&self.plan.model) else {
            return Ok(None);
        };
        let classes = self.plan.model.classes;
        let [_, channels, height, width] = self.plan.shapes[source.features];
        let cells = height * width;
        // The image, then zeros for the rest of the micro-batch (inference mode: images are
        // independent).
        let mut input = vec![0.0; self.plan.micro_batch * IMAGE_LEN];
        input[..IMAGE_LEN].copy_from_slice(image);
        self.buffers.activations[0].write(ctx, &input);
        ctx.submit_all("grad-cam forward", &self.launches.eval);

        let identity: Vec<f32> = (0..classes * classes)
            .map(|i| f32::from(u8::from(i / classes == i % classes)))
            .collect();
        let one_hot = GpuBuffer::from_slice(ctx, "grad-cam one-hot rows", &identity);
        let feature_grad = GpuBuffer::zeros(ctx, "grad-cam feature gradient", classes * channels);
        let plane_grad = GpuBuffer::zeros(ctx, "grad-cam plane gradient", classes * channels * cells);
        let alpha = GpuBuffer::zeros(ctx, "grad-cam channel weights", classes * channels);
        let weighted = GpuBuffer::zeros(ctx, "grad-cam weighted sum", classes * cells);
        let maps = GpuBuffer::zeros(ctx, "grad-cam maps", classes * cells);
        let planes = [classes, channels, height, width];
        let gemms = LinearGemms::new(classes, channels, classes, false);
        let launches = [
            matmul::launch(
                ctx,
                &self.plan.kernels,
                &gemms.input_grad,
                &one_hot,
                &self.buffers.params[source.weight],
                None,
                &feature_grad,
            ),
            global_avg_pool::backward(ctx, planes, &feature_grad, &plane_grad),
            global_avg_pool::forward(ctx, planes, &plane_grad, &alpha),
            // The first image's A is the first C·h·w values of the batch tensor.
            matmul::launch(
                ctx,
                &self.plan.kernels,
                &combine_params(classes, channels, cells),
                &alpha,
                &self.buffers.activations[source.features],
                None,
                &weighted,
            ),
            relu::forward(ctx, &weighted, &maps),
        ];
        ctx.submit_all("grad-cam", &launches);
        let logits = self.buffers.activations[self.plan.model.output()].read(ctx).await;
        let maps = maps.read(ctx).await;
        ctx.check_at(crate::gpu::Fault::GradCam)?;
        Ok(Some(ClassMaps {
            logits: logits?[..classes].to_vec(),
            maps: maps?,
            height,
            width,
        }))
    }
}

/// `Σ_k α[c, k] · A[k, i, j]`: α `[K, C]` times the first image's A `[C, h·w]`.
fn combine_params(classes: usize, channels: usize, cells: usize) -> MatmulParams {
    MatmulParams::row_major(1, classes, cells, channels)
}

/// CPU reference of the maps `[K, h, w]` from A `[C, h, w]` (one image's last-stage output)
/// and the linear weight `[K, C]`, through the same steps as the GPU.
pub fn grad_cam_cpu(features: &[f64], weight: &[f64], classes: usize, shape: [usize; 3]) -> Vec<f64> {
    let [channels, height, width] = shape;
    let cells = height * width;
    let identity: Vec<f64> = (0..classes * classes)
        .map(|i| f64::from(u8::from(i / classes == i % classes)))
        .collect();
    let feature_grad = crate::ops::linear::input_grad_cpu(&identity, weight, classes, channels, classes);
    let planes = [classes, channels, height, width];
    let plane_grad = global_avg_pool::backward_cpu(planes, &feature_grad);
    let alpha = global_avg_pool::forward_cpu(planes, &plane_grad);
    let weighted = matmul_cpu(
        &combine_params(classes, channels, cells),
        &alpha,
        features,
        None,
        &vec![0.0; classes * cells],
    );
    relu::forward_cpu(&weighted)
}
