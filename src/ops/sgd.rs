//! SGD with momentum and weight decay, PyTorch semantics (no dampening, no Nesterov), over a
//! flat parameter `w` `[len]` with its gradient and momentum buffer `v` of the same length:
//! `g = grad + wd·w; v = μ·v + g; w = w − lr·v` (w and v in place). With `v` starting at zero
//! the first step gives `v = g`, as PyTorch's first step does. A step whose status record
//! flags something not finite ([`super::finite_check`]) leaves `w` and `v` untouched.

use super::finite_check::STATUS_LEN;
use crate::gpu::{GpuBuffer, GpuContext, Launch, flat_workgroups};

use crate::shaders::Kernel;

/// Hyper-parameters of the update.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgdConfig {
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

impl SgdConfig {
    /// The reference experiment's: lr 0.01, momentum 0.9, weight decay 1e-4.
    pub const REFERENCE: SgdConfig = SgdConfig {
        lr: 0.01,
        momentum: 0.9,
        weight_decay: 1e-4,
    };
}

/// The kernel's uniform (16 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdParams {
    pub len: u32,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
}

impl SgdParams {
    pub fn new(len: usize, config: SgdConfig) -> Self {
        assert!(
            len <= u32::MAX as usize,
            "sgd: parameter too large for u32 indices"
        );
        Self {
            len: len as u32,
            lr: config.lr,
            momentum: config.momentum,
            weight_decay: config.weight_decay,
        }
    }
}

/// The buffers of one parameter's update.
#[derive(Clone, Copy)]
pub struct SgdBuffers<'a> {
    pub grad: &'a GpuBuffer<f32>,
    pub w: &'a GpuBuffer<f32>,
    pub v: &'a GpuBuffer<f32>,
    /// The step's status record: nothing changes where it flags a value that is not finite.
    pub status: &'a GpuBuffer<u32>,
}

/// One step over a parameter: `grad` is read, `w` and `v` are updated in place unless the
/// step's status flags a value that is not finite. The learning rate lives in the launch's
/// uniform: build a new launch when it changes.
pub fn update(ctx: &GpuContext, config: SgdConfig, b: &SgdBuffers) -> Launch {
    let SgdBuffers { grad, w, v, status } = *b;
    assert!(
        grad.len() == w.len() && w.len() == v.len(),
        "sgd: grad, w and v differ in length"
    );
    assert_eq!(
        status.len(),
        STATUS_LEN,
        "sgd: the status record holds {STATUS_LEN} words"
    );
    Launch::linear(
        ctx,
        Kernel::SgdUpdate.plain(),
        &SgdParams::new(w.len(), config),
        &[grad.bind(), w.bind(), v.bind(), status.bind()],
        flat_workgroups(w.len().div_ceil(4)),
    )
}

/// CPU reference of one step, in place on `w` and `v`.
pub fn update_cpu(config: SgdConfig, grad: &[f64], w: &mut [f64], v: &mut [f64]) {
    assert!(grad.len() == w.len() && w.len() == v.len());
    let (lr, momentum, wd) = (
        config.lr as f64,
        config.momentum as f64,
        config.weight_decay as f64,
    );
    for ((w, v), &grad) in w.iter_mut().zip(v.iter_mut()).zip(grad) {
        let g = grad + wd * *w;
        *v = momentum * *v + g;
        *w -= lr * *v;
    }
}
