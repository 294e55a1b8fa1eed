//! Load: everything the later stages read, gathered once. A `Run` is the config (when
//! given), the metrics, the parameter space with the config's tunable values, earlier
//! adjustments from the history, and `Facts` derived from all of them (classes, steps per
//! epoch, effective batch) so that diagnose, advise and validate agree on one reading.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::config::ConfigDoc;
use crate::error::Result;
use crate::history::{self, HistoryEntry};
use crate::metrics::{self, Format, Metrics};
use crate::space::{Space, Tunable};
use crate::types::Known;

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub config: Option<PathBuf>,
    pub metrics: PathBuf,
    pub metrics_format: Option<Format>,
    pub space: Option<PathBuf>,
    pub history: Option<PathBuf>,
    pub num_classes: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Run {
    pub config: Option<ConfigDoc>,
    /// The config is the one an experiment tracker recorded with the metrics (a W&B run's
    /// run record), not a file the trainer reads: the config checks read it, but a change
    /// to it is advice, never a file written.
    pub config_recorded: bool,
    pub metrics: Metrics,
    pub space: Space,
    /// The config's tunable values (empty without a config).
    pub tunables: Vec<Tunable>,
    /// Earlier adjustments of this run, oldest first.
    pub history: Vec<HistoryEntry>,
    pub facts: Facts,
}

fn known<T>(value: T, source: impl Into<String>) -> Known<T> {
    Known {
        value,
        source: source.into(),
    }
}

/// Facts about the run that several stages need.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Facts {
    /// Number of classes from `--num-classes` or the config (the chance-level detector can
    /// also infer it from the metrics).
    pub classes: Option<Known<u32>>,
    pub batch_size: Option<Known<u64>>,
    pub accumulation: Option<Known<u64>>,
    pub devices: Option<Known<u64>>,
    /// batch × accumulation × devices, when the batch size is known.
    pub effective_batch: Option<u64>,
    /// Training examples, when the config says (`num_train_samples`, `train_size` …).
    pub dataset_size: Option<Known<u64>>,
    pub steps_per_epoch: Option<Known<u64>>,
    pub planned_epochs: Option<Known<u32>>,
    pub total_steps: Option<Known<u64>>,
    /// Optimizer name as the config spells it, lowercased.
    pub optimizer: Option<String>,
    /// Latest complete epoch in the metrics.
    pub epochs_done: u32,
}

pub fn load_run(options: &LoadOptions) -> Result<Run> {
    let config = options.config.as_deref().map(ConfigDoc::load).transpose()?;
    let metrics = metrics::load_metrics(&options.metrics, options.metrics_format)?;
    let space = Space::load(options.space.as_deref())?;
    let history = match &options.history {
        Some(path) => history::read(path)?,
        None => Vec::new(),
    };
    Ok(Run::new(
        config,
        metrics,
        space,
        history,
        options.num_classes,
    ))
}

impl Run {
    /// A run from its loaded parts; the tunables and facts are read from them (`classes`
    /// is `--num-classes`, which outranks what the config says). Without a config file,
    /// the config the metrics came with (a W&B run's) is the config.
    pub fn new(
        config: Option<ConfigDoc>,
        mut metrics: Metrics,
        space: Space,
        history: Vec<HistoryEntry>,
        classes: Option<u32>,
    ) -> Run {
        let recorded = metrics.recorded_config.take();
        let config_recorded = config.is_none() && recorded.is_some();
        let config = config.or(recorded);
        let tunables = config
            .as_ref()
            .map(|c| space.tunables(c))
            .unwrap_or_default();
        let facts = derive_facts(config.as_ref(), &metrics, &tunables, classes);
        Run {
            config,
            config_recorded,
            metrics,
            space,
            tunables,
            history,
            facts,
        }
    }

    /// The tunable whose catalogue entry is `name` (`learning_rate`, `batch_size` …).
    pub fn tunable(&self, name: &str) -> Option<&Tunable> {
        self.tunables.iter().find(|t| t.spec.name == name)
    }
}

