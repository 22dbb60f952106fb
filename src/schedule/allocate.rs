//! Allocating a network from its plan: every buffer (parameters, gradients, momentum, running
//! statistics, activations, gradient slots, saved statistics, argmaxes), then the launch lists
//! recorded over them ([`super::record`]).

use super::record::{self, Launches};
use super::{DeviceLimits, Network, Plan, ScheduleError, Storage};
use crate::gpu::{GpuBuffer, GpuContext, KernelPolicy};
use crate::model::{Model, Shape};
use crate::ops::sgd::SgdConfig;

/// Every buffer of a network.
pub struct Buffers {
    /// Parameters, their gradients and SGD momentum buffers, in `Model::parameters()` order:
    /// ranges of the arenas below ([`super::ParameterLayout`]).
    pub params: Vec<GpuBuffer<f32>>,
    pub grads: Vec<GpuBuffer<f32>>,
    pub momentum: Vec<GpuBuffer<f32>>,
    /// The arenas of parameters, gradients and momentum, of one layout (SGD and the
    /// gradients' finiteness check run over them whole).
    pub param_arenas: Vec<GpuBuffer<f32>>,
    pub grad_arenas: Vec<GpuBuffer<f32>>,
    pub momentum_arenas: Vec<GpuBuffer<f32>>,
    /// Running mean and variance of each batch norm, in `Model::batch_norms()` order.
    pub running: Vec<(GpuBuffer<f32>, GpuBuffer<f32>)>,
    /// Activations, indexed by tensor id (0 is the input micro-batch); a recomputed one is the
    /// start of its scratch buffer (see [`super::ActivationPlan`]).
    pub activations: Vec<GpuBuffer<f32>>,
    pub labels: GpuBuffer<u32>,
    /// The step's status record: the last micro-batch's loss and correct count, and the step's
    /// non-finite flags ([`crate::ops::finite_check`]).
    pub status: GpuBuffer<u32>,
    /// Gradient slots of activations ([`super::GradientPlan`]).
    pub slots: Vec<GpuBuffer<f32>>,
    /// Each batch norm's saved statistics of the step.
    pub saved: Vec<GpuBuffer<f32>>,
    /// Each max pool's argmax indices.
    pub argmax: Vec<GpuBuffer<u32>>,
    /// Sums of squares of every parameter, then of every gradient ([`Network::layer_norms`]).
    pub norm_sums: GpuBuffer<f32>,
}

impl Network {
    /// Plans (with the default kernel choices) and builds a network of `model` at `batch`
    /// images a step on this device. `initial` holds the parameter values in
    /// `Model::parameters()` order.
    pub fn new(
        ctx: &GpuContext,
        model: Model,
        batch: usize,
        initial: &[Vec<f32>],
        sgd_config: SgdConfig,
    ) -> Result<Self, ScheduleError> {
        let plan = Plan::new(model, batch, Self::limits(ctx), None, None, KernelPolicy::Auto)?;
        Self::from_plan(ctx, plan, initial, sgd_config)
    }

    /// The largest buffer this device binds, in bytes.
    pub fn buffer_limit(ctx: &GpuContext) -> u64 {
        let limits = &ctx.limits;
        limits.max_storage_buffer_binding_size.min(limits.max_buffer_size)
    }

    /// What a plan must fit on this device: its binding limit and its memory budget.
    pub fn limits(ctx: &GpuContext) -> DeviceLimits {
        DeviceLimits {
            max_buffer: Self::buffer_limit(ctx),
            memory_budget: ctx.memory_budget(),
            shader_f16: ctx.features.shader_f16,
        }
    }

