//! Metric histories placed in epochs: MLflow's steps read as epochs where they are ones,
//! by an `epoch` metric, by time order or by timestamps otherwise (the rules in the module
//! comment of `mlflow`).

use std::collections::BTreeMap;

use super::MetricPoint;

/// A metric whose steps span more than this many times their count is logged per
/// optimizer step, not per epoch (epoch steps are consecutive: a span of 1× their count).
const SPARSE_STEP_FACTOR: i64 = 2;

/// One metric's name and its values as (1-based epoch, value), in epoch order.
type Placed<'a> = (&'a str, Vec<(u32, f64)>);

/// Each metric's values placed in epochs (the rules in the module comment), with warnings
/// about what was read around.
pub(super) fn epoch_series(
    metrics: &BTreeMap<String, Vec<MetricPoint>>,
) -> (Vec<Placed<'_>>, Vec<String>) {
    let mut warnings = Vec::new();
    let training: Vec<(&str, Vec<MetricPoint>)> = metrics
        .iter()
        .filter(|(name, points)| {
            !points.is_empty() && name.as_str() != "epoch" && !name.starts_with("system/")
        })
        .map(|(name, points)| {
            let mut points = points.clone();
            points.sort_by_key(|p| (p.step, p.timestamp));
            (name.as_str(), points)
        })
        .collect();

    if let Some(logged) = metrics.get("epoch").filter(|p| !p.is_empty()) {
        let mut at_step: BTreeMap<i64, u32> = BTreeMap::new();
        for p in logged {
            let epoch = epoch_from_fraction(p.value);
            let slot = at_step.entry(p.step).or_insert(epoch);
            *slot = (*slot).max(epoch);
        }
        let first = at_step.values().next().copied().unwrap_or(1);
        let series = training
            .into_iter()
            .map(|(name, points)| {
                let placed = points
                    .iter()
                    .map(|p| {
                        let epoch = at_step
                            .range(..=p.step)
                            .next_back()
                            .map_or(first, |(_, e)| *e);
                        (epoch, p.value)
                    })
                    .collect();
                (name, sorted(placed))
            })
            .collect();
        return (series, warnings);
    }

    let kinds = step_kinds(&training);
    let dense_min = training
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| **k == StepKind::Dense)
        .filter_map(|((_, p), _)| p.first().map(|p| p.step))
        .min();
    let offset = if dense_min == Some(0) { 1 } else { 0 };
    let step_epoch =
        |step: i64| -> u32 { u32::try_from((step + offset).max(1)).unwrap_or(u32::MAX) };

    // When each epoch's epoch-level values were logged: its end, for placing step-level
    // values by time.
    let mut epoch_ends: BTreeMap<u32, i64> = BTreeMap::new();
    for ((_, points), kind) in training.iter().zip(&kinds) {
        if *kind == StepKind::Dense {
            for p in points {
                let end = epoch_ends.entry(step_epoch(p.step)).or_insert(p.timestamp);
                *end = (*end).max(p.timestamp);
            }
        }
    }
    let sparse_steps: Vec<i64> = {
        let mut steps: Vec<i64> = training
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k == StepKind::Sparse)
            .flat_map(|((_, p), _)| p.iter().map(|p| p.step))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    };
    if epoch_ends.is_empty() && !sparse_steps.is_empty() {
        let names: Vec<String> = training
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k == StepKind::Sparse)
            .map(|((n, _), _)| format!("`{n}`"))
            .collect();
        let shown: Vec<String> = sparse_steps.iter().take(3).map(i64::to_string).collect();
        warnings.push(format!(
            "{} logged at steps {} …, too far apart to be epochs; each logged step is read as one epoch",
            names.join(", "),
            shown.join(", ")
        ));
    }

    let mut series = Vec::with_capacity(training.len());
    for ((name, points), kind) in training.iter().zip(&kinds) {
        let placed: Vec<(u32, f64)> = match kind {
            StepKind::Dense => points
                .iter()
                .map(|p| (step_epoch(p.step), p.value))
                .collect(),
            StepKind::Unstepped => {
                let mut by_time = points.clone();
                by_time.sort_by_key(|p| p.timestamp);
                by_time
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (u32::try_from(i + 1).unwrap_or(u32::MAX), p.value))
                    .collect()
            }
            StepKind::Sparse if epoch_ends.is_empty() => points
                .iter()
                .map(|p| {
                    let rank = sparse_steps.partition_point(|s| *s < p.step) + 1;
                    (u32::try_from(rank).unwrap_or(u32::MAX), p.value)
                })
                .collect(),
            StepKind::Sparse => {
                let mut placed = Vec::with_capacity(points.len());
                let mut after_last = 0usize;
                for p in points {
                    match epoch_ends.iter().find(|(_, end)| **end >= p.timestamp) {
                        Some((epoch, _)) => placed.push((*epoch, p.value)),
                        None => after_last += 1,
                    }
                }
                if after_last > 0 {
                    warnings.push(format!(
                        "`{name}`: {after_last} value(s) logged after the last complete epoch are left out"
                    ));
                }
                placed
            }
        };
        series.push((*name, sorted(placed)));
    }
    (series, warnings)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// Consecutive steps: the step is the epoch.
    Dense,
    /// Several values, all at one step: logged without a step.
    Unstepped,
    /// Steps far apart: optimizer steps.
    Sparse,
}

