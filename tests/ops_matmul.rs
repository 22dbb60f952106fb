//! The GEMM kernels (portable, subgroup, subgroup-wide, tiled, tiled-64, narrow and split-K), each asked for by
//! name where it applies, against the CPU reference; on both sides of the loop bound of the
//! software adapters. The three GEMMs of the linear layer against the layer's CPU references,
//! and those references against the layer's formulas.

mod common;
use common::*;
use resnet_wgpu::gpu::{GpuContext, Variant};
use resnet_wgpu::ops::bias_grad;
use resnet_wgpu::ops::linear::{self, LinearGemms};
use resnet_wgpu::ops::matmul::{self, Bias, MatmulParams};

/// Runs the GEMM on `variant` and compares it with the reference; `false` (nothing run) where
/// the variant does not apply to the GEMM.
#[allow(clippy::too_many_arguments)]
fn check(
    ctx: &resnet_wgpu::gpu::GpuContext,
    name: &str,
    p: MatmulParams,
    a_len: usize,
    b_len: usize,
    bias: Bias,
    seed: u64,
    variant: Variant,
) -> bool {
    let mut rng = Rng::new(seed);
    let a = rng.uniform_vec(a_len, -1.0, 1.0);
    let b = rng.uniform_vec(b_len, -1.0, 1.0);
    let bias_len = if bias == Bias::PerRow { p.m } else { p.n } as usize;
    let bias_values = rng.uniform_vec(bias_len, -1.0, 1.0);
    let c_old = rng.uniform_vec(p.c_len(), -1.0, 1.0);
    let p = p.with_bias(bias);
    if !matmul::applies(ctx, &p, variant) {
        return false;
    }
    let name = format!("{name} ({variant})");
    let (ab, bb, cb) = (
        upload(ctx, "a", &a),
        upload(ctx, "b", &b),
        upload(ctx, "c", &c_old),
    );
    let bias_buffer = upload(ctx, "bias", &bias_values);
    let launch = matmul::launch_with(
        ctx,
        variant,
        &p,
        &ab,
        &bb,
        (bias != Bias::None).then_some(&bias_buffer),
        &cb,
    );
    assert_ran(&launch, variant, &name);
    ctx.run_blocking(&name, &[&launch]);
    let got = cb.read_blocking(ctx);
    assert_no_device_error(ctx, &name);
    let bias_ref = to_f64(&bias_values);
    let expected = matmul::matmul_cpu(
        &p,
        &to_f64(&a),
        &to_f64(&b),
        (bias != Bias::None).then_some(&bias_ref[..]),
        &to_f64(&c_old),
    );
    let tolerance = 1e-5 * (p.k as f64).sqrt();
    assert_close(&name, &got, &expected, tolerance, 1e-4);
    true
}

#[test]
fn matmul_matches_reference_on_awkward_shapes() {
    let ctx = gpu();
    for variant in kernel_variants(&ctx) {
        let mut ran = 0;
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
                let name = format!("matmul {batch}x{m}x{n}x{k} bias {bias:?}");
                ran += check(
                    &ctx,
                    &name,
                    p,
                    batch * m * k,
                    batch * k * n,
                    bias,
                    i as u64,
                    variant,
                ) as usize;
                check(
                    &ctx,
                    &format!("{name} accumulate"),
                    p.accumulating(true),
                    batch * m * k,
                    batch * k * n,
                    bias,
                    50 + i as u64,
                    variant,
                );
            }
        }
        // Split-K applies only to batch-summed GEMMs (below).
        assert!(
            ran > 0 || variant.split_tile().is_some(),
            "{variant} ran on no shape"
        );
    }
}

#[test]
fn matmul_transposed_and_batch_summed() {
    let ctx = gpu();
    for variant in kernel_variants(&ctx) {
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
            variant,
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
            variant,
        );
    }
}

