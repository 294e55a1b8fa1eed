//! Reads a JSON snapshot: one object of the run's current values, as the trainer behind
//! seed 003 writes after each phase (`{"timestamp": …, "epoch": 2, "phase": "train",
//! "session_id": …, "loss": 1.69, "accuracy": 0.17}`). It also owns `Row`, the reading of
//! one such object, which JSON Lines reuses for each of its lines.
//!
//! Choices: `epoch` is taken as given and 1-based (seed 003's `"epoch": 2` is the second
//! epoch: its report says 当前训练轮数 2), except that 0 is read as the first epoch and a
//! fractional epoch (0.25, as step-level loggers write) as the epoch it falls in. A `phase`
//! (or `split`, `mode`, `stage`) of val/validation/eval/test makes the plain names
//! validation metrics (`loss` → `val_loss`). Bookkeeping numbers (timestamp, step, batch)
//! and non-numeric fields are not metrics. A snapshot with no epoch, no step and nothing
//! named like a loss or an accuracy is a config given as metrics, and is refused.

use std::fmt;
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::MetricsBuilder;
use super::names::{self, Canonical};
use super::nonfinite::{self, Scalar};
use crate::error::{Error, Result};

/// Numeric fields that count rows or time rather than measure the model.
const BOOKKEEPING_KEYS: &[&str] = &[
    "timestamp",
    "_timestamp",
    "time",
    "wall_time",
    "walltime",
    "datetime",
    "elapsed",
    "elapsed_time",
    "duration",
    "runtime",
    "_runtime",
    "epoch_time",
    "batch",
    "iteration",
    "iter",
    "_step",
    "pid",
    "rank",
];
/// Fields naming the phase a row's plain names belong to.
const PHASE_KEYS: &[&str] = &["phase", "split", "mode", "stage", "subset"];
/// Phases whose plain names are validation metrics.
const VALIDATION_PHASES: &[&str] = &[
    "val",
    "valid",
    "validation",
    "eval",
    "evaluation",
    "evaluate",
    "test",
    "testing",
    "dev",
];
/// Prefixes that already mark a name as a validation metric.
const VALIDATION_PREFIXES: &[&str] = &[
    "val_",
    "val/",
    "val-",
    "valid_",
    "validation_",
    "validation/",
    "eval_",
    "eval/",
    "test_",
    "test/",
];
/// Slack when mapping a fractional epoch to the epoch it falls in: HF-style loggers write
/// 2.0000000000000004 for the end of epoch 2.
const EPOCH_SLACK: f64 = 1e-9;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut de = nonfinite::open_json(path)?;
    let mut row = Row::default();
    RowSeed(&mut row)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| nonfinite::json_error(path, 1, &e))?;
    let looks_like_metrics = row.epoch.is_some()
        || row.step.is_some()
        || row.values.iter().any(|(name, _)| is_core_metric(name));
    if !row.values.is_empty() && !looks_like_metrics {
        return Err(Error::input(
            path,
            "no epoch, step, loss or accuracy field: this looks like a training config, not a metrics snapshot; give the config with --config",
        ));
    }
    let epoch = row.epoch.map_or(1, |e| epoch_from(e, false));
    row.push_into(builder, epoch);
    builder.rows += 1;
    Ok(())
}

fn is_core_metric(name: &str) -> bool {
    matches!(
        names::canonicalize(name),
        Some((
            Canonical::Loss | Canonical::ValLoss | Canonical::Accuracy | Canonical::ValAccuracy,
            _
        ))
    )
}

/// The 1-based epoch a logged epoch number stands for. `zero_based` says the file counts
/// whole epochs from 0; fractional epochs (progress through training) need no shift.
pub(super) fn epoch_from(logged: f64, zero_based: bool) -> u32 {
    if !logged.is_finite() || logged <= 0.0 {
        return 1;
    }
    let whole = (logged - logged.round()).abs() < EPOCH_SLACK;
    let epoch = if whole {
        logged.round() + if zero_based { 1.0 } else { 0.0 }
    } else {
        (logged - EPOCH_SLACK).ceil()
    };
    epoch.clamp(1.0, f64::from(u32::MAX)) as u32
}

/// One object of values. Reused across JSON Lines rows so a long file allocates once.
#[derive(Debug, Default)]
pub(super) struct Row {
    pub epoch: Option<f64>,
    pub step: Option<f64>,
    pub validation: bool,
    pub values: Vec<(String, f64)>,
}

impl Row {
    pub fn clear(&mut self) {
        self.epoch = None;
        self.step = None;
        self.validation = false;
        self.values.clear();
    }

    /// Pushes the row's values at `epoch`, named for the row's phase.
    pub fn push_into(&self, builder: &mut MetricsBuilder, epoch: u32) {
        for (name, value) in &self.values {
            if self.validation && !is_validation_name(name) && !is_optimizer_value(name) {
                builder.push(&format!("val_{name}"), epoch, *value);
            } else {
                builder.push(name, epoch, *value);
            }
        }
    }
}

fn is_validation_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    VALIDATION_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// The learning rate and gradient norm belong to training whatever phase logged them.
fn is_optimizer_value(name: &str) -> bool {
    matches!(
        names::canonicalize(name),
        Some((Canonical::Lr | Canonical::GradNorm, _))
    )
}

