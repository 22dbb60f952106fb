//! Which gradient buffers a backward pass needs and when each can be reused.

use std::collections::HashMap;

use crate::model::{Model, Shape};

/// Gradient buffers ("slots") of the tensors of one backward pass.
///
/// The gradient of a tensor read by several layers is the sum of their contributions. Layers
/// are planned in reverse; the first contribution (from the last reader) overwrites, later ones
/// accumulate (only layers described with `input_grad_adds`, the convolutions, add into their
/// target, and the planner checks it). An input that a layer's description lists in
/// `gradient_passes_to` (both inputs of a residual add) has the output's gradient as the
/// layer's backward leaves it, so it shares the output's slot instead of receiving a copy: by
/// the time the block's first convolution adds its contribution there, every other reader of
/// that slot has run.
///
/// A slot is free again once the backward of the layer that produced each of its tensors has
/// read it; a later tensor of exactly the same length takes it over (launchers check lengths
/// exactly, so slots are matched by length).
#[derive(Clone, Debug, PartialEq)]
pub struct GradientPlan {
    /// Length (f32 elements) of each slot.
    pub slot_len: Vec<usize>,
    /// The slot holding each tensor's gradient; `None` where no gradient flows.
    pub tensor_slot: Vec<Option<usize>>,
    /// Per layer: the slot its backward writes for its first input, and whether it adds to
    /// what is there. (The residual add writes nothing: its inputs share its slot.)
    pub input_grad_target: Vec<Option<(usize, bool)>>,
}

impl GradientPlan {
    pub fn new(model: &Model, shapes: &[Shape]) -> Self {
        let numel = |t: usize| shapes[t].iter().product::<usize>();
        let tensors = shapes.len();
        let descriptions = model.describe(1);
        // A layer that owns parameters needs its output's gradient even if its input has none.
        let mut needs_grad = vec![false; tensors];
        for (i, (layer, description)) in model.layers.iter().zip(&descriptions).enumerate() {
            needs_grad[i + 1] = !description.params.is_empty() || layer.inputs.iter().any(|&t| needs_grad[t]);
        }

        let mut plan = Self {
            slot_len: Vec::new(),
            tensor_slot: vec![None; tensors],
            input_grad_target: vec![None; model.layers.len()],
        };
        let mut pool = SlotPool::default();
        let output = model.output();
        let slot = pool.take(&mut plan.slot_len, numel(output));
        plan.tensor_slot[output] = Some(slot);
        pool.holders[slot] = 1;
        pool.written[slot] = true; // the loss backward writes it

        for (i, layer) in model.layers.iter().enumerate().rev() {
            let y = i + 1;
            let Some(y_slot) = plan.tensor_slot[y] else {
                continue; // nothing downstream needs this layer's gradient
            };
            let description = &descriptions[i];
            for (j, &x) in layer.inputs.iter().enumerate() {
                if !needs_grad[x] {
                    continue;
                }
                let passes = description.gradient_passes_to.contains(&j);
                let slot = match (plan.tensor_slot[x], passes) {
                    (None, true) => y_slot,
                    (None, false) => pool.take(&mut plan.slot_len, numel(x)),
                    (Some(slot), passes) => {
                        assert!(
                            description.input_grad_adds && !passes && j == 0,
                            "tensor {x} gets gradient from several layers, and layer {i} ({:?}) cannot add into it",
                            layer.op
                        );
                        slot
                    }
                };
                if plan.tensor_slot[x].is_none() {
                    plan.tensor_slot[x] = Some(slot);
                    pool.holders[slot] += 1;
                }
                let accumulate = pool.written[slot];
                pool.written[slot] = true;
                if j == 0 {
                    plan.input_grad_target[i] = Some((slot, accumulate));
                }
            }
            // Layer i's backward was the last reader of y's gradient.
            pool.release(y_slot, plan.slot_len[y_slot]);
        }
        plan
    }
}

/// Slots being planned: free ones by length; per slot, how many of its tensors still wait for
/// their producer's backward, and whether it holds a value yet.
#[derive(Default)]
struct SlotPool {
    free: HashMap<usize, Vec<usize>>,
    holders: Vec<usize>,
    written: Vec<bool>,
}

impl SlotPool {
    fn take(&mut self, slot_len: &mut Vec<usize>, len: usize) -> usize {
        if let Some(slot) = self.free.get_mut(&len).and_then(Vec::pop) {
            self.written[slot] = false;
            return slot;
        }
        slot_len.push(len);
        self.holders.push(0);
        self.written.push(false);
        slot_len.len() - 1
    }

    fn release(&mut self, slot: usize, len: usize) {
        self.holders[slot] -= 1;
        if self.holders[slot] == 0 {
            self.free.entry(len).or_default().push(slot);
        }
    }
}
