//! Trends of a loss that is neither diverging nor at chance: a plateau (the run learned,
//! then its best loss stopped improving and the curve went flat) and slow convergence
//! (the loss has barely moved from where it started and is still moving too slowly to
//! get anywhere). The two are kept apart by how far the training loss has come
//! (`LEARNED_MIN_DROP`): a run that learned and then flattened is a plateau, not slow
//! convergence. A loss that rose clearly above its best is not flat either: that is
//! overfitting's or oscillation's to report.

use super::{MIN_EPOCHS, series, series_label};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::series::RECENT_CAPACITY;
use crate::metrics::{Canonical, Point, Series};
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity};

/// An epoch improves on the best loss only by more than this, relative: PyTorch
/// ReduceLROnPlateau's default threshold (mode "rel"). DETECTORS.md started at 1e-3;
/// on a real healthy Keras run (an earlier version of configs/examples/keras/healthy)
/// that called a validation loss still making 0.03% gains (1.2909 → 1.2905, which
/// Keras's own min_delta 1e-4 counts as progress) a plateau, so the published default
/// replaced it.
pub const PLATEAU_MIN_REL_IMPROVEMENT: f64 = 1e-4;
/// Epochs without such an improvement that make a plateau (Lightning EarlyStopping's
/// default patience).
pub const PLATEAU_PATIENCE: u32 = 3;
/// A loss this far above its best (relative) has risen rather than gone flat: the
/// overfitting detector's minimum rise.
pub const PLATEAU_MAX_RISE: f64 = super::overfitting::OVERFIT_MIN_RISE;
/// Epochs over which convergence speed is judged: DeepDiagnosis checks every 5 epochs.
pub const SLOW_WINDOW: usize = 5;
/// With fewer than `SLOW_WINDOW` epochs (but at least `MIN_EPOCHS`), the loss must be
/// stuck rather than slow: under 0.2% a epoch, which no learning run shows in its first
/// epochs (the healthy Keras fixture falls 23% in its second). Derived.
pub const STUCK_MAX_REL_DROP_PER_EPOCH: f64 = 0.002;
/// Below this mean relative loss drop per epoch the loss is barely moving (DETECTORS.md
/// starting point: at 1% an epoch, halving the loss takes ~70 epochs).
pub const SLOW_MIN_REL_DROP_PER_EPOCH: f64 = 0.01;
/// Below this accuracy gain per epoch accuracy is barely moving (AUTOTRAINER's δ).
pub const SLOW_MIN_ACCURACY_GAIN_PER_EPOCH: f64 = 0.01;
/// A training loss whose best is this far below epoch 1 (relative) has learned: if it is
/// flat now that is a plateau; below it, a slow run is slow convergence. Derived: below
/// 10% a run is still near its starting point (of the Keras runs in
/// configs/examples/keras, `chance_level` moved 0.3%, `plateau` 38%).
pub const LEARNED_MIN_DROP: f64 = 0.10;

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    plateau(run, lang, out);
    slow_convergence(run, lang, out);
}

/// The validation loss when there is one with enough epochs, else the training loss.
fn loss_series(run: &Run, min_epochs: usize) -> Option<&Series> {
    [Canonical::ValLoss, Canonical::Loss]
        .into_iter()
        .filter_map(|c| series(run, c))
        .find(|s| s.len() >= min_epochs)
}

/// The best epoch of a loss, counting only improvements larger than
/// `PLATEAU_MIN_REL_IMPROVEMENT` (as ReduceLROnPlateau does), so that a crawl of tiny
/// gains does not keep resetting the clock.
fn best_epoch(series: &Series) -> Option<Point> {
    let points = series.tail(RECENT_CAPACITY);
    let start = points.first()?;
    // The run may be longer than the window: its best so far may lie before it.
    let mut best = series
        .min()
        .filter(|m| m.epoch < start.epoch)
        .unwrap_or(*start);
    for p in &points {
        if p.value.is_finite()
            && (!best.value.is_finite()
                || p.value < best.value - PLATEAU_MIN_REL_IMPROVEMENT * best.value.abs())
        {
            best = *p;
        }
    }
    best.value.is_finite().then_some(best)
}

/// How far the best of a loss is below its first epoch, relative.
fn best_drop(series: &Series) -> Option<f64> {
    let first = series.first()?.value;
    let best = series.min()?.value;
    (first.is_finite() && first > 0.0).then(|| (first - best) / first)
}

