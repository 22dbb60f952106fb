//! The GEMM kernels (portable, subgroup and tiled) against the CPU reference.

mod common;
use common::*;
use resnet_wgpu::gpu::{KernelPolicy, Variant};
use resnet_wgpu::ops::matmul::{self, Bias, MatmulParams};

fn check(
    ctx: &resnet_wgpu::gpu::GpuContext,
    name: &str,
    p: MatmulParams,
    a_len: usize,
    b_len: usize,
    bias: Bias,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let a = rng.uniform_vec(a_len, -1.0, 1.0);
    let b = rng.uniform_vec(b_len, -1.0, 1.0);
    let bias_len = if bias == Bias::PerRow { p.m } else { p.n } as usize;
    let bias_values = rng.uniform_vec(bias_len, -1.0, 1.0);
    let c_old = rng.uniform_vec(p.c_len(), -1.0, 1.0);
    let p = p.with_bias(bias);
    let (ab, bb, cb) = (
        upload(ctx, "a", &a),
        upload(ctx, "b", &b),
        upload(ctx, "c", &c_old),
    );
    let bias_buffer = upload(ctx, "bias", &bias_values);
    let launch = matmul::launch(
        ctx,
        &p,
        &ab,
        &bb,
        (bias != Bias::None).then_some(&bias_buffer),
        &cb,
    );
    ctx.run_blocking(name, &[&launch]);
    let got = cb.read_blocking(ctx);
    let bias_ref = to_f64(&bias_values);
    let expected = matmul::matmul_cpu(
        &p,
        &to_f64(&a),
        &to_f64(&b),
        (bias != Bias::None).then_some(&bias_ref[..]),
        &to_f64(&c_old),
    );
    let tolerance = 1e-5 * (p.k as f64).sqrt();
    assert_close(name, &got, &expected, tolerance, 1e-4);
}

#[test]
fn matmul_matches_reference_on_awkward_shapes() {
    let ctx = gpu();
    for policy in kernel_policies(&ctx) {
        ctx.set_kernel_policy(policy);
        for (i, &(batch, m, n, k)) in [
            (1, 1, 1, 1),
            (1, 17, 33, 5),
            (3, 64, 64, 16),
            (2, 70, 130, 37),
            (1, 10, 8, 2048),
            (2, 256, 196, 64),
        ]
        .iter()
        .enumerate()
        {
            let p = MatmulParams::row_major(batch, m, n, k);
            for bias in [Bias::None, Bias::PerRow, Bias::PerColumn] {
                let name = format!("matmul {batch}x{m}x{n}x{k} bias {bias:?} kernels {policy:?}");
                check(&ctx, &name, p, batch * m * k, batch * k * n, bias, i as u64);
                check(
                    &ctx,
                    &format!("{name} accumulate"),
                    p.accumulating(true),
                    batch * m * k,
                    batch * k * n,
                    bias,
                    50 + i as u64,
                );
            }
        }
    }
}

#[test]
fn matmul_transposed_and_batch_summed() {
    let ctx = gpu();
    for policy in kernel_policies(&ctx) {
        ctx.set_kernel_policy(policy);
        // Linear weight gradient: dW[o, i] = Σ_b dY[b, o] X[b, i], A = dYᵀ, B = X.
        let (batch, outputs, inputs) = (13, 10, 70);
        let mut p = MatmulParams::row_major(1, outputs, inputs, batch);
        p.a_row = 1;
        p.a_k = outputs as u32;
        check(
            &ctx,
            "linear weight gradient",
            p,
            batch * outputs,
            batch * inputs,
            Bias::None,
            3,
        );
        // 1×1 convolution weight gradient: dW[co, ci] = Σ_b Σ_p dY[b, co, p] X[b, ci, p].
        let (batch, cout, cin, pixels) = (3, 20, 9, 49);
        let mut p = MatmulParams::row_major(batch, cout, cin, pixels).summed_over_batch();
        p.a_batch = (cout * pixels) as u32;
        p.a_row = pixels as u32;
        p.a_k = 1;
        p.b_batch = (cin * pixels) as u32;
        p.b_k = 1;
        p.b_col = pixels as u32;
        p.c_row = cin as u32;
        check(
            &ctx,
            "1x1 weight gradient",
            p,
            batch * cout * pixels,
            batch * cin * pixels,
            Bias::None,
            4,
        );
    }
}

