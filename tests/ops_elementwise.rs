//! Element-wise kernels (ReLU, sum of squares, and the residual add): GPU kernels against their
//! CPU references, CPU backwards against finite differences, run-to-run determinism, and the
//! add's parameter layout.

mod common;
use common::*;
use resnet_wgpu::ops::{add, relu, sum_of_squares};

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

/// Several tensors into one output buffer, each into its own slot of partial sums, the others
/// untouched. The lengths cover a part of one vec4, part of one workgroup's share, one quad
/// past it, and many rounds of every workgroup.
#[test]
fn sum_of_squares_matches_reference_in_its_slot() {
    let ctx = gpu();
    let lengths = [1usize, 255, 257, 4_099, 70_001];
    let partials = sum_of_squares::PARTIALS;
    let out = zeros(&ctx, "sums", (lengths.len() + 1) * partials);
    let mut expected = vec![0.0; lengths.len() + 1];
    let mut inputs = Vec::new();
    for (slot, &len) in lengths.iter().enumerate() {
        let x = Rng::new(20 + slot as u64).uniform_vec(len, -2.0, 2.0);
        expected[slot] = sum_of_squares::sum_of_squares_cpu(&to_f64(&x));
        inputs.push(upload(&ctx, "x", &x));
    }
    let launches: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(slot, x)| sum_of_squares::launch(&ctx, x, &out, slot))
        .collect();
    ctx.submit_all("sums of squares", &launches);
    let sums: Vec<f32> = sum_of_squares::sums_of_partials(&out.read_blocking(&ctx))
        .into_iter()
        .map(|s| s as f32)
        .collect();
    assert_close("sums of squares", &sums, &expected, 1e-5, 1e-5);
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

// ---------------------------------------------------------------------------------------------
// Add

#[test]
fn add_matches_reference() {
    let ctx = gpu();
    for (seed, len) in [
        (1u64, 1usize),
        (2, 255),
        (3, 257),
        (4, 70_001),
        (5, 2 * 256 * 56 * 56),
    ] {
        let a = Rng::new(seed).uniform_vec(len, -1.0, 1.0);
        let b = Rng::new(seed + 100).uniform_vec(len, -1.0, 1.0);
        let (ab, bb, outb) = (
            upload(&ctx, "a", &a),
            upload(&ctx, "b", &b),
            poisoned(&ctx, "out", len),
        );
        let launch = add::forward(&ctx, &ab, &bb, &outb);
        ctx.run_blocking("add", &[&launch]);
        // One f32 rounding of the exact sum.
        let reference = add::forward_cpu(&to_f64(&a), &to_f64(&b));
        assert_close(
            &format!("add len {len}"),
            &outb.read_blocking(&ctx),
            &reference,
            0.0,
            1e-7,
        );
        if len == 70_001 {
            assert_deterministic(&ctx, "add", &launch, &outb);
        }
    }
}

#[test]
fn add_sums_gradients_of_two_paths() {
    // The backward of a branch point: the gradients arriving from both paths are summed.
    let ctx = gpu();
    let len = 1000;
    let g1 = Rng::new(11).uniform_vec(len, -1.0, 1.0);
    let g2 = Rng::new(12).uniform_vec(len, -1.0, 1.0);
    let (g1b, g2b, sumb) = (
        upload(&ctx, "g1", &g1),
        upload(&ctx, "g2", &g2),
        zeros(&ctx, "sum", len),
    );
    ctx.run_blocking("add gradients", &[&add::forward(&ctx, &g1b, &g2b, &sumb)]);
    let (da, db) = add::backward_cpu(&to_f64(&g1));
    assert_eq!(da, to_f64(&g1));
    assert_eq!(db, to_f64(&g1));
    assert_close(
        "gradient sum",
        &sumb.read_blocking(&ctx),
        &add::forward_cpu(&to_f64(&g1), &to_f64(&g2)),
        0.0,
        1e-7,
    );
}

#[test]
#[should_panic(expected = "distinct")]
fn add_rejects_an_aliased_output() {
    let ctx = gpu();
    let (a, b) = (zeros(&ctx, "a", 4), zeros(&ctx, "b", 4));
    let _ = add::forward(&ctx, &a, &b, &a);
}

#[test]
fn add_backward_matches_finite_differences() {
    let a: Vec<f64> = to_f64(&Rng::new(21).uniform_vec(40, -1.0, 1.0));
    let b: Vec<f64> = to_f64(&Rng::new(22).uniform_vec(40, -1.0, 1.0));
    let w = probe_weights(a.len(), 23);
    let (da, db) = add::backward_cpu(&w);
    assert_gradient(
        "add da",
        &da,
        &numeric_gradient(&a, |a| dot(&add::forward_cpu(a, &b), &w)),
    );
    assert_gradient(
        "add db",
        &db,
        &numeric_gradient(&b, |b| dot(&add::forward_cpu(&a, b), &w)),
    );
}

#[test]
fn add_params_match_the_wgsl_layout() {
    // u32 fields only, padded to 16 bytes as the WGSL uniform struct.
    assert_eq!(std::mem::size_of::<add::AddParams>(), 16);
    assert_eq!(
        bytemuck::cast::<_, [u32; 4]>(add::AddParams::new(70_001)),
        [70_001, 0, 0, 0]
    );
}
