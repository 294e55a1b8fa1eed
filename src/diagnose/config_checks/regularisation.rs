//! Dropout, and class imbalance with or without class weights.

use serde_json::{Map, Value};

use super::{CLASS_WEIGHT_KEYS, CLASS_WEIGHT_SWITCHES, switched_off};
use crate::config::ConfigDoc;
use crate::lang::Lang;
use crate::lang::say;
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity};

/// Dropout above this drops more units than it keeps (UMLAUT's limit).
pub const DROPOUT_MAX: f64 = 0.5;
/// A largest/smallest class weight ratio at this level marks a strong imbalance
/// (SageMaker's class-imbalance rule uses 10×).
pub const CLASS_IMBALANCE_RATIO: f64 = 10.0;

pub(super) fn dropout(run: &Run, lang: Lang, out: &mut Diagnosis) {
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

/// The config's class weights: the path of the object or list and (class, weight) pairs.
pub(super) fn class_weights(config: &ConfigDoc) -> Option<(String, Vec<(String, f64)>)> {
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

pub(super) fn class_imbalance(config: &ConfigDoc, lang: Lang, out: &mut Diagnosis) {
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
    use super::super::testing::*;
    use super::*;

    #[test]
    fn dropout_above_one_half_is_flagged() {
        let d = with(r#"{"hidden_dropout_prob": 0.6, "attention_dropout": 0.5}"#);
        assert_eq!(ids(&d), ["dropout_too_high"]);
        assert_eq!(d.findings[0].evidence["parameter"], "hidden_dropout_prob");
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
