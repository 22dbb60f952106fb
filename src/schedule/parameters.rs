//! Where parameters live on the device: packed into a few large buffers ("arenas"), each
//! parameter a range of its own starting at a multiple of [`BINDING_ALIGNMENT_BYTES`]; their
//! gradients and SGD momentum sit in arenas of the same layout. SGD and the gradients'
//! finiteness check then run once per arena, over all of it, rather than once per parameter
//! (a ResNet-50 has 161): the gaps between ranges are zero in all three arenas, and SGD keeps
//! them zero (`g = 0 + wd·0`, `v = μ·0 + g`, `w = 0 − lr·v`).

use crate::gpu::BINDING_ALIGNMENT_BYTES;

/// Elements of f32 between two range starts: ranges start at multiples of this.
const ALIGN: usize = BINDING_ALIGNMENT_BYTES as usize / 4;

/// The arenas and each parameter's place in them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterLayout {
    /// Elements of each arena.
    pub arena_len: Vec<usize>,
    /// Per parameter, in `Model::parameters()` order: its arena and first element.
    pub place: Vec<(usize, usize)>,
}

impl ParameterLayout {
    /// Parameters of `lens` elements each, in arenas of at most `max_bytes` (a device's
    /// binding limit; a parameter longer than that gets an arena of its own).
    pub fn new(lens: &[usize], max_bytes: u64) -> Self {
        let max_len = (max_bytes / 4) as usize;
        let mut layout = Self {
            arena_len: Vec::new(),
            place: Vec::with_capacity(lens.len()),
        };
        for &len in lens {
            let slot = Self::slot_len(len);
            let arenas = layout.arena_len.len();
            match layout.arena_len.last_mut() {
                Some(used) if *used + slot <= max_len => {
                    layout.place.push((arenas - 1, *used));
                    *used += slot;
                }
                _ => {
                    layout.place.push((arenas, 0));
                    layout.arena_len.push(slot);
                }
            }
        }
        layout
    }

    /// Elements a parameter of `len` takes in its arena: its range and the gap after it.
    pub fn slot_len(len: usize) -> usize {
        len.max(1).next_multiple_of(ALIGN)
    }
}
