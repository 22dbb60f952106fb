//! Recording a network's launch lists over its allocated buffers: forward (training and
//! inference), loss, backward layer by layer (each layer's launches are its op's, see
//! [`crate::model::op`]), and SGD. Recording allocates only the launches'
//! small uniform buffers and bind groups; a training step replays the lists.

use super::{Buffers, Plan};
use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::model::LayerSlots;
use crate::model::op::{DeviceGrad, DeviceLayer, StatisticsBuffers};
use crate::ops::batch_norm::{self, BnShape, DEFAULT_MOMENTUM, StepStatistics};
use crate::ops::cross_entropy;
use crate::ops::finite_check::{self, NonFinite};
use crate::ops::sgd::{self, SgdConfig};

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
    };
    // One launch per arena: every parameter at once.
    let sgd = (0..net.param_arenas.len())
        .map(|k| {
            let buffers = sgd::SgdBuffers {
                grad: &net.grad_arenas[k],
                w: &net.param_arenas[k],
                v: &net.momentum_arenas[k],
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
}

impl Recorder<'_> {
    fn slot(&self, k: usize) -> &GpuBuffer<f32> {
        &self.net.slots[k]
    }

    /// Layer `i`'s buffers, as its op's launches take them.
    fn layer(&self, i: usize) -> DeviceLayer<'_> {
        let (net, plan) = (self.net, self.plan);
        let layer = &plan.model.layers[i];
        let p = self.slots[i];
        let owned = || [p.weight, p.bias].into_iter().flatten();
        DeviceLayer {
            ctx: self.ctx,
            kernels: &plan.kernels,
            inputs: layer.inputs.iter().map(|&t| &net.activations[t]).collect(),
            input_shapes: layer.inputs.iter().map(|&t| plan.shapes[t]).collect(),
            output: &net.activations[i + 1],
            output_shape: plan.shapes[i + 1],
            params: owned().map(|k| &net.params[k]).collect(),
            grads: owned().map(|k| &net.grads[k]).collect(),
            statistics: p.batch_norm.map(|s| StatisticsBuffers {
                running_mean: &net.running[s].0,
                running_var: &net.running[s].1,
                saved: &net.saved[s],
            }),
            argmax: p.max_pool.map(|k| &net.argmax[k]),
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
            let Some(dy_slot) = self.plan.gradients.tensor_slot[i + 1] else {
                continue; // nothing downstream needs this layer's gradient
            };
            // A recomputed block's intermediates, again, before its backward.
            for &j in &self.plan.activations.rerun_before[i] {
                let op = self.plan.model.layers[j].op.layer();
                launches.push(op.forward(&self.layer(j), Some(StepStatistics::Rerun)));
            }
            let target = self.plan.gradients.input_grad_target[i];
            let grad = DeviceGrad {
                dy: self.slot(dy_slot),
                dx: target.map(|(slot, add_into)| (self.slot(slot), add_into)),
                accumulate,
            };
            let op = self.plan.model.layers[i].op.layer();
            launches.extend(op.backward(&self.layer(i), &grad));
        }
        launches
    }

    /// The step's finiteness checks, after its last backward: every parameter gradient (one
    /// launch per arena), and every batch norm's statistics of the step (what the running
    /// statistics move towards).
    fn finite_checks(&self) -> Vec<Launch> {
        let net = self.net;
        let gradients = net
            .grad_arenas
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
        (0..self.plan.model.layers.len())
            .map(|i| {
                self.plan.model.layers[i]
                    .op
                    .layer()
                    .forward(&self.layer(i), train)
            })
            .collect()
    }
}
