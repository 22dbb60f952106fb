// Shared by the convolution input-gradient kernels (conv2d_input_grad*.wgsl): their bindings,
// the stride phases their GEMMs run over, and the store of results.
//
// Stride phases. Input pixel (ih, iw) receives gradient only through the taps kh ≡ ih + ph
// (mod sh) and kw ≡ iw + pw (mod sw), so a strided layer's input gradient runs in
// sh·sw phases (grid z modulo their number), each a stride-1 problem: phase (rh, rw) covers the
// input pixels with (ih + ph) mod sh = rh and (iw + pw) mod sw = rw, and sums over its live
// taps kh = rh + j·sh, kw = rw + i·sw alone, so no multiply is spent on a zero that a masked
// gather would read. A stride-1 layer is one phase: every live tap of every pixel.
//
// As a GEMM, a phase computes dx = A · B with A = w read as [M = Cin, K = Cout·TH·TW] (TH×TW
// live taps of the phase) and B = dy gathered as [K, N = B·U·V] (U×V input pixels of the
// phase): column n = (b, u, v) of row ci is dx[b, ci, ih_first + u·sh, iw_first + v·sw], and
// reduction index k = (co, a, c) is tap (kh_first + a·sh, kw_first + c·sw), which reads
// dy[b, co, oh_first + u − a, ow_first + v − c] (out of range where it wraps past zero or
// reaches OH, OW).
//
// Builds on prelude_conv2d.wgsl (params).

@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

struct Phase {
    // The phase's input pixels: rows ih_first + u·sh for u < rows, columns iw_first + v·sw
    // for v < cols.
    ih_first: u32,
    iw_first: u32,
    rows: u32,
    cols: u32,
    // Its live taps: kh = kh_first + a·sh for a < taps_h, kw = kw_first + c·sw for c < taps_w.
    kh_first: u32,
    kw_first: u32,
    taps_h: u32,
    taps_w: u32,
    // The output row and column that tap (kh_first, kw_first) of pixel (u, v) = (0, 0) reads
    // (wrapping below zero): tap (a, c) of pixel (u, v) reads oh_first + u − a, ow_first + v − c.
    oh_first: u32,
    ow_first: u32,
}

// The phase of the running workgroup, set by enter_phase before anything else, for the hooks
// that the bodies call (load_a, load_b, stage_a, stage_b, store_row). Control flow around
// barriers and subgroup operations must not depend on it: a read of a private variable counts
// as non-uniform, so the tile's bounds come from enter_phase's returned value instead.
var<private> phase: Phase;

// How many stride phases the grid's z dimension runs: sh·sw.
fn phase_count() -> u32 {
    return params.stride_h * params.stride_w;
}

// One axis of a phase: residue r of stride s, with padding `pad`, size `size` and live taps
// [live_start, live_end). Returns (first input index, input count, first live tap, live tap
// count, the output index that the first live tap of the first input reads).
fn phase_axis(r: u32, s: u32, pad: u32, size: u32, live_start: u32, live_end: u32) -> array<u32, 5> {
    // The first input index i with (i + pad) mod s = r, and how many there are below size.
    let first = (r + s - pad % s) % s;
    let count = select(0u, (size - first + s - 1u) / s, first < size);
    // Live taps of the residue: k = r + j·s for j in [j_first, j_end).
    let j_first = (max(live_start, r) - r + s - 1u) / s;
    let j_end = max((max(live_end, r) - r + s - 1u) / s, j_first);
    // Tap r + j·s of input `first` reads output (first + pad − r) / s − j.
    let base = (first + pad - r) / s;
    return array<u32, 5>(first, count, r + j_first * s, j_end - j_first, base - j_first);
}

// Sets `phase` to the phase that grid slice z runs (z mod sh·sw), and returns it.
fn enter_phase(z: u32) -> Phase {
    let index = z % phase_count();
    let h = phase_axis(index / params.stride_w, params.stride_h, params.pad_h, params.in_height, params.live_h_start, params.live_h_end);
    let v = phase_axis(index % params.stride_w, params.stride_w, params.pad_w, params.in_width, params.live_w_start, params.live_w_end);
    let entered = Phase(h[0], v[0], h[1], v[1], h[2], v[2], h[3], v[3], h[4], v[4]);
    phase = entered;
    return entered;
}

// N of a phase's GEMM: its input pixels over the batch.
fn phase_columns(p: Phase) -> u32 {
    return params.batch * p.rows * p.cols;
}

// K of a phase's GEMM: output channels times its live taps.
fn phase_reduction(p: Phase) -> u32 {
    return params.out_channels * p.taps_h * p.taps_w;
}

// The columns that store_row last decoded, and the offset of dx[b, 0, ih, iw] for each (where
// below N). The bodies store all the rows of a set of columns one after another, so each
// column is decoded once, not once per row.
var<private> decoded_columns: vec4<u32> = vec4<u32>(OUTSIDE);
var<private> decoded_at: vec4<u32>;

// Writes row ci of the phase's GEMM at 4 columns (those below N), adding the old value when
// accumulating. The input gradient is never split: `slice` is not used.
fn store_row(slice: u32, ci: u32, columns: vec4<u32>, sums: vec4<f32>) {
    if ci >= params.in_channels {
        return;
    }
    let plane = params.in_height * params.in_width;
    if any(columns != decoded_columns) {
        let phase_pixels = phase.rows * phase.cols;
        for (var j = 0u; j < 4u; j++) {
            let n = columns[j];
            if n < phase_columns(phase) {
                let image = n / phase_pixels;
                let in_phase = n - image * phase_pixels;
                let u = in_phase / phase.cols;
                let ih = phase.ih_first + u * params.stride_h;
                let iw = phase.iw_first + (in_phase - u * phase.cols) * params.stride_w;
                decoded_at[j] = image * params.in_channels * plane + ih * params.in_width + iw;
            }
        }
        decoded_columns = columns;
    }
    for (var j = 0u; j < 4u; j++) {
        if columns[j] < phase_columns(phase) {
            let at = decoded_at[j] + ci * plane;
            var value = sums[j];
            if params.accumulate == 1u {
                value += dx[at];
            }
            dx[at] = value;
        }
    }
}
