// Shared by the batch-norm kernels (batch_norm_*.wgsl) over x [N, C, S] (NCHW, S = H·W):
// their parameters (momentum and eps as in PyTorch; `accumulate` for the backward's parameter
// gradients; `relu` when the ReLU that follows is fused in) and the per-channel addressing.

struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    momentum: f32,
    eps: f32,
    accumulate: u32,
    relu: u32,
    // Training kernels: invocations per channel, a power of two up to 256.
    lanes: u32,
    // Training forward: 0 starts the step's statistics, 1 merges a later micro-batch's into
    // them, 2 (a rerun of the forward) leaves them (see batch_norm_train_forward.wgsl).
    step_stats: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// Offset in an [N, C, S] tensor of the channel's i-th element (i over n, then the spatial position).
fn offset(c: u32, i: u32) -> u32 {
    let n = i / params.spatial;
    let p = i - n * params.spatial;
    return (n * params.channels + c) * params.spatial + p;
}
