//! The scheduler: turns a [`Model`] and a batch size into GPU buffers, planned once, and the
//! launch lists of a training step (forward, loss, backward, SGD) and of inference.
//!
//! A batch too large for the device's per-buffer limit runs as equal micro-batches: each one's
//! forward and backward add into the parameter gradients (the loss gradient is divided by the
//! whole batch), and one SGD update follows. Batch norm then normalizes each micro-batch by its
//! own statistics and updates the running statistics once per micro-batch.

mod kernel_cache;
mod plan;
mod tune;

pub use kernel_cache::KernelCache;
pub use plan::{GradientPlan, MemoryReport, choose_micro_batch, mib};
pub use tune::{TuneReport, TunedLaunch, Tuning, choose_kernels};

use crate::gpu::{GpuBuffer, GpuContext, GpuError, Launch};
use crate::model::{Model, Op, Shape};
use crate::ops::batch_norm::{self, BnShape, Relu};
use crate::ops::conv2d;
use crate::ops::matmul::{self, Bias, MatmulParams};
use crate::ops::max_pool::{self, MaxPool2d};
use crate::ops::sgd::{self, SgdConfig};
use crate::ops::upsample::{self, UpsampleNearest};
use crate::ops::{add, bias_grad, cross_entropy, global_avg_pool, relu};

pub const BN_MOMENTUM: f32 = 0.1;
pub const BN_EPS: f32 = 1e-5;

/// Why a configuration cannot run on the device.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "one image of {model} needs a {need:.1} MiB buffer, more than this device binds ({limit:.1} MiB per buffer); choose a smaller model or the CIFAR stem"
    )]
    TooLarge { model: String, need: f64, limit: f64 },
    #[error("batch size must be at least 1")]
    EmptyBatch,
    #[error("{expected} initial tensors expected (one per parameter), got {got}")]
    WrongParameters { expected: usize, got: usize },
}

/// Mean loss and correct predictions of one training step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub loss: f32,
    pub correct: usize,
}

/// Parameters, momentum buffers and running statistics, copied to the CPU (checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkState {
    /// In `Model::parameters()` order.
    pub params: Vec<Vec<f32>>,
    pub momentum: Vec<Vec<f32>>,
    /// (mean, var) per batch norm, in `Model::batch_norms()` order.
    pub running: Vec<(Vec<f32>, Vec<f32>)>,
}

/// Every buffer of a model at one (micro-)batch size, and the launches that use them.
pub struct Network {
    pub model: Model,
    /// Images per training step, and per micro-batch run on the device.
    pub batch: usize,
    pub micro_batch: usize,
    /// Shapes of every tensor at the micro-batch size.
    pub shapes: Vec<Shape>,
    /// Parameters, their gradients and SGD momentum buffers, in `Model::parameters()` order.
    pub params: Vec<GpuBuffer<f32>>,
    pub grads: Vec<GpuBuffer<f32>>,
    pub momentum: Vec<GpuBuffer<f32>>,
    /// Running mean and variance of each batch norm, in `Model::batch_norms()` order.
    pub running: Vec<(GpuBuffer<f32>, GpuBuffer<f32>)>,
    /// Activations, indexed by tensor id (0 is the input micro-batch).
    pub activations: Vec<GpuBuffer<f32>>,
    pub labels: GpuBuffer<u32>,
    /// [mean loss, correct count] of the last micro-batch.
    pub loss: GpuBuffer<f32>,
    /// Gradient slots of activations, saved statistics and argmax indices: kept alive for the
    /// launches that bind them.
    _slots: Vec<GpuBuffer<f32>>,
    _saved: Vec<GpuBuffer<f32>>,
    _argmax: Vec<GpuBuffer<u32>>,
    /// Forward, loss and backward of the first micro-batch (parameter gradients overwritten)
    /// and of later ones (added to); empty when there is one micro-batch.
    train_first: Vec<Launch>,
    train_accumulate: Vec<Launch>,
    eval_launches: Vec<Launch>,
    sgd_launches: Vec<Launch>,
    sgd_config: SgdConfig,
    pub memory: MemoryReport,
}

/// What a layer's parameters are, by index into the parameter list.
#[derive(Clone, Copy)]
struct ParamIndex {
    weight: usize,
    bias: Option<usize>,
}

