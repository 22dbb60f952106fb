use std::sync::Arc;

use super::{GemmKey, GpuContext, Variant};
use crate::shaders::{Kernel, Shader};

/// The most loop iterations one invocation may run. Mesa's llvmpipe (under lavapipe) counts
/// the iterations of every loop of an invocation together and ends all of them after 65,535,
/// without an error, so a longer reduction must be split across invocations (split-K) to be
/// correct there.
pub const MAX_LOOP_ITERATIONS: usize = 65_535;

/// The most values one invocation of a GEMM-shaped kernel may sum. Measured on llvmpipe, a
/// k-loop counts 1.125 iterations per value in the portable kernels and 1.25 in the tiled one
/// (their inner loops count too), and the outer loops add theirs: three quarters of
/// [`MAX_LOOP_ITERATIONS`] leaves room for all of them.
pub const MAX_REDUCTION: usize = 49_152;

/// WebGPU's default limit on workgroups in one dimension of a dispatch.
pub const MAX_WORKGROUPS_PER_DIMENSION: u32 = 65_535;

/// Workgroups for a flat kernel of 256 invocations per workgroup, one invocation per element
/// (laid out by [`Launch::linear`]).
pub fn flat_workgroups(len: usize) -> u32 {
    (len as u32).div_ceil(256)
}

/// Splits `count` workgroups over a 2-D grid with no dimension above 65,535.
///
/// Kernels recover the linear workgroup index as `id.x + id.y * num_workgroups.x` and return
/// when it is `>= count` (the grid may hold up to `x - 1` spare workgroups).
pub fn grid_2d(count: u32) -> [u32; 2] {
    if count <= MAX_WORKGROUPS_PER_DIMENSION {
        return [count.max(1), 1];
    }
    let rows = count.div_ceil(MAX_WORKGROUPS_PER_DIMENSION);
    let columns = count.div_ceil(rows);
    [columns, rows]
}

/// One kernel dispatch, or a short sequence of them that together compute one op (a split-K
/// GEMM and the sum of its partial results), fully prepared: pipelines, bound buffers and the
/// workgroup grids.
///
/// Building a launch allocates its small uniform buffers and bind groups; recording it does
/// not allocate, so a training step replays launches built once.
pub struct Launch {
    /// The kernel of the first dispatch (names the launch in timings).
    pub kernel: Kernel,
    /// The variant of a GEMM-shaped launch, as its launcher was asked for.
    pub variant: Option<Variant>,
    /// The shape key of a GEMM-shaped launch whose variant a plan's kernel choices picked.
    pub gemm: Option<GemmKey>,
    /// Floating-point operations of a GEMM-shaped launch (2 per multiply-add; 0 elsewhere).
    pub flops: f64,
    /// Its compulsory memory traffic: the bytes of every buffer its dispatches bind, each
    /// read or written once (its uniforms aside).
    pub bytes: f64,
    dispatches: Vec<Dispatch>,
}

struct Dispatch {
    shader: Shader,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    /// The kernel's parameter struct, bound as a uniform.
    params: wgpu::Buffer,
    workgroups: [u32; 3],
}

