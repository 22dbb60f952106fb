//! A launch shape to choose a variant for: its candidates, scratch buffers to run it on, and
//! the launch in each candidate variant.

use crate::gpu::{GemmKey, GpuBuffer, GpuContext, Launch, Variant};
use crate::ops::conv2d::{self, Conv2dShape, Direction};
use crate::ops::matmul::{self, MatmulParams};
use crate::shaders::Precision;

/// A launch shape to choose for: how to build it in each of its candidate variants.
pub(super) struct Case {
    pub layer: String,
    pub direction: &'static str,
    pub key: GemmKey,
    /// The variants that apply, the default first.
    pub candidates: Vec<Variant>,
    pub shape: CaseShape,
    /// How its three tensors are stored (see [`Direction::operands`]).
    pub operands: [Precision; 3],
}

pub(super) enum CaseShape {
    Conv(Direction, Conv2dShape),
    Matmul(MatmulParams),
}

impl CaseShape {
    /// Floating-point operations of the launch (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        match self {
            CaseShape::Conv(_, s) => s.flops(),
            CaseShape::Matmul(p) => p.flops(),
        }
    }
}

/// Below this many floating-point operations a launch takes microseconds in any variant (a
/// linear layer over ten classes, say), less than timing it would: it runs the default.
pub(super) const UNTIMED_FLOPS: f64 = 1e6;

impl Case {
    /// The candidates worth timing on this adapter: none but the default for a launch under
    /// [`UNTIMED_FLOPS`]; else all but the wide subgroup kernels where the adapter's subgroups
    /// are 8 lanes wide (see [`GpuContext::wide_worth_timing`]), the tiled kernels of a
    /// convolution that does not run as a GEMM on a CPU adapter (see
    /// [`GpuContext::tiled_convolutions_worth_timing`]), and the 64×64 tiled kernels and
    /// split-K's tiled partial pass on a CPU adapter.
    pub fn worth_timing(&self, ctx: &GpuContext) -> Vec<Variant> {
        if self.shape.flops() < UNTIMED_FLOPS {
            return self.candidates[..1].to_vec();
        }
        let wide_too = ctx.wide_worth_timing();
        let tiled_too = match &self.shape {
            CaseShape::Conv(_, s) => s.runs_as_gemm() || ctx.tiled_convolutions_worth_timing(),
            CaseShape::Matmul(_) => true,
        };
        // The 64×64 tiled kernels and the tiled partial pass of split-K are for GPUs alone, as
        // the tiled convolutions are (on lavapipe the 64×64 tiled GEMM reaches about half the
        // subgroup GEMM's rate).
        let gpu_only_too = ctx.tiled_convolutions_worth_timing();
        self.candidates
            .iter()
            .copied()
            .filter(|&v| match v {
                Variant::SubgroupWide => wide_too,
                Variant::Tiled => tiled_too,
                Variant::Tiled64 | Variant::SplitKTiled => gpu_only_too,
                Variant::Portable | Variant::Subgroup | Variant::Narrow | Variant::SplitK => true,
            })
            .collect()
    }
}

/// Buffers of one case's launch, and the launch in a given variant.
pub(super) struct CaseBuffers {
    a: GpuBuffer<f32>,
    b: GpuBuffer<f32>,
    c: GpuBuffer<f32>,
    bias: Option<GpuBuffer<f32>>,
}

impl CaseBuffers {
    /// Bytes of the buffers.
    pub fn bytes(&self) -> u64 {
        let buffers = [Some(&self.a), Some(&self.b), Some(&self.c), self.bias.as_ref()];
        buffers.into_iter().flatten().map(GpuBuffer::size_bytes).sum()
    }

