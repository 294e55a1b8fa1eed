//! Config checks: settings that are wrong before a single epoch runs, judged against the
//! run's own numbers (`Facts`: optimizer steps, effective batch, planned epochs) rather
//! than rules of thumb alone. Warmup against the run's steps, the EMA horizon against
//! them and the effective batch against the dataset are checks no published tool makes
//! (DETECTORS.md); the rest follow UMLAUT and SageMaker with optimizer-aware bounds. A
//! setting turned off by a sibling switch (`warmup_enabled: false`, `model_ema: false`,
//! `enabled: false` in its own object) is not judged: the trainer does not read it.
//! Without the facts a check needs, it says what is missing in `skipped`, never guesses.

use serde_json::{Map, Value};

use crate::config::ConfigDoc;
use crate::lang::Lang;
use crate::lang::say;
use crate::num::num;
use crate::run::Run;
use crate::space::Tunable;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity, Skipped};

/// Fewest optimizer steps per epoch before the effective batch is too large. Keskar et
/// al. (2017, large-batch generalization gap) used 10% of the training set as their
/// large batch; flagging at 5% (20 steps an epoch) warns before that regime. Derived.
pub const MIN_STEPS_PER_EPOCH: u64 = 20;
/// The same limit as a share of the dataset, for when its size is known.
pub const MAX_BATCH_FRACTION: f64 = 1.0 / MIN_STEPS_PER_EPOCH as f64;
/// The limits above apply when the config multiplies the batch (accumulation or several
/// devices): that is a setting someone can get wrong. A plain batch on a small dataset
/// (batch 32 on 200 examples: 7 steps an epoch) is just a small dataset; it is flagged
/// only when an epoch is down to a handful of updates. Derived.
pub const MIN_STEPS_PER_EPOCH_PLAIN_BATCH: u64 = 4;
/// Warmup longer than this share of the run is a warning: the peak learning rate is
/// reached only in the second half. Common recipes warm up for 1–10% (BERT 1%, Goyal et
/// al. 5 of 90 epochs, HF examples 6–10%). At 100% or more the run never leaves warmup
/// and that is critical. Derived.
pub const WARMUP_MAX_FRACTION: f64 = 0.5;
/// An EMA whose horizon 1/(1 − decay) exceeds this share of the run's steps still holds
/// e^-1 ≈ 37% or more of its initial weights when training ends (DETECTORS.md: horizon
/// > total steps).
pub const EMA_MAX_HORIZON_FRACTION: f64 = 1.0;
/// Dropout above this drops more units than it keeps (UMLAUT's limit).
pub const DROPOUT_MAX: f64 = 0.5;
/// Adam-family (Adam, AdamW, NAdam, RMSprop) learning rates outside these bounds: UMLAUT
/// warns above 1e-2 (Adam's default is 1e-3); the low bound is UMLAUT's 1e-7, because
/// RLHF/DPO recipes run AdamW at 5e-7 on purpose.
pub const ADAPTIVE_LR_HIGH: f64 = 1e-2;
pub const ADAPTIVE_LR_LOW: f64 = 1e-7;
/// SGD reference: 0.1 per 256 examples with momentum 0.9 (Goyal et al. 2017, the
/// linear-scaling rule). The effective step lr / (1 − momentum) is compared with it.
pub const SGD_REFERENCE_LR: f64 = 0.1;
pub const SGD_REFERENCE_BATCH: f64 = 256.0;
pub const SGD_REFERENCE_MOMENTUM: f64 = 0.9;
/// SGD above this many times the linear-scaling reference is extreme (derived: batch 32
/// at lr 0.1, the common CIFAR setting, is 8× and passes; the Keras run that blew up at
/// lr 50 is 4000×).
pub const SGD_MAX_REFERENCE_FACTOR: f64 = 10.0;
/// SGD below this barely moves the weights (derived: the Keras `lr_too_low` run at 1e-6
/// moved its loss by 0.01% in 12 epochs).
pub const SGD_LR_LOW: f64 = 1e-5;
/// Adagrad bounds: 10× PyTorch's default 0.01, 100× below Keras's 0.001. Derived.
pub const ADAGRAD_LR_HIGH: f64 = 0.1;
pub const ADAGRAD_LR_LOW: f64 = 1e-5;
/// Lion wants a learning rate 3–10× smaller than AdamW (Chen et al. 2023), so its bounds
/// are Adam's divided by 3 at the top and by 10 at the bottom.
pub const LION_LR_HIGH: f64 = ADAPTIVE_LR_HIGH / 3.0;
pub const LION_LR_LOW: f64 = ADAPTIVE_LR_LOW / 10.0;
/// A largest/smallest class weight ratio at this level marks a strong imbalance
/// (SageMaker's class-imbalance rule uses 10×).
pub const CLASS_IMBALANCE_RATIO: f64 = 10.0;

/// Sibling switches that turn a setting off when `false`.
const WARMUP_SWITCHES: &[&str] = &["warmup_enabled", "use_warmup", "enable_warmup", "warmup"];
const EMA_SWITCHES: &[&str] = &[
    "model_ema",
    "ema",
    "use_ema",
    "ema_enabled",
    "use_model_ema",
    "enable_ema",
];
const EMA_WARMUP_SWITCHES: &[&str] = &["model_ema_warmup", "ema_warmup", "use_ema_warmup"];
const MIN_LR_SWITCHES: &[&str] = &["min_lr_enabled", "use_min_lr"];
const EARLY_STOPPING_SWITCHES: &[&str] = &[
    "early_stopping",
    "use_early_stopping",
    "early_stopping_enabled",
    "enable_early_stopping",
];
const CLASS_WEIGHT_SWITCHES: &[&str] = &[
    "use_class_weights",
    "use_class_weight",
    "class_weights_enabled",
];
const CLASS_WEIGHT_KEYS: &[&str] = &["class_weights", "class_weight"];
/// In a nested object, `enabled: false` turns the object's settings off.
const OBJECT_SWITCHES: &[&str] = &["enabled", "enable"];

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let Some(config) = &run.config else {
        out.skipped.push(Skipped {
            check: "config_checks",
            reason: say!(lang, "no --config given", "未提供 --config"),
        });
        return;
    };
    effective_batch(run, lang, out);
    warmup(run, config, lang, out);
    ema(run, config, lang, out);
    conflicts(run, config, lang, out);
    dropout(run, lang, out);
    learning_rate(run, lang, out);
    class_imbalance(config, lang, out);
}

