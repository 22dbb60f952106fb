// Bias gradient: db[c] = Σ_{n, p} dy[n, c, p] for dy of shape [N, C, P] (P = H·W for a
// convolution; P = 1 for a linear layer, whose dy is [N, C]).
//
// A channel's N·P values are summed in parts of part_len values, a workgroup each (linear
// workgroup index w = c·parts + part, w = id.x + id.y · num_workgroups.x, a 2-D grid past
// 65,535), with a fixed tree reduction in workgroup memory. With one part a channel's workgroup
// writes db[c]. With several, two dispatches of this kernel: phase 0 writes each part's sum to
// partial[c·parts + part], and phase 1, a workgroup per channel, sums those in the same fixed
// way into db[c]. No atomics: the same result every run. db is overwritten, or added to when
// `accumulate` is 1 (gradient accumulation over micro-batches).

struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    accumulate: u32,
    // Parts per channel, values per part (the last part may hold fewer), and the dispatch's
    // phase (0: the parts; 1: their sum, only where parts > 1).
    parts: u32,
    part_len: u32,
    phase: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;
// [C, parts]: each part's sum, where parts > 1 (else a placeholder).
@group(0) @binding(3) var<storage, read_write> partial: array<f32>;

const WORKGROUP: u32 = 256u;

var<workgroup> lanes: array<f32, 256>;

// The sum of every lane's `value`, in a fixed tree; every lane of the workgroup calls it.
fn workgroup_sum(lane: u32, value: f32) -> f32 {
    lanes[lane] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lane < stride {
            lanes[lane] += lanes[lane + stride];
        }
        workgroupBarrier();
    }
    return lanes[0];
}

// Writes the channel's sum to db[c], adding the old value when accumulating.
fn store(c: u32, total: f32) {
    db[c] = select(0.0, db[c], params.accumulate != 0u) + total;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let w = workgroup.x + workgroup.y * grid.x;
    if params.phase == 1u {
        let c = w;
        if c >= params.channels {
            return;
        }
        var sum = 0.0;
        for (var part = lane; part < params.parts; part += WORKGROUP) {
            sum += partial[c * params.parts + part];
        }
        let total = workgroup_sum(lane, sum);
        if lane == 0u {
            store(c, total);
        }
        return;
    }
    let c = w / params.parts;
    let part = w % params.parts;
    if c >= params.channels {
        return;
    }
    let first = part * params.part_len;
    let end = min(first + params.part_len, params.batch * params.spatial);
    // Value i = n·P + p of the channel; each lane steps i by WORKGROUP, carrying p into n, with
    // no division per value.
    let step_n = WORKGROUP / params.spatial;
    let step_p = WORKGROUP % params.spatial;
    var n = (first + lane) / params.spatial;
    var p = (first + lane) % params.spatial;
    var sum = 0.0;
    for (var i = first + lane; i < end; i += WORKGROUP) {
        sum += dy[(n * params.channels + c) * params.spatial + p];
        n += step_n;
        p += step_p;
        if p >= params.spatial {
            p -= params.spatial;
            n += 1u;
        }
    }
    let total = workgroup_sum(lane, sum);
    if lane == 0u {
        if params.parts == 1u {
            store(c, total);
        } else {
            partial[c * params.parts + part] = total;
        }
    }
}
