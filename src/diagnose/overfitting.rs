//! Overfitting: the validation loss has turned. Early stopping's published criteria decide
//! it (Prechelt, "Early Stopping — But When?", 1998; Keras/Lightning/HF EarlyStopping):
//! the generalisation loss GL = 100·(E_va(t)/E_opt(t) − 1) of the last epoch is above
//! `OVERFIT_GL_ALPHA`, the best is at least the patience old, the validation loss trends
//! up since the best by a robust test (Theil–Sen, which tolerates the dips that break "N
//! rises in a row"), and over the same stretch the training loss still falls and sits
//! clearly below the validation loss (SageMaker's gap ratio): overfitting needs the
//! training side to be doing clearly better. A validation split at chance while training
//! learns is `val_at_chance`'s (a split or label problem), not overfitting.

use super::robust::{MK_Z_5PCT, mann_kendall_z, median, theil_sen_slope};
use super::{MIN_EPOCHS, series, series_label};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::series::RECENT_CAPACITY;
use crate::metrics::{Canonical, Point, Series};
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity, Skipped};

/// Prechelt's GL_α stops at GL > α; his experiments used α from 1 to 5. retune takes the
/// most tolerant, 5 (a validation loss 5% above its best): a real healthy run
/// (tests/real/tb_dlgn_healthy_mild_rise) drifts +4.7% over 18 epochs of a flat
/// validation curve, and GL_1..GL_3 would call that overfitting.
pub const OVERFIT_GL_ALPHA: f64 = 5.0;
/// Epochs since the best before the turn counts: the patience users give Keras, Lightning
/// and HF EarlyStopping in practice (their defaults, 0–3, fire on noise), and Prechelt's
/// strip length k = 5.
pub const OVERFIT_PATIENCE: usize = 5;
/// On a short run the patience is this fraction of its epochs instead, if smaller
/// (AUTOTRAINER judges after 30% of the run), never below `MIN_EPOCHS`.
pub const OVERFIT_PATIENCE_RUN_FRACTION: f64 = 0.3;
/// SageMaker Debugger's Overfit rule flags (mean val − mean train) / mean train above
/// this. Here it is the condition that the training side is clearly doing better than the
/// validation side over the epochs since the best.
pub const SAGEMAKER_GAP_RATIO: f64 = 0.1;

/// What the judgement found; `check` words it, the plateau detector asks whether it holds.
pub(super) struct Overfit<'a> {
    val: &'a Series,
    train: &'a Series,
    best: Point,
    last: Point,
    since: usize,
    patience: usize,
    gl: f64,
    slope: f64,
    train_slope: f64,
    rising: usize,
    train_first: f64,
    train_last: f64,
    gap_ratio: f64,
}

/// Epochs since the best that make the turn last, for a run of `epochs` epochs.
fn patience(epochs: usize) -> usize {
    let fraction = (OVERFIT_PATIENCE_RUN_FRACTION * epochs as f64).ceil() as usize;
    OVERFIT_PATIENCE.min(fraction).max(MIN_EPOCHS)
}

/// The overfitting judgement on the run's validation and training loss, without wording.
pub(super) fn judge(run: &Run) -> Option<Overfit<'_>> {
    let val = series(run, Canonical::ValLoss)?;
    let train = series(run, Canonical::Loss)?;
    if val.len() <= MIN_EPOCHS {
        return None;
    }
    let points = val.tail(RECENT_CAPACITY);
    let best = val.min()?;
    let last = *points.last()?;
    if best.value <= 0.0 || !last.value.is_finite() {
        return None;
    }
    // The stretch from the best to the last epoch; a best older than the window leaves the
    // whole window (a run longer than RECENT_CAPACITY epochs).
    let (stretch, since) = match points.iter().rposition(|p| *p == best) {
        Some(i) => (&points[i..], points.len() - 1 - i),
        None if best.epoch < points[0].epoch => (&points[..], (last.epoch - best.epoch) as usize),
        None => return None,
    };
    let patience = patience(val.len());
    let gl = 100.0 * (last.value / best.value - 1.0);
    if since < patience || gl <= OVERFIT_GL_ALPHA {
        return None;
    }
    if dip_in_a_flat_band(&points, stretch) {
        return None;
    }
    let slope = theil_sen_slope(stretch)?;
    let pairs: Vec<(Point, f64)> = stretch
        .iter()
        .filter_map(|p| Some((*p, train.at(p.epoch)?)))
        .filter(|(v, t)| v.value.is_finite() && t.is_finite())
        .collect();
    if pairs.len() < MIN_EPOCHS {
        return None;
    }
    let train_points: Vec<Point> = pairs
        .iter()
        .map(|(p, t)| Point {
            epoch: p.epoch,
            value: *t,
        })
        .collect();
    let train_slope = theil_sen_slope(&train_points)?;
    let (train_first, train_last) = (pairs[0].1, pairs[pairs.len() - 1].1);
    let mean =
        |f: &dyn Fn(&(Point, f64)) -> f64| pairs.iter().map(f).sum::<f64>() / pairs.len() as f64;
    let (mean_val, mean_train) = (mean(&|p| p.0.value), mean(&|p| p.1));
    if mean_train <= 0.0 {
        return None;
    }
    let gap_ratio = (mean_val - mean_train) / mean_train;
    let train_falls = train_slope < 0.0 && train_last < train_first;
    if slope <= 0.0 || !train_falls || gap_ratio <= SAGEMAKER_GAP_RATIO {
        return None;
    }
    let rising = points
        .windows(2)
        .rev()
        .take_while(|w| w[0].value.is_finite() && w[1].value > w[0].value)
        .count();
    Some(Overfit {
        val,
        train,
        best,
        last,
        since,
        patience,
        gl,
        slope,
        train_slope,
        rising,
        train_first,
        train_last,
        gap_ratio,
    })
}

