//! The GEMM kernels (portable and subgroup) against the CPU reference.

mod common;
use common::*;
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
    for subgroups in variants(&ctx) {
        ctx.set_use_subgroups(subgroups);
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
                let name = format!("matmul {batch}x{m}x{n}x{k} bias {bias:?} subgroups {subgroups}");
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
    for subgroups in variants(&ctx) {
        ctx.set_use_subgroups(subgroups);
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
    for subgroups in variants(&ctx) {
        ctx.set_use_subgroups(subgroups);
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
            "two runs differ (subgroups {subgroups})"
        );
    }
}
