//! Reads a Hugging Face Trainer `trainer_state.json`: `log_history` rows of train values
//! (`{epoch, grad_norm, learning_rate, loss, step}`), eval values (`{epoch, eval_loss,
//! eval_<metric>, eval_runtime, …, step}`) and a final summary row (`{train_loss,
//! train_runtime, total_flos, …}`), beside the top-level `global_step`, `max_steps` and
//! `num_train_epochs`. The file is written with sorted keys, so those scalars may come
//! before or after `log_history`; the top-level object is streamed with a visitor and
//! `log_history` row by row, never held whole.
//!
//! Choices: a row's fractional epoch e (0.25 = a quarter through the first epoch) belongs
//! to epoch ceil(e), at least 1; train rows of one epoch are averaged. Runtime, throughput,
//! FLOP and token counters are not metrics, and the summary row's `train_loss` is the mean
//! over the whole run, not an epoch value, so it is skipped. Steps per epoch come from a
//! row logged exactly at an epoch's end (step / epoch), which stays right when `max_steps`
//! was set by hand; otherwise from `max_steps / num_train_epochs`.

use std::fmt;
use std::path::Path;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::MetricsBuilder;
use super::nonfinite::{self, Scalar};
use super::snapshot::{Fields, counter, epoch_from};
use crate::error::Result;

/// Suffixes of log fields that measure speed or cost, not the model.
const SKIPPED_SUFFIXES: &[&str] = &[
    "_runtime",
    "_per_second",
    "total_flos",
    "num_input_tokens_seen",
];
/// Fields only the summary row at the end of training has.
const SUMMARY_MARKERS: &[&str] = &["train_runtime", "total_flos"];
/// Relative gap within which the two estimates of steps per epoch are the same number
/// (logged epochs are rounded in older Trainer versions).
const STEPS_AGREEMENT: f64 = 0.01;
/// Slack when deciding that a logged epoch sits exactly at an epoch's end.
const WHOLE_EPOCH_SLACK: f64 = 1e-9;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut de = nonfinite::open_json(path)?;
    let mut state = State::default();
    TrainerState {
        builder: &mut *builder,
        state: &mut state,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| nonfinite::json_error(path, 1, e))?;
    builder.max_steps = state.max_steps;
    builder.planned_epochs = state
        .num_train_epochs
        .map(|e| e.ceil().min(f64::from(u32::MAX)) as u32);
    builder.steps_per_epoch = state.steps_per_epoch();
    Ok(())
}

/// The top-level numbers and what the rows taught about steps per epoch.
#[derive(Debug, Default)]
struct State {
    max_steps: Option<u64>,
    num_train_epochs: Option<f64>,
    /// step / epoch from the first row logged exactly at an epoch's end.
    observed_steps_per_epoch: Option<u64>,
    last_epoch: Option<u32>,
    /// One row's values, reused across rows.
    row: Fields,
}

impl State {
    fn steps_per_epoch(&self) -> Option<u64> {
        let quotient = match (self.max_steps, self.num_train_epochs) {
            (Some(steps), Some(epochs)) if epochs > 0.0 => {
                Some((steps as f64 / epochs).round() as u64).filter(|s| *s > 0)
            }
            _ => None,
        };
        match (quotient, self.observed_steps_per_epoch) {
            (Some(q), Some(o)) => {
                let gap = (q as f64 - o as f64).abs() / q as f64;
                Some(if gap <= STEPS_AGREEMENT { q } else { o })
            }
            (q, o) => q.or(o),
        }
    }
}

fn count(value: &Scalar) -> Option<u64> {
    value
        .number()
        .filter(|v| v.is_finite() && *v > 0.0 && v.fract() == 0.0)
        .map(|v| v as u64)
}

