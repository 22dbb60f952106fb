// Shared by the kernels over NCHW tensors seen as [planes, height, width] (planes = N·C):
// the position of a flat element index.

// Element i of a [planes, height, width] tensor as (plane, row, column).
fn plane_position(i: u32, height: u32, width: u32) -> vec3<u32> {
    let area = height * width;
    let plane = i / area;
    let rest = i - plane * area;
    let row = rest / width;
    return vec3<u32>(plane, row, rest - row * width);
}
