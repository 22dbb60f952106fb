//! Batch normalization (training and inference forwards, backward, the fused ReLU, running
//! statistics over whole batches and micro-batches) and the bias gradient: GPU kernels against
//! their f64 CPU references, CPU backwards against finite differences, determinism (the same
//! launch twice gives bit-identical output), and two consecutive running-stat steps.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuBuffer, GpuContext};
use resnet_wgpu::ops::batch_norm::{
    self, BackwardBuffers, BnShape, DEFAULT_EPS, DEFAULT_MOMENTUM, InferenceForwardBuffers, Relu,
    StepStatistics, TrainForwardBuffers,
};
use resnet_wgpu::ops::bias_grad;
use resnet_wgpu::ops::finite_check::{self, NonFinite, STATUS_LEN};

/// Shapes `[N, C, H·W]` for the per-channel kernels: batch 1, 1×1 spatial, sizes that are not
/// multiples of 256, more than 256 channels, channels in parts (one value past a part's 8,192,
/// and more than 70,000 values: 9 parts), and more
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
    (1, 2, 8_193),
    (2, 3, 35_003),
    (2, 66_000, 2),
];

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
            saved: zeros(ctx, "saved statistics", shape.saved_len()),
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
fn a_channel_of_many_values_runs_in_parts_over_two_dispatches() {
    let ctx = gpu();
    for (n, c, s, parts) in [
        (2usize, 3usize, 4_096usize, 1usize),
        (1, 2, 8_193, 2),
        (2, 3, 35_003, 9),
    ] {
        let shape = BnShape::new(n, c, s);
        assert_eq!(shape.parts(), parts, "{n}x{c}x{s}");
        let d = bn_data(shape, 70, 0.0);
        let layer = BnLayer::new(&ctx, shape, &d);
        for launch in [
            layer.train_forward_step(&ctx, Relu::None, StepStatistics::Start),
            layer.backward(&ctx),
        ] {
            let grids = launch.grids();
            let workgroups: Vec<u32> = grids.iter().map(|g| g.iter().product()).collect();
            match parts {
                1 => assert_eq!(workgroups, [c as u32], "{n}x{c}x{s}: a workgroup per channel"),
                _ => assert_eq!(
                    workgroups,
                    [(c * parts) as u32; 2],
                    "{n}x{c}x{s}: every part, twice"
                ),
            }
        }
        assert_eq!(layer.saved.len(), (5 + 3 * (parts > 1) as usize * parts) * c);
    }
    assert_no_device_error(&ctx, "batch norm in parts");
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
    // One value past a part; the seed network's stem at 224 px and batch 8 (2 parts).
    (1, 3, 65_537),
    (8, 4, 12_544),
];

#[test]
fn bias_grad_matches_reference_and_is_deterministic() {
    let ctx = gpu();
    for (k, &(n, c, p)) in BIAS_SHAPES.iter().enumerate() {
        let name = format!("bias grad {n}x{c}x{p}");
        let dy = Rng::new(70 + k as u64).uniform_vec(n * c * p, -1.0, 1.0);
        let (dyb, db) = (upload(&ctx, "dy", &dy), zeros(&ctx, "db", c));
        let launch = bias_grad::backward(&ctx, (n, c, p), &dyb, &db, false);
        // A channel of more than PART_VALUES values: its parts' sums, then their sum.
        let parts = (n * p).div_ceil(bias_grad::PART_VALUES);
        let workgroups: Vec<u64> = launch
            .grids()
            .iter()
            .map(|g| g.iter().map(|&v| v as u64).product())
            .collect();
        match parts > 1 {
            true => assert!(
                workgroups.len() == 2 && workgroups[0] >= (c * parts) as u64 && workgroups[1] >= c as u64,
                "{name}: {parts} parts a channel, {workgroups:?} workgroups"
            ),
            false => assert_eq!(workgroups.len(), 1, "{name}: one dispatch"),
        }
        ctx.run_blocking("bias grad", &[&launch]);
        assert_no_device_error(&ctx, &name);
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
