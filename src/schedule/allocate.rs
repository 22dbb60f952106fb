//! Allocating a network: the micro-batch size, then every buffer (parameters, gradients,
//! momentum, running statistics, activations, gradient slots, saved statistics, argmaxes);
//! then the launch lists are recorded over them ([`super::record`]).

use super::record;
use super::{DeviceLimits, GradientPlan, MemoryReport, Network, ScheduleError, choose_micro_batch};
use crate::gpu::{GpuBuffer, GpuContext};
use crate::model::{Model, Op, Shape};
use crate::ops::batch_norm;
use crate::ops::sgd::SgdConfig;

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

    /// What a plan must fit on this device: its binding limit and its memory budget.
    pub fn limits(ctx: &GpuContext) -> DeviceLimits {
        DeviceLimits {
            max_buffer: Self::buffer_limit(ctx),
            memory_budget: ctx.memory_budget(),
        }
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
        let limits = Self::limits(ctx);
        let name = format!("{} ({} stem)", model.variant.name(), model.stem.name());
        let micro_batch = choose_micro_batch(&model, batch, limits, max_micro_batch)
            .ok_or_else(|| ScheduleError::too_large(name, &model, batch, limits))?;
        let memory = MemoryReport::new(&model, batch, micro_batch);
        // Natively the scope answers at once; in the browser its answer would come later, so
        // an allocation failure there reaches the device's error slot (`ctx.check`) instead.
        #[cfg(not(target_arch = "wasm32"))]
        let out_of_memory = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
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
                    &format!("layer {i} saved statistics"),
                    batch_norm::SAVED_PER_CHANNEL * c,
                ));
            }
            if matches!(layer.op, Op::MaxPool { .. }) {
                let len = numel(&shapes[i + 1]);
                argmax.push(GpuBuffer::<u32>::zeros(ctx, &format!("layer {i} argmax"), len));
            }
        }
        let labels = GpuBuffer::zeros(ctx, "labels", micro_batch);
        let status = GpuBuffer::zeros(ctx, "step status", crate::ops::finite_check::STATUS_LEN);
        let norm_sums = GpuBuffer::zeros(
            ctx,
            "sums of squares of parameters and gradients",
            2 * specs.len() * crate::ops::sum_of_squares::PARTIALS,
        );
        // Nothing more is built on a device that could not give the buffers.
        let refused = |reason: String| ScheduleError::device(&model, batch, micro_batch, limits, reason);
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(e) = pollster::block_on(out_of_memory.pop()) {
            return Err(refused(crate::gpu::describe_error(&e)));
        }
        if let Err(e) = ctx.check() {
            return Err(refused(e.to_string()));
        }
        let mut net = Self {
            labels,
            status,
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
            check_launches: Vec::new(),
            sgd_launches: Vec::new(),
            running_launches: Vec::new(),
            sgd_config,
            memory,
            norm_sums,
            norm_launches: Vec::new(),
        };
        record::record_launches(ctx, &mut net, &plan);
        net.norm_launches = super::norms::norm_launches(ctx, &net.params, &net.grads, &net.norm_sums);
        ctx.check()
            .map_err(|e| ScheduleError::device(&net.model, batch, micro_batch, limits, e.to_string()))?;
        Ok(net)
    }
}
