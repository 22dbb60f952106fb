// Global average pool forward: y[p] = mean of the hw values x[p, ·] of plane p.
//
// One invocation per plane sums its values in order, then divides by hw: deterministic.
//
// Joined after prelude_global_avg_pool.wgsl (Params) and before
// body_flat.wgsl (the entry point, which calls elements and element below).

@group(0) @binding(1) var<storage, read> x: array<act>;
@group(0) @binding(2) var<storage, read_write> y: array<act>;

fn elements() -> u32 {
    return params.planes;
}

fn element(p: u32) {
    let base = p * params.hw;
    var sum = 0.0;
    for (var k = 0u; k < params.hw; k++) {
        sum += f32(x[base + k]);
    }
    y[p] = act(sum / f32(params.hw));
}
