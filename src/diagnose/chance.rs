//! Chance level: the model scores what uniform guessing scores. With C classes a net that
//! predicts 1/C for every class has cross-entropy ln C and accuracy 1/C; a run whose loss
//! and accuracy both sit there has learned nothing (seed 000: 0.693 = ln 2 and 0.50; seed
//! 003: 1.69 ≈ ln 5 and 0.169 ≈ 1/5). C comes from `--num-classes` or the config; without
//! them it is inferred from the metrics. This module also owns that reading of C, which
//! the divergence check borrows to tell a sane loss from an absurd one.

use super::{series, series_label};

use super::robust::{accuracy_tolerance, sample_count};
use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::series::RECENT_CAPACITY;
use crate::metrics::{Canonical, Series};
use crate::num::num;
use crate::run::Run;
use crate::types::Known;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity, Skipped};

/// A loss within this fraction of ln C is at chance (derived, DETECTORS.md). It takes
/// seed 003's 1.693 (+5% over ln 5) and leaves out a fresh 10-class net at 2.7 (+17%).
pub const CHANCE_LOSS_TOLERANCE: f64 = 0.10;
/// An accuracy within this of 1/C is at chance (derived): seed 003's 0.169 is 0.031 below
/// 1/5; a binary run at 0.55 is no longer guessing.
pub const CHANCE_ACCURACY_TOLERANCE: f64 = 0.05;
/// Slack on the accuracy tolerance for float32 values written as decimals: Keras writes
/// 0.55 as 0.550000011920929, which must be 0.05 from 0.5 as the trainer meant it.
const FLOAT32_SLACK: f64 = 1e-6;
/// Epochs at chance before it counts: the first epoch of any run may still be there.
/// A file holding a single snapshot taken at this epoch or later is judged on it (seed
/// 003: epoch 2), and says so; a lone epoch 1 is a fresh net, at chance by construction.
pub const CHANCE_MIN_EPOCHS: usize = 2;
/// With no accuracy to confirm it, the loss alone must stay near ln C this long, and the
/// finding is only a warning: a regression or custom loss can sit near ln C by accident.
pub const CHANCE_LOSS_ONLY_MIN_EPOCHS: usize = 3;
/// Largest class count inferred from the metrics (ImageNet-1k's 1000).
pub const MAX_INFERRED_CLASSES: u32 = 1000;
/// Latest epochs in a row the validation split must sit at chance, while training learns,
/// for `val_at_chance`: DeepDiagnosis's 5-epoch window, so a few unlucky validation epochs
/// of a learning run do not count.
pub const VAL_AT_CHANCE_MIN_EPOCHS: usize = 5;
/// The training accuracy that says training learns: AUTOTRAINER counts a run whose best
/// accuracy stays below 0.7 as not converging.
pub const VAL_AT_CHANCE_TRAIN_ACCURACY: f64 = 0.7;

/// One side of the run: training or validation loss, with its accuracy if logged.
struct Split<'a> {
    name: &'static str,
    loss: &'a Series,
    accuracy: Option<&'a Series>,
}

/// What one split's latest epochs say at a given C.
struct AtChance<'a> {
    split: &'a Split<'a>,
    /// Latest epochs in a row at chance.
    epochs: usize,
    first_epoch: u32,
    last_epoch: u32,
    loss: f64,
    accuracy: Option<f64>,
    /// Examples the accuracy is counted over, when its values show few enough to widen
    /// the tolerance (`chance_accuracy_tolerance`), and that tolerance.
    examples: Option<(u32, f64)>,
    severity: Severity,
}

