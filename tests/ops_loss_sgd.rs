//! Softmax cross-entropy (with the flag it raises for a loss that is not finite) and SGD: GPU
//! kernels against their f64 CPU references, the CPU backward against finite differences,
//! determinism (the same launch twice gives bit-identical output), and two consecutive
//! optimizer steps.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuBuffer, GpuContext};
use resnet_wgpu::ops::finite_check::{self, NonFinite, STATUS_LEN};
use resnet_wgpu::ops::{cross_entropy, sgd};

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