struct TrainerState<'a> {
    builder: &'a mut MetricsBuilder,
    state: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for TrainerState<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TrainerState<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a trainer_state.json object with a `log_history` list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "log_history" => map.next_value_seed(LogHistory {
                    builder: &mut *self.builder,
                    state: &mut *self.state,
                })?,
                "max_steps" => self.state.max_steps = count(&map.next_value::<Scalar>()?),
                "num_train_epochs" => {
                    self.state.num_train_epochs = map
                        .next_value::<Scalar>()?
                        .number()
                        .filter(|e| e.is_finite() && *e > 0.0);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct LogHistory<'a> {
    builder: &'a mut MetricsBuilder,
    state: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for LogHistory<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for LogHistory<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of logged rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(LogRow {
                builder: &mut *self.builder,
                state: &mut *self.state,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One `log_history` row, pushed as soon as it is read.
struct LogRow<'a> {
    builder: &'a mut MetricsBuilder,
    state: &'a mut State,
}

impl<'de> DeserializeSeed<'de> for LogRow<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogRow<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a log_history row such as {\"epoch\": 0.25, \"loss\": 0.69, \"step\": 10}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.state;
        state.row.clear();
        let mut logged_epoch = None;
        let mut step = None;
        let mut summary = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "epoch" {
                logged_epoch = counter(&key, map.next_value::<Scalar>()?)?;
            } else if key == "step" {
                step = count(&map.next_value::<Scalar>()?);
            } else if SKIPPED_SUFFIXES.iter().any(|s| key.ends_with(s)) {
                summary |= SUMMARY_MARKERS.contains(&key.as_str());
                map.next_value::<IgnoredAny>()?;
            } else if let Scalar::Number(v) = map.next_value::<Scalar>()? {
                state.row.add(key, v);
            }
        }
        let epoch = match logged_epoch {
            Some(e) => epoch_from(e, false),
            None => state.last_epoch.unwrap_or(1),
        };
        state.last_epoch = Some(epoch);
        if let (Some(e), Some(s), None) = (logged_epoch, step, state.observed_steps_per_epoch)
            && e >= 1.0
            && (e - e.round()).abs() < WHOLE_EPOCH_SLACK
        {
            let whole = e.round() as u64;
            if s % whole == 0 {
                state.observed_steps_per_epoch = Some(s / whole);
            }
        }
        state.row.report(self.builder, None);
        let mut pushed = false;
        for (name, value) in state.row.iter() {
            if summary && name == "train_loss" {
                continue;
            }
            self.builder.push(name, epoch, *value);
            pushed = true;
        }
        if pushed {
            self.builder.rows += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
// Losses at chance level (0.6931 = ln 2 and 2.3026 = ln 10, to the 4 decimals Keras and
// the HF Trainer print) are the logged data under test, not approximations of constants.
#[allow(clippy::approx_constant)]
mod tests {
    use crate::metrics::testing::{ScratchFile, example};
    use crate::metrics::{Canonical, Format, load_metrics};

    const SCRATCH: ScratchFile = ScratchFile {
        name: "trainer_state.json",
        format: Format::HfTrainerState,
    };

    #[test]
    fn reads_the_example_state() {
        let m = load_metrics(
            &example("configs/examples/formats/hf/trainer_state.json"),
            None,
        )
        .unwrap();
        assert_eq!(m.format, Format::HfTrainerState);
        assert_eq!(m.max_steps, Some(625));
        assert_eq!(m.planned_epochs, Some(5));
        assert_eq!(m.steps_per_epoch, Some(125));
        let loss = m.get(Canonical::Loss).unwrap();
        assert_eq!(loss.original, "loss");
        assert_eq!(loss.len(), 5);
        // epoch 1 is the mean of the five rows logged at epochs 0.2 … 1.0
        let first = loss.first().unwrap();
        assert_eq!(first.epoch, 1);
        assert!((first.value - (0.6931 + 0.6874 + 0.6702 + 0.6455 + 0.6198) / 5.0).abs() < 1e-12);
        let val = m.get(Canonical::ValLoss).unwrap();
        assert_eq!(val.len(), 5);
        assert_eq!(val.last().unwrap().value, 0.4012335538864136);
        assert_eq!(
            m.get(Canonical::ValAccuracy).unwrap().original,
            "eval_accuracy"
        );
        // a NaN grad norm (an fp16 overflow step) makes its epoch NaN
        let grad = m.get(Canonical::GradNorm).unwrap();
        assert_eq!(grad.first_nonfinite().unwrap().epoch, 3);
        assert_eq!(grad.nonfinite_epochs(), 1);
        // the summary row's whole-run train_loss and the runtime fields are not series
        for skipped in ["train_loss", "eval_runtime", "total_flos", "train_runtime"] {
            assert!(m.series.iter().all(|s| s.original != skipped), "{skipped}");
        }
        assert_eq!(m.rows, 30);
    }

    #[test]
    fn top_level_numbers_may_come_before_or_after_the_rows() {
        let m = SCRATCH.load(
            r#"{"num_train_epochs": 3, "max_steps": 300, "log_history": [
                 {"epoch": 0.5, "loss": 2.0, "step": 50},
                 {"epoch": 1.0, "eval_loss": 1.9, "step": 100}], "global_step": 100}"#,
        );
        assert_eq!(
            (m.max_steps, m.planned_epochs, m.steps_per_epoch),
            (Some(300), Some(3), Some(100))
        );
        let m = SCRATCH.load(
            r#"{"log_history": [{"epoch": 0.25, "loss": 2.0, "step": 10}], "max_steps": 80, "num_train_epochs": 2}"#,
        );
        assert_eq!(m.steps_per_epoch, Some(40));
    }

    #[test]
    fn an_epoch_end_row_beats_a_hand_set_max_steps() {
        // max_steps=1000 with 300 steps per epoch: the Trainer plans ceil(1000/300) = 4
        // epochs, and 1000/4 would be wrong.
        let m = SCRATCH.load(
            r#"{"log_history": [{"epoch": 1.0, "eval_loss": 1.0, "step": 300}],
                "max_steps": 1000, "num_train_epochs": 4}"#,
        );
        assert_eq!(m.steps_per_epoch, Some(300));
    }

    #[test]
    fn refuses_what_is_not_a_trainer_state() {
        let e = SCRATCH.error(r#"{"log_history": []}"#).to_string();
        assert!(e.contains("no metric values found"), "{e}");
        let e = SCRATCH
            .error("{\n  \"log_history\": [\n    {\"epoch\": 1.0, \"loss\": }\n  ]\n}")
            .to_string();
        assert!(e.contains("trainer_state.json:3:28: expected value"), "{e}");
        let e = SCRATCH.error(r#"{"log_history": {"loss": 1}}"#).to_string();
        assert!(e.contains("expected a list of logged rows"), "{e}");
    }
}