const CLASS_COUNT_KEYS: &[&str] = &[
    "num_classes",
    "n_classes",
    "nb_classes",
    "num_labels",
    "classes",
    "n_labels",
    "num_class",
];
const CLASS_LIST_KEYS: &[&str] = &[
    "class_weights",
    "class_names",
    "classes",
    "labels",
    "id2label",
    "label2id",
    "class_weight",
];
const DEVICE_KEYS: &[&str] = &[
    "num_gpus",
    "n_gpu",
    "n_gpus",
    "gpus",
    "devices",
    "num_devices",
    "world_size",
    "nproc_per_node",
];
const DATASET_SIZE_KEYS: &[&str] = &[
    "num_train_samples",
    "train_samples",
    "train_size",
    "dataset_size",
    "num_samples",
    "n_train",
    "num_train_examples",
    "train_examples",
];
const MAX_STEPS_KEYS: &[&str] = &[
    "max_steps",
    "total_steps",
    "num_training_steps",
    "train_steps",
];
const STEPS_PER_EPOCH_KEYS: &[&str] = &["steps_per_epoch"];
const OPTIMIZER_KEYS: &[&str] = &[
    "optimizer",
    "optim",
    "optimizer.name",
    "optimizer.type",
    "optimizer_name",
    "optimizer.class_name",
];
const LOSS_KEYS: &[&str] = &["loss", "loss_fn", "loss_function", "criterion", "objective"];

pub fn derive_facts(
    config: Option<&ConfigDoc>,
    metrics: &Metrics,
    tunables: &[Tunable],
    num_classes: Option<u32>,
) -> Facts {
    let tunable = |name: &str| tunables.iter().find(|t| t.spec.name == name);
    let from_config = |path: &str, value: u64| known(value, format!("config `{path}`"));

    let classes = num_classes
        .map(|c| known(c, "--num-classes"))
        .or_else(|| config.and_then(classes_from_config));

    let batch_size = tunable("batch_size")
        .filter(|t| t.value >= 1.0)
        .map(|t| from_config(&t.path, t.value as u64));
    let accumulation = tunable("gradient_accumulation_steps")
        .filter(|t| t.value >= 1.0 && accumulation_enabled(config, &t.path))
        .map(|t| from_config(&t.path, t.value as u64));
    let devices = config.and_then(|c| first_uint(c, DEVICE_KEYS));
    let effective_batch = batch_size.as_ref().map(|b| {
        b.value
            * accumulation.as_ref().map_or(1, |a| a.value)
            * devices.as_ref().map_or(1, |d| d.value.max(1))
    });

    let planned_epochs = tunable("epochs")
        .filter(|t| t.value >= 1.0)
        .map(|t| known(t.value as u32, format!("config `{}`", t.path)))
        .or_else(|| {
            metrics
                .planned_epochs
                .map(|e| known(e, metrics.format.label()))
        });

    let dataset_size = config
        .and_then(|c| first_uint(c, DATASET_SIZE_KEYS))
        .filter(|k| k.value > 0);
    let steps_per_epoch = metrics
        .steps_per_epoch
        .map(|s| known(s, metrics.format.label()))
        .or_else(|| config.and_then(|c| first_uint(c, STEPS_PER_EPOCH_KEYS)))
        .or_else(|| {
            let size = dataset_size.clone()?;
            let batch = effective_batch.filter(|b| *b > 0)?;
            Some(known(
                size.value.div_ceil(batch),
                format!("{} / effective batch {batch}", size.source),
            ))
        });

    let total_steps = config
        .and_then(|c| first_uint(c, MAX_STEPS_KEYS))
        .filter(|k| k.value > 0)
        .or_else(|| metrics.max_steps.map(|s| known(s, metrics.format.label())))
        .or_else(|| {
            let spe = steps_per_epoch.as_ref()?;
            let epochs = planned_epochs.as_ref()?;
            Some(known(
                spe.value * u64::from(epochs.value),
                format!("{} steps/epoch × {} epochs", spe.value, epochs.value),
            ))
        });

    let optimizer = config.and_then(|c| {
        OPTIMIZER_KEYS
            .iter()
            .find_map(|k| c.get(k).and_then(Value::as_str))
            .map(str::to_ascii_lowercase)
    });

    Facts {
        classes,
        batch_size,
        accumulation,
        devices,
        effective_batch,
        dataset_size,
        steps_per_epoch,
        planned_epochs,
        total_steps,
        optimizer,
        epochs_done: metrics.last_epoch().unwrap_or(0),
    }
}

/// Accumulation written next to an explicit `..._enabled: false` switch is not in effect.
fn accumulation_enabled(config: Option<&ConfigDoc>, path: &str) -> bool {
    let Some(config) = config else { return true };
    let switch = path.rsplit_once('.').map_or(
        "gradient_accumulation_enabled".to_string(),
        |(parent, _)| format!("{parent}.gradient_accumulation_enabled"),
    );
    config.get(&switch).and_then(Value::as_bool) != Some(false)
}