/// Whether the run has learned: the training loss (else the validation loss) has come
/// down by `LEARNED_MIN_DROP` at its best.
fn learned(run: &Run) -> bool {
    [Canonical::Loss, Canonical::ValLoss]
        .into_iter()
        .find_map(|c| series(run, c))
        .and_then(best_drop)
        .is_some_and(|drop| drop >= LEARNED_MIN_DROP)
}

fn plateau(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let min_epochs = MIN_EPOCHS.max(PLATEAU_PATIENCE as usize + 1);
    let Some(s) = loss_series(run, min_epochs) else {
        return;
    };
    let (Some(first), Some(last), Some(best)) = (s.first(), s.last(), best_epoch(s)) else {
        return;
    };
    if !first.value.is_finite() || !last.value.is_finite() || best.value <= 0.0 {
        return;
    }
    let since = last.epoch - best.epoch;
    let flat = last.value <= best.value * (1.0 + PLATEAU_MAX_RISE);
    if since < PLATEAU_PATIENCE || best.epoch == first.epoch || !flat || !learned(run) {
        return;
    }
    let what = series_label(s, lang);
    let min_rel = num(PLATEAU_MIN_REL_IMPROVEMENT * 100.0);
    let (b, be, f, l, le) = (
        num(best.value),
        best.epoch,
        num(first.value),
        num(last.value),
        last.epoch,
    );
    out.findings.push(Finding {
        id: FindingId::Plateau,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "The {what} has not improved by more than {min_rel}% for {since} epochs: its best was {b} at epoch {be} (down from {f} at epoch 1), and it is {l} at epoch {le}.",
            "{what}已连续 {since} 轮没有超过 {min_rel}% 的改善：最佳值是第 {be} 轮的 {b}（第 1 轮为 {f}），第 {le} 轮为 {l}。"
        ),
        evidence: evidence![
            "series" => s.name.as_str(),
            "best" => best.value,
            "best_epoch" => best.epoch,
            "epochs_since_best" => since,
            "first" => first.value,
            "last" => last.value,
            "last_epoch" => last.epoch,
            "min_rel_improvement" => PLATEAU_MIN_REL_IMPROVEMENT,
            "patience" => PLATEAU_PATIENCE,
        ],
    });
}

