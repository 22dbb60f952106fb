//! f16 storage of activations: every kernel that reads or writes an activation, compiled with
//! its activations as f16, against the f64 CPU reference run on the values the device holds
//! (the inputs rounded to f16), with the output's own rounding to f16 in the tolerance; the
//! launch is asserted to run its f16 pipeline. Gradients, parameters and statistics stay f32
//! and are held to the f32 tolerances of the other kernel tests.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuBuffer, GpuContext, Launch, from_f16_bits, to_f16_bits};
use resnet_wgpu::ops::batch_norm::{self, BnShape, DEFAULT_EPS, DEFAULT_MOMENTUM, Relu, StepStatistics};
use resnet_wgpu::ops::conv2d::{self, Conv2dShape, Direction};
use resnet_wgpu::ops::finite_check::STATUS_LEN;
use resnet_wgpu::ops::max_pool::{self, MaxPoolShape};
use resnet_wgpu::ops::upsample::{self, UpsampleShape};
use resnet_wgpu::ops::{add, batch_norm_add_relu, cross_entropy, global_avg_pool, relu};
use resnet_wgpu::shaders::Precision;

/// Relative tolerance of an f16 output: half an f16 ulp (2⁻¹¹) for its rounding, doubled for a
/// value the f32 arithmetic left next to a rounding boundary.
const F16_RTOL: f64 = 1.0 / 1024.0;

/// `values` stored as f16 on the device, and the values it holds (each rounded to the
/// nearest f16) for the reference.
fn half(ctx: &GpuContext, label: &str, values: &[f32]) -> (GpuBuffer<f32>, Vec<f64>) {
    let buffer = GpuBuffer::zeros_stored(ctx, label, values.len(), Precision::F16);
    buffer.write(ctx, values);
    (buffer, to_f64(&from_f16_bits(&to_f16_bits(values))))
}

/// An f16 output buffer filled with NaN, so that a value the kernel did not write shows.
fn half_poisoned(ctx: &GpuContext, label: &str, len: usize) -> GpuBuffer<f32> {
    half(ctx, label, &vec![f32::NAN; len]).0
}

/// Asserts that every kernel of `launch` that binds activations runs its f16 pipeline.
fn assert_f16(launch: &Launch, what: &str) {
    for shader in launch.shaders() {
        if !shader.precisions().is_empty() {
            assert!(
                shader.precisions().contains(&Precision::F16),
                "{what}: {} ran with f32 activations",
                shader.label()
            );
        }
    }
}

/// Runs `launches`, checks the device reported no error, and that each ran at f16.
fn run(ctx: &GpuContext, what: &str, launches: &[Launch]) {
    launches.iter().for_each(|l| assert_f16(l, what));
    ctx.run_blocking(what, &launches.iter().collect::<Vec<_>>());
    assert_no_device_error(ctx, what);
}

/// Reads an f16 output and checks it against `reference` with the f16 tolerance (plus `atol`
/// for the f32 arithmetic before the rounding); every value read must be an f16.
fn assert_half_close(ctx: &GpuContext, name: &str, out: &GpuBuffer<f32>, reference: &[f64], atol: f64) {
    let values = out.read_blocking(ctx);
    assert_eq!(
        from_f16_bits(&to_f16_bits(&values)),
        values,
        "{name}: values that are not f16"
    );
    assert_close(name, &values, reference, atol, F16_RTOL);
}

/// What a batch norm's kernels write (y and the inference y as f16, the rest f32, all NaN
/// until written), and its output gradient `dy` (which the fused op overwrites).
struct Outputs {
    y: GpuBuffer<f32>,
    y_inference: GpuBuffer<f32>,
    saved: GpuBuffer<f32>,
    dyb: GpuBuffer<f32>,
    dx: GpuBuffer<f32>,
    dgamma: GpuBuffer<f32>,
    dbeta: GpuBuffer<f32>,
}

impl Outputs {
    fn new(ctx: &GpuContext, shape: BnShape, dy: &[f32]) -> Self {
        let (len, c) = (shape.len(), shape.channels);
        Self {
            y: half_poisoned(ctx, "y", len),
            y_inference: half_poisoned(ctx, "y inference", len),
            saved: zeros(ctx, "saved", shape.saved_len()),
            dyb: upload(ctx, "dy", dy),
            dx: poisoned(ctx, "dx", len),
            dgamma: poisoned(ctx, "dγ", c),
            dbeta: poisoned(ctx, "dβ", c),
        }
    }
}

