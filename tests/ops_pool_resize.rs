//! Max pool, global average pool and nearest upsampling: GPU kernels against their CPU
//! references (awkward shapes included), CPU backwards against finite differences, and
//! run-to-run determinism.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuBuffer, GpuContext};
use resnet_wgpu::ops::max_pool::MaxPoolShape;
use resnet_wgpu::ops::upsample::UpsampleShape;
use resnet_wgpu::ops::{global_avg_pool, max_pool, upsample};

/// `len` distinct values (a shuffled ramp with steps of 0.01), so that max pooling has no ties
/// even under finite-difference perturbations.
fn distinct_values(len: usize, seed: u64) -> Vec<f64> {
    let mut values: Vec<f64> = (0..len).map(|i| (i as f64 - len as f64 / 2.0) * 0.01).collect();
    Rng::new(seed).shuffle(&mut values);
    values
}

// ---------------------------------------------------------------------------------------------
// Max pool

/// `(batch, channels, h, w, kernel, stride, pad)`.
const MAX_POOL_CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
    // 2×2 stride 2, no padding (the blog's stem).
    (2, 3, 8, 8, 2, 2, 0),
    (1, 5, 7, 7, 2, 2, 0),
    (1, 1, 5, 9, 2, 2, 0),
    (1, 300, 2, 2, 2, 2, 0),
    (2, 64, 112, 112, 2, 2, 0),
    // 3×3 stride 2, padding 1 (torchvision's stem).
    (2, 64, 112, 112, 3, 2, 1),
    (1, 3, 7, 7, 3, 2, 1),
    (2, 5, 5, 9, 3, 2, 1),
    (1, 300, 1, 1, 3, 2, 1),
    (1, 2, 2, 2, 3, 2, 1),
    (4, 7, 6, 6, 3, 2, 1),
    // Other windows: overlapping stride 1, non-overlapping 3×3, padded 2×2.
    (2, 3, 9, 7, 3, 1, 1),
    (1, 4, 10, 11, 3, 3, 0),
    (3, 2, 5, 6, 2, 1, 1),
    (1, 2, 13, 13, 5, 2, 2),
];

fn max_pool_shapes() -> impl Iterator<Item = MaxPoolShape> {
    MAX_POOL_CASES
        .iter()
        .map(|&(n, c, h, w, k, s, p)| MaxPoolShape::new(n, c, h, w, k, s, p))
}

/// Runs forward and backward on the GPU and checks them against the CPU reference.
fn check_max_pool(ctx: &GpuContext, shape: &MaxPoolShape, x: &[f32], dy: &[f32]) {
    let name = format!("max pool {shape:?}");
    let xb = upload(ctx, "x", x);
    let yb = poisoned(ctx, "y", shape.output_len());
    let argmaxb = GpuBuffer::<u32>::from_slice(ctx, "argmax", &vec![u32::MAX; shape.output_len()]);
    let dyb = upload(ctx, "dy", dy);
    let dxb = poisoned(ctx, "dx", shape.input_len());
    let fwd = max_pool::forward(ctx, shape, &xb, &yb, &argmaxb);
    let bwd = max_pool::backward(ctx, shape, &argmaxb, &dyb, &dxb);
    ctx.run_blocking("max pool", &[&fwd, &bwd]);

    let (y_ref, argmax_ref) = max_pool::forward_cpu(shape, &to_f64(x));
    assert_close(
        &format!("{name} forward"),
        &yb.read_blocking(ctx),
        &y_ref,
        0.0,
        0.0,
    );
    let argmax = argmaxb.read_blocking(ctx);
    if let Some(i) = (0..argmax.len()).find(|&i| argmax[i] != argmax_ref[i]) {
        panic!(
            "{name}: argmax at {i} is {} on the GPU, {} in the reference",
            argmax[i], argmax_ref[i]
        );
    }
    let dx_ref = max_pool::backward_cpu(shape, &argmax_ref, &to_f64(dy));
    assert_close(
        &format!("{name} backward"),
        &dxb.read_blocking(ctx),
        &dx_ref,
        1e-6,
        1e-6,
    );
}

#[test]
fn max_pool_matches_reference() {
    let ctx = gpu();
    for (i, shape) in max_pool_shapes().enumerate() {
        let seed = 1000 + 10 * i as u64;
        let x = Rng::new(seed).uniform_vec(shape.input_len(), -1.0, 1.0);
        let dy = Rng::new(seed + 1).uniform_vec(shape.output_len(), -1.0, 1.0);
        check_max_pool(&ctx, &shape, &x, &dy);
    }
}

