//! A CPU reference executor of a whole [`Model`] in f64, to check the GPU trainer against.
//!
//! It walks the model's layer list exactly as the scheduler does, calling the `*_cpu`
//! reference of each op ([`crate::ops`]): tensor 0 is the input batch `[B, 3, 32, 32]`,
//! tensor `i + 1` the output of layer `i`, the last tensor the logits `[B, K, 1, 1]`.
//!
//! One training step ([`train_step`]):
//!
//! 1. forward in training mode: batch norm normalises with the batch statistics
//!    (`mean`, biased `var`, `eps` = [`BN_EPS`]);
//! 2. loss `L = (1/B)·Σ_b (logsumexp(z_b) − z_b[label_b])` on the logits `z` `[B, K]`;
//! 3. backward through every layer in reverse order. A tensor read by several layers (a
//!    residual block's input feeds both the main branch and the shortcut) receives the sum
//!    of their gradients, `∂L/∂t = Σ_consumers ∂L/∂t|_consumer`;
//! 4. running statistics `r ← (1 − m)·r + m·stat` with `m` = [`BN_MOMENTUM`] and the unbiased
//!    variance `var·M/(M − 1)`, `M = B·H·W`;
//! 5. SGD with momentum and weight decay on every parameter ([`sgd::update_cpu`]):
//!    `g = grad + wd·w; v = μ·v + g; w = w − lr·v`.
//!
//! Parameters are flat `Vec<f64>`s in [`Model::parameters`] order and layout: conv weight
//! `[Cout, Cin, k, k]` then its bias `[Cout]` if any; batch-norm weight γ `[C]` then bias β
//! `[C]`; linear weight `[out, in]` then bias `[out]`.

use super::{Model, Op, Shape};
use crate::ops::batch_norm::{self, BnShape};
use crate::ops::conv2d;
use crate::ops::max_pool::{self, MaxPoolShape};
use crate::ops::sgd::{self, SgdConfig};
use crate::ops::upsample::{self, UpsampleShape};
use crate::ops::{add, bias_grad, cross_entropy, global_avg_pool, linear, relu};
use crate::rng::Rng;

/// The trainer's batch-norm constants ([`batch_norm::DEFAULT_MOMENTUM`], [`batch_norm::DEFAULT_EPS`]) in f64.
pub const BN_MOMENTUM: f64 = batch_norm::DEFAULT_MOMENTUM as f64;
pub const BN_EPS: f64 = batch_norm::DEFAULT_EPS as f64;

/// Everything a training run carries from step to step.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceState {
    /// One flat vector per parameter, in [`Model::parameters`] order.
    pub params: Vec<Vec<f64>>,
    /// `(running_mean [C], running_var [C])` per batch norm, in [`Model::batch_norms`] order.
    pub running: Vec<(Vec<f64>, Vec<f64>)>,
    /// SGD momentum buffer per parameter, same lengths as `params`.
    pub momentum_buffers: Vec<Vec<f64>>,
}

impl ReferenceState {
    /// The given parameters, fresh running statistics (mean 0, variance 1, as PyTorch) and
    /// zero momentum buffers.
    pub fn from_params(model: &Model, params: Vec<Vec<f64>>) -> Self {
        check_params(model, &params);
        let running = model
            .batch_norms()
            .into_iter()
            .map(|(_, c)| (vec![0.0; c], vec![1.0; c]))
            .collect();
        let momentum_buffers = params.iter().map(|p| vec![0.0; p.len()]).collect();
        Self {
            params,
            running,
            momentum_buffers,
        }
    }

    /// Parameters drawn with each [`super::ParamSpec`]'s initialisation (as f32, widened), in
    /// order from `rng`, then as [`ReferenceState::from_params`].
    pub fn initial(model: &Model, rng: &mut Rng) -> Self {
        let params = model
            .parameters()
            .iter()
            .map(|spec| spec.initial_values(rng).into_iter().map(f64::from).collect())
            .collect();
        Self::from_params(model, params)
    }
}

