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
    // Training kernels: parts per channel. 1: a workgroup holds whole channels and does
    // everything in one dispatch. P > 1: a workgroup holds `part_len` values of one channel,
    // and two dispatches run, `phase` 0 (each part's partial results, kept in saved) then
    // `phase` 1 (the channel's results merged from its parts in order, then each part's output).
    parts: u32,
    phase: u32,
    part_len: u32,
}

@group(0) @binding(0) var<uniform> params: Params;

// Where a training kernel's workgroup works: channel c (past the last one for a workgroup's
// spare lanes), values [begin, end) of it (i over n, then the spatial position), and its part.
struct Span {
    c: u32,
    begin: u32,
    end: u32,
    part: u32,
}

// With one part, workgroup `id` holds channels id · (256 / lanes) onwards, lane / lanes being
// the lane's; with P parts, part id % P of channel id / P.
fn span_of(id: u32, lane: u32) -> Span {
    let count = params.batch * params.spatial;
    if params.parts == 1u {
        return Span(id * (256u / params.lanes) + lane / params.lanes, 0u, count, 0u);
    }
    let part = id % params.parts;
    let begin = part * params.part_len;
    return Span(id / params.parts, begin, min(begin + params.part_len, count), part);
}

// Where part `part` of channel c keeps partial result k (three per part) in saved, after the
// 5C values of saved_len's first region: saved[5C + (c · P + part) · 3 + k].
fn partial_at(c: u32, part: u32, k: u32) -> u32 {
    return 5u * params.channels + (c * params.parts + part) * 3u + k;
}

// Offset in an [N, C, S] tensor of the channel's i-th element (i over n, then the spatial position).
fn offset(c: u32, i: u32) -> u32 {
    let n = i / params.spatial;
    let p = i - n * params.spatial;
    return (n * params.channels + c) * params.spatial + p;
}
