//! The benchmark (native only): GFLOP/s of the convolution kernels on every distinct ResNet-50 layer shape,
//! against a large square GEMM on the same adapter as the yardstick.

use std::time::Instant;

use crate::gpu::{GpuBuffer, GpuContext, Launch};
use crate::ops::conv2d::{self, Conv2dShape};
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

/// GFLOP/s of a square `size`³ GEMM.
pub fn gemm_yardstick(ctx: &GpuContext, size: usize, min_seconds: f64) -> f64 {
    let mut rng = Rng::new(1);
    let a = random_buffer(ctx, "yardstick A", size * size, &mut rng);
    let b = random_buffer(ctx, "yardstick B", size * size, &mut rng);
    let c = GpuBuffer::zeros(ctx, "yardstick C", size * size);
    let params = MatmulParams::row_major(1, size, size, size);
    let launch = matmul::launch(ctx, &params, &a, &b, None, &c);
    params.flops() / time_launches(ctx, &[&launch], min_seconds) / 1e9
}

/// One measured row of the table.
pub struct ConvTiming {
    pub shape: Conv2dShape,
    pub seconds: [f64; 3],
    pub gflops: [f64; 3],
}

/// Times forward, input gradient and weight gradient of one convolution shape.
pub fn time_conv(ctx: &GpuContext, shape: Conv2dShape, min_seconds: f64) -> ConvTiming {
    let mut rng = Rng::new(2);
    let x = random_buffer(ctx, "x", shape.input_len(), &mut rng);
    let w = random_buffer(ctx, "w", shape.weight_len(), &mut rng);
    let dy = random_buffer(ctx, "dy", shape.output_len(), &mut rng);
    let y = GpuBuffer::zeros(ctx, "y", shape.output_len());
    let dx = GpuBuffer::zeros(ctx, "dx", shape.input_len());
    let dw = GpuBuffer::zeros(ctx, "dw", shape.weight_len());
    let launches = [
        conv2d::forward(ctx, &shape, &x, &w, None, &y),
        conv2d::input_grad(ctx, &shape, &dy, &w, &dx, false),
        conv2d::weight_grad(ctx, &shape, &dy, &x, &dw, false),
    ];
    let flops = shape.flops();
    let mut seconds = [0.0; 3];
    for (i, launch) in launches.iter().enumerate() {
        seconds[i] = time_launches(ctx, &[launch], min_seconds);
    }
    ConvTiming {
        shape,
        seconds,
        gflops: seconds.map(|s| flops / s / 1e9),
    }
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

/// A timed training step of a whole network.
pub struct StepTiming {
    /// Median seconds of one step.
    pub seconds: f64,
    /// Training FLOPs (3× the forward's) per second.
    pub gflops: f64,
    pub memory: crate::schedule::MemoryReport,
    /// (kernel, seconds, launches) summed over one step, slowest first.
    pub by_kernel: Vec<(&'static str, f64, usize)>,
}

impl StepTiming {
    pub fn kernel_total(&self) -> f64 {
        self.by_kernel.iter().map(|k| k.1).sum()
    }
}

/// Times training steps of `model` at `batch` on random data, then each launch of one step
/// alone, summed by kernel.
pub fn time_training_step(
    ctx: &GpuContext,
    model: &crate::model::Model,
    batch: usize,
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
    let net = Network::new(ctx, model.clone(), batch, &params, sgd)?;
    let images = rng.uniform_vec(batch * 3 * 32 * 32, 0.0, 1.0);
    let labels: Vec<u32> = (0..batch).map(|_| rng.below(model.classes) as u32).collect();
    let step = || pollster::block_on(net.train_step(ctx, &images, &labels)).expect("training step");
    step();
    let start = Instant::now();
    let mut runs = Vec::new();
    while runs.len() < 2 || start.elapsed().as_secs_f64() < min_seconds {
        let run = Instant::now();
        step();
        runs.push(run.elapsed().as_secs_f64());
    }
    runs.sort_by(f64::total_cmp);
    let seconds = runs[runs.len() / 2];
    let mut by_kernel: Vec<(&'static str, f64, usize)> = Vec::new();
    for launch in net.step_launches() {
        let run = Instant::now();
        ctx.run_blocking("kernel timing", &[launch]);
        let t = run.elapsed().as_secs_f64();
        match by_kernel.iter_mut().find(|k| k.0 == launch.kernel.name()) {
            Some(k) => {
                k.1 += t;
                k.2 += 1;
            }
            None => by_kernel.push((launch.kernel.name(), t, 1)),
        }
    }
    by_kernel.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(StepTiming {
        seconds,
        gflops: 3.0 * model.forward_flops_per_image() * batch as f64 / seconds / 1e9,
        memory: net.memory,
        by_kernel,
    })
}
