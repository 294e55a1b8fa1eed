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
    let mut shapes = FastRows::default();
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
        if !shapes.read(json, &mut row) {
            row.clear();
            let mut de = serde_json::Deserializer::from_slice(json);
            RowSeed(&mut row)
                .deserialize(&mut de)
                .and_then(|()| de.end())
                .map_err(|e| nonfinite::json_error(path, line_no, e))?;
        }
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

/// Keys (and key–text pairs) whose effect on a row is remembered; past this, lines with
/// a new one are read by serde_json.
const REMEMBERED_FIELDS: usize = 256;

/// What a field does to a row, learned by reading a one-field object through `RowSeed`
/// (so the rules stay in one place, `snapshot`), then remembered by key.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Effect {
    Epoch,
    Step,
    Value,
    /// Sets the row's phase: validation or not.
    Phase(bool),
    Nothing,
}

/// The fast road through a plain JSON Lines row: an object whose keys are ASCII without
/// escapes and whose values are numbers or ASCII strings without escapes, read by one
/// walk over its bytes, with no key or value allocated but the row's own names. Anything
/// else (a `null`, a bool, a list, an escape, a number serde_json would read another
/// way, a key whose effect is not one of `Effect`'s) is left to serde_json: `read` says
/// false and the row is read again from scratch, so errors are worded as before.
#[derive(Debug, Default)]
struct FastRows {
    numbers: Vec<(String, Effect)>,
    texts: Vec<(String, String, Effect)>,
    probe: Vec<u8>,
}

impl FastRows {
    /// Reads `line` into `row` (cleared); false when serde_json must read it.
    fn read(&mut self, line: &[u8], row: &mut Row) -> bool {
        // One check of the whole line (ASCII a word at a time) rather than one per key.
        let Ok(text) = std::str::from_utf8(line) else {
            return false;
        };
        plain_object(text, |key, at| {
            if line.get(at) == Some(&b'"') {
                let (value, next) = plain_string(text, at)?;
                match self.text_effect(key, value)? {
                    Effect::Phase(validation) => row.validation = validation,
                    Effect::Nothing => {}
                    _ => return None,
                }
                return Some(next);
            }
            let (value, next) = number(line, at)?;
            match self.number_effect(key)? {
                Effect::Epoch => row.epoch = Some(value),
                Effect::Step => row.step = Some(value),
                Effect::Value => row.values.add(key.to_string(), value),
                Effect::Nothing => {}
                Effect::Phase(_) => return None,
            }
            Some(next)
        })
    }

    /// The effect of a number under `key`.
    fn number_effect(&mut self, key: &str) -> Option<Effect> {
        if let Some((_, effect)) = self.numbers.iter().find(|(k, _)| k == key) {
            return Some(*effect);
        }
        if self.numbers.len() >= REMEMBERED_FIELDS {
            return None;
        }
        let row = self.probe(key, "2")?;
        let effect = if row.epoch == Some(2.0) && row.step.is_none() && row.values.is_empty() {
            Effect::Epoch
        } else if row.step == Some(2.0) && row.epoch.is_none() && row.values.is_empty() {
            Effect::Step
        } else if row.epoch.is_none() && row.step.is_none() {
            match row.values.iter().as_slice() {
                [] => Effect::Nothing,
                [(k, v)] if k == key && *v == 2.0 => Effect::Value,
                _ => return None,
            }
        } else {
            return None;
        };
        if row.values.unread.is_some() || row.validation {
            return None;
        }
        self.numbers.push((key.to_string(), effect));
        Some(effect)
    }

    /// The effect of the text `text` under `key`.
    fn text_effect(&mut self, key: &str, text: &str) -> Option<Effect> {
        if let Some((_, _, effect)) = self.texts.iter().find(|(k, t, _)| k == key && t == text) {
            return Some(*effect);
        }
        if self.texts.len() >= REMEMBERED_FIELDS {
            return None;
        }
        let quoted = format!("\"{text}\"");
        let row = self.probe(key, &quoted)?;
        let untouched = row.epoch.is_none()
            && row.step.is_none()
            && row.values.is_empty()
            && row.values.unread.is_none();
        if !untouched {
            return None;
        }
        // A phase key sets the phase either way; any other leaves it as it was, which a
        // second read over a row already marked validation tells apart.
        let effect = if row.validation {
            Effect::Phase(true)
        } else {
            let mut marked = Row {
                validation: true,
                ..Row::default()
            };
            self.probe_into(key, &quoted, &mut marked)?;
            if marked.validation {
                Effect::Nothing
            } else {
                Effect::Phase(false)
            }
        };
        self.texts.push((key.to_string(), text.to_string(), effect));
        Some(effect)
    }

