//! The scheduler: turns a [`Model`] and a batch size into GPU buffers, planned once, and the
//! launch lists of a training step (forward, loss, backward, SGD) and of inference.
//!
//! Gradient buffers: the gradient of a tensor read by several layers is the sum of their
//! contributions. Layers are planned in reverse; the first contribution (from the last reader)
//! overwrites, later ones accumulate (convolutions add into their target). A residual add
//! passes its output gradient to both inputs unchanged, so its inputs share the output's
//! gradient buffer instead of copying it: by the time the block's first convolution adds its
//! contribution there, every other reader of that buffer has run.

use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::model::{Model, Op, Shape};
use crate::ops::batch_norm::{self, BnShape};
use crate::ops::conv2d::{self, Conv2dShape};
use crate::ops::matmul::{self, Bias, MatmulParams};
use crate::ops::max_pool::{self, MaxPool2d};
use crate::ops::sgd::{self, SgdConfig};
use crate::ops::upsample::{self, UpsampleNearest};
use crate::ops::{add, bias_grad, cross_entropy, global_avg_pool, relu};

pub const BN_MOMENTUM: f32 = 0.1;
pub const BN_EPS: f32 = 1e-5;

/// Every buffer of a model at one batch size, and the launches that use them.
pub struct Network {
    pub model: Model,
    pub batch: usize,
    pub shapes: Vec<Shape>,
    /// Parameters, their gradients and SGD momentum buffers, in `Model::parameters()` order.
    pub params: Vec<GpuBuffer<f32>>,
    pub grads: Vec<GpuBuffer<f32>>,
    pub momentum: Vec<GpuBuffer<f32>>,
    /// Running mean and variance of each batch norm, in `Model::batch_norms()` order.
    pub running: Vec<(GpuBuffer<f32>, GpuBuffer<f32>)>,
    /// Activations, indexed by tensor id (0 is the input batch).
    pub activations: Vec<GpuBuffer<f32>>,
    pub labels: GpuBuffer<u32>,
    /// [mean loss, correct count] of the last step or evaluation.
    pub loss: GpuBuffer<f32>,
    /// Everything of the other buffers (gradients of tensors, saved statistics, argmax):
    /// kept alive for the launches that bind them.
    _scratch: Vec<GpuBuffer<f32>>,
    _argmax: Vec<GpuBuffer<u32>>,
    train_launches: Vec<Launch>,
    eval_launches: Vec<Launch>,
    sgd_launches: Vec<Launch>,
    sgd_config: SgdConfig,
    /// Bytes of GPU memory the buffers take.
    pub memory_bytes: u64,
}

/// What a layer's parameters are, by index into the parameter list.
#[derive(Clone, Copy)]
struct ParamIndex {
    weight: usize,
    bias: Option<usize>,
}

