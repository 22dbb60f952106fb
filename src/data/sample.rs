//! A built-in sample dataset, generated from a seed: 10 classes of 32×32 colour images, each
//! class a shape or pattern (disc, square, triangle, ring, plus, horizontal stripes, vertical
//! stripes, checkerboard, diagonal cross, diamond) drawn at a random position, size and small
//! rotation, in random foreground and background colours (so colour says nothing about the
//! class), with a background gradient and pixel noise. A small CNN learns it in a few epochs,
//! but it is not linearly separable from raw pixels. It lets the program train and be tested
//! without downloading anything.

use super::{Cifar10, Dataset, IMAGE_BYTES, IMAGE_SIDE, NUM_CLASSES};
use crate::rng::Rng;

/// The sample dataset's class names, in label order.
pub const SAMPLE_CLASSES: [&str; NUM_CLASSES] = [
    "disc",
    "square",
    "triangle",
    "ring",
    "plus",
    "h-stripes",
    "v-stripes",
    "checker",
    "x-cross",
    "diamond",
];

/// `train` training and `test` test images, the same for the same seed. Each set is
/// balanced: every class has `n / 10` or `n / 10 + 1` images, in shuffled order. The two sets
/// come from separate random streams, so the test images do not depend on `train`.
pub fn sample_dataset(train: usize, test: usize, seed: u64) -> Cifar10 {
    let mut seeds = Rng::new(seed);
    let mut train_rng = Rng::new(seeds.next_u64());
    let mut test_rng = Rng::new(seeds.next_u64());
    Cifar10 {
        train: sample_set(train, &mut train_rng),
        test: sample_set(test, &mut test_rng),
    }
}

/// `n` images with labels 0,1,…,9,0,1,… shuffled.
fn sample_set(n: usize, rng: &mut Rng) -> Dataset {
    let mut labels: Vec<u8> = (0..n).map(|i| (i % NUM_CLASSES) as u8).collect();
    rng.shuffle(&mut labels);
    let mut images = Vec::with_capacity(n * IMAGE_BYTES);
    for &label in &labels {
        images.extend_from_slice(&render(label as usize, rng));
    }
    let class_names = SAMPLE_CLASSES.iter().map(|s| s.to_string()).collect();
    Dataset::new(images, labels, class_names)
}

/// Whether the point (u, v) of the shape's own frame (the shape spans about [-1, 1]², v down)
/// is foreground for `class`. `k` sets the number of stripes or checks.
fn inside(class: usize, u: f64, v: f64, k: f64) -> bool {
    let (au, av) = (u.abs(), v.abs());
    let in_box = au.max(av) <= 1.0;
    let even = |t: f64| (t.floor() as i64).rem_euclid(2) == 0;
    match class {
        0 => u * u + v * v <= 1.0,                                              // disc
        1 => au.max(av) <= 0.85,                                                // square
        2 => (-0.9..=0.8).contains(&v) && au <= (v + 0.9) * 0.56,               // triangle, apex up
        3 => (0.3..=1.0).contains(&(u * u + v * v)),                            // ring
        4 => (au <= 0.3 && av <= 1.0) || (av <= 0.3 && au <= 1.0),              // plus
        5 => in_box && even((v + 1.0) * k),                                     // horizontal stripes
        6 => in_box && even((u + 1.0) * k),                                     // vertical stripes
        7 => in_box && even(((u + 1.0) * k).floor() + ((v + 1.0) * k).floor()), // checker
        8 => in_box && ((u - v).abs() <= 0.35 || (u + v).abs() <= 0.35),        // diagonal cross
        _ => au + av <= 1.0,                                                    // diamond
    }
}

/// A random colour, as RGB in 0..255.
fn colour(rng: &mut Rng) -> [f64; 3] {
    [
        rng.uniform(0.0, 255.0),
        rng.uniform(0.0, 255.0),
        rng.uniform(0.0, 255.0),
    ]
}

/// One image of `class`: 3,072 CHW bytes.
fn render(class: usize, rng: &mut Rng) -> Vec<u8> {
    // Colours: a background with a linear gradient towards a second colour, and a foreground
    // far enough from the background to be seen.
    let bg = colour(rng);
    let bg2 = colour(rng);
    let mut fg = colour(rng);
    for _ in 0..32 {
        let d2: f64 = (0..3).map(|c| (fg[c] - bg[c]).powi(2)).sum();
        if d2 >= 120.0 * 120.0 {
            break;
        }
        fg = colour(rng);
    }
    let grad_angle = rng.uniform(0.0, std::f64::consts::TAU);
    let grad_strength = rng.uniform(0.0, 0.4);
    // Geometry: centre, half-size in pixels, rotation, pattern frequency.
    let cx = rng.uniform(11.0, 21.0);
    let cy = rng.uniform(11.0, 21.0);
    let scale = rng.uniform(7.0, 11.5);
    let angle = rng.uniform(-0.25, 0.25); // ±14°: a square never looks like a diamond
    let k = rng.uniform(1.5, 2.5);
    let noise = rng.uniform(4.0, 16.0);
    let (sin, cos) = angle.sin_cos();
    let (gs, gc) = grad_angle.sin_cos();

    let side = IMAGE_SIDE;
    let plane = side * side;
    let mut out = vec![0u8; IMAGE_BYTES];
    for y in 0..side {
        for x in 0..side {
            // Coverage by 2×2 supersampling, for anti-aliased edges.
            let mut cover = 0.0;
            for (ox, oy) in [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)] {
                let dx = x as f64 + ox - cx;
                let dy = y as f64 + oy - cy;
                let u = (cos * dx + sin * dy) / scale;
                let v = (-sin * dx + cos * dy) / scale;
                if inside(class, u, v, k) {
                    cover += 0.25;
                }
            }
            // Gradient position in [0, 1] along the gradient direction.
            let t = ((x as f64 - 15.5) * gc + (y as f64 - 15.5) * gs) / 45.0 + 0.5;
            for c in 0..3 {
                let back = bg[c] + (bg2[c] - bg[c]) * grad_strength * t;
                let value =
                    back * (1.0 - cover) + fg[c] * cover + noise * (rng.next_f64() + rng.next_f64() - 1.0);
                out[c * plane + y * side + x] = value.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}