/// Whether the best is a lucky dip in a noisy, flat band rather than the bottom of a turn:
/// the epochs before it, as many as since it (at least `OVERFIT_PATIENCE`), show no
/// downward trend (Mann–Kendall at 5%), the epochs since it none upward, and they sit no
/// higher (median) than the epochs before did, within the `OVERFIT_GL_ALPHA` GL allows. A
/// climb out of a step down (a learning-rate cut: tests/real/
/// keras_csv_resnet18_cifar10_overfit_after_lr_drop, 10 straight rises after the cut) is a
/// trend, and stays a turn. Measured from such a dip every later epoch is "above the best", and GL and the
/// trend since it are large on a curve that never moved (held-out set 3,
/// keras_log_drinks_history_text_healthy: 0.0167–0.0554 with spikes for the 7 epochs before
/// a best of 0.0157; median 0.0313 over the 10 before it, 0.0322 over the 10 after). The
/// guard Prechelt's progress quotient stands for: a flat noisy curve is not a turn.
fn dip_in_a_flat_band(points: &[Point], stretch: &[Point]) -> bool {
    let Some(best_at) = points.len().checked_sub(stretch.len()) else {
        return false;
    };
    let width = (stretch.len() - 1).max(OVERFIT_PATIENCE);
    if best_at < width {
        return false;
    }
    let before = &points[best_at - width..best_at];
    let level = |p: &[Point]| median(&mut p.iter().map(|p| p.value).collect());
    let flat_before = mann_kendall_z(before).is_some_and(|z| z > -MK_Z_5PCT);
    let rising_after = mann_kendall_z(stretch).is_some_and(|z| z >= MK_Z_5PCT);
    match (level(before), level(&stretch[1..])) {
        (Some(band), Some(after)) => {
            flat_before && !rising_after && after <= band * (1.0 + OVERFIT_GL_ALPHA / 100.0)
        }
        _ => false,
    }
}

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    if series(run, Canonical::ValLoss).is_none() {
        out.skipped.push(Skipped {
            check: "overfitting",
            reason: say!(
                lang,
                "no validation loss series (Keras validation_data, an HF eval_strategy or a Lightning validation loop logs one)",
                "没有验证损失序列（Keras 的 validation_data、HF 的 eval_strategy 或 Lightning 的验证循环会记录它）"
            ),
        });
        return;
    }
    if series(run, Canonical::Loss).is_none() {
        out.skipped.push(Skipped {
            check: "overfitting",
            reason: say!(
                lang,
                "no training loss series to compare the validation loss with",
                "没有可与验证损失对照的训练损失序列"
            ),
        });
        return;
    }
    let Some(o) = judge(run) else { return };
    if out.has(FindingId::ValAtChance) {
        out.skipped.push(Skipped {
            check: "overfitting",
            reason: say!(
                lang,
                "set aside: the validation loss rose {}% above its best, but the validation split never left chance while training learned (val_at_chance), which explains it",
                "已搁置：验证损失比最佳值高 {}%，但验证集始终处于随机水平而训练在学习（val_at_chance），由此可以解释",
                num(o.gl)
            ),
        });
        return;
    }
    let what = series_label(o.val, lang);
    let train_what = series_label(o.train, lang);
    let (l, le, b, be) = (
        num(o.last.value),
        o.last.epoch,
        num(o.best.value),
        o.best.epoch,
    );
    let (gl, alpha, since) = (num(o.gl), num(OVERFIT_GL_ALPHA), o.since);
    let slope = num(o.slope);
    let (tf, tl) = (num(o.train_first), num(o.train_last));
    let g = num(o.gap_ratio);
    let sg = num(SAGEMAKER_GAP_RATIO);
    out.findings.push(Finding {
        id: FindingId::Overfitting,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "The {what} is {l} at epoch {le}, {gl}% above its best {b} at epoch {be} (Prechelt's generalisation loss GL = {gl} > {alpha}), and has trended up over the {since} epochs since (Theil–Sen slope {slope} per epoch), while the {train_what} fell from {tf} to {tl} (SageMaker's gap ratio {g} > {sg}): the model is overfitting.",
            "{what}在第 {le} 轮为 {l}，比第 {be} 轮的最佳值 {b} 高 {gl}%（Prechelt 泛化损失 GL = {gl} > {alpha}），此后 {since} 轮呈上升趋势（Theil–Sen 斜率每轮 {slope}），而{train_what}从 {tf} 降到 {tl}（SageMaker 差距比 {g} > {sg}）：模型正在过拟合。"
        ),
        evidence: evidence![
            "train_series" => o.train.name.as_str(),
            "val_series" => o.val.name.as_str(),
            "val_best" => o.best.value,
            "val_best_epoch" => o.best.epoch,
            "val_last" => o.last.value,
            "val_last_epoch" => o.last.epoch,
            "rising_epochs" => o.rising,
            "epochs_since_best" => o.since,
            "patience" => o.patience,
            "gl" => o.gl,
            "gl_alpha" => OVERFIT_GL_ALPHA,
            "theil_sen_slope" => o.slope,
            "train_theil_sen_slope" => o.train_slope,
            "train_first_in_window" => o.train_first,
            "train_last" => o.train_last,
            "gap_ratio" => o.gap_ratio,
        ],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;

    const TRAIN: [f64; 10] = [1.2, 0.8, 0.6, 0.48, 0.4, 0.33, 0.27, 0.22, 0.18, 0.15];

    #[test]
    fn a_validation_loss_rising_while_training_falls_is_overfitting() {
        let val = [1.0, 0.75, 0.62, 0.57, 0.56, 0.565, 0.58, 0.6, 0.63, 0.67];
        let d = Fixture::new()
            .series("loss", &TRAIN)
            .series("val_loss", &val)
            .check(check);
        let f = d.get(FindingId::Overfitting).expect("overfitting");
        let e = &f.evidence;
        assert_eq!(e["val_best"], 0.56);
        assert_eq!(e["val_best_epoch"], 5);
        assert_eq!(e["val_last"], 0.67);
        assert_eq!(e["rising_epochs"], 5);
        assert_eq!(e["train_first_in_window"], 0.4);
        assert_eq!(e["train_last"], 0.15);
        // Window epochs 5..=10: mean val 0.600833, mean train 0.258333.
        assert_eq!(e["gap_ratio"], 1.32581);
        assert!(
            f.summary.contains("epoch 10") && f.summary.contains("0.56"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn two_rising_epochs_or_a_small_rise_are_noise() {
        let two = [1.0, 0.75, 0.62, 0.57, 0.56, 0.55, 0.54, 0.53, 0.56, 0.6];
        let d = Fixture::new()
            .series("loss", &TRAIN)
            .series("val_loss", &two)
            .check(check);
        assert!(d.findings.is_empty());
        // Three rises adding up to 1%: within the noise of a flat curve.
        let small = [
            1.0, 0.75, 0.62, 0.57, 0.56, 0.55, 0.54, 0.542, 0.544, 0.5454,
        ];
        let d = Fixture::new()
            .series("loss", &TRAIN)
            .series("val_loss", &small)
            .check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn both_losses_rising_is_not_overfitting() {
        let val = [1.0, 0.8, 0.7, 0.75, 0.85, 0.95];
        let train = [1.1, 0.9, 0.8, 0.85, 0.9, 1.0];
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &val)
            .check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn a_healthy_run_does_not_fire() {
        let val = [
            1.0, 0.75, 0.62, 0.57, 0.55, 0.54, 0.545, 0.538, 0.535, 0.536,
        ];
        let d = Fixture::new()
            .series("loss", &TRAIN)
            .series("val_loss", &val)
            .check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn a_noisy_climb_with_dips_is_overfitting() {
        // tests/real/hf_biomed_ner_focal_overfit_noisy: best at epoch 5, then up with a dip
        // at epoch 8, never three rises in a row at the end.
        let val = [
            0.3648, 0.3323, 0.3394, 0.3373, 0.3292, 0.376, 0.388, 0.35, 0.3788, 0.3905,
        ];
        let train = [
            0.337, 0.3076, 0.1947, 0.1166, 0.0713, 0.0387, 0.0178, 0.0153, 0.0121, 0.0047,
        ];
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &val)
            .check(check);
        let e = &d.get(FindingId::Overfitting).expect("overfitting").evidence;
        assert_eq!(e["val_best_epoch"], 5);
        assert_eq!(e["epochs_since_best"], 5);
        assert_eq!(e["rising_epochs"], 2);
        assert!(e["gl"].as_f64().unwrap() > OVERFIT_GL_ALPHA);
        assert!(e["theil_sen_slope"].as_f64().unwrap() > 0.0);
        for key in [
            "val_series",
            "train_series",
            "val_best",
            "val_last",
            "train_last",
        ] {
            assert!(e.contains_key(key), "{key}");
        }
    }

    #[test]
    fn a_flat_noisy_validation_curve_or_a_slight_drift_is_not_overfitting() {
        // tests/real/tb_dlgn_healthy_mild_rise: +4.7% over 18 epochs, below GL_5.
        let val = [
            0.2382, 0.2366, 0.2347, 0.2337, 0.2325, 0.2319, 0.2309, 0.2302, 0.2302, 0.2295, 0.2297,
            0.2294, 0.2294, 0.2298, 0.2298, 0.2306, 0.2303, 0.2308, 0.2316, 0.2318, 0.2325, 0.2331,
            0.2336, 0.2347, 0.2358, 0.236, 0.2373, 0.2377, 0.2391, 0.2401,
        ];
        let train: Vec<f64> = (0..val.len()).map(|i| 0.11 - 0.003 * i as f64).collect();
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &val)
            .check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        // A jump above the best that then falls back is no upward trend.
        let val = [1.0, 0.7, 0.6, 0.5, 0.62, 0.6, 0.58, 0.56, 0.55, 0.54];
        let d = Fixture::new()
            .series("loss", &TRAIN)
            .series("val_loss", &val)
            .check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }

    #[test]
    fn a_best_that_is_a_dip_in_a_flat_noisy_band_is_not_a_turn() {
        // tests/real/keras_log_drinks_history_text_healthy, epochs 9-31: the validation loss
        // bounces between 0.016 and 0.055 (spikes to 0.14) from epoch 14; its best, 0.0157
        // at epoch 21, is a dip, and the ten epochs after sit where the band always sat.
        let val = [
            0.0441, 0.0249, 0.0441, 0.0413, 0.0188, 0.0195, 0.1268, 0.0267, 0.0443, 0.0334, 0.0167,
            0.0554, 0.0157, 0.0187, 0.031, 0.1438, 0.1015, 0.0231, 0.0257, 0.0495, 0.041, 0.0334,
            0.027,
        ];
        let train: Vec<f64> = (0..val.len()).map(|i| 0.03 - 0.0012 * i as f64).collect();
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &val)
            .check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        // The same stretch after a descent into the best is a turn: overfitting; and so is a
        // climb in a straight line out of a step down (a learning-rate cut).
        let mut turn: Vec<f64> = (0..12).map(|i| 0.2 - 0.015 * i as f64).collect();
        turn.extend(&val[12..]);
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &turn)
            .check(check);
        assert!(d.has(FindingId::Overfitting), "{turn:?}");
        let mut step = vec![2.3, 2.9, 2.7, 2.9, 1.7, 2.8, 2.0, 3.0, 1.9, 1.9, 1.36];
        step.extend([1.39, 1.40, 1.48, 1.55, 1.61, 1.71, 1.83, 1.94, 2.07, 2.15]);
        let train: Vec<f64> = (0..step.len()).map(|i| 1.0 - 0.035 * i as f64).collect();
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &step)
            .check(check);
        assert!(d.has(FindingId::Overfitting), "{step:?}");
    }

    #[test]
    fn an_under_fitted_model_whose_training_is_no_better_is_not_overfitting() {
        // Both sides at the same level: the training side is not doing clearly better.
        let val = [1.4, 1.3, 1.25, 1.2, 1.26, 1.28, 1.3, 1.31, 1.33, 1.35];
        let train = [1.5, 1.4, 1.35, 1.3, 1.29, 1.28, 1.27, 1.26, 1.25, 1.24];
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &val)
            .check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }

    #[test]
    fn without_validation_it_is_skipped() {
        let d = Fixture::new().series("loss", &TRAIN).check(check);
        assert_eq!(d.skipped[0].check, "overfitting");
        assert!(d.skipped[0].reason.contains("validation"));
    }
}
