// Softmax cross-entropy, backward of the mean loss over D rows (D = B, or the whole batch when
// these B rows are one micro-batch of it), over logits[B, K], labels[B] (u32):
//   dlogits[b, k] = (softmax(logits[b])[k] − [k = label_b]) / D
// with softmax computed stably as exp(z − max z) / Σ exp(z − max z).
// One invocation per row, 256 rows per workgroup, on a 2-D grid of workgroups.

struct Params {
    batch: u32,
    classes: u32,
    divisor: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let b = (workgroup.x + workgroup.y * grid.x) * 256u + lane;
    if b >= params.batch {
        return;
    }
    let classes = params.classes;
    let row = b * classes;
    var best = logits[row];
    for (var k = 1u; k < classes; k++) {
        best = max(best, logits[row + k]);
    }
    var sum = 0.0;
    for (var k = 0u; k < classes; k++) {
        sum += exp(logits[row + k] - best);
    }
    let label = labels[b];
    let inv_batch = 1.0 / f32(params.divisor);
    for (var k = 0u; k < classes; k++) {
        let p = exp(logits[row + k] - best) / sum;
        dlogits[row + k] = (p - select(0.0, 1.0, k == label)) * inv_batch;
    }
}
