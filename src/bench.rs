//! The benchmark (native only): GFLOP/s of the convolution kernels on every distinct ResNet-50 layer shape,
//! against a large square GEMM on the same adapter as the yardstick.

use std::time::Instant;

use crate::gpu::{GpuBuffer, GpuContext, Launch, Variant};
use crate::ops::conv2d::{self, Conv2dShape, Direction};
use crate::ops::matmul::{self, MatmulParams};
use crate::rng::Rng;

/// Runs `launches` once to warm up (pipeline compilation), then at least 3 times and for at
/// least `min_seconds`, one submission each, and returns the median seconds of one run.
pub fn time_launches(ctx: &GpuContext, launches: &[&Launch], min_seconds: f64) -> f64 {
    ctx.run_blocking("warm-up", launches);
    let start = Instant::now();
    let mut runs = Vec::new();
    while runs.len() < 3 || start.elapsed().as_secs_f64() < min_seconds {
        let run = Instant::now();
        ctx.run_blocking("timed", launches);
        runs.push(run.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn random_buffer(ctx: &GpuContext, label: &str, len: usize, rng: &mut Rng) -> GpuBuffer<f32> {
    GpuBuffer::from_slice(ctx, label, &rng.uniform_vec(len, -1.0, 1.0))
}

/// GFLOP/s of a square `size`³ GEMM in each variant that applies, fastest first.
pub fn gemm_yardstick(ctx: &GpuContext, size: usize, min_seconds: f64) -> Vec<(Variant, f64)> {
    let params = MatmulParams::row_major(1, size, size, size);
    time_gemm(ctx, &params, min_seconds)
        .into_iter()
        .map(|(v, seconds)| (v, params.flops() / seconds / 1e9))
        .collect()
}

/// Seconds of one run of a GEMM (operands as its strides lay them out) in each variant that
/// applies on this adapter, fastest first.
pub fn time_gemm(ctx: &GpuContext, params: &MatmulParams, min_seconds: f64) -> Vec<(Variant, f64)> {
    let mut rng = Rng::new(1);
    let a = random_buffer(ctx, "A", params.a_len(), &mut rng);
    let b = random_buffer(ctx, "B", params.b_len(), &mut rng);
    let c = GpuBuffer::zeros(ctx, "C", params.c_len());
    let mut out: Vec<(Variant, f64)> = matmul::candidates(ctx, params)
        .into_iter()
        .map(|v| {
            let launch = matmul::launch_with(ctx, v, params, &a, &b, None, &c);
            (v, time_launches(ctx, &[&launch], min_seconds))
        })
        .collect();
    out.sort_by(|x, y| x.1.total_cmp(&y.1));
    out
}

/// One measured row of the table: per direction (forward, input gradient, weight gradient)
/// the seconds of every variant that applies on this adapter, fastest first.
pub struct ConvTiming {
    pub shape: Conv2dShape,
    pub variants: [Vec<(Variant, f64)>; 3],
}

impl ConvTiming {
    /// The fastest variant of a direction and its GFLOP/s.
    pub fn best(&self, direction: usize) -> (Variant, f64) {
        let (variant, seconds) = self.variants[direction][0];
        (variant, self.shape.flops() / seconds / 1e9)
    }
}

/// Times forward, input gradient and weight gradient of one convolution shape in every
/// variant that applies.
pub fn time_conv(ctx: &GpuContext, shape: Conv2dShape, min_seconds: f64) -> ConvTiming {
    let mut rng = Rng::new(2);
    let x = random_buffer(ctx, "x", shape.input_len(), &mut rng);
    let w = random_buffer(ctx, "w", shape.weight_len(), &mut rng);
    let dy = random_buffer(ctx, "dy", shape.output_len(), &mut rng);
    let y = GpuBuffer::zeros(ctx, "y", shape.output_len());
    let dx = GpuBuffer::zeros(ctx, "dx", shape.input_len());
    let dw = GpuBuffer::zeros(ctx, "dw", shape.weight_len());
    let variants = Direction::ALL.map(|direction| {
        let mut times: Vec<(Variant, f64)> = conv2d::candidates(ctx, direction, &shape)
            .into_iter()
            .map(|v| {
                let launch = match direction {
                    Direction::Forward => conv2d::forward_with(ctx, v, &shape, &x, &w, None, &y),
                    Direction::InputGrad => conv2d::input_grad_with(ctx, v, &shape, &dy, &w, &dx, false),
                    Direction::WeightGrad => conv2d::weight_grad_with(ctx, v, &shape, &dy, &x, &dw, false),
                };
                (v, time_launches(ctx, &[&launch], min_seconds))
            })
            .collect();
        times.sort_by(|a, b| a.1.total_cmp(&b.1));
        times
    });
    ConvTiming { shape, variants }
}

/// The three GEMMs of a 1×1, stride-1 convolution with activations stored channels-last
/// (NHWC: x [B·P, Cin], y and dy [B·P, Cout], pixels P = H·W), each one GEMM over every pixel
/// of the batch: forward y = x · wᵀ [B·P, Cout], input gradient dx = dy · w [B·P, Cin], weight
/// gradient dw = dyᵀ · x [Cout, Cin] (summed over the B·P pixels). w is [Cout, Cin] either way.
pub fn channels_last_gemms(shape: &Conv2dShape) -> [MatmulParams; 3] {
    assert!(
        shape.is_pointwise(),
        "channels-last GEMMs of a pointwise convolution"
    );
    let pixels = shape.batch * shape.in_height * shape.in_width;
    let (cin, cout) = (shape.in_channels as u32, shape.out_channels as u32);
    // Forward: A = x [B·P, Cin] row-major, B[ci, co] = w[co, ci].
    let mut forward = MatmulParams::row_major(1, pixels, shape.out_channels, shape.in_channels);
    forward.b_k = 1;
    forward.b_col = cin;
    // Input gradient: A = dy [B·P, Cout] row-major, B = w [Cout, Cin] row-major.
    let input_grad = MatmulParams::row_major(1, pixels, shape.in_channels, shape.out_channels);
    // Weight gradient: A[co, n] = dy[n, co], B[n, ci] = x[n, ci] row-major.
    let mut weight_grad = MatmulParams::row_major(1, shape.out_channels, shape.in_channels, pixels);
    weight_grad.a_row = 1;
    weight_grad.a_k = cout;
    [forward, input_grad, weight_grad]
}

/// The distinct convolution shapes of ResNet-50 at a given input size and batch: with the
/// ImageNet stem (7×7/2 conv, 2× pooling) or the CIFAR stem (3×3/1 conv, no pooling).
/// Each entry names the first layer that has the shape.
pub fn resnet50_conv_shapes(batch: usize, input: usize, cifar_stem: bool) -> Vec<(String, Conv2dShape)> {
    let mut shapes: Vec<(String, Conv2dShape)> = Vec::new();
    let mut add = |name: String, s: Conv2dShape| {
        if !shapes.iter().any(|(_, known)| *known == s) {
            shapes.push((name, s));
        }
    };
    let mut size = input;
    if cifar_stem {
        add(
            "stem 3x3".into(),
            Conv2dShape::square(batch, 3, size, 64, 3, 1, 1),
        );
    } else {
        add(
            "stem 7x7/2".into(),
            Conv2dShape::square(batch, 3, size, 64, 7, 2, 3),
        );
        size = size.div_ceil(2) / 2;
    }
    let mut channels = 64;
    for (stage, (&blocks, &width)) in [3, 4, 6, 3].iter().zip(&[64usize, 128, 256, 512]).enumerate() {
        let out = width * 4;
        for block in 0..blocks {
            let stride = if block == 0 && stage > 0 { 2 } else { 1 };
            let name = |layer: &str| format!("layer{}.{block}.{layer}", stage + 1);
            add(
                name("conv1"),
                Conv2dShape::square(batch, channels, size, width, 1, 1, 0),
            );
            add(
                name("conv2"),
                Conv2dShape::square(batch, width, size, width, 3, stride, 1),
            );
            let out_size = (size + 2 - 3) / stride + 1;
            add(
                name("conv3"),
                Conv2dShape::square(batch, width, out_size, out, 1, 1, 0),
            );
            if block == 0 {
                add(
                    name("shortcut"),
                    Conv2dShape::square(batch, channels, size, out, 1, stride, 0),
                );
            }
            channels = out;
            size = out_size;
        }
    }
    shapes
}

/// One kernel's share of a training step: its launches' time and work, summed.
#[derive(Clone, Debug, Default)]
pub struct KernelTime {
    pub name: &'static str,
    pub seconds: f64,
    pub launches: usize,
    /// Floating-point operations (GEMM-shaped launches; 0 for the others).
    pub flops: f64,
    /// Compulsory traffic: the bytes of every buffer bound, each once.
    pub bytes: f64,
}

impl KernelTime {
    pub fn gflops(&self) -> f64 {
        self.flops / self.seconds / 1e9
    }

    pub fn gbs(&self) -> f64 {
        self.bytes / self.seconds / 1e9
    }
}

/// An adapter's peak rates: fp32 GFLOP/s and memory GB/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Peak {
    pub gflops: f64,
    pub gbs: f64,
}

/// Datasheet peaks (fp32 without tensor cores, memory bandwidth) of GPUs whose name the
/// adapter's contains; `None` for others (give `--peak-gflops` and `--peak-gbs`).
pub fn known_peak(adapter: &str) -> Option<(&'static str, Peak)> {
    const KNOWN: [(&str, Peak); 6] = [
        (
            "H200",
            Peak {
                gflops: 67_000.0,
                gbs: 4_800.0,
            },
        ),
        (
            "H100 PCIe",
            Peak {
                gflops: 51_000.0,
                gbs: 2_000.0,
            },
        ),
        (
            "H100",
            Peak {
                gflops: 67_000.0,
                gbs: 3_350.0,
            },
        ),
        (
            "A100",
            Peak {
                gflops: 19_500.0,
                gbs: 2_039.0,
            },
        ),
        (
            "Tesla T4",
            Peak {
                gflops: 8_100.0,
                gbs: 320.0,
            },
        ),
        (
            "RTX 4090",
            Peak {
                gflops: 82_600.0,
                gbs: 1_008.0,
            },
        ),
    ];
    KNOWN.into_iter().find(|(name, _)| adapter.contains(name))
}

/// A timed training step of a whole network.
pub struct StepTiming {
    /// Median seconds of one step.
    pub seconds: f64,
    /// Seconds of the first step, which builds what the adapter builds at a pipeline's first
    /// use, and of building the network (its buffers and pipelines) before it.
    pub first_step_seconds: f64,
    pub build_seconds: f64,
    /// Training FLOPs (3× the forward's) per second.
    pub gflops: f64,
    pub memory: crate::schedule::MemoryReport,
    /// Each kernel's time and work summed over one step, slowest first.
    pub by_kernel: Vec<KernelTime>,
    /// Whether `by_kernel` is GPU time from timestamp queries; otherwise each launch was timed
    /// alone on the CPU clock, submission and wait included.
    pub gpu_timestamps: bool,
    /// How the kernels were chosen.
    pub kernels: crate::schedule::TuneReport,
    /// Median seconds of one read of the per-layer norms (the app's Training page reads them
    /// after a step, at most once a second and within
    /// [`NORMS_READ_SHARE`](crate::schedule::NORMS_READ_SHARE) of the time).
    pub layer_norms_seconds: f64,
}

impl StepTiming {
    pub fn kernel_total(&self) -> f64 {
        self.by_kernel.iter().map(|k| k.seconds).sum()
    }
}

/// Times training steps of `model` at `batch` on random data, then each launch of one step
/// alone, summed by kernel.
pub fn time_training_step(
    ctx: &GpuContext,
    model: &crate::model::Model,
    batch: usize,
    policy: crate::gpu::KernelPolicy,
    memory_mode: crate::schedule::MemoryMode,
    min_seconds: f64,
) -> Result<StepTiming, crate::schedule::ScheduleError> {
    use crate::ops::sgd::SgdConfig;
    use crate::schedule::Network;
    let mut rng = Rng::new(3);
    let params: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|p| p.initial_values(&mut rng))
        .collect();
    // A tiny learning rate keeps the random run finite over many steps.
    let sgd = SgdConfig {
        lr: 1e-6,
        ..SgdConfig::REFERENCE
    };
    let mut plan = crate::schedule::Plan::new(
        model.clone(),
        batch,
        Network::limits(ctx),
        None,
        Some(memory_mode),
        policy,
    )?;
    let cache = crate::schedule::KernelCache::default_location();
    let kernels = pollster::block_on(crate::schedule::choose_kernels(
        ctx,
        &mut plan,
        &cache,
        crate::schedule::Tuning::Measure,
        |_, _| {},
    ))
    .expect("kernel timing");
    let built = Instant::now();
    let net = Network::from_plan(ctx, plan, &params, sgd)?;
    ctx.run_blocking("network built", &[]);
    let build_seconds = built.elapsed().as_secs_f64();
    let images = rng.uniform_vec(batch * 3 * 32 * 32, 0.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(model.classes) as u32).collect();
    let step = || pollster::block_on(net.train_step(ctx, &images, &labels)).expect("training step");
    let first = Instant::now();
    step();
    let first_step_seconds = first.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut runs = Vec::new();
    while runs.len() < 2 || start.elapsed().as_secs_f64() < min_seconds {
        let run = Instant::now();
        step();
        runs.push(run.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    let seconds = runs[runs.len() / 2];
    let layer_norms_seconds = median_seconds(3, || {
        pollster::block_on(net.layer_norms(ctx)).expect("layer norms");
    });
    let launches: Vec<&Launch> = net.step_launches().collect();
    let gpu_times = pollster::block_on(crate::gpu::launch_times(ctx, &[], &launches))
        .expect("reading the launches' timestamps");
    let mut by_kernel: Vec<KernelTime> = Vec::new();
    for (i, launch) in launches.iter().enumerate() {
        let t = match &gpu_times {
            Some(times) => times[i],
            None => {
                let run = Instant::now();
                ctx.run_blocking("kernel timing", &[launch]);
                run.elapsed().as_secs_f64()
            }
        };
        let name = launch.kernel.name();
        let index = match by_kernel.iter().position(|k| k.name == name) {
            Some(index) => index,
            None => {
                by_kernel.push(KernelTime {
                    name,
                    ..KernelTime::default()
                });
                by_kernel.len() - 1
            }
        };
        let k = &mut by_kernel[index];
        k.seconds += t;
        k.launches += 1;
        k.flops += launch.flops;
        k.bytes += launch.bytes;
    }
    by_kernel.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    Ok(StepTiming {
        seconds,
        first_step_seconds,
        build_seconds,
        gflops: 3.0 * model.forward_flops_per_image() * batch as f64 / seconds / 1e9,
        memory: net.plan.memory,
        by_kernel,
        gpu_timestamps: gpu_times.is_some(),
        kernels,
        layer_norms_seconds,
    })
}

/// The median wall-clock seconds of `runs` calls of `work`.
fn median_seconds(runs: usize, mut work: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}