/// Reads one JSON object into a `Row`.
pub(super) struct RowSeed<'a>(pub &'a mut Row);

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of metric values such as {\"epoch\": 1, \"loss\": 0.5}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let row = self.0;
        while let Some(key) = map.next_key::<String>()? {
            let lower = key.to_ascii_lowercase();
            if lower == "epoch" {
                row.epoch = map.next_value::<Scalar>()?.number();
            } else if lower == "step" || lower == "global_step" {
                row.step = map.next_value::<Scalar>()?.number();
            } else if PHASE_KEYS.contains(&lower.as_str()) {
                if let Scalar::Text(phase) = map.next_value::<Scalar>()? {
                    let phase = phase.trim().to_ascii_lowercase();
                    row.validation = VALIDATION_PHASES.contains(&phase.as_str());
                }
            } else if BOOKKEEPING_KEYS.contains(&lower.as_str()) {
                map.next_value::<IgnoredAny>()?;
            } else if let Scalar::Number(value) = map.next_value::<Scalar>()? {
                row.values.push((key, value));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::{ScratchFile, example};
    use crate::metrics::{Canonical, Format, Metrics, load_metrics};

    const SCRATCH: ScratchFile = ScratchFile {
        name: "m.json",
        format: Format::Snapshot,
    };

    fn load_example(rel: &str) -> Metrics {
        load_metrics(&example(rel), Some(Format::Snapshot)).unwrap()
    }

    #[test]
    fn reads_seed_003_as_the_second_epoch() {
        let m = load_example("configs/examples/seed003/metrics.json");
        assert_eq!(m.rows, 1);
        let loss = m.get(Canonical::Loss).unwrap();
        assert_eq!(loss.len(), 1);
        assert_eq!(loss.last().unwrap().epoch, 2);
        assert_eq!(loss.last().unwrap().value, 1.692669);
        assert_eq!(
            m.get(Canonical::Accuracy).unwrap().last().unwrap().value,
            0.16875
        );
        // timestamp and session_id are not metrics
        assert_eq!(m.series.len(), 2, "{:?}", m.series);
        assert!(m.get(Canonical::ValLoss).is_none());
    }

    #[test]
    fn a_validation_phase_names_validation_metrics() {
        let m = load_example("configs/examples/formats/snapshot.json");
        let val_loss = m.get(Canonical::ValLoss).unwrap();
        assert_eq!(val_loss.original, "val_loss");
        assert_eq!(val_loss.last().unwrap().epoch, 4);
        assert!(m.get(Canonical::Loss).is_none());
        assert!(m.get(Canonical::ValAccuracy).is_some());
        // the learning rate stays a training value whatever the phase
        assert_eq!(m.get(Canonical::Lr).unwrap().original, "lr");
    }

    #[test]
    fn epochs_default_to_one_and_nan_is_data() {
        let m = SCRATCH.load("{\"loss\": NaN, \"phase\": \"train\"}");
        let p = m.get(Canonical::Loss).unwrap().last().unwrap();
        assert_eq!(p.epoch, 1);
        assert!(p.value.is_nan());
        let m = SCRATCH.load("{\"epoch\": 0, \"val_loss\": Infinity}");
        let p = m.get(Canonical::ValLoss).unwrap().last().unwrap();
        assert_eq!((p.epoch, p.value), (1, f64::INFINITY));
    }

    #[test]
    fn maps_logged_epochs_to_one_based_epochs() {
        assert_eq!(epoch_from(2.0, false), 2);
        assert_eq!(epoch_from(0.0, false), 1);
        assert_eq!(epoch_from(0.0, true), 1);
        assert_eq!(epoch_from(2.0, true), 3);
        assert_eq!(epoch_from(0.25, false), 1);
        assert_eq!(epoch_from(1.0, false), 1);
        assert_eq!(epoch_from(1.0000000000000002, false), 1);
        assert_eq!(epoch_from(1.04, false), 2);
        assert_eq!(epoch_from(f64::NAN, false), 1);
        assert_eq!(epoch_from(-3.0, false), 1);
    }

    #[test]
    fn refuses_what_is_not_a_metrics_snapshot() {
        let e = load_metrics(
            &example("configs/examples/seed003/config.json"),
            Some(Format::Snapshot),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("looks like a training config"), "{e}");
        let e = load_metrics(
            &example("tests/fixtures/not_metrics.json"),
            Some(Format::Snapshot),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no metric values found"), "{e}");
        let e = SCRATCH.error("{}").to_string();
        assert!(e.contains("no metric values found"), "{e}");
        let e = load_metrics(
            &example("tests/fixtures/broken.json"),
            Some(Format::Snapshot),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("broken.json:3:"), "{e}");
        let e = load_metrics(
            &example("tests/fixtures/garbage.bin"),
            Some(Format::Snapshot),
        )
        .unwrap_err();
        assert!(e.to_string().contains("garbage.bin:1:"), "{e}");
        let e = SCRATCH.error("[1, 2]").to_string();
        assert!(e.contains("expected a JSON object of metric values"), "{e}");
    }
}
