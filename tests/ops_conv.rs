//! Convolution kernels (every variant, asked for by name where it applies: portable,
//! subgroup, subgroup-wide, split-K, and the GEMM variants of pointwise convolutions) against
//! the CPU reference, and the CPU backward against finite differences.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuContext, MAX_REDUCTION, Variant};
use resnet_wgpu::ops::conv2d::{self, Conv2dShape, Direction};

#[allow(clippy::too_many_arguments)]
fn shape(
    batch: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
) -> Conv2dShape {
    Conv2dShape {
        batch,
        in_channels: cin,
        in_height: h,
        in_width: w,
        out_channels: cout,
        kernel: k,
        stride: s,
        padding: p,
    }
}

/// Runs forward (with and without bias), input and weight gradients (plain and accumulating)
/// on `variant` and compares each with the CPU reference; returns how many directions the
/// variant applies to (the others are not run).
fn check_all(ctx: &GpuContext, s: Conv2dShape, seed: u64, variant: Variant) -> usize {
    check_directions(ctx, s, seed, &Direction::ALL, variant)
}

/// [`check_all`] for some of the three directions.
fn check_directions(
    ctx: &GpuContext,
    s: Conv2dShape,
    seed: u64,
    directions: &[Direction],
    variant: Variant,
) -> usize {
    let directions: Vec<Direction> = directions
        .iter()
        .copied()
        .filter(|&d| conv2d::applies(ctx, d, &s, variant))
        .collect();
    let mut rng = Rng::new(seed);
    let x = rng.uniform_vec(s.input_len(), -1.0, 1.0);
    let w = rng.uniform_vec(s.weight_len(), -1.0, 1.0);
    let bias = rng.uniform_vec(s.out_channels, -1.0, 1.0);
    let dy = rng.uniform_vec(s.output_len(), -1.0, 1.0);
    let old_dx = rng.uniform_vec(s.input_len(), -1.0, 1.0);
    let old_dw = rng.uniform_vec(s.weight_len(), -1.0, 1.0);
    let (xb, wb, bb, dyb) = (
        upload(ctx, "x", &x),
        upload(ctx, "w", &w),
        upload(ctx, "bias", &bias),
        upload(ctx, "dy", &dy),
    );
    let (x, w, dy) = (to_f64(&x), to_f64(&w), to_f64(&dy));
    let name = format!("{s:?} kernels {variant}");
    let reduce = |n: usize| 1e-5 * (n as f64).sqrt();
    if directions.contains(&Direction::Forward) {
        let (y1, y2) = (
            zeros(ctx, "y", s.output_len()),
            zeros(ctx, "y bias", s.output_len()),
        );
        let launches = [
            conv2d::forward_with(ctx, variant, &s, &xb, &wb, None, &y1),
            conv2d::forward_with(ctx, variant, &s, &xb, &wb, Some(&bb), &y2),
        ];
        launches.iter().for_each(|l| assert_ran(l, variant, &name));
        ctx.run_blocking("conv2d forward", &launches.iter().collect::<Vec<_>>());
        assert_no_device_error(ctx, &format!("forward {name}"));
        let fan_in = s.in_channels * s.kernel[0] * s.kernel[1];
        let y_ref = conv2d::forward_cpu(&s, &x, &w, None);
        assert_close(
            &format!("forward {name}"),
            &y1.read_blocking(ctx),
            &y_ref,
            reduce(fan_in),
            1e-4,
        );
        let yb_ref = conv2d::forward_cpu(&s, &x, &w, Some(&to_f64(&bias)));
        assert_close(
            &format!("forward+bias {name}"),
            &y2.read_blocking(ctx),
            &yb_ref,
            reduce(fan_in),
            1e-4,
        );
    }
    if directions.contains(&Direction::InputGrad) {
        let (dx, dx_acc) = (zeros(ctx, "dx", s.input_len()), upload(ctx, "dx acc", &old_dx));
        let launches = [
            conv2d::input_grad_with(ctx, variant, &s, &dyb, &wb, &dx, false),
            conv2d::input_grad_with(ctx, variant, &s, &dyb, &wb, &dx_acc, true),
        ];
        launches.iter().for_each(|l| assert_ran(l, variant, &name));
        ctx.run_blocking("conv2d input grad", &launches.iter().collect::<Vec<_>>());
        assert_no_device_error(ctx, &format!("input grad {name}"));
        let dx_ref = conv2d::input_grad_cpu(&s, &dy, &w);
        let fan_out = s.out_channels * s.kernel[0] * s.kernel[1];
        assert_close(
            &format!("input grad {name}"),
            &dx.read_blocking(ctx),
            &dx_ref,
            reduce(fan_out),
            1e-4,
        );
        let dx_acc_ref: Vec<f64> = dx_ref.iter().zip(&old_dx).map(|(a, &b)| a + b as f64).collect();
        assert_close(
            &format!("input grad acc {name}"),
            &dx_acc.read_blocking(ctx),
            &dx_acc_ref,
            reduce(fan_out),
            1e-4,
        );
    }
    if directions.contains(&Direction::WeightGrad) {
        let (dw, dw_acc) = (zeros(ctx, "dw", s.weight_len()), upload(ctx, "dw acc", &old_dw));
        let launches = [
            conv2d::weight_grad_with(ctx, variant, &s, &dyb, &xb, &dw, false),
            conv2d::weight_grad_with(ctx, variant, &s, &dyb, &xb, &dw_acc, true),
        ];
        launches.iter().for_each(|l| assert_ran(l, variant, &name));
        ctx.run_blocking("conv2d weight grad", &launches.iter().collect::<Vec<_>>());
        assert_no_device_error(ctx, &format!("weight grad {name}"));
        let dw_ref = conv2d::weight_grad_cpu(&s, &dy, &x);
        let terms = s.batch * s.out_height() * s.out_width();
        assert_close(
            &format!("weight grad {name}"),
            &dw.read_blocking(ctx),
            &dw_ref,
            reduce(terms),
            1e-4,
        );
        let dw_acc_ref: Vec<f64> = dw_ref.iter().zip(&old_dw).map(|(a, &b)| a + b as f64).collect();
        assert_close(
            &format!("weight grad acc {name}"),
            &dw_acc.read_blocking(ctx),
            &dw_acc_ref,
            reduce(terms),
            1e-4,
        );
    }
    directions.len()
}

