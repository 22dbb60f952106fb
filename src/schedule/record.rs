//! Recording a network's launch lists over its allocated buffers: forward (training and
//! inference), loss, backward layer by layer, and SGD. Recording allocates only the launches'
//! small uniform buffers and bind groups; a training step replays the lists.

use super::{Buffers, Plan};
use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::model::{LayerSlots, Op};
use crate::ops::batch_norm::{self, BnShape, DEFAULT_EPS, DEFAULT_MOMENTUM, Relu, StepStatistics};
use crate::ops::conv2d;
use crate::ops::finite_check::{self, NonFinite};
use crate::ops::linear::LinearGemms;
use crate::ops::matmul;
use crate::ops::max_pool::{self, MaxPoolShape};
use crate::ops::sgd::{self, SgdConfig};
use crate::ops::upsample::{self, UpsampleShape};
use crate::ops::{add, bias_grad, cross_entropy, global_avg_pool, relu};

/// Every launch list of a network, recorded once over its buffers.
pub(super) struct Launches {
    /// Forward, loss and backward of the first micro-batch (parameter gradients overwritten)
    /// and of later ones (added to); the second is empty when there is one micro-batch.
    pub train_first: Vec<Launch>,
    pub train_accumulate: Vec<Launch>,
    /// The inference forward, up to the logits.
    pub eval: Vec<Launch>,
    /// Once per step, after the last backward: the finiteness checks, then SGD and each batch
    /// norm's running-statistic update (which change nothing where a check failed).
    pub check: Vec<Launch>,
    pub sgd: Vec<Launch>,
    pub running: Vec<Launch>,
    /// Sums of squares of every parameter and gradient ([`Network::layer_norms`]).
    pub norms: Vec<Launch>,
}

/// Records every launch list of a network planned as `plan` over `buffers`: the first
/// micro-batch's training launches, later micro-batches' (adding into the gradients),
/// inference, and once per step the finiteness checks, SGD and the running statistics' update
/// (the last two skipped on the device where a check failed).
pub(super) fn record(ctx: &GpuContext, plan: &Plan, net: &Buffers, sgd_config: SgdConfig) -> Launches {
    let recorder = Recorder {
        ctx,
        net,
        plan,
        slots: plan.model.layer_slots(),
        fused_relu: plan.model.relu_fused_into_batch_norm(),
    };
    let sgd = (0..net.params.len())
        .map(|p| {
            let buffers = sgd::SgdBuffers {
                grad: &net.grads[p],
                w: &net.params[p],
                v: &net.momentum[p],
                status: &net.status,
            };
            sgd::update(ctx, sgd_config, &buffers)
        })
        .collect();
    Launches {
        train_first: recorder.train(false),
        train_accumulate: match plan.micro_batch < plan.batch {
            true => recorder.train(true),
            false => Vec::new(),
        },
        eval: recorder.forward(None),
        check: recorder.finite_checks(),
        sgd,
        running: recorder.running_updates(),
        norms: super::norms::norm_launches(ctx, &net.params, &net.grads, &net.norm_sums),
    }
}

/// Records launch lists over a network's buffers.
struct Recorder<'a> {
    ctx: &'a GpuContext,
    net: &'a Buffers,
    plan: &'a Plan,
    /// Per layer: its parameters, batch-norm and max-pool indices.
    slots: Vec<LayerSlots>,
    /// Per layer: a ReLU that runs inside the batch norm before it.
    fused_relu: Vec<bool>,
}