/// The path of the switch that turns the setting at `path` off, if one does: a boolean
/// `false` named in `switches` beside it or in any enclosing object, or `enabled: false`
/// in an enclosing object.
fn switched_off(config: &ConfigDoc, path: &str, switches: &[&str]) -> Option<String> {
    let segments: Vec<&str> = path.split('.').collect();
    (0..segments.len()).rev().find_map(|depth| {
        let parent = segments[..depth].join(".");
        let nested = depth > 0;
        switches
            .iter()
            .chain(if nested { OBJECT_SWITCHES } else { &[] })
            .map(|key| {
                if parent.is_empty() {
                    key.to_string()
                } else {
                    format!("{parent}.{key}")
                }
            })
            .find(|p| p != path && config.get(p).and_then(Value::as_bool) == Some(false))
    })
}

/// Whether a switch named in `switches` beside the setting (or above it) is `true`.
fn switched_on(config: &ConfigDoc, path: &str, switches: &[&str]) -> Option<String> {
    let segments: Vec<&str> = path.split('.').collect();
    (0..segments.len()).rev().find_map(|depth| {
        let parent = segments[..depth].join(".");
        switches
            .iter()
            .map(|key| {
                if parent.is_empty() {
                    key.to_string()
                } else {
                    format!("{parent}.{key}")
                }
            })
            .find(|p| config.get(p).and_then(Value::as_bool) == Some(true))
    })
}

/// The tunables named `name` the trainer reads (not switched off).
fn active<'r>(
    run: &'r Run,
    config: &ConfigDoc,
    name: &str,
    switches: &[&str],
) -> Option<&'r Tunable> {
    run.tunables
        .iter()
        .filter(|t| t.spec.name == name)
        .find(|t| switched_off(config, &t.path, switches).is_none())
}