/// How each metric's steps (sorted) read. A metric logged once says nothing by itself:
/// it is per epoch when its step falls within (or just after) the steps of the run's
/// per-epoch metrics, or when no metric has a longer history; else it is one more value
/// at an optimizer step.
fn step_kinds(training: &[(&str, Vec<MetricPoint>)]) -> Vec<StepKind> {
    let kinds: Vec<Option<StepKind>> = training.iter().map(|(_, p)| step_kind(p)).collect();
    let dense_steps = training
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| **k == Some(StepKind::Dense))
        .flat_map(|((_, p), _)| p.iter().map(|p| p.step));
    let range = dense_steps.fold(None, |r: Option<(i64, i64)>, s| {
        Some(r.map_or((s, s), |(lo, hi)| (lo.min(s), hi.max(s))))
    });
    let any_sparse = kinds.contains(&Some(StepKind::Sparse));
    training
        .iter()
        .zip(kinds)
        .map(|((_, points), kind)| {
            kind.unwrap_or_else(|| {
                let step = points.first().map_or(0, |p| p.step);
                match range {
                    Some((lo, hi)) if (lo..=hi.saturating_add(1)).contains(&step) => {
                        StepKind::Dense
                    }
                    Some(_) => StepKind::Sparse,
                    None if any_sparse => StepKind::Sparse,
                    None => StepKind::Dense,
                }
            })
        })
        .collect()
}

/// How one metric's steps (sorted) read; `None` for a single value.
fn step_kind(points: &[MetricPoint]) -> Option<StepKind> {
    let (first, last) = match points {
        [] | [_] => return None,
        [first, .., last] => (first, last),
    };
    if first.step == last.step {
        return Some(StepKind::Unstepped);
    }
    let mut distinct = points.iter().map(|p| p.step).collect::<Vec<_>>();
    distinct.dedup();
    let span = i128::from(last.step) - i128::from(first.step) + 1;
    Some(
        if first.step >= 0 && span <= i128::from(SPARSE_STEP_FACTOR) * distinct.len() as i128 {
            StepKind::Dense
        } else {
            StepKind::Sparse
        },
    )
}

/// The epoch a fractional epoch count falls in (1.0 is the end of epoch 1, 1.5 is in
/// epoch 2), at least 1.
fn epoch_from_fraction(value: f64) -> u32 {
    if value.is_finite() && value > 1.0 {
        // `as` saturates, so a huge value cannot wrap.
        value.ceil() as u32
    } else {
        1
    }
}

