//! What each layer op is, stated once: its output shape, the parameters it owns, the buffers
//! it keeps beside its output, its GEMM-shaped launches and its arithmetic. The model's
//! shapes and parameter list, the memory report, the allocation, the kernel timing and the
//! checkpoint names all read a layer through [`Op::describe`]; every match on the op here is
//! exhaustive, so a new op cannot be skipped silently.

use super::{GammaInit, Init, Op, ParamSpec, Shape};
use crate::ops::conv2d::{Conv2dShape, Direction};
use crate::ops::linear::LinearGemms;
use crate::ops::matmul::MatmulParams;

/// How parameters start: torchvision's ResNet init, or PyTorch's layer defaults (the seed
/// post's), with batch norm's γ as given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitStyle {
    pub torchvision: bool,
    pub gamma: GammaInit,
}

/// One GEMM-shaped launch of a layer's step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GemmLaunch {
    Conv(Direction, Conv2dShape),
    /// A linear layer's launch in one of the three directions.
    Matmul(Direction, MatmulParams),
}

impl GemmLaunch {
    pub fn direction(&self) -> Direction {
        match self {
            GemmLaunch::Conv(d, _) | GemmLaunch::Matmul(d, _) => *d,
        }
    }
}

/// A layer as the rest of the program sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDescription {
    /// Output shape [N, C, H, W].
    pub output: Shape,
    /// Parameters it owns: weight (or γ) first, then bias (or β).
    pub params: Vec<ParamSpec>,
    /// A batch norm's name and channels: it keeps running statistics (2 × C) and the step's
    /// saved statistics (`SAVED_PER_CHANNEL` × C).
    pub statistics: Option<(String, usize)>,
    /// Elements of the argmax indices a max pool keeps for its backward (one per output).
    pub argmax: Option<usize>,
    /// Its GEMM-shaped launches in a training step.
    pub gemms: Vec<GemmLaunch>,
    /// Multiply-adds × 2 of its forward pass.
    pub forward_flops: f64,
}

/// Output side of a window of `kernel` at `stride` with `padding` over a side of `size`.
fn windowed(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding - kernel) / stride + 1
}

impl Op {
    /// The name its parameters carry; `None` for an op without parameters.
    pub fn name(&self) -> Option<&str> {
        match self {
            Op::Conv { name, .. } | Op::BatchNorm { name } | Op::Linear { name, .. } => Some(name),
            Op::Upsample { .. } | Op::Relu | Op::MaxPool { .. } | Op::Add | Op::GlobalAvgPool => None,
        }
    }

    /// This op applied to an input of shape `input` (its first input, for the residual add).
    pub fn describe(&self, input: Shape, init: InitStyle) -> LayerDescription {
        let [n, c, h, w] = input;
        let mut d = LayerDescription {
            output: input,
            params: Vec::new(),
            statistics: None,
            argmax: None,
            gemms: Vec::new(),
            forward_flops: 0.0,
        };
        match self {
            Op::Upsample { size } => d.output = [n, c, *size, *size],
            Op::Conv {
                name,
                out_channels,
                kernel,
                bias,
                ..
            } => {
                let shape = self.conv_shape(input).expect("a convolution");
                d.output = [n, *out_channels, shape.out_height(), shape.out_width()];
                let fan_in = c * kernel * kernel;
                let weight_init = match init.torchvision {
                    true => Init::NormalFanOut {
                        fan_out: out_channels * kernel * kernel,
                    },
                    false => Init::UniformFanIn { fan_in },
                };
                d.params.push(ParamSpec {
                    name: format!("{name}.weight"),
                    shape: vec![*out_channels, c, *kernel, *kernel],
                    init: weight_init,
                });
                if *bias {
                    d.params.push(ParamSpec {
                        name: format!("{name}.bias"),
                        shape: vec![*out_channels],
                        init: Init::UniformFanIn { fan_in },
                    });
                }
                d.gemms = Direction::ALL
                    .iter()
                    .map(|&dir| GemmLaunch::Conv(dir, shape))
                    .collect();
                d.forward_flops = shape.flops();
            }
            Op::BatchNorm { name } => {
                d.params.push(ParamSpec {
                    name: format!("{name}.weight"),
                    shape: vec![c],
                    init: Init::Gamma(init.gamma),
                });
                d.params.push(ParamSpec {
                    name: format!("{name}.bias"),
                    shape: vec![c],
                    init: Init::Zeros,
                });
                d.statistics = Some((name.clone(), c));
            }
            Op::Relu | Op::Add => {}
            Op::MaxPool {
                kernel,
                stride,
                padding,
            } => {
                d.output = [
                    n,
                    c,
                    windowed(h, *kernel, *stride, *padding),
                    windowed(w, *kernel, *stride, *padding),
                ];
                d.argmax = Some(d.output.iter().product());
            }
            Op::GlobalAvgPool => d.output = [n, c, 1, 1],
            Op::Linear { name, out_features } => {
                let features = c * h * w;
                d.output = [n, *out_features, 1, 1];
                let init = Init::UniformFanIn { fan_in: features };
                d.params.push(ParamSpec {
                    name: format!("{name}.weight"),
                    shape: vec![*out_features, features],
                    init,
                });
                d.params.push(ParamSpec {
                    name: format!("{name}.bias"),
                    shape: vec![*out_features],
                    init,
                });
                let gemms = LinearGemms::new(n, features, *out_features, false);
                d.gemms = vec![
                    GemmLaunch::Matmul(Direction::Forward, gemms.forward),
                    GemmLaunch::Matmul(Direction::WeightGrad, gemms.weight_grad),
                    GemmLaunch::Matmul(Direction::InputGrad, gemms.input_grad),
                ];
                d.forward_flops = 2.0 * (n * out_features * features) as f64;
            }
        }
        d
    }
}