#[test]
fn conv_awkward_shapes_match_reference() {
    let ctx = gpu();
    let shapes = [
        shape(1, 1, 1, 1, 1, [1, 1], [1, 1], [0, 0]),
        shape(1, 3, 5, 5, 2, [3, 3], [1, 1], [1, 1]),
        shape(2, 5, 7, 9, 17, [3, 3], [2, 2], [1, 1]),
        shape(1, 3, 11, 11, 9, [7, 7], [2, 2], [3, 3]),
        shape(3, 20, 9, 7, 33, [1, 1], [2, 2], [0, 0]),
        shape(2, 19, 6, 6, 21, [1, 1], [1, 1], [0, 0]),
        shape(2, 19, 9, 10, 21, [1, 1], [1, 1], [0, 0]),
        shape(1, 4, 1, 1, 70, [3, 3], [1, 1], [1, 1]),
        shape(2, 6, 8, 10, 5, [2, 3], [1, 2], [0, 1]),
        shape(1, 8, 13, 13, 8, [5, 5], [3, 3], [2, 2]),
        // Taps that read only padding, which the subgroup kernels skip: the centre of a 3×3
        // kernel on a 1×1 plane, a stride-2 3×3 kernel on a 2×2 plane (its lower right 2×2),
        // live rows but not columns, a 7×7 stem on a tiny image, and an output that reads
        // padding only (no live tap at all).
        shape(3, 5, 1, 1, 19, [3, 3], [1, 1], [1, 1]),
        shape(2, 6, 2, 2, 9, [3, 3], [2, 2], [1, 1]),
        shape(2, 3, 1, 5, 4, [3, 3], [1, 1], [1, 1]),
        shape(1, 2, 2, 3, 5, [7, 7], [2, 2], [3, 3]),
        shape(1, 1, 1, 1, 1, [1, 1], [4, 4], [1, 1]),
        // Stride phases of the input gradient: phases with no taps (a 1×1 kernel of stride 3,
        // whose other 8 phases only store zeros), a phase with no pixels (stride 4 on 3 rows),
        // strides that differ by axis with padding past the stride, and more phases than rows.
        shape(2, 4, 7, 8, 6, [1, 1], [3, 3], [0, 0]),
        shape(1, 3, 3, 9, 5, [3, 3], [4, 2], [1, 1]),
        shape(2, 5, 10, 9, 7, [5, 3], [3, 2], [4, 2]),
        shape(1, 2, 2, 2, 3, [2, 2], [3, 3], [1, 1]),
    ];
    for variant in kernel_variants(&ctx) {
        let checked: usize = shapes
            .into_iter()
            .enumerate()
            .map(|(i, s)| check_all(&ctx, s, i as u64, variant))
            .sum();
        assert!(checked > 0, "{variant} ran on none of the shapes");
    }
}

