// Softmax cross-entropy, forward (see prelude_cross_entropy.wgsl).
//
//   loss    = (1/B) Σ_b (logsumexp(logits[b]) − logits[b, label_b])
//   correct = #{b : argmax_k logits[b, k] = label_b}   (on ties the first maximal index
//                                                       wins, as torch.argmax)
// written to the step's status record (ops/finite_check.rs): status[0] = the bits of the loss,
// status[1] = correct, and bit 1 (the loss) set in status[2] when the loss is infinite or NaN,
// tested on its exponent bits (WGSL lets a compiler assume floats are finite). status[2]
// gathers flags over a whole step, so it is only ORed here; this launch is its only writer
// while it runs.
// logsumexp(z) = max(z) + log Σ_k exp(z_k − max(z)), stable for large logits.
// One workgroup of 256: lane l takes rows l, l + 256, …, then fixed tree reductions in
// workgroup memory (deterministic). Dispatch exactly one workgroup.
//
// Joined after prelude_cross_entropy.wgsl (Params, logits, labels).

@group(0) @binding(3) var<storage, read_write> status: array<u32>;

const WORKGROUP: u32 = 256u;
const STATUS_FLAGS: u32 = 2u;
const LOSS_NOT_FINITE: u32 = 1u;
const EXPONENT: u32 = 0x7f800000u;

var<workgroup> partial_loss: array<f32, 256>;
var<workgroup> partial_hits: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lane: u32) {
    let classes = params.classes;
    var loss = 0.0;
    var hits = 0u;
    for (var b = lane; b < params.batch; b += WORKGROUP) {
        let row = b * classes;
        var best = f32(logits[row]);
        var best_k = 0u;
        for (var k = 1u; k < classes; k++) {
            let v = f32(logits[row + k]);
            if v > best {
                best = v;
                best_k = k;
            }
        }
        var sum = 0.0;
        for (var k = 0u; k < classes; k++) {
            sum += exp(f32(logits[row + k]) - best);
        }
        let label = labels[b];
        loss += best + log(sum) - f32(logits[row + label]);
        hits += select(0u, 1u, best_k == label);
    }
    partial_loss[lane] = loss;
    partial_hits[lane] = hits;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lane < stride {
            partial_loss[lane] += partial_loss[lane + stride];
            partial_hits[lane] += partial_hits[lane + stride];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        let loss = partial_loss[0] / f32(params.batch);
        status[0] = bitcast<u32>(loss);
        status[1] = partial_hits[0];
        if (bitcast<u32>(loss) & EXPONENT) == EXPONENT {
            status[STATUS_FLAGS] = status[STATUS_FLAGS] | LOSS_NOT_FINITE;
        }
    }
}