    /// `{"key": value}` read by `RowSeed` into a fresh row; `None` if it is an error.
    fn probe(&mut self, key: &str, value: &str) -> Option<Row> {
        let mut row = Row::default();
        self.probe_into(key, value, &mut row)?;
        Some(row)
    }

    fn probe_into(&mut self, key: &str, value: &str, row: &mut Row) -> Option<()> {
        self.probe.clear();
        self.probe
            .extend_from_slice(format!("{{\"{key}\": {value}}}").as_bytes());
        let mut de = serde_json::Deserializer::from_slice(&self.probe);
        RowSeed(row)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .ok()
    }
}

/// Walks a one-line JSON object of plain keys (`plain_string`): `field(key, at)` reads the
/// value that starts at `at` and says where it ends, or `None` to leave the row to
/// serde_json. True when the object is whole and nothing but space follows it.
pub(super) fn plain_object<'a>(
    text: &'a str,
    mut field: impl FnMut(&'a str, usize) -> Option<usize>,
) -> bool {
    let line = text.as_bytes();
    let mut at = skip_space(line, 0);
    if line.get(at) != Some(&b'{') {
        return false;
    }
    at = skip_space(line, at + 1);
    if line.get(at) != Some(&b'}') {
        loop {
            let Some((key, next)) = plain_string(text, at) else {
                return false;
            };
            at = skip_space(line, next);
            if line.get(at) != Some(&b':') {
                return false;
            }
            let Some(end) = field(key, skip_space(line, at + 1)) else {
                return false;
            };
            at = skip_space(line, end);
            match line.get(at) {
                Some(b',') => at = skip_space(line, at + 1),
                Some(b'}') => break,
                _ => return false,
            }
        }
    }
    skip_space(line, at + 1) == line.len()
}

/// The index of the first byte at or after `at` that is not JSON whitespace.
pub(super) fn skip_space(line: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = line.get(at) {
        at += 1;
    }
    at
}

/// A string at `at` of printable ASCII without escapes, and the index after its closing
/// quote. (Strings are a few bytes: a loop beats `memchr`'s set-up.)
pub(super) fn plain_string(text: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let mut end = start;
    loop {
        match *bytes.get(end)? {
            b'"' => return Some((&text[start..end], end + 1)),
            b'\\' => return None,
            0x20..0x7f => end += 1,
            _ => return None,
        }
    }
}

/// A JSON number at `at` read as serde_json reads it (an integer exactly as `u64` or
/// `i64` then converted, a decimal correctly rounded), and the index after it; `None`
/// for anything else, or one serde_json would read another way (an integer past 64 bits,
/// a decimal past `f64`'s range).
pub(super) fn number(line: &[u8], at: usize) -> Option<(f64, usize)> {
    let mut i = at;
    let negative = line.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let digits = |mut i: usize| {
        while line.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let int_start = i;
    match line.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i),
        _ => return None,
    }
    let int_end = i;
    let mut decimal = false;
    if line.get(i) == Some(&b'.') {
        let end = digits(i + 1);
        if end == i + 1 {
            return None;
        }
        i = end;
        decimal = true;
    }
    if let Some(b'e' | b'E') = line.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = line.get(i) {
            i += 1;
        }
        let end = digits(i);
        if end == i {
            return None;
        }
        i = end;
        decimal = true;
    }
    let value = if decimal {
        let v: f64 = fast_float2::parse(&line[at..i]).ok()?;
        if !v.is_finite() {
            return None;
        }
        v
    } else {
        let mut n: u64 = 0;
        for &d in &line[int_start..int_end] {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        }
        if negative {
            // serde_json reads `-0` as the float -0.0.
            let n = i64::try_from(n).ok()?;
            if n == 0 { -0.0 } else { (-n) as f64 }
        } else {
            n as f64
        }
    };
    Some((value, i))
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
mod fast_tests {
    use proptest::prelude::*;
    use serde::de::DeserializeSeed;

    use super::{FastRows, Row, RowSeed};

    /// What a row holds, as far as the rest of the reader sees it.
    fn seen(row: &Row) -> String {
        format!(
            "{:?} {:?} {} {:?} {:?}",
            row.epoch.map(f64::to_bits),
            row.step.map(f64::to_bits),
            row.validation,
            row.values
                .iter()
                .map(|(k, v)| (k.clone(), v.to_bits()))
                .collect::<Vec<_>>(),
            row.values.unread
        )
    }

