//! Batch normalization, bias gradient, softmax cross-entropy and SGD: GPU kernels against
//! their f64 CPU references, CPU backwards against finite differences, determinism (the same
//! launch twice gives bit-identical output), and two consecutive optimizer / running-stat steps.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuBuffer, GpuContext};
use resnet_wgpu::ops::batch_norm::{
    self, BackwardBuffers, BnShape, DEFAULT_EPS, DEFAULT_MOMENTUM, InferenceForwardBuffers, Relu,
    SAVED_PER_CHANNEL, StepStatistics, TrainForwardBuffers,
};
use resnet_wgpu::ops::finite_check::{self, NonFinite, STATUS_LEN};
use resnet_wgpu::ops::{bias_grad, cross_entropy, sgd};

/// Shapes `[N, C, H·W]` for the per-channel kernels: batch 1, 1×1 spatial, sizes that are not
/// multiples of 256, more than 256 channels, a channel of more than 70,000 values, and more
/// than 65,535 channels (a 2-D grid of workgroups). That last one has 4 values per channel,
/// not 2: among 66,000 random pairs some are nearly equal, where `invstd` approaches
/// `1/sqrt(eps)` ≈ 316 and amplifies f32 rounding of `x − mean` beyond any fixed tolerance
/// (an ill-conditioned input, not a kernel error).
const BN_SHAPES: &[(usize, usize, usize)] = &[
    (1, 3, 37),
    (4, 5, 1),
    (1, 4, 1),
    (3, 4, 97),
    (2, 300, 7),
    (2, 3, 35_003),
    (2, 66_000, 2),
];

/// Tolerance for a sum of `count` values of order 1 accumulated in f32.
fn sum_atol(count: usize) -> f64 {
    1e-4 * (count as f64 / 1_000.0).sqrt().max(1.0)
}

/// A BN layer on the GPU with all its buffers.
struct BnLayer {
    shape: BnShape,
    x: GpuBuffer<f32>,
    gamma: GpuBuffer<f32>,
    beta: GpuBuffer<f32>,
    y: GpuBuffer<f32>,
    /// `[mean; invstd; step count; step mean; step M2]`, `[5C]`.
    saved: GpuBuffer<f32>,
    running_mean: GpuBuffer<f32>,
    running_var: GpuBuffer<f32>,
    dy: GpuBuffer<f32>,
    dx: GpuBuffer<f32>,
    dgamma: GpuBuffer<f32>,
    dbeta: GpuBuffer<f32>,
    /// A step's status record (no flags: the step is finite).
    status: GpuBuffer<u32>,
}

/// Host values of a BN layer's inputs.
struct BnData {
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
    dy: Vec<f32>,
}

fn bn_data(shape: BnShape, seed: u64, offset: f64) -> BnData {
    let mut rng = Rng::new(seed);
    let c = shape.channels;
    BnData {
        x: rng.uniform_vec(shape.len(), offset - 2.0, offset + 3.0),
        gamma: rng.uniform_vec(c, 0.5, 1.5),
        beta: rng.uniform_vec(c, -0.5, 0.5),
        running_mean: rng.uniform_vec(c, -0.2, 0.2),
        running_var: rng.uniform_vec(c, 0.5, 2.0),
        dy: rng.uniform_vec(shape.len(), -1.0, 1.0),
    }
}

impl BnLayer {
    fn new(ctx: &GpuContext, shape: BnShape, d: &BnData) -> Self {
        Self {
            shape,
            x: upload(ctx, "x", &d.x),
            gamma: upload(ctx, "gamma", &d.gamma),
            beta: upload(ctx, "beta", &d.beta),
            y: zeros(ctx, "y", shape.len()),
            saved: zeros(ctx, "saved statistics", SAVED_PER_CHANNEL * shape.channels),
            running_mean: upload(ctx, "running_mean", &d.running_mean),
            running_var: upload(ctx, "running_var", &d.running_var),
            dy: upload(ctx, "dy", &d.dy),
            dx: zeros(ctx, "dx", shape.len()),
            dgamma: zeros(ctx, "dgamma", shape.channels),
            dbeta: zeros(ctx, "dbeta", shape.channels),
            status: GpuBuffer::zeros(ctx, "step status", STATUS_LEN),
        }
    }

    /// The running statistics' update from what the training forwards left in `saved`.
    fn running_update(&self, ctx: &GpuContext) -> resnet_wgpu::gpu::Launch {
        let buffers = batch_norm::RunningUpdateBuffers {
            saved: &self.saved,
            running_mean: &self.running_mean,
            running_var: &self.running_var,
            status: &self.status,
        };
        batch_norm::running_update(ctx, self.shape, DEFAULT_MOMENTUM, &buffers)
    }

