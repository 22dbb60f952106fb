//! Models as data: a network is a list of layers in execution order, each naming the tensors
//! it reads. Tensor 0 is the input batch [B, 3, 32, 32]; tensor `i + 1` is the output of
//! layer `i`. The scheduler and the CPU reference both walk this list; nothing else knows the
//! architecture.

pub mod op;
pub mod reference;
mod resnet;

pub use op::{GemmLaunch, InitStyle, LayerDescription, Op};

pub use resnet::{
    MAX_BLOCKS_PER_STAGE, MAX_CLASSES, MAX_STAGES, MAX_UPSAMPLE, MAX_WIDTH, ResNetConfig, Stem, Variant,
};

use crate::rng::Rng;

/// Index of a tensor: 0 for the input, `i + 1` for the output of layer `i`.
pub type TensorId = usize;

#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub op: Op,
    pub inputs: Vec<TensorId>,
}

/// How a parameter is initialised (PyTorch's defaults, or torchvision's ResNet init).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// U(−1/√fan_in, 1/√fan_in): PyTorch's default for conv and linear weights
    /// (Kaiming-uniform with a = √5) and biases.
    UniformFanIn {
        fan_in: usize,
    },
    /// N(0, 2/fan_out): torchvision's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    NormalFanOut {
        fan_out: usize,
    },
    /// Batch norm's γ.
    Gamma(GammaInit),
    Zeros,
}

/// How batch norm's γ starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GammaInit {
    /// γ = 1: PyTorch's default since 1.2 and torchvision's ResNet init.
    Ones,
    /// γ ~ U[0, 1): PyTorch's default up to 1.1, which the seed post used.
    Uniform,
}

/// A trainable parameter.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Draws the initial values.
    pub fn initial_values(&self, rng: &mut Rng) -> Vec<f32> {
        let n = self.len();
        match self.init {
            Init::UniformFanIn { fan_in } => {
                let bound = 1.0 / (fan_in as f64).sqrt();
                rng.uniform_vec(n, -bound, bound)
            }
            Init::NormalFanOut { fan_out } => {
                let std = (2.0 / fan_out as f64).sqrt();
                (0..n).map(|_| (rng.normal() * std) as f32).collect()
            }
            Init::Gamma(GammaInit::Ones) => vec![1.0; n],
            Init::Gamma(GammaInit::Uniform) => rng.uniform_vec(n, 0.0, 1.0),
            Init::Zeros => vec![0.0; n],
        }
    }
}

/// Where a layer's tensors sit in the network's lists (see [`Model::layer_slots`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerSlots {
    /// Conv or linear weight, or batch-norm γ: an index into [`Model::parameters`].
    pub weight: Option<usize>,
    /// Conv or linear bias, or batch-norm β.
    pub bias: Option<usize>,
    /// Index among the batch norms (running and saved statistics).
    pub batch_norm: Option<usize>,
    /// Index among the max pools (argmax buffers).
    pub max_pool: Option<usize>,
}

/// A network: its layers in execution order and the shapes they imply.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub variant: Variant,
    pub stem: Stem,
    pub classes: usize,
    pub layers: Vec<Layer>,
}

/// Shape [N, C, H, W] of a tensor (a linear layer's output is [N, F, 1, 1]).
pub type Shape = [usize; 4];

impl Model {
    /// The output of the network: the logits [B, classes, 1, 1].
    pub fn output(&self) -> TensorId {
        self.layers.len()
    }

    /// Every layer described at a given batch size (see [`Op::describe`]), in order.
    pub fn describe(&self, batch: usize) -> Vec<LayerDescription> {
        self.describe_with(batch, self.variant.default_gamma())
    }

    fn describe_with(&self, batch: usize, gamma: GammaInit) -> Vec<LayerDescription> {
        let init = InitStyle {
            torchvision: self.variant != Variant::Seed50,
            gamma,
        };
        let mut shapes = vec![[batch, 3, 32, 32]];
        let mut out = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let description = layer.op.describe(shapes[layer.inputs[0]], init);
            shapes.push(description.output);
            out.push(description);
        }
        out
    }

    /// Shapes of every tensor at a given batch size (index = tensor id).
    pub fn shapes(&self, batch: usize) -> Vec<Shape> {
        let mut shapes = vec![[batch, 3, 32, 32]];
        shapes.extend(self.describe(batch).into_iter().map(|d| d.output));
        shapes
    }

    /// Initial values of every parameter, in `parameters()` order, drawn in that order from
    /// one stream seeded with `seed` (each with its [`ParamSpec`]'s initialisation).
    pub fn initial_parameters(&self, seed: u64) -> Vec<Vec<f32>> {
        self.initial_parameters_with(seed, self.variant.default_gamma())
    }

    /// [`Model::initial_parameters`] with batch norm's γ drawn as `gamma` says instead of the
    /// variant's default.
    pub fn initial_parameters_with(&self, seed: u64, gamma: GammaInit) -> Vec<Vec<f32>> {
        let mut rng = Rng::new(seed);
        self.describe_with(1, gamma)
            .into_iter()
            .flat_map(|d| d.params)
            .map(|p| p.initial_values(&mut rng))
            .collect()
    }

    /// Where each layer's tensors sit in the network's lists: the one numbering of parameters
    /// (in [`Model::parameters`] order), batch norms and max pools that the scheduler and the
    /// CPU reference share.
    pub fn layer_slots(&self) -> Vec<LayerSlots> {
        let (mut params, mut batch_norms, mut pools) = (0, 0, 0);
        let next = |counter: &mut usize, present: bool| {
            present.then(|| {
                *counter += 1;
                *counter - 1
            })
        };
        self.describe(1)
            .iter()
            .map(|d| LayerSlots {
                weight: next(&mut params, !d.params.is_empty()),
                bias: next(&mut params, d.params.len() > 1),
                batch_norm: next(&mut batch_norms, d.statistics.is_some()),
                max_pool: next(&mut pools, d.argmax.is_some()),
            })
            .collect()
    }

    /// Every trainable parameter, in layer order, as PyTorch's `state_dict` lists them.
    pub fn parameters(&self) -> Vec<ParamSpec> {
        self.describe(1).into_iter().flat_map(|d| d.params).collect()
    }

    /// Names and channel counts of the batch-norm layers (their running statistics).
    pub fn batch_norms(&self) -> Vec<(String, usize)> {
        self.describe(1)
            .into_iter()
            .filter_map(|d| d.statistics)
            .collect()
    }

    /// Multiply-adds × 2 of one forward pass per image.
    pub fn forward_flops_per_image(&self) -> f64 {
        self.describe(1).iter().map(|d| d.forward_flops).sum()
    }
}