/// Per layer: its parameters, its batch norm's index, its saved statistics and argmax buffers.
struct LayerBuffers {
    params: Vec<Option<ParamIndex>>,
    batch_norm: Vec<Option<usize>>,
    saved: Vec<Option<usize>>,
    argmax: Vec<Option<usize>>,
}

impl LayerBuffers {
    fn new(model: &Model) -> Self {
        let mut b = Self {
            params: Vec::new(),
            batch_norm: Vec::new(),
            saved: Vec::new(),
            argmax: Vec::new(),
        };
        let (mut next, mut bns, mut pools) = (0, 0, 0);
        for layer in &model.layers {
            let params = match &layer.op {
                Op::Conv { bias, .. } => Some(1 + *bias as usize),
                Op::BatchNorm { .. } | Op::Linear { .. } => Some(2),
                _ => None,
            };
            b.params.push(params.map(|count| {
                next += count;
                ParamIndex {
                    weight: next - count,
                    bias: (count == 2).then_some(next - 1),
                }
            }));
            let is_bn = matches!(layer.op, Op::BatchNorm { .. });
            b.batch_norm.push(is_bn.then(|| {
                bns += 1;
                bns - 1
            }));
            b.saved.push(*b.batch_norm.last().unwrap());
            let is_pool = matches!(layer.op, Op::MaxPool { .. });
            b.argmax.push(is_pool.then(|| {
                pools += 1;
                pools - 1
            }));
        }
        b
    }
}

impl Network {
    /// Plans and allocates every buffer and records the launch lists, splitting the batch into
    /// micro-batches where the device's per-buffer limit requires it. `initial` holds the
    /// parameter values in `Model::parameters()` order.
    pub fn new(
        ctx: &GpuContext,
        model: Model,
        batch: usize,
        initial: &[Vec<f32>],
        sgd_config: SgdConfig,
    ) -> Result<Self, ScheduleError> {
        Self::with_micro_batch_limit(ctx, model, batch, None, initial, sgd_config)
    }

    /// The largest buffer this device binds, in bytes.
    pub fn buffer_limit(ctx: &GpuContext) -> u64 {
        let limits = &ctx.limits;
        limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
    }