    /// The saved batch mean, and the saved invstd, as read back.
    fn mean(&self, ctx: &GpuContext) -> Vec<f32> {
        self.saved.read_blocking(ctx)[..self.shape.channels].to_vec()
    }

    fn invstd(&self, ctx: &GpuContext) -> Vec<f32> {
        self.saved.read_blocking(ctx)[self.shape.channels..2 * self.shape.channels].to_vec()
    }

    fn train_forward(&self, ctx: &GpuContext) -> resnet_wgpu::gpu::Launch {
        self.train_forward_with(ctx, Relu::None)
    }

    /// The training forward of a whole batch, then the running statistics' update.
    fn train_forward_with(&self, ctx: &GpuContext, relu: Relu) -> resnet_wgpu::gpu::Launch {
        self.train_forward_step(ctx, relu, StepStatistics::Start)
            .then(self.running_update(ctx))
    }

    fn train_forward_step(
        &self,
        ctx: &GpuContext,
        relu: Relu,
        step: StepStatistics,
    ) -> resnet_wgpu::gpu::Launch {
        batch_norm::train_forward(
            ctx,
            self.shape,
            DEFAULT_MOMENTUM,
            DEFAULT_EPS,
            relu,
            step,
            &TrainForwardBuffers {
                x: &self.x,
                gamma: &self.gamma,
                beta: &self.beta,
                y: &self.y,
                saved: &self.saved,
            },
        )
    }

    fn backward(&self, ctx: &GpuContext) -> resnet_wgpu::gpu::Launch {
        self.backward_accumulating(ctx, false)
    }

    fn backward_accumulating(&self, ctx: &GpuContext, accumulate: bool) -> resnet_wgpu::gpu::Launch {
        self.backward_with(ctx, Relu::None, accumulate)
    }

    fn backward_with(&self, ctx: &GpuContext, relu: Relu, accumulate: bool) -> resnet_wgpu::gpu::Launch {
        batch_norm::backward(
            ctx,
            self.shape,
            relu,
            &BackwardBuffers {
                dy: &self.dy,
                x: &self.x,
                gamma: &self.gamma,
                beta: &self.beta,
                saved: &self.saved,
                dx: &self.dx,
                dgamma: &self.dgamma,
                dbeta: &self.dbeta,
            },
            accumulate,
        )
    }
}

/// A batch run as micro-batches (one launch each: the first starts the step's statistics, the
/// others merge into them) then the running-statistic update: the running statistics move as
/// for the whole batch at once, with the effective momentum still 0.1.
#[test]
fn micro_batched_running_stats_update_once_from_the_whole_batch() {
    let ctx = gpu();
    let momentum = DEFAULT_MOMENTUM as f64;
    // (micro-batches, [N, C, S] of each): values with a large common offset, and micro-batches
    // whose means differ, so both the merge and its between-part term are exercised.
    for (k, &(parts, (n, c, s))) in [(3, (2, 5, 9)), (4, (1, 300, 3)), (2, (1, 2, 1))]
        .iter()
        .enumerate()
    {
        let shape = BnShape::new(n, c, s);
        let d = bn_data(shape, 70 + k as u64, 40.0);
        let layer = BnLayer::new(&ctx, shape, &d);
        let launches = [StepStatistics::Start, StepStatistics::Merge]
            .map(|step| layer.train_forward_step(&ctx, Relu::None, step));
        let update = layer.running_update(&ctx);
        let mut whole = vec![0.0; parts * shape.len()];
        let mut part_stats = Vec::new();
        for part in 0..parts {
            let x =
                Rng::new(600 + part as u64).uniform_vec(shape.len(), 40.0 - part as f64, 44.0 + part as f64);
            layer.x.write(&ctx, &x);
            ctx.run_blocking("bn micro-batch forward", &[&launches[(part > 0) as usize]]);
            whole[part * shape.len()..(part + 1) * shape.len()].copy_from_slice(&x);
            let r =
                batch_norm::train_forward_cpu(&to_f64(&x), &to_f64(&d.gamma), &to_f64(&d.beta), shape, 1e-5);
            part_stats.push((r.mean, r.var));
        }
        let running_before = (
            layer.running_mean.read_blocking(&ctx),
            layer.running_var.read_blocking(&ctx),
        );
        assert_eq!(
            running_before,
            (d.running_mean.clone(), d.running_var.clone()),
            "micro-batch forwards leave the running statistics alone"
        );
        // A step flagged as not finite leaves the running statistics alone.
        let mut flagged = [0u32; STATUS_LEN];
        flagged[finite_check::FLAGS] = NonFinite::GRADIENT;
        layer.status.write(&ctx, &flagged);
        ctx.run_blocking("bn running update of a step that is not finite", &[&update]);
        assert_eq!(
            (
                layer.running_mean.read_blocking(&ctx),
                layer.running_var.read_blocking(&ctx)
            ),
            running_before,
            "{parts} micro-batches: a flagged step moved the running statistics"
        );
        layer.status.write(&ctx, &[0; STATUS_LEN]);
        ctx.run_blocking("bn running update", &[&update]);
        assert_eq!(ctx.take_error(), None, "the device reported an error");

        // The whole batch in one: [parts·N, C, S] (parts stacked along N).
        let whole_shape = BnShape::new(parts * n, c, s);
        let r = batch_norm::train_forward_cpu(
            &to_f64(&whole),
            &to_f64(&d.gamma),
            &to_f64(&d.beta),
            whole_shape,
            1e-5,
        );
        let (mut rm, mut rv) = (to_f64(&d.running_mean), to_f64(&d.running_var));
        batch_norm::update_running_cpu(
            &mut rm,
            &mut rv,
            &r.mean,
            &r.var,
            whole_shape.per_channel(),
            momentum,
        );
        let name = format!("{parts} micro-batches of {n}x{c}x{s}");
        assert_close(
            &format!("{name}: running_mean"),
            &layer.running_mean.read_blocking(&ctx),
            &rm,
            1e-4,
            1e-5,
        );
        assert_close(
            &format!("{name}: running_var"),
            &layer.running_var.read_blocking(&ctx),
            &rv,
            1e-4,
            1e-4,
        );

        let (mean, var) = batch_norm::combine_parts_cpu(&part_stats);
        let biggest_gap =
            |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
        assert!(
            biggest_gap(&mean, &r.mean) < 1e-9 && biggest_gap(&var, &r.var) < 1e-9,
            "{name}: combining the parts' statistics gives the whole batch's"
        );
    }
}

