//! The effective batch against the dataset: too few optimizer steps an epoch.

use super::how_to_give_steps;
use crate::lang::Lang;
use crate::lang::say;
use crate::num::num;
use crate::run::Run;
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

pub(super) fn effective_batch(run: &Run, lang: Lang, out: &mut Diagnosis) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

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
}
