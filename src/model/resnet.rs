//! ResNet builders: the reference ("seed") ResNet-50 of the blog post and torchvision's
//! ResNet-18/34/50/101/152, each with the ImageNet stem (after 32→224 nearest upsampling) or
//! the CIFAR stem (3×3 conv on the 32×32 input, no pooling).

use super::op::{BatchNorm, BatchNormAddRelu, Conv, Linear, MaxPool, Upsample};
use super::{Layer, Model, Op, TensorId};

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// The blog's ResNet-50: biases on every conv, 2×2 stem pooling, projection shortcuts
    /// without batch norm, module names `layer_1`, `bn_1`, `resblock1.conv1`, …, `fc`.
    Seed50,
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
}

/// The first layers of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    /// Nearest upsampling 32→224, 7×7/2 conv, BN, ReLU, max pool (2×2/2 in the seed
    /// variant, 3×3/2 pad 1 in torchvision's).
    ImageNet,
    /// 3×3/1 conv, BN, ReLU on the 32×32 input.
    Cifar,
}

impl Stem {
    pub const ALL: [Stem; 2] = [Stem::ImageNet, Stem::Cifar];

    pub fn name(self) -> &'static str {
        match self {
            Stem::ImageNet => "imagenet",
            Stem::Cifar => "cifar",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl Variant {
    /// How batch norm's γ starts: as the post's PyTorch 1.1 did for the seed network (uniform),
    /// as torchvision does for the others (ones).
    pub fn default_gamma(self) -> super::GammaInit {
        match self {
            Variant::Seed50 => super::GammaInit::Uniform,
            _ => super::GammaInit::Ones,
        }
    }

    pub const ALL: [Variant; 6] = [
        Variant::Seed50,
        Variant::ResNet18,
        Variant::ResNet34,
        Variant::ResNet50,
        Variant::ResNet101,
        Variant::ResNet152,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Seed50 => "seed50",
            Variant::ResNet18 => "resnet18",
            Variant::ResNet34 => "resnet34",
            Variant::ResNet50 => "resnet50",
            Variant::ResNet101 => "resnet101",
            Variant::ResNet152 => "resnet152",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The published shape of this variant.
    pub fn config(self) -> ResNetConfig {
        let (bottleneck, blocks) = match self {
            Variant::ResNet18 => (false, vec![2, 2, 2, 2]),
            Variant::ResNet34 => (false, vec![3, 4, 6, 3]),
            Variant::Seed50 | Variant::ResNet50 => (true, vec![3, 4, 6, 3]),
            Variant::ResNet101 => (true, vec![3, 4, 23, 3]),
            Variant::ResNet152 => (true, vec![3, 8, 36, 3]),
        };
        ResNetConfig {
            bottleneck,
            blocks,
            widths: vec![64, 128, 256, 512],
            stem_width: 64,
            upsample: 224,
        }
    }
}

/// The shape of a ResNet: block type, blocks and base width per stage. Tests build small
/// configurations from it; the named variants use the published ones.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResNetConfig {
    pub bottleneck: bool,
    pub blocks: Vec<usize>,
    /// Base width of each stage (a bottleneck stage outputs 4× this).
    pub widths: Vec<usize>,
    pub stem_width: usize,
    /// Size the ImageNet stem upsamples the 32×32 input to (32: no upsampling).
    pub upsample: usize,
}

/// Bounds on a configuration read from a file or typed by a person, checked before anything
/// is built: the largest published ResNet has 4 stages, 36 blocks in one stage and 2,048
/// output channels; these leave room for wider experiments without allowing absurd sizes. The
/// classes are bounded by the loss kernel, which walks a row's classes twice in one loop of at
/// most 65,535 iterations on the software adapters.
pub const MAX_STAGES: usize = 8;
pub const MAX_BLOCKS_PER_STAGE: usize = 64;
pub const MAX_WIDTH: usize = 4096;
pub const MAX_CLASSES: usize = 32_767;
pub const MAX_UPSAMPLE: usize = 512;

impl ResNetConfig {
    /// Checks every size against the bounds above; the message names what is wrong.
    pub fn validate(&self, classes: usize) -> Result<(), String> {
        let in_range = |v: usize, max: usize| (1..=max).contains(&v);
        if !in_range(self.blocks.len(), MAX_STAGES) || self.widths.len() != self.blocks.len() {
            return Err(format!(
                "blocks {:?} and widths {:?} need one entry per stage, 1 to {MAX_STAGES} stages",
                self.blocks, self.widths
            ));
        }
        if !self.blocks.iter().all(|&b| in_range(b, MAX_BLOCKS_PER_STAGE)) {
            return Err(format!(
                "blocks {:?}: each stage needs 1 to {MAX_BLOCKS_PER_STAGE} blocks",
                self.blocks
            ));
        }
        if !self
            .widths
            .iter()
            .chain([&self.stem_width])
            .all(|&w| in_range(w, MAX_WIDTH))
        {
            return Err(format!(
                "widths {:?} (stem {}): each must be 1 to {MAX_WIDTH}",
                self.widths, self.stem_width
            ));
        }
        if !in_range(classes, MAX_CLASSES) {
            return Err(format!("{classes} classes: 1 to {MAX_CLASSES} are supported"));
        }
        if !(32..=MAX_UPSAMPLE).contains(&self.upsample) {
            return Err(format!(
                "upsampling to {} pixels: 32 (none) to {MAX_UPSAMPLE} are supported",
                self.upsample
            ));
        }
        Ok(())
    }
}

impl Model {
    /// A named variant with 10 classes.
    pub fn new(variant: Variant, stem: Stem) -> Self {
        Self::from_config(variant, stem, &variant.config(), 10)
    }

    /// Any configuration, named and initialised like `variant`.
    pub fn from_config(variant: Variant, stem: Stem, config: &ResNetConfig, classes: usize) -> Self {
        let mut b = Builder {
            layers: Vec::new(),
            channels: vec![3],
        };
        let seed = variant == Variant::Seed50;
        let (conv1, bn1) = if seed {
            ("layer_1", "bn_1")
        } else {
            ("conv1", "bn1")
        };
        let mut x = 0;
        match stem {
            Stem::ImageNet => {
                // At 32 the upsampling is the identity and is left out.
                if config.upsample != 32 {
                    x = b.push(
                        Op::Upsample(Upsample {
                            size: config.upsample,
                        }),
                        vec![x],
                    );
                }
                x = b.conv(x, conv1, config.stem_width, 7, 2, 3, seed);
                x = b.bn_relu(x, bn1);
                let pool = if seed {
                    MaxPool {
                        kernel: 2,
                        stride: 2,
                        padding: 0,
                    }
                } else {
                    MaxPool {
                        kernel: 3,
                        stride: 2,
                        padding: 1,
                    }
                };
                x = b.push(Op::MaxPool(pool), vec![x]);
            }
            Stem::Cifar => {
                x = b.conv(x, conv1, config.stem_width, 3, 1, 1, seed);
                x = b.bn_relu(x, bn1);
            }
        }
        let mut block_index = 0;
        for (stage, (&blocks, &width)) in config.blocks.iter().zip(&config.widths).enumerate() {
            for i in 0..blocks {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                block_index += 1;
                let prefix = if seed {
                    format!("resblock{block_index}")
                } else {
                    format!("layer{}.{i}", stage + 1)
                };
                x = if config.bottleneck {
                    b.bottleneck(x, &prefix, width, stride, seed)
                } else {
                    b.basic(x, &prefix, width, stride)
                };
            }
        }
        x = b.push(Op::GlobalAvgPool, vec![x]);
        b.push(
            Op::Linear(Linear {
                name: "fc".into(),
                out_features: classes,
            }),
            vec![x],
        );
        Model {
            variant,
            stem,
            classes,
            layers: b.layers,
        }
    }
}

/// Appends layers and tracks each tensor's channel count.
struct Builder {
    layers: Vec<Layer>,
    channels: Vec<usize>,
}

impl Builder {
    fn push(&mut self, op: Op, inputs: Vec<TensorId>) -> TensorId {
        let c = op.layer().output_channels(self.channels[inputs[0]]);
        self.layers.push(Layer { op, inputs });
        self.channels.push(c);
        self.layers.len()
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: TensorId,
        name: &str,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> TensorId {
        let op = Op::Conv(Conv {
            name: name.into(),
            out_channels: out,
            kernel,
            stride,
            padding,
            bias,
        });
        self.push(op, vec![x])
    }

    fn bn(&mut self, x: TensorId, name: &str) -> TensorId {
        let op = BatchNorm {
            name: name.into(),
            relu: false,
        };
        self.push(Op::BatchNorm(op), vec![x])
    }

    /// Batch norm then ReLU, run as one layer.
    fn bn_relu(&mut self, x: TensorId, name: &str) -> TensorId {
        let op = BatchNorm {
            name: name.into(),
            relu: true,
        };
        self.push(Op::BatchNorm(op), vec![x])
    }

    /// 1×1 → 3×3 (stride) → 1×1 ×4, plus the shortcut, then ReLU. The seed variant has conv
    /// biases and a projection `shortcut` conv without BN where the width changes;
    /// torchvision's has `downsample.0` (conv) and `downsample.1` (BN) where shape changes.
    fn bottleneck(&mut self, x: TensorId, p: &str, width: usize, stride: usize, seed: bool) -> TensorId {
        let out = width * 4;
        let h = self.conv(x, &format!("{p}.conv1"), width, 1, 1, 0, seed);
        let h = self.bn_relu(h, &format!("{p}.bn1"));
        let h = self.conv(h, &format!("{p}.conv2"), width, 3, stride, 1, seed);
        let h = self.bn_relu(h, &format!("{p}.bn2"));
        let h = self.conv(h, &format!("{p}.conv3"), out, 1, 1, 0, seed);
        let shortcut = self.shortcut(x, p, out, stride, seed);
        self.bn_add_relu(h, shortcut, &format!("{p}.bn3"))
    }

    /// 3×3 (stride) → 3×3, plus the shortcut, then ReLU (torchvision's BasicBlock).
    fn basic(&mut self, x: TensorId, p: &str, width: usize, stride: usize) -> TensorId {
        let h = self.conv(x, &format!("{p}.conv1"), width, 3, stride, 1, false);
        let h = self.bn_relu(h, &format!("{p}.bn1"));
        let h = self.conv(h, &format!("{p}.conv2"), width, 3, 1, 1, false);
        let shortcut = self.shortcut(x, p, width, stride, false);
        self.bn_add_relu(h, shortcut, &format!("{p}.bn2"))
    }

    /// The end of a block: `relu(bn(h) + shortcut)`, run as one layer.
    fn bn_add_relu(&mut self, h: TensorId, shortcut: TensorId, name: &str) -> TensorId {
        let op = BatchNormAddRelu { name: name.into() };
        self.push(Op::BatchNormAddRelu(op), vec![h, shortcut])
    }

    fn shortcut(&mut self, x: TensorId, p: &str, out: usize, stride: usize, seed: bool) -> TensorId {
        let in_channels = self.channels[x];
        if in_channels == out && stride == 1 {
            return x;
        }
        if seed {
            // The reference projects where the width changes, which is also where its stride
            // changes; custom widths may keep the width across a stride, and project there too.
            return self.conv(x, &format!("{p}.shortcut"), out, 1, stride, 0, true);
        }
        let s = self.conv(x, &format!("{p}.downsample.0"), out, 1, stride, 0, false);
        self.bn(s, &format!("{p}.downsample.1"))
    }
}