/// What one training step reports.
#[derive(Clone, Debug, PartialEq)]
pub struct StepResult {
    /// Batch-mean softmax cross-entropy, before the update.
    pub loss: f64,
    /// Number of images whose argmax logit is the label (ties: first index).
    pub correct: f64,
    /// `∂L/∂w` per parameter, before the update (without weight decay).
    pub grads: Vec<Vec<f64>>,
}

/// Per-channel statistics of one batch norm in a training forward, each `[C]`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f64>,
    /// Biased: `Σ(x − mean)²/M`.
    pub var: Vec<f64>,
    /// `1/sqrt(var + eps)`.
    pub invstd: Vec<f64>,
    /// `M = B·H·W`, the values per channel.
    pub count: usize,
}

/// The activations of one training-mode forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Every tensor by id (index 0 the input, the last the logits), flat NCHW.
    pub tensors: Vec<Vec<f64>>,
    /// Batch statistics per batch norm, in [`Model::batch_norms`] order.
    pub batch_stats: Vec<BatchStats>,
    /// Per layer: the argmax of a max-pool layer (flat index in the input plane), else empty.
    argmax: Vec<Vec<u32>>,
}

impl Trace {
    /// The logits `[B, K]` (the last tensor, `[B, K, 1, 1]`).
    pub fn logits(&self) -> &[f64] {
        self.tensors.last().expect("the input tensor is always present")
    }
}

/// Loss, accuracy and the gradients of a batch, from a pure function of the parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients {
    pub loss: f64,
    pub correct: f64,
    /// `∂L/∂w` per parameter, in [`Model::parameters`] order.
    pub params: Vec<Vec<f64>>,
    /// `∂L/∂images`, `[B, 3, 32, 32]`.
    pub input: Vec<f64>,
}

/// Panics unless `params` has one vector of the right length per [`Model::parameters`] entry.
fn check_params(model: &Model, params: &[Vec<f64>]) {
    let specs = model.parameters();
    assert_eq!(params.len(), specs.len(), "reference: wrong number of parameters");
    for (p, spec) in params.iter().zip(&specs) {
        assert_eq!(
            p.len(),
            spec.len(),
            "reference: parameter {} has the wrong length",
            spec.name
        );
    }
}

fn check_batch(shapes: &[Shape], images: &[f64], batch: usize) {
    assert!(batch > 0, "reference: empty batch");
    assert_eq!(
        images.len(),
        shapes[0].iter().product::<usize>(),
        "reference: images must be [B, 3, 32, 32]"
    );
}

fn bn_shape(x: Shape) -> BnShape {
    let [n, c, h, w] = x;
    BnShape::new(n, c, h * w)
}

fn pool_shape(x: Shape, kernel: usize, stride: usize, padding: usize) -> MaxPoolShape {
    let [n, c, h, w] = x;
    MaxPoolShape::new(n, c, h, w, kernel, stride, padding)
}

fn upsample_shape(x: Shape, size: usize) -> UpsampleShape {
    let [n, c, h, w] = x;
    UpsampleShape::new(n, c, (h, w), (size, size))
}

/// How batch norm normalises in a forward pass.
enum Mode<'a> {
    /// With the batch statistics (recorded in the trace).
    Train,
    /// With the running statistics, per batch norm.
    Eval(&'a [(Vec<f64>, Vec<f64>)]),
}

