// Softmax cross-entropy, backward of the mean loss over D rows (D = B, or the whole batch when
// these B rows are one micro-batch of it; see prelude_cross_entropy.wgsl):
//   dlogits[b, k] = (softmax(logits[b])[k] − [k = label_b]) / D
// with softmax computed stably as exp(z − max z) / Σ exp(z − max z).
// One invocation per row.
//
// Joined after prelude_cross_entropy.wgsl (Params, logits, labels)
// and before body_flat.wgsl (the entry point, which calls elements and element below).

@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;

fn elements() -> u32 {
    return params.batch;
}

fn element(b: u32) {
    let classes = params.classes;
    let row = b * classes;
    var best = f32(logits[row]);
    for (var k = 1u; k < classes; k++) {
        best = max(best, f32(logits[row + k]));
    }
    var sum = 0.0;
    for (var k = 0u; k < classes; k++) {
        sum += exp(f32(logits[row + k]) - best);
    }
    let label = labels[b];
    let inv_batch = 1.0 / f32(params.divisor);
    for (var k = 0u; k < classes; k++) {
        let p = exp(f32(logits[row + k]) - best) / sum;
        dlogits[row + k] = (p - select(0.0, 1.0, k == label)) * inv_batch;
    }
}
