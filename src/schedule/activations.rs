//! Where each activation of a training step lives, and at which precision: kept for the whole
//! step, or, under recomputation, in a scratch buffer that every residual block shares and that a rerun of the
//! block's forward fills again just before the block's backward (Chen et al. 2016, *Training
//! Deep Nets with Sublinear Memory Cost*; `torch.utils.checkpoint`).
//!
//! Kept: the network's input, the stem (every tensor up to the first one two layers read, the
//! first block's input), the output of each layer that joins two branches (a block's output)
//! and what follows the last join (pooling, the linear layer). The others are the blocks'
//! intermediates: the k-th intermediate of every block lives in scratch buffer k, as long as
//! the longest of them. The last block's intermediates are still in place when the backward
//! begins; every other block reruns its forward (all its layers but the join, whose output is
//! kept) before its backward, with the same kernels on the same inputs, so the tensors are
//! bit-identical to the forward pass's. A rerun batch norm saves the same statistics again and
//! leaves the step's statistics, and so the running statistics, alone.
//!
//! In the f16 modes every activation (the layers' inputs and outputs, kept or recomputed) is
//! stored as f16 where the device offers `shader-f16`; kernels compute in f32. Parameters,
//! their gradients, momentum and the gradients of activations stay f32.

use crate::model::{Model, Shape};
use crate::shaders::Precision;

/// How a step holds its activations: all kept or the blocks' intermediates recomputed, each
/// stored as f32 or as f16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MemoryMode {
    /// Every activation kept, as f32, from the forward to the backward.
    #[serde(rename = "full")]
    Full,
    /// Every activation kept, stored as f16.
    #[serde(rename = "f16")]
    F16,
    /// Only each block's input and output kept; a block's forward reruns before its backward
    /// (about one more forward pass a step).
    #[serde(rename = "recompute")]
    Recompute,
    /// Recomputation, with every activation stored as f16.
    #[serde(rename = "recompute-f16")]
    RecomputeF16,
}

impl MemoryMode {
    /// From the fastest to the one that needs least memory: the order in which a plan tries
    /// them.
    pub const ALL: [MemoryMode; 4] = [
        MemoryMode::Full,
        MemoryMode::F16,
        MemoryMode::Recompute,
        MemoryMode::RecomputeF16,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MemoryMode::Full => "full",
            MemoryMode::F16 => "f16",
            MemoryMode::Recompute => "recompute",
            MemoryMode::RecomputeF16 => "recompute-f16",
        }
    }

    /// Whether the blocks' forwards rerun before their backwards.
    pub fn recomputes(self) -> bool {
        match self {
            MemoryMode::Full | MemoryMode::F16 => false,
            MemoryMode::Recompute | MemoryMode::RecomputeF16 => true,
        }
    }

    /// How activations are stored.
    pub fn precision(self) -> Precision {
        match self {
            MemoryMode::Full | MemoryMode::Recompute => Precision::F32,
            MemoryMode::F16 | MemoryMode::RecomputeF16 => Precision::F16,
        }
    }

    /// What the mode does, for notes: "every activation kept", "activations stored as f16 and
    /// each block's forward rerun before its backward"…
    pub fn describe(self) -> &'static str {
        match self {
            MemoryMode::Full => "every activation kept from the forward to the backward",
            MemoryMode::F16 => "every activation kept, stored as f16",
            MemoryMode::Recompute => "each block's forward reruns before its backward",
            MemoryMode::RecomputeF16 => {
                "activations stored as f16, and each block's forward reruns before its backward"
            }
        }
    }

    /// `auto` (`None`: the plan chooses) or a mode's name.
    pub fn parse(text: &str) -> Result<Option<MemoryMode>, String> {
        match text {
            "auto" => Ok(None),
            _ => Self::ALL
                .into_iter()
                .find(|m| m.name() == text)
                .map(Some)
                .ok_or_else(|| {
                    format!("unknown memory mode `{text}`: use auto, full, f16, recompute or recompute-f16")
                }),
        }
    }
}

/// Where a tensor lives during a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// Its own buffer.
    Kept,
    /// The scratch buffer of this index, shared with the same intermediate of other blocks.
    Scratch(usize),
}

/// Where every activation lives, and what reruns.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivationPlan {
    pub mode: MemoryMode,
    /// Per tensor (index = tensor id).
    pub storage: Vec<Storage>,
    /// Elements of each scratch buffer.
    pub scratch_len: Vec<usize>,
    /// Per layer: the layers whose forward reruns just before its backward, in order (a
    /// block's layers before its join; empty elsewhere).
    pub rerun_before: Vec<Vec<usize>>,
}

impl ActivationPlan {
    pub fn new(model: &Model, shapes: &[Shape], mode: MemoryMode) -> Self {
        let layers = model.layers.len();
        let mut plan = Self {
            mode,
            storage: vec![Storage::Kept; layers + 1],
            scratch_len: Vec::new(),
            rerun_before: vec![Vec::new(); layers],
        };
        if !mode.recomputes() {
            return plan;
        }
        let mut readers = vec![0usize; layers + 1];
        for layer in &model.layers {
            for &t in &layer.inputs {
                readers[t] += 1;
            }
        }
        let joins: Vec<usize> = (0..layers)
            .filter(|&i| model.layers[i].inputs.len() > 1)
            .collect();
        let (Some(first_block_input), Some(&last_join)) = (readers.iter().position(|&r| r > 1), joins.last())
        else {
            return plan; // no blocks: nothing to recompute
        };
        let numel = |t: usize| shapes[t].iter().product::<usize>();
        // Layer i writes tensor i + 1; the blocks' layers are those after the first block's
        // input was written, up to the last join.
        let mut block: Vec<usize> = Vec::new();
        for i in first_block_input..=last_join {
            if !joins.contains(&i) {
                let k = block.len();
                if k == plan.scratch_len.len() {
                    plan.scratch_len.push(0);
                }
                plan.scratch_len[k] = plan.scratch_len[k].max(numel(i + 1));
                plan.storage[i + 1] = Storage::Scratch(k);
                block.push(i);
                continue;
            }
            // The last block's intermediates are still in place when its backward begins.
            if i != last_join {
                plan.rerun_before[i] = block.clone();
            }
            block.clear();
        }
        plan
    }
}