#[test]
fn max_pool_padding_is_negative_infinity() {
    // All inputs negative: a zero-valued padding would win every border window.
    let ctx = gpu();
    for shape in max_pool_shapes().filter(|s| s.pad > 0) {
        let x = Rng::new(5).uniform_vec(shape.input_len(), -3.0, -1.0);
        let dy = Rng::new(6).uniform_vec(shape.output_len(), -1.0, 1.0);
        check_max_pool(&ctx, &shape, &x, &dy);
    }
    let shape = MaxPoolShape::new(1, 1, 1, 1, 3, 2, 1);
    let (y, argmax) = max_pool::forward_cpu(&shape, &[-5.0]);
    assert_eq!((y, argmax), (vec![-5.0], vec![0]));
}

#[test]
fn max_pool_ties_pick_the_first_maximum() {
    // After a ReLU most values are 0: windows are full of ties. The first maximum in row-major
    // window order wins, as in PyTorch, on the GPU and in the reference alike.
    let ctx = gpu();
    for (i, shape) in max_pool_shapes().enumerate() {
        let x: Vec<f32> = Rng::new(50 + i as u64)
            .uniform_vec(shape.input_len(), -2.0, 1.0)
            .iter()
            .map(|&v| v.round().max(0.0))
            .collect();
        let dy = Rng::new(60 + i as u64).uniform_vec(shape.output_len(), -1.0, 1.0);
        check_max_pool(&ctx, &shape, &x, &dy);
    }
    // A hand-checked window: [[1, 3], [3, 2]] → 3 at index 1, not 2.
    let shape = MaxPoolShape::new(1, 1, 2, 2, 2, 2, 0);
    assert_eq!(
        max_pool::forward_cpu(&shape, &[1.0, 3.0, 3.0, 2.0]),
        (vec![3.0], vec![1])
    );
}

#[test]
fn max_pool_output_sizes_follow_pytorch() {
    // floor((H + 2p − k)/s) + 1
    assert_eq!(MaxPoolShape::new(1, 1, 112, 112, 3, 2, 1).out_h(), 56);
    assert_eq!(MaxPoolShape::new(1, 1, 112, 112, 2, 2, 0).out_h(), 56);
    assert_eq!(MaxPoolShape::new(1, 1, 7, 7, 2, 2, 0).out_h(), 3);
    assert_eq!(MaxPoolShape::new(1, 1, 7, 7, 3, 2, 1).out_h(), 4);
    let shape = MaxPoolShape::new(1, 1, 5, 9, 3, 2, 1);
    assert_eq!((shape.out_h(), shape.out_w()), (3, 5));
}

#[test]
fn max_pool_backward_matches_finite_differences() {
    for (i, &(n, c, h, w, k, s, p)) in [
        (1, 2, 5, 5, 2, 2, 0),
        (2, 2, 7, 7, 3, 2, 1),
        (1, 2, 5, 6, 3, 1, 1),
        (1, 1, 6, 5, 2, 1, 1),
        (1, 3, 1, 1, 3, 2, 1),
    ]
    .iter()
    .enumerate()
    {
        let shape = MaxPoolShape::new(n, c, h, w, k, s, p);
        let x = distinct_values(shape.input_len(), 70 + i as u64);
        let weights = probe_weights(shape.output_len(), 80 + i as u64);
        let (_, argmax) = max_pool::forward_cpu(&shape, &x);
        let analytic = max_pool::backward_cpu(&shape, &argmax, &weights);
        let numeric = numeric_gradient(&x, |x| dot(&max_pool::forward_cpu(&shape, x).0, &weights));
        assert_gradient(&format!("max pool {shape:?}"), &analytic, &numeric);
    }
}

#[test]
fn max_pool_is_deterministic() {
    let ctx = gpu();
    let shape = MaxPoolShape::new(2, 64, 112, 112, 3, 2, 1);
    let x = Rng::new(90).uniform_vec(shape.input_len(), -1.0, 1.0);
    let dy = Rng::new(91).uniform_vec(shape.output_len(), -1.0, 1.0);
    let (xb, yb, dyb, dxb) = (
        upload(&ctx, "x", &x),
        zeros(&ctx, "y", shape.output_len()),
        upload(&ctx, "dy", &dy),
        zeros(&ctx, "dx", shape.input_len()),
    );
    let argmaxb = GpuBuffer::<u32>::zeros(&ctx, "argmax", shape.output_len());
    let fwd = max_pool::forward(&ctx, &shape, &xb, &yb, &argmaxb);
    assert_deterministic(&ctx, "max pool forward", &fwd, &yb);
    let bwd = max_pool::backward(&ctx, &shape, &argmaxb, &dyb, &dxb);
    assert_deterministic(&ctx, "max pool backward", &bwd, &dxb);
}

// ---------------------------------------------------------------------------------------------
// Global average pool

const GAP_SHAPES: &[[usize; 4]] = &[
    [2, 2048, 7, 7],
    [1, 1, 1, 1],
    [3, 5, 1, 1],
    [1, 300, 13, 11],
    [2, 64, 56, 56],
    [129, 512, 4, 4],
];

