// Second step of a split-K GEMM: adds the partial sums of its chunks, in chunk order,
//   out[i] = Σ_{s < chunks} partial[s · len + i]   (+ out[i] when `accumulate`)
// so that the result is the same run after run. partial [chunks, len], out [len].
//
// Joined before body_flat.wgsl (the entry point, which calls elements and element below).

struct Params {
    len: u32,
    chunks: u32,
    accumulate: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

fn elements() -> u32 {
    return params.len;
}

fn element(i: u32) {
    var sum = 0.0;
    for (var s = 0u; s < params.chunks; s++) {
        sum += partial[s * params.len + i];
    }
    if params.accumulate == 1u {
        sum += out[i];
    }
    out[i] = sum;
}
