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

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

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

/// A loss or an accuracy, train or validation: the names a config never uses for text.
pub(super) fn is_core_metric(name: &str) -> bool {
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
            let is = |name: &str| key.eq_ignore_ascii_case(name);
            if is("epoch") {
                row.epoch = counter(&key, map.next_value::<Scalar>()?)?;
            } else if is("step") || is("global_step") {
                row.step = counter(&key, map.next_value::<Scalar>()?)?;
            } else if PHASE_KEYS.iter().any(|k| is(k)) {
                if let Scalar::Text(phase) = map.next_value::<Scalar>()? {
                    let phase = phase.trim();
                    row.validation = VALIDATION_PHASES
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(phase));
                }
            } else if BOOKKEEPING_KEYS.iter().any(|k| is(k)) {
                map.next_value::<IgnoredAny>()?;
            } else {
                match map.next_value::<Scalar>()? {
                    Scalar::Number(value) => row.values.push((key, value)),
                    // Text is a note, a path, an id or a setting (`"lr_scheduler":
                    // "StepLR"`), except under a loss's or an accuracy's own name: there
                    // it is a value someone quoted, or a broken one.
                    Scalar::Text(text) if is_core_metric(&key) => {
                        if let Some(value) = metric_text(&key, &text)? {
                            row.values.push((key, value));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// An `epoch` or `step` field: a number (or a quoted one), `null` for none, anything else
/// an error naming the field, which the JSON readers place at `file:line:column`.
pub(super) fn counter<E: de::Error>(key: &str, value: Scalar) -> Result<Option<f64>, E> {
    let number = match &value {
        Scalar::Number(v) => Some(*v),
        Scalar::Missing => return Ok(None),
        Scalar::Text(text) => nonfinite::parse_number(text),
        Scalar::Other => None,
    };
    match number {
        // A negative epoch (an evaluation before training, logged as -1) is read as the
        // first, as `epoch_from` does.
        Some(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(E::custom(format_args!(
            "\"{key}\": {} is not {}",
            value.describe(),
            if key.eq_ignore_ascii_case("epoch") {
                "an epoch number"
            } else {
                "a step number"
            }
        ))),
    }
}

/// A quoted value under a metric's name (`"loss": "0.5"`, `"loss": "n/a"`): the number it
/// spells, no value for the spellings of none, an error for anything else.
fn metric_text<E: de::Error>(key: &str, text: &str) -> Result<Option<f64>, E> {
    if nonfinite::is_no_value(text) {
        return Ok(None);
    }
    match nonfinite::parse_number(text) {
        Some(v) => Ok(Some(v)),
        None => Err(E::custom(format_args!(
            "\"{key}\": {text:?} is not a number"
        ))),
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

    #[test]
    fn an_epoch_or_a_metric_that_is_not_a_number_is_an_error_at_its_place() {
        for (text, says) in [
            (
                "{\"loss\": \"NaN\", \"epoch\": \"two\"}",
                "m.json:1:31: \"epoch\": \"two\" is not an epoch number",
            ),
            (
                "{\"epoch\": 1,\n \"step\": [3]}",
                "m.json:2:13: \"step\": a list, object or bool is not a step number",
            ),
            (
                "{\"epoch\": 1, \"val_loss\": \"0.7l\"}",
                "\"val_loss\": \"0.7l\" is not a number",
            ),
            (
                "{\"Epoch\": NaN, \"loss\": 1}",
                "\"Epoch\": NaN is not an epoch number",
            ),
        ] {
            let e = SCRATCH.error(text);
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        // what still reads: a quoted number or a spelling of none under a metric's name,
        // a quoted epoch, a null epoch, text under other names
        let m = SCRATCH.load(
            "{\"epoch\": \"3\", \"loss\": \"0.5\", \"val_loss\": \"n/a\", \"lr_scheduler\": \"StepLR\", \"accuracy\": 0.9}",
        );
        assert_eq!(
            m.get(Canonical::Loss).unwrap().last().unwrap(),
            crate::metrics::Point {
                epoch: 3,
                value: 0.5
            }
        );
        assert!(m.get(Canonical::ValLoss).is_none());
        let m = SCRATCH.load("{\"epoch\": null, \"step\": -1, \"loss\": 0.5}");
        assert_eq!(m.get(Canonical::Loss).unwrap().last().unwrap().epoch, 1);
    }
}