#[test]
fn global_avg_pool_matches_reference() {
    let ctx = gpu();
    for (i, &shape) in GAP_SHAPES.iter().enumerate() {
        let [n, c, h, w] = shape;
        let x = Rng::new(200 + i as u64).uniform_vec(n * c * h * w, -1.0, 1.0);
        let dy = Rng::new(300 + i as u64).uniform_vec(n * c, -1.0, 1.0);
        let (xb, yb, dyb, dxb) = (
            upload(&ctx, "x", &x),
            poisoned(&ctx, "y", n * c),
            upload(&ctx, "dy", &dy),
            poisoned(&ctx, "dx", x.len()),
        );
        let fwd = global_avg_pool::forward(&ctx, shape, &xb, &yb);
        let bwd = global_avg_pool::backward(&ctx, shape, &dyb, &dxb);
        ctx.run_blocking("global average pool", &[&fwd, &bwd]);
        let y_ref = global_avg_pool::forward_cpu(shape, &to_f64(&x));
        assert_close(
            &format!("global avg pool {shape:?} forward"),
            &yb.read_blocking(&ctx),
            &y_ref,
            1e-6,
            1e-5,
        );
        let dx_ref = global_avg_pool::backward_cpu(shape, &to_f64(&dy));
        assert_close(
            &format!("global avg pool {shape:?} backward"),
            &dxb.read_blocking(&ctx),
            &dx_ref,
            0.0,
            1e-6,
        );
    }
}

#[test]
fn global_avg_pool_backward_matches_finite_differences() {
    for (i, &shape) in [[2, 3, 4, 5], [1, 2, 1, 1], [1, 1, 7, 7]].iter().enumerate() {
        let [n, c, h, w] = shape;
        let x = to_f64(&Rng::new(400 + i as u64).uniform_vec(n * c * h * w, -1.0, 1.0));
        let weights = probe_weights(n * c, 410 + i as u64);
        let analytic = global_avg_pool::backward_cpu(shape, &weights);
        let numeric = numeric_gradient(&x, |x| dot(&global_avg_pool::forward_cpu(shape, x), &weights));
        assert_gradient(&format!("global avg pool {shape:?}"), &analytic, &numeric);
    }
}

#[test]
fn global_avg_pool_is_deterministic() {
    let ctx = gpu();
    let shape = [2, 64, 56, 56];
    let x = Rng::new(420).uniform_vec(2 * 64 * 56 * 56, -1.0, 1.0);
    let (xb, yb) = (upload(&ctx, "x", &x), zeros(&ctx, "y", 2 * 64));
    let fwd = global_avg_pool::forward(&ctx, shape, &xb, &yb);
    assert_deterministic(&ctx, "global average pool forward", &fwd, &yb);
}

// ---------------------------------------------------------------------------------------------
// Nearest upsampling

/// `(batch, channels, (in_h, in_w), (out_h, out_w))`.
type UpsampleCase = (usize, usize, (usize, usize), (usize, usize));

const UPSAMPLE_CASES: &[UpsampleCase] = &[
    (2, 3, (32, 32), (224, 224)), // the blog's input resize
    (1, 1, (1, 1), (3, 5)),
    (2, 3, (5, 7), (10, 21)),
    (1, 4, (7, 5), (7, 5)), // identity
    (1, 2, (3, 4), (7, 9)), // non-integer ratios
    (1, 2, (8, 6), (3, 4)), // downsampling: some inputs get no gradient
    (3, 17, (2, 3), (4, 6)),
    (1, 300, (1, 1), (1, 1)),
];

fn upsample_shapes() -> impl Iterator<Item = UpsampleShape> {
    UPSAMPLE_CASES
        .iter()
        .map(|&(n, c, input, output)| UpsampleShape::new(n, c, input, output))
}

