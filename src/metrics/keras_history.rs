//! Reads Keras `history.history` dumped as JSON: `{"loss": [...], "val_loss": [...],
//! "learning_rate": [...]}`, element i being epoch i+1. Also reads the fuller dump some
//! scripts write, `{"history": {...}, "params": {"epochs": 10, "steps": 3038}, "epoch":
//! [0, 1, ...]}`, taking the planned epochs and steps per epoch from `params`. Lists are
//! streamed element by element (a serde visitor, never a `Vec`), so a long run costs what a
//! short one does. `null` is no value for that epoch; `NaN`/`Infinity` are values; text in
//! a metric's list (`"loss": [0.5, "two"]`) is an error at its place.
//!
//! Also the records shape, a list of per-epoch objects (`[{"epoch": 1, "loss": 0.157,
//! "val_loss": 0.173}, …]`, as `pd.DataFrame(history.history).to_json(orient="records")`
//! or a hand-written callback dumps it): each record is read as a JSON Lines row is, with
//! the same epoch rules (an `epoch` field, else the position), so records appended by
//! several `fit()` calls start another run where the epoch counts down.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::jsonl::EpochCounter;
use super::nonfinite::{self, Scalar};
use super::snapshot::{Row, RowSeed, is_core_metric};
use super::{MAX_SERIES, MetricsBuilder};
use crate::error::Result;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut de = nonfinite::open_json(path)?;
    let mut lengths = HashMap::new();
    History {
        builder: &mut *builder,
        lengths: &mut lengths,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| nonfinite::json_error(path, 1, e))?;
    builder.rows += lengths.values().copied().max().unwrap_or(0);
    Ok(())
}

/// The top-level object (or the nested `history` one): metric name → list per epoch.
struct History<'a> {
    builder: &'a mut MetricsBuilder,
    /// The length of each metric's list (the number of epochs logged is the longest), and
    /// the names seen: a name given twice keeps its last list, as Python's `json` reads it,
    /// never the two lists joined into one series.
    lengths: &'a mut HashMap<String, u64>,
}

impl<'de> DeserializeSeed<'de> for History<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for History<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a Keras history object such as {\"loss\": [0.69, 0.52], \"val_loss\": [0.71, 0.60]}, or a list of per-epoch records",
        )
    }

    /// The records shape: one object per epoch.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = Row::default();
        let mut epochs = EpochCounter::default();
        loop {
            row.clear();
            if seq.next_element_seed(RowSeed(&mut row))?.is_none() {
                return Ok(());
            }
            row.values.report(&mut *self.builder, None);
            if let Some(epoch) = epochs.epoch_of(&row, &mut *self.builder) {
                row.push_into(&mut *self.builder, epoch);
            }
            self.builder.rows += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "history" => map.next_value_seed(History {
                    builder: &mut *self.builder,
                    lengths: &mut *self.lengths,
                })?,
                "params" => map.next_value_seed(Params(&mut *self.builder))?,
                // `History.epoch` lists the 0-based epoch indices, which the positions
                // in each list already give.
                "epoch" | "epochs" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    let again = self.lengths.contains_key(&key);
                    if again {
                        self.builder.replace_series(&key);
                        self.builder.duplicate_key(&key, 1, None);
                    }
                    let n = map.next_value_seed(Column {
                        name: &key,
                        builder: &mut *self.builder,
                    })?;
                    // Names past the builder's limit are not series; their lengths need not
                    // be kept either.
                    if again || self.lengths.len() < MAX_SERIES {
                        self.lengths.insert(key, n);
                    }
                }
            }
        }
        Ok(())
    }
}

/// One metric's list of per-epoch values; anything but a list is not a history column and
/// is skipped. Returns the list's length.
struct Column<'a> {
    name: &'a str,
    builder: &'a mut MetricsBuilder,
}

impl<'de> DeserializeSeed<'de> for Column<'_> {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Column<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of per-epoch values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut epoch = 0u32;
        // Asked once per list, and only when a list holds text.
        let mut is_metric: Option<bool> = None;
        while let Some(value) = seq.next_element::<Scalar>()? {
            epoch = epoch.saturating_add(1);
            match value {
                Scalar::Number(v) => self.builder.push(self.name, epoch, v),
                Scalar::Text(text)
                    if !nonfinite::is_no_value(&text)
                        && *is_metric.get_or_insert_with(|| is_core_metric(self.name)) =>
                {
                    // A quoted number is the number; other text is a broken value.
                    let Some(v) = nonfinite::parse_number(&text) else {
                        return Err(de::Error::custom(format_args!(
                            "\"{}\" epoch {epoch}: {text:?} is not a number",
                            self.name
                        )));
                    };
                    self.builder.push(self.name, epoch, v);
                }
                _ => {}
            }
        }
        Ok(u64::from(epoch))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<u64, E> {
        Ok(0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(0)
    }
}