/// Checks a batch norm's dx, dγ and dβ (f32) against the reference's, summed over `count`
/// values a channel.
fn assert_batch_norm_grads(
    ctx: &GpuContext,
    what: &str,
    [dx, dgamma, dbeta]: [&GpuBuffer<f32>; 3],
    reference: &batch_norm::BackwardCpu,
    count: usize,
) {
    assert_close(
        &format!("{what}: dx"),
        &dx.read_blocking(ctx),
        &reference.dx,
        1e-4,
        1e-3,
    );
    let sums = sum_atol(count);
    assert_close(
        &format!("{what}: dγ"),
        &dgamma.read_blocking(ctx),
        &reference.dgamma,
        sums,
        1e-4,
    );
    assert_close(
        &format!("{what}: dβ"),
        &dbeta.read_blocking(ctx),
        &reference.dbeta,
        sums,
        1e-4,
    );
}

#[allow(clippy::too_many_arguments)]
fn conv(batch: usize, cin: usize, h: usize, cout: usize, k: usize, s: usize, p: usize) -> Conv2dShape {
    Conv2dShape {
        batch,
        in_channels: cin,
        in_height: h,
        in_width: h + 1,
        out_channels: cout,
        kernel: [k, k],
        stride: [s, s],
        padding: [p, p],
    }
}

/// The forward (f16 input and output, with and without bias) and the weight gradient (f16
/// input, f32 dy and dw) of every variant that applies, on 3×3, strided, stem-like and
/// pointwise (GEMM-shaped) convolutions. The input gradient binds no activation.
#[test]
fn convolutions_with_f16_activations_match_the_reference() {
    let ctx = gpu();
    let shapes = [
        conv(2, 5, 7, 17, 3, 1, 1),
        conv(2, 6, 9, 9, 3, 2, 1),
        conv(1, 3, 11, 8, 7, 2, 3),
        conv(2, 19, 14, 21, 1, 1, 0),
        conv(3, 20, 9, 33, 1, 2, 0),
    ];
    for variant in kernel_variants(&ctx) {
        let mut ran = 0;
        for (i, s) in shapes.into_iter().enumerate() {
            let name = format!("{s:?} kernels {variant}");
            let mut rng = Rng::new(i as u64);
            let (xb, x) = half(&ctx, "x", &rng.uniform_vec(s.input_len(), -2.0, 2.0));
            let w = rng.uniform_vec(s.weight_len(), -1.0, 1.0);
            let bias = rng.uniform_vec(s.out_channels, -1.0, 1.0);
            let dy = rng.uniform_vec(s.output_len(), -1.0, 1.0);
            let (wb, bb, dyb) = (
                upload(&ctx, "w", &w),
                upload(&ctx, "bias", &bias),
                upload(&ctx, "dy", &dy),
            );
            let (w, dy) = (to_f64(&w), to_f64(&dy));
            let reduce = |n: usize| 2e-5 * (n as f64).sqrt();
            if conv2d::applies(&ctx, Direction::Forward, &s, variant) {
                ran += 1;
                let (y1, y2) = (
                    half_poisoned(&ctx, "y", s.output_len()),
                    half_poisoned(&ctx, "y bias", s.output_len()),
                );
                let launches = [
                    conv2d::forward_with(&ctx, variant, &s, &xb, &wb, None, &y1),
                    conv2d::forward_with(&ctx, variant, &s, &xb, &wb, Some(&bb), &y2),
                ];
                launches.iter().for_each(|l| assert_ran(l, variant, &name));
                run(&ctx, &format!("forward {name}"), &launches);
                let fan_in = s.in_channels * s.kernel[0] * s.kernel[1];
                let y = conv2d::forward_cpu(&s, &x, &w, None);
                assert_half_close(&ctx, &format!("forward {name}"), &y1, &y, reduce(fan_in));
                let y = conv2d::forward_cpu(&s, &x, &w, Some(&to_f64(&bias)));
                assert_half_close(&ctx, &format!("forward+bias {name}"), &y2, &y, reduce(fan_in));
            }
            if conv2d::applies(&ctx, Direction::WeightGrad, &s, variant) {
                ran += 1;
                let old = rng.uniform_vec(s.weight_len(), -1.0, 1.0);
                let (dw, dw_acc) = (poisoned(&ctx, "dw", s.weight_len()), upload(&ctx, "dw acc", &old));
                let launches = [
                    conv2d::weight_grad_with(&ctx, variant, &s, &dyb, &xb, &dw, false),
                    conv2d::weight_grad_with(&ctx, variant, &s, &dyb, &xb, &dw_acc, true),
                ];
                launches.iter().for_each(|l| assert_ran(l, variant, &name));
                run(&ctx, &format!("weight grad {name}"), &launches);
                let dw_ref = conv2d::weight_grad_cpu(&s, &dy, &x);
                let terms = s.batch * s.out_height() * s.out_width();
                let atol = reduce(terms);
                assert_close(
                    &format!("weight grad {name}"),
                    &dw.read_blocking(&ctx),
                    &dw_ref,
                    atol,
                    1e-4,
                );
                let acc: Vec<f64> = dw_ref.iter().zip(&old).map(|(a, &b)| a + b as f64).collect();
                assert_close(
                    &format!("weight grad acc {name}"),
                    &dw_acc.read_blocking(&ctx),
                    &acc,
                    atol,
                    1e-4,
                );
            }
        }
        assert!(ran > 0, "{variant} ran on none of the shapes");
    }
}