#[test]
fn upsample_matches_reference() {
    let ctx = gpu();
    for (i, shape) in upsample_shapes().enumerate() {
        let x = Rng::new(500 + i as u64).uniform_vec(shape.input_len(), -1.0, 1.0);
        let dy = Rng::new(600 + i as u64).uniform_vec(shape.output_len(), -1.0, 1.0);
        let (xb, yb, dyb, dxb) = (
            upload(&ctx, "x", &x),
            poisoned(&ctx, "y", shape.output_len()),
            upload(&ctx, "dy", &dy),
            poisoned(&ctx, "dx", shape.input_len()),
        );
        let fwd = upsample::forward(&ctx, &shape, &xb, &yb);
        let bwd = upsample::backward(&ctx, &shape, &dyb, &dxb);
        ctx.run_blocking("upsample", &[&fwd, &bwd]);
        let y_ref = upsample::forward_cpu(&shape, &to_f64(&x));
        assert_close(
            &format!("upsample {shape:?} forward"),
            &yb.read_blocking(&ctx),
            &y_ref,
            0.0,
            0.0,
        );
        let dx_ref = upsample::backward_cpu(&shape, &to_f64(&dy));
        assert_close(
            &format!("upsample {shape:?} backward"),
            &dxb.read_blocking(&ctx),
            &dx_ref,
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn upsample_integer_ratio_repeats_each_pixel() {
    // 32 → 224 is a factor of 7: PyTorch's nearest copies each pixel into a 7×7 block.
    let shape = UpsampleShape::new(1, 2, (32, 32), (224, 224));
    let x: Vec<f64> = (0..shape.input_len()).map(|i| i as f64).collect();
    let y = upsample::forward_cpu(&shape, &x);
    for c in 0..2 {
        for oh in 0..224 {
            for ow in 0..224 {
                assert_eq!(y[(c * 224 + oh) * 224 + ow], x[(c * 32 + oh / 7) * 32 + ow / 7]);
            }
        }
    }
    // Backward sums the 7×7 block.
    let dx = upsample::backward_cpu(&shape, &vec![1.0; shape.output_len()]);
    assert!(dx.iter().all(|&g| g == 49.0));
}

#[test]
fn upsample_backward_matches_finite_differences() {
    for (i, &(n, c, input, output)) in [
        (1, 2, (3, 3), (9, 6)),
        (2, 1, (3, 4), (7, 9)),
        (1, 2, (5, 4), (3, 2)),
        (1, 1, (1, 1), (2, 3)),
    ]
    .iter()
    .enumerate()
    {
        let shape = UpsampleShape::new(n, c, input, output);
        let x = to_f64(&Rng::new(700 + i as u64).uniform_vec(shape.input_len(), -1.0, 1.0));
        let weights = probe_weights(shape.output_len(), 710 + i as u64);
        let analytic = upsample::backward_cpu(&shape, &weights);
        let numeric = numeric_gradient(&x, |x| dot(&upsample::forward_cpu(&shape, x), &weights));
        assert_gradient(&format!("upsample {shape:?}"), &analytic, &numeric);
    }
}

#[test]
fn upsample_is_deterministic() {
    let ctx = gpu();
    let shape = UpsampleShape::new(2, 3, (32, 32), (224, 224));
    let dy = Rng::new(720).uniform_vec(shape.output_len(), -1.0, 1.0);
    let (dyb, dxb) = (upload(&ctx, "dy", &dy), zeros(&ctx, "dx", shape.input_len()));
    let bwd = upsample::backward(&ctx, &shape, &dyb, &dxb);
    assert_deterministic(&ctx, "upsample backward", &bwd, &dxb);
}

#[test]
fn large_launches_use_a_2d_grid() {
    // More than 65,535 × 256 outputs: the launch must spread its workgroups over two axes.
    let ctx = gpu();
    let shape = UpsampleShape::new(128, 3, (32, 32), (224, 224));
    assert!(shape.output_len() > 65_535 * 256);
    let x = Rng::new(730).uniform_vec(shape.input_len(), -1.0, 1.0);
    let (xb, yb) = (upload(&ctx, "x", &x), poisoned(&ctx, "y", shape.output_len()));
    let fwd = upsample::forward(&ctx, &shape, &xb, &yb);
    assert!(
        fwd.grids()[0][1] > 1,
        "expected a 2-D grid, got {:?}",
        fwd.grids()[0]
    );
    ctx.run_blocking("upsample large", &[&fwd]);
    let y_ref = upsample::forward_cpu(&shape, &to_f64(&x));
    assert_close(
        "upsample [128,3,32,32]→224 forward",
        &yb.read_blocking(&ctx),
        &y_ref,
        0.0,
        0.0,
    );
}

#[test]
fn params_structs_match_the_wgsl_layouts() {
    // u32 fields only, padded to a multiple of 16 bytes as the WGSL uniform structs.
    assert_eq!(std::mem::size_of::<max_pool::MaxPoolParams>(), 32);
    assert_eq!(std::mem::size_of::<global_avg_pool::GlobalAvgPoolParams>(), 16);
    assert_eq!(std::mem::size_of::<upsample::UpsampleParams>(), 32);
    let p = MaxPoolShape::new(2, 64, 112, 112, 3, 2, 1).params();
    assert_eq!(bytemuck::cast::<_, [u32; 8]>(p), [128, 112, 112, 56, 56, 3, 2, 1]);
    let p = UpsampleShape::new(2, 3, (32, 32), (224, 224)).params();
    assert_eq!(bytemuck::cast::<_, [u32; 8]>(p), [6, 32, 32, 224, 224, 0, 0, 0]);
}
