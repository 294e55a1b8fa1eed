//! Settings that contradict each other, each conflict its own finding.

use serde_json::{Map, Value};

use super::lr_families::Family;
use super::regularisation::class_weights;
use super::{
    CLASS_WEIGHT_SWITCHES, EARLY_STOPPING_SWITCHES, MIN_LR_SWITCHES, WARMUP_SWITCHES, active,
    settings, switched_off,
};
use crate::config::ConfigDoc;
use crate::lang::Lang;
use crate::lang::say;
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity};

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

pub(super) fn conflicts(run: &Run, config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
}
