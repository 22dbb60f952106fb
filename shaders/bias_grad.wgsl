// Bias gradient: db[c] = Σ_{n, p} dy[n, c, p] for dy of shape [N, C, P] (P = H·W for a
// convolution; P = 1 for a linear layer, whose dy is [N, C]).
//
// One workgroup per channel (linear index id.x + id.y · num_workgroups.x, a 2-D grid when
// C > 65,535) loops over the channel's N·P elements, then a fixed tree reduction in workgroup
// memory: no atomics, the same result every run. db is overwritten, or added to when
// `accumulate` is 1 (gradient accumulation over micro-batches).

struct Params {
    batch: u32,
    channels: u32,
    spatial: u32,
    accumulate: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

const WORKGROUP: u32 = 256u;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) workgroup: vec3<u32>,
    @builtin(num_workgroups) grid: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let c = workgroup.x + workgroup.y * grid.x;
    if c >= params.channels {
        return;
    }
    let count = params.batch * params.spatial;
    var sum = 0.0;
    for (var i = lane; i < count; i += WORKGROUP) {
        let n = i / params.spatial;
        let p = i - n * params.spatial;
        sum += dy[(n * params.channels + c) * params.spatial + p];
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var stride = WORKGROUP / 2u; stride > 0u; stride = stride / 2u) {
        if lane < stride {
            partial[lane] += partial[lane + stride];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        db[c] = select(0.0, db[c], params.accumulate != 0u) + partial[0];
    }
}