/// The number of classes when the run says it: `--num-classes`, the config, or a metric
/// named `binary_accuracy`. Inference from the values is left to `check`.
pub(super) fn known_classes(run: &Run) -> Option<Known<u32>> {
    run.facts.classes.clone().or_else(|| {
        run.metrics
            .series
            .iter()
            .find(|s| {
                (s.name == Canonical::Accuracy.as_str()
                    || s.name == Canonical::ValAccuracy.as_str())
                    && s.original.to_ascii_lowercase().contains("binary_accuracy")
            })
            .map(|s| Known {
                value: 2,
                source: format!("metric `{}`", s.original),
            })
    })
}

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let splits: Vec<Split> = [
        ("train", Canonical::Loss, Canonical::Accuracy),
        ("val", Canonical::ValLoss, Canonical::ValAccuracy),
    ]
    .into_iter()
    .filter_map(|(name, loss, accuracy)| {
        Some(Split {
            name,
            loss: series(run, loss)?,
            accuracy: series(run, accuracy),
        })
    })
    .collect();
    if splits.is_empty() {
        out.skipped.push(Skipped {
            check: "chance_level",
            reason: say!(
                lang,
                "no loss series to compare with the chance loss ln C",
                "没有可与随机水平损失 ln C 比较的损失序列"
            ),
        });
        return;
    }

    let classes = match known_classes(run) {
        Some(c) => c,
        None => match splits
            .iter()
            .find_map(infer_classes)
            .or_else(|| splits.iter().find_map(infer_classes_at_start))
        {
            Some(c) => c,
            None => {
                // A validation split that sat at chance at some epoch while training
                // learns names C there, even if it has since fallen below chance (a
                // validation loss climbing past ln C, an accuracy under 1/C). Only this
                // finding reads it: a C read mid-run is not sure enough to judge sanity.
                if let Some(c) = splits
                    .iter()
                    .find(|s| s.name == "val")
                    .and_then(infer_classes_in_window)
                    && c.value >= 2
                    && val_at_chance(&splits, &c, lang, out)
                {
                    out.classes = Some(c);
                    return;
                }
                if splits.iter().all(|s| s.accuracy.is_none()) {
                    out.skipped.push(Skipped {
                        check: "chance_level",
                        reason: say!(
                            lang,
                            "the number of classes is unknown and there is no accuracy series to infer it from; give it with --num-classes N or a `num_classes` key in the config",
                            "类别数未知，也没有可用于推断的准确率序列；请用 --num-classes N 或在配置中加入 `num_classes` 指定"
                        ),
                    });
                }
                // With an accuracy series and no C at which loss and accuracy both sit at
                // chance, the run is not at chance for any class count.
                return;
            }
        },
    };
    if classes.value < 2 {
        out.skipped.push(Skipped {
            check: "chance_level",
            reason: say!(
                lang,
                "{} class ({}): chance level needs at least 2",
                "类别数为 {}（{}）：随机水平至少需要 2 类",
                classes.value,
                classes.source
            ),
        });
        return;
    }
    out.classes = Some(classes.clone());

    let c = classes.value;
    let learner = val_at_chance(&splits, &classes, lang, out);
    let found: Vec<AtChance> = splits
        .iter()
        // A validation split at chance while training learns is `val_at_chance`'s.
        .filter(|s| !(learner && s.name == "val"))
        .filter_map(|s| at_chance(s, c))
        // A loss near ln C with no accuracy beside it is not chance when an accuracy of the
        // run says the model learns (a loss carrying a weight penalty can sit near ln C).
        .filter(|f| f.split.accuracy.is_some() || !accuracy_says_learning(run, c))
        .collect();
    let Some(primary) = found
        .iter()
        .max_by_key(|f| (f.severity, std::cmp::Reverse(f.split.name == "val")))
    else {
        return;
    };
    let same_level: Vec<&str> = found
        .iter()
        .filter(|f| f.severity == primary.severity)
        .map(|f| f.split.name)
        .collect();
    let chance_loss = f64::from(c).ln();
    let chance_accuracy = 1.0 / f64::from(c);
    out.findings.push(Finding {
        id: FindingId::ChanceLevel,
        severity: primary.severity,
        summary: summary(primary, &same_level, &classes, lang),
        evidence: evidence![
            "classes" => c,
            "classes_source" => classes.source.as_str(),
            "chance_loss" => chance_loss,
            "chance_accuracy" => chance_accuracy,
            "loss" => primary.loss,
            "accuracy" => primary.accuracy,
            "series_loss" => primary.split.loss.name.as_str(),
            "series_accuracy" => primary.split.accuracy.map(|s| s.name.clone()),
            "epochs_at_chance" => primary.epochs,
            "first_epoch_at_chance" => primary.first_epoch,
            "last_epoch" => primary.last_epoch,
            "loss_ratio" => primary.loss / chance_loss,
            "splits" => same_level,
            "single_snapshot" => primary.split.loss.len() == 1,
            "accuracy_examples" => primary.examples.map(|(n, _)| n),
            "accuracy_tolerance" => primary.examples.map(|(_, t)| t),
        ],
    });
}

fn loss_at_chance(loss: f64, classes: u32) -> bool {
    let chance = f64::from(classes).ln();
    loss.is_finite() && (loss - chance).abs() <= CHANCE_LOSS_TOLERANCE * chance
}

fn accuracy_at_chance(accuracy: f64, classes: u32, tolerance: f64) -> bool {
    accuracy.is_finite() && (accuracy - 1.0 / f64::from(classes)).abs() <= tolerance + FLOAT32_SLACK
}

