//! Robust trend statistics for the trend detectors: the Theil–Sen slope (median of the
//! pairwise slopes, Sen 1968) and the Mann–Kendall trend test (Kendall's S and its normal
//! approximation). Both tolerate the dips and single outliers of real validation curves
//! that break "N rises in a row" (../shared/DETECTORS.md, "Robust trend tests"). Ten lines
//! each; no crate is pulled in for them.

use crate::metrics::Point;

/// One-sided 5% critical value of the standard normal: a Mann–Kendall z beyond ±1.645 is
/// a trend at the usual 5% level (Mann 1945, Kendall 1975).
pub const MK_Z_5PCT: f64 = 1.645;

/// Median of the slopes (Δvalue / Δepoch) over every pair of finite points: the Theil–Sen
/// estimator. `None` with fewer than two finite points.
pub fn theil_sen_slope(points: &[Point]) -> Option<f64> {
    let finite: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.value.is_finite())
        .collect();
    let mut slopes = Vec::with_capacity(finite.len() * finite.len().saturating_sub(1) / 2);
    for (i, a) in finite.iter().enumerate() {
        for b in &finite[i + 1..] {
            if b.epoch != a.epoch {
                slopes.push((b.value - a.value) / (f64::from(b.epoch) - f64::from(a.epoch)));
            }
        }
    }
    median(&mut slopes)
}

/// The Mann–Kendall z of the points in order (continuity-corrected, no tie correction):
/// negative for a falling series, beyond `MK_Z_5PCT` in size for a trend at 5%.
pub fn mann_kendall_z(points: &[Point]) -> Option<f64> {
    let v: Vec<f64> = points
        .iter()
        .map(|p| p.value)
        .filter(|v| v.is_finite())
        .collect();
    let n = v.len();
    if n < 3 {
        return None;
    }
    let s: i64 = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .map(|(i, j)| match v[j].partial_cmp(&v[i]) {
            Some(std::cmp::Ordering::Greater) => 1,
            Some(std::cmp::Ordering::Less) => -1,
            _ => 0,
        })
        .sum();
    let n = n as f64;
    let sd = (n * (n - 1.0) * (2.0 * n + 5.0) / 18.0).sqrt();
    let s = s as f64;
    Some(if s > 0.0 {
        (s - 1.0) / sd
    } else if s < 0.0 {
        (s + 1.0) / sd
    } else {
        0.0
    })
}

/// Median of finite values (sorted in place).
pub fn median(values: &mut Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Largest number of examples worth reading from an accuracy's values: beyond it two
/// binomial standard errors at p = 1/2 (1/√n) are under the detectors' fixed 0.05
/// accuracy tolerance, so the sample's noise no longer widens anything.
pub const MAX_SAMPLE_COUNT: u32 = 400;
/// Distinct values an accuracy must take before a common denominator says anything: two
/// values are k/n for many n by accident (derived).
const SAMPLE_COUNT_MIN_VALUES: usize = 3;
/// How far v·n may sit from a whole number: a float32 accuracy (7 significant digits, as
/// Keras writes it) times n ≤ 400 is off by under 3e-5.
const SAMPLE_COUNT_SLACK: f64 = 1e-4;

/// The number of examples an accuracy is counted over, read from its values: the smallest
/// n ≤ `MAX_SAMPLE_COUNT` for which every value is k/n. A validation set of 47 images
/// gives 0.5532 (26/47), 0.5745 (27/47), 0.6170 (29/47). `None` when fewer than
/// `SAMPLE_COUNT_MIN_VALUES` distinct values are logged, when the values are means of
/// batch accuracies, or when the set is larger than the noise matters for.
pub fn sample_count(values: impl IntoIterator<Item = f64>) -> Option<u32> {
    let mut distinct: Vec<f64> = values
        .into_iter()
        .filter(|v| v.is_finite() && (0.0..=1.0).contains(v))
        .collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    if distinct.len() < SAMPLE_COUNT_MIN_VALUES {
        return None;
    }
    (2..=MAX_SAMPLE_COUNT).find(|&n| {
        let n = f64::from(n);
        distinct
            .iter()
            .all(|v| (v * n - (v * n).round()).abs() <= SAMPLE_COUNT_SLACK)
    })
}

/// Two binomial standard errors of an accuracy p measured on n examples: a change smaller
/// than this is a few examples flipping, not the model moving (a 95% interval).
pub fn accuracy_noise(p: f64, n: u32) -> f64 {
    2.0 * (p * (1.0 - p) / f64::from(n)).sqrt()
}

/// How far an accuracy near p may move and still be the same: `floor`, or its noise
/// (`accuracy_noise`) when the examples it is counted over are known and that is wider.
pub fn accuracy_tolerance(p: f64, examples: Option<u32>, floor: f64) -> f64 {
    examples.map_or(floor, |n| accuracy_noise(p, n).max(floor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_count_reads_the_denominator_of_float32_accuracies() {
        // tests/real/keras_csv_drowsiness_val_acc_pinned_near_chance: 47 validation images.
        let val = [
            0.5531914830207825,
            0.5744680762290955,
            0.6170212626457214,
            0.5106382966041565,
        ];
        assert_eq!(sample_count(val), Some(47));
        // Lightning's acc_epoch over 32 examples: 4/32, 11/32, 15/32.
        assert_eq!(sample_count([0.125, 0.34375, 0.46875, 0.46875]), Some(32));
    }

    #[test]
    fn sample_count_needs_three_values_and_a_small_set() {
        assert_eq!(sample_count([0.5, 0.75]), None, "two values fit many n");
        // Means of batch accuracies, or a large set: no n ≤ 400 fits.
        assert_eq!(sample_count([0.8123, 0.8391, 0.8517, 0.8602]), None);
        assert_eq!(sample_count([0.91337, 0.92011, 0.92486]), None);
        assert_eq!(sample_count([f64::NAN, 0.5, 0.25]), None);
    }

    #[test]
    fn accuracy_noise_is_two_standard_errors() {
        assert!((accuracy_noise(0.5, 100) - 0.1).abs() < 1e-12);
        assert!(accuracy_noise(0.5, MAX_SAMPLE_COUNT) <= 0.05 + 1e-12);
    }

    fn pts(values: &[f64]) -> Vec<Point> {
        values
            .iter()
            .enumerate()
            .map(|(i, &value)| Point {
                epoch: i as u32 + 1,
                value,
            })
            .collect()
    }

    #[test]
    fn theil_sen_ignores_one_outlier() {
        let s = theil_sen_slope(&pts(&[1.0, 2.0, 3.0, 40.0, 5.0])).unwrap();
        assert!((s - 1.0).abs() < 1e-12, "{s}");
        assert_eq!(theil_sen_slope(&pts(&[1.0])), None);
    }

    #[test]
    fn mann_kendall_tells_a_fall_from_noise() {
        let z = mann_kendall_z(&pts(&[5.0, 4.0, 3.0, 2.0, 1.0])).unwrap();
        assert!(z < -MK_Z_5PCT, "{z}");
        let z = mann_kendall_z(&pts(&[1.098, 1.097, 1.099, 1.096, 1.097])).unwrap();
        assert!(z.abs() < MK_Z_5PCT, "{z}");
    }
}
