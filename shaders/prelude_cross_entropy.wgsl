// Shared by the softmax cross-entropy kernels (cross_entropy_*.wgsl) over logits[B, K]
// (K classes) and labels[B] (u32, < K): their parameters and inputs.
//

struct Params {
    batch: u32,
    classes: u32,
    // The rows the mean loss is taken over (used by the backward only; B, or the whole batch
    // when these B rows are one micro-batch of it).
    divisor: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<act>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