/// Runs every layer; returns the tensors, the batch statistics (training mode) and the
/// max-pool argmaxes.
fn run_forward(model: &Model, params: &[Vec<f64>], images: &[f64], batch: usize, mode: Mode) -> Trace {
    check_params(model, params);
    let shapes = model.shapes(batch);
    check_batch(&shapes, images, batch);
    let slots = model.layer_slots();
    let mut tensors = Vec::with_capacity(shapes.len());
    tensors.push(images.to_vec());
    let mut batch_stats = Vec::new();
    let mut argmax = Vec::with_capacity(model.layers.len());
    for (layer, slot) in model.layers.iter().zip(&slots) {
        let xs = shapes[layer.inputs[0]];
        let x = &tensors[layer.inputs[0]];
        let weight = || &params[slot.weight.expect("layer has a weight")][..];
        let bias = || &params[slot.bias.expect("layer has a bias")][..];
        let mut layer_argmax = Vec::new();
        let y = match &layer.op {
            // y[n,c,oh,ow] = x[n,c,⌊oh·IH/OH⌋,⌊ow·IW/OW⌋]
            Op::Upsample { size } => upsample::forward_cpu(&upsample_shape(xs, *size), x),
            // y = conv(x, W) + b: [B, Cin, H, W] → [B, Cout, OH, OW]
            Op::Conv { .. } => {
                let s = layer.op.conv_shape(xs).expect("a convolution");
                conv2d::forward_cpu(&s, x, weight(), slot.bias.map(|i| &params[i][..]))
            }
            // y = γ·(x − μ)/sqrt(σ² + eps) + β per channel
            Op::BatchNorm { .. } => {
                let s = bn_shape(xs);
                match mode {
                    Mode::Train => {
                        let f = batch_norm::train_forward_cpu(x, weight(), bias(), s, BN_EPS);
                        batch_stats.push(BatchStats {
                            mean: f.mean,
                            var: f.var,
                            invstd: f.invstd,
                            count: s.per_channel(),
                        });
                        f.y
                    }
                    Mode::Eval(running) => {
                        let (mean, var) = &running[slot.batch_norm.expect("batch norm has a slot")];
                        batch_norm::inference_forward_cpu(x, weight(), bias(), mean, var, s, BN_EPS)
                    }
                }
            }
            // y = max(x, 0)
            Op::Relu => relu::forward_cpu(x),
            // y = max over the window (padding never selected)
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => {
                let (y, a) = max_pool::forward_cpu(&pool_shape(xs, *kernel, *stride, *padding), x);
                layer_argmax = a;
                y
            }
            // y = a + b
            Op::Add => add::forward_cpu(x, &tensors[layer.inputs[1]]),
            // [B, C, H, W] → [B, C] (= [B, C, 1, 1]), the mean over H·W
            Op::GlobalAvgPool => global_avg_pool::forward_cpu(xs, x),
            // [B, F, 1, 1] → [B, out, 1, 1]: y = x·Wᵀ + b
            Op::Linear { out_features, .. } => {
                let [n, f, h, w] = xs;
                assert_eq!(h * w, 1, "reference: a linear layer reads [B, F, 1, 1]");
                linear::forward_cpu(x, weight(), bias(), n, f, *out_features)
            }
        };
        tensors.push(y);
        argmax.push(layer_argmax);
    }
    Trace {
        tensors,
        batch_stats,
        argmax,
    }
}

/// The training-mode forward pass (batch statistics), touching no state.
pub fn forward_train(model: &Model, params: &[Vec<f64>], images: &[f64], batch: usize) -> Trace {
    run_forward(model, params, images, batch, Mode::Train)
}

/// The inference forward with the running statistics: logits `[B, K]` (= `[B, K, 1, 1]`).
pub fn forward_eval(model: &Model, state: &ReferenceState, images: &[f64], batch: usize) -> Vec<f64> {
    let mut trace = forward_eval_trace(model, state, images, batch);
    trace.tensors.pop().expect("the logits are the last tensor")
}

/// The inference forward with the running statistics, keeping every tensor.
pub fn forward_eval_trace(model: &Model, state: &ReferenceState, images: &[f64], batch: usize) -> Trace {
    assert_eq!(
        state.running.len(),
        model.batch_norms().len(),
        "reference: running statistics per batch norm"
    );
    run_forward(model, &state.params, images, batch, Mode::Eval(&state.running))
}