/// Operands whose staged axis has stride 1 and whose other strides are multiples of 4 are read
/// in quads (one vec4 per 4 values) by the tiled kernels: along k (a row-major A, a transposed
/// B) and along the rows or columns (a transposed A, a row-major B), with quads that straddle
/// the matrix's edge (70 rows with a stride of 72) read value by value. Every variant runs each
/// layout against the reference; one stride not a multiple of 4 turns quads off.
#[test]
fn aligned_operands_are_read_in_quads() {
    let ctx = gpu();
    let (batch, m, n, k) = (2, 70, 132, 36);
    let row_major = MatmulParams::row_major(batch, m, n, k);
    let mut transposed = row_major;
    // A[z, m, k] at z·a_batch + k·72 + m; B[z, k, n] at z·b_batch + n·40 + k.
    transposed.a_row = 1;
    transposed.a_k = 72;
    transposed.a_batch = 72 * k as u32;
    transposed.b_k = 1;
    transposed.b_col = 40;
    transposed.b_batch = 40 * n as u32;
    let mut unaligned = row_major;
    unaligned.a_row = 37;
    unaligned.a_batch = 37 * m as u32;
    let layouts = [
        ("row-major", row_major, [true, true]),
        ("transposed, padded", transposed, [true, true]),
        ("A rows 37 apart", unaligned, [false, true]),
    ];
    for (name, p, quads) in layouts {
        assert_eq!(p.quads(), quads, "{name}: which operands are read in quads");
        for variant in kernel_variants(&ctx) {
            check(&ctx, name, p, p.a_len(), p.b_len(), Bias::PerRow, 7, variant);
        }
    }
}

#[test]
fn matmul_is_deterministic() {
    let ctx = gpu();
    for variant in kernel_variants(&ctx) {
        let p = MatmulParams::row_major(2, 100, 90, 300);
        if !matmul::applies(&ctx, &p, variant) {
            continue;
        }
        let mut rng = Rng::new(9);
        let a = upload(&ctx, "a", &rng.uniform_vec(2 * 100 * 300, -1.0, 1.0));
        let b = upload(&ctx, "b", &rng.uniform_vec(2 * 300 * 90, -1.0, 1.0));
        let c = zeros(&ctx, "c", p.c_len());
        let launch = matmul::launch_with(&ctx, variant, &p, &a, &b, None, &c);
        assert_ran(&launch, variant, "deterministic");
        ctx.run_blocking("first", &[&launch]);
        let first = c.read_blocking(&ctx);
        ctx.run_blocking("second", &[&launch]);
        assert!(first == c.read_blocking(&ctx), "two runs differ ({variant})");
        assert_no_device_error(&ctx, "deterministic");
    }
}

/// Batch-summed GEMMs (pointwise weight gradients) split over the batch: partial results per
/// chunk of images, summed in chunk order. A 1×1 weight gradient over 8 images of 112 × 112
/// loops over 100,352 values per output, more than a kernel may loop on a CPU adapter, so only
/// the variants that split apply there: split-K (partial sums on the portable kernel) and the
/// subgroup kernels in chunks; a smaller one splits when split-K is asked for. Results also
/// accumulate, and repeat exactly.
#[test]
fn matmul_split_k_over_the_batch_matches_reference() {
    let ctx = gpu();
    for (batch, cout, cin, pixels) in [(8, 16, 8, 112 * 112), (5, 20, 9, 300)] {
        let mut p = MatmulParams::row_major(batch, cout, cin, pixels).summed_over_batch();
        p.a_batch = (cout * pixels) as u32;
        p.a_row = pixels as u32;
        p.a_k = 1;
        p.b_batch = (cin * pixels) as u32;
        p.b_k = 1;
        p.b_col = pixels as u32;
        assert!(matmul::split_k_chunks(&p, ctx.reduction_bound(), 64).is_some());
        // Without a loop bound (a GPU) the GEMM runs whole in every variant, split-K one of
        // them.
        let free = matmul::variants(&p, None);
        assert!(
            free.contains(&Variant::Portable) && free.contains(&Variant::SplitK),
            "{free:?}"
        );
        let candidates = matmul::candidates(&ctx, &p);
        let past = batch * pixels > resnet_wgpu::gpu::MAX_REDUCTION;
        let splitting = [Variant::Subgroup, Variant::SubgroupWide, Variant::SplitK];
        match past {
            true => assert_eq!(candidates, ctx.applicable(&splitting)),
            false => assert!(candidates.contains(&Variant::Portable), "{candidates:?}"),
        }
        let (a_len, b_len) = (batch * cout * pixels, batch * cin * pixels);
        let name = format!("split-K weight gradient {batch}x{cout}x{cin}x{pixels}");
        let split = Variant::SplitK;
        for variant in candidates.iter().filter(|_| past) {
            let name = format!("{name} on {variant}");
            assert!(check(&ctx, &name, p, a_len, b_len, Bias::None, 6, *variant));
            let c = zeros(&ctx, "c", p.c_len());
            let (a, b) = (zeros(&ctx, "a", a_len), zeros(&ctx, "b", b_len));
            let launch = matmul::launch_with(&ctx, *variant, &p, &a, &b, None, &c);
            assert_eq!(launch.grids().len(), 2, "{name}: partial results and their sum");
        }
        assert!(check(&ctx, &name, p, a_len, b_len, Bias::None, 7, split));
        // The tiled partial pass, where no bound forces the subgroup or portable one.
        if matmul::applies(&ctx, &p, Variant::SplitKTiled) {
            let tiled = format!("{name} on split-k-tiled");
            for (params, seed) in [(p, 8), (p.accumulating(true), 9)] {
                let tiled_split = Variant::SplitKTiled;
                assert!(check(
                    &ctx,
                    &tiled,
                    params,
                    a_len,
                    b_len,
                    Bias::None,
                    seed,
                    tiled_split
                ));
            }
        }
        assert!(check(
            &ctx,
            &format!("{name} accumulate"),
            p.accumulating(true),
            a_len,
            b_len,
            Bias::None,
            8,
            split,
        ));
        let mut rng = Rng::new(11);
        let a = upload(&ctx, "a", &rng.uniform_vec(a_len, -1.0, 1.0));
        let b = upload(&ctx, "b", &rng.uniform_vec(b_len, -1.0, 1.0));
        let c = zeros(&ctx, "c", p.c_len());
        let launch = matmul::launch_with(&ctx, split, &p, &a, &b, None, &c);
        assert_eq!(launch.grids().len(), 2, "{name}: partial results and their sum");
        ctx.run_blocking("first", &[&launch]);
        let first = c.read_blocking(&ctx);
        ctx.run_blocking("second", &[&launch]);
        assert!(first == c.read_blocking(&ctx), "{name}: two runs differ");
        assert_no_device_error(&ctx, &name);
    }
}

