//! Reads JSON Lines: one object of values per line, as custom training loops write with
//! `json.dumps(row)` (`{"epoch": 3, "loss": 0.5, "val_loss": 0.6}`), possibly with a
//! `phase`/`split` field as in the snapshot (train and val rows apart). Each line is read
//! as a snapshot `Row`; this module owns how rows map to epochs.
//!
//! Choices: an `epoch` field is 1-based unless the first one seen is 0 (then the file
//! counts from 0); fractional epochs fall in the epoch they belong to. A file whose rows
//! carry no `epoch` counts each row as the next epoch (1, 2, 3 …), except that rows with
//! the same `step` as the row before belong to the same epoch (a train row and a val row
//! logged at one step). Once a file has given epochs, a row without one belongs to the
//! last epoch seen. An epoch (or, without epochs, a step) that goes back starts another
//! run or replays a resume (`RunCounter`). Blank lines are skipped; a malformed line, or
//! an `epoch` or a loss that is text, is an error at `file:line:column`.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use memchr::memchr2;
use serde::de::DeserializeSeed;

use super::nonfinite::{self, NonFinite};
use super::snapshot::{Row, RowSeed, epoch_from};
use super::{Count, MetricsBuilder, RunCounter, text};
use crate::error::{Error, Result};

/// Longest line read: a row of metrics is a few hundred bytes, so a line past this is a
/// file without line breaks, and reading it whole would hold the file in memory.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes read per refill: a log of millions of lines is read in few system calls, and
/// the buffer stays the same size whatever the file's length.
const READ_BUFFER_BYTES: usize = 256 * 1024;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, text::open(path)?);
    let mut line = Vec::new();
    let mut rewritten = Vec::new();
    let mut row = Row::default();
    let mut epochs = EpochCounter::default();
    let mut skipped = SkippedRows::default();
    let mut ids = SeriesIds::default();
    let mut line_no = 0usize;
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::read(path, &e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if n as u64 > MAX_LINE_BYTES {
            return Err(Error::input(
                path,
                format!("line {line_no} is longer than {MAX_LINE_BYTES} bytes; not JSON Lines"),
            ));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        // A line without `N` or `I` holds no `NaN`/`Infinity` token to quote, and one no
        // longer than the string limit holds no string past it: the adapter would pass
        // it through unchanged, so it is read as it is.
        let json: &[u8] = if memchr2(b'N', b'I', &line).is_none()
            && line.len() as u64 <= nonfinite::MAX_STRING_BYTES
        {
            &line
        } else {
            rewritten.clear();
            NonFinite::new(&line[..])
                .read_to_end(&mut rewritten)
                .map_err(|e| match crate::input::read_error(path, &e) {
                    Error::Input { message, .. } => Error::at(path, line_no as u64, None, message),
                    other => other,
                })?;
            &rewritten
        };
        row.clear();
        let mut de = serde_json::Deserializer::from_slice(json);
        RowSeed(&mut row)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|e| nonfinite::json_error(path, line_no, e))?;
        row.values.report(builder, Some(line_no as u64));
        if row.values.is_empty() {
            skipped.add(line_no, row.values.unread.as_deref());
        }
        if let Some(epoch) = epochs.epoch_of(&row, builder) {
            ids.push(&row, builder, epoch);
        }
        builder.rows += 1;
    }
    if let Some(warning) = skipped.warning() {
        builder.warnings.push(warning);
    }
    Ok(())
}

/// Names whose series handle is remembered: a JSON Lines log repeats the same few keys
/// on every line (tens of metrics at most), and a log with more keys than this still
/// reads right, the ones past it found by name.
const REMEMBERED_NAMES: usize = 256;

/// Each (phase, key) pair's series handle, so a row's values go to their series without
/// working out the series name (`val_` for a validation row) and hashing it on every line.
#[derive(Debug, Default)]
struct SeriesIds {
    known: Vec<(bool, String, usize)>,
}

impl SeriesIds {
    /// `Row::push_into`, through the remembered handles.
    fn push(&mut self, row: &Row, builder: &mut MetricsBuilder, epoch: u32) {
        for (name, value) in row.values.iter() {
            let known = self
                .known
                .iter()
                .find(|(validation, known, _)| *validation == row.validation && known == name);
            let id = match known {
                Some(&(_, _, id)) => id,
                None => {
                    let id = builder.series_id(&row.series_name(name));
                    // A name past `MAX_SERIES` has no series: asked for again each time, so
                    // that each of its values is counted as left out, as `push` counts them.
                    if id != usize::MAX && self.known.len() < REMEMBERED_NAMES {
                        self.known.push((row.validation, name.clone(), id));
                    }
                    id
                }
            };
            builder.push_id(id, epoch, *value);
        }
    }
}

