//! The end of a residual block as one op, `y = max(bn(x) + s, 0)`: its kernels (training and
//! inference forwards, the backward that leaves the shortcut's gradient in dy's place) against
//! the f64 CPU reference, bit for bit against the three layers it replaces (batch norm, add,
//! ReLU), run to run, and the CPU backward against finite differences.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuBuffer, GpuContext, Launch};
use resnet_wgpu::ops::batch_norm::{self, BnShape, DEFAULT_EPS, DEFAULT_MOMENTUM, Relu, StepStatistics};
use resnet_wgpu::ops::batch_norm_add_relu as op;
use resnet_wgpu::ops::{add, relu};

/// Shapes `[N, C, H·W]`: batch 1, 1×1 spatial, sizes that are not multiples of 256, more than
/// 256 channels, channels in parts (one value past a part, and more than 70,000 values), and
/// more than 65,535 channels (a 2-D grid of workgroups).
const SHAPES: &[(usize, usize, usize)] = &[
    (1, 3, 37),
    (4, 5, 1),
    (3, 4, 97),
    (2, 300, 7),
    (1, 2, 8_193),
    (2, 3, 35_003),
    (2, 66_000, 2),
];

/// The op's buffers on the device, filled from a seed.
struct Block {
    shape: BnShape,
    x: GpuBuffer<f32>,
    shortcut: GpuBuffer<f32>,
    gamma: GpuBuffer<f32>,
    beta: GpuBuffer<f32>,
    running_mean: GpuBuffer<f32>,
    running_var: GpuBuffer<f32>,
    y: GpuBuffer<f32>,
    saved: GpuBuffer<f32>,
    dy: GpuBuffer<f32>,
    dx: GpuBuffer<f32>,
    dgamma: GpuBuffer<f32>,
    dbeta: GpuBuffer<f32>,
}

impl Block {
    fn new(ctx: &GpuContext, shape: BnShape, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let (len, c) = (shape.len(), shape.channels);
        Self {
            shape,
            x: upload(ctx, "x", &rng.uniform_vec(len, -2.0, 3.0)),
            shortcut: upload(ctx, "shortcut", &rng.uniform_vec(len, -1.0, 1.0)),
            gamma: upload(ctx, "gamma", &rng.uniform_vec(c, 0.5, 1.5)),
            beta: upload(ctx, "beta", &rng.uniform_vec(c, -0.5, 0.5)),
            running_mean: upload(ctx, "running_mean", &rng.uniform_vec(c, -0.2, 0.2)),
            running_var: upload(ctx, "running_var", &rng.uniform_vec(c, 0.5, 2.0)),
            y: poisoned(ctx, "y", len),
            saved: zeros(ctx, "saved", shape.saved_len()),
            dy: upload(ctx, "dy", &rng.uniform_vec(len, -1.0, 1.0)),
            dx: poisoned(ctx, "dx", len),
            dgamma: poisoned(ctx, "dgamma", c),
            dbeta: poisoned(ctx, "dbeta", c),
        }
    }

    fn train_forward(&self, ctx: &GpuContext) -> Launch {
        let buffers = op::TrainForwardBuffers {
            x: &self.x,
            shortcut: &self.shortcut,
            gamma: &self.gamma,
            beta: &self.beta,
            y: &self.y,
            saved: &self.saved,
        };
        op::train_forward(
            ctx,
            self.shape,
            DEFAULT_MOMENTUM,
            DEFAULT_EPS,
            StepStatistics::Start,
            &buffers,
        )
    }

    fn inference_forward(&self, ctx: &GpuContext) -> Launch {
        let buffers = op::InferenceForwardBuffers {
            x: &self.x,
            shortcut: &self.shortcut,
            gamma: &self.gamma,
            beta: &self.beta,
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            y: &self.y,
        };
        op::inference_forward(ctx, self.shape, DEFAULT_EPS, &buffers)
    }

    fn backward(&self, ctx: &GpuContext, accumulate: bool) -> Launch {
        let buffers = op::BackwardBuffers {
            dy: &self.dy,
            y: &self.y,
            x: &self.x,
            gamma: &self.gamma,
            beta: &self.beta,
            saved: &self.saved,
            dx: &self.dx,
            dgamma: &self.dgamma,
            dbeta: &self.dbeta,
        };
        op::backward(ctx, self.shape, &buffers, accumulate)
    }

    fn read(&self, ctx: &GpuContext, b: &GpuBuffer<f32>) -> Vec<f64> {
        to_f64(&b.read_blocking(ctx))
    }
}