/// How far from 1/C an accuracy may sit and still be at chance: `CHANCE_ACCURACY_TOLERANCE`,
/// or two binomial standard errors at 1/C when the accuracy's values show how few examples
/// it is counted over. On the 47 validation images of
/// tests/real/keras_csv_drowsiness_val_acc_pinned_near_chance, 0.617 (29/47) is 1.6
/// standard errors from 1/2: a handful of images, not a model that left chance.
fn chance_accuracy_tolerance(accuracy: &Series, classes: u32) -> f64 {
    chance_tolerance(classes, examples(accuracy))
}

/// `chance_accuracy_tolerance` for an accuracy counted over `examples`.
fn chance_tolerance(classes: u32, examples: Option<u32>) -> f64 {
    accuracy_tolerance(
        1.0 / f64::from(classes),
        examples,
        CHANCE_ACCURACY_TOLERANCE,
    )
}

/// The number of examples an accuracy is counted over, when its values show it.
fn examples(accuracy: &Series) -> Option<u32> {
    let values = accuracy
        .first()
        .into_iter()
        .chain(accuracy.tail(RECENT_CAPACITY))
        .map(|p| p.value);
    sample_count(values)
}

/// The examples an accuracy is counted over and the chance tolerance they give, when that
/// is wider than `CHANCE_ACCURACY_TOLERANCE`.
fn small_sample(accuracy: &Series, classes: u32) -> Option<(u32, f64)> {
    let n = examples(accuracy)?;
    let tolerance = chance_tolerance(classes, Some(n));
    (tolerance > CHANCE_ACCURACY_TOLERANCE).then_some((n, tolerance))
}

/// The C at which a loss and an accuracy are both at chance, the one whose ln C is nearest
/// the loss.
fn chance_classes(loss: f64, accuracy: f64, examples: Option<u32>) -> Option<u32> {
    (2..=MAX_INFERRED_CLASSES)
        .filter(|&c| {
            loss_at_chance(loss, c)
                && accuracy_at_chance(accuracy, c, chance_tolerance(c, examples))
        })
        .min_by(|&a, &b| {
            let gap = |c: u32| (loss - f64::from(c).ln()).abs();
            gap(a).total_cmp(&gap(b))
        })
}

/// The C at which the split's latest loss and accuracy are both at chance, the one whose
/// ln C is nearest the loss.
fn infer_classes(split: &Split) -> Option<Known<u32>> {
    let accuracy_series = split.accuracy?;
    let last = split.loss.last()?;
    let accuracy = accuracy_series.at(last.epoch)?;
    let c = chance_classes(last.value, accuracy, examples(accuracy_series))?;
    Some(Known {
        value: c,
        source: format!(
            "inferred from the metrics: `{}` {} ≈ ln {c} and `{}` {} ≈ 1/{c} at epoch {}",
            split.loss.original,
            num(last.value),
            accuracy_series.original,
            num(accuracy),
            last.epoch
        ),
    })
}

/// The C at which the split's loss and accuracy were both at chance at the latest epoch
/// of the recent window where they were.
fn infer_classes_in_window(split: &Split) -> Option<Known<u32>> {
    let accuracy_series = split.accuracy?;
    let n = examples(accuracy_series);
    split.loss.tail(RECENT_CAPACITY).iter().rev().find_map(|p| {
        let accuracy = accuracy_series.at(p.epoch)?;
        let c = chance_classes(p.value, accuracy, n)?;
        Some(Known {
            value: c,
            source: format!(
                "inferred from the metrics: `{}` {} ≈ ln {c} and `{}` {} ≈ 1/{c} at epoch {}",
                split.loss.original,
                num(p.value),
                accuracy_series.original,
                num(accuracy),
                p.epoch
            ),
        })
    })
}

/// C from the split's first epoch of the run, when its loss and accuracy sit there at
/// ln C and 1/C: a fresh classifier starts at chance, so its first epoch names C even
/// when the run has since left chance (a validation loss that climbed far above ln C).
fn infer_classes_at_start(split: &Split) -> Option<Known<u32>> {
    let accuracy_series = split.accuracy?;
    let first = split.loss.first()?;
    let accuracy = accuracy_series
        .first()
        .filter(|a| a.epoch == first.epoch)?
        .value;
    let c = chance_classes(first.value, accuracy, examples(accuracy_series))?;
    Some(Known {
        value: c,
        source: format!(
            "inferred from the metrics: `{}` {} ≈ ln {c} and `{}` {} ≈ 1/{c} at epoch {}, where a fresh classifier starts",
            split.loss.original,
            num(first.value),
            accuracy_series.original,
            num(accuracy),
            first.epoch
        ),
    })
}