impl Network {
    /// Plans and allocates every buffer and records the launch lists. `initial` holds the
    /// parameter values in `Model::parameters()` order.
    pub fn new(
        ctx: &GpuContext,
        model: Model,
        batch: usize,
        initial: &[Vec<f32>],
        sgd_config: SgdConfig,
    ) -> Self {
        let shapes = model.shapes(batch);
        let specs = model.parameters();
        assert_eq!(initial.len(), specs.len(), "one initial tensor per parameter");
        let numel = |s: &Shape| s.iter().product::<usize>();
        let params: Vec<_> = specs
            .iter()
            .zip(initial)
            .map(|(spec, values)| GpuBuffer::from_slice(ctx, &spec.name, values))
            .collect();
        let grads: Vec<_> = specs
            .iter()
            .map(|s| GpuBuffer::zeros(ctx, &format!("grad {}", s.name), s.len()))
            .collect();
        let momentum: Vec<_> = specs
            .iter()
            .map(|s| GpuBuffer::zeros(ctx, &format!("momentum {}", s.name), s.len()))
            .collect();
        let running: Vec<_> = model
            .batch_norms()
            .iter()
            .map(|(name, c)| {
                (
                    GpuBuffer::zeros(ctx, &format!("{name}.running_mean"), *c),
                    GpuBuffer::from_slice(ctx, &format!("{name}.running_var"), &vec![1.0; *c]),
                )
            })
            .collect();
        let activations: Vec<_> = shapes
            .iter()
            .enumerate()
            .map(|(t, s)| GpuBuffer::zeros(ctx, &format!("activation {t}"), numel(s)))
            .collect();
        let labels = GpuBuffer::zeros(ctx, "labels", batch);
        let loss = GpuBuffer::zeros(ctx, "loss and correct count", 2);

        // Which parameters each layer owns, in the order Model::parameters() lists them.
        let mut layer_params = Vec::new();
        let mut next = 0;
        let mut bn_index = Vec::new();
        let mut bn_count = 0;
        for layer in &model.layers {
            let index = match &layer.op {
                Op::Conv { bias, .. } => {
                    let p = ParamIndex {
                        weight: next,
                        bias: bias.then_some(next + 1),
                    };
                    next += 1 + *bias as usize;
                    Some(p)
                }
                Op::BatchNorm { .. } | Op::Linear { .. } => {
                    let p = ParamIndex {
                        weight: next,
                        bias: Some(next + 1),
                    };
                    next += 2;
                    Some(p)
                }
                _ => None,
            };
            layer_params.push(index);
            bn_index.push(matches!(layer.op, Op::BatchNorm { .. }).then(|| {
                bn_count += 1;
                bn_count - 1
            }));
        }

        let mut scratch = Vec::new();
        let mut argmax = Vec::new();
        let mut saved_stats = vec![None; model.layers.len()];
        let mut argmax_of = vec![None; model.layers.len()];
        for (i, layer) in model.layers.iter().enumerate() {
            let c = shapes[layer.inputs[0]][1];
            if matches!(layer.op, Op::BatchNorm { .. }) {
                scratch.push(GpuBuffer::zeros(ctx, &format!("layer {i} saved mean"), c));
                scratch.push(GpuBuffer::zeros(ctx, &format!("layer {i} saved invstd"), c));
                saved_stats[i] = Some(scratch.len() - 2);
            }
            if matches!(layer.op, Op::MaxPool { .. }) {
                argmax.push(GpuBuffer::<u32>::zeros(
                    ctx,
                    &format!("layer {i} argmax"),
                    numel(&shapes[i + 1]),
                ));
                argmax_of[i] = Some(argmax.len() - 1);
            }
        }

        // Gradient buffers of tensors, planned in reverse (see the module comment).
        let tensors = shapes.len();
        let mut grad_slot: Vec<Option<usize>> = vec![None; tensors];
        let mut needs_grad = vec![false; tensors];
        for (i, layer) in model.layers.iter().enumerate() {
            needs_grad[i + 1] = layer_params[i].is_some() || layer.inputs.iter().any(|&t| needs_grad[t]);
        }
        let output = model.output();
        scratch.push(GpuBuffer::zeros(ctx, "grad logits", numel(&shapes[output])));
        grad_slot[output] = Some(scratch.len() - 1);
        let mut written = vec![false; scratch.len() + tensors];
        written[grad_slot[output].unwrap()] = true;
        // Per layer: the gradient buffer its backward writes for its first input, and whether
        // it adds into it. (The residual add, the only two-input layer, writes nothing.)
        let mut input_grad_target: Vec<Option<(usize, bool)>> = vec![None; model.layers.len()];
        for (i, layer) in model.layers.iter().enumerate().rev() {
            let y = i + 1;
            if grad_slot[y].is_none() {
                continue; // nothing downstream needs this layer's gradient
            }
            for (j, &x) in layer.inputs.iter().enumerate() {
                if !needs_grad[x] {
                    continue;
                }
                let slot = match (grad_slot[x], &layer.op) {
                    (None, Op::Add) => grad_slot[y].unwrap(),
                    (None, _) => {
                        scratch.push(GpuBuffer::zeros(ctx, &format!("grad {x}"), numel(&shapes[x])));
                        scratch.len() - 1
                    }
                    (Some(slot), op) => {
                        assert!(
                            matches!(op, Op::Conv { .. }),
                            "tensor {x} gets gradient from several layers, and layer {i} ({op:?}) cannot add into it"
                        );
                        slot
                    }
                };
                grad_slot[x] = Some(slot);
                let accumulate = written[slot];
                written[slot] = true;
                if j == 0 {
                    input_grad_target[i] = Some((slot, accumulate));
                }
            }
        }

        let mut train_launches = Vec::new();
        let mut eval_launches = Vec::new();
        for (i, layer) in model.layers.iter().enumerate() {
            let x = &activations[layer.inputs[0]];
            let y = &activations[i + 1];
            let [n, c, h, w] = shapes[layer.inputs[0]];
            let p = layer_params[i];
            match &layer.op {
                Op::Upsample { size } => {
                    let shape = UpsampleNearest::new(n, c, (h, w), (*size, *size));
                    train_launches.push(upsample::forward(ctx, &shape, x, y));
                    eval_launches.push(upsample::forward(ctx, &shape, x, y));
                }
                Op::Conv {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let shape = Conv2dShape::square(n, c, h, *out_channels, *kernel, *stride, *padding);
                    let p = p.unwrap();
                    let bias = p.bias.map(|b| &params[b]);
                    train_launches.push(conv2d::forward(ctx, &shape, x, &params[p.weight], bias, y));
                    eval_launches.push(conv2d::forward(ctx, &shape, x, &params[p.weight], bias, y));
                }
                Op::BatchNorm { .. } => {
                    let p = p.unwrap();
                    let (rm, rv) = &running[bn_index[i].unwrap()];
                    let s = saved_stats[i].unwrap();
                    let shape = BnShape::new(n, c, h * w);
                    let buffers = batch_norm::TrainForwardBuffers {
                        x,
                        gamma: &params[p.weight],
                        beta: &params[p.bias.unwrap()],
                        y,
                        save_mean: &scratch[s],
                        save_invstd: &scratch[s + 1],
                        running_mean: rm,
                        running_var: rv,
                    };
                    train_launches.push(batch_norm::train_forward(
                        ctx,
                        shape,
                        BN_MOMENTUM,
                        BN_EPS,
                        &buffers,
                    ));
                    let buffers = batch_norm::InferenceForwardBuffers {
                        x,
                        gamma: &params[p.weight],
                        beta: &params[p.bias.unwrap()],
                        running_mean: rm,
                        running_var: rv,
                        y,
                    };
                    eval_launches.push(batch_norm::inference_forward(ctx, shape, BN_EPS, &buffers));
                }
                Op::Relu => {
                    train_launches.push(relu::forward(ctx, x, y));
                    eval_launches.push(relu::forward(ctx, x, y));
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let shape = MaxPool2d::new(n, c, h, w, *kernel, *stride, *padding);
                    let a = &argmax[argmax_of[i].unwrap()];
                    train_launches.push(max_pool::forward(ctx, &shape, x, y, a));
                    eval_launches.push(max_pool::forward(ctx, &shape, x, y, a));
                }
                Op::Add => {
                    let b = &activations[layer.inputs[1]];
                    train_launches.push(add::forward(ctx, x, b, y));
                    eval_launches.push(add::forward(ctx, x, b, y));
                }
                Op::GlobalAvgPool => {
                    train_launches.push(global_avg_pool::forward(ctx, [n, c, h, w], x, y));
                    eval_launches.push(global_avg_pool::forward(ctx, [n, c, h, w], x, y));
                }
                Op::Linear { out_features, .. } => {
                    let p = p.unwrap();
                    let mm = linear_forward_params(n, c * h * w, *out_features);
                    let bias = Some(&params[p.bias.unwrap()]);
                    train_launches.push(matmul::launch(ctx, &mm, x, &params[p.weight], bias, y));
                    eval_launches.push(matmul::launch(ctx, &mm, x, &params[p.weight], bias, y));
                }
            }
        }
        let logits = &activations[output];
        let classes = model.classes;
        let grad_logits = &scratch[grad_slot[output].unwrap()];
        train_launches.push(cross_entropy::forward(
            ctx, batch, classes, logits, &labels, &loss,
        ));
        eval_launches.push(cross_entropy::forward(
            ctx, batch, classes, logits, &labels, &loss,
        ));
        train_launches.push(cross_entropy::backward(
            ctx,
            batch,
            classes,
            logits,
            &labels,
            grad_logits,
        ));

        // Backward, in reverse layer order.
        for (i, layer) in model.layers.iter().enumerate().rev() {
            let Some(dy_slot) = grad_slot[i + 1] else { continue };
            let dy = &scratch[dy_slot];
            let x_id = layer.inputs[0];
            let x = &activations[x_id];
            let [n, c, h, w] = shapes[x_id];
            let target = input_grad_target[i];
            let dx = target.map(|(slot, _)| &scratch[slot]);
            let p = layer_params[i];
            match &layer.op {
                Op::Upsample { size } => {
                    if let Some(dx) = dx {
                        let shape = UpsampleNearest::new(n, c, (h, w), (*size, *size));
                        train_launches.push(upsample::backward(ctx, &shape, dy, dx));
                    }
                }
                Op::Conv {
                    out_channels,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let shape = Conv2dShape::square(n, c, h, *out_channels, *kernel, *stride, *padding);
                    let p = p.unwrap();
                    if let Some(b) = p.bias {
                        let [_, co, oh, ow] = shapes[i + 1];
                        train_launches.push(bias_grad::backward(ctx, n, co, oh * ow, dy, &grads[b]));
                    }
                    train_launches.push(conv2d::weight_grad(ctx, &shape, dy, x, &grads[p.weight], false));
                    if let (Some(dx), Some((_, accumulate))) = (dx, target) {
                        train_launches.push(conv2d::input_grad(
                            ctx,
                            &shape,
                            dy,
                            &params[p.weight],
                            dx,
                            accumulate,
                        ));
                    }
                }
                Op::BatchNorm { .. } => {
                    let p = p.unwrap();
                    let s = saved_stats[i].unwrap();
                    let buffers = batch_norm::BackwardBuffers {
                        dy,
                        x,
                        gamma: &params[p.weight],
                        save_mean: &scratch[s],
                        save_invstd: &scratch[s + 1],
                        dx: dx.expect("a batch norm's input needs a gradient"),
                        dgamma: &grads[p.weight],
                        dbeta: &grads[p.bias.unwrap()],
                    };
                    train_launches.push(batch_norm::backward(ctx, BnShape::new(n, c, h * w), &buffers));
                }
                Op::Relu => {
                    if let Some(dx) = dx {
                        train_launches.push(relu::backward(ctx, &activations[i + 1], dy, dx));
                    }
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    if let Some(dx) = dx {
                        let shape = MaxPool2d::new(n, c, h, w, *kernel, *stride, *padding);
                        train_launches.push(max_pool::backward(
                            ctx,
                            &shape,
                            &argmax[argmax_of[i].unwrap()],
                            dy,
                            dx,
                        ));
                    }
                }
                // The residual add's inputs share its output gradient buffer: nothing to run.
                Op::Add => {}
                Op::GlobalAvgPool => {
                    if let Some(dx) = dx {
                        train_launches.push(global_avg_pool::backward(ctx, [n, c, h, w], dy, dx));
                    }
                }
                Op::Linear { out_features, .. } => {
                    let p = p.unwrap();
                    let features = c * h * w;
                    train_launches.push(bias_grad::backward(
                        ctx,
                        n,
                        *out_features,
                        1,
                        dy,
                        &grads[p.bias.unwrap()],
                    ));
                    // dW [out, F] = dyᵀ [out, B] · x [B, F].
                    let mut mm = MatmulParams::row_major(1, *out_features, features, n);
                    mm.a_row = 1;
                    mm.a_k = *out_features as u32;
                    train_launches.push(matmul::launch(ctx, &mm, dy, x, None, &grads[p.weight]));
                    if let Some(dx) = dx {
                        // dx [B, F] = dy [B, out] · W [out, F].
                        let mm = MatmulParams::row_major(1, n, features, *out_features);
                        train_launches.push(matmul::launch(ctx, &mm, dy, &params[p.weight], None, dx));
                    }
                }
            }
        }
        let sgd_launches = (0..params.len())
            .map(|p| sgd::update(ctx, sgd_config, &grads[p], &params[p], &momentum[p]))
            .collect();

        let memory_bytes = params
            .iter()
            .chain(&grads)
            .chain(&momentum)
            .chain(&activations)
            .chain(&scratch)
            .map(|b| b.size_bytes())
            .sum::<u64>()
            + running
                .iter()
                .map(|(m, v)| m.size_bytes() + v.size_bytes())
                .sum::<u64>()
            + argmax.iter().map(|b| b.size_bytes()).sum::<u64>();
        Self {
            model,
            batch,
            shapes,
            params,
            grads,
            momentum,
            running,
            activations,
            labels,
            loss,
            _scratch: scratch,
            _argmax: argmax,
            train_launches,
            eval_launches,
            sgd_launches,
            sgd_config,
            memory_bytes,
        }
    }