/// A GEMM whose reduction is just within the loop bound of the software adapters runs on every
/// variant and sums every value; one just past it is offered only the variants that split
/// (split-K, and the subgroup kernels in chunks) where splitting applies, and nothing where it
/// does not (its launch is refused rather than cut short).
#[test]
fn gemms_on_both_sides_of_the_loop_bound() {
    use resnet_wgpu::gpu::MAX_REDUCTION;
    let ctx = gpu();
    // k rounded up to 16, plus one per image: 49,120 + 1 values within 49,152.
    let within = MatmulParams::row_major(1, 3, 5, MAX_REDUCTION - 32);
    let past = MatmulParams::row_major(1, 3, 5, MAX_REDUCTION + 16);
    let mut ran = 0;
    for variant in kernel_variants(&ctx) {
        ran += check(
            &ctx,
            "k within the bound",
            within,
            3 * within.k as usize,
            5 * within.k as usize,
            Bias::None,
            21,
            variant,
        ) as usize;
        assert!(
            !matmul::applies(&ctx, &past, variant),
            "{variant} applies past the bound"
        );
    }
    let splits = kernel_variants(&ctx)
        .iter()
        .filter(|v| v.split_tile().is_some())
        .count();
    assert_eq!(
        ran,
        kernel_variants(&ctx).len() - splits,
        "every variant but the split-K ones (no batch to split) ran within the bound"
    );
    assert!(
        matmul::candidates(&ctx, &past).is_empty(),
        "nothing may loop past the bound"
    );
    // Batch-summed, just past the bound: the variants that split, and each sums every value.
    let (batch, cout, cin, pixels) = (2, 4, 3, MAX_REDUCTION / 2 + 64);
    let mut summed = MatmulParams::row_major(batch, cout, cin, pixels).summed_over_batch();
    summed.a_batch = (cout * pixels) as u32;
    summed.a_row = pixels as u32;
    summed.a_k = 1;
    summed.b_batch = (cin * pixels) as u32;
    summed.b_k = 1;
    summed.b_col = pixels as u32;
    let splitting = [Variant::Subgroup, Variant::SubgroupWide, Variant::SplitK];
    assert_eq!(matmul::candidates(&ctx, &summed), ctx.applicable(&splitting));
    let (a_len, b_len) = (batch * cout * pixels, batch * cin * pixels);
    for variant in matmul::candidates(&ctx, &summed) {
        let name = format!("summed past the bound on {variant}");
        assert!(check(&ctx, &name, summed, a_len, b_len, Bias::None, 22, variant));
    }
}