    /// serde_json's reading of `line` (the oracle), or `None` for an error.
    fn by_serde(line: &[u8]) -> Option<String> {
        let mut row = Row::default();
        let mut de = serde_json::Deserializer::from_slice(line);
        RowSeed(&mut row)
            .deserialize(&mut de)
            .and_then(|()| de.end())
            .ok()?;
        Some(seen(&row))
    }

    /// Asserts that the fast road reads `line` as serde_json does, or leaves it to it.
    fn agrees(fast: &mut FastRows, line: &[u8]) -> bool {
        let mut row = Row::default();
        if !fast.read(line, &mut row) {
            return false;
        }
        assert_eq!(
            Some(seen(&row)),
            by_serde(line),
            "{}",
            String::from_utf8_lossy(line)
        );
        true
    }

    #[test]
    fn the_real_jsonl_logs_read_as_serde_json_reads_them() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/real");
        let (mut lines, mut taken) = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            for file in std::fs::read_dir(entry.unwrap().path())
                .into_iter()
                .flatten()
            {
                let path = file.unwrap().path();
                if path.extension().is_none_or(|e| e != "jsonl") {
                    continue;
                }
                let mut fast = FastRows::default();
                for line in std::fs::read(&path).unwrap().split(|b| *b == b'\n') {
                    lines += 1;
                    taken += usize::from(agrees(&mut fast, line));
                }
            }
        }
        assert!(lines > 1000 && taken * 2 > lines, "{taken} of {lines}");
    }

    #[test]
    fn edge_cases_read_as_serde_json_reads_them_or_go_to_it() {
        let mut fast = FastRows::default();
        let taken = [
            r#"{"epoch": 0, "loss": -0, "acc": -0.0, "x": 0e5, "y": 1E-400}"#,
            r#"{"step": 18446744073709551615, "loss": -9223372036854775807}"#,
            r#"  {"phase":"val","loss":1.5e3 ,"phase" : "train", "loss": 2}  "#,
            r#"{"mode": "eval", "timestamp": "2024-01-01 10:00", "lr_scheduler": "StepLR"}"#,
            r#"{"loss": 0.30000000000000004, "val_loss": 2.2250738585072014e-308}"#,
            "{}\r\n",
            r#"{"loss": "n/a", "split": "VALID", "global_step": 7}"#,
        ];
        for line in taken {
            assert!(agrees(&mut fast, line.as_bytes()), "{line}");
        }
        let left = [
            r#"{"loss": 01}"#,
            r#"{"loss": 1.}"#,
            r#"{"loss": .5}"#,
            r#"{"loss": 1e400}"#,
            r#"{"loss": null}"#,
            r#"{"loss": true}"#,
            r#"{"loss": [1]}"#,
            r#"{"loss": "NaN"}"#,
            r#"{"loss": "0.5"}"#,
            r#"{"epoch": "two"}"#,
            r#"{"lo\"ss": 1}"#,
            r#"{"lé": 1}"#,
            r#"{"step": 18446744073709551616}"#,
            r#"{"loss": -9223372036854775808}"#,
            r#"{"loss": 1} x"#,
            r#"{"loss": 1,}"#,
            r#"[1]"#,
            r#"{"loss": 1"#,
        ];
        for line in left {
            assert!(!agrees(&mut fast, line.as_bytes()), "{line}");
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("epoch".to_string()),
            Just("Epoch".to_string()),
            Just("step".to_string()),
            Just("global_step".to_string()),
            Just("phase".to_string()),
            Just("split".to_string()),
            Just("timestamp".to_string()),
            Just("loss".to_string()),
            Just("val_loss".to_string()),
            Just("accuracy".to_string()),
            Just("lr".to_string()),
            "[a-z_/]{1,8}",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>().prop_map(|v| format!("{v}")),
            any::<f64>().prop_map(|v| format!("{v:e}")),
            any::<i64>().prop_map(|v| v.to_string()),
            any::<u64>().prop_map(|v| v.to_string()),
            "-?[0-9]{1,25}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{0,4})?",
            Just("\"train\"".to_string()),
            Just("\"val\"".to_string()),
            Just("\"NaN\"".to_string()),
            Just("\"0.5\"".to_string()),
            Just("null".to_string()),
            "\"[ -~&&[^\"\\\\]]{0,6}\"",
        ]
    }

    proptest! {
        #[test]
        fn generated_rows_read_as_serde_json_reads_them(
            fields in proptest::collection::vec((key(), value()), 0..8),
            spaces in "[ \t]{0,2}",
        ) {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("\"{k}\"{spaces}:{spaces}{v}"))
                .collect();
            let line = format!("{spaces}{{{}}}{spaces}\n", body.join(","));
            let mut fast = FastRows::default();
            agrees(&mut fast, line.as_bytes());
        }
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
