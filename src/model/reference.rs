//! A CPU reference executor of a whole [`Model`] in f64, to check the GPU trainer against.
//!
//! It walks the model's layer list exactly as the scheduler does, calling each layer op's CPU
//! reference ([`crate::model::op::LayerOp::forward_cpu`] and `backward_cpu`): tensor 0 is the input batch `[B, 3, 32, 32]`,
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

use super::op::{CpuKept, CpuLayer, CpuMode};
use super::{LayerSlots, Model, Shape};
use crate::ops::batch_norm;
use crate::ops::sgd::{self, SgdConfig};
use crate::ops::{add, cross_entropy};
use crate::rng::Rng;
use crate::shaders::Precision;

pub use super::op::BatchStats;
/// The trainer's batch-norm constants in f64.
pub use super::op::{BN_EPS, BN_MOMENTUM};

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

/// The activations of one training-mode forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// Every tensor by id (index 0 the input, the last the logits), flat NCHW.
    pub tensors: Vec<Vec<f64>>,
    /// Batch statistics per batch norm, in [`Model::batch_norms`] order.
    pub batch_stats: Vec<BatchStats>,
    /// Per layer: what its forward kept for its backward (its output is in `tensors`).
    kept: Vec<CpuKept>,
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

/// How batch norm normalises in a forward pass.
enum Mode<'a> {
    /// With the batch statistics (recorded in the trace).
    Train,
    /// With the running statistics, per batch norm.
    Eval(&'a [(Vec<f64>, Vec<f64>)]),
}

/// Layer `i`'s tensors: its inputs from `tensors` and its parameters from `params`.
fn cpu_layer<'a>(
    model: &Model,
    i: usize,
    shapes: &[Shape],
    tensors: &'a [Vec<f64>],
    params: &'a [Vec<f64>],
    slot: &LayerSlots,
) -> CpuLayer<'a> {
    let layer = &model.layers[i];
    CpuLayer {
        inputs: layer.inputs.iter().map(|&t| &tensors[t][..]).collect(),
        input_shapes: layer.inputs.iter().map(|&t| shapes[t]).collect(),
        params: [slot.weight, slot.bias]
            .into_iter()
            .flatten()
            .map(|p| &params[p][..])
            .collect(),
    }
}

/// `values` as a device holds them at `precision`: as they are (the reference's f64 stands
/// for f32), or each rounded to the nearest f16.
fn stored(values: Vec<f64>, precision: Precision) -> Vec<f64> {
    match precision {
        Precision::F32 => values,
        Precision::F16 => values
            .into_iter()
            .map(|v| half::f16::from_f64(v).to_f64())
            .collect(),
    }
}

/// Runs every layer ([`crate::model::op::LayerOp::forward_cpu`]) with every tensor stored at
/// `precision`; returns the tensors and what each layer kept for its backward.
fn run_forward(
    model: &Model,
    params: &[Vec<f64>],
    images: &[f64],
    batch: usize,
    mode: Mode,
    precision: Precision,
) -> Trace {
    check_params(model, params);
    let shapes = model.shapes(batch);
    check_batch(&shapes, images, batch);
    let slots = model.layer_slots();
    let mut tensors = Vec::with_capacity(shapes.len());
    tensors.push(stored(images.to_vec(), precision));
    let mut kept = Vec::with_capacity(model.layers.len());
    for (i, (layer, slot)) in model.layers.iter().zip(&slots).enumerate() {
        let io = cpu_layer(model, i, &shapes, &tensors, params, slot);
        let cpu_mode = match mode {
            Mode::Train => CpuMode::Train,
            Mode::Eval(running) => {
                CpuMode::Eval(slot.batch_norm.map(|s| (&running[s].0[..], &running[s].1[..])))
            }
        };
        let (y, layer_kept) = layer.op.layer().forward_cpu(&io, cpu_mode);
        tensors.push(stored(y, precision));
        kept.push(layer_kept);
    }
    let batch_stats = kept.iter().filter_map(|k| k.stats.clone()).collect();
    Trace {
        tensors,
        batch_stats,
        kept,
    }
}

/// The training-mode forward pass (batch statistics), touching no state.
pub fn forward_train(model: &Model, params: &[Vec<f64>], images: &[f64], batch: usize) -> Trace {
    forward_train_stored(model, params, images, batch, Precision::F32)
}

/// [`forward_train`] with every tensor stored at `precision` (see [`gradients_stored`]).
pub fn forward_train_stored(
    model: &Model,
    params: &[Vec<f64>],
    images: &[f64],
    batch: usize,
    precision: Precision,
) -> Trace {
    run_forward(model, params, images, batch, Mode::Train, precision)
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
    run_forward(
        model,
        &state.params,
        images,
        batch,
        Mode::Eval(&state.running),
        Precision::F32,
    )
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
        let io = cpu_layer(model, i, &shapes, &trace.tensors, params, slot);
        let backward = layer
            .op
            .layer()
            .backward_cpu(&io, &trace.tensors[i + 1], &trace.kept[i], &dy);
        let owned = [slot.weight, slot.bias].into_iter().flatten();
        for (p, g) in owned.zip(backward.params) {
            param_grads[p] = g;
        }
        // A tensor read by several layers receives the sum of their contributions.
        for (&t, g) in layer.inputs.iter().zip(backward.inputs) {
            accumulate(&mut grads[t], g);
        }
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
    gradients_stored(model, params, images, labels, batch, Precision::F32)
}

/// [`gradients`] with every activation stored at `precision`, as a device in an f16 memory
/// mode holds them: the input and each layer's output rounded to f16, the arithmetic in f64
/// (gradients are not rounded: the device keeps them in f32).
pub fn gradients_stored(
    model: &Model,
    params: &[Vec<f64>],
    images: &[f64],
    labels: &[u32],
    batch: usize,
    precision: Precision,
) -> Gradients {
    assert_eq!(labels.len(), batch, "reference: one label per image");
    let trace = forward_train_stored(model, params, images, batch, precision);
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
