//! Which variant of a GEMM-shaped kernel each launch runs.
//!
//! Convolutions (forward, input gradient, weight gradient), pointwise convolutions and the
//! linear layer each come in several variants that compute the same thing with a different
//! division of work. Which is fastest depends on the device and on the shape, so the choice is
//! made per launch shape ([`GemmKey`]): by measurement on the device (`schedule::tune`), or
//! forced by a [`KernelPolicy`] (the `--kernels` option, tests).

use std::collections::BTreeMap;
use std::fmt;

use crate::shaders::Precision;

/// One way of running a GEMM-shaped launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// 16×16 invocations, 64×64 tiles in workgroup memory, 4×4 outputs per invocation; runs
    /// everywhere.
    Portable,
    /// One subgroup per workgroup exchanging operands with `subgroupBroadcast`; needs
    /// subgroups of at least 8 lanes. Fast where loads are expensive (CPU adapters).
    Subgroup,
    /// The subgroup kernels with a workgroup of the device's largest subgroup size (at least
    /// 16 lanes; see `GpuContext::wide_lanes`) and a tile 4 columns per lane wide: every lane
    /// of a 32- or 64-lane SIMD unit busy, where the 8-lane workgroup leaves most idle.
    SubgroupWide,
    /// 256 invocations, 128×128 tiles double-buffered in workgroup memory, 8×8 outputs per
    /// invocation: for wide GPUs.
    Tiled,
    /// The tiled kernels on 64×64 tiles: 8×8 invocations, 8×8 outputs each, 4 k per slice. For
    /// GPUs, where a launch has too few 128×128 tiles to fill the device.
    Tiled64,
    /// 256 invocations, 16×256 tiles, one column of 16 outputs per invocation, only A staged
    /// in workgroup memory: for outputs of few rows (16 or 32 output channels), which a
    /// 64-row tile leaves mostly empty. Convolution forward and input gradient, and GEMMs.
    Narrow,
    /// The reduction split into chunks whose partial sums, made on the portable kernel, a
    /// second launch adds in a fixed order: for small outputs with long reductions (weight
    /// gradients).
    SplitK,
    /// Split-K with its partial sums made on the tiled kernel: for the weight gradients of late
    /// layers on GPUs, whose few 128×128 tiles would leave most of a wide GPU idle.
    SplitKTiled,
}

impl Variant {
    pub const ALL: [Variant; 8] = [
        Variant::Portable,
        Variant::Subgroup,
        Variant::SubgroupWide,
        Variant::Tiled,
        Variant::Tiled64,
        Variant::Narrow,
        Variant::SplitK,
        Variant::SplitKTiled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Portable => "portable",
            Variant::Subgroup => "subgroup",
            Variant::SubgroupWide => "subgroup-wide",
            Variant::Tiled => "tiled",
            Variant::Tiled64 => "tiled-64",
            Variant::Narrow => "narrow",
            Variant::SplitK => "split-k",
            Variant::SplitKTiled => "split-k-tiled",
        }
    }

    /// Whether the variant cuts the reduction into chunks whose partial sums a second launch
    /// adds: the side of the partial pass's square tile where it does.
    pub fn split_tile(self) -> Option<usize> {
        match self {
            // Square tiles, whatever the subgroup width.
            Variant::SplitK | Variant::SplitKTiled => Some(self.tile(0).0 as usize),
            Variant::Portable
            | Variant::Subgroup
            | Variant::SubgroupWide
            | Variant::Tiled
            | Variant::Tiled64
            | Variant::Narrow => None,
        }
    }

    /// The output tile (rows, columns) one workgroup of the variant computes, on a device whose
    /// widest subgroup is `wide_lanes` lanes (`GpuContext::wide_lanes`): 4 columns per lane on
    /// the subgroup kernels.
    pub fn tile(self, wide_lanes: u32) -> (u32, u32) {
        match self {
            Variant::Subgroup => (16, 32),
            Variant::SubgroupWide => (16, 4 * wide_lanes),
            Variant::Tiled | Variant::SplitKTiled => (128, 128),
            Variant::Narrow => (16, 256),
            Variant::Portable | Variant::Tiled64 | Variant::SplitK => (64, 64),
        }
    }

    /// Whether the variant needs subgroup operations.
    pub fn uses_subgroups(self) -> bool {
        matches!(self, Variant::Subgroup | Variant::SubgroupWide)
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How launches pick their variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KernelPolicy {
    /// The variant measured fastest for the shape; before measuring, subgroup where the
    /// adapter has subgroups, else portable.
    #[default]
    Auto,
    /// This variant wherever it applies (the default choice elsewhere).
    Only(Variant),
}

impl KernelPolicy {
    /// `auto`, or a variant's name.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "auto" {
            return Ok(KernelPolicy::Auto);
        }
        Variant::from_name(text).map(KernelPolicy::Only).ok_or_else(|| {
            let names: Vec<&str> = Variant::ALL.iter().map(|v| v.name()).collect();
            format!("unknown kernel choice '{text}': use auto, {}", names.join(", "))
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            KernelPolicy::Auto => "auto",
            KernelPolicy::Only(v) => v.name(),
        }
    }
}

/// The kind of GEMM a launch computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GemmOp {
    ConvForward,
    ConvInputGrad,
    ConvWeightGrad,
    Matmul,
}

impl GemmOp {
    pub fn name(self) -> &'static str {
        match self {
            GemmOp::ConvForward => "conv-forward",
            GemmOp::ConvInputGrad => "conv-input-grad",
            GemmOp::ConvWeightGrad => "conv-weight-grad",
            GemmOp::Matmul => "matmul",
        }
    }
}

/// A launch shape: the op and every size that decides its speed, as text (the cache's key),
/// e.g. `conv-forward b8 3x224x224 -> 64 k7x7 s2x2 p3x3` or `matmul z8 m64 n3136 k256 …`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct GemmKey(pub String);

impl GemmKey {
    pub fn new(op: GemmOp, shape: impl fmt::Display) -> Self {
        GemmKey(format!("{} {shape}", op.name()))
    }

    /// The key of the launch whose three tensors (as its launcher takes them) are stored at
    /// `operands`: ` f16` after the shape where any is f16 (its kernels convert, and may rank
    /// differently), the shape alone otherwise.
    pub fn at(self, operands: [Precision; 3]) -> Self {
        match operands.contains(&Precision::F16) {
            true => GemmKey(format!("{} f16", self.0)),
            false => self,
        }
    }
}

impl fmt::Display for GemmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The policy in force and the variants chosen by measurement so far.
#[derive(Clone, Debug, Default)]
pub struct KernelChoices {
    pub policy: KernelPolicy,
    pub measured: BTreeMap<GemmKey, Variant>,
}

impl KernelChoices {
    /// The variant for `key` among `candidates` (the variants that apply to the launch on this
    /// adapter, in order of preference when nothing was measured).
    pub fn pick(&self, key: &GemmKey, candidates: &[Variant]) -> Variant {
        assert!(!candidates.is_empty(), "{key}: no kernel variant applies");
        let wanted = match self.policy {
            KernelPolicy::Only(v) => Some(v),
            KernelPolicy::Auto => self.measured.get(key).copied(),
        };
        wanted.filter(|v| candidates.contains(v)).unwrap_or(candidates[0])
    }
}
