//! Warmup and the EMA horizon, judged against the run's optimizer steps.

use super::{
    EMA_SWITCHES, EMA_WARMUP_SWITCHES, WARMUP_SWITCHES, active, how_to_give_steps, switched_on,
};
use crate::config::ConfigDoc;
use crate::lang::Lang;
use crate::lang::say;
use crate::num::num;
use crate::run::Run;
use crate::space::Tunable;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity, Skipped};

/// Warmup longer than this share of the run is a warning: the peak learning rate is
/// reached only in the second half. Common recipes warm up for 1–10% (BERT 1%, Goyal et
/// al. 5 of 90 epochs, HF examples 6–10%). At 100% or more the run never leaves warmup
/// and that is critical. Derived.
pub const WARMUP_MAX_FRACTION: f64 = 0.5;
/// An EMA whose horizon 1/(1 − decay) exceeds this share of the run's steps still holds
/// e^-1 ≈ 37% or more of its initial weights when training ends (DETECTORS.md: horizon
/// > total steps).
pub const EMA_MAX_HORIZON_FRACTION: f64 = 1.0;

pub(super) fn warmup(run: &Run, config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
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

pub(super) fn ema(run: &Run, config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
}
