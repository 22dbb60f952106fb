//! The fully connected layer as three GEMMs, and their CPU references. Shapes: x [B, F],
//! W [out, F] (PyTorch's layout), bias [out], y [B, out].
//!
//! - forward: `y = x · Wᵀ + bias`
//! - weight gradient: `dW (+)= dyᵀ · x`, bias gradient `db (+)= Σ_b dy[b, ·]` (see
//!   [`crate::ops::bias_grad`])
//! - input gradient: `dx = dy · W`
//!
//! The GEMM strides are written here once; the scheduler, the kernel tuner and the CPU
//! reference all use them.

use crate::ops::matmul::{Bias, MatmulParams, matmul_cpu};

/// The three GEMMs of a linear layer.
pub struct LinearGemms {
    /// y [B, out] = x [B, F] · Wᵀ [F, out] + bias: B[k, n] = W[n, k].
    pub forward: MatmulParams,
    /// dW [out, F] (+)= dyᵀ [out, B] · x [B, F]: A[m, k] = dy[k, m].
    pub weight_grad: MatmulParams,
    /// dx [B, F] = dy [B, out] · W [out, F].
    pub input_grad: MatmulParams,
}

impl LinearGemms {
    /// With `accumulate`, the weight gradient adds to what dW holds (micro-batches).
    pub fn new(batch: usize, features: usize, out: usize, accumulate: bool) -> Self {
        let mut forward = MatmulParams::row_major(1, batch, out, features).with_bias(Bias::PerColumn);
        forward.b_k = 1;
        forward.b_col = features as u32;
        let mut weight_grad = MatmulParams::row_major(1, out, features, batch).accumulating(accumulate);
        weight_grad.a_row = 1;
        weight_grad.a_k = out as u32;
        Self {
            forward,
            weight_grad,
            input_grad: MatmulParams::row_major(1, batch, features, out),
        }
    }
}

/// CPU reference of the forward pass: y [B, out].
pub fn forward_cpu(
    x: &[f64],
    w: &[f64],
    bias: &[f64],
    batch: usize,
    features: usize,
    out: usize,
) -> Vec<f64> {
    let gemms = LinearGemms::new(batch, features, out, false);
    matmul_cpu(&gemms.forward, x, w, Some(bias), &vec![0.0; batch * out])
}

/// CPU reference of the weight gradient: dW [out, F].
pub fn weight_grad_cpu(dy: &[f64], x: &[f64], batch: usize, features: usize, out: usize) -> Vec<f64> {
    let gemms = LinearGemms::new(batch, features, out, false);
    matmul_cpu(&gemms.weight_grad, dy, x, None, &vec![0.0; out * features])
}

/// CPU reference of the input gradient: dx [B, F].
pub fn input_grad_cpu(dy: &[f64], w: &[f64], batch: usize, features: usize, out: usize) -> Vec<f64> {
    let gemms = LinearGemms::new(batch, features, out, false);
    matmul_cpu(&gemms.input_grad, dy, w, None, &vec![0.0; batch * features])
}
