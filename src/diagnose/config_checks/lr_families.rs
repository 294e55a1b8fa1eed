//! The learning rate against the bounds of its optimizer's family.

use crate::lang::Lang;
use crate::lang::say;
use crate::num::num;
use crate::run::Run;
use crate::space::Tunable;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity, Skipped};

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

/// Optimizer families whose learning rates live on different scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Adaptive,
    Sgd,
    Adagrad,
    Lion,
}

impl Family {
    /// The family of an optimizer name as configs spell it (`adamw_torch`, `SGD`,
    /// `paged_adamw_8bit`); `None` for those whose scale is their own (Adafactor's
    /// relative steps, LAMB/LARS's trust ratios, Adadelta's 1.0).
    pub(super) fn of(name: &str) -> Option<Family> {
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

    pub(super) fn label(self) -> &'static str {
        match self {
            Family::Adaptive => "Adam-family",
            Family::Sgd => "SGD",
            Family::Adagrad => "Adagrad",
            Family::Lion => "Lion",
        }
    }
}

pub(super) fn learning_rate(run: &Run, lang: Lang, out: &mut Diagnosis) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
}