#[test]
fn batch_norm_add_relu_matches_reference() {
    let ctx = gpu();
    let eps = DEFAULT_EPS as f64;
    for (k, &(n, c, s)) in SHAPES.iter().enumerate() {
        let shape = BnShape::new(n, c, s);
        let name = format!("batch norm + add + ReLU {n}x{c}x{s}");
        let b = Block::new(&ctx, shape, 80 + k as u64);
        let (x, shortcut, gamma, beta) = (
            b.read(&ctx, &b.x),
            b.read(&ctx, &b.shortcut),
            b.read(&ctx, &b.gamma),
            b.read(&ctx, &b.beta),
        );
        let dy = b.read(&ctx, &b.dy);
        ctx.run_blocking(&name, &[&b.train_forward(&ctx), &b.backward(&ctx, false)]);
        assert_no_device_error(&ctx, &name);

        let f = op::train_forward_cpu(&x, &shortcut, &gamma, &beta, shape, eps);
        let y = b.y.read_blocking(&ctx);
        assert_close(&format!("{name}: y"), &y, &f.y, 1e-4, 1e-4);
        let saved = b.saved.read_blocking(&ctx);
        assert_close(&format!("{name}: mean"), &saved[..c], &f.mean, 1e-4, 1e-4);
        // The mask is the GPU's own (y > 0 in f32): where bn(x) + s lies within f32 rounding of
        // zero, the f64 reference could decide the other way.
        let (r, g) = op::backward_cpu(&dy, &to_f64(&y), &x, &gamma, &f.mean, &f.invstd, shape);
        let atol = sum_atol(shape.per_channel());
        assert_close(
            &format!("{name}: dx"),
            &b.dx.read_blocking(&ctx),
            &r.dx,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name}: dgamma"),
            &b.dgamma.read_blocking(&ctx),
            &r.dgamma,
            atol,
            1e-4,
        );
        assert_close(
            &format!("{name}: dbeta"),
            &b.dbeta.read_blocking(&ctx),
            &r.dbeta,
            atol,
            1e-4,
        );
        // dy now holds the shortcut's gradient g = dy·[y > 0], exactly.
        assert_eq!(
            b.read(&ctx, &b.dy),
            g,
            "{name}: the shortcut's gradient in dy's place"
        );
        assert!(
            g.contains(&0.0) && g.iter().any(|&v| v != 0.0),
            "{name}: a mask that masks"
        );

        // Accumulating adds a second backward's dγ, dβ (from g again: masking is idempotent).
        let (dgamma, dbeta) = (b.read(&ctx, &b.dgamma), b.read(&ctx, &b.dbeta));
        ctx.run_blocking(&name, &[&b.backward(&ctx, true)]);
        let twice = |v: &[f64]| v.iter().map(|a| 2.0 * a).collect::<Vec<_>>();
        assert_close(
            &format!("{name}: accumulated dgamma"),
            &b.dgamma.read_blocking(&ctx),
            &twice(&dgamma),
            atol,
            1e-5,
        );
        assert_close(
            &format!("{name}: accumulated dbeta"),
            &b.dbeta.read_blocking(&ctx),
            &twice(&dbeta),
            atol,
            1e-5,
        );

        ctx.run_blocking(&name, &[&b.inference_forward(&ctx)]);
        let reference = op::inference_forward_cpu(
            &x,
            &shortcut,
            &gamma,
            &beta,
            &b.read(&ctx, &b.running_mean),
            &b.read(&ctx, &b.running_var),
            shape,
            eps,
        );
        assert_close(
            &format!("{name}: inference y"),
            &b.y.read_blocking(&ctx),
            &reference,
            1e-5,
            1e-5,
        );
        assert_no_device_error(&ctx, &name);
    }
}