/// A strided input gradient sums each input pixel over the taps that reach it alone (stride
/// phases): with one weight tap infinite, the pixels that tap never reaches stay finite and
/// match the reference. A kernel that multiplied the zeros of a masked gather by every tap
/// would give them 0 · ∞ = NaN.
#[test]
fn strided_input_gradients_never_touch_the_taps_a_pixel_does_not_reach() {
    let ctx = gpu();
    let shapes = [
        shape(2, 3, 9, 8, 20, [3, 3], [2, 2], [1, 1]),
        shape(1, 4, 7, 11, 6, [1, 1], [2, 3], [0, 0]),
        shape(1, 3, 11, 11, 5, [7, 7], [2, 2], [3, 3]),
    ];
    for variant in kernel_variants(&ctx) {
        for (i, s) in shapes.into_iter().enumerate() {
            if !conv2d::applies(&ctx, Direction::InputGrad, &s, variant) {
                continue;
            }
            let mut rng = Rng::new(300 + i as u64);
            let dy = rng.uniform_vec(s.output_len(), -1.0, 1.0);
            let mut w = rng.uniform_vec(s.weight_len(), -1.0, 1.0);
            // Tap (0, 0) of output channel 1, every input channel, is infinite; it reaches
            // input rows and columns ≡ −padding (mod stride).
            let taps = s.kernel[0] * s.kernel[1];
            for ci in 0..s.in_channels {
                w[(s.in_channels + ci) * taps] = f32::INFINITY;
            }
            let dx = zeros(&ctx, "dx", s.input_len());
            let launch = conv2d::input_grad_with(
                &ctx,
                variant,
                &s,
                &upload(&ctx, "dy", &dy),
                &upload(&ctx, "w", &w),
                &dx,
                false,
            );
            let name = format!("{s:?} kernels {variant}");
            assert_ran(&launch, variant, &name);
            ctx.run_blocking("strided input grad", &[&launch]);
            assert_no_device_error(&ctx, &name);
            // The pixels away from the infinite tap's phase do not depend on it: the reference
            // with it zero holds for them.
            let finite_w: Vec<f64> = w
                .iter()
                .map(|&v| if v.is_finite() { v as f64 } else { 0.0 })
                .collect();
            let reference = conv2d::input_grad_cpu(&s, &to_f64(&dy), &finite_w);
            let reached = |i: usize, pad: usize, stride: usize| (i + pad).is_multiple_of(stride);
            let (mut gpu, mut expected) = (Vec::new(), Vec::new());
            for (at, (&got, &want)) in dx.read_blocking(&ctx).iter().zip(&reference).enumerate() {
                let (ih, iw) = ((at / s.in_width) % s.in_height, at % s.in_width);
                if !(reached(ih, s.padding[0], s.stride[0]) && reached(iw, s.padding[1], s.stride[1])) {
                    gpu.push(got);
                    expected.push(want);
                }
            }
            assert!(
                !gpu.is_empty(),
                "{name}: every pixel is in the infinite tap's phase"
            );
            let fan_out = s.out_channels * taps;
            assert_close(&name, &gpu, &expected, 1e-5 * (fan_out as f64).sqrt(), 1e-4);
        }
    }
}