/// Batch norm (with and without its fused ReLU) and the end of a residual block (batch norm +
/// add + ReLU): training forward, inference forward and backward, with x, the shortcut and y
/// as f16; the saved statistics, dx, dγ and dβ stay f32.
#[test]
fn batch_norms_with_f16_activations_match_the_reference() {
    let ctx = gpu();
    for (k, &(n, c, p)) in [(1usize, 3usize, 37usize), (3, 4, 97), (2, 300, 7), (2, 3, 35_003)]
        .iter()
        .enumerate()
    {
        let shape = BnShape::new(n, c, p);
        let len = shape.len();
        let count = shape.per_channel();
        let mut rng = Rng::new(40 + k as u64);
        let (xb, x) = half(&ctx, "x", &rng.uniform_vec(len, -2.0, 3.0));
        let (sb, shortcut) = half(&ctx, "shortcut", &rng.uniform_vec(len, -1.0, 1.0));
        let gamma = rng.uniform_vec(c, 0.5, 1.5);
        let beta = rng.uniform_vec(c, -0.5, 0.5);
        let running_mean = rng.uniform_vec(c, -0.2, 0.2);
        let running_var = rng.uniform_vec(c, 0.5, 2.0);
        let dy = rng.uniform_vec(len, -1.0, 1.0);
        let (gb, bb, rmb, rvb) = (
            upload(&ctx, "gamma", &gamma),
            upload(&ctx, "beta", &beta),
            upload(&ctx, "running mean", &running_mean),
            upload(&ctx, "running var", &running_var),
        );
        let (gamma, beta) = (to_f64(&gamma), to_f64(&beta));
        let (running_mean, running_var) = (to_f64(&running_mean), to_f64(&running_var));
        let name = format!("[{n}, {c}, {p}]");
        let eps = DEFAULT_EPS as f64;
        let reference = batch_norm::train_forward_cpu(&x, &gamma, &beta, shape, eps);

        for relu_mode in [Relu::None, Relu::Fused] {
            let Outputs {
                y,
                y_inference,
                saved,
                dyb,
                dx,
                dgamma,
                dbeta,
            } = Outputs::new(&ctx, shape, &dy);
            let train = batch_norm::TrainForwardBuffers {
                x: &xb,
                gamma: &gb,
                beta: &bb,
                y: &y,
                saved: &saved,
            };
            let inference = batch_norm::InferenceForwardBuffers {
                x: &xb,
                gamma: &gb,
                beta: &bb,
                running_mean: &rmb,
                running_var: &rvb,
                y: &y_inference,
            };
            let backward = batch_norm::BackwardBuffers {
                dy: &dyb,
                x: &xb,
                gamma: &gb,
                beta: &bb,
                saved: &saved,
                dx: &dx,
                dgamma: &dgamma,
                dbeta: &dbeta,
            };
            let what = format!("batch norm {relu_mode:?} {name}");
            run(
                &ctx,
                &what,
                &[
                    batch_norm::train_forward(
                        &ctx,
                        shape,
                        DEFAULT_MOMENTUM,
                        DEFAULT_EPS,
                        relu_mode,
                        StepStatistics::Start,
                        &train,
                    ),
                    batch_norm::inference_forward(&ctx, shape, DEFAULT_EPS, relu_mode, &inference),
                    batch_norm::backward(&ctx, shape, relu_mode, &backward, false),
                ],
            );
            let with_relu = |v: Vec<f64>| match relu_mode {
                Relu::None => v,
                Relu::Fused => relu::forward_cpu(&v),
            };
            assert_half_close(
                &ctx,
                &format!("{what}: y"),
                &y,
                &with_relu(reference.y.clone()),
                1e-4,
            );
            let inference_ref =
                batch_norm::inference_forward_cpu(&x, &gamma, &beta, &running_mean, &running_var, shape, eps);
            assert_half_close(
                &ctx,
                &format!("{what}: inference y"),
                &y_inference,
                &with_relu(inference_ref),
                1e-5,
            );
            let saved_values = to_f64(&saved.read_blocking(&ctx));
            assert_close(
                &format!("{what}: mean"),
                &saved.read_blocking(&ctx)[..c],
                &reference.mean,
                1e-4,
                1e-4,
            );
            assert_close(
                &format!("{what}: invstd"),
                &saved.read_blocking(&ctx)[c..2 * c],
                &reference.invstd,
                1e-4,
                1e-4,
            );
            // The gradient reaching the batch norm: through the ReLU where it is fused, its mask
            // from the output the backward recomputes in f32 from the stored x.
            let incoming: Vec<f64> = match relu_mode {
                Relu::None => to_f64(&dy),
                Relu::Fused => relu::backward_cpu(&reference.y, &to_f64(&dy)),
            };
            let mean = &saved_values[..c];
            let invstd = &saved_values[c..2 * c];
            let grads = batch_norm::backward_cpu(&incoming, &x, &gamma, mean, invstd, shape);
            assert_batch_norm_grads(&ctx, &what, [&dx, &dgamma, &dbeta], &grads, count);
        }

        // The end of a residual block.
        let Outputs {
            y,
            y_inference,
            saved,
            dyb,
            dx,
            dgamma,
            dbeta,
        } = Outputs::new(&ctx, shape, &dy);
        let what = format!("batch norm + add + ReLU {name}");
        let forward = batch_norm_add_relu::train_forward(
            &ctx,
            shape,
            DEFAULT_MOMENTUM,
            DEFAULT_EPS,
            StepStatistics::Start,
            &batch_norm_add_relu::TrainForwardBuffers {
                x: &xb,
                shortcut: &sb,
                gamma: &gb,
                beta: &bb,
                y: &y,
                saved: &saved,
            },
        );
        let inference = batch_norm_add_relu::inference_forward(
            &ctx,
            shape,
            DEFAULT_EPS,
            &batch_norm_add_relu::InferenceForwardBuffers {
                x: &xb,
                shortcut: &sb,
                gamma: &gb,
                beta: &bb,
                running_mean: &rmb,
                running_var: &rvb,
                y: &y_inference,
            },
        );
        run(&ctx, &format!("{what} forwards"), &[forward, inference]);
        let f = batch_norm_add_relu::train_forward_cpu(&x, &shortcut, &gamma, &beta, shape, eps);
        assert_half_close(&ctx, &format!("{what}: y"), &y, &f.y, 1e-4);
        let inference_ref = batch_norm_add_relu::inference_forward_cpu(
            &x,
            &shortcut,
            &gamma,
            &beta,
            &running_mean,
            &running_var,
            shape,
            eps,
        );
        assert_half_close(
            &ctx,
            &format!("{what}: inference y"),
            &y_inference,
            &inference_ref,
            1e-5,
        );
        let backward = batch_norm_add_relu::backward(
            &ctx,
            shape,
            &batch_norm_add_relu::BackwardBuffers {
                dy: &dyb,
                y: &y,
                x: &xb,
                gamma: &gb,
                beta: &bb,
                saved: &saved,
                dx: &dx,
                dgamma: &dgamma,
                dbeta: &dbeta,
            },
            false,
        );
        run(&ctx, &format!("{what} backward"), &[backward]);
        // The mask comes from the stored (f16) output, as the kernel reads it.
        let y_stored = to_f64(&y.read_blocking(&ctx));
        let saved_values = to_f64(&saved.read_blocking(&ctx));
        let (grads, g) = batch_norm_add_relu::backward_cpu(
            &to_f64(&dy),
            &y_stored,
            &x,
            &gamma,
            &saved_values[..c],
            &saved_values[c..2 * c],
            shape,
        );
        assert_close(
            &format!("{what}: shortcut gradient"),
            &dyb.read_blocking(&ctx),
            &g,
            0.0,
            0.0,
        );
        assert_batch_norm_grads(&ctx, &what, [&dx, &dgamma, &dbeta], &grads, count);
    }
}