/// The fused op computes the same operations in the same order as batch norm, add and ReLU run
/// as three layers (and ReLU's backward before the batch norm's): every output is bit-identical.
#[test]
fn batch_norm_add_relu_is_bit_identical_to_its_three_layers() {
    let ctx = gpu();
    for (k, &(n, c, s)) in [(2usize, 300usize, 7usize), (3, 4, 97), (2, 3, 35_003)]
        .iter()
        .enumerate()
    {
        let shape = BnShape::new(n, c, s);
        let name = format!("three layers {n}x{c}x{s}");
        let fused = Block::new(&ctx, shape, 90 + k as u64);
        let apart = Block::new(&ctx, shape, 90 + k as u64);
        let (normalized, sum, g) = (
            zeros(&ctx, "bn out", shape.len()),
            zeros(&ctx, "sum", shape.len()),
            zeros(&ctx, "g", shape.len()),
        );
        let bn_forward = batch_norm::train_forward(
            &ctx,
            shape,
            DEFAULT_MOMENTUM,
            DEFAULT_EPS,
            Relu::None,
            StepStatistics::Start,
            &batch_norm::TrainForwardBuffers {
                x: &apart.x,
                gamma: &apart.gamma,
                beta: &apart.beta,
                y: &normalized,
                saved: &apart.saved,
            },
        );
        let bn_backward = batch_norm::backward(
            &ctx,
            shape,
            Relu::None,
            &batch_norm::BackwardBuffers {
                dy: &g,
                x: &apart.x,
                gamma: &apart.gamma,
                beta: &apart.beta,
                saved: &apart.saved,
                dx: &apart.dx,
                dgamma: &apart.dgamma,
                dbeta: &apart.dbeta,
            },
            false,
        );
        ctx.run_blocking(
            &name,
            &[
                &bn_forward,
                &add::forward(&ctx, &normalized, &apart.shortcut, &sum),
                &relu::forward(&ctx, &sum, &apart.y),
                &relu::backward(&ctx, &apart.y, &apart.dy, &g),
                &bn_backward,
            ],
        );
        ctx.run_blocking(&name, &[&fused.train_forward(&ctx), &fused.backward(&ctx, false)]);
        assert_no_device_error(&ctx, &name);
        for (what, a, b) in [
            ("y", &fused.y, &apart.y),
            ("saved statistics", &fused.saved, &apart.saved),
            ("dx", &fused.dx, &apart.dx),
            ("dgamma", &fused.dgamma, &apart.dgamma),
            ("dbeta", &fused.dbeta, &apart.dbeta),
            ("shortcut gradient", &fused.dy, &g),
        ] {
            let (a, b) = (a.read_blocking(&ctx), b.read_blocking(&ctx));
            assert!(
                a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{name}: {what} differs"
            );
        }
    }
}

#[test]
fn batch_norm_add_relu_is_deterministic() {
    let ctx = gpu();
    let shape = BnShape::new(8, 300, 49);
    let b = Block::new(&ctx, shape, 7);
    let dy = b.dy.read_blocking(&ctx);
    let mut runs = Vec::new();
    for _ in 0..2 {
        b.dy.write(&ctx, &dy);
        ctx.run_blocking("determinism", &[&b.train_forward(&ctx), &b.backward(&ctx, false)]);
        let outputs: Vec<Vec<f32>> = [&b.y, &b.saved, &b.dx, &b.dgamma, &b.dbeta, &b.dy]
            .iter()
            .map(|buffer| buffer.read_blocking(&ctx))
            .collect();
        runs.push(outputs);
    }
    assert!(runs[0] == runs[1], "two runs differ");
}

/// The CPU backward against finite differences of `L = Σ w·y`, for both inputs and γ.
#[test]
fn batch_norm_add_relu_backward_matches_finite_differences() {
    let shape = BnShape::new(2, 3, 5);
    let mut rng = Rng::new(11);
    let len = shape.len();
    let to = |v: Vec<f32>| to_f64(&v);
    let (x, shortcut) = (
        to(rng.uniform_vec(len, -2.0, 2.0)),
        to(rng.uniform_vec(len, -1.0, 1.0)),
    );
    let (gamma, beta) = (
        to(rng.uniform_vec(3, 0.5, 1.5)),
        to(rng.uniform_vec(3, -0.5, 0.5)),
    );
    let w = probe_weights(len, 12);
    let eps = DEFAULT_EPS as f64;
    let loss = |x: &[f64], s: &[f64], gamma: &[f64]| {
        dot(&w, &op::train_forward_cpu(x, s, gamma, &beta, shape, eps).y)
    };
    let f = op::train_forward_cpu(&x, &shortcut, &gamma, &beta, shape, eps);
    let (r, g) = op::backward_cpu(&w, &f.y, &x, &gamma, &f.mean, &f.invstd, shape);
    assert_gradient("dx", &r.dx, &numeric_gradient(&x, |x| loss(x, &shortcut, &gamma)));
    assert_gradient(
        "dshortcut",
        &g,
        &numeric_gradient(&shortcut, |s| loss(&x, s, &gamma)),
    );
    assert_gradient(
        "dgamma",
        &r.dgamma,
        &numeric_gradient(&gamma, |gm| loss(&x, &shortcut, gm)),
    );
}