#[test]
#[should_panic(expected = "the tiled kernels do not apply to this GEMM")]
fn a_variant_that_does_not_apply_is_refused_by_name() {
    let ctx = gpu();
    let past = MatmulParams::row_major(1, 3, 5, resnet_wgpu::gpu::MAX_REDUCTION + 16);
    let (a, b, c) = (
        zeros(&ctx, "a", past.a_len()),
        zeros(&ctx, "b", past.b_len()),
        zeros(&ctx, "c", past.c_len()),
    );
    let _ = matmul::launch_with(&ctx, Variant::Tiled, &past, &a, &b, None, &c);
}

// ---------------------------------------------------------------------------------------------
// The linear layer

/// `(batch, features, out)` of the linear layers tested: awkward sizes, batch 1, a single
/// feature, ResNet-18's 512 → 10 head, and sizes past one 128 × 128 tile.
const LINEAR_SHAPES: &[(usize, usize, usize)] =
    &[(3, 37, 10), (1, 37, 10), (1, 1, 1), (1, 512, 10), (5, 130, 129)];

/// Runs one GEMM of a linear layer on every variant that applies to it, C holding `c_start`
/// before each run, and compares C after with `expected`. Asserts that each launch ran the
/// variant it was asked for, that the device reported no error, and that every variant the
/// adapter offers for the GEMM ran.
#[allow(clippy::too_many_arguments)]
fn check_linear_gemm(
    ctx: &GpuContext,
    name: &str,
    p: &MatmulParams,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    c_start: &[f32],
    expected: &[f64],
) {
    let mut ran = Vec::new();
    for variant in kernel_variants(ctx) {
        if !matmul::applies(ctx, p, variant) {
            continue;
        }
        let name = format!("{name} ({variant})");
        let (ab, bb, cb) = (
            upload(ctx, "a", a),
            upload(ctx, "b", b),
            upload(ctx, "c", c_start),
        );
        let bias_buffer = bias.map(|values| upload(ctx, "bias", values));
        let launch = matmul::launch_with(ctx, variant, p, &ab, &bb, bias_buffer.as_ref(), &cb);
        assert_ran(&launch, variant, &name);
        ctx.run_blocking(&name, &[&launch]);
        let got = cb.read_blocking(ctx);
        assert_no_device_error(ctx, &name);
        let tolerance = 1e-5 * (p.k as f64).sqrt();
        assert_close(&name, &got, expected, tolerance, 1e-4);
        ran.push(variant);
    }
    assert!(!ran.is_empty(), "{name}: no variant applies");
    let mut offered = matmul::candidates(ctx, p);
    offered.sort();
    ran.sort();
    assert_eq!(
        ran, offered,
        "{name}: the variants run are not those the adapter offers"
    );
}

/// The three GEMMs of `LinearGemms`, each on every variant that applies, against the CPU
/// references of `ops::linear`: the forward `y = x · Wᵀ + bias`, the weight gradient
/// `dW = dyᵀ · x` written and accumulated onto an earlier one, and the input gradient
/// `dx = dy · W`. Outputs that are written start as NaN, so an element left out (or an old
/// value added in) shows; the accumulated one starts from random values, which must be kept.
#[test]
fn linear_gemms_match_the_cpu_references() {
    let ctx = gpu();
    for (i, &(batch, features, out)) in LINEAR_SHAPES.iter().enumerate() {
        let mut rng = Rng::new(30 + i as u64);
        let x = rng.uniform_vec(batch * features, -1.0, 1.0);
        let w = rng.uniform_vec(out * features, -1.0, 1.0);
        let bias = rng.uniform_vec(out, -1.0, 1.0);
        let dy = rng.uniform_vec(batch * out, -1.0, 1.0);
        let dw_old = rng.uniform_vec(out * features, -1.0, 1.0);
        let (x64, w64, dy64) = (to_f64(&x), to_f64(&w), to_f64(&dy));
        let gemms = LinearGemms::new(batch, features, out, false);
        let accumulating = LinearGemms::new(batch, features, out, true);
        let name = format!("linear {batch}x{features}->{out}");

        let y = linear::forward_cpu(&x64, &w64, &to_f64(&bias), batch, features, out);
        check_linear_gemm(
            &ctx,
            &format!("{name} forward"),
            &gemms.forward,
            &x,
            &w,
            Some(&bias),
            &vec![f32::NAN; batch * out],
            &y,
        );

        let dw = linear::weight_grad_cpu(&dy64, &x64, batch, features, out);
        check_linear_gemm(
            &ctx,
            &format!("{name} weight gradient"),
            &gemms.weight_grad,
            &dy,
            &x,
            None,
            &vec![f32::NAN; out * features],
            &dw,
        );
        let dw_accumulated: Vec<f64> = dw.iter().zip(&dw_old).map(|(d, &old)| old as f64 + d).collect();
        check_linear_gemm(
            &ctx,
            &format!("{name} weight gradient accumulated"),
            &accumulating.weight_grad,
            &dy,
            &x,
            None,
            &dw_old,
            &dw_accumulated,
        );

        let dx = linear::input_grad_cpu(&dy64, &w64, batch, features, out);
        check_linear_gemm(
            &ctx,
            &format!("{name} input gradient"),
            &gemms.input_grad,
            &dy,
            &w,
            None,
            &vec![f32::NAN; batch * features],
            &dx,
        );
    }
}