    pub fn new(ctx: &GpuContext, case: &Case) -> Self {
        let zeros = |label: &str, len: usize| GpuBuffer::zeros(ctx, label, len.max(1));
        let [a_at, b_at, c_at] = case.operands;
        let stored =
            |label: &str, len: usize, precision| GpuBuffer::zeros_stored(ctx, label, len.max(1), precision);
        match &case.shape {
            CaseShape::Conv(d, s) => {
                let (a, b, c) = match d {
                    Direction::Forward => (s.input_len(), s.weight_len(), s.output_len()),
                    Direction::InputGrad => (s.output_len(), s.weight_len(), s.input_len()),
                    Direction::WeightGrad => (s.output_len(), s.input_len(), s.weight_len()),
                };
                Self {
                    a: stored("tuning input", a, a_at),
                    b: stored("tuning operand", b, b_at),
                    c: stored("tuning output", c, c_at),
                    bias: None,
                }
            }
            CaseShape::Matmul(p) => Self {
                a: stored("tuning A", p.a_len(), a_at),
                b: stored("tuning B", p.b_len(), b_at),
                c: stored("tuning C", p.c_len(), c_at),
                bias: (p.bias_mode != 0).then(|| zeros("tuning bias", p.m.max(p.n) as usize)),
            },
        }
    }

    pub fn launch(&self, ctx: &GpuContext, shape: &CaseShape, variant: Variant) -> Launch {
        match shape {
            CaseShape::Conv(Direction::Forward, s) => {
                conv2d::forward_with(ctx, variant, s, &self.a, &self.b, None, &self.c)
            }
            CaseShape::Conv(Direction::InputGrad, s) => {
                conv2d::input_grad_with(ctx, variant, s, &self.a, &self.b, &self.c, false)
            }
            CaseShape::Conv(Direction::WeightGrad, s) => {
                conv2d::weight_grad_with(ctx, variant, s, &self.a, &self.b, &self.c, false)
            }
            CaseShape::Matmul(p) => {
                matmul::launch_with(ctx, variant, p, &self.a, &self.b, self.bias.as_ref(), &self.c)
            }
        }
    }

    /// The launch of `variant` shrunk to about `fraction` of its work, and the fraction kept:
    /// fewer workgroups (see [`sample_fraction`]), or, for a weight gradient of too few
    /// workgroups to cut (one per 64 output channels in the portable kernel), every workgroup
    /// summing over fewer images (see [`fewer_images`]).
    pub fn sample(
        &self,
        ctx: &GpuContext,
        shape: &CaseShape,
        variant: Variant,
        fraction: f64,
    ) -> (Launch, f64) {
        let mut launch = self.launch(ctx, shape, variant);
        if let CaseShape::Conv(Direction::WeightGrad, s) = shape
            && let Some(cut) = self.fewer_images(ctx, s, &launch, variant, fraction)
        {
            return cut;
        }
        let kept = launch.shrink(sample_fraction(&launch, fraction));
        (launch, kept)
    }

    /// A weight gradient's launch `whole` on `fraction` of the batch (at least one image), and
    /// the fraction kept: where `whole` has too few workgroups to cut and the smaller launch has
    /// as many, each doing less of the same reduction. `None` where the workgroups can be cut,
    /// or where fewer images would change them or the variant (split-K's chunks follow the
    /// reduction).
    fn fewer_images(
        &self,
        ctx: &GpuContext,
        s: &Conv2dShape,
        whole: &Launch,
        variant: Variant,
        fraction: f64,
    ) -> Option<(Launch, f64)> {
        let workgroups = whole.workgroups() as f64;
        if workgroups * fraction >= MIN_SAMPLE_WORKGROUPS || fraction >= 1.0 {
            return None;
        }
        let images = ((s.batch as f64 * fraction).ceil() as usize).clamp(1, s.batch);
        let fewer = Conv2dShape { batch: images, ..*s };
        if images == s.batch || !conv2d::applies(ctx, Direction::WeightGrad, &fewer, variant) {
            return None;
        }
        let (dy, x) = (
            self.a.prefix(fewer.output_len()),
            self.b.prefix(fewer.input_len()),
        );
        let launch = conv2d::weight_grad_with(ctx, variant, &fewer, &dy, &x, &self.c, false);
        (launch.workgroups() == whole.workgroups()).then(|| (launch, images as f64 / s.batch as f64))
    }
}