    /// Allocates every buffer of `plan` and records the launch lists over them. `initial`
    /// holds the parameter values in `Model::parameters()` order.
    pub fn from_plan(
        ctx: &GpuContext,
        plan: Plan,
        initial: &[Vec<f32>],
        sgd_config: SgdConfig,
    ) -> Result<Self, ScheduleError> {
        let specs = plan.model.parameters();
        if initial.len() != specs.len() {
            return Err(ScheduleError::WrongParameters {
                expected: specs.len(),
                got: initial.len(),
            });
        }
        let refused = |plan: &Plan, reason: String| ScheduleError::device(plan, reason);
        // Natively the scope answers at once; in the browser its answer would come later, so
        // an allocation failure there reaches the device's error slot (`ctx.check`) instead.
        #[cfg(not(target_arch = "wasm32"))]
        let out_of_memory = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffers = Buffers::allocate(ctx, &plan, initial);
        // Nothing more is built on a device that could not give the buffers.
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(out_of_memory.pop()) {
            return Err(refused(&plan, crate::gpu::describe_error(&e)));
        }
        if let Err(e) = ctx.check() {
            return Err(refused(&plan, e.to_string()));
        }
        let launches: Launches = record::record(ctx, &plan, &buffers, sgd_config);
        ctx.check().map_err(|e| refused(&plan, e.to_string()))?;
        Ok(Self {
            plan,
            buffers,
            launches,
            sgd_config,
        })
    }
}

impl Buffers {
    fn allocate(ctx: &GpuContext, plan: &Plan, initial: &[Vec<f32>]) -> Self {
        let model = &plan.model;
        let specs = model.parameters();
        let numel = |s: &Shape| s.iter().product::<usize>();
        let layout = &plan.parameters;
        let arenas = |what: &str| -> Vec<GpuBuffer<f32>> {
            (layout.arena_len.iter().enumerate())
                .map(|(k, &len)| GpuBuffer::zeros(ctx, &format!("{what} {k}"), len))
                .collect()
        };
        let (param_arenas, grad_arenas, momentum_arenas) =
            (arenas("parameters"), arenas("gradients"), arenas("momentum"));
        let ranges = |arenas: &[GpuBuffer<f32>]| -> Vec<GpuBuffer<f32>> {
            (specs.iter().zip(&layout.place))
                .map(|(spec, &(arena, start))| arenas[arena].range(start, spec.len()))
                .collect()
        };
        let (params, grads, momentum) = (
            ranges(&param_arenas),
            ranges(&grad_arenas),
            ranges(&momentum_arenas),
        );
        for (p, values) in params.iter().zip(initial) {
            p.write(ctx, values);
        }
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
        let precision = plan.activations.mode.precision();
        let scratch: Vec<GpuBuffer<f32>> = plan
            .activations
            .scratch_len
            .iter()
            .enumerate()
            .map(|(k, &len)| {
                GpuBuffer::zeros_stored(ctx, &format!("recomputed activation {k}"), len, precision)
            })
            .collect();
        let activations = plan
            .shapes
            .iter()
            .zip(&plan.activations.storage)
            .enumerate()
            .map(|(t, (s, storage))| match storage {
                Storage::Kept => {
                    GpuBuffer::zeros_stored(ctx, &format!("activation {t}"), numel(s), precision)
                }
                Storage::Scratch(k) => scratch[*k].prefix(numel(s)),
            })
            .collect();
        let slots = plan
            .gradients
            .slot_len
            .iter()
            .enumerate()
            .map(|(k, &len)| GpuBuffer::zeros(ctx, &format!("activation gradient slot {k}"), len))
            .collect();
        let mut saved = Vec::new();
        let mut argmax = Vec::new();
        for (i, description) in model.describe(plan.micro_batch).into_iter().enumerate() {
            if let Some(len) = description.saved_len() {
                saved.push(GpuBuffer::zeros(ctx, &format!("layer {i} saved statistics"), len));
            }
            if let Some(len) = description.argmax {
                argmax.push(GpuBuffer::<u32>::zeros(ctx, &format!("layer {i} argmax"), len));
            }
        }
        Self {
            params,
            grads,
            momentum,
            param_arenas,
            grad_arenas,
            momentum_arenas,
            running,
            activations,
            labels: GpuBuffer::zeros(ctx, "labels", plan.micro_batch),
            status: GpuBuffer::zeros(ctx, "step status", crate::ops::finite_check::STATUS_LEN),
            slots,
            saved,
            argmax,
            norm_sums: GpuBuffer::zeros(
                ctx,
                "sums of squares of parameters and gradients",
                2 * specs.len() * crate::ops::sum_of_squares::PARTIALS,
            ),
        }
    }
}