/// ReLU (forward, and its backward's mask from the f16 output), the residual add, max pooling
/// (values and argmax), global average pooling and nearest upsampling with f16 activations.
#[test]
fn element_wise_and_pooling_kernels_with_f16_activations_match_the_reference() {
    let ctx = gpu();
    let mut rng = Rng::new(70);
    let len = 70_001;
    let (xb, x) = half(&ctx, "x", &rng.uniform_vec(len, -2.0, 2.0));
    let (bb, b) = half(&ctx, "b", &rng.uniform_vec(len, -2.0, 2.0));
    let dy = rng.uniform_vec(len, -1.0, 1.0);
    let (y, sum, dyb, dx) = (
        half_poisoned(&ctx, "y", len),
        half_poisoned(&ctx, "sum", len),
        upload(&ctx, "dy", &dy),
        poisoned(&ctx, "dx", len),
    );
    run(
        &ctx,
        "relu and add",
        &[
            relu::forward(&ctx, &xb, &y),
            relu::backward(&ctx, &y, &dyb, &dx),
            add::forward(&ctx, &xb, &bb, &sum),
        ],
    );
    let y_ref = relu::forward_cpu(&x);
    assert_half_close(&ctx, "relu forward", &y, &y_ref, 0.0);
    assert_close(
        "relu backward",
        &dx.read_blocking(&ctx),
        &relu::backward_cpu(&y_ref, &to_f64(&dy)),
        0.0,
        0.0,
    );
    assert_half_close(&ctx, "add", &sum, &add::forward_cpu(&x, &b), 0.0);

    // A 3×3 max pool of stride 2 over [2, 5, 13, 11], as in the stem.
    let pool = MaxPoolShape::new(2, 5, 13, 11, 3, 2, 1);
    let (pxb, px) = half(&ctx, "pool x", &rng.uniform_vec(pool.input_len(), -2.0, 2.0));
    let (py, argmax) = (
        half_poisoned(&ctx, "pool y", pool.output_len()),
        GpuBuffer::<u32>::zeros(&ctx, "argmax", pool.output_len()),
    );
    // Global average pooling of [3, 7, 5, 6], and a 2× nearest upsampling of [2, 3, 5, 4].
    let gap = [3, 7, 5, 6];
    let (gxb, gx) = half(&ctx, "gap x", &rng.uniform_vec(gap.iter().product(), -2.0, 2.0));
    let gy = half_poisoned(&ctx, "gap y", gap[0] * gap[1]);
    let up = UpsampleShape::new(2, 3, (5, 4), (10, 8));
    let (uxb, ux) = half(&ctx, "up x", &rng.uniform_vec(up.input_len(), -2.0, 2.0));
    let uy = half_poisoned(&ctx, "up y", up.output_len());
    run(
        &ctx,
        "pooling",
        &[
            max_pool::forward(&ctx, &pool, &pxb, &py, &argmax),
            global_avg_pool::forward(&ctx, gap, &gxb, &gy),
            upsample::forward(&ctx, &up, &uxb, &uy),
        ],
    );
    let (pool_ref, argmax_ref) = max_pool::forward_cpu(&pool, &px);
    assert_half_close(&ctx, "max pool", &py, &pool_ref, 0.0);
    assert_eq!(argmax.read_blocking(&ctx), argmax_ref, "max pool argmax");
    assert_half_close(
        &ctx,
        "global average pool",
        &gy,
        &global_avg_pool::forward_cpu(gap, &gx),
        1e-6,
    );
    assert_half_close(&ctx, "upsample", &uy, &upsample::forward_cpu(&up, &ux), 0.0);
}