/// Whether an accuracy of the run (either split's) is above chance at its last epoch: the
/// model learns.
fn accuracy_says_learning(run: &Run, classes: u32) -> bool {
    [Canonical::Accuracy, Canonical::ValAccuracy]
        .into_iter()
        .filter_map(|c| series(run, c)?.last())
        .any(|a| {
            a.value.is_finite() && a.value > 1.0 / f64::from(classes) + CHANCE_ACCURACY_TOLERANCE
        })
}

/// Validation at chance while training learns: the validation loss at or above ln C and
/// the validation accuracy at or below chance for the latest `VAL_AT_CHANCE_MIN_EPOCHS`
/// epochs in a row, while the training accuracy reached `VAL_AT_CHANCE_TRAIN_ACCURACY`.
/// The model learns something that does not carry to the validation split: a split or
/// label mismatch, or a validation set too small to say anything. Pushes the finding and
/// says whether it did.
fn val_at_chance(splits: &[Split], classes: &Known<u32>, lang: Lang, out: &mut Diagnosis) -> bool {
    let (Some(val), Some(train)) = (
        splits.iter().find(|s| s.name == "val"),
        splits.iter().find(|s| s.name == "train"),
    ) else {
        return false;
    };
    let (Some(val_acc), Some(train_acc)) = (val.accuracy, train.accuracy) else {
        return false;
    };
    let c = classes.value;
    let chance_loss = f64::from(c).ln();
    let chance_accuracy = 1.0 / f64::from(c);
    let tolerance = chance_accuracy_tolerance(val_acc, c);
    let points = val.loss.tail(RECENT_CAPACITY);
    let Some(last) = points.last().copied() else {
        return false;
    };
    let mut epochs = 0;
    let mut first_epoch = last.epoch;
    for p in points.iter().rev() {
        let at = p.value.is_finite()
            && p.value >= chance_loss * (1.0 - CHANCE_LOSS_TOLERANCE)
            && val_acc
                .at(p.epoch)
                .is_some_and(|a| a.is_finite() && a <= chance_accuracy + tolerance + FLOAT32_SLACK);
        if !at {
            break;
        }
        epochs += 1;
        first_epoch = p.epoch;
    }
    let Some(train_last) = train_acc.last() else {
        return false;
    };
    let Some(val_accuracy) = val_acc.at(last.epoch) else {
        return false;
    };
    if epochs < VAL_AT_CHANCE_MIN_EPOCHS
        || !train_last.value.is_finite()
        || train_last.value < VAL_AT_CHANCE_TRAIN_ACCURACY
    {
        return false;
    }
    let source = &classes.source;
    let (vl, va, ta) = (num(last.value), num(val_accuracy), num(train_last.value));
    let (ln_c, one_over_c) = (num(chance_loss), num(chance_accuracy));
    let (fe, le) = (first_epoch, last.epoch);
    let val_what = series_label(val.loss, lang);
    let acc_what = series_label(val_acc, lang);
    let train_what = series_label(train_acc, lang);
    out.findings.push(Finding {
        id: FindingId::ValAtChance,
        severity: Severity::Critical,
        summary: say!(
            lang,
            "The {val_what} {vl} (ln {c} = {ln_c}) and {acc_what} {va} (1/{c} = {one_over_c}) have sat at or beyond chance for {c} classes ({source}) for {epochs} epochs in a row (epochs {fe}–{le}), while the {train_what} reached {ta}: training learns something that does not carry to the validation split. Check that both splits share the labels and preprocessing, and that the validation set is large enough; this is not overfitting.",
            "{val_what} {vl}（ln {c} = {ln_c}）与{acc_what} {va}（1/{c} = {one_over_c}）已连续 {epochs} 轮（第 {fe}–{le} 轮）处于或低于 {c} 类的随机水平（{source}），而{train_what}达到 {ta}：训练学到的东西没有迁移到验证集。请检查两个数据集的标签与预处理是否一致、验证集是否足够大；这不是过拟合。"
        ),
        evidence: evidence![
            "classes" => c,
            "classes_source" => source.as_str(),
            "chance_loss" => chance_loss,
            "chance_accuracy" => chance_accuracy,
            "val_series" => val.loss.name.as_str(),
            "val_accuracy_series" => val_acc.name.as_str(),
            "train_accuracy_series" => train_acc.name.as_str(),
            "val_loss" => last.value,
            "val_accuracy" => val_accuracy,
            "train_accuracy" => train_last.value,
            "epochs_at_chance" => epochs,
            "first_epoch_at_chance" => first_epoch,
            "last_epoch" => last.epoch,
        ],
    });
    true
}