#[test]
fn batch_norm_train_forward_and_running_stats_match_reference_over_two_steps() {
    let ctx = gpu();
    let eps = DEFAULT_EPS as f64;
    let momentum = DEFAULT_MOMENTUM as f64;
    for (k, &(n, c, s)) in BN_SHAPES.iter().enumerate() {
        let shape = BnShape::new(n, c, s);
        let name = format!("batch norm train forward {n}x{c}x{s}");
        let d = bn_data(shape, 10 + k as u64, 0.0);
        let layer = BnLayer::new(&ctx, shape, &d);
        let launch = layer.train_forward(&ctx);
        let (gamma, beta) = (to_f64(&d.gamma), to_f64(&d.beta));
        let (mut rm, mut rv) = (to_f64(&d.running_mean), to_f64(&d.running_var));
        // Step 2 sees other data, shifted, through the same launch.
        let x2 = Rng::new(500 + k as u64).uniform_vec(shape.len(), -1.0, 5.0);
        for (step, x) in [&d.x, &x2].into_iter().enumerate() {
            layer.x.write(&ctx, x);
            ctx.run_blocking("bn train forward", &[&launch]);
            let r = batch_norm::train_forward_cpu(&to_f64(x), &gamma, &beta, shape, eps);
            batch_norm::update_running_cpu(&mut rm, &mut rv, &r.mean, &r.var, shape.per_channel(), momentum);
            let name = format!("{name} step {}", step + 1);
            assert_close(
                &format!("{name}: y"),
                &layer.y.read_blocking(&ctx),
                &r.y,
                1e-4,
                1e-4,
            );
            assert_close(&format!("{name}: mean"), &layer.mean(&ctx), &r.mean, 1e-5, 1e-4);
            assert_close(
                &format!("{name}: invstd"),
                &layer.invstd(&ctx),
                &r.invstd,
                1e-5,
                1e-4,
            );
            assert_close(
                &format!("{name}: running_mean"),
                &layer.running_mean.read_blocking(&ctx),
                &rm,
                1e-5,
                1e-4,
            );
            assert_close(
                &format!("{name}: running_var"),
                &layer.running_var.read_blocking(&ctx),
                &rv,
                1e-5,
                1e-4,
            );
        }
    }
}

#[test]
fn batch_norm_train_forward_is_stable_for_large_means() {
    // Values around 100 with a spread of 5: a one-pass E[x²] − E[x]² would lose the variance.
    let ctx = gpu();
    let shape = BnShape::new(4, 3, 1_001);
    let d = bn_data(shape, 20, 100.0);
    let layer = BnLayer::new(&ctx, shape, &d);
    ctx.run_blocking("bn train forward", &[&layer.train_forward(&ctx)]);
    let r = batch_norm::train_forward_cpu(
        &to_f64(&d.x),
        &to_f64(&d.gamma),
        &to_f64(&d.beta),
        shape,
        DEFAULT_EPS as f64,
    );
    assert_close("large-mean y", &layer.y.read_blocking(&ctx), &r.y, 1e-4, 1e-4);
    assert_close("large-mean invstd", &layer.invstd(&ctx), &r.invstd, 1e-5, 1e-4);
}

