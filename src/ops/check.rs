//! Comparison of GPU results with CPU references: `|gpu − ref| ≤ atol + rtol·|ref|`.

/// Checks every element and, on failure, names the worst one, its index and both values.
pub fn compare(name: &str, gpu: &[f32], reference: &[f64], atol: f64, rtol: f64) -> Result<(), String> {
    if gpu.len() != reference.len() {
        return Err(format!(
            "{name}: GPU gave {} values, the reference {}",
            gpu.len(),
            reference.len()
        ));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        let excess = ((g as f64) - r).abs() - (atol + rtol * r.abs());
        let bad = !g.is_finite() || excess > 0.0;
        if bad && worst.is_none_or(|(_, w)| excess > w || !g.is_finite()) {
            worst = Some((i, if g.is_finite() { excess } else { f64::INFINITY }));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, _)) => {
            let failing = gpu
                .iter()
                .zip(reference)
                .filter(|&(&g, &r)| !g.is_finite() || ((g as f64) - r).abs() > atol + rtol * r.abs())
                .count();
            Err(format!(
                "{name}: {failing} of {} elements out of tolerance (atol {atol:e}, rtol {rtol:e}); \
                 worst at index {i}: gpu {} vs reference {}",
                gpu.len(),
                gpu[i],
                reference[i]
            ))
        }
    }
}

/// Widens f32 values for the f64 CPU references.
pub fn to_f64(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| v as f64).collect()
}