fn first_uint(config: &ConfigDoc, keys: &[&str]) -> Option<Known<u64>> {
    config.leaves().into_iter().find_map(|(path, value)| {
        let leaf = path.rsplit('.').next().unwrap_or(&path);
        let key_matches = keys
            .iter()
            .any(|k| k.eq_ignore_ascii_case(leaf) || k.eq_ignore_ascii_case(&path));
        let number = value.as_u64()?;
        key_matches.then(|| known(number, format!("config `{path}`")))
    })
}

fn classes_from_config(config: &ConfigDoc) -> Option<Known<u32>> {
    if let Some(k) = first_uint(config, CLASS_COUNT_KEYS).filter(|k| k.value >= 2) {
        return Some(known(k.value as u32, k.source));
    }
    for key in CLASS_LIST_KEYS {
        let n = match config.get(key) {
            Some(Value::Object(m)) => m.len(),
            Some(Value::Array(a)) => a.len(),
            _ => continue,
        };
        if n >= 2 {
            return Some(known(n as u32, format!("{n} entries in config `{key}`")));
        }
    }
    for key in LOSS_KEYS {
        let Some(loss) = config.get(key).and_then(Value::as_str) else {
            continue;
        };
        let l = loss.to_ascii_lowercase();
        if l.contains("binary") || l.contains("bce") || l == "sigmoid_cross_entropy" {
            return Some(known(2, format!("binary loss `{loss}` in config `{key}`")));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(config: &str) -> Facts {
        testing::run(Some(config), &[("loss", &[1.0])]).facts
    }

    #[test]
    fn effective_batch_multiplies_accumulation_and_devices() {
        let f = facts(r#"{"batch_size": 32, "gradient_accumulation_steps": 4, "num_gpus": 2}"#);
        assert_eq!(f.effective_batch, Some(256));
        let f = facts(
            r#"{"batch_size": 32, "gradient_accumulation_enabled": false, "gradient_accumulation_steps": 4}"#,
        );
        assert_eq!(f.effective_batch, Some(32));
    }

    #[test]
    fn steps_come_from_dataset_size_and_epochs() {
        let f = facts(r#"{"batch_size": 100, "num_train_samples": 1050, "epochs": 10}"#);
        assert_eq!(f.steps_per_epoch.unwrap().value, 11);
        assert_eq!(f.total_steps.unwrap().value, 110);
    }

    #[test]
    fn classes_from_counts_lists_and_binary_losses() {
        assert_eq!(facts(r#"{"num_classes": 10}"#).classes.unwrap().value, 10);
        let f = facts(r#"{"class_weights": {"a": 1.0, "b": 1.0, "c": 2.0}}"#);
        assert_eq!(f.classes.unwrap().value, 3);
        let f = facts(r#"{"loss": "binary_crossentropy"}"#);
        assert_eq!(f.classes.unwrap().value, 2);
        assert!(facts(r#"{"lr": 0.1}"#).classes.is_none());
    }
}

/// Builds runs for unit tests from a config text and per-epoch series.
#[cfg(test)]
pub mod testing {
    use std::path::Path;

    use super::*;
    use crate::metrics::MetricsBuilder;

    /// `series` are (name as logged, one value per epoch starting at epoch 1).
    pub fn run(config: Option<&str>, series: &[(&str, &[f64])]) -> Run {
        let mut builder = MetricsBuilder::new();
        for (name, values) in series {
            push_series(&mut builder, name, values);
        }
        assemble(config, builder, None)
    }

    /// `values` at epochs 1, 2, 3 …
    pub fn push_series(builder: &mut MetricsBuilder, name: &str, values: &[f64]) {
        for (i, v) in values.iter().enumerate() {
            builder.push(name, i as u32 + 1, *v);
        }
    }

    /// The run of a config text (`config.json`) and the metrics collected in `builder`
    /// (`metrics.csv`), with no history; `classes` as `--num-classes` gives it.
    pub fn assemble(config: Option<&str>, builder: MetricsBuilder, classes: Option<u32>) -> Run {
        let metrics = builder
            .finish(Path::new("metrics.csv"), Format::KerasCsv)
            .expect("test series are not empty");
        let config = config.map(|text| {
            ConfigDoc::parse(Path::new("config.json"), text.to_string())
                .expect("test config parses")
        });
        let space = Space::load(None).expect("built-in space parses");
        Run::new(config, metrics, space, Vec::new(), classes)
    }
}