#[test]
fn batch_norm_inference_forward_matches_reference() {
    let ctx = gpu();
    for (k, &(n, c, s)) in BN_SHAPES.iter().enumerate() {
        let shape = BnShape::new(n, c, s);
        let d = bn_data(shape, 30 + k as u64, 0.5);
        let layer = BnLayer::new(&ctx, shape, &d);
        let launch = batch_norm::inference_forward(
            &ctx,
            shape,
            DEFAULT_EPS,
            Relu::None,
            &InferenceForwardBuffers {
                x: &layer.x,
                gamma: &layer.gamma,
                beta: &layer.beta,
                running_mean: &layer.running_mean,
                running_var: &layer.running_var,
                y: &layer.y,
            },
        );
        ctx.run_blocking("bn inference forward", &[&launch]);
        let reference = batch_norm::inference_forward_cpu(
            &to_f64(&d.x),
            &to_f64(&d.gamma),
            &to_f64(&d.beta),
            &to_f64(&d.running_mean),
            &to_f64(&d.running_var),
            shape,
            DEFAULT_EPS as f64,
        );
        assert_close(
            &format!("batch norm inference {n}x{c}x{s}"),
            &layer.y.read_blocking(&ctx),
            &reference,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn batch_norm_backward_matches_reference() {
    let ctx = gpu();
    for (k, &(n, c, s)) in BN_SHAPES.iter().enumerate() {
        let shape = BnShape::new(n, c, s);
        let name = format!("batch norm backward {n}x{c}x{s}");
        let d = bn_data(shape, 40 + k as u64, -0.5);
        let layer = BnLayer::new(&ctx, shape, &d);
        ctx.run_blocking(
            "bn forward+backward",
            &[&layer.train_forward(&ctx), &layer.backward(&ctx)],
        );
        let (x, gamma) = (to_f64(&d.x), to_f64(&d.gamma));
        let f = batch_norm::train_forward_cpu(&x, &gamma, &to_f64(&d.beta), shape, DEFAULT_EPS as f64);
        let r = batch_norm::backward_cpu(&to_f64(&d.dy), &x, &gamma, &f.mean, &f.invstd, shape);
        let atol = sum_atol(shape.per_channel());
        assert_close(
            &format!("{name}: dx"),
            &layer.dx.read_blocking(&ctx),
            &r.dx,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name}: dgamma"),
            &layer.dgamma.read_blocking(&ctx),
            &r.dgamma,
            atol,
            1e-4,
        );
        assert_close(
            &format!("{name}: dbeta"),
            &layer.dbeta.read_blocking(&ctx),
            &r.dbeta,
            atol,
            1e-4,
        );
        // Accumulating adds the parameter gradients onto what they hold; dx is overwritten.
        ctx.run_blocking(
            "bn backward accumulate",
            &[&layer.backward_accumulating(&ctx, true)],
        );
        let twice = |v: &[f64]| v.iter().map(|x| 2.0 * x).collect::<Vec<_>>();
        let (dgamma, dbeta) = (layer.dgamma.read_blocking(&ctx), layer.dbeta.read_blocking(&ctx));
        assert_close(
            &format!("{name}: dgamma accumulated"),
            &dgamma,
            &twice(&r.dgamma),
            2.0 * atol,
            1e-4,
        );
        assert_close(
            &format!("{name}: dbeta accumulated"),
            &dbeta,
            &twice(&r.dbeta),
            2.0 * atol,
            1e-4,
        );
        assert_close(
            &format!("{name}: dx after accumulate"),
            &layer.dx.read_blocking(&ctx),
            &r.dx,
            1e-4,
            1e-4,
        );
    }
}

/// Batch norm fused with the ReLU that follows it, in training and inference: the forward
/// equals ReLU of the reference output, and the backward equals the reference backward of the
/// ReLU-masked gradient. The pre-activations straddle zero (β in ±0.5, x centred), so the mask
/// cuts about half of the values.
#[test]
fn batch_norm_fused_with_relu_matches_reference() {
    let ctx = gpu();
    let eps = DEFAULT_EPS as f64;
    for (k, &(n, c, s)) in BN_SHAPES.iter().enumerate() {
        let shape = BnShape::new(n, c, s);
        let name = format!("batch norm + relu {n}x{c}x{s}");
        let d = bn_data(shape, 60 + k as u64, -0.5);
        let layer = BnLayer::new(&ctx, shape, &d);
        ctx.run_blocking(
            "bn+relu forward and backward",
            &[
                &layer.train_forward_with(&ctx, Relu::Fused),
                &layer.backward_with(&ctx, Relu::Fused, false),
            ],
        );
        let (x, gamma, beta) = (to_f64(&d.x), to_f64(&d.gamma), to_f64(&d.beta));
        let f = batch_norm::train_forward_cpu(&x, &gamma, &beta, shape, eps);
        let relu_y: Vec<f64> = f.y.iter().map(|v| v.max(0.0)).collect();
        assert_close(
            &format!("{name}: y"),
            &layer.y.read_blocking(&ctx),
            &relu_y,
            1e-4,
            1e-4,
        );
        let masked: Vec<f64> =
            d.dy.iter()
                .zip(&f.y)
                .map(|(&g, &y)| if y > 0.0 { g as f64 } else { 0.0 })
                .collect();
        let r = batch_norm::backward_cpu(&masked, &x, &gamma, &f.mean, &f.invstd, shape);
        let atol = sum_atol(shape.per_channel());
        // The GPU masks by its f32 pre-activation, the reference by f64; with these seeds no
        // pre-activation lies within f32 rounding of zero, so the masks agree exactly.
        assert_close(
            &format!("{name}: dx"),
            &layer.dx.read_blocking(&ctx),
            &r.dx,
            1e-4,
            1e-4,
        );
        assert_close(
            &format!("{name}: dgamma"),
            &layer.dgamma.read_blocking(&ctx),
            &r.dgamma,
            atol,
            1e-4,
        );
        assert_close(
            &format!("{name}: dbeta"),
            &layer.dbeta.read_blocking(&ctx),
            &r.dbeta,
            atol,
            1e-4,
        );

        let inference = batch_norm::inference_forward(
            &ctx,
            shape,
            DEFAULT_EPS,
            Relu::Fused,
            &InferenceForwardBuffers {
                x: &layer.x,
                gamma: &layer.gamma,
                beta: &layer.beta,
                running_mean: &layer.running_mean,
                running_var: &layer.running_var,
                y: &layer.y,
            },
        );
        ctx.run_blocking("bn+relu inference", &[&inference]);
        let reference: Vec<f64> = batch_norm::inference_forward_cpu(
            &x,
            &gamma,
            &beta,
            &to_f64(&layer.running_mean.read_blocking(&ctx)),
            &to_f64(&layer.running_var.read_blocking(&ctx)),
            shape,
            eps,
        )
        .into_iter()
        .map(|v| v.max(0.0))
        .collect();
        assert_close(
            &format!("{name}: inference y"),
            &layer.y.read_blocking(&ctx),
            &reference,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn batch_norm_is_deterministic() {
    let ctx = gpu();
    for (k, &(n, c, s)) in [(2usize, 3usize, 35_003usize), (8, 300, 49)].iter().enumerate() {
        let shape = BnShape::new(n, c, s);
        let d = bn_data(shape, 50 + k as u64, 0.0);
        let layer = BnLayer::new(&ctx, shape, &d);
        let (forward, backward) = (layer.train_forward(&ctx), layer.backward(&ctx));
        let mut runs = Vec::new();
        for _ in 0..2 {
            layer.running_mean.write(&ctx, &d.running_mean);
            layer.running_var.write(&ctx, &d.running_var);
            ctx.run_blocking("bn determinism", &[&forward, &backward]);
            let outputs: Vec<Vec<f32>> = [
                &layer.y,
                &layer.saved,
                &layer.running_mean,
                &layer.running_var,
                &layer.dx,
                &layer.dgamma,
                &layer.dbeta,
            ]
            .iter()
            .map(|b| b.read_blocking(&ctx))
            .collect();
            runs.push(outputs);
        }
        assert!(runs[0] == runs[1], "batch norm {n}x{c}x{s}: two runs differ");
    }
}

/// A loss `Σ w·y` of the BN training forward, and its gradients by the CPU backward.
fn bn_probe_setup() -> (BnShape, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let shape = BnShape::new(3, 2, 5);
    let mut rng = Rng::new(60);
    let x: Vec<f64> = (0..shape.len()).map(|_| rng.uniform(-2.0, 2.0)).collect();
    let gamma: Vec<f64> = (0..shape.channels).map(|_| rng.uniform(0.5, 1.5)).collect();
    let beta: Vec<f64> = (0..shape.channels).map(|_| rng.uniform(-0.5, 0.5)).collect();
    let w = probe_weights(shape.len(), 61);
    (shape, x, gamma, beta, w)
}

#[test]
fn batch_norm_backward_matches_finite_differences() {
    let (shape, x, gamma, beta, w) = bn_probe_setup();
    let eps = DEFAULT_EPS as f64;
    let loss = |x: &[f64], gamma: &[f64], beta: &[f64]| {
        dot(&batch_norm::train_forward_cpu(x, gamma, beta, shape, eps).y, &w)
    };
    let f = batch_norm::train_forward_cpu(&x, &gamma, &beta, shape, eps);
    let analytic = batch_norm::backward_cpu(&w, &x, &gamma, &f.mean, &f.invstd, shape);
    assert_gradient(
        "batch norm dx",
        &analytic.dx,
        &numeric_gradient(&x, |x| loss(x, &gamma, &beta)),
    );
    assert_gradient(
        "batch norm dgamma",
        &analytic.dgamma,
        &numeric_gradient(&gamma, |g| loss(&x, g, &beta)),
    );
    assert_gradient(
        "batch norm dbeta",
        &analytic.dbeta,
        &numeric_gradient(&beta, |b| loss(&x, &gamma, b)),
    );
}

const BIAS_SHAPES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (128, 10, 1),
    (1, 5, 257),
    (2, 300, 49),
    (3, 2, 70_001),
    (2, 66_000, 1),
];

#[test]
fn bias_grad_matches_reference_and_is_deterministic() {
    let ctx = gpu();
    for (k, &(n, c, p)) in BIAS_SHAPES.iter().enumerate() {
        let name = format!("bias grad {n}x{c}x{p}");
        let dy = Rng::new(70 + k as u64).uniform_vec(n * c * p, -1.0, 1.0);
        let (dyb, db) = (upload(&ctx, "dy", &dy), zeros(&ctx, "db", c));
        let launch = bias_grad::backward(&ctx, (n, c, p), &dyb, &db, false);
        ctx.run_blocking("bias grad", &[&launch]);
        let first = db.read_blocking(&ctx);
        let reference = bias_grad::backward_cpu(&to_f64(&dy), n, c, p);
        assert_close(&name, &first, &reference, sum_atol(n * p), 1e-4);
        db.write(&ctx, &vec![0.0; c]);
        ctx.run_blocking("bias grad again", &[&launch]);
        assert!(first == db.read_blocking(&ctx), "{name}: two runs differ");
        // Accumulating adds the same sums onto what db holds.
        let accumulate = bias_grad::backward(&ctx, (n, c, p), &dyb, &db, true);
        ctx.run_blocking("bias grad accumulate", &[&accumulate]);
        let doubled: Vec<f64> = reference.iter().map(|v| 2.0 * v).collect();
        assert_close(
            &format!("{name} accumulated"),
            &db.read_blocking(&ctx),
            &doubled,
            2.0 * sum_atol(n * p),
            1e-4,
        );
    }
}

#[test]
fn bias_grad_matches_finite_differences() {
    // y[n, c, p] = z[n, c, p] + b[c]; with the loss Σ w·y, ∂/∂b = bias_grad(w).
    let (n, c, p) = (3, 4, 5);
    let w = probe_weights(n * c * p, 80);
    let b: Vec<f64> = Rng::new(81)
        .uniform_vec(c, -1.0, 1.0)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let loss = |b: &[f64]| (0..w.len()).map(|i| w[i] * b[(i / p) % c]).sum::<f64>();
    assert_gradient(
        "bias grad",
        &bias_grad::backward_cpu(&w, n, c, p),
        &numeric_gradient(&b, loss),
    );
}

/// Logits and labels for the cross-entropy tests; roughly a third of the labels are the row's
/// argmax so that the correct count is neither 0 nor everything.
fn ce_data(batch: usize, classes: usize, scale: f64, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let logits = rng.uniform_vec(batch * classes, -scale, scale);
    let labels = logits
        .chunks(classes)
        .map(|row| {
            if rng.below(3) == 0 {
                let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                row.iter().position(|&v| v == best).expect("a maximum") as u32
            } else {
                rng.below(classes) as u32
            }
        })
        .collect();
    (logits, labels)
}

fn run_cross_entropy(
    ctx: &GpuContext,
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
) -> (Vec<f32>, Vec<f32>) {
    let logits_b = upload(ctx, "logits", logits);
    let labels_b = GpuBuffer::<u32>::from_slice(ctx, "labels", labels);
    let status = GpuBuffer::<u32>::zeros(ctx, "step status", STATUS_LEN);
    let dlogits = zeros(ctx, "dlogits", batch * classes);
    let forward = cross_entropy::forward(ctx, batch, classes, &logits_b, &labels_b, &status);
    let backward = cross_entropy::backward(ctx, batch, classes, batch, &logits_b, &labels_b, &dlogits);
    ctx.run_blocking("cross-entropy", &[&forward, &backward]);
    let (loss, correct, flags) = finite_check::decode(&status.read_blocking(ctx));
    assert_eq!(ctx.take_error(), None, "the device reported an error");
    assert_eq!(
        flags.is_finite(),
        loss.is_finite(),
        "the loss is flagged exactly when it is not finite: loss {loss}, {flags:?}"
    );
    (vec![loss, correct as f32], dlogits.read_blocking(ctx))
}

#[test]
fn cross_entropy_flags_a_loss_that_is_not_finite() {
    let ctx = gpu();
    let (batch, classes) = (3, 4);
    let (mut logits, labels) = ce_data(batch, classes, 2.0, 31);
    let (out, _) = run_cross_entropy(&ctx, batch, classes, &logits, &labels);
    assert!(out[0].is_finite());
    logits[5] = f32::INFINITY;
    let (out, _) = run_cross_entropy(&ctx, batch, classes, &logits, &labels);
    assert!(
        !out[0].is_finite(),
        "an infinite logit gives a loss that is not finite"
    );
    logits[5] = f32::NAN;
    let (out, _) = run_cross_entropy(&ctx, batch, classes, &logits, &labels);
    assert!(out[0].is_nan());
}

fn check_cross_entropy(
    ctx: &GpuContext,
    name: &str,
    batch: usize,
    classes: usize,
    logits: &[f32],
    labels: &[u32],
) {
    let (out, dlogits) = run_cross_entropy(ctx, batch, classes, logits, labels);
    let logits64 = to_f64(logits);
    let reference = cross_entropy::forward_cpu(&logits64, labels, classes);
    assert_close(&format!("{name}: loss"), &out[..1], &reference[..1], 1e-5, 1e-5);
    assert_close(
        &format!("{name}: correct count"),
        &out[1..],
        &reference[1..],
        0.0,
        0.0,
    );
    let d_reference = cross_entropy::backward_cpu(&logits64, labels, classes);
    assert_close(&format!("{name}: dlogits"), &dlogits, &d_reference, 1e-6, 1e-4);
}

#[test]
fn cross_entropy_backward_divides_by_the_whole_batch_of_a_micro_batch() {
    let ctx = gpu();
    let (batch, classes, divisor) = (5, 10, 20);
    let (logits, labels) = ce_data(batch, classes, 3.0, 77);
    let logits_b = upload(&ctx, "logits", &logits);
    let labels_b = GpuBuffer::<u32>::from_slice(&ctx, "labels", &labels);
    let dlogits = zeros(&ctx, "dlogits", batch * classes);
    let launch = cross_entropy::backward(&ctx, batch, classes, divisor, &logits_b, &labels_b, &dlogits);
    ctx.run_blocking("cross-entropy backward", &[&launch]);
    let reference: Vec<f64> = cross_entropy::backward_cpu(&to_f64(&logits), &labels, classes)
        .iter()
        .map(|d| d * batch as f64 / divisor as f64)
        .collect();
    assert_close(
        "cross-entropy over a micro-batch",
        &dlogits.read_blocking(&ctx),
        &reference,
        1e-7,
        1e-4,
    );
}

#[test]
fn cross_entropy_matches_reference() {
    let ctx = gpu();
    let cases: &[(usize, usize, f64)] = &[
        (1, 10, 3.0),
        (128, 10, 3.0),
        (300, 10, 3.0),
        (513, 3, 3.0),
        (7, 1000, 3.0),
        (3, 1, 3.0),
        (64, 10, 200.0),
    ];
    for (k, &(batch, classes, scale)) in cases.iter().enumerate() {
        let (logits, labels) = ce_data(batch, classes, scale, 90 + k as u64);
        check_cross_entropy(
            &ctx,
            &format!("cross-entropy {batch}x{classes} ±{scale}"),
            batch,
            classes,
            &logits,
            &labels,
        );
    }
}

#[test]
fn cross_entropy_argmax_ties_take_the_first_index() {
    let ctx = gpu();
    // Row 0: all equal, label 0 (correct). Row 1: all equal, label 2 (wrong).
    // Row 2: maxima at 1 and 3, label 1 (correct). Row 3: maxima at 1 and 3, label 3 (wrong).
    let logits = [
        0.5, 0.5, 0.5, 0.5, //
        0.5, 0.5, 0.5, 0.5, //
        0.0, 2.0, -1.0, 2.0, //
        0.0, 2.0, -1.0, 2.0,
    ];
    let labels = [0, 2, 1, 3];
    let (out, _) = run_cross_entropy(&ctx, 4, 4, &logits, &labels);
    assert_eq!(out[1], 2.0, "ties must go to the first maximal index");
    assert_eq!(cross_entropy::forward_cpu(&to_f64(&logits), &labels, 4)[1], 2.0);
    check_cross_entropy(&ctx, "cross-entropy ties", 4, 4, &logits, &labels);
}

#[test]
fn cross_entropy_is_deterministic() {
    let ctx = gpu();
    let (batch, classes) = (1000, 10);
    let (logits, labels) = ce_data(batch, classes, 4.0, 99);
    let first = run_cross_entropy(&ctx, batch, classes, &logits, &labels);
    let second = run_cross_entropy(&ctx, batch, classes, &logits, &labels);
    assert!(first == second, "cross-entropy: two runs differ");
}

#[test]
fn cross_entropy_backward_matches_finite_differences() {
    let (batch, classes) = (4, 5);
    let (logits, labels) = ce_data(batch, classes, 3.0, 100);
    let logits = to_f64(&logits);
    let analytic = cross_entropy::backward_cpu(&logits, &labels, classes);
    let numeric = numeric_gradient(&logits, |z| cross_entropy::forward_cpu(z, &labels, classes)[0]);
    assert_gradient("cross-entropy dlogits", &analytic, &numeric);
}

#[test]
fn sgd_matches_reference_over_two_steps_and_is_deterministic() {
    let ctx = gpu();
    let configs = [
        sgd::SgdConfig::REFERENCE,
        sgd::SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 5e-4,
        },
        sgd::SgdConfig {
            lr: 0.05,
            momentum: 0.0,
            weight_decay: 0.0,
        },
    ];
    for (k, &len) in [1usize, 255, 257, 70_001].iter().enumerate() {
        for (j, &config) in configs.iter().enumerate() {
            let name = format!("sgd len {len} {config:?}");
            let mut rng = Rng::new(110 + (k * 10 + j) as u64);
            let w0 = rng.uniform_vec(len, -1.0, 1.0);
            let grads = [rng.uniform_vec(len, -1.0, 1.0), rng.uniform_vec(len, -1.0, 1.0)];
            let (grad, w, v) = (
                zeros(&ctx, "grad", len),
                upload(&ctx, "w", &w0),
                zeros(&ctx, "v", len),
            );
            let status = GpuBuffer::<u32>::zeros(&ctx, "step status", STATUS_LEN);
            let buffers = sgd::SgdBuffers {
                grad: &grad,
                w: &w,
                v: &v,
                status: &status,
            };
            let launch = sgd::update(&ctx, config, &buffers);
            let (mut w_ref, mut v_ref) = (to_f64(&w0), vec![0.0; len]);
            let mut results = Vec::new();
            for (step, g) in grads.iter().enumerate() {
                grad.write(&ctx, g);
                ctx.run_blocking("sgd", &[&launch]);
                sgd::update_cpu(config, &to_f64(g), &mut w_ref, &mut v_ref);
                let (w_gpu, v_gpu) = (w.read_blocking(&ctx), v.read_blocking(&ctx));
                assert_close(
                    &format!("{name} step {}: w", step + 1),
                    &w_gpu,
                    &w_ref,
                    1e-6,
                    1e-6,
                );
                assert_close(
                    &format!("{name} step {}: v", step + 1),
                    &v_gpu,
                    &v_ref,
                    1e-6,
                    1e-6,
                );
                results.push((w_gpu, v_gpu));
            }
            // A step flagged as not finite changes neither w nor v.
            let mut flagged = [0u32; STATUS_LEN];
            flagged[finite_check::FLAGS] = NonFinite::LOSS;
            status.write(&ctx, &flagged);
            ctx.run_blocking("sgd of a step that is not finite", &[&launch]);
            assert!(
                results[1] == (w.read_blocking(&ctx), v.read_blocking(&ctx)),
                "{name}: a flagged step changed w or v"
            );
            status.write(&ctx, &[0; STATUS_LEN]);
            assert_eq!(ctx.take_error(), None, "the device reported an error");
            // Replaying both steps from the same start gives bit-identical results.
            w.write(&ctx, &w0);
            v.write(&ctx, &vec![0.0; len]);
            for (step, g) in grads.iter().enumerate() {
                grad.write(&ctx, g);
                ctx.run_blocking("sgd again", &[&launch]);
                assert!(
                    results[step] == (w.read_blocking(&ctx), v.read_blocking(&ctx)),
                    "{name} step {}: two runs differ",
                    step + 1
                );
            }
        }
    }
}

#[test]
fn sgd_first_step_matches_pytorch_semantics() {
    // PyTorch's first step sets the buffer to g itself: v = g, w = w − lr·g (g with decay).
    // Values exact in binary, so that the f64 arithmetic is exact too.
    let config = sgd::SgdConfig {
        lr: 0.5,
        momentum: 0.75,
        weight_decay: 0.5,
    };
    let (mut w, mut v) = (vec![2.0, -1.0], vec![0.0, 0.0]);
    sgd::update_cpu(config, &[1.0, 3.0], &mut w, &mut v);
    assert_eq!(v, vec![2.0, 2.5]);
    assert_eq!(w, vec![1.0, -2.25]);
    sgd::update_cpu(config, &[0.0, 0.0], &mut w, &mut v);
    // g = 0.5·w = [0.5, −1.125]; v = 0.75·v + g = [2, 0.75]; w = w − 0.5·v.
    assert_eq!(v, vec![2.0, 0.75]);
    assert_eq!(w, vec![0.0, -2.625]);
}
