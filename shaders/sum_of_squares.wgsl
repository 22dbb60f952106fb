// Partial sums of squares of a flat tensor x[len], read as vec4s (buffers are padded with
// zeros to whole vec4s; the last one's components past len are masked anyway):
//   out[slot · G + g] = Σ_{q ≡ g·256 + lane (mod G·256)} ‖x4[q]‖²,  g < G = params.partials
// The G workgroups of a launch each sum their share: invocation `lane` of workgroup g adds the
// quads q = g·256 + lane + j·G·256 in order, then a tree reduction in workgroup memory adds the
// 256 partial sums. The host adds the G partials of a slot in a fixed order, so the result is
// deterministic; Σ_g out[slot · G + g] = Σ_i x[i]² (the square of the tensor's L2 norm).

struct Params {
    len: u32,
    slot: u32,
    partials: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let quads = (params.len + 3u) / 4u;
    let stride = params.partials * 256u;
    var sum = 0.0;
    for (var q = group.x * 256u + lane; q < quads; q += stride) {
        let inside = vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(params.len);
        let v = select(vec4<f32>(0.0), x[q], inside);
        sum += dot(v, v);
    }
    partial[lane] = sum;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width /= 2u) {
        if lane < width {
            partial[lane] += partial[lane + width];
        }
        workgroupBarrier();
    }
    if lane == 0u {
        out[params.slot * params.partials + group.x] = partial[0];
    }
}