/// The live taps of a kernel are those that read the input for some output position, found
/// here by trying every position. `live_taps` must hold all of them (the kernels skip the
/// rest), and with stride 1 be exactly their range; where no tap reaches the input, it is the
/// whole kernel.
#[test]
fn live_taps_hold_every_tap_that_reaches_the_input() {
    let mut windows_smaller_than_the_kernel = 0;
    for size in 1..6 {
        for k in 1..8 {
            for stride in 1..4 {
                for pad in 0..4 {
                    if size + 2 * pad < k {
                        continue;
                    }
                    let s = shape(1, 1, size, size + 1, 1, [k, k], [stride, stride], [pad, pad]);
                    let reaches = |tap: usize, outputs: usize, input: usize| {
                        (0..outputs).any(|o| (o * stride + tap).checked_sub(pad).is_some_and(|i| i < input))
                    };
                    let rows: Vec<usize> = (0..k).filter(|&kh| reaches(kh, s.out_height(), size)).collect();
                    let columns: Vec<usize> = (0..k)
                        .filter(|&kw| reaches(kw, s.out_width(), size + 1))
                        .collect();
                    let [live_rows, live_columns] = s.live_taps();
                    assert!(
                        rows.iter().all(|kh| live_rows.contains(kh)),
                        "{s:?}: {rows:?} not in {live_rows:?}"
                    );
                    assert!(
                        columns.iter().all(|kw| live_columns.contains(kw)),
                        "{s:?}: {columns:?} not in {live_columns:?}"
                    );
                    let range = |taps: &[usize]| match (taps.first(), taps.last()) {
                        (Some(&first), Some(&last)) => first..last + 1,
                        _ => 0..k,
                    };
                    if stride == 1 {
                        assert_eq!(
                            [live_rows.clone(), live_columns],
                            [range(&rows), range(&columns)],
                            "{s:?}"
                        );
                    }
                    if live_rows.len() < k {
                        windows_smaller_than_the_kernel += 1;
                    }
                }
            }
        }
    }
    assert!(
        windows_smaller_than_the_kernel > 50,
        "{windows_smaller_than_the_kernel}"
    );
}

#[test]
fn conv_resnet50_layer_shapes_match_reference() {
    let ctx = gpu();
    // Real ResNet-50 layers (224-pixel network, spatial size reduced where the CPU reference
    // would be slow; channel counts and kernels as in the network), batch 1-2.
    let shapes = [
        Conv2dShape::square(1, 3, 40, 64, 7, 2, 3),    // stem
        Conv2dShape::square(2, 64, 14, 64, 3, 1, 1),   // layer1 conv2
        Conv2dShape::square(2, 64, 14, 256, 1, 1, 0),  // layer1 conv3 / shortcut
        Conv2dShape::square(1, 256, 14, 128, 3, 2, 1), // stride-2 3×3 (torchvision layer2)
        Conv2dShape::square(1, 256, 14, 512, 1, 2, 0), // stride-2 projection shortcut
        Conv2dShape::square(1, 512, 4, 2048, 1, 1, 0), // layer4 conv3
        Conv2dShape::square(2, 512, 3, 512, 3, 1, 1),  // layer4 conv2
        Conv2dShape::square(4, 512, 1, 512, 3, 1, 1),  // layer4 conv2 on 32-pixel images
        Conv2dShape::square(4, 512, 2, 512, 3, 2, 1),  // its stride-2 first block
    ];
    for variant in kernel_variants(&ctx) {
        let checked: usize = shapes
            .into_iter()
            .enumerate()
            .map(|(i, s)| check_all(&ctx, s, 100 + i as u64, variant))
            .sum();
        assert!(checked > 0, "{variant} ran on none of the shapes");
    }
}

