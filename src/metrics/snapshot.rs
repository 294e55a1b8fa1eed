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

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::names::{self, Canonical};
use super::nonfinite::{self, Scalar};
use super::{MAX_SERIES, MetricsBuilder};
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

/// Largest snapshot read. A snapshot is one object of the run's current values, a few
/// hundred bytes; 16 MiB is the longest line JSON Lines reads, so no file is refused here
/// that would read as a one-line JSON Lines file. (Memory does not follow the size: the
/// object streams past, its strings and its field count are bounded.)
const MAX_SNAPSHOT_BYTES: u64 = 16 * 1024 * 1024;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let size = crate::input::metadata(path)?.len();
    if size > MAX_SNAPSHOT_BYTES {
        return Err(Error::input(
            path,
            format!(
                "is {}; a JSON snapshot is one object of current values, and retune reads at most {} (a log of many rows is JSON Lines: --metrics-format json-lines)",
                crate::input::size_text(size),
                crate::input::size_text(MAX_SNAPSHOT_BYTES)
            ),
        ));
    }
    let mut de = nonfinite::open_json(path)?;
    let mut row = Row::default();
    RowSeed(&mut row)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| nonfinite::json_error(path, 1, e))?;
    let looks_like_metrics = row.epoch.is_some()
        || row.step.is_some()
        || row.values.iter().any(|(name, _)| is_core_metric(name));
    row.values.report(builder, None);
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

/// Fields of one object past which a name index replaces the linear search for a key
/// seen before (most rows have a dozen fields, where a scan is faster than hashing).
const FIELDS_INDEXED_FROM: usize = 32;

/// The numeric fields of one JSON object, in file order, as Python's `json` reads an
/// object: a key given twice keeps its last value (the two are never averaged into one
/// epoch's value). At most `MAX_SERIES` names are kept: an object holds one field per
/// metric, and the names past that are counted, not held, so one object of millions of
/// keys costs what one of a few thousand does.
#[derive(Debug, Default)]
pub(super) struct Fields {
    values: Vec<(String, f64)>,
    index: HashMap<String, usize>,
    /// The first key given twice, and how many were.
    duplicate: Option<String>,
    duplicates: u64,
    /// Names past `MAX_SERIES`, not kept.
    dropped: u64,
    /// The first field that held a list, an object or a bool where a number would stand.
    pub unread: Option<String>,
}

impl Fields {
    pub fn clear(&mut self) {
        self.values.clear();
        self.index.clear();
        self.duplicate = None;
        self.duplicates = 0;
        self.dropped = 0;
        self.unread = None;
    }

    pub fn add(&mut self, key: String, value: f64) {
        if let Some(i) = self.position(&key) {
            self.values[i].1 = value;
            self.duplicates += 1;
            self.duplicate.get_or_insert(key);
            return;
        }
        if self.values.len() >= MAX_SERIES {
            self.dropped += 1;
            return;
        }
        if !self.index.is_empty() {
            self.index.insert(key.clone(), self.values.len());
        }
        self.values.push((key, value));
    }

    fn position(&mut self, key: &str) -> Option<usize> {
        if self.values.len() < FIELDS_INDEXED_FROM {
            return self.values.iter().position(|(k, _)| k == key);
        }
        if self.index.is_empty() {
            self.index = self
                .values
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.clone(), i))
                .collect();
        }
        self.index.get(key).copied()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, (String, f64)> {
        self.values.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Tells the builder what the object held that is not in `values`: keys given twice,
    /// names past the limit. `line` is the object's line when the file has one per line.
    pub fn report(&self, builder: &mut MetricsBuilder, line: Option<u64>) {
        if let Some(key) = &self.duplicate {
            builder.duplicate_key(key, self.duplicates, line);
        }
        builder.dropped_names += self.dropped;
    }
}

/// One object of values. Reused across JSON Lines rows so a long file allocates once.
#[derive(Debug, Default)]
pub(super) struct Row {
    pub epoch: Option<f64>,
    pub step: Option<f64>,
    pub validation: bool,
    pub values: Fields,
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
        for (name, value) in self.values.iter() {
            builder.push(&self.series_name(name), epoch, *value);
        }
    }

    /// The series a value named `name` in this row goes to.
    pub fn series_name<'a>(&self, name: &'a str) -> std::borrow::Cow<'a, str> {
        if self.validation && !is_validation_name(name) && !is_optimizer_value(name) {
            std::borrow::Cow::Owned(format!("val_{name}"))
        } else {
            std::borrow::Cow::Borrowed(name)
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
                    Scalar::Number(value) => row.values.add(key, value),
                    Scalar::Other if row.values.unread.is_none() => row.values.unread = Some(key),
                    // Text is a note, a path, an id or a setting (`"lr_scheduler":
                    // "StepLR"`), except under a loss's or an accuracy's own name: there
                    // it is a value someone quoted, or a broken one.
                    Scalar::Text(text) if is_core_metric(&key) => {
                        if let Some(value) = metric_text(&key, &text)? {
                            row.values.add(key, value);
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
    fn a_key_given_twice_keeps_its_last_value_however_many_fields() {
        for fields in [3, FIELDS_INDEXED_FROM + 5] {
            let mut f = Fields::default();
            for i in 0..fields {
                f.add(format!("m{i}"), i as f64);
            }
            f.add("m1".into(), 100.0);
            f.add("m2".into(), 200.0);
            f.add("m1".into(), 300.0);
            let got: Vec<(String, f64)> = f.iter().take(3).cloned().collect();
            assert_eq!(
                got,
                vec![
                    ("m0".into(), 0.0),
                    ("m1".into(), 300.0),
                    ("m2".into(), 200.0)
                ],
                "{fields} fields"
            );
            assert_eq!(f.iter().count(), fields);
            let mut b = MetricsBuilder::new();
            f.report(&mut b, Some(7));
            b.push("loss", 1, 1.0);
            let m = b
                .finish(Path::new("m.jsonl"), super::super::Format::JsonLines)
                .unwrap();
            assert_eq!(
                m.warnings,
                vec!["key \"m1\" is given twice in one object (line 7); kept the last value, as Python's json module does; 3 keys were given twice in all".to_string()]
            );
        }
    }

    #[test]
    fn an_object_of_more_fields_than_series_keeps_the_first_ones() {
        let mut f = Fields::default();
        for i in 0..MAX_SERIES + 3 {
            f.add(format!("m{i}"), 1.0);
        }
        assert_eq!(f.iter().count(), MAX_SERIES);
        let mut b = MetricsBuilder::new();
        f.report(&mut b, None);
        assert_eq!(b.dropped_names, 3);
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
