// Global average pool backward: dx[p, k] = dy[p] / hw for every k < hw.
//
// One invocation per input element.
//
// Joined after prelude_global_avg_pool.wgsl (Params) and before
// body_flat.wgsl (the entry point, which calls elements and element below).

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

fn elements() -> u32 {
    return params.planes * params.hw;
}

fn element(i: u32) {
    dx[i] = dy[i / params.hw] / f32(params.hw);
}