    /// [`Network::new`] with micro-batches of at most `max_micro_batch` images.
    pub fn with_micro_batch_limit(
        ctx: &GpuContext,
        model: Model,
        batch: usize,
        max_micro_batch: Option<usize>,
        initial: &[Vec<f32>],
        sgd_config: SgdConfig,
    ) -> Result<Self, ScheduleError> {
        if batch == 0 {
            return Err(ScheduleError::EmptyBatch);
        }
        let specs = model.parameters();
        if initial.len() != specs.len() {
            return Err(ScheduleError::WrongParameters {
                expected: specs.len(),
                got: initial.len(),
            });
        }
        let limit = Self::buffer_limit(ctx);
        let micro_batch = choose_micro_batch(&model, batch, limit, max_micro_batch).ok_or_else(|| {
            ScheduleError::TooLarge {
                model: format!("{} ({:?} stem)", model.variant.name(), model.stem),
                need: mib(MemoryReport::new(&model, batch, 1).largest_buffer),
                limit: mib(limit),
            }
        })?;
        let memory = MemoryReport::new(&model, batch, micro_batch);
        let shapes = model.shapes(micro_batch);
        let numel = |s: &Shape| s.iter().product::<usize>();
        let params: Vec<_> = specs
            .iter()
            .zip(initial)
            .map(|(spec, values)| GpuBuffer::from_slice(ctx, &spec.name, values))
            .collect();
        let grads = specs
            .iter()
            .map(|s| GpuBuffer::zeros(ctx, &format!("grad {}", s.name), s.len()))
            .collect();
        let momentum = specs
            .iter()
            .map(|s| GpuBuffer::zeros(ctx, &format!("momentum {}", s.name), s.len()))
            .collect();
        let running = model
            .batch_norms()
            .iter()
            .map(|(name, c)| {
                (
                    GpuBuffer::zeros(ctx, &format!("{name}.running_mean"), *c),
                    GpuBuffer::from_slice(ctx, &format!("{name}.running_var"), &vec![1.0; *c]),
                )
            })
            .collect();
        let activations = shapes
            .iter()
            .zip(model.stored_tensors())
            .enumerate()
            .map(|(t, (s, stored))| match stored {
                true => GpuBuffer::zeros(ctx, &format!("activation {t}"), numel(s)),
                false => GpuBuffer::zeros(ctx, &format!("activation {t} (not stored: ReLU fused)"), 1),
            })
            .collect();
        let plan = GradientPlan::new(&model, &shapes);
        let slots = plan
            .slot_len
            .iter()
            .enumerate()
            .map(|(k, &len)| GpuBuffer::zeros(ctx, &format!("activation gradient slot {k}"), len))
            .collect();
        let mut saved = Vec::new();
        let mut argmax = Vec::new();
        for (i, layer) in model.layers.iter().enumerate() {
            if matches!(layer.op, Op::BatchNorm { .. }) {
                let c = shapes[i][1];
                saved.push(GpuBuffer::zeros(
                    ctx,
                    &format!("layer {i} saved mean and invstd"),
                    2 * c,
                ));
            }
            if matches!(layer.op, Op::MaxPool { .. }) {
                let len = numel(&shapes[i + 1]);
                argmax.push(GpuBuffer::<u32>::zeros(ctx, &format!("layer {i} argmax"), len));
            }
        }
        let mut net = Self {
            labels: GpuBuffer::zeros(ctx, "labels", micro_batch),
            loss: GpuBuffer::zeros(ctx, "loss and correct count", 2),
            model,
            batch,
            micro_batch,
            shapes,
            params,
            grads,
            momentum,
            running,
            activations,
            _slots: slots,
            _saved: saved,
            _argmax: argmax,
            train_first: Vec::new(),
            train_accumulate: Vec::new(),
            eval_launches: Vec::new(),
            sgd_launches: Vec::new(),
            sgd_config,
            memory,
        };
        let layers = LayerBuffers::new(&net.model);
        let recorder = Recorder {
            ctx,
            net: &net,
            layers: &layers,
            plan: &plan,
            fused_relu: net.model.relu_fused_into_batch_norm(),
        };
        let train_first = recorder.train(false);
        let train_accumulate = if micro_batch < batch {
            recorder.train(true)
        } else {
            Vec::new()
        };
        let eval_launches = recorder.forward(false);
        let sgd_launches = (0..net.params.len())
            .map(|p| sgd::update(ctx, sgd_config, &net.grads[p], &net.params[p], &net.momentum[p]))
            .collect();
        net.train_first = train_first;
        net.train_accumulate = train_accumulate;
        net.eval_launches = eval_launches;
        net.sgd_launches = sgd_launches;
        Ok(net)
    }

    /// Runs one training step on a batch (images [B, 3, 32, 32] in [0, 1], labels [B]) and
    /// returns its mean loss and correct count.
    pub async fn train_step(
        &self,
        ctx: &GpuContext,
        images: &[f32],
        labels: &[u32],
    ) -> Result<StepStats, GpuError> {
        assert_eq!(
            labels.len(),
            self.batch,
            "train step: one label per image of the batch"
        );
        assert_eq!(
            images.len(),
            self.batch * IMAGE_LEN,
            "train step: image data length"
        );
        let m = self.micro_batch;
        let mut loss_sum = 0.0;
        let mut correct = 0;
        for k in 0..self.batch / m {
            self.activations[0].write(ctx, &images[k * m * IMAGE_LEN..(k + 1) * m * IMAGE_LEN]);
            self.labels.write(ctx, &labels[k * m..(k + 1) * m]);
            let last = (k + 1) * m == self.batch;
            let launches = if k == 0 {
                &self.train_first
            } else {
                &self.train_accumulate
            };
            let sgd = if last { &self.sgd_launches[..] } else { &[] };
            ctx.submit_all("train step", launches.iter().chain(sgd));
            let [loss, right] = self.loss.read(ctx).await?[..] else {
                unreachable!("the loss buffer holds two values")
            };
            loss_sum += loss;
            correct += right as usize;
        }
        Ok(StepStats {
            loss: loss_sum / (self.batch / m) as f32,
            correct,
        })
    }