#[test]
fn matmul_is_deterministic() {
    let ctx = gpu();
    for policy in kernel_policies(&ctx) {
        ctx.set_kernel_policy(policy);
        let p = MatmulParams::row_major(2, 100, 90, 300);
        let mut rng = Rng::new(9);
        let a = upload(&ctx, "a", &rng.uniform_vec(2 * 100 * 300, -1.0, 1.0));
        let b = upload(&ctx, "b", &rng.uniform_vec(2 * 300 * 90, -1.0, 1.0));
        let c = zeros(&ctx, "c", p.c_len());
        let launch = matmul::launch(&ctx, &p, &a, &b, None, &c);
        ctx.run_blocking("first", &[&launch]);
        let first = c.read_blocking(&ctx);
        ctx.run_blocking("second", &[&launch]);
        assert!(
            first == c.read_blocking(&ctx),
            "two runs differ (kernels {policy:?})"
        );
    }
}

/// Batch-summed GEMMs (pointwise weight gradients) split over the batch: partial results per
/// chunk of images, summed in chunk order. A 1×1 weight gradient over 8 images of 112 × 112
/// loops over 100,352 values per output, more than a kernel may loop, so only split-K applies
/// there whatever the policy; a smaller one splits when split-K is forced. Results also
/// accumulate, and repeat exactly.
#[test]
fn matmul_split_k_over_the_batch_matches_reference() {
    let ctx = gpu();
    for (policy, (batch, cout, cin, pixels)) in [
        (KernelPolicy::Auto, (8, 16, 8, 112 * 112)),
        (KernelPolicy::Only(Variant::SplitK), (5, 20, 9, 300)),
    ] {
        ctx.set_kernel_policy(policy);
        let mut p = MatmulParams::row_major(batch, cout, cin, pixels).summed_over_batch();
        p.a_batch = (cout * pixels) as u32;
        p.a_row = pixels as u32;
        p.a_k = 1;
        p.b_batch = (cin * pixels) as u32;
        p.b_k = 1;
        p.b_col = pixels as u32;
        assert!(matmul::split_k_chunks(&p).is_some());
        assert_eq!(
            matmul::candidates(&ctx, &p).len() == 1,
            batch * pixels > resnet_wgpu::gpu::MAX_REDUCTION
        );
        let (a_len, b_len) = (batch * cout * pixels, batch * cin * pixels);
        let name = format!("split-K weight gradient {batch}x{cout}x{cin}x{pixels}");
        check(&ctx, &name, p, a_len, b_len, Bias::None, 7);
        check(
            &ctx,
            &format!("{name} accumulate"),
            p.accumulating(true),
            a_len,
            b_len,
            Bias::None,
            8,
        );
        let mut rng = Rng::new(11);
        let a = upload(&ctx, "a", &rng.uniform_vec(a_len, -1.0, 1.0));
        let b = upload(&ctx, "b", &rng.uniform_vec(b_len, -1.0, 1.0));
        let c = zeros(&ctx, "c", p.c_len());
        let launch = matmul::launch(&ctx, &p, &a, &b, None, &c);
        assert_eq!(launch.grids().len(), 2, "{name}: partial results and their sum");
        ctx.run_blocking("first", &[&launch]);
        let first = c.read_blocking(&ctx);
        ctx.run_blocking("second", &[&launch]);
        assert!(first == c.read_blocking(&ctx), "{name}: two runs differ");
    }
}