/// Lines named in the warning about rows that gave no value.
const SKIPPED_LINES_NAMED: usize = 5;

/// Rows that gave no metric value (nothing but bookkeeping, or values that are lists,
/// objects or deep nestings rather than numbers): they add nothing, and the user is told
/// which they were rather than having them vanish.
#[derive(Debug, Default)]
struct SkippedRows {
    count: u64,
    lines: Vec<usize>,
    /// The first such row that held a field this reader could not take as a number.
    why: Option<(usize, String)>,
}

impl SkippedRows {
    fn add(&mut self, line: usize, unread: Option<&str>) {
        self.count += 1;
        if self.lines.len() < SKIPPED_LINES_NAMED {
            self.lines.push(line);
        }
        if let (None, Some(key)) = (&self.why, unread) {
            self.why = Some((line, key.to_string()));
        }
    }

    fn warning(&self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let lines: Vec<String> = self.lines.iter().map(usize::to_string).collect();
        let more = if self.count > self.lines.len() as u64 {
            ", …"
        } else {
            ""
        };
        let (rows, lines_word) = if self.count == 1 {
            ("1 row gave".to_string(), "line")
        } else {
            (format!("{} rows gave", self.count), "lines")
        };
        let why = match &self.why {
            Some((line, key)) => format!(
                "; on line {line}, {:?} holds a list, an object or a bool, not a number",
                crate::num::truncate(key, 60)
            ),
            None => String::new(),
        };
        Some(format!(
            "{rows} no metric value and added nothing ({lines_word} {}{more}){why}",
            lines.join(", ")
        ))
    }
}

/// Assigns each row its 1-based epoch (the rules in the module comment), and sees where
/// the counter goes back (`RunCounter`): the logged epoch, or in a file without epochs the
/// step. `None` for a row a resume logs again, which is skipped.
#[derive(Debug, Default)]
pub(super) struct EpochCounter {
    zero_based: Option<bool>,
    last_epoch: Option<u32>,
    last_step: Option<f64>,
    runs: RunCounter,
}

impl EpochCounter {
    pub fn epoch_of(&mut self, row: &Row, builder: &mut MetricsBuilder) -> Option<u32> {
        let epoch = match row.epoch {
            Some(logged) => {
                if self.runs.see(logged, false, builder) == Count::Replays {
                    return None;
                }
                let zero_based = *self.zero_based.get_or_insert(logged == 0.0);
                epoch_from(logged, zero_based)
            }
            None if self.zero_based.is_some() => self.last_epoch.unwrap_or(1),
            None => {
                let count = row
                    .step
                    .map_or(Count::Goes, |step| self.runs.see(step, false, builder));
                match count {
                    Count::Replays => return None,
                    Count::Restarts => 1,
                    Count::Goes if row.step.is_some() && row.step == self.last_step => {
                        self.last_epoch.unwrap_or(1)
                    }
                    Count::Goes => self.last_epoch.map_or(1, |e| e.saturating_add(1)),
                }
            }
        };
        self.last_epoch = Some(epoch);
        self.last_step = row.step;
        Some(epoch)
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::testing::{ScratchFile, example, values};
    use crate::metrics::{Canonical, Format, load_metrics};

    const SCRATCH: ScratchFile = ScratchFile {
        name: "m.jsonl",
        format: Format::JsonLines,
    };

    #[test]
    fn reads_the_example_with_train_and_val_rows_apart() {
        let m = load_metrics(&example("configs/examples/formats/metrics.jsonl"), None).unwrap();
        assert_eq!(m.format, Format::JsonLines);
        assert_eq!(m.rows, 12);
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss.len(), 6);
        assert_eq!(loss[0], (1, 1.8342));
        assert_eq!(loss[5], (6, 0.6217));
        let val = values(&m, Canonical::ValLoss);
        assert_eq!(val.len(), 6);
        assert_eq!(val[5], (6, 0.9124));
        assert_eq!(
            m.get(Canonical::ValAccuracy).unwrap().original,
            "val_accuracy"
        );
        assert_eq!(values(&m, Canonical::Lr)[0], (1, 0.001));
    }