    /// Logits [count, classes] of `count` images in inference mode (running statistics); any
    /// count, run in chunks of the micro-batch size.
    pub async fn predict(&self, ctx: &GpuContext, images: &[f32]) -> Result<Vec<f32>, GpuError> {
        assert_eq!(images.len() % IMAGE_LEN, 0, "predict: whole images expected");
        let count = images.len() / IMAGE_LEN;
        let m = self.micro_batch;
        let classes = self.model.classes;
        let mut logits = Vec::with_capacity(count * classes);
        let mut chunk = vec![0.0; m * IMAGE_LEN];
        for start in (0..count).step_by(m) {
            let n = m.min(count - start);
            chunk[..n * IMAGE_LEN].copy_from_slice(&images[start * IMAGE_LEN..(start + n) * IMAGE_LEN]);
            chunk[n * IMAGE_LEN..].fill(0.0);
            self.activations[0].write(ctx, &chunk);
            ctx.submit_all("inference", &self.eval_launches);
            let out = self.activations[self.model.output()].read(ctx).await?;
            logits.extend_from_slice(&out[..n * classes]);
        }
        Ok(logits)
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

    /// Copies parameters, momentum and running statistics to the CPU.
    pub async fn read_state(&self, ctx: &GpuContext) -> Result<NetworkState, GpuError> {
        let mut state = NetworkState {
            params: Vec::with_capacity(self.params.len()),
            momentum: Vec::with_capacity(self.params.len()),
            running: Vec::with_capacity(self.running.len()),
        };
        for (p, v) in self.params.iter().zip(&self.momentum) {
            state.params.push(p.read(ctx).await?);
            state.momentum.push(v.read(ctx).await?);
        }
        for (mean, var) in &self.running {
            state.running.push((mean.read(ctx).await?, var.read(ctx).await?));
        }
        Ok(state)
    }

    /// Overwrites parameters, momentum and running statistics (shapes must match the model).
    pub fn write_state(&self, ctx: &GpuContext, state: &NetworkState) {
        assert_eq!(
            state.params.len(),
            self.params.len(),
            "write state: parameter count"
        );
        assert_eq!(
            state.running.len(),
            self.running.len(),
            "write state: batch norm count"
        );
        for ((p, v), (values, momentum)) in self
            .params
            .iter()
            .zip(&self.momentum)
            .zip(state.params.iter().zip(&state.momentum))
        {
            p.write(ctx, values);
            v.write(ctx, momentum);
        }
        for ((mean, var), (m, v)) in self.running.iter().zip(&state.running) {
            mean.write(ctx, m);
            var.write(ctx, v);
        }
    }

    /// Launches of one training step on one micro-batch, for timing each kernel.
    pub fn step_launches(&self) -> impl Iterator<Item = &Launch> {
        self.train_first.iter().chain(&self.sgd_launches)
    }
}

/// Floats of one 3×32×32 input image.
pub const IMAGE_LEN: usize = 3 * 32 * 32;

/// Records launch lists over a network's buffers.
struct Recorder<'a> {
    ctx: &'a GpuContext,
    net: &'a Network,
    layers: &'a LayerBuffers,
    plan: &'a GradientPlan,
    /// Per layer: a ReLU that runs inside the batch norm before it.
    fused_relu: Vec<bool>,
}