/// The fewest workgroups a sample keeps, so that it still spreads over a CPU adapter's threads
/// (GPUs, whose launches are short, are not sampled).
const MIN_SAMPLE_WORKGROUPS: f64 = 4.0;

/// `fraction` of a launch's workgroups, or more to keep [`MIN_SAMPLE_WORKGROUPS`].
fn sample_fraction(launch: &Launch, fraction: f64) -> f64 {
    fraction
        .max(MIN_SAMPLE_WORKGROUPS / launch.workgroups() as f64)
        .min(1.0)
}

/// How long a sampled launch should run at the fastest rate seen so far.
pub const SAMPLE_SECONDS: f64 = 0.005;

/// Past this much time a sample runs once: a run that long is timed well enough.
pub(super) const LONG_RUN_SECONDS: f64 = 0.06;

/// A challenger clearly slower than the best so far (by this factor) is dropped after a probe.
pub(super) const CLEARLY_SLOWER: f64 = 1.5;

/// What timing one launch shape found: the variant chosen, and the milliseconds of each
/// variant timed (of the whole launch, estimated from a sample where one was timed).
pub(super) struct Timed {
    pub chosen: Variant,
    pub timings: Vec<(Variant, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::launch_times;

    /// A 3×3 convolution of 16 channels on 32×32 images, batch 32: its portable weight
    /// gradient is 3 workgroups (16 × 144 outputs in 64×64 tiles), each summing 32 × 1024 terms.
    fn case(direction: Direction) -> Case {
        let shape = Conv2dShape {
            batch: 32,
            in_channels: 16,
            in_height: 32,
            in_width: 32,
            out_channels: 16,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
        };
        let operands = [Precision::F32; 3];
        Case {
            layer: "conv".into(),
            direction: direction.name(),
            key: conv2d::launch_key(direction, &shape, operands),
            candidates: vec![Variant::Portable],
            shape: CaseShape::Conv(direction, shape),
            operands,
        }
    }

    #[test]
    fn a_weight_gradient_of_too_few_workgroups_to_cut_is_sampled_on_fewer_images() {
        let ctx = GpuContext::new_blocking().expect("a WebGPU adapter (lavapipe: mesa-vulkan-drivers)");
        let weight_grad = case(Direction::WeightGrad);
        let buffers = CaseBuffers::new(&ctx, &weight_grad);
        let whole = buffers.launch(&ctx, &weight_grad.shape, Variant::Portable);
        let (sample, kept) = buffers.sample(&ctx, &weight_grad.shape, Variant::Portable, 1.0 / 16.0);
        assert!(whole.workgroups() < MIN_SAMPLE_WORKGROUPS as u64);
        assert_eq!(sample.workgroups(), whole.workgroups(), "every workgroup is kept");
        assert_eq!(kept, 2.0 / 32.0, "two images of 32");
        // The sample takes about the fraction of the time that it keeps of the work.
        let times = pollster::block_on(launch_times(&ctx, &[&whole], &[&whole, &sample, &whole]))
            .expect("read-back")
            .expect("lavapipe offers timestamp queries");
        let whole_seconds = times[0].min(times[2]);
        assert!(times[1] < 0.25 * whole_seconds, "{times:?}");

        // A launch of many workgroups is cut by workgroups, on the whole batch.
        let forward = case(Direction::Forward);
        let buffers = CaseBuffers::new(&ctx, &forward);
        let whole = buffers.launch(&ctx, &forward.shape, Variant::Portable);
        let (sample, kept) = buffers.sample(&ctx, &forward.shape, Variant::Portable, 1.0 / 16.0);
        assert_eq!(kept, 1.0 / 16.0);
        assert_eq!(sample.workgroups() * 16, whole.workgroups());
        if let Some(error) = ctx.take_error() {
            panic!("the device reported an error: {error}");
        }
    }
}