/// The split's latest epochs in a row at chance, if they are enough to count.
fn at_chance<'a>(split: &'a Split<'a>, classes: u32) -> Option<AtChance<'a>> {
    let points = split.loss.tail(RECENT_CAPACITY);
    let last = *points.last()?;
    let examples = split.accuracy.and_then(|a| small_sample(a, classes));
    let tolerance = examples.map_or(CHANCE_ACCURACY_TOLERANCE, |(_, t)| t);
    let mut epochs = 0;
    let mut first_epoch = last.epoch;
    for p in points.iter().rev() {
        if !loss_at_chance(p.value, classes) {
            break;
        }
        if let Some(accuracy) = split.accuracy
            && !accuracy
                .at(p.epoch)
                .is_some_and(|a| accuracy_at_chance(a, classes, tolerance))
        {
            break;
        }
        epochs += 1;
        first_epoch = p.epoch;
    }
    let accuracy = split.accuracy.and_then(|a| a.at(last.epoch));
    let severity = match split.accuracy {
        Some(_) if epochs >= CHANCE_MIN_EPOCHS => Severity::Critical,
        // All the file has is one snapshot, taken after enough epochs, and it is at chance.
        Some(_)
            if epochs == 1 && split.loss.len() == 1 && last.epoch as usize >= CHANCE_MIN_EPOCHS =>
        {
            Severity::Critical
        }
        None if epochs >= CHANCE_LOSS_ONLY_MIN_EPOCHS => Severity::Warning,
        _ => return None,
    };
    Some(AtChance {
        split,
        epochs,
        first_epoch,
        last_epoch: last.epoch,
        loss: last.value,
        accuracy,
        examples,
        severity,
    })
}

