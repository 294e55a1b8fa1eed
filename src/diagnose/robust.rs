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

#[cfg(test)]
mod tests {
    use super::*;

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