/// Every variant gives the same bits run after run: on a strided 3×3 convolution (implicit
/// GEMM) and on a pointwise one that runs as a plain GEMM (where the tiled kernel applies).
#[test]
fn conv_kernels_are_deterministic() {
    let ctx = gpu();
    let shapes = [
        Conv2dShape::square(2, 16, 12, 24, 3, 2, 1),
        shape(2, 19, 9, 10, 21, [1, 1], [1, 1], [0, 0]),
    ];
    for variant in kernel_variants(&ctx) {
        let mut ran = 0;
        for (i, s) in shapes.into_iter().enumerate() {
            let mut rng = Rng::new(5 + i as u64);
            let x = upload(&ctx, "x", &rng.uniform_vec(s.input_len(), -1.0, 1.0));
            let w = upload(&ctx, "w", &rng.uniform_vec(s.weight_len(), -1.0, 1.0));
            let dy = upload(&ctx, "dy", &rng.uniform_vec(s.output_len(), -1.0, 1.0));
            let (y, dx, dw) = (
                zeros(&ctx, "y", s.output_len()),
                zeros(&ctx, "dx", s.input_len()),
                zeros(&ctx, "dw", s.weight_len()),
            );
            // Each direction on the variant where it applies.
            let applies = |d| conv2d::applies(&ctx, d, &s, variant);
            let launches: Vec<_> = [
                applies(Direction::Forward)
                    .then(|| conv2d::forward_with(&ctx, variant, &s, &x, &w, None, &y)),
                applies(Direction::InputGrad)
                    .then(|| conv2d::input_grad_with(&ctx, variant, &s, &dy, &w, &dx, false)),
                applies(Direction::WeightGrad)
                    .then(|| conv2d::weight_grad_with(&ctx, variant, &s, &dy, &x, &dw, false)),
            ]
            .into_iter()
            .flatten()
            .collect();
            launches
                .iter()
                .for_each(|l| assert_ran(l, variant, "deterministic"));
            ran += launches.len();
            let refs: Vec<_> = launches.iter().collect();
            let read = || {
                (
                    y.read_blocking(&ctx),
                    dx.read_blocking(&ctx),
                    dw.read_blocking(&ctx),
                )
            };
            ctx.run_blocking("first", &refs);
            let first = read();
            ctx.run_blocking("second", &refs);
            assert!(first == read(), "{s:?}: two runs differ (kernels {variant})");
            assert_no_device_error(&ctx, "deterministic");
        }
        assert!(ran > 0, "{variant} applies to no direction of the shapes");
    }
}