impl Launch {
    /// Binds `params` as a uniform at binding 0 and `buffers` at bindings 1, 2, … in order.
    pub fn new<P: bytemuck::Pod>(
        ctx: &GpuContext,
        shader: Shader,
        params: &P,
        buffers: &[wgpu::BufferBinding<'_>],
        workgroups: [u32; 3],
    ) -> Self {
        let kernel = shader.kernel;
        for (axis, &count) in workgroups.iter().enumerate() {
            assert!(
                count <= ctx.limits.max_compute_workgroups_per_dimension,
                "{}: {count} workgroups on axis {axis} exceed the device limit of {}",
                kernel.name(),
                ctx.limits.max_compute_workgroups_per_dimension
            );
        }
        let pipeline = ctx.pipeline(shader);
        let params_buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(kernel.name()),
            size: (std::mem::size_of::<P>() as u64).max(16).next_multiple_of(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.queue
            .write_buffer(&params_buffer, 0, bytemuck::bytes_of(params));
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: params_buffer.as_entire_binding(),
        }];
        for (i, buffer) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(buffer.clone()),
            });
        }
        // Each range once: a kernel may bind one range twice (a scalar and a vec4 view).
        let mut ranges: Vec<&wgpu::BufferBinding<'_>> = Vec::new();
        for binding in buffers {
            let seen = ranges
                .iter()
                .any(|r| r.buffer == binding.buffer && r.offset == binding.offset && r.size == binding.size);
            if !seen {
                ranges.push(binding);
            }
        }
        let bytes = ranges
            .iter()
            .map(|b| b.size.map_or(b.buffer.size() - b.offset, |s| s.get()) as f64)
            .sum();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Self {
            kernel,
            variant: None,
            gemm: None,
            flops: 0.0,
            bytes,
            dispatches: vec![Dispatch {
                shader,
                pipeline,
                bind_group,
                params: params_buffer,
                workgroups,
            }],
        }
    }

    /// This launch, marked as running `variant` of a GEMM-shaped op.
    pub fn ran(mut self, variant: Variant) -> Self {
        self.variant = Some(variant);
        self
    }

    /// This launch, marked as the GEMM-shaped launch of shape `key` that a plan chose for.
    pub fn chosen_for(mut self, key: GemmKey) -> Self {
        self.gemm = Some(key);
        self
    }

    /// This launch followed by `next`, recorded in that order.
    pub fn then(mut self, next: Launch) -> Self {
        self.flops += next.flops;
        self.bytes += next.bytes;
        self.dispatches.extend(next.dispatches);
        self
    }

    /// This launch, marked as doing `flops` floating-point operations.
    pub fn counting(mut self, flops: f64) -> Self {
        self.flops = flops;
        self
    }

    /// The kernel (at its tensors' precisions) of each dispatch.
    pub fn shaders(&self) -> Vec<Shader> {
        self.dispatches.iter().map(|d| d.shader).collect()
    }

    /// The workgroup grid of each dispatch.
    pub fn grids(&self) -> Vec<[u32; 3]> {
        self.dispatches.iter().map(|d| d.workgroups).collect()
    }

    /// Keeps about `fraction` of each dispatch's workgroups (the first slices of its grid along
    /// its longest axis), for timing a sample of a launch whose work is spread
    /// evenly over its workgroups; returns the fraction of the first dispatch's workgroups
    /// kept. The outputs of a shrunk launch are incomplete.
    pub fn shrink(&mut self, fraction: f64) -> f64 {
        let mut kept = 1.0;
        for (i, d) in self.dispatches.iter_mut().enumerate() {
            let axis = (0..3).max_by_key(|&a| (d.workgroups[a], 3 - a)).unwrap_or(0);
            let before = d.workgroups[axis];
            let after = ((before as f64 * fraction).ceil() as u32).clamp(1, before);
            d.workgroups[axis] = after;
            if i == 0 {
                kept = after as f64 / before as f64;
            }
        }
        kept
    }

    /// Workgroups of the first dispatch.
    pub fn workgroups(&self) -> u64 {
        self.dispatches[0].workgroups.iter().map(|&n| n as u64).product()
    }

    /// A launch over `count` workgroups laid out by [`grid_2d`].
    pub fn linear<P: bytemuck::Pod>(
        ctx: &GpuContext,
        shader: Shader,
        params: &P,
        buffers: &[wgpu::BufferBinding<'_>],
        count: u32,
    ) -> Self {
        let [x, y] = grid_2d(count);
        Self::new(ctx, shader, params, buffers, [x, y, 1])
    }

    /// Replaces the first dispatch's parameter struct (a new learning rate, say) without
    /// rebuilding the launch.
    pub fn set_params<P: bytemuck::Pod>(&self, ctx: &GpuContext, params: &P) {
        ctx.queue
            .write_buffer(&self.dispatches[0].params, 0, bytemuck::bytes_of(params));
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        for d in &self.dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            let [x, y, z] = d.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
    }
}