fn slow_convergence(run: &Run, lang: Lang, out: &mut Diagnosis) {
    // Speed of learning is read on the training loss; validation stands in without one.
    let (loss, accuracy) = match series(run, Canonical::Loss) {
        Some(l) => (l, series(run, Canonical::Accuracy)),
        None => match series(run, Canonical::ValLoss) {
            Some(l) => (l, series(run, Canonical::ValAccuracy)),
            None => return,
        },
    };
    if loss.len() < MIN_EPOCHS {
        return;
    }
    // Before SLOW_WINDOW epochs exist, only a loss that has not moved at all counts: a
    // trainer calling every epoch should not wait five epochs to hear that the step size
    // is a thousand times too small.
    let early = loss.len() < SLOW_WINDOW;
    let limit = if early {
        STUCK_MAX_REL_DROP_PER_EPOCH
    } else {
        SLOW_MIN_REL_DROP_PER_EPOCH
    };
    let window = loss.tail(SLOW_WINDOW);
    let Some(first) = loss.first() else { return };
    if window.len() < SLOW_WINDOW.min(loss.len())
        || !first.value.is_finite()
        || first.value <= 0.0
        || window
            .iter()
            .any(|p| !p.value.is_finite() || p.value <= 0.0)
    {
        return;
    }
    let steps = (window.len() - 1) as f64;
    let mean_rel_drop = window
        .windows(2)
        .map(|w| (w[0].value - w[1].value) / w[0].value)
        .sum::<f64>()
        / steps;
    let (w_first, w_last) = (window[0], window[window.len() - 1]);
    let accuracy_gain = accuracy.and_then(|a| {
        let start = a.at(w_first.epoch)?;
        let end = a.at(w_last.epoch)?;
        (start.is_finite() && end.is_finite())
            .then(|| (end - start) / f64::from(w_last.epoch - w_first.epoch))
    });
    let total_drop = (first.value - w_last.value) / first.value;
    let slow = mean_rel_drop < limit
        && accuracy_gain.is_none_or(|g| g < SLOW_MIN_ACCURACY_GAIN_PER_EPOCH)
        && total_drop < LEARNED_MIN_DROP
        && best_drop(loss).is_some_and(|d| d < LEARNED_MIN_DROP);
    if !slow {
        return;
    }
    let what = series_label(loss, lang);
    let n = window.len();
    let moved = if mean_rel_drop >= 0.0 {
        say!(
            lang,
            "fell {}% per epoch on average",
            "平均每轮仅下降 {}%",
            num(mean_rel_drop * 100.0)
        )
    } else {
        say!(
            lang,
            "rose {}% per epoch on average",
            "平均每轮反而上升 {}%",
            num(-mean_rel_drop * 100.0)
        )
    };
    let since_first = if total_drop >= 0.0 {
        say!(lang, "only {}% below", "只低 {}%", num(total_drop * 100.0))
    } else {
        say!(lang, "{}% above", "反而高出 {}%", num(-total_drop * 100.0))
    };
    let (f, l, le) = (num(first.value), num(w_last.value), w_last.epoch);
    let acc = match (accuracy, accuracy_gain) {
        (Some(a), Some(g)) => say!(
            lang,
            ", and the {} changes {} per epoch",
            "，{}每轮变化 {}",
            series_label(a, lang),
            num(g)
        ),
        _ => String::new(),
    };
    out.findings.push(Finding {
        id: FindingId::SlowConvergence,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "Over the last {n} epochs the {what} {moved}{acc}; at epoch {le} it is {l}, {since_first} the {f} of epoch 1.",
            "最近 {n} 轮{what}{moved}{acc}；第 {le} 轮为 {l}，与第 1 轮的 {f} 相比{since_first}。"
        ),
        evidence: evidence![
            "series" => loss.name.as_str(),
            "first" => first.value,
            "last" => w_last.value,
            "epochs" => n,
            "mean_rel_drop_per_epoch" => mean_rel_drop,
            "accuracy_gain_per_epoch" => accuracy_gain,
            "total_rel_drop" => total_drop,
            "accuracy_series" => accuracy.map(|a| a.name.clone()),
        ],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;
    use serde_json::Value;

    const HEALTHY_LOSS: [f64; 10] = [2.1, 1.3, 0.95, 0.78, 0.66, 0.58, 0.52, 0.47, 0.43, 0.40];
    const HEALTHY_VAL: [f64; 10] = [1.5, 1.1, 0.9, 0.8, 0.72, 0.66, 0.62, 0.59, 0.57, 0.555];
    const HEALTHY_ACC: [f64; 10] = [0.3, 0.55, 0.67, 0.73, 0.77, 0.8, 0.82, 0.84, 0.85, 0.86];

    #[test]
    fn a_healthy_run_has_no_trend_finding() {
        let d = Fixture::new()
            .series("loss", &HEALTHY_LOSS)
            .series("val_loss", &HEALTHY_VAL)
            .series("accuracy", &HEALTHY_ACC)
            .check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }

    #[test]
    fn a_flat_validation_loss_after_progress_is_a_plateau() {
        let val = [1.5, 1.0, 0.8, 0.7, 0.70005, 0.69995, 0.7001];
        let d = Fixture::new()
            .series("loss", &[2.0, 1.2, 0.9, 0.75, 0.7, 0.66, 0.63])
            .series("val_loss", &val)
            .check(check);
        let f = d.get(FindingId::Plateau).expect("plateau");
        let e = &f.evidence;
        assert_eq!(e["series"], "val_loss");
        assert_eq!(e["best"], 0.7);
        assert_eq!(e["best_epoch"], 4, "0.69995 is within 0.01% of 0.7");
        assert_eq!(e["epochs_since_best"], 3);
        assert_eq!(e["first"], 1.5);
        assert_eq!(e["last"], 0.7001);
        assert!(f.summary.contains("epoch 4"), "{}", f.summary);
        assert!(!d.has(FindingId::SlowConvergence), "it learned: not slow");
    }

    #[test]
    fn two_flat_epochs_are_not_yet_a_plateau() {
        let d = Fixture::new()
            .series("val_loss", &[1.5, 1.0, 0.8, 0.7, 0.7005, 0.701])
            .check(check);
        assert!(!d.has(FindingId::Plateau));
    }

    #[test]
    fn a_loss_flat_from_the_start_is_not_a_plateau_but_slow() {
        let loss = [1.10, 1.098, 1.097, 1.099, 1.096, 1.097];
        let d = Fixture::new()
            .series("loss", &loss)
            .series("accuracy", &[0.33, 0.34, 0.33, 0.34, 0.35, 0.34])
            .check(check);
        assert!(
            !d.has(FindingId::Plateau),
            "no progress ever: nothing to plateau from"
        );
        let e = &d.get(FindingId::SlowConvergence).expect("slow").evidence;
        assert_eq!(e["series"], "loss");
        assert_eq!(e["epochs"], 5);
        assert_eq!(e["first"], 1.1);
        assert_eq!(e["last"], 1.097);
        assert_eq!(e["accuracy_gain_per_epoch"], 0.0);
    }

    #[test]
    fn a_crawling_loss_without_accuracy_is_slow_and_accuracy_can_clear_it() {
        let loss = [2.30, 2.29, 2.27, 2.26, 2.24, 2.23, 2.21];
        let d = Fixture::new().series("loss", &loss).check(check);
        let e = &d.get(FindingId::SlowConvergence).expect("slow").evidence;
        assert_eq!(e["accuracy_gain_per_epoch"], Value::Null);
        assert!(e["mean_rel_drop_per_epoch"].as_f64().unwrap() < 0.01);
        // The same loss while accuracy climbs 3 points an epoch is learning.
        let d = Fixture::new()
            .series("loss", &loss)
            .series("accuracy", &[0.1, 0.13, 0.16, 0.19, 0.22, 0.25, 0.28])
            .check(check);
        assert!(!d.has(FindingId::SlowConvergence));
    }

    #[test]
    fn a_validation_loss_that_rose_well_above_its_best_is_not_flat() {
        let d = Fixture::new()
            .series("loss", &[2.0, 1.2, 0.9, 0.75, 0.7, 0.66, 0.63])
            .series("val_loss", &[1.5, 1.0, 0.8, 0.82, 0.85, 0.86, 0.9])
            .check(check);
        assert!(!d.has(FindingId::Plateau));
    }

    #[test]
    fn a_validation_loss_that_never_improved_is_not_a_plateau() {
        let d = Fixture::new()
            .series("loss", &[2.0, 1.2, 0.9, 0.75, 0.7, 0.66, 0.63])
            .series("val_loss", &[1.5, 1.51, 1.505, 1.51, 1.5, 1.505, 1.51])
            .check(check);
        assert!(!d.has(FindingId::Plateau));
    }

    #[test]
    fn a_chance_level_run_is_not_a_plateau() {
        // A real Keras LSTM on random labels (an earlier version of
        // configs/examples/keras/chance_level): the validation loss improved 0.1% once,
        // the training loss 1% in all; nothing was learned to plateau from.
        let d = Fixture::new()
            .series("loss", &[0.6952, 0.6920, 0.6903, 0.6897, 0.6885, 0.6881])
            .series(
                "val_loss",
                &[0.69656, 0.69575, 0.69614, 0.69588, 0.69689, 0.69776],
            )
            .check(check);
        assert!(!d.has(FindingId::Plateau));
        assert!(d.has(FindingId::SlowConvergence));
    }

    #[test]
    fn a_rising_loss_is_worded_as_rising() {
        let d = Fixture::new()
            .series("loss", &[1.0, 1.0, 1.01, 1.02, 1.025, 1.03])
            .check(check);
        let f = d.get(FindingId::SlowConvergence).unwrap();
        assert!(
            f.summary.contains("rose") && f.summary.contains("above"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn too_few_epochs_judge_nothing() {
        let d = Fixture::new().series("loss", &[1.1, 1.1]).check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn before_five_epochs_only_a_stuck_loss_is_slow() {
        let stuck = Fixture::new()
            .series("loss", &[2.786, 2.7847, 2.783, 2.7814])
            .check(check);
        assert!(
            stuck.has(FindingId::SlowConvergence),
            "{:?}",
            stuck.findings
        );
        // Falling 1% an epoch in the first epochs is learning, however slowly.
        let slow = Fixture::new()
            .series("loss", &[2.0, 1.98, 1.96, 1.94])
            .check(check);
        assert!(!slow.has(FindingId::SlowConvergence));
    }

    #[test]
    fn a_run_that_learned_then_flattened_is_not_slow() {
        let loss = [2.0, 1.0, 0.6, 0.5, 0.49999, 0.49998, 0.49997, 0.49996];
        let d = Fixture::new().series("loss", &loss).check(check);
        assert!(!d.has(FindingId::SlowConvergence));
        assert!(d.has(FindingId::Plateau));
    }
}
