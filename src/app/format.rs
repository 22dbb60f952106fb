//! How the app writes numbers and which classes it lists: pure functions, tested here.

/// A metric (a loss, an error rate, a learning rate) as text: with `decimals` decimals, but in
/// scientific notation where that would print dozens of digits or none at all (a diverging loss
/// of 1e38, a learning rate of 1e-5), as `1.23e38`; "NaN", "inf" and "-inf" as such.
pub fn format_metric(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let size = x.abs();
    if size >= 1e5 || (size > 0.0 && size < 1e-3) {
        format!("{x:.2e}")
    } else {
        format!("{x:.decimals$}")
    }
}

/// The decimals a plot's axis gives a tick mark `step` apart from the next (egui_plot's own
/// rule: a step of 0.01 needs 2; at most 16).
pub fn tick_decimals(step: f64) -> usize {
    (-step.log10().round()).clamp(0.0, 16.0) as usize
}

/// How many classes the Classify page lists.
pub const TOP_K: usize = 5;

/// The classes of `ranked` ((class, probability), most probable first) that `names` names,
/// at most `k`, in the same order and with the same probabilities. The network may have more
/// outputs than the data has classes (10 outputs for 4 named classes): an output without a
/// name is no class of the data, so it is not listed.
pub fn named_top_k(ranked: &[(usize, f64)], names: &[String], k: usize) -> Vec<(usize, f64)> {
    ranked
        .iter()
        .copied()
        .filter(|&(class, _)| class < names.len())
        .take(k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_classes_are_only_those_the_data_names_with_their_own_probabilities() {
        // 10 outputs, of which the unnamed ones (4 to 9) are the most probable.
        let probabilities = [0.02, 0.10, 0.05, 0.08, 0.30, 0.01, 0.20, 0.04, 0.12, 0.08];
        let names: Vec<String> = ["red", "green", "blue", "yellow"].map(String::from).to_vec();
        for ranked in [
            crate::train::top_k(&probabilities, 10),
            crate::train::top_k(&probabilities, 5),
        ] {
            let shown = named_top_k(&ranked, &names, TOP_K);
            assert!(shown.iter().all(|&(class, _)| class < 4), "{shown:?}");
            for &(class, p) in &shown {
                assert_eq!(p, probabilities[class], "class {class}: {shown:?}");
            }
            assert!(shown.windows(2).all(|w| w[0].1 >= w[1].1), "{shown:?}");
        }
        let all = named_top_k(&crate::train::top_k(&probabilities, 10), &names, TOP_K);
        assert_eq!(all, vec![(1, 0.10), (3, 0.08), (2, 0.05), (0, 0.02)]);
        // Of the top 5 (4, 6, 8, 1 and 3 or 9), the named ones.
        let of_five = named_top_k(&crate::train::top_k(&probabilities, 5), &names, TOP_K);
        assert_eq!(of_five.first(), Some(&(1, 0.10)), "{of_five:?}");
        // With as many names as outputs, the first k of the ranking.
        let ten: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let ranked = crate::train::top_k(&probabilities, 10);
        assert_eq!(named_top_k(&ranked, &ten, TOP_K), ranked[..TOP_K].to_vec());
    }

    #[test]
    fn metrics_too_large_or_too_small_for_decimals_are_in_scientific_notation() {
        assert_eq!(format_metric(1.2345e38, 4), "1.23e38");
        assert_eq!(format_metric(-3.0e7, 4), "-3.00e7");
        assert_eq!(format_metric(100_000.0, 4), "1.00e5");
        assert_eq!(format_metric(2.5e-5, 4), "2.50e-5");
        assert_eq!(format_metric(-9.99e-4, 4), "-9.99e-4");
        // Everything between stays as it was printed.
        assert_eq!(format_metric(1.234_56, 4), "1.2346");
        assert_eq!(format_metric(99_999.0, 1), "99999.0");
        assert_eq!(format_metric(0.001, 3), "0.001");
        assert_eq!(format_metric(0.0, 4), "0.0000");
        assert_eq!(format_metric(f64::NAN, 4), "NaN");
        assert_eq!(format_metric(f64::INFINITY, 4), "inf");
        assert_eq!(format_metric(f64::NEG_INFINITY, 4), "-inf");
        // A plot's axis: decimals after the step between its tick marks.
        assert_eq!(format_metric(0.2, tick_decimals(0.1)), "0.2");
        assert_eq!(format_metric(0.05, tick_decimals(0.01)), "0.05");
        assert_eq!(format_metric(2e38, tick_decimals(1e38)), "2.00e38");
        assert_eq!(format_metric(40.0, tick_decimals(20.0)), "40");
    }
}