/// The training-mode loss `L` alone (for finite differences), touching no state.
pub fn loss(model: &Model, params: &[Vec<f64>], images: &[f64], labels: &[u32], batch: usize) -> f64 {
    assert_eq!(labels.len(), batch, "reference: one label per image");
    let trace = forward_train(model, params, images, batch);
    cross_entropy::forward_cpu(trace.logits(), labels, model.classes)[0]
}

/// `dst (+)= g`: the first contribution sets the gradient, later ones are summed into it.
fn accumulate(dst: &mut Option<Vec<f64>>, g: Vec<f64>) {
    *dst = Some(match dst.take() {
        None => g,
        Some(old) => add::forward_cpu(&old, &g),
    });
}

/// The backward pass over a training trace: `(∂L/∂params, ∂L/∂images)` for the batch-mean
/// cross-entropy of `labels`.
fn run_backward(
    model: &Model,
    params: &[Vec<f64>],
    trace: &Trace,
    labels: &[u32],
    batch: usize,
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let shapes = model.shapes(batch);
    let slots = model.layer_slots();
    let mut param_grads: Vec<Vec<f64>> = params.iter().map(|p| vec![0.0; p.len()]).collect();
    // ∂L/∂tensor, filled in as the consumers of each tensor are visited (in reverse order,
    // all of a tensor's consumers come before its producer).
    let mut grads: Vec<Option<Vec<f64>>> = vec![None; shapes.len()];
    // ∂L/∂z[b,k] = (softmax(z_b)[k] − [k = label_b])/B
    grads[model.output()] = Some(cross_entropy::backward_cpu(trace.logits(), labels, model.classes));
    for (i, (layer, slot)) in model.layers.iter().zip(&slots).enumerate().rev() {
        // A tensor nothing reads back from the loss has no gradient: nothing flows.
        let Some(dy) = grads[i + 1].take() else {
            continue;
        };
        let xs = shapes[layer.inputs[0]];
        let x = &trace.tensors[layer.inputs[0]];
        let y = &trace.tensors[i + 1];
        let dx = match &layer.op {
            // dx[n,c,ih,iw] = Σ dy over the output pixels that read (ih, iw)
            Op::Upsample { size } => upsample::backward_cpu(&upsample_shape(xs, *size), &dy),
            Op::Conv { .. } => {
                let s = layer.op.conv_shape(xs).expect("a convolution");
                let w_slot = slot.weight.expect("conv has a weight");
                // dW[co,ci,kh,kw] = Σ_{b,oh,ow} dy[b,co,oh,ow]·x[b,ci,oh·s−p+kh,ow·s−p+kw]
                param_grads[w_slot] = conv2d::weight_grad_cpu(&s, &dy, x);
                // db[co] = Σ_{b,oh,ow} dy[b,co,oh,ow]
                if let Some(b_slot) = slot.bias {
                    param_grads[b_slot] =
                        bias_grad::backward_cpu(&dy, s.batch, s.out_channels, s.out_height() * s.out_width());
                }
                // dx[b,ci,ih,iw] = Σ_{co,kh,kw} W[co,ci,kh,kw]·dy[b,co,oh,ow]
                conv2d::input_grad_cpu(&s, &dy, &params[w_slot])
            }
            // dβ = Σdy, dγ = Σdy·x̂, dx = γ·invstd/M·(M·dy − Σdy − x̂·Σdy·x̂)
            Op::BatchNorm { .. } => {
                let (g_slot, b_slot) = (slot.weight.expect("γ"), slot.bias.expect("β"));
                let stats = &trace.batch_stats[slot.batch_norm.expect("batch norm has a slot")];
                let b = batch_norm::backward_cpu(
                    &dy,
                    x,
                    &params[g_slot],
                    &stats.mean,
                    &stats.invstd,
                    bn_shape(xs),
                );
                param_grads[g_slot] = b.dgamma;
                param_grads[b_slot] = b.dbeta;
                b.dx
            }
            // dx = dy·[y > 0]
            Op::Relu => relu::backward_cpu(y, &dy),
            // dx = Σ dy over the windows whose maximum sits at the element
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => max_pool::backward_cpu(&pool_shape(xs, *kernel, *stride, *padding), &trace.argmax[i], &dy),
            // da = db = dy; the second input is handled here, the first below
            Op::Add => {
                let (da, db) = add::backward_cpu(&dy);
                accumulate(&mut grads[layer.inputs[1]], db);
                da
            }
            // dx[n,c,h,w] = dy[n,c]/(H·W)
            Op::GlobalAvgPool => global_avg_pool::backward_cpu(xs, &dy),
            Op::Linear { out_features, .. } => {
                let [n, f, _, _] = xs;
                let out = *out_features;
                let (w_slot, b_slot) = (slot.weight.expect("fc weight"), slot.bias.expect("fc bias"));
                param_grads[w_slot] = linear::weight_grad_cpu(&dy, x, n, f, out);
                // db [out] = Σ_b dy[b, ·]
                param_grads[b_slot] = bias_grad::backward_cpu(&dy, n, out, 1);
                linear::input_grad_cpu(&dy, &params[w_slot], n, f, out)
            }
        };
        accumulate(&mut grads[layer.inputs[0]], dx);
    }
    let input = grads[0]
        .take()
        .unwrap_or_else(|| vec![0.0; trace.tensors[0].len()]);
    (param_grads, input)
}