/// Values in epoch order, values of one epoch in the order they came.
fn sorted(mut placed: Vec<(u32, f64)>) -> Vec<(u32, f64)> {
    placed.sort_by_key(|(epoch, _)| *epoch);
    placed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlflow::tests::points;

    /// Each metric's (epoch, value) pairs.
    type Epochs = BTreeMap<String, Vec<(u32, f64)>>;

    fn placed(metrics: &[(&str, Vec<MetricPoint>)]) -> (Epochs, Vec<String>) {
        let map: BTreeMap<String, Vec<MetricPoint>> = metrics
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let (series, warnings) = epoch_series(&map);
        (
            series
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            warnings,
        )
    }

    #[test]
    fn autolog_steps_count_from_zero_and_explicit_epochs_from_one() {
        // mlflow.keras.autolog: step = epoch index from 0
        let (s, w) = placed(&[
            ("loss", points(&[(0, 10, 1.0), (1, 20, 0.5), (2, 30, 0.25)])),
            (
                "val_loss",
                points(&[(0, 11, 1.1), (1, 21, 0.6), (2, 31, 0.4)]),
            ),
        ]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (3, 0.25)]);
        assert_eq!(s["val_loss"], [(1, 1.1), (2, 0.6), (3, 0.4)]);
        assert!(w.is_empty());
        // log_metric(step=epoch) with epochs from 1, one epoch missing
        let (s, _) = placed(&[("loss", points(&[(1, 1, 1.0), (2, 2, 0.5), (4, 4, 0.2)]))]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (4, 0.2)]);
    }

    #[test]
    fn values_without_steps_are_consecutive_epochs_in_time_order() {
        let (s, _) = placed(&[("loss", points(&[(0, 30, 0.3), (0, 10, 1.0), (0, 20, 0.5)]))]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (3, 0.3)]);
    }

    #[test]
    fn an_epoch_metric_places_values_logged_at_global_steps() {
        // the HF Trainer's MLflowCallback: step = global step, `epoch` logged beside
        let (s, _) = placed(&[
            (
                "epoch",
                points(&[(50, 1, 0.5), (100, 2, 1.0), (150, 3, 1.5), (200, 4, 2.0)]),
            ),
            (
                "loss",
                points(&[(50, 1, 2.0), (100, 2, 1.0), (150, 3, 0.8), (200, 4, 0.6)]),
            ),
            ("eval_loss", points(&[(100, 2, 1.2), (200, 4, 0.9)])),
            ("system/cpu_utilization_percentage", points(&[(0, 1, 50.0)])),
        ]);
        assert_eq!(s["loss"], [(1, 2.0), (1, 1.0), (2, 0.8), (2, 0.6)]);
        assert_eq!(s["eval_loss"], [(1, 1.2), (2, 0.9)]);
        assert!(!s.contains_key("epoch"));
        assert!(!s.contains_key("system/cpu_utilization_percentage"));
    }

    #[test]
    fn step_level_values_go_to_the_epoch_they_were_logged_in() {
        // Lightning autolog with log_every_n_step: epoch metrics at step = epoch from 0,
        // step metrics at the global step, placed by time
        let (s, w) = placed(&[
            ("train_loss_epoch", points(&[(0, 100, 1.0), (1, 200, 0.5)])),
            (
                "train_loss_step",
                points(&[(10, 50, 1.2), (20, 90, 0.9), (30, 150, 0.6), (40, 250, 0.4)]),
            ),
        ]);
        assert_eq!(s["train_loss_epoch"], [(1, 1.0), (2, 0.5)]);
        assert_eq!(s["train_loss_step"], [(1, 1.2), (1, 0.9), (2, 0.6)]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("1 value(s) logged after the last complete epoch"),
            "{w:?}"
        );
        // with no epoch-level metric at all, each step is one epoch, and that is said
        let (s, w) = placed(&[
            (
                "loss",
                points(&[(100, 1, 1.0), (200, 2, 0.5), (300, 3, 0.4)]),
            ),
            ("val_loss", points(&[(200, 2, 0.7)])),
        ]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (3, 0.4)]);
        assert_eq!(s["val_loss"], [(2, 0.7)]);
        assert!(w[0].contains("too far apart to be epochs"), "{w:?}");
    }
}