fn settings(config: &ConfigDoc, paths: &[&str]) -> Map<String, Value> {
    paths
        .iter()
        .map(|p| (p.to_string(), config.get(p).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// How to give the facts a check is missing.
fn how_to_give_steps(lang: Lang) -> String {
    say!(
        lang,
        "add `steps_per_epoch`, `max_steps` or the dataset size (`num_train_samples`) to the config, or read a metrics file that shows steps (a Keras console log, an HF trainer_state.json)",
        "请在配置中加入 `steps_per_epoch`、`max_steps` 或数据集大小（`num_train_samples`），或使用能看出步数的指标文件（Keras 控制台日志、HF trainer_state.json）"
    )
}

fn effective_batch(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let facts = &run.facts;
    let (Some(batch), Some(effective)) = (&facts.batch_size, facts.effective_batch) else {
        return;
    };
    let accumulation = facts.accumulation.as_ref().map_or(1, |a| a.value);
    let devices = facts.devices.as_ref().map_or(1, |d| d.value.max(1));
    let steps = facts.steps_per_epoch.as_ref();
    let dataset = facts.dataset_size.as_ref();
    let product = say!(
        lang,
        "{effective} (batch {} × accumulation {accumulation} × devices {devices})",
        "{effective}（批 {} × 累积 {accumulation} × 设备 {devices}）",
        batch.value
    );
    if steps.is_none() && dataset.is_none() {
        out.skipped.push(Skipped {
            check: "effective_batch_too_large",
            reason: say!(
                lang,
                "the effective batch is {product}, but neither the steps per epoch nor the dataset size is known, so it cannot be judged; {}",
                "有效批大小为 {product}，但每轮步数和数据集大小都未知，无法判断；{}",
                how_to_give_steps(lang)
            ),
        });
        return;
    }
    let multiplied = accumulation * devices > 1;
    let min_steps = if multiplied {
        MIN_STEPS_PER_EPOCH
    } else {
        MIN_STEPS_PER_EPOCH_PLAIN_BATCH
    };
    let few_steps = steps.filter(|s| s.value < min_steps);
    let share = dataset.map(|d| effective as f64 / d.value as f64);
    let too_large_share = share.filter(|s| *s > 1.0 / min_steps as f64);
    if few_steps.is_none() && too_large_share.is_none() {
        return;
    }
    let steps_text = match steps {
        Some(s) => say!(
            lang,
            "{} optimizer steps per epoch ({})",
            "每轮 {} 次优化步（{}）",
            s.value,
            s.source
        ),
        None => String::new(),
    };
    let share_text = match (dataset, share) {
        (Some(d), Some(s)) => say!(
            lang,
            "{}% of the {} training examples ({})",
            "占 {1} 个训练样本（{2}）的 {0}%",
            num(s * 100.0),
            d.value,
            d.source
        ),
        _ => String::new(),
    };
    let joined = [steps_text, share_text]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(say!(lang, ", ", "，").as_str());
    out.findings.push(Finding {
        id: FindingId::EffectiveBatchTooLarge,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "The effective batch {product} leaves {joined}; below {MIN_STEPS_PER_EPOCH} steps an epoch (a batch over {}% of the data) each epoch is a handful of updates and large-batch training generalises worse.",
            "有效批大小 {product}：{joined}；每轮少于 {MIN_STEPS_PER_EPOCH} 步（批大小超过数据的 {}%）时，每轮只有寥寥几次更新，大批量训练的泛化也更差。",
            num(MAX_BATCH_FRACTION * 100.0)
        ),
        evidence: evidence![
            "batch_size" => batch.value,
            "accumulation" => accumulation,
            "devices" => devices,
            "effective_batch" => effective,
            "steps_per_epoch" => steps.map(|s| s.value),
            "steps_per_epoch_source" => steps.map(|s| s.source.clone()),
            "dataset_size" => dataset.map(|d| d.value),
            "batch_share_of_dataset" => share,
            "min_steps_per_epoch" => MIN_STEPS_PER_EPOCH,
        ],
    });
}

fn warmup(run: &Run, config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
    let total = run.facts.total_steps.as_ref();
    let steps = active(run, config, "warmup_steps", WARMUP_SWITCHES).filter(|t| t.value > 0.0);
    let ratio = active(run, config, "warmup_ratio", WARMUP_SWITCHES).filter(|t| t.value > 0.0);
    let epochs = active(run, config, "warmup_epochs", WARMUP_SWITCHES).filter(|t| t.value > 0.0);

    // (tunable, share of the run it takes, what the run's length is in its unit)
    let mut judged: Vec<(&Tunable, f64, String)> = Vec::new();
    if let Some(t) = steps {
        match total {
            Some(total) if total.value > 0 => judged.push((
                t,
                t.value / total.value as f64,
                say!(
                    lang,
                    "{} optimizer steps ({})",
                    "{} 次优化步（{}）",
                    total.value,
                    total.source
                ),
            )),
            _ => out.skipped.push(Skipped {
                check: "warmup_exceeds_training",
                reason: say!(
                    lang,
                    "{} = {} cannot be compared with the run's length: its total optimizer steps are unknown; {}",
                    "{} = {} 无法与训练长度比较：总优化步数未知；{}",
                    t.path,
                    num(t.value),
                    how_to_give_steps(lang)
                ),
            }),
        }
    }
    // The HF Trainer uses warmup_steps when it is set and ignores the ratio.
    if let Some(t) = ratio.filter(|_| steps.is_none()) {
        judged.push((
            t,
            t.value,
            say!(lang, "the whole run (ratio 1)", "整个训练（比例 1）"),
        ));
    }
    if let Some(t) = epochs {
        match &run.facts.planned_epochs {
            Some(planned) if planned.value > 0 => judged.push((
                t,
                t.value / f64::from(planned.value),
                say!(
                    lang,
                    "{} planned epochs ({})",
                    "计划的 {} 轮（{}）",
                    planned.value,
                    planned.source
                ),
            )),
            _ => out.skipped.push(Skipped {
                check: "warmup_exceeds_training",
                reason: say!(
                    lang,
                    "{} = {} cannot be compared with the run's length: the planned number of epochs is unknown",
                    "{} = {} 无法与训练长度比较：计划的轮数未知",
                    t.path,
                    num(t.value)
                ),
            }),
        }
    }
    for (t, share, length) in judged {
        let severity = if share >= 1.0 {
            Severity::Critical
        } else if share > WARMUP_MAX_FRACTION {
            Severity::Warning
        } else {
            continue;
        };
        let (path, value, pct) = (&t.path, num(t.value), num(share * 100.0));
        let verdict = if severity == Severity::Critical {
            say!(
                lang,
                "the run never leaves warmup, so the learning rate never reaches its set value",
                "训练永远处于预热阶段，学习率永远达不到设定值"
            )
        } else {
            say!(
                lang,
                "the learning rate reaches its set value only in the second half of the run",
                "学习率到训练后半程才达到设定值"
            )
        };
        out.findings.push(Finding {
            id: FindingId::WarmupExceedsTraining,
            severity,
            summary: say!(
                lang,
                "Warmup {path} = {value} is {pct}% of the run's {length}: {verdict}.",
                "预热 {path} = {value} 占训练长度 {length} 的 {pct}%：{verdict}。"
            ),
            evidence: evidence![
                "parameter" => path.as_str(),
                "warmup" => t.value,
                "total_steps" => total.map(|k| k.value),
                "total_steps_source" => total.map(|k| k.source.clone()),
                "share_of_run" => share,
                "planned_epochs" => run.facts.planned_epochs.as_ref().map(|k| k.value),
            ],
        });
    }
}

fn ema(run: &Run, config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
    let Some(t) = active(run, config, "ema_decay", EMA_SWITCHES) else {
        return;
    };
    let decay = t.value;
    if decay < 0.5 {
        // Some libraries write the EMA "momentum" as 1 − decay (0.0002); space.toml's
        // bounds start at 0.5 for the same reason.
        out.skipped.push(Skipped {
            check: "ema_horizon_too_long",
            reason: say!(
                lang,
                "{} = {} reads as 1 − decay, not a decay; the horizon is not judged",
                "{} = {} 看起来是 1 − 衰减而非衰减本身；不判断其窗口",
                t.path,
                num(decay)
            ),
        });
        return;
    }
    if let Some(switch) = switched_on(config, &t.path, EMA_WARMUP_SWITCHES) {
        out.skipped.push(Skipped {
            check: "ema_horizon_too_long",
            reason: say!(
                lang,
                "`{switch}` ramps the EMA decay up from 0, so the early weights are forgotten whatever {} is",
                "`{switch}` 让 EMA 衰减从 0 逐步升高，无论 {} 为多少，早期权重都会被遗忘",
                t.path
            ),
        });
        return;
    }
    let horizon = if decay < 1.0 {
        1.0 / (1.0 - decay)
    } else {
        f64::INFINITY
    };
    let Some(total) = run.facts.total_steps.as_ref().filter(|k| k.value > 0) else {
        let bound = match (&run.facts.planned_epochs, run.facts.effective_batch) {
            (Some(epochs), Some(batch)) if horizon.is_finite() => say!(
                lang,
                "; with {} epochs at an effective batch of {batch}, it outlasts the run unless the dataset has more than {} examples",
                "；按 {} 轮、有效批大小 {batch} 计算，除非数据集超过 {} 个样本，否则它比整个训练还长",
                epochs.value,
                num((horizon * batch as f64 / f64::from(epochs.value)).round())
            ),
            _ => String::new(),
        };
        out.skipped.push(Skipped {
            check: "ema_horizon_too_long",
            reason: say!(
                lang,
                "{} = {} averages over about {} optimizer steps, but the run's total steps are unknown{bound}; {}",
                "{} = {} 的平均窗口约为 {} 次优化步，但训练总步数未知{bound}；{}",
                t.path,
                num(decay),
                num(horizon.round()),
                how_to_give_steps(lang)
            ),
        });
        return;
    };
    let total_steps = total.value as f64;
    if horizon <= EMA_MAX_HORIZON_FRACTION * total_steps {
        return;
    }
    let initial_share = decay.powf(total_steps);
    let (path, d, h, n, src) = (
        &t.path,
        num(decay),
        num(horizon.round()),
        total.value,
        &total.source,
    );
    let share = num(initial_share * 100.0);
    out.findings.push(Finding {
        id: FindingId::EmaHorizonTooLong,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "The EMA {path} = {d} averages over about {h} optimizer steps, longer than the whole run ({n} steps, {src}): at the end {share}% of the averaged weights are still the initial ones.",
            "EMA {path} = {d} 的平均窗口约 {h} 次优化步，比整个训练（{n} 步，{src}）还长：训练结束时平均权重中仍有 {share}% 来自初始权重。"
        ),
        evidence: evidence![
            "parameter" => path.as_str(),
            "decay" => decay,
            "horizon_steps" => horizon.round(),
            "total_steps" => total.value,
            "total_steps_source" => total.source.as_str(),
            "initial_weight_share" => initial_share,
        ],
    });
}

fn conflict(
    out: &mut Diagnosis,
    severity: Severity,
    summary: String,
    settings: Map<String, Value>,
    why: &str,
) {
    out.findings.push(Finding {
        id: FindingId::ConflictingSettings,
        severity,
        summary,
        evidence: evidence![
            "settings" => settings,
            "why" => why,
        ],
    });
}

fn conflicts(run: &Run, config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
    let lr = run.tunable("learning_rate");
    let family = run.facts.optimizer.as_deref().and_then(Family::of);

    if let (Some(lr), Some(min)) = (lr, active(run, config, "min_lr", MIN_LR_SWITCHES))
        && lr.value > 0.0
        && min.value >= lr.value
    {
        conflict(
            out,
            Severity::Warning,
            say!(
                lang,
                "{} = {} is not below {} = {}: the schedule's floor is at or above its start, so the learning rate can never decrease.",
                "{} = {} 不低于 {} = {}：调度的下限不低于起点，学习率永远无法下降。",
                min.path,
                num(min.value),
                lr.path,
                num(lr.value)
            ),
            settings(config, &[&min.path, &lr.path]),
            "min_lr_not_below_lr",
        );
    }

    let early = active(
        run,
        config,
        "early_stopping_patience",
        EARLY_STOPPING_SWITCHES,
    );
    if let (Some(es), Some(planned)) = (early, &run.facts.planned_epochs)
        && es.value >= f64::from(planned.value)
    {
        let mut involved = settings(config, &[&es.path]);
        if let Some(epochs) = run.tunable("epochs") {
            involved.insert(epochs.path.clone(), epochs.raw.clone());
        }
        conflict(
            out,
            Severity::Warning,
            say!(
                lang,
                "Early stopping waits {} = {} epochs without improvement, but the run has {} epochs ({}): it can never stop the run.",
                "早停要等待 {} = {} 轮无改善，但训练只有 {} 轮（{}）：早停永远不会触发。",
                es.path,
                num(es.value),
                planned.value,
                planned.source
            ),
            involved,
            "early_stopping_patience_not_below_epochs",
        );
    }

    if let (Some(es), Some(sched)) = (
        early,
        active(run, config, "scheduler_patience", &[]).filter(|t| t.value >= 0.0),
    ) && sched.value >= es.value
    {
        conflict(
            out,
            Severity::Warning,
            say!(
                lang,
                "The learning-rate scheduler waits {} = {} epochs and early stopping {} = {}: training stops before (or as) the learning rate drops, so the plateau schedule never helps.",
                "学习率调度器等待 {} = {} 轮，而早停等待 {} = {} 轮：学习率下降之前（或同时）训练就会停止，平台期调度永远起不到作用。",
                sched.path,
                num(sched.value),
                es.path,
                num(es.value)
            ),
            settings(config, &[&sched.path, &es.path]),
            "scheduler_patience_not_below_early_stopping_patience",
        );
    }

    let momentum = run.tunable("momentum");
    let nesterov = config
        .leaves()
        .into_iter()
        .find(|(p, v)| p.rsplit('.').next() == Some("nesterov") && v.as_bool() == Some(true))
        .map(|(p, _)| p);
    if let (Some(nesterov), Some(m)) = (&nesterov, momentum)
        && m.value == 0.0
        && family.is_none_or(|f| f == Family::Sgd)
    {
        conflict(
            out,
            Severity::Warning,
            say!(
                lang,
                "{nesterov} is true while {} = 0: Nesterov needs momentum (PyTorch's SGD raises an error; Keras silently does plain SGD).",
                "{nesterov} 为 true 而 {} = 0：Nesterov 需要动量（PyTorch 的 SGD 会报错；Keras 则默默退化为普通 SGD）。",
                m.path
            ),
            settings(config, &[nesterov, &m.path]),
            "nesterov_without_momentum",
        );
    }

    let warm_steps = active(run, config, "warmup_steps", WARMUP_SWITCHES).filter(|t| t.value > 0.0);
    let warm_ratio = active(run, config, "warmup_ratio", WARMUP_SWITCHES).filter(|t| t.value > 0.0);
    if let (Some(s), Some(r)) = (warm_steps, warm_ratio) {
        conflict(
            out,
            Severity::Warning,
            say!(
                lang,
                "Both {} = {} and {} = {} are set: the Hugging Face Trainer uses the steps and ignores the ratio, and other trainers pick one too, so one of them is dead.",
                "{} = {} 与 {} = {} 同时设置：Hugging Face Trainer 使用步数而忽略比例，其他训练器也只会用其一，因此其中一个无效。",
                s.path,
                num(s.value),
                r.path,
                num(r.value)
            ),
            settings(config, &[&s.path, &r.path]),
            "warmup_steps_and_ratio_both_set",
        );
    }

    if let Some((path, weights)) = class_weights(config)
        && let Some(switch) = switched_off(config, &path, CLASS_WEIGHT_SWITCHES)
        && weights.iter().any(|(_, w)| *w != weights[0].1)
    {
        conflict(
            out,
            Severity::Warning,
            say!(
                lang,
                "`{path}` gives unequal class weights but `{switch}` is false: the weights are ignored.",
                "`{path}` 给出了不相等的类别权重，但 `{switch}` 为 false：这些权重被忽略。"
            ),
            settings(config, &[&switch, &path]),
            "class_weights_disabled",
        );
    }

    if let (Some(m), Some(Family::Adaptive)) = (momentum, family)
        && m.value > 0.0
    {
        let optimizer = run.facts.optimizer.as_deref().unwrap_or_default();
        let beta1 = run
            .tunable("adam_beta1")
            .map(|b| {
                say!(
                    lang,
                    " (its momentum is {} = {})",
                    "（其动量由 {} = {} 决定）",
                    b.path,
                    num(b.value)
                )
            })
            .unwrap_or_default();
        conflict(
            out,
            Severity::Info,
            say!(
                lang,
                "{} = {} is set, but the optimizer is {optimizer}, which does not read it{beta1}: changing it has no effect.",
                "设置了 {} = {}，但优化器是 {optimizer}，它不读取该值{beta1}：修改它没有任何效果。",
                m.path,
                num(m.value)
            ),
            settings(config, &[&m.path]),
            "momentum_unused_by_adaptive_optimizer",
        );
    }
}

fn dropout(run: &Run, lang: Lang, out: &mut Diagnosis) {
    for t in run
        .tunables
        .iter()
        .filter(|t| t.spec.name == "dropout" && t.value > DROPOUT_MAX)
    {
        out.findings.push(Finding {
            id: FindingId::DropoutTooHigh,
            severity: Severity::Warning,
            summary: say!(
                lang,
                "Dropout {} = {} drops more units than it keeps (above {}): the network trains on a small random fraction of itself and underfits.",
                "Dropout {} = {} 丢弃的单元多于保留的（高于 {}）：网络每次只用一小部分进行训练，容易欠拟合。",
                t.path,
                num(t.value),
                num(DROPOUT_MAX)
            ),
            evidence: evidence![
                "parameter" => t.path.as_str(),
                "value" => t.value,
                "limit" => DROPOUT_MAX,
            ],
        });
    }
}

/// Optimizer families whose learning rates live on different scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Adaptive,
    Sgd,
    Adagrad,
    Lion,
}

