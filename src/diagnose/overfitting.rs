//! Overfitting: the validation loss climbs epoch after epoch while the training loss keeps
//! falling, and it has climbed clearly above its best. One rising epoch is noise (UMLAUT
//! flags it and fires on healthy runs), so the rise must last. SageMaker's train/validation
//! gap ratio is reported beside it as context, not as the condition.

use super::{MIN_EPOCHS, series, series_label};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::Canonical;
use crate::metrics::series::RECENT_CAPACITY;
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity, Skipped};

/// Consecutive epochs of rising validation loss that make a trend rather than noise
/// (DETECTORS.md starting point; Lightning's EarlyStopping patience is also 3).
pub const OVERFIT_RISING_EPOCHS: usize = 3;
/// The validation loss must be at least this far above its best, relative: three tiny
/// rises on a flat curve are noise (DETECTORS.md starting point).
pub const OVERFIT_MIN_RISE: f64 = 0.02;
/// SageMaker Debugger's Overfit rule flags (mean val − mean train) / mean train above
/// this; quoted in the summary for context.
pub const SAGEMAKER_GAP_RATIO: f64 = 0.1;

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let Some(val) = series(run, Canonical::ValLoss) else {
        out.skipped.push(Skipped {
            check: "overfitting",
            reason: say!(
                lang,
                "no validation loss series (Keras validation_data, an HF eval_strategy or a Lightning validation loop logs one)",
                "没有验证损失序列（Keras 的 validation_data、HF 的 eval_strategy 或 Lightning 的验证循环会记录它）"
            ),
        });
        return;
    };
    let Some(train) = series(run, Canonical::Loss) else {
        out.skipped.push(Skipped {
            check: "overfitting",
            reason: say!(
                lang,
                "no training loss series to compare the validation loss with",
                "没有可与验证损失对照的训练损失序列"
            ),
        });
        return;
    };
    if val.len() < MIN_EPOCHS.max(OVERFIT_RISING_EPOCHS + 1) {
        return;
    }
    let points = val.tail(RECENT_CAPACITY);
    let rising = points
        .windows(2)
        .rev()
        .take_while(|w| w[0].value.is_finite() && w[1].value > w[0].value)
        .count();
    if rising < OVERFIT_RISING_EPOCHS {
        return;
    }
    let window = &points[points.len() - 1 - rising..];
    let (start, last) = (window[0], window[window.len() - 1]);
    let (Some(train_first), Some(train_last)) = (train.at(start.epoch), train.at(last.epoch))
    else {
        return;
    };
    let Some(best) = val.min() else { return };
    let rise = last.value / best.value - 1.0;
    let train_fell = train_last.partial_cmp(&train_first) == Some(std::cmp::Ordering::Less);
    if !train_fell || best.value <= 0.0 || rise < OVERFIT_MIN_RISE {
        return;
    }
    let pairs: Vec<(f64, f64)> = window
        .iter()
        .filter_map(|p| Some((p.value, train.at(p.epoch)?)))
        .filter(|(v, t)| v.is_finite() && t.is_finite())
        .collect();
    let mean = |f: fn(&(f64, f64)) -> f64| pairs.iter().map(f).sum::<f64>() / pairs.len() as f64;
    let (mean_val, mean_train) = (mean(|p| p.0), mean(|p| p.1));
    let gap_ratio = (mean_train > 0.0).then(|| (mean_val - mean_train) / mean_train);

    let what = series_label(val, lang);
    let train_what = series_label(train, lang);
    let (l, le, b, be) = (num(last.value), last.epoch, num(best.value), best.epoch);
    let pct = num(rise * 100.0);
    let (tf, tl) = (num(train_first), num(train_last));
    let gap = match gap_ratio {
        Some(g) => say!(
            lang,
            "; SageMaker's gap ratio (mean val − mean train) / mean train over these epochs is {} (its rule flags > {})",
            "；这几轮 SageMaker 的差距比 (验证均值 − 训练均值) / 训练均值 为 {}（其规则在 > {} 时报警）",
            num(g),
            num(SAGEMAKER_GAP_RATIO)
        ),
        None => String::new(),
    };
    out.findings.push(Finding {
        id: FindingId::Overfitting,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "The {what} has risen for {rising} epochs in a row, to {l} at epoch {le} ({pct}% above its best {b} at epoch {be}), while the {train_what} fell from {tf} to {tl}: the model is overfitting{gap}.",
            "{what}已连续 {rising} 轮上升，第 {le} 轮达到 {l}（比第 {be} 轮的最佳值 {b} 高 {pct}%），而{train_what}从 {tf} 降到 {tl}：模型正在过拟合{gap}。"
        ),
        evidence: evidence![
            "train_series" => train.name.as_str(),
            "val_series" => val.name.as_str(),
            "val_best" => best.value,
            "val_best_epoch" => best.epoch,
            "val_last" => last.value,
            "val_last_epoch" => last.epoch,
            "rising_epochs" => rising,
            "train_first_in_window" => train_first,
            "train_last" => train_last,
            "gap_ratio" => gap_ratio,
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
    fn without_validation_it_is_skipped() {
        let d = Fixture::new().series("loss", &TRAIN).check(check);
        assert_eq!(d.skipped[0].check, "overfitting");
        assert!(d.skipped[0].reason.contains("validation"));
    }
}