/// `History.params`: `epochs` planned and `steps` per epoch.
struct Params<'a>(&'a mut MetricsBuilder);

impl<'de> DeserializeSeed<'de> for Params<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Params<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the `params` object of a Keras History")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Scalar>()?.number();
            let count = value.filter(|v| v.is_finite() && *v >= 1.0 && v.fract() == 0.0);
            match (key.as_str(), count) {
                ("epochs", Some(n)) => {
                    self.0.planned_epochs = Some(n.min(f64::from(u32::MAX)) as u32)
                }
                ("steps", Some(n)) => self.0.steps_per_epoch = Some(n as u64),
                _ => {}
            }
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::testing::{ScratchFile, example, values};
    use crate::metrics::{Canonical, Format, load_metrics};

    const SCRATCH: ScratchFile = ScratchFile {
        name: "history.json",
        format: Format::KerasHistory,
    };

    #[test]
    fn reads_the_example_up_to_its_divergence() {
        let m = load_metrics(
            &example("configs/examples/formats/keras_history.json"),
            None,
        )
        .unwrap();
        assert_eq!(m.format, Format::KerasHistory);
        assert_eq!(m.rows, 7);
        let loss = m.get(Canonical::Loss).unwrap();
        assert_eq!(loss.len(), 7);
        assert_eq!(loss.first().unwrap().value, 0.8912445306777954);
        assert_eq!(loss.min().unwrap().epoch, 3);
        assert_eq!(loss.first_nonfinite().unwrap().epoch, 6);
        assert!(loss.last().unwrap().value.is_nan());
        let val = m.get(Canonical::ValLoss).unwrap();
        assert_eq!(val.at(5), Some(f64::INFINITY));
        assert_eq!(m.get(Canonical::Lr).unwrap().original, "learning_rate");
        assert_eq!(m.get(Canonical::Accuracy).unwrap().len(), 7);
    }

    #[test]
    fn null_is_no_value_and_positions_are_epochs() {
        let m = SCRATCH.load(r#"{"loss": [1.0, 0.8, 0.6], "val_loss": [null, 0.9, null]}"#);
        let val = m.get(Canonical::ValLoss).unwrap();
        assert_eq!(val.len(), 1);
        assert_eq!(val.last().unwrap().epoch, 2);
        assert_eq!(m.get(Canonical::Loss).unwrap().last().unwrap().epoch, 3);
        assert_eq!(m.rows, 3);
    }

    #[test]
    fn reads_the_fuller_dump_with_params() {
        let m = SCRATCH.load(
            r#"{"epoch": [0, 1], "params": {"verbose": 1, "epochs": 10, "steps": 3038},
                "history": {"loss": [0.6935, 0.6933], "val_accuracy": [0.5051, 0.5048]}}"#,
        );
        assert_eq!(m.planned_epochs, Some(10));
        assert_eq!(m.steps_per_epoch, Some(3038));
        assert_eq!(
            m.get(Canonical::ValAccuracy).unwrap().last().unwrap().value,
            0.5048
        );
        assert_eq!(m.last_epoch(), Some(2));
    }

    #[test]
    fn refuses_files_without_lists_and_broken_json() {
        let e = SCRATCH
            .error(r#"{"model": "lstm", "epochs": 5}"#)
            .to_string();
        assert!(
            e.contains("no metric values found (read as Keras history JSON)"),
            "{e}"
        );
        let e = SCRATCH
            .error("{\"loss\": [0.5,\n 0.4,\n 0.3 0.2]}")
            .to_string();
        assert!(e.contains("history.json:3:6: expected `,` or `]`"), "{e}");
        let e = SCRATCH.error("[0.5, 0.4]").to_string();
        assert!(e.contains("history.json:1:5: invalid type: floating point `0.5`, expected a JSON object of metric values"), "{e}");
        let e = SCRATCH.error("\"loss\"").to_string();
        assert!(e.contains("expected a Keras history object"), "{e}");
    }

    #[test]
    fn reads_a_list_of_per_epoch_records() {
        let text = "[\n  {\n    \"epoch\": 1,\n    \"loss\": 0.1569,\n    \"accuracy\": 0.9290,\n    \"val_loss\": 0.1734\n  },\n  {\n    \"epoch\": 2,\n    \"loss\": 0.0734,\n    \"accuracy\": 0.9681,\n    \"val_loss\": 0.0489\n  }\n]";
        assert_eq!(
            crate::metrics::detect_from("model_history.json", text.as_bytes()),
            Some(Format::KerasHistory)
        );
        let m = SCRATCH.load(text);
        assert_eq!(m.rows, 2);
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 0.1734), (2, 0.0489)]
        );
        assert_eq!(values(&m, Canonical::Accuracy)[1], (2, 0.9681));
        // without an epoch field the position counts, from 1
        let m = SCRATCH.load(r#"[{"loss": 1.0}, {"loss": 0.5}, {"loss": 0.25}]"#);
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 1.0), (2, 0.5), (3, 0.25)]
        );
        // records of two fit() calls: the latest run
        let m = SCRATCH.load(
            r#"[{"epoch": 0, "loss": 1.0}, {"epoch": 1, "loss": 0.5}, {"epoch": 0, "loss": 2.0}]"#,
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 2.0)]);
        assert_eq!(m.phases.as_ref().unwrap().count, 2);
    }

    #[test]
    fn text_in_a_metric_list_is_an_error_at_its_place() {
        let e = SCRATCH
            .error("{\"loss\": [0.5,\n \"two\"], \"val_loss\": [1, 2]}")
            .to_string();
        assert!(
            e.contains("history.json:2:7: \"loss\" epoch 2: \"two\" is not a number"),
            "{e}"
        );
        // quoted numbers and spellings of none read; text lists under other names are
        // not metrics
        let m = SCRATCH.load(r#"{"loss": ["0.5", "NA", 0.25], "classes": ["cat", "dog"]}"#);
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.5), (3, 0.25)]);
        let e = SCRATCH
            .error(r#"[{"epoch": 1, "loss": 0.5}, {"epoch": "x", "loss": 0.4}]"#)
            .to_string();
        assert!(e.contains("\"epoch\": \"x\" is not an epoch number"), "{e}");
    }

    #[test]
    fn a_multi_head_history_reads_the_total_as_the_loss() {
        // a multi-output model: the total beside each output's loss
        let m = SCRATCH.load(
            r#"{"cls_loss": [1.2, 0.9], "loss": [2.0, 1.5], "reg_loss": [0.8, 0.6],
                "val_cls_loss": [1.3, 1.0], "val_loss": [2.1, 1.7], "val_reg_loss": [0.8, 0.7]}"#,
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 2.0), (2, 1.5)]);
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 2.1), (2, 1.7)]);
        assert!(
            m.phases.is_none() && m.warnings.is_empty(),
            "{:?}",
            m.warnings
        );
        // heads and a total under split prefixes
        let m = SCRATCH.load(
            r#"{"train_total_loss": [2.0, 1.5], "train_seg_loss": [1.2, 0.9], "train_cls_loss": [0.8, 0.6],
                "val_total_loss": [2.1, 1.7], "val_seg_loss": [1.3, 1.0], "val_cls_loss": [0.8, 0.7]}"#,
        );
        assert_eq!(m.get(Canonical::Loss).unwrap().original, "train_total_loss");
        assert_eq!(
            m.get(Canonical::ValLoss).unwrap().original,
            "val_total_loss"
        );
        // two heads and no total: neither is the loss, and that is said
        let m = SCRATCH.load(
            r#"{"train_cls_loss": [1.2, 0.9], "val_cls_loss": [1.3, 1.0],
                "train_reg_loss": [0.8, 0.6], "val_reg_loss": [0.8, 0.7], "stop_epoch_cls": 0}"#,
        );
        assert!(m.get(Canonical::Loss).is_none() && m.get(Canonical::ValLoss).is_none());
        assert_eq!(
            m.warnings,
            vec![
                "losses of 2 heads or parts (`train_cls_loss`, `train_reg_loss`) and no total loss beside them: none is read as the training loss"
            ]
        );
    }
}