impl Family {
    /// The family of an optimizer name as configs spell it (`adamw_torch`, `SGD`,
    /// `paged_adamw_8bit`); `None` for those whose scale is their own (Adafactor's
    /// relative steps, LAMB/LARS's trust ratios, Adadelta's 1.0).
    fn of(name: &str) -> Option<Family> {
        let n = name.to_ascii_lowercase();
        let has = |s: &str| n.contains(s);
        if has("lion") {
            Some(Family::Lion)
        } else if has("adagrad") {
            Some(Family::Adagrad)
        } else if has("adadelta") || has("adafactor") || has("lamb") || has("lars") {
            None
        } else if has("adam") || has("rmsprop") {
            Some(Family::Adaptive)
        } else if has("sgd") || n == "momentum" {
            Some(Family::Sgd)
        } else {
            None
        }
    }

    fn label(self) -> &'static str {
        match self {
            Family::Adaptive => "Adam-family",
            Family::Sgd => "SGD",
            Family::Adagrad => "Adagrad",
            Family::Lion => "Lion",
        }
    }
}

fn learning_rate(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let rates: Vec<&Tunable> = run
        .tunables
        .iter()
        .filter(|t| t.spec.name == "learning_rate" && t.value > 0.0)
        .collect();
    if rates.is_empty() {
        return;
    }
    let Some(optimizer) = run.facts.optimizer.as_deref() else {
        out.skipped.push(Skipped {
            check: "learning_rate_extreme",
            reason: say!(
                lang,
                "the optimizer is not named in the config, and sensible learning rates differ by orders of magnitude between SGD and Adam",
                "配置中没有指明优化器，而 SGD 与 Adam 的合理学习率相差几个数量级"
            ),
        });
        return;
    };
    let Some(family) = Family::of(optimizer) else {
        out.skipped.push(Skipped {
            check: "learning_rate_extreme",
            reason: say!(
                lang,
                "no learning-rate bounds for the optimizer `{optimizer}`",
                "没有适用于优化器 `{optimizer}` 的学习率范围"
            ),
        });
        return;
    };
    let momentum = run.tunable("momentum").map_or(0.0, |m| m.value);
    let batch = run.facts.effective_batch;
    for lr in rates {
        let (low, high, reference) = match family {
            Family::Adaptive => (ADAPTIVE_LR_LOW, ADAPTIVE_LR_HIGH, None),
            Family::Adagrad => (ADAGRAD_LR_LOW, ADAGRAD_LR_HIGH, None),
            Family::Lion => (LION_LR_LOW, LION_LR_HIGH, None),
            Family::Sgd => {
                // The reference learning rate for this batch and momentum: the same
                // effective step lr / (1 − momentum) as 0.1 at batch 256 with 0.9.
                let b = batch.map_or(SGD_REFERENCE_BATCH, |b| b as f64);
                let m = momentum.clamp(0.0, 0.99);
                let reference = SGD_REFERENCE_LR * (b / SGD_REFERENCE_BATCH) * (1.0 - m)
                    / (1.0 - SGD_REFERENCE_MOMENTUM);
                (
                    SGD_LR_LOW,
                    SGD_MAX_REFERENCE_FACTOR * reference,
                    Some(reference),
                )
            }
        };
        let too_high = lr.value > high;
        if !too_high && lr.value >= low {
            continue;
        }
        let (path, value, fam) = (&lr.path, num(lr.value), family.label());
        let bound = if too_high {
            say!(lang, "above {}", "高于 {}", num(high))
        } else {
            say!(lang, "below {}", "低于 {}", num(low))
        };
        let context = match reference {
            Some(r) => say!(
                lang,
                "; the linear-scaling reference (0.1 per 256 examples at momentum 0.9) for batch {} and momentum {} is {}, and this is {}× it",
                "；线性缩放规则（动量 0.9 时每 256 个样本 0.1）在批大小 {}、动量 {} 下的参考学习率为 {}，当前是它的 {} 倍",
                batch.map_or_else(
                    || say!(lang, "256 (assumed)", "256（假定）"),
                    |b| b.to_string()
                ),
                num(momentum),
                num(r),
                num(lr.value / r)
            ),
            None => String::new(),
        };
        // "SGD (sgd)" says nothing twice; "Adam-family (adamw_torch)" says something.
        let named = if optimizer.eq_ignore_ascii_case(fam) {
            String::new()
        } else {
            format!(" ({optimizer})")
        };
        let effect = if too_high {
            say!(
                lang,
                "steps this large overshoot and the loss swings or blows up",
                "步长这么大会越过最优点，损失会震荡或发散"
            )
        } else {
            say!(
                lang,
                "steps this small barely move the weights",
                "步长这么小，权重几乎不动"
            )
        };
        out.findings.push(Finding {
            id: FindingId::LearningRateExtreme,
            severity: Severity::Warning,
            summary: say!(
                lang,
                "The learning rate {path} = {value} is {bound} for {fam}{named}{context}: {effect}.",
                "学习率 {path} = {value} 对 {fam}{named} 而言{bound}{context}：{effect}。"
            ),
            evidence: evidence![
                "parameter" => path.as_str(),
                "value" => lr.value,
                "optimizer" => optimizer,
                "family" => fam,
                "direction" => if too_high { "high" } else { "low" },
                "low" => low,
                "high" => high,
                "reference" => reference,
                "momentum" => (family == Family::Sgd).then_some(momentum),
                "effective_batch" => batch,
            ],
        });
    }
}