    #[test]
    fn zero_based_epochs_are_shifted() {
        let m = SCRATCH.load("{\"epoch\": 0, \"loss\": 1.0}\n{\"epoch\": 1, \"loss\": 0.5}\n");
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 1.0), (2, 0.5)]);
        let m = SCRATCH.load("{\"epoch\": 1, \"loss\": 1.0}\n{\"epoch\": 2, \"loss\": 0.5}\n");
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 1.0), (2, 0.5)]);
    }

    #[test]
    fn rows_without_epochs_are_consecutive_epochs_joined_by_step() {
        let m = SCRATCH.load(
            "{\"step\": 100, \"loss\": 1.0}\r\n\r\n{\"step\": 100, \"split\": \"val\", \"loss\": 1.2}\r\n{\"step\": 200, \"loss\": NaN}\r\n",
        );
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss[0], (1, 1.0));
        assert_eq!(loss[1].0, 2);
        assert!(loss[1].1.is_nan());
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 1.2)]);
        let m = SCRATCH.load("{\"loss\": 3}\n{\"loss\": 2}\n{\"loss\": 1}");
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 3.0), (2, 2.0), (3, 1.0)]
        );
    }

    #[test]
    fn a_malformed_line_names_its_line_and_column() {
        let e = SCRATCH.error("{\"epoch\": 1, \"loss\": 1.0}\n\n{\"epoch\": 2, \"loss\": }\n");
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(text.contains("m.jsonl:3:22: expected value"), "{text}");
        let e = SCRATCH.error("{\"a\": \"x\"}\n").to_string();
        assert!(e.contains("no metric values found"), "{e}");
    }

    #[test]
    fn appended_runs_restart_the_epoch_and_the_latest_is_judged() {
        // As chip-ood's metrics.jsonl: three runs appended, each from epoch 1.
        let m = SCRATCH.load(
            "{\"epoch\": 1, \"train_loss\": 0.0, \"train_acc\": 0.16, \"test_acc\": 0.09375}\n\
             {\"epoch\": 2, \"train_loss\": 0.0, \"train_acc\": 0.12, \"test_acc\": 0.35}\n\
             {\"epoch\": 3, \"train_loss\": 0.0, \"train_acc\": 0.11, \"test_acc\": 0.23}\n\
             {\"epoch\": 1, \"train_loss\": 0.0, \"train_acc\": 0.16, \"test_acc\": 0.09375}\n\
             {\"epoch\": 2, \"train_loss\": 0.0, \"train_acc\": 0.12, \"test_acc\": 0.35}\n\
             {\"epoch\": 1, \"train_loss\": 2.05, \"train_acc\": 0.10, \"test_acc\": 0.09375}\n\
             {\"epoch\": 2, \"train_loss\": 2.02, \"train_acc\": 0.15, \"test_acc\": 0.30}\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 2.05), (2, 2.02)]);
        let p = m.phases.as_ref().unwrap();
        assert_eq!(
            (p.count, p.latest, p.earlier.clone()),
            (3, (1, 2), vec![(1, 3), (1, 2)])
        );
        assert_eq!(
            m.warnings,
            vec![
                "2 earlier runs in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}2)"
            ]
        );
        assert_eq!(m.rows, 7);
    }

    #[test]
    fn train_and_val_rows_of_one_epoch_are_not_a_restart() {
        let m = SCRATCH.load(
            "{\"epoch\": 1, \"loss\": 1.0}\n{\"epoch\": 1, \"phase\": \"val\", \"loss\": 1.1}\n\
             {\"epoch\": 2, \"loss\": 0.9}\n{\"epoch\": 2, \"phase\": \"val\", \"loss\": 1.0}\n",
        );
        assert!(m.phases.is_none() && m.warnings.is_empty());
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 1.1), (2, 1.0)]);
    }

    #[test]
    fn steps_that_go_back_restart_or_replay() {
        // Back to the first step: a new run; back to the middle: a resume replaying steps
        // (slm_training's metrics.jsonl), whose rows are skipped.
        let m = SCRATCH.load(
            "{\"step\": 20, \"loss\": 8.56}\n{\"step\": 40, \"loss\": 7.9}\n\
             {\"step\": 20, \"loss\": 8.55}\n{\"step\": 40, \"loss\": 7.8}\n{\"step\": 60, \"loss\": 7.0}\n\
             {\"step\": 40, \"loss\": 7.85}\n{\"step\": 60, \"loss\": 7.1}\n{\"step\": 80, \"loss\": 6.5}\n",
        );
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 8.55), (2, 7.8), (3, 7.0), (4, 6.5)]
        );
        assert_eq!(m.phases.as_ref().unwrap().earlier, vec![(1, 2)]);
        assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
        assert!(m.warnings[1].starts_with("2 rows logged again"));
    }

    #[test]
    fn an_epoch_that_is_not_a_number_names_its_line() {
        let e = SCRATCH
            .error("{\"loss\": 0.5, \"epoch\": 1}\n{\"loss\": \"NaN\", \"epoch\": \"two\"}\n");
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.ends_with("m.jsonl:2:31: \"epoch\": \"two\" is not an epoch number"),
            "{text}"
        );
    }
}
