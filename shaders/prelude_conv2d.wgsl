// Shared by the 2-D convolution kernels (conv2d_*.wgsl): their parameters. Tensors are NCHW:
// x [B, Cin, H, W], w [Cout, Cin, KH, KW], y [B, Cout, OH, OW] with
// OH = (H + 2·pad_h − KH) / stride_h + 1 (and likewise OW).

struct Params {
    batch: u32,
    in_channels: u32,
    in_height: u32,
    in_width: u32,
    out_channels: u32,
    out_height: u32,
    out_width: u32,
    kernel_h: u32,
    kernel_w: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    has_bias: u32,
    accumulate: u32,
    // Weight gradients, split-K and subgroup variants: values of the reduction (K = B·OH·OW)
    // summed by each chunk.
    k_chunk: u32,
    // The kernel rows [live_h_start, live_h_end) and columns [live_w_start, live_w_end) that
    // read the input for some output position; the others read only padding (a 3×3 kernel on
    // a 1×1 plane reaches it with its centre only). The subgroup kernels skip them.
    live_h_start: u32,
    live_h_end: u32,
    live_w_start: u32,
    live_w_end: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