/// The config's class weights: the path of the object or list and (class, weight) pairs.
fn class_weights(config: &ConfigDoc) -> Option<(String, Vec<(String, f64)>)> {
    fn find<'a>(prefix: &str, map: &'a Map<String, Value>) -> Option<(String, &'a Value)> {
        for (key, value) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if CLASS_WEIGHT_KEYS.contains(&key.as_str()) && (value.is_object() || value.is_array())
            {
                return Some((path, value));
            }
            if let Value::Object(inner) = value
                && let Some(found) = find(&path, inner)
            {
                return Some(found);
            }
        }
        None
    }
    let (path, value) = find("", &config.root)?;
    let weights: Vec<(String, f64)> = match value {
        Value::Object(m) => m
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_f64()?)))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((i.to_string(), v.as_f64()?)))
            .collect(),
        _ => return None,
    };
    (weights.len() >= 2).then_some((path, weights))
}

fn class_imbalance(config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
    let Some((path, weights)) = class_weights(config) else {
        return;
    };
    let positive: Vec<&(String, f64)> = weights.iter().filter(|(_, w)| *w > 0.0).collect();
    let (Some(max), Some(min)) = (
        positive.iter().max_by(|a, b| a.1.total_cmp(&b.1)),
        positive.iter().min_by(|a, b| a.1.total_cmp(&b.1)),
    ) else {
        return;
    };
    let ratio = max.1 / min.1;
    if ratio < CLASS_IMBALANCE_RATIO {
        return;
    }
    let off = switched_off(config, &path, CLASS_WEIGHT_SWITCHES);
    let in_use = off.is_none();
    let r = num(ratio);
    let (maxc, maxw, minc, minw) = (&max.0, num(max.1), &min.0, num(min.1));
    let (severity, consequence) = if in_use {
        (
            Severity::Info,
            say!(
                lang,
                "the loss compensates, but accuracy says little on such data: watch per-class recall or F1",
                "损失已做补偿，但在这样的数据上准确率说明不了多少：请关注各类别的召回率或 F1"
            ),
        )
    } else {
        (
            Severity::Warning,
            say!(
                lang,
                "and the weights are switched off, so the rare class is barely learned",
                "而且类别权重被关闭，稀有类别几乎学不到"
            ),
        )
    };
    out.findings.push(Finding {
        id: FindingId::ClassImbalance,
        severity,
        summary: say!(
            lang,
            "The class weights in `{path}` span {r}× ({maxc}: {maxw}, {minc}: {minw}), a strong imbalance (≥ {}×); {consequence}.",
            "`{path}` 中的类别权重相差 {r} 倍（{maxc}：{maxw}，{minc}：{minw}），类别严重不平衡（≥ {} 倍）；{consequence}。",
            num(CLASS_IMBALANCE_RATIO)
        ),
        evidence: evidence![
            "parameter" => path.as_str(),
            "ratio" => ratio,
            "max_class" => maxc.as_str(),
            "max_weight" => max.1,
            "min_class" => minc.as_str(),
            "min_weight" => min.1,
            "in_use" => in_use,
        ],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;
    use serde_json::json;

    /// The config of seed 003 (MobileNetV3, 5 classes), as its report printed it.
    const SEED_003: &str = r#"{
  "data_dir": "E:\\PIC_SLM\\TEST\\OUTPUT2\\dataset",
  "model_name": "MobileNetV3",
  "num_epochs": 20,
  "batch_size": 32,
  "learning_rate": 0.001,
  "task_type": "classification",
  "optimizer": "Adam",
  "use_pretrained": true,
  "metrics": ["accuracy"],
  "use_class_weights": true,
  "weight_strategy": "balanced",
  "weight_decay": 0.0001,
  "lr_scheduler": "StepLR",
  "use_augmentation": true,
  "early_stopping": true,
  "early_stopping_patience": 10,
  "gradient_clipping": false,
  "gradient_clipping_value": 1.0,
  "mixed_precision": true,
  "dropout_rate": 0.0,
  "beta1": 0.9,
  "beta2": 0.999,
  "momentum": 0.9,
  "nesterov": false,
  "warmup_enabled": true,
  "warmup_steps": 0,
  "warmup_ratio": 0.05,
  "warmup_method": "linear",
  "min_lr_enabled": true,
  "min_lr": 1e-06,
  "label_smoothing_enabled": true,
  "label_smoothing": 0.1,
  "model_ema": true,
  "model_ema_decay": 0.9999,
  "gradient_accumulation_enabled": true,
  "gradient_accumulation_steps": 4,
  "advanced_augmentation_enabled": false,
  "cutmix_prob": 0.5,
  "mixup_alpha": 0.2,
  "loss_scaling_enabled": true,
  "loss_scale": "dynamic",
  "static_loss_scale": 128.0,
  "class_weights": {"划痕": 1.0, "污点": 1.0, "缺失": 1.0, "变形": 1.0, "异物": 1.0}
}"#;

    fn with(config: &str) -> Diagnosis {
        Fixture::new()
            .series("loss", &[1.0, 0.8, 0.7])
            .config(config)
            .check(check)
    }

    fn ids(d: &Diagnosis) -> Vec<&str> {
        d.findings.iter().map(|f| f.id.as_str()).collect()
    }

    fn skipped<'d>(d: &'d Diagnosis, check: &str) -> Option<&'d str> {
        d.skipped
            .iter()
            .find(|s| s.check == check)
            .map(|s| s.reason.as_str())
    }

    #[test]
    fn without_a_config_the_checks_are_skipped() {
        let d = Fixture::new().series("loss", &[1.0]).check(check);
        assert!(d.findings.is_empty());
        assert_eq!(skipped(&d, "config_checks"), Some("no --config given"));
    }

    #[test]
    fn seed_003_says_true_things_and_invents_nothing() {
        let d = Fixture::new()
            .at("loss", 2, 1.692669)
            .at("accuracy", 2, 0.16875)
            .config(SEED_003)
            .check(check);
        // Only the unused momentum: warmup_steps 0 with ratio 0.05 is how a ratio is
        // used, patience 10 < 20 epochs, min_lr 1e-6 < 1e-3, Adam at 1e-3 is ordinary.
        assert_eq!(ids(&d), ["conflicting_settings"]);
        let f = &d.findings[0];
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.evidence["why"], "momentum_unused_by_adaptive_optimizer");
        assert_eq!(f.evidence["settings"], json!({"momentum": 0.9}));
        assert!(f.summary.contains("beta1 = 0.9"), "{}", f.summary);
        // What cannot be judged says what is known and what is missing.
        let batch = skipped(&d, "effective_batch_too_large").unwrap();
        assert!(
            batch.contains("128") && batch.contains("num_train_samples"),
            "{batch}"
        );
        let ema = skipped(&d, "ema_horizon_too_long").unwrap();
        assert!(ema.contains("10000") && ema.contains("64000"), "{ema}");
        assert!(skipped(&d, "warmup_exceeds_training").is_none());
    }

    #[test]
    fn too_few_steps_per_epoch_flag_the_effective_batch() {
        let d = with(
            r#"{"batch_size": 64, "gradient_accumulation_steps": 4, "num_train_samples": 2000}"#,
        );
        let e = &d
            .get(FindingId::EffectiveBatchTooLarge)
            .expect("256 of 2000")
            .evidence;
        assert_eq!(e["effective_batch"], 256);
        assert_eq!(e["accumulation"], 4);
        assert_eq!(e["devices"], 1);
        assert_eq!(e["steps_per_epoch"], 8);
        assert_eq!(e["dataset_size"], 2000);
        assert!(
            with(r#"{"batch_size": 32, "num_train_samples": 2000}"#)
                .findings
                .is_empty()
        );
        // Steps read from a Keras log, dataset size unknown: a plain batch is flagged only
        // when an epoch is down to a handful of updates.
        let plain = |steps| {
            Fixture::new()
                .series("loss", &[1.0])
                .steps_per_epoch(steps)
                .config(r#"{"batch_size": 32}"#)
                .check(check)
        };
        assert!(
            plain(7).get(FindingId::EffectiveBatchTooLarge).is_none(),
            "a small dataset"
        );
        let d = plain(3);
        let e = &d.get(FindingId::EffectiveBatchTooLarge).unwrap().evidence;
        assert_eq!(e["steps_per_epoch"], 3);
        assert_eq!(e["dataset_size"], serde_json::Value::Null);
    }

    #[test]
    fn warmup_is_judged_against_the_runs_steps() {
        let run = r#""epochs": 2, "steps_per_epoch": 200"#;
        let d = with(&format!(r#"{{"warmup_steps": 500, {run}}}"#));
        let f = d.get(FindingId::WarmupExceedsTraining).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.evidence["parameter"], "warmup_steps");
        assert_eq!(f.evidence["warmup"], 500.0);
        assert_eq!(f.evidence["total_steps"], 400);
        assert_eq!(
            f.evidence["total_steps_source"],
            "200 steps/epoch × 2 epochs"
        );
        let d = with(&format!(r#"{{"warmup_steps": 250, {run}}}"#));
        assert_eq!(d.findings[0].severity, Severity::Warning);
        assert!(
            with(&format!(r#"{{"warmup_steps": 40, {run}}}"#))
                .findings
                .is_empty()
        );
        let off = format!(r#"{{"warmup_enabled": false, "warmup_steps": 500, {run}}}"#);
        assert!(with(&off).findings.is_empty());
        let d = with(r#"{"warmup_steps": 500}"#);
        assert!(d.findings.is_empty());
        assert!(
            skipped(&d, "warmup_exceeds_training")
                .unwrap()
                .contains("unknown")
        );
    }

    #[test]
    fn warmup_ratio_and_epochs_are_judged_too() {
        let d = with(r#"{"warmup_ratio": 1.0}"#);
        assert_eq!(
            d.get(FindingId::WarmupExceedsTraining).unwrap().severity,
            Severity::Critical
        );
        assert!(
            with(r#"{"warmup_steps": 0, "warmup_ratio": 0.05}"#)
                .findings
                .is_empty()
        );
        let d = with(r#"{"scheduler": {"warmup_epochs": 5}, "epochs": 5}"#);
        let f = d.get(FindingId::WarmupExceedsTraining).unwrap();
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.evidence["parameter"], "scheduler.warmup_epochs");
    }

    #[test]
    fn an_ema_longer_than_the_run_is_flagged_unless_it_is_off() {
        let d = with(r#"{"model_ema": true, "model_ema_decay": 0.9999, "max_steps": 2000}"#);
        let f = d.get(FindingId::EmaHorizonTooLong).unwrap();
        assert_eq!(f.evidence["horizon_steps"], 10000.0);
        assert_eq!(f.evidence["total_steps"], 2000);
        assert_eq!(f.evidence["initial_weight_share"], 0.818723);
        assert!(f.summary.contains("81.87%"), "{}", f.summary);
        let off = r#"{"model_ema": false, "model_ema_decay": 0.9999, "max_steps": 2000}"#;
        assert!(with(off).findings.is_empty());
        let keras = r#"{"optimizer": {"use_ema": false, "ema_momentum": 0.9999}, "max_steps": 50}"#;
        assert!(with(keras).findings.is_empty());
        let nested = r#"{"ema": {"enabled": false, "decay": 0.9999}, "max_steps": 50}"#;
        assert!(with(nested).findings.is_empty());
        assert!(
            with(r#"{"ema_decay": 0.99, "max_steps": 2000}"#)
                .findings
                .is_empty()
        );
    }

    #[test]
    fn each_conflict_is_its_own_finding() {
        let why = |config: &str| -> Vec<String> {
            with(config)
                .findings
                .iter()
                .filter(|f| f.id == FindingId::ConflictingSettings)
                .map(|f| f.evidence["why"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            why(r#"{"lr": 1e-4, "min_lr": 1e-3}"#),
            ["min_lr_not_below_lr"]
        );
        assert!(why(r#"{"lr": 1e-4, "min_lr_enabled": false, "min_lr": 1e-3}"#).is_empty());
        assert_eq!(
            why(r#"{"epochs": 10, "early_stopping_patience": 10}"#),
            ["early_stopping_patience_not_below_epochs"]
        );
        assert!(
            why(r#"{"epochs": 10, "early_stopping": false, "early_stopping_patience": 10}"#)
                .is_empty()
        );
        assert_eq!(
            why(r#"{"epochs": 50, "lr_scheduler": {"patience": 5}, "early_stopping_patience": 5}"#),
            ["scheduler_patience_not_below_early_stopping_patience"]
        );
        assert!(
            why(r#"{"epochs": 50, "lr_scheduler": {"patience": 3}, "early_stopping_patience": 8}"#)
                .is_empty()
        );
        assert_eq!(
            why(r#"{"optimizer": {"name": "SGD", "momentum": 0.0, "nesterov": true}}"#),
            ["nesterov_without_momentum"]
        );
        assert_eq!(
            why(r#"{"warmup_steps": 100, "warmup_ratio": 0.1}"#),
            ["warmup_steps_and_ratio_both_set"]
        );
        assert!(
            why(r#"{"warmup_enabled": false, "warmup_steps": 100, "warmup_ratio": 0.1}"#)
                .is_empty()
        );
        assert_eq!(
            why(r#"{"use_class_weights": false, "class_weights": [1.0, 3.0]}"#),
            ["class_weights_disabled"]
        );
        assert!(why(r#"{"use_class_weights": false, "class_weights": [1.0, 1.0]}"#).is_empty());
        assert!(why(r#"{"optimizer": "sgd", "momentum": 0.9}"#).is_empty());
    }

    #[test]
    fn dropout_above_one_half_is_flagged() {
        let d = with(r#"{"hidden_dropout_prob": 0.6, "attention_dropout": 0.5}"#);
        assert_eq!(ids(&d), ["dropout_too_high"]);
        assert_eq!(d.findings[0].evidence["parameter"], "hidden_dropout_prob");
    }

    #[test]
    fn learning_rate_bounds_depend_on_the_optimizer() {
        let e = |config: &str| {
            with(config)
                .get(FindingId::LearningRateExtreme)
                .map(|f| f.evidence.clone())
        };
        let adam = e(r#"{"optimizer": "adam", "learning_rate": 0.05}"#).unwrap();
        assert_eq!(adam["direction"], "high");
        assert_eq!(adam["family"], "Adam-family");
        assert!(e(r#"{"optimizer": "adamw_torch", "learning_rate": 5e-7}"#).is_none());
        assert!(e(r#"{"optimizer": "adam", "learning_rate": 0.001}"#).is_none());
        // Keras, SGD at lr 50 with momentum 0.9 and batch 32: 4000× the reference.
        let sgd =
            e(r#"{"optimizer": "sgd", "lr": 50.0, "momentum": 0.9, "batch_size": 32}"#).unwrap();
        assert_eq!(sgd["reference"], 0.0125);
        assert_eq!(sgd["high"], 0.125);
        // SGD 0.1 at batch 32 with momentum 0.9 is the usual CIFAR setting.
        assert!(
            e(r#"{"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "batch_size": 32}"#).is_none()
        );
        // Without momentum the same step allows a 10× larger rate.
        assert!(e(r#"{"optimizer": "sgd", "lr": 1.0, "batch_size": 32}"#).is_none());
        let low = e(r#"{"optimizer": "sgd", "learning_rate": 1e-6, "momentum": 0.0}"#).unwrap();
        assert_eq!(low["direction"], "low");
        let d = with(r#"{"learning_rate": 0.05}"#);
        assert!(
            skipped(&d, "learning_rate_extreme")
                .unwrap()
                .contains("optimizer")
        );
    }

    #[test]
    fn class_imbalance_is_info_when_weighted_and_a_warning_when_not() {
        let d = with(r#"{"class_weights": {"ok": 1.0, "defect": 12.5}}"#);
        let f = d.get(FindingId::ClassImbalance).unwrap();
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.evidence["ratio"], 12.5);
        assert_eq!(f.evidence["max_class"], "defect");
        let d = with(r#"{"use_class_weights": false, "class_weights": [1.0, 12.5]}"#);
        assert_eq!(
            d.get(FindingId::ClassImbalance).unwrap().severity,
            Severity::Warning
        );
        assert!(with(r#"{"class_weights": [1.0, 3.0]}"#).findings.is_empty());
    }
}