/// Loss, correct count and all gradients of a batch in training mode, touching no state.
pub fn gradients(
    model: &Model,
    params: &[Vec<f64>],
    images: &[f64],
    labels: &[u32],
    batch: usize,
) -> Gradients {
    assert_eq!(labels.len(), batch, "reference: one label per image");
    let trace = forward_train(model, params, images, batch);
    let [loss, correct] = cross_entropy::forward_cpu(trace.logits(), labels, model.classes);
    let (params, input) = run_backward(model, params, &trace, labels, batch);
    Gradients {
        loss,
        correct,
        params,
        input,
    }
}

/// `(L, ∂L/∂params)` in training mode, touching no state.
pub fn loss_and_grads(
    model: &Model,
    params: &[Vec<f64>],
    images: &[f64],
    labels: &[u32],
    batch: usize,
) -> (f64, Vec<Vec<f64>>) {
    let g = gradients(model, params, images, labels, batch);
    (g.loss, g.params)
}

/// One training step: forward with batch statistics, loss, backward, running-statistic
/// update, SGD update of every parameter. Returns the loss, the correct count and the
/// gradients, all from before the update.
pub fn train_step(
    model: &Model,
    state: &mut ReferenceState,
    images: &[f64],
    labels: &[u32],
    batch: usize,
    sgd: SgdConfig,
) -> StepResult {
    assert_eq!(labels.len(), batch, "reference: one label per image");
    assert_eq!(
        state.running.len(),
        model.batch_norms().len(),
        "reference: running statistics per batch norm"
    );
    assert_eq!(
        state.momentum_buffers.len(),
        state.params.len(),
        "reference: a momentum buffer per parameter"
    );
    let trace = forward_train(model, &state.params, images, batch);
    let [loss, correct] = cross_entropy::forward_cpu(trace.logits(), labels, model.classes);
    let (grads, _) = run_backward(model, &state.params, &trace, labels, batch);
    // r ← (1 − m)·r + m·stat, the variance made unbiased with M/(M − 1)
    for ((mean, var), stats) in state.running.iter_mut().zip(&trace.batch_stats) {
        batch_norm::update_running_cpu(mean, var, &stats.mean, &stats.var, stats.count, BN_MOMENTUM);
    }
    // g = grad + wd·w; v = μ·v + g; w = w − lr·v
    for ((w, v), g) in state
        .params
        .iter_mut()
        .zip(&mut state.momentum_buffers)
        .zip(&grads)
    {
        sgd::update_cpu(sgd, g, w, v);
    }
    StepResult { loss, correct, grads }
}
