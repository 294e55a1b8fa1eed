//! Config checks: settings that are wrong before a single epoch runs, judged against the
//! run's own numbers (`Facts`: optimizer steps, effective batch, planned epochs) rather
//! than rules of thumb alone. Warmup against the run's steps, the EMA horizon against
//! them and the effective batch against the dataset are checks no published tool makes
//! (DETECTORS.md); the rest follow UMLAUT and SageMaker with optimizer-aware bounds. A
//! setting turned off by a sibling switch (`warmup_enabled: false`, `model_ema: false`,
//! `enabled: false` in its own object) is not judged: the trainer does not read it.
//! Without the facts a check needs, it says what is missing in `skipped`, never guesses.

mod batch;
mod conflicts;
mod lr_families;
mod regularisation;
mod warmup_ema;

use serde_json::{Map, Value};

use crate::config::ConfigDoc;
use crate::lang::Lang;
use crate::lang::say;
use crate::run::Run;
use crate::space::Tunable;
use crate::types::{Diagnosis, Skipped};
use batch::effective_batch;
use conflicts::conflicts;
use lr_families::learning_rate;
use regularisation::{class_imbalance, dropout};
use warmup_ema::{ema, warmup};

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

/// What the tests of every check share: seed 003's config and a diagnosis of a config.
#[cfg(test)]
mod testing {
    pub(super) use super::*;
    pub(super) use crate::diagnose::fixture::Fixture;
    pub(super) use crate::types::Severity;
    pub(super) use serde_json::json;

    /// The config of seed 003 (MobileNetV3, 5 classes), as its report printed it.
    pub(super) const SEED_003: &str = r#"{
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

    pub(super) fn with(config: &str) -> Diagnosis {
        Fixture::new()
            .series("loss", &[1.0, 0.8, 0.7])
            .config(config)
            .check(check)
    }

    pub(super) fn ids(d: &Diagnosis) -> Vec<&str> {
        d.findings.iter().map(|f| f.id.as_str()).collect()
    }

    pub(super) fn skipped<'d>(d: &'d Diagnosis, check: &str) -> Option<&'d str> {
        d.skipped
            .iter()
            .find(|s| s.check == check)
            .map(|s| s.reason.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;

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
}