impl Recorder<'_> {
    fn slot(&self, k: usize) -> &GpuBuffer<f32> {
        &self.net._slots[k]
    }

    /// Whether layer `i` (a batch norm) runs the ReLU that follows it.
    fn relu_after(&self, i: usize) -> Relu {
        match self.fused_relu.get(i + 1) {
            Some(true) => Relu::Fused,
            _ => Relu::None,
        }
    }

    /// Forward, loss and backward of one micro-batch; parameter gradients are added to when
    /// `accumulate`, else overwritten.
    fn train(&self, accumulate: bool) -> Vec<Launch> {
        let (ctx, net) = (self.ctx, self.net);
        let mut launches = self.forward(true);
        let logits = &net.activations[net.model.output()];
        let grad_logits = self.slot(self.plan.tensor_slot[net.model.output()].unwrap());
        let (m, classes) = (net.micro_batch, net.model.classes);
        launches.push(cross_entropy::backward(
            ctx,
            m,
            classes,
            net.batch,
            logits,
            &net.labels,
            grad_logits,
        ));
        for i in (0..net.model.layers.len()).rev() {
            self.backward_layer(i, accumulate, &mut launches);
        }
        launches
    }

    /// Forward in training mode (batch statistics) or inference mode (running statistics),
    /// then the loss.
    fn forward(&self, train: bool) -> Vec<Launch> {
        let (ctx, net) = (self.ctx, self.net);
        let mut launches = Vec::new();
        for (i, layer) in net.model.layers.iter().enumerate() {
            if self.fused_relu[i] {
                continue; // the batch norm before it applied it
            }
            let x = &net.activations[layer.inputs[0]];
            let relu = self.relu_after(i);
            // A batch norm with its ReLU fused writes the ReLU's output.
            let y = &net.activations[i + 1 + (relu == Relu::Fused) as usize];
            let [n, c, h, w] = net.shapes[layer.inputs[0]];
            let p = self.layers.params[i];
            let launch = match &layer.op {
                Op::Upsample { size } => {
                    let shape = UpsampleNearest::new(n, c, (h, w), (*size, *size));
                    upsample::forward(ctx, &shape, x, y)
                }
                Op::Conv { .. } => {
                    let shape = layer.op.conv_shape(net.shapes[layer.inputs[0]]).unwrap();
                    let p = p.unwrap();
                    let bias = p.bias.map(|b| &net.params[b]);
                    conv2d::forward(ctx, &shape, x, &net.params[p.weight], bias, y)
                }
                Op::BatchNorm { .. } => {
                    let p = p.unwrap();
                    let (rm, rv) = &net.running[self.layers.batch_norm[i].unwrap()];
                    let s = self.layers.saved[i].unwrap();
                    let shape = BnShape::new(n, c, h * w);
                    let (gamma, beta) = (&net.params[p.weight], &net.params[p.bias.unwrap()]);
                    if train {
                        let buffers = batch_norm::TrainForwardBuffers {
                            x,
                            gamma,
                            beta,
                            y,
                            saved: &net._saved[s],
                            running_mean: rm,
                            running_var: rv,
                        };
                        batch_norm::train_forward(ctx, shape, BN_MOMENTUM, BN_EPS, relu, &buffers)
                    } else {
                        let buffers = batch_norm::InferenceForwardBuffers {
                            x,
                            gamma,
                            beta,
                            running_mean: rm,
                            running_var: rv,
                            y,
                        };
                        batch_norm::inference_forward(ctx, shape, BN_EPS, relu, &buffers)
                    }
                }
                Op::Relu => relu::forward(ctx, x, y),
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let shape = MaxPool2d::new(n, c, h, w, *kernel, *stride, *padding);
                    let argmax = &net._argmax[self.layers.argmax[i].unwrap()];
                    max_pool::forward(ctx, &shape, x, y, argmax)
                }
                Op::Add => add::forward(ctx, x, &net.activations[layer.inputs[1]], y),
                Op::GlobalAvgPool => global_avg_pool::forward(ctx, [n, c, h, w], x, y),
                Op::Linear { out_features, .. } => {
                    let p = p.unwrap();
                    let mm = LinearGemms::new(n, c * h * w, *out_features, false);
                    let bias = Some(&net.params[p.bias.unwrap()]);
                    matmul::launch(ctx, &mm.forward, x, &net.params[p.weight], bias, y)
                }
            };
            launches.push(launch);
        }
        let logits = &net.activations[net.model.output()];
        let (m, classes) = (net.micro_batch, net.model.classes);
        launches.push(cross_entropy::forward(
            ctx,
            m,
            classes,
            logits,
            &net.labels,
            &net.loss,
        ));
        launches
    }

    /// Backward of layer `i`: its parameter gradients and the gradient of its input.
    fn backward_layer(&self, i: usize, accumulate: bool, launches: &mut Vec<Launch>) {
        let (ctx, net) = (self.ctx, self.net);
        let Some(dy_slot) = self.plan.tensor_slot[i + 1] else {
            return;
        };
        let layer = &net.model.layers[i];
        let dy = self.slot(dy_slot);
        let x = &net.activations[layer.inputs[0]];
        let [n, c, h, w] = net.shapes[layer.inputs[0]];
        let target = self.plan.input_grad_target[i];
        let dx = target.map(|(slot, _)| self.slot(slot));
        let p = self.layers.params[i];
        if self.fused_relu[i] {
            return; // the batch norm before it masks the gradient
        }
        match &layer.op {
            Op::Upsample { size } => {
                if let Some(dx) = dx {
                    let shape = UpsampleNearest::new(n, c, (h, w), (*size, *size));
                    launches.push(upsample::backward(ctx, &shape, dy, dx));
                }
            }
            Op::Conv { .. } => {
                let shape = layer.op.conv_shape(net.shapes[layer.inputs[0]]).unwrap();
                let p = p.unwrap();
                if let Some(b) = p.bias {
                    let [_, co, oh, ow] = net.shapes[i + 1];
                    launches.push(bias_grad::backward(
                        ctx,
                        (n, co, oh * ow),
                        dy,
                        &net.grads[b],
                        accumulate,
                    ));
                }
                let dw = &net.grads[p.weight];
                launches.push(conv2d::weight_grad(ctx, &shape, dy, x, dw, accumulate));
                if let (Some(dx), Some((_, add_into))) = (dx, target) {
                    let w = &net.params[p.weight];
                    launches.push(conv2d::input_grad(ctx, &shape, dy, w, dx, add_into));
                }
            }
            Op::BatchNorm { .. } => {
                let p = p.unwrap();
                let s = self.layers.saved[i].unwrap();
                let buffers = batch_norm::BackwardBuffers {
                    dy,
                    x,
                    gamma: &net.params[p.weight],
                    beta: &net.params[p.bias.unwrap()],
                    saved: &net._saved[s],
                    dx: dx.expect("a batch norm's input needs a gradient"),
                    dgamma: &net.grads[p.weight],
                    dbeta: &net.grads[p.bias.unwrap()],
                };
                let shape = BnShape::new(n, c, h * w);
                let relu = self.relu_after(i);
                launches.push(batch_norm::backward(ctx, shape, relu, &buffers, accumulate));
            }
            Op::Relu => {
                if let Some(dx) = dx {
                    launches.push(relu::backward(ctx, &net.activations[i + 1], dy, dx));
                }
            }
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => {
                if let Some(dx) = dx {
                    let shape = MaxPool2d::new(n, c, h, w, *kernel, *stride, *padding);
                    let argmax = &net._argmax[self.layers.argmax[i].unwrap()];
                    launches.push(max_pool::backward(ctx, &shape, argmax, dy, dx));
                }
            }
            // The residual add's inputs share its output gradient slot: nothing to run.
            Op::Add => {}
            Op::GlobalAvgPool => {
                if let Some(dx) = dx {
                    launches.push(global_avg_pool::backward(ctx, [n, c, h, w], dy, dx));
                }
            }
            Op::Linear { out_features, .. } => {
                let p = p.unwrap();
                let features = c * h * w;
                let db = &net.grads[p.bias.unwrap()];
                launches.push(bias_grad::backward(
                    ctx,
                    (n, *out_features, 1),
                    dy,
                    db,
                    accumulate,
                ));
                let mm = LinearGemms::new(n, features, *out_features, accumulate);
                launches.push(matmul::launch(
                    ctx,
                    &mm.weight_grad,
                    dy,
                    x,
                    None,
                    &net.grads[p.weight],
                ));
                if let Some(dx) = dx {
                    launches.push(matmul::launch(
                        ctx,
                        &mm.input_grad,
                        dy,
                        &net.params[p.weight],
                        None,
                        dx,
                    ));
                }
            }
        }
    }
}

/// The three GEMMs of a linear layer: x [B, F], W [out, F], bias [out], y [B, out].
pub struct LinearGemms {
    /// y [B, out] = x [B, F] · Wᵀ [F, out] + bias.
    pub forward: MatmulParams,
    /// dW [out, F] (+)= dyᵀ [out, B] · x [B, F].
    pub weight_grad: MatmulParams,
    /// dx [B, F] = dy [B, out] · W [out, F].
    pub input_grad: MatmulParams,
}

impl LinearGemms {
    pub fn new(batch: usize, features: usize, out: usize, accumulate: bool) -> Self {
        let mut forward = MatmulParams::row_major(1, batch, out, features).with_bias(Bias::PerColumn);
        forward.b_k = 1;
        forward.b_col = features as u32;
        let mut weight_grad = MatmulParams::row_major(1, out, features, batch).accumulating(accumulate);
        weight_grad.a_row = 1;
        weight_grad.a_k = out as u32;
        Self {
            forward,
            weight_grad,
            input_grad: MatmulParams::row_major(1, batch, features, out),
        }
    }
}
