// Shared by the global average pool kernels (global_avg_pool_*.wgsl) over NCHW tensors seen
// as x [planes, hw] (planes = N·C, hw = H·W) and y [planes]: their parameters.

struct Params {
    planes: u32,
    hw: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