/// The loss from f16 logits: its value and correct count, and the f32 gradient.
#[test]
fn cross_entropy_from_f16_logits_matches_the_reference() {
    let ctx = gpu();
    let (batch, classes) = (300, 10);
    let mut rng = Rng::new(90);
    let (lb, logits) = half(&ctx, "logits", &rng.uniform_vec(batch * classes, -4.0, 4.0));
    let labels: Vec<u32> = (0..batch).map(|i| (i * 7 % classes) as u32).collect();
    let labels_b = GpuBuffer::from_slice(&ctx, "labels", &labels);
    let status = GpuBuffer::<u32>::zeros(&ctx, "status", STATUS_LEN);
    let dlogits = poisoned(&ctx, "dlogits", batch * classes);
    run(
        &ctx,
        "cross entropy",
        &[
            cross_entropy::forward(&ctx, batch, classes, &lb, &labels_b, &status),
            cross_entropy::backward(&ctx, batch, classes, batch, &lb, &labels_b, &dlogits),
        ],
    );
    let [loss, correct] = cross_entropy::forward_cpu(&logits, &labels, classes);
    let words = status.read_blocking(&ctx);
    assert_close("loss", &[f32::from_bits(words[0])], &[loss], 1e-5, 1e-5);
    assert_eq!(words[1] as f64, correct, "correct predictions");
    assert_close(
        "dlogits",
        &dlogits.read_blocking(&ctx),
        &cross_entropy::backward_cpu(&logits, &labels, classes),
        1e-7,
        1e-4,
    );
}