#[test]
fn conv_cpu_backward_matches_finite_differences() {
    for s in [
        shape(2, 2, 5, 4, 3, [3, 3], [2, 2], [1, 1]),
        shape(1, 3, 4, 4, 2, [2, 1], [1, 2], [0, 1]),
    ] {
        let mut rng = Rng::new(11);
        let x: Vec<f64> = (0..s.input_len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let w: Vec<f64> = (0..s.weight_len()).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let bias: Vec<f64> = (0..s.out_channels).map(|_| rng.uniform(-1.0, 1.0)).collect();
        let probe = probe_weights(s.output_len(), 12);
        let loss =
            |x: &[f64], w: &[f64], bias: &[f64]| dot(&conv2d::forward_cpu(&s, x, w, Some(bias)), &probe);
        assert_gradient(
            "conv dx",
            &conv2d::input_grad_cpu(&s, &probe, &w),
            &numeric_gradient(&x, |x| loss(x, &w, &bias)),
        );
        assert_gradient(
            "conv dw",
            &conv2d::weight_grad_cpu(&s, &probe, &x),
            &numeric_gradient(&w, |w| loss(&x, w, &bias)),
        );
        let pixels = s.out_height() * s.out_width();
        let db: Vec<f64> = (0..s.out_channels)
            .map(|c| {
                (0..s.batch)
                    .flat_map(|b| (0..pixels).map(move |p| (b * s.out_channels + c) * pixels + p))
                    .map(|i| probe[i])
                    .sum()
            })
            .collect();
        assert_gradient(
            "conv dbias",
            &db,
            &numeric_gradient(&bias, |bias| loss(&x, &w, bias)),
        );
    }
}

#[test]
fn pointwise_convolutions_take_the_gemm_path_only_with_enough_pixels() {
    // Both paths are covered by the shapes above: 9×10 pixels run as GEMMs, 6×6 and 1×1 as
    // implicit GEMMs.
    assert!(shape(2, 19, 9, 10, 21, [1, 1], [1, 1], [0, 0]).runs_as_gemm());
    assert!(!shape(2, 19, 6, 6, 21, [1, 1], [1, 1], [0, 0]).runs_as_gemm());
    assert!(!shape(1, 1, 1, 1, 1, [1, 1], [1, 1], [0, 0]).runs_as_gemm());
    assert!(!shape(3, 20, 9, 7, 33, [1, 1], [2, 2], [0, 0]).runs_as_gemm());
}

/// Dispatches of more than 65,535 column tiles wrap onto the grid's z axis; every tile must
/// still be computed. One channel on two 1,500 × 1,500 images gives 4.5 million output columns
/// (over 70,000 tiles of 64, over 140,000 of 32) for the forward and the input gradient;
/// 4,250,000 input channels of a 1 × 1 kernel on a 1 × 1 image give as many weight-gradient
/// columns. A stride-2 input gradient of two 3,000 × 3,000 images runs by stride phase, each
/// phase over more than 65,535 tiles of 64 columns. (Their other directions are not wide,
/// and reduce over millions of values: not what this test is about.)
#[test]
fn conv_grids_beyond_65535_tiles_cover_every_output() {
    let ctx = gpu();
    let large_image = Conv2dShape::square(2, 1, 1500, 1, 3, 1, 1);
    let many_weights = Conv2dShape::square(1, 4_250_000, 1, 1, 1, 1, 0);
    let strided = shape(2, 1, 3000, 3000, 1, [3, 3], [2, 2], [1, 1]);
    assert!(large_image.output_len().div_ceil(64) > 65_535);
    assert!(many_weights.weight_len().div_ceil(64) > 65_535);
    assert!(
        (strided.input_len() / 4).div_ceil(64) > 65_535,
        "each stride phase is wide"
    );
    // The variants whose tiles are narrow enough to wrap here (the 128-column tiled kernel's
    // are not); split-K does not apply to these directions.
    for variant in [
        Variant::Portable,
        Variant::Tiled64,
        Variant::Subgroup,
        Variant::SubgroupWide,
    ] {
        let forward_and_input = [Direction::Forward, Direction::InputGrad];
        assert_eq!(
            check_directions(&ctx, large_image, 200, &forward_and_input, variant),
            2
        );
        assert_eq!(
            check_directions(&ctx, many_weights, 201, &[Direction::WeightGrad], variant),
            1
        );
        assert_eq!(
            check_directions(&ctx, strided, 202, &[Direction::InputGrad], variant),
            1
        );
    }
}

/// Split-K weight gradients (partial sums per chunk of the reduction, then a sum in chunk
/// order) against the reference, where the reduction is long enough to split: chunks that are
/// not multiples of the 16-value k-step, stride 2, a 7 × 7 kernel, and the CIFAR stem. Two
/// runs give bit-identical results.
#[test]
fn conv_split_k_weight_gradients_match_reference_and_repeat_exactly() {
    let ctx = gpu();
    let shapes = [
        shape(4, 5, 33, 35, 7, [3, 3], [1, 1], [1, 1]),
        shape(12, 8, 30, 30, 24, [7, 7], [2, 2], [3, 3]),
        Conv2dShape::square(16, 3, 32, 64, 3, 1, 1),
    ];
    for (i, s) in shapes.into_iter().enumerate() {
        for variant in [Variant::SplitK, Variant::SplitKTiled] {
            let tile = variant.split_tile().expect("split-K");
            assert!(
                conv2d::split_k_chunks(&s, ctx.reduction_bound(), tile).is_some(),
                "{s:?} should split on {variant}"
            );
            assert_eq!(
                check_all(&ctx, s, 300 + i as u64, variant),
                1,
                "{variant}: weight gradients only"
            );
            let mut rng = Rng::new(310 + i as u64);
            let x = upload(&ctx, "x", &rng.uniform_vec(s.input_len(), -1.0, 1.0));
            let dy = upload(&ctx, "dy", &rng.uniform_vec(s.output_len(), -1.0, 1.0));
            let dw = zeros(&ctx, "dw", s.weight_len());
            let launch = conv2d::weight_grad_with(&ctx, variant, &s, &dy, &x, &dw, false);
            assert_eq!(
                launch.grids().len(),
                2,
                "{variant} runs as partial sums and their sum"
            );
            ctx.run_blocking("first", &[&launch]);
            let first = dw.read_blocking(&ctx);
            ctx.run_blocking("second", &[&launch]);
            assert!(
                first == dw.read_blocking(&ctx),
                "{s:?}: two {variant} runs differ"
            );
        }
    }
}

/// On a GPU (no reduction bound) the weight gradient of a late ResNet-50 layer at batch 128
/// (3×3, 512 channels, 7×7 planes) has enough 64×64 tiles to fill it, but only 144 of 128×128:
/// split-K is offered on the tiled partial pass alone, in 4 chunks.
#[test]
fn a_late_layer_splits_its_weight_gradient_only_on_the_tiled_kernel() {
    let late = Conv2dShape::square(128, 512, 7, 512, 3, 1, 1);
    assert_eq!(conv2d::split_k_chunks(&late, None, 64), None);
    assert_eq!(conv2d::split_k_chunks(&late, None, 128), Some(4));
    let offered = conv2d::variants(Direction::WeightGrad, &late, None);
    assert!(
        offered.contains(&Variant::SplitKTiled) && !offered.contains(&Variant::SplitK),
        "{offered:?}"
    );
}

/// Weight gradients whose reduction nears llvmpipe's loop limit (65,535 iterations of all the
/// loops of an invocation together): every variant offered for the shape sums all of it. On
/// one side of the portable kernels' bound (49,000 values) and past it (50,600: only split-K);
/// a batch whose subgroup sum is cut into chunks of whole images (61,440 values), which
/// repeats bit for bit.
#[test]
fn conv_weight_gradients_near_the_loop_limit_sum_every_value() {
    let ctx = gpu();
    let shapes = [
        shape(1, 1, 200, 245, 2, [3, 3], [1, 1], [1, 1]),
        shape(1, 1, 220, 230, 2, [3, 3], [1, 1], [1, 1]),
        shape(60, 2, 32, 32, 3, [3, 3], [1, 1], [1, 1]),
    ];
    assert_eq!(
        ctx.reduction_bound(),
        Some(MAX_REDUCTION),
        "lavapipe bounds its loops"
    );
    assert_eq!(
        conv2d::subgroup_weight_grad_chunks(&shapes[2], ctx.reduction_bound()),
        Some(2)
    );
    for (i, s) in shapes.into_iter().enumerate() {
        let offered = conv2d::candidates(&ctx, Direction::WeightGrad, &s);
        assert_eq!(
            offered.contains(&Variant::Portable),
            i == 0,
            "{s:?}: the portable kernel applies only within its bound"
        );
        for variant in offered {
            assert_eq!(
                check_directions(&ctx, s, 400 + i as u64, &[Direction::WeightGrad], variant),
                1
            );
        }
    }
    // The chunked subgroup weight gradient (partial sums per chunk of images, summed in
    // order) gives the same bits run after run.
    let chunked = shapes[2];
    let mut rng = Rng::new(410);
    let x = upload(&ctx, "x", &rng.uniform_vec(chunked.input_len(), -1.0, 1.0));
    let dy = upload(&ctx, "dy", &rng.uniform_vec(chunked.output_len(), -1.0, 1.0));
    let dw = zeros(&ctx, "dw", chunked.weight_len());
    for variant in [Variant::Subgroup, Variant::SubgroupWide] {
        let launch = conv2d::weight_grad_with(&ctx, variant, &chunked, &dy, &x, &dw, false);
        assert_eq!(
            launch.grids().len(),
            2,
            "{variant}: the chunks' sums, then their sum"
        );
        ctx.run_blocking("first", &[&launch]);
        let first = dw.read_blocking(&ctx);
        ctx.run_blocking("second", &[&launch]);
        assert!(
            first == dw.read_blocking(&ctx),
            "{variant}: two chunked runs differ"
        );
        assert_no_device_error(&ctx, "chunked subgroup weight gradient");
    }
}

#[test]
#[should_panic(expected = "the split-k kernels do not apply to this launch")]
fn a_variant_that_does_not_apply_is_refused_by_name() {
    let ctx = gpu();
    let s = shape(1, 3, 5, 5, 2, [3, 3], [1, 1], [1, 1]);
    let (x, w, y) = (
        zeros(&ctx, "x", s.input_len()),
        zeros(&ctx, "w", s.weight_len()),
        zeros(&ctx, "y", s.output_len()),
    );
    let _ = conv2d::forward_with(&ctx, Variant::SplitK, &s, &x, &w, None, &y);
}

/// The loop bound applies only where the adapter has it: with llvmpipe's bound a weight
/// gradient past it runs split into chunks (or, on the subgroup kernel, in chunks of whole
/// images) and nothing else; without a bound (a GPU) every variant runs it whole, and split-K
/// splits by the work alone, as one more candidate to time.
#[test]
fn the_reduction_bound_splits_only_where_the_adapter_has_one() {
    let long = shape(60, 2, 64, 64, 3, [3, 3], [1, 1], [1, 1]);
    const { assert!(60 * 64 * 64 > MAX_REDUCTION) };
    let bounded = conv2d::variants(Direction::WeightGrad, &long, Some(MAX_REDUCTION));
    assert!(
        !bounded.contains(&Variant::Portable) && !bounded.contains(&Variant::Tiled),
        "{bounded:?}"
    );
    assert!(conv2d::subgroup_weight_grad_chunks(&long, Some(MAX_REDUCTION)) > Some(1));
    let free = conv2d::variants(Direction::WeightGrad, &long, None);
    for variant in [
        Variant::Portable,
        Variant::Subgroup,
        Variant::Tiled,
        Variant::SplitK,
        Variant::SplitKTiled,
    ] {
        assert!(free.contains(&variant), "{variant} without a bound: {free:?}");
    }
    assert_eq!(conv2d::subgroup_weight_grad_chunks(&long, None), Some(1));
    let by_bound = conv2d::split_k_chunks(&long, Some(MAX_REDUCTION), 64).expect("split");
    assert!(
        by_bound * 32_768 >= 60 * 64 * 64,
        "chunks of at most 32,768 values"
    );
    let by_work = conv2d::split_k_chunks(&long, None, 64).expect("split by work");
    assert!(by_work <= by_bound.max(64), "{by_work} chunks");
    // Forward and input gradient reductions are short: the bound changes nothing there.
    for direction in [Direction::Forward, Direction::InputGrad] {
        assert_eq!(
            conv2d::variants(direction, &long, Some(MAX_REDUCTION)),
            conv2d::variants(direction, &long, None)
        );
    }
}