impl Recorder<'_> {
    fn slot(&self, k: usize) -> &GpuBuffer<f32> {
        &self.net.slots[k]
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
        let step = if accumulate {
            StepStatistics::Merge
        } else {
            StepStatistics::Start
        };
        let mut launches = self.forward(Some(step));
        let logits = &net.activations[self.plan.model.output()];
        let (m, classes) = (self.plan.micro_batch, self.plan.model.classes);
        launches.push(cross_entropy::forward(
            ctx,
            m,
            classes,
            logits,
            &net.labels,
            &net.status,
        ));
        let grad_logits = self.slot(self.plan.gradients.tensor_slot[self.plan.model.output()].unwrap());
        launches.push(cross_entropy::backward(
            ctx,
            m,
            classes,
            self.plan.batch,
            logits,
            &net.labels,
            grad_logits,
        ));
        for i in (0..self.plan.model.layers.len()).rev() {
            self.backward_layer(i, accumulate, &mut launches);
        }
        launches
    }

    /// The step's finiteness checks, after its last backward: every parameter gradient, and
    /// every batch norm's statistics of the step (what the running statistics move towards).
    fn finite_checks(&self) -> Vec<Launch> {
        let net = self.net;
        let gradients = net
            .grads
            .iter()
            .map(|g| finite_check::check(self.ctx, g, NonFinite::GRADIENT, &net.status));
        let statistics = net
            .saved
            .iter()
            .map(|s| finite_check::check(self.ctx, s, NonFinite::STATISTICS, &net.status));
        gradients.chain(statistics).collect()
    }

    /// Each batch norm's running-statistic update from the step's statistics of its
    /// micro-batches (nothing changes in a step flagged as not finite).
    fn running_updates(&self) -> Vec<Launch> {
        let net = self.net;
        self.plan
            .model
            .layers
            .iter()
            .zip(&self.slots)
            .filter_map(|(layer, p)| {
                let s = p.batch_norm?;
                let [n, c, h, w] = self.plan.shapes[layer.inputs[0]];
                let (mean, var) = &net.running[s];
                let shape = BnShape::new(n, c, h * w);
                let buffers = batch_norm::RunningUpdateBuffers {
                    saved: &net.saved[s],
                    running_mean: mean,
                    running_var: var,
                    status: &net.status,
                };
                Some(batch_norm::running_update(
                    self.ctx,
                    shape,
                    DEFAULT_MOMENTUM,
                    &buffers,
                ))
            })
            .collect()
    }

    /// Forward in training mode (batch statistics, treated as `step` says) or, with `None`,
    /// inference mode (running statistics), up to the logits.
    fn forward(&self, train: Option<StepStatistics>) -> Vec<Launch> {
        let (ctx, net) = (self.ctx, self.net);
        let mut launches = Vec::new();
        for (i, layer) in self.plan.model.layers.iter().enumerate() {
            if self.fused_relu[i] {
                continue; // the batch norm before it applied it
            }
            let x = &net.activations[layer.inputs[0]];
            let relu = self.relu_after(i);
            // A batch norm with its ReLU fused writes the ReLU's output.
            let y = &net.activations[i + 1 + (relu == Relu::Fused) as usize];
            let [n, c, h, w] = self.plan.shapes[layer.inputs[0]];
            let p = self.slots[i];
            let launch = match &layer.op {
                Op::Upsample { size } => {
                    let shape = UpsampleShape::new(n, c, (h, w), (*size, *size));
                    upsample::forward(ctx, &shape, x, y)
                }
                Op::Conv { .. } => {
                    let shape = layer.op.conv_shape(self.plan.shapes[layer.inputs[0]]).unwrap();
                    let bias = p.bias.map(|b| &net.params[b]);
                    conv2d::forward(
                        ctx,
                        &self.plan.kernels,
                        &shape,
                        x,
                        &net.params[p.weight.expect("a weight")],
                        bias,
                        y,
                    )
                }
                Op::BatchNorm { .. } => {
                    let s = p.batch_norm.unwrap();
                    let (rm, rv) = &net.running[s];
                    let shape = BnShape::new(n, c, h * w);
                    let (gamma, beta) = (
                        &net.params[p.weight.expect("a weight")],
                        &net.params[p.bias.unwrap()],
                    );
                    if let Some(step) = train {
                        let buffers = batch_norm::TrainForwardBuffers {
                            x,
                            gamma,
                            beta,
                            y,
                            saved: &net.saved[s],
                        };
                        batch_norm::train_forward(
                            ctx,
                            shape,
                            DEFAULT_MOMENTUM,
                            DEFAULT_EPS,
                            relu,
                            step,
                            &buffers,
                        )
                    } else {
                        let buffers = batch_norm::InferenceForwardBuffers {
                            x,
                            gamma,
                            beta,
                            running_mean: rm,
                            running_var: rv,
                            y,
                        };
                        batch_norm::inference_forward(ctx, shape, DEFAULT_EPS, relu, &buffers)
                    }
                }
                Op::Relu => relu::forward(ctx, x, y),
                Op::MaxPool {
                    kernel,
                    stride,
                    padding,
                } => {
                    let shape = MaxPoolShape::new(n, c, h, w, *kernel, *stride, *padding);
                    let argmax = &net.argmax[p.max_pool.unwrap()];
                    max_pool::forward(ctx, &shape, x, y, argmax)
                }
                Op::Add => add::forward(ctx, x, &net.activations[layer.inputs[1]], y),
                Op::GlobalAvgPool => global_avg_pool::forward(ctx, [n, c, h, w], x, y),
                Op::Linear { out_features, .. } => {
                    let mm = LinearGemms::new(n, c * h * w, *out_features, false);
                    let bias = Some(&net.params[p.bias.unwrap()]);
                    matmul::launch(
                        ctx,
                        &self.plan.kernels,
                        &mm.forward,
                        x,
                        &net.params[p.weight.expect("a weight")],
                        bias,
                        y,
                    )
                }
            };
            launches.push(launch);
        }
        launches
    }

    /// Backward of layer `i`: its parameter gradients and the gradient of its input.
    fn backward_layer(&self, i: usize, accumulate: bool, launches: &mut Vec<Launch>) {
        let (ctx, net) = (self.ctx, self.net);
        let Some(dy_slot) = self.plan.gradients.tensor_slot[i + 1] else {
            return;
        };
        let layer = &self.plan.model.layers[i];
        let dy = self.slot(dy_slot);
        let x = &net.activations[layer.inputs[0]];
        let [n, c, h, w] = self.plan.shapes[layer.inputs[0]];
        let target = self.plan.gradients.input_grad_target[i];
        let dx = target.map(|(slot, _)| self.slot(slot));
        let p = self.slots[i];
        if self.fused_relu[i] {
            return; // the batch norm before it masks the gradient
        }
        match &layer.op {
            Op::Upsample { size } => {
                if let Some(dx) = dx {
                    let shape = UpsampleShape::new(n, c, (h, w), (*size, *size));
                    launches.push(upsample::backward(ctx, &shape, dy, dx));
                }
            }
            Op::Conv { .. } => {
                let shape = layer.op.conv_shape(self.plan.shapes[layer.inputs[0]]).unwrap();
                if let Some(b) = p.bias {
                    let [_, co, oh, ow] = self.plan.shapes[i + 1];
                    launches.push(bias_grad::backward(
                        ctx,
                        (n, co, oh * ow),
                        dy,
                        &net.grads[b],
                        accumulate,
                    ));
                }
                let dw = &net.grads[p.weight.expect("a weight")];
                launches.push(conv2d::weight_grad(
                    ctx,
                    &self.plan.kernels,
                    &shape,
                    dy,
                    x,
                    dw,
                    accumulate,
                ));
                if let (Some(dx), Some((_, add_into))) = (dx, target) {
                    let w = &net.params[p.weight.expect("a weight")];
                    launches.push(conv2d::input_grad(
                        ctx,
                        &self.plan.kernels,
                        &shape,
                        dy,
                        w,
                        dx,
                        add_into,
                    ));
                }
            }
            Op::BatchNorm { .. } => {
                let s = p.batch_norm.unwrap();
                let buffers = batch_norm::BackwardBuffers {
                    dy,
                    x,
                    gamma: &net.params[p.weight.expect("a weight")],
                    beta: &net.params[p.bias.unwrap()],
                    saved: &net.saved[s],
                    dx: dx.expect("a batch norm's input needs a gradient"),
                    dgamma: &net.grads[p.weight.expect("a weight")],
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
                    let shape = MaxPoolShape::new(n, c, h, w, *kernel, *stride, *padding);
                    let argmax = &net.argmax[p.max_pool.unwrap()];
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
                    &self.plan.kernels,
                    &mm.weight_grad,
                    dy,
                    x,
                    None,
                    &net.grads[p.weight.expect("a weight")],
                ));
                if let Some(dx) = dx {
                    launches.push(matmul::launch(
                        ctx,
                        &self.plan.kernels,
                        &mm.input_grad,
                        dy,
                        &net.params[p.weight.expect("a weight")],
                        None,
                        dx,
                    ));
                }
            }
        }
    }
}
