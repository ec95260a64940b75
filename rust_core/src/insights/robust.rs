//! Robust statistics for short, noisy interval series (a shopper's gaps between purchases).
//!
//! Inter-purchase gaps are heavy-tailed: a holiday or a trip to another shop doubles one gap
//! without changing the habit. The median ignores such gaps but wastes information on short
//! series; the Huber M-estimate behaves like the mean near the centre and like the median in
//! the tails, which suits series of 2 to 50 gaps.

/// Consistency constant: 1.4826 × MAD estimates the standard deviation of normal data.
pub const MAD_TO_SD: f64 = 1.482_602_218_505_602;

/// Median of `values` (reordered in place). NaN for an empty slice. Values must not be NaN.
pub fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (below, upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// Median absolute deviation from `centre`. NaN for an empty slice.
pub fn mad(values: &[f64], centre: f64) -> f64 {
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    median(&mut deviations)
}

/// Huber M-estimate of location, started at the median and iterated (IRLS) to convergence.
///
/// `scale` is the robust spread (1.4826 × MAD); when every value sits on the median (MAD = 0,
/// common with whole-day gaps such as 7, 7, 7, 30) it is floored at `min_scale` so that
/// outliers are still down-weighted instead of dividing by zero.
pub fn huber_location(values: &[f64], k: f64, min_scale: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    let centre = median(&mut sorted);
    if values.len() <= 2 {
        // With one or two values the median already is the mean; nothing to iterate.
        return centre;
    }
    let scale = (MAD_TO_SD * mad(values, centre)).max(min_scale);
    let threshold = k * scale;
    let mut location = centre;
    for _ in 0..50 {
        let (mut weighted, mut weights) = (0.0, 0.0);
        for &v in values {
            let distance = (v - location).abs();
            let w = if distance <= threshold { 1.0 } else { threshold / distance };
            weighted += w * v;
            weights += w;
        }
        let next = weighted / weights;
        let converged = (next - location).abs() <= 1e-9 * location.abs().max(1.0);
        location = next;
        if converged {
            break;
        }
    }
    location
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn mad_measures_spread_around_the_centre() {
        assert_eq!(mad(&[1.0, 2.0, 3.0, 4.0, 100.0], 3.0), 1.0);
    }

    #[test]
    fn huber_equals_mean_without_outliers() {
        let gaps = [6.0, 7.0, 8.0, 7.0];
        assert!((huber_location(&gaps, 1.345, 0.5) - 7.0).abs() < 1e-9);
    }

    #[test]
    fn huber_resists_one_long_gap() {
        // A two-week holiday in a weekly habit: the mean says 10.8 days, Huber stays near 7.
        let gaps = [7.0, 7.0, 7.0, 7.0, 7.0, 30.0];
        let location = huber_location(&gaps, 1.345, 0.5);
        assert!(location > 7.0 && location < 7.5, "{location}");
    }
}