fn summary(found: &AtChance, splits: &[&str], classes: &Known<u32>, lang: Lang) -> String {
    let c = classes.value;
    let source = &classes.source;
    let chance_loss = f64::from(c).ln();
    let ln_c = num(chance_loss);
    let one_over_c = num(1.0 / f64::from(c));
    let loss_label = series_label(found.split.loss, lang);
    let loss = num(found.loss);
    let pct = (found.loss / chance_loss - 1.0) * 100.0;
    // One decimal reads well (+5.2%); below 0.05% it would print as a signed zero.
    let off = if pct.abs() >= 0.05 {
        format!("{pct:+.1}%")
    } else {
        format!("{pct:+.2}%")
    };
    let (first, last, n) = (found.first_epoch, found.last_epoch, found.epochs);
    let epochs = if found.split.loss.len() == 1 {
        say!(
            lang,
            "in the only epoch the file holds (epoch {last})",
            "在文件仅有的一个记录（第 {last} 轮）中"
        )
    } else if first == last {
        say!(lang, "at epoch {last}", "在第 {last} 轮")
    } else {
        say!(
            lang,
            "for {n} epochs in a row (epochs {first}–{last})",
            "连续 {n} 轮（第 {first}–{last} 轮）"
        )
    };
    let both = splits.len() > 1;
    match (found.split.accuracy, found.accuracy) {
        (Some(acc_series), Some(accuracy)) => {
            let acc_label = series_label(acc_series, lang);
            let accuracy = num(accuracy);
            let noise = match found.examples {
                Some((n, t)) => say!(
                    lang,
                    "; over {n} examples ±{} is a few flipping",
                    "；仅 {n} 个样本，±{} 只是几个样本的翻转",
                    num(t)
                ),
                None => String::new(),
            };
            let also = if both {
                say!(
                    lang,
                    ", and the validation metrics are at chance too",
                    "，验证指标同样处于随机水平"
                )
            } else {
                String::new()
            };
            say!(
                lang,
                "The {loss_label} {loss} (ln {c} = {ln_c}, {off}) and {acc_label} {accuracy} (1/{c} = {one_over_c}{noise}) are at chance level for {c} classes ({source}) {epochs}{also}: the model has learned nothing so far.",
                "{loss_label} {loss}（ln {c} = {ln_c}，{off}）与{acc_label} {accuracy}（1/{c} = {one_over_c}{noise}）{epochs}处于 {c} 类的随机水平（{source}）{also}：模型至今什么也没学到。"
            )
        }
        _ => say!(
            lang,
            "The {loss_label} {loss} has stayed within {}% of the chance loss ln {c} = {ln_c} ({c} classes, {source}) {epochs}; with no accuracy series to confirm it, the model may be guessing.",
            "{loss_label} {loss} {epochs}一直在随机水平损失 ln {c} = {ln_c}（{c} 类，{source}）的 {}% 以内；没有准确率序列可以确认，模型可能在瞎猜。",
            num(CHANCE_LOSS_TOLERANCE * 100.0)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;
    use crate::num::round_sig;
    use serde_json::Value;

    #[test]
    // The seed's numbers as Keras printed them: val_loss 0.6931 is ln 2 to 4 digits.
    #[allow(clippy::approx_constant)]
    fn seed_000_binary_lstm_is_at_chance_on_both_splits() {
        let d = Fixture::new()
            .series("accuracy", &[0.5032, 0.4973])
            .series("loss", &[0.6935, 0.6933])
            .series("val_accuracy", &[0.5051, 0.5048])
            .series("val_loss", &[0.6931, 0.6931])
            .check(check);
        let f = d
            .get(FindingId::ChanceLevel)
            .expect("seed 000 is at chance");
        assert_eq!(f.severity, Severity::Critical);
        let e = &f.evidence;
        assert_eq!(e["classes"], 2);
        assert!(
            e["classes_source"]
                .as_str()
                .unwrap()
                .starts_with("inferred")
        );
        assert_eq!(e["chance_loss"], round_sig(std::f64::consts::LN_2));
        assert_eq!(e["chance_accuracy"], 0.5);
        assert_eq!(e["loss"], 0.6933);
        assert_eq!(e["accuracy"], 0.4973);
        assert_eq!(e["series_loss"], "loss");
        assert_eq!(e["series_accuracy"], "accuracy");
        assert_eq!(e["epochs_at_chance"], 2);
        assert_eq!(e["splits"], serde_json::json!(["train", "val"]));
        assert_eq!(d.classes.as_ref().unwrap().value, 2);
        assert!(
            f.summary.contains("0.6933") && f.summary.contains("ln 2"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn seed_003_single_snapshot_of_five_classes_is_at_chance() {
        let config = r#"{"num_epochs": 20, "class_weights": {"划痕": 1.0, "污点": 1.0, "缺失": 1.0, "变形": 1.0, "异物": 1.0}}"#;
        let d = Fixture::new()
            .at("loss", 2, 1.692669)
            .at("accuracy", 2, 0.16875)
            .config(config)
            .check(check);
        let f = d
            .get(FindingId::ChanceLevel)
            .expect("seed 003 is at chance");
        assert_eq!(f.severity, Severity::Critical);
        let e = &f.evidence;
        assert_eq!(e["classes"], 5);
        assert_eq!(e["classes_source"], "5 entries in config `class_weights`");
        assert_eq!(e["epochs_at_chance"], 1);
        assert_eq!(e["single_snapshot"], true);
        assert_eq!(e["last_epoch"], 2);
        assert!(f.summary.contains("+5.2%"), "{}", f.summary);
        assert!(f.summary.contains("only epoch"), "{}", f.summary);
    }

    #[test]
    fn a_lone_first_epoch_is_a_fresh_net_not_a_verdict() {
        let d = Fixture::new()
            .series("loss", &[0.6952])
            .series("accuracy", &[0.492])
            .classes(2)
            .check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn a_fresh_ten_class_net_at_2_7_is_not_at_chance() {
        let d = Fixture::new()
            .series("loss", &[2.7, 2.71])
            .series("accuracy", &[0.11, 0.12])
            .classes(10)
            .check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert_eq!(d.classes.unwrap().source, "--num-classes");
    }

    #[test]
    fn one_epoch_at_chance_in_a_longer_run_is_not_enough() {
        // The run learned after its first epoch; then one bad epoch is not a verdict.
        let d = Fixture::new()
            .series("loss", &[0.69, 0.45, 0.69])
            .series("accuracy", &[0.5, 0.8, 0.52])
            .classes(2)
            .check(check);
        assert!(d.findings.is_empty());
        // A run that learned and is past chance now is not flagged for its start.
        let d = Fixture::new()
            .series("loss", &[0.693, 0.692, 0.4, 0.3])
            .series("accuracy", &[0.5, 0.5, 0.82, 0.88])
            .check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn validation_that_was_at_chance_mid_run_names_c_for_val_at_chance() {
        // tests/real/keras_csv_deepfake_val_at_chance, as Keras wrote it (float32 0.55 is
        // 0.550000011920929): neither split's first or last epoch is at ln C and 1/C, but
        // the validation split is at epoch 3 and 6, and never leaves chance.
        let d = Fixture::new()
            .series(
                "loss",
                &[1.4386, 1.1593, 0.7978, 0.6346, 0.5711, 0.4744, 0.3847],
            )
            .series(
                "accuracy",
                &[0.525, 0.55, 0.5875, 0.6625, 0.7875, 0.85, 0.9],
            )
            .series(
                "val_loss",
                &[1.5362, 0.8089, 0.7068, 0.6974, 0.75, 0.7297, 0.7693],
            )
            .series(
                "val_accuracy",
                &[
                    0.5,
                    0.5,
                    0.5,
                    0.550000011920929,
                    0.550000011920929,
                    0.45,
                    0.4,
                ],
            )
            .diagnose();
        let e = &d
            .get(FindingId::ValAtChance)
            .expect("val_at_chance")
            .evidence;
        assert_eq!(e["classes"], 2);
        assert!(
            e["classes_source"].as_str().unwrap().contains("at epoch 6"),
            "{}",
            e["classes_source"]
        );
        assert_eq!(e["epochs_at_chance"], 7);
        assert!(!d.has(FindingId::Overfitting));
        // The same validation curve beside a training accuracy that has not learned says
        // nothing about C: a C read mid-run is used for this finding only.
        let d = Fixture::new()
            .series("loss", &[1.4386, 1.1593, 0.9, 0.85, 0.8, 0.78, 0.77])
            .series("accuracy", &[0.525, 0.55, 0.52, 0.55, 0.56, 0.55, 0.56])
            .series(
                "val_loss",
                &[1.5362, 0.8089, 0.7068, 0.6974, 0.75, 0.7297, 0.7693],
            )
            .series("val_accuracy", &[0.5, 0.5, 0.5, 0.55, 0.55, 0.45, 0.4])
            .diagnose();
        assert!(d.classes.is_none() && !d.has(FindingId::ValAtChance));
    }

    #[test]
    fn validation_at_chance_while_training_learns_is_its_own_finding() {
        // tests/real/tb_dlgn_val_at_chance, shortened: binary, C read from epoch 1.
        let d = Fixture::new()
            .series("loss", &[0.684, 0.67, 0.6, 0.5, 0.35, 0.2, 0.1, 0.05])
            .series("accuracy", &[0.49, 0.53, 0.6, 0.7, 0.8, 0.9, 0.97, 1.0])
            .series(
                "val_loss",
                &[0.6937, 0.6935, 0.71, 0.76, 0.85, 1.0, 1.3, 1.6],
            )
            .series(
                "val_accuracy",
                &[0.507, 0.447, 0.47, 0.51, 0.5, 0.48, 0.52, 0.5],
            )
            .check(check);
        assert!(!d.has(FindingId::ChanceLevel));
        let f = d.get(FindingId::ValAtChance).expect("val_at_chance");
        assert_eq!(f.severity, Severity::Critical);
        let e = &f.evidence;
        assert_eq!(e["classes"], 2);
        assert!(
            e["classes_source"].as_str().unwrap().contains("epoch 1"),
            "{}",
            e["classes_source"]
        );
        assert_eq!(e["epochs_at_chance"], 8);
        assert_eq!(e["train_accuracy"], 1.0);
        // The full pipeline sets overfitting aside for it.
        let d = Fixture::new()
            .series("loss", &[0.684, 0.67, 0.6, 0.5, 0.35, 0.2, 0.1, 0.05])
            .series("accuracy", &[0.49, 0.53, 0.6, 0.7, 0.8, 0.9, 0.97, 1.0])
            .series(
                "val_loss",
                &[0.6937, 0.6935, 0.71, 0.76, 0.85, 1.0, 1.3, 1.6],
            )
            .series(
                "val_accuracy",
                &[0.507, 0.447, 0.47, 0.51, 0.5, 0.48, 0.52, 0.5],
            )
            .diagnose();
        assert!(!d.has(FindingId::Overfitting) && !d.has(FindingId::Oscillation));
        assert!(d.skipped.iter().any(|s| s.check == "overfitting"));
    }

    #[test]
    fn a_loss_near_ln_c_with_a_learning_accuracy_is_not_chance() {
        // A weight penalty keeps the training loss near ln 11 while the validation
        // accuracy says the model learns (tests/real/keras_csv_food11_appended_runs_weight_penalty).
        let d = Fixture::new()
            .series("loss", &[2.29, 2.3, 2.31])
            .series("val_accuracy", &[0.78, 0.73, 0.78])
            .classes(11)
            .check(check);
        assert!(!d.has(FindingId::ChanceLevel), "{:?}", d.findings);
        // A saturated run that really sits at chance is still caught.
        let d = Fixture::new()
            .series("loss", &[2.29, 2.3, 2.31])
            .series("val_accuracy", &[0.09, 0.1, 0.09])
            .classes(11)
            .check(check);
        assert!(d.has(FindingId::ChanceLevel));
    }

    #[test]
    fn only_the_validation_split_at_chance_says_so() {
        let d = Fixture::new()
            .series("loss", &[1.2, 0.6, 0.3])
            .series("accuracy", &[0.5, 0.6, 0.65])
            .series("val_loss", &[1.11, 1.10, 1.09])
            .series("val_accuracy", &[0.33, 0.34, 0.32])
            .classes(3)
            .check(check);
        let e = &d.get(FindingId::ChanceLevel).unwrap().evidence;
        assert_eq!(e["series_loss"], "val_loss");
        assert_eq!(e["splits"], serde_json::json!(["val"]));
        assert_eq!(e["epochs_at_chance"], 3);
    }

    #[test]
    fn loss_alone_near_ln_c_is_a_warning_after_three_epochs() {
        let d = Fixture::new()
            .series("loss", &[2.35, 2.31, 2.30])
            .classes(10)
            .check(check);
        let f = d.get(FindingId::ChanceLevel).unwrap();
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.evidence["accuracy"], Value::Null);
        assert_eq!(f.evidence["series_accuracy"], Value::Null);
        let d = Fixture::new()
            .series("loss", &[2.31, 2.30])
            .classes(10)
            .check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn unknown_classes_without_accuracy_is_skipped_with_how_to_fix() {
        let d = Fixture::new().series("loss", &[2.3, 2.3, 2.3]).check(check);
        assert!(d.findings.is_empty());
        assert_eq!(d.skipped[0].check, "chance_level");
        assert!(d.skipped[0].reason.contains("--num-classes"));
    }

    #[test]
    fn an_accuracy_over_few_examples_is_at_chance_within_its_noise() {
        // tests/real/keras_csv_drowsiness_val_acc_pinned_near_chance: 47 validation images;
        // 29/47 = 0.617 is 1.6 standard errors above 1/2 while the loss sits at ln 2.
        let n47 = |k: u32| f64::from(k) / 47.0;
        let acc = [
            n47(26),
            n47(26),
            n47(26),
            n47(27),
            n47(26),
            n47(28),
            n47(29),
            n47(30),
        ];
        let loss = [0.690, 0.687, 0.685, 0.683, 0.680, 0.676, 0.672, 0.668];
        let d = Fixture::new()
            .series("val_loss", &loss)
            .series("val_accuracy", &acc)
            .check(check);
        let f = d
            .get(FindingId::ChanceLevel)
            .expect("at chance within the noise");
        assert_eq!(f.evidence["classes"], 2);
        assert_eq!(f.evidence["accuracy_examples"], 47);
        assert_eq!(f.evidence["epochs_at_chance"], 8);
        assert!(f.summary.contains("over 47 examples"), "{}", f.summary);
        // The same accuracies over many examples (no common denominator ≤ 400) left
        // chance at 0.596.
        let acc4 = acc.map(|a| (a * 1e4).round() / 1e4 + 1e-5);
        let d = Fixture::new()
            .series("val_loss", &loss)
            .series("val_accuracy", &acc4)
            .check(check);
        assert!(d.get(FindingId::ChanceLevel).is_none(), "{:?}", d.findings);
    }

    #[test]
    fn binary_accuracy_names_two_classes() {
        let d = Fixture::new()
            .series("loss", &[0.70, 0.69])
            .series("binary_accuracy", &[0.49, 0.51])
            .check(check);
        let e = &d.get(FindingId::ChanceLevel).unwrap().evidence;
        assert_eq!(e["classes_source"], "metric `binary_accuracy`");
    }

    #[test]
    fn a_healthy_run_is_not_at_chance_for_any_class_count() {
        let d = Fixture::new()
            .series("loss", &[1.9, 1.1, 0.7, 0.5])
            .series("accuracy", &[0.35, 0.62, 0.78, 0.84])
            .check(check);
        assert!(d.findings.is_empty());
        assert!(d.classes.is_none());
        assert!(d.skipped.is_empty());
    }
}