    /// Uploads a batch: images [B, 3, 32, 32] in [0, 1] and labels.
    pub fn set_batch(&self, ctx: &GpuContext, images: &[f32], labels: &[u32]) {
        self.activations[0].write(ctx, images);
        self.labels.write(ctx, labels);
    }

    /// Records one training step (forward, loss, backward, SGD) and submits it.
    pub fn submit_train_step(&self, ctx: &GpuContext) -> wgpu::SubmissionIndex {
        ctx.submit_all("train step", self.train_launches.iter().chain(&self.sgd_launches))
    }

    /// Records the inference forward and loss (running statistics) and submits it.
    pub fn submit_eval(&self, ctx: &GpuContext) -> wgpu::SubmissionIndex {
        ctx.submit_all("evaluation", &self.eval_launches)
    }

    /// Changes the learning rate (and the other SGD settings) of later steps.
    pub fn set_sgd(&mut self, ctx: &GpuContext, config: SgdConfig) {
        self.sgd_config = config;
        for (launch, p) in self.sgd_launches.iter().zip(&self.params) {
            launch.set_params(ctx, &sgd::SgdParams::new(p.len(), config));
        }
    }

    pub fn sgd(&self) -> SgdConfig {
        self.sgd_config
    }

    /// Launches of one training step, for timing each kernel.
    pub fn step_launches(&self) -> impl Iterator<Item = &Launch> {
        self.train_launches.iter().chain(&self.sgd_launches)
    }
}

/// y [B, out] = x [B, F] · Wᵀ [F, out] + bias.
fn linear_forward_params(batch: usize, features: usize, out: usize) -> MatmulParams {
    let mut mm = MatmulParams::row_major(1, batch, out, features).with_bias(Bias::PerColumn);
    mm.b_k = 1;
    mm.b_col = features as u32;
    mm
}