/// The CPU forward of the linear layer is `y[b, o] = Σ_f x[b, f] · W[o, f] + bias[o]`, with W
/// in PyTorch's `[out, F]` layout, written out here as plain sums.
#[test]
fn linear_forward_reference_follows_the_layer_formula() {
    for (i, &(batch, features, out)) in LINEAR_SHAPES.iter().enumerate() {
        let mut rng = Rng::new(40 + i as u64);
        let x = to_f64(&rng.uniform_vec(batch * features, -1.0, 1.0));
        let w = to_f64(&rng.uniform_vec(out * features, -1.0, 1.0));
        let bias = to_f64(&rng.uniform_vec(out, -1.0, 1.0));
        let mut expected = vec![0.0; batch * out];
        for b in 0..batch {
            for o in 0..out {
                let sum: f64 = (0..features)
                    .map(|f| x[b * features + f] * w[o * features + f])
                    .sum();
                expected[b * out + o] = sum + bias[o];
            }
        }
        let y = linear::forward_cpu(&x, &w, &bias, batch, features, out);
        assert_eq!(y.len(), expected.len());
        for (j, (&got, &want)) in y.iter().zip(&expected).enumerate() {
            assert!(
                (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                "linear {batch}x{features}->{out}: y[{j}] is {got}, the formula gives {want}"
            );
        }
    }
}

/// The CPU backwards of the linear layer against finite differences of its CPU forward, for
/// the loss `Σ p·y` with fixed probe weights p: the input gradient `input_grad_cpu(p, W)`, the
/// weight gradient `weight_grad_cpu(p, x)`, and the bias gradient, the sum of p over the batch.
#[test]
fn linear_backward_matches_finite_differences() {
    for (i, &(batch, features, out)) in [(3, 7, 4), (1, 5, 3), (2, 1, 1)].iter().enumerate() {
        let mut rng = Rng::new(50 + i as u64);
        let x = to_f64(&rng.uniform_vec(batch * features, -1.0, 1.0));
        let w = to_f64(&rng.uniform_vec(out * features, -1.0, 1.0));
        let bias = to_f64(&rng.uniform_vec(out, -1.0, 1.0));
        let probe = probe_weights(batch * out, 60 + i as u64);
        let loss = |x: &[f64], w: &[f64], bias: &[f64]| {
            dot(&linear::forward_cpu(x, w, bias, batch, features, out), &probe)
        };
        let name = format!("linear {batch}x{features}->{out}");
        assert_gradient(
            &format!("{name} dx"),
            &linear::input_grad_cpu(&probe, &w, batch, features, out),
            &numeric_gradient(&x, |x| loss(x, &w, &bias)),
        );
        assert_gradient(
            &format!("{name} dW"),
            &linear::weight_grad_cpu(&probe, &x, batch, features, out),
            &numeric_gradient(&w, |w| loss(&x, w, &bias)),
        );
        assert_gradient(
            &format!("{name} dbias"),
            &bias_grad::backward_cpu(&probe, batch, out, 1),
            &numeric_gradient(&bias, |bias| loss(&x, &w, bias)),
        );
    }
}
