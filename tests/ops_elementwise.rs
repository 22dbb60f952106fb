//! Element-wise kernels against their CPU references, and CPU backwards against finite
//! differences.

mod common;
use common::*;
use resnet_wgpu::ops::relu;

#[test]
fn relu_matches_reference() {
    let ctx = gpu();
    for (seed, len) in [(1u64, 1usize), (2, 255), (3, 257), (4, 70_001)] {
        let x = Rng::new(seed).uniform_vec(len, -1.0, 1.0);
        let dy = Rng::new(seed + 100).uniform_vec(len, -1.0, 1.0);
        let (xb, yb, dyb, dxb) = (
            upload(&ctx, "x", &x),
            zeros(&ctx, "y", len),
            upload(&ctx, "dy", &dy),
            zeros(&ctx, "dx", len),
        );
        let fwd = relu::forward(&ctx, &xb, &yb);
        let bwd = relu::backward(&ctx, &yb, &dyb, &dxb);
        ctx.run_blocking("relu", &[&fwd, &bwd]);
        let y_ref = relu::forward_cpu(&to_f64(&x));
        assert_close("relu forward", &yb.read_blocking(&ctx), &y_ref, 0.0, 0.0);
        assert_close(
            "relu backward",
            &dxb.read_blocking(&ctx),
            &relu::backward_cpu(&y_ref, &to_f64(&dy)),
            0.0,
            0.0,
        );
    }
}

#[test]
fn relu_backward_matches_finite_differences() {
    // Points away from the kink at 0, where the derivative is undefined.
    let x: Vec<f64> = Rng::new(7)
        .uniform_vec(50, -1.0, 1.0)
        .iter()
        .map(|&v| v as f64 + v.signum() as f64 * 0.01)
        .collect();
    let w = probe_weights(x.len(), 8);
    let analytic = relu::backward_cpu(&relu::forward_cpu(&x), &w);
    let numeric = numeric_gradient(&x, |x| dot(&relu::forward_cpu(x), &w));
    assert_gradient("relu", &analytic, &numeric);
}
