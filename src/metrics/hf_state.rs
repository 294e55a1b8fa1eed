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
//!
//! A short run evaluated often (one epoch, or a fraction of one, with an eval every few
//! hundred steps, as LLM fine-tunes are run) would collapse its evaluations onto one or
//! two epochs, where no trend can be judged. So every read counts the evaluations, and
//! when the run has more of them than whole epochs (one more is an evaluation before
//! training, not a finer axis) the file is read again with the evaluations as the x-axis
//! (point k = the k-th evaluation, with the train rows logged since the one before):
//! each evaluation its own point, its step and epoch fraction kept in
//! `Metrics::eval_axis` for the report, and the steps per point and points planned
//! counted in evaluations.

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
/// Fewest evaluations that make an x-axis: two points are a step, not a trend.
const MIN_EVALS_FOR_AXIS: u32 = 3;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut state = read_once(path, builder, false)?;
    builder.max_steps = state.max_steps;
    builder.planned_epochs = state
        .num_train_epochs
        .map(|e| e.ceil().min(f64::from(u32::MAX)) as u32);
    builder.steps_per_epoch = state.steps_per_epoch();
    let whole_epochs = state.last_epoch.unwrap_or(1);
    let count = state.evals.count;
    // One evaluation more than epochs is an epoch-end evaluation plus one before
    // training (or after it): the epochs stay the x-axis.
    if count >= MIN_EVALS_FOR_AXIS && count > whole_epochs.saturating_add(1) {
        // Read again with the evaluations as the x-axis: only such runs (short ones,
        // small files) pay for a second read, every other file is read once.
        *builder = MetricsBuilder::new();
        state = read_once(path, builder, true)?;
        builder.max_steps = state.max_steps;
        state.evals.lay_out(builder, state.max_steps, whole_epochs);
    }
    Ok(())
}

/// One read of the file into `builder`, by the fast road or else serde's; `on_evals` lays
/// the rows out with the evaluations as the x-axis.
fn read_once(path: &Path, builder: &mut MetricsBuilder, on_evals: bool) -> Result<State> {
    let fresh = || State {
        on_evals,
        ..State::default()
    };
    let mut state = fresh();
    if fast::read(path, builder, &mut state).is_err() {
        // The fast road met something it does not read (or an error): serde's road reads
        // the file from the start, and says exactly what is wrong if anything is.
        *builder = MetricsBuilder::new();
        state = fresh();
        read_streamed(path, builder, &mut state)?;
    }
    Ok(state)
}

/// The evaluations a read has seen: counted on every read, and placed on the read that
/// lays the rows out on them; see the module's doc.
#[derive(Debug, Default)]
struct EvalAxis {
    /// Evaluations seen so far.
    count: u32,
    /// Step and epoch of each evaluation, the first `super::MAX_EVAL_MARKS` (kept on the
    /// read that lays the rows out on them).
    marks: Vec<super::EvalMark>,
    /// The furthest epoch any row logged (fractional).
    furthest_epoch: f64,
    /// The step and epoch (its bits) of the last evaluation row.
    last_eval_at: Option<(Option<u64>, Option<u64>)>,
}

impl EvalAxis {
    /// Counts a row, and gives its point on the evaluation axis: an evaluation row is the
    /// next point, train rows belong to the point of the evaluation that follows them.
    fn see(&mut self, row: &Fields, step: Option<u64>, epoch: Option<f64>, keep: bool) -> u32 {
        let is_eval = row.iter().any(|(name, _)| name.starts_with("eval_"));
        if let Some(e) = epoch.filter(|e| e.is_finite()) {
            self.furthest_epoch = self.furthest_epoch.max(e);
        }
        // Several evaluation sets (`eval_dataset={"g0": …, "g1": …}`) log a row each at
        // the same step: one evaluation. (A step of 0, an evaluation before training,
        // reads as no step: the epoch tells.)
        let at = (step, epoch.map(f64::to_bits));
        let same_evaluation = is_eval && at != (None, None) && Some(at) == self.last_eval_at;
        if is_eval {
            self.last_eval_at = Some(at);
        }
        if is_eval && !same_evaluation {
            self.count = self.count.saturating_add(1);
            if keep && self.marks.len() < super::MAX_EVAL_MARKS {
                self.marks.push(super::EvalMark { step, epoch });
            }
        }
        if is_eval {
            self.count
        } else {
            self.count.saturating_add(1)
        }
    }

    /// After the read on the evaluations: counts steps and the planned length in
    /// evaluations, and says so.
    fn lay_out(self, builder: &mut MetricsBuilder, max_steps: Option<u64>, whole_epochs: u32) {
        let steps: Vec<u64> = self.marks.iter().filter_map(|m| m.step).collect();
        // The gap between evaluations (the first is one gap in).
        let interval = match steps.as_slice() {
            [a, b, ..] if b > a => Some(b - a),
            [a, ..] if *a > 0 => Some(*a),
            _ => None,
        };
        builder.steps_per_epoch = interval;
        builder.planned_epochs = match (max_steps, interval) {
            (Some(total), Some(gap)) => u32::try_from(total.div_ceil(gap)).ok(),
            _ => None,
        };
        let at = match (steps.first(), steps.last()) {
            (Some(first), Some(last)) => format!(" (steps {first}\u{2013}{last})"),
            _ => String::new(),
        };
        // The run's length as logged (0.23 of an epoch, 1.36 epochs), else its whole epochs.
        let length = if self.furthest_epoch > 0.0 {
            let e = (self.furthest_epoch * 100.0).round() / 100.0;
            format!(
                "{} {}",
                crate::num::num(e),
                if e == 1.0 { "epoch" } else { "epochs" }
            )
        } else {
            format!("{whole_epochs} epochs")
        };
        builder.warnings.push(format!(
            "{} evaluations in {length}{at}: each evaluation is a point of the series, not each epoch",
            self.count,
        ));
        builder.eval_axis = Some(self.marks);
    }
}

/// The whole file through serde_json's reader, streamed.
fn read_streamed(path: &Path, builder: &mut MetricsBuilder, state: &mut State) -> Result<()> {
    let mut de = nonfinite::open_json(path)?;
    TrainerState { builder, state }
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| nonfinite::json_error(path, 1, e))
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
    /// The evaluations seen (see `EvalAxis`).
    evals: EvalAxis,
    /// This read lays the rows out with the evaluations as the x-axis.
    on_evals: bool,
    /// Series handles of the names met so far (a state lives with one builder), so a
    /// row's values are not hashed by name on every row.
    ids: Vec<(String, usize)>,
}

/// Names whose series handle is remembered; one past these is found by name each time.
const REMEMBERED_NAMES: usize = 256;

impl State {
    /// `builder.push(name, …)`, through the remembered handles (`series_id` and `push_id`
    /// do what `push` does: a name past `MAX_SERIES` is counted as dropped each time).
    fn push(
        ids: &mut Vec<(String, usize)>,
        builder: &mut MetricsBuilder,
        name: &str,
        epoch: u32,
        value: f64,
    ) {
        let id = match ids.iter().find(|(known, _)| known == name) {
            Some(&(_, id)) => id,
            None => {
                let id = builder.series_id(name);
                if id != usize::MAX && ids.len() < REMEMBERED_NAMES {
                    ids.push((name.to_string(), id));
                }
                id
            }
        };
        builder.push_id(id, epoch, value);
    }
}

impl State {
    fn max_steps(&mut self, value: &Scalar) {
        self.max_steps = count(value);
    }

    fn num_train_epochs(&mut self, value: &Scalar) {
        self.num_train_epochs = value.number().filter(|e| e.is_finite() && *e > 0.0);
    }

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
                "max_steps" => self.state.max_steps(&map.next_value::<Scalar>()?),
                "num_train_epochs" => self.state.num_train_epochs(&map.next_value::<Scalar>()?),
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
            } else if is_skipped(&key) {
                summary |= SUMMARY_MARKERS.contains(&key.as_str());
                map.next_value::<IgnoredAny>()?;
            } else if let Scalar::Number(v) = map.next_value::<Scalar>()? {
                state.row.add(key, v);
            }
        }
        take_row(self.builder, state, logged_epoch, step, summary);
        Ok(())
    }
}

/// A field the rows carry that is no metric (run time, throughput, token counts).
fn is_skipped(key: &str) -> bool {
    SKIPPED_SUFFIXES.iter().any(|s| key.ends_with(s))
}

/// A plain `log_history` row (see `LogRow::visit_map`, whose rules this follows) read
/// without serde_json: keys ASCII without escapes, values numbers, and strings only under
/// skipped keys. `false` for anything else, which `LogRow` then reads (`state.row` is
/// cleared again there).
fn take_plain_row(row: &[u8], builder: &mut MetricsBuilder, state: &mut State) -> bool {
    use super::jsonl::{number, plain_object, plain_string};
    let Ok(text) = std::str::from_utf8(row) else {
        return false;
    };
    let line = text.as_bytes();
    state.row.clear();
    let (mut logged_epoch, mut step, mut summary) = (None, None, false);
    let whole = plain_object(text, |key, at| {
        if is_skipped(key) && key != "epoch" && key != "step" {
            summary |= SUMMARY_MARKERS.contains(&key);
            return match (plain_string(text, at), number(line, at)) {
                (Some((_, next)), _) | (None, Some((_, next))) => Some(next),
                (None, None) => None,
            };
        }
        let (v, next) = number(line, at)?;
        match key {
            "epoch" => logged_epoch = Some(v),
            "step" => step = count(&Scalar::Number(v)),
            _ => state.row.add(key.to_string(), v),
        }
        Some(next)
    });
    if !whole {
        return false;
    }
    take_row(builder, state, logged_epoch, step, summary);
    true
}

/// What a `log_history` row adds, once its fields are in `state.row`.
fn take_row(
    builder: &mut MetricsBuilder,
    state: &mut State,
    logged_epoch: Option<f64>,
    step: Option<u64>,
    summary: bool,
) {
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
    state.row.report(builder, None);
    let point = state
        .evals
        .see(&state.row, step, logged_epoch, state.on_evals);
    let epoch = if state.on_evals { point } else { epoch };
    let mut pushed = false;
    for (name, value) in state.row.iter() {
        if summary && name == "train_loss" {
            continue;
        }
        State::push(&mut state.ids, builder, name, epoch, *value);
        pushed = true;
    }
    if pushed {
        builder.rows += 1;
    }
}

/// The fast road through a trainer_state.json. serde_json's streaming reader takes the
/// file a byte at a time through the `NonFinite` adapter, which was nearly all of a big
/// file's read. Here the file is read in large blocks; the top-level object and the
/// `log_history` list are walked by their punctuation, and each piece (a key, a value, a
/// row) is handed to serde_json whole, as a slice, to the same visitors as serde's road
/// (`LogRow`, `State`), so a row reads the same either way. Anything this road does not
/// read exactly as serde's (a row holding a nested value, a piece larger than the buffer,
/// a UTF-16 file) or any error sends the whole file down serde's road, which reads it and
/// words the error. Memory is the buffer, whatever the file's length.
mod fast {
    use std::fs::File;
    use std::io::Read;
    use std::marker::PhantomData;
    use std::path::Path;

    use memchr::{memchr, memchr2};
    use serde::de::{DeserializeSeed, IgnoredAny};

    use super::{LogRow, MetricsBuilder, State};
    use crate::input;
    use crate::metrics::nonfinite::{MAX_STRING_BYTES, NonFinite, Scalar};
    use crate::metrics::text;

    /// Bytes read per refill, and the largest piece (a row, a top-level value) read
    /// here: a row is a few hundred bytes; a larger piece goes down serde's road.
    const BUFFER_BYTES: usize = 1024 * 1024;

    /// Serde's road must read the file.
    #[derive(Debug)]
    pub struct Fallback;

    type Road<T> = std::result::Result<T, Fallback>;

    impl<E: std::fmt::Display> From<E> for Fallback {
        fn from(_: E) -> Self {
            Fallback
        }
    }

    struct Blocks {
        file: File,
        buf: Vec<u8>,
        /// buf[at..end] is read and not yet used.
        at: usize,
        end: usize,
        eof: bool,
    }

    impl Blocks {
        /// Reads more after what is unused; false when nothing more came (the end, or the
        /// unused bytes fill the buffer).
        fn more(&mut self) -> Road<bool> {
            if self.eof {
                return Ok(false);
            }
            self.buf.copy_within(self.at..self.end, 0);
            self.end -= self.at;
            self.at = 0;
            if self.end == self.buf.len() {
                return Ok(false);
            }
            let n = loop {
                match self.file.read(&mut self.buf[self.end..]) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            self.end += n;
            self.eof = n == 0;
            Ok(n > 0)
        }

        /// The next byte that is not JSON whitespace, left unused; `None` at the end.
        fn peek(&mut self) -> Road<Option<u8>> {
            loop {
                while self.at < self.end {
                    let b = self.buf[self.at];
                    if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                        return Ok(Some(b));
                    }
                    self.at += 1;
                }
                if !self.more()? {
                    return Ok(None);
                }
            }
        }

        /// Uses `want`, the next byte that is not whitespace, or falls back.
        fn expect(&mut self, want: u8) -> Road<()> {
            if self.peek()? != Some(want) {
                return Err(Fallback);
            }
            self.at += 1;
            Ok(())
        }

        /// The length of the piece at `at` for which `find` (given the unused bytes)
        /// says where it ends, reading more until it does.
        fn piece(&mut self, find: impl Fn(&[u8]) -> Road<Option<usize>>) -> Road<usize> {
            loop {
                if let Some(n) = find(&self.buf[self.at..self.end])? {
                    return Ok(n);
                }
                if !self.more()? {
                    return Err(Fallback);
                }
            }
        }
    }

    /// Where a plain string (no escape, no control character) starting at byte 0 ends,
    /// its closing quote included; `None` until that quote has been read. A string with
    /// an escape or a control character is read by serde's road.
    fn plain_string(bytes: &[u8]) -> Road<Option<usize>> {
        let Some(close) = bytes.get(1..).and_then(|b| memchr2(b'"', b'\\', b)) else {
            return Ok(None);
        };
        let inner = &bytes[1..close + 1];
        if bytes[close + 1] != b'"' || inner.iter().any(|&b| b < 0x20) {
            return Err(Fallback);
        }
        Ok(Some(close + 2))
    }

    /// The index of the quote closing the string opened at `open`; `None` until it has
    /// been read.
    fn string_close(bytes: &[u8], open: usize) -> Option<usize> {
        let mut from = open + 1;
        loop {
            let k = from + memchr2(b'"', b'\\', bytes.get(from..)?)?;
            if bytes[k] == b'"' {
                return Some(k);
            }
            // A backslash escapes the byte after it.
            from = k + 2;
        }
    }

    /// Where a JSON value starting at byte 0 ends: found by its brackets and strings,
    /// checked by serde_json afterwards. `None` until its end has been read (a number at
    /// the very end of the bytes could go on).
    fn value_end(bytes: &[u8]) -> Road<Option<usize>> {
        let mut depth = 0usize;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    let Some(close) = string_close(bytes, i) else {
                        return Ok(None);
                    };
                    if depth == 0 {
                        return Ok(Some(close + 1));
                    }
                    i = close;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return Ok(Some(i)),
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(Some(i + 1));
                    }
                }
                b',' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => return Ok(Some(i)),
                _ => {}
            }
            i += 1;
        }
        Ok(None)
    }

    /// A piece as serde's road sees it: Python's bare `NaN`/`Infinity` quoted, strings
    /// bounded. `scratch` holds a rewritten piece.
    fn as_json<'a>(piece: &'a [u8], scratch: &'a mut Vec<u8>) -> Road<&'a [u8]> {
        if memchr2(b'N', b'I', piece).is_none() && piece.len() as u64 <= MAX_STRING_BYTES {
            return Ok(piece);
        }
        scratch.clear();
        NonFinite::new(piece).read_to_end(scratch)?;
        Ok(scratch)
    }

    /// Reads `piece` whole with `seed`.
    fn deserialize<'a, T: DeserializeSeed<'a>>(piece: &'a [u8], seed: T) -> Road<T::Value> {
        let mut de = serde_json::Deserializer::from_slice(piece);
        let value = seed.deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    pub fn read(path: &Path, builder: &mut MetricsBuilder, state: &mut State) -> Road<()> {
        let mut blocks = Blocks {
            file: input::open_regular(path, "a metrics file")?,
            buf: vec![0; BUFFER_BYTES],
            at: 0,
            end: 0,
            eof: false,
        };
        blocks.more()?;
        if text::utf16_bom(&blocks.buf[..blocks.end]).is_some() {
            return Err(Fallback);
        }
        let mut scratch = Vec::new();
        blocks.expect(b'{')?;
        if blocks.peek()? == Some(b'}') {
            blocks.at += 1;
        } else {
            loop {
                if blocks.peek()? != Some(b'"') {
                    return Err(Fallback);
                }
                let n = blocks.piece(plain_string)?;
                let key =
                    std::str::from_utf8(&blocks.buf[blocks.at + 1..blocks.at + n - 1])?.to_string();
                blocks.at += n;
                blocks.expect(b':')?;
                blocks.peek()?;
                if key == "log_history" {
                    log_history(&mut blocks, builder, state, &mut scratch)?;
                } else {
                    let n = blocks.piece(value_end)?;
                    let piece = as_json(&blocks.buf[blocks.at..blocks.at + n], &mut scratch)?;
                    match key.as_str() {
                        "max_steps" => state.max_steps(&deserialize(piece, PhantomData::<Scalar>)?),
                        "num_train_epochs" => {
                            state.num_train_epochs(&deserialize(piece, PhantomData::<Scalar>)?);
                        }
                        _ => deserialize(piece, PhantomData::<IgnoredAny>).map(|_| ())?,
                    }
                    blocks.at += n;
                }
                match blocks.peek()? {
                    Some(b',') => blocks.at += 1,
                    Some(b'}') => {
                        blocks.at += 1;
                        break;
                    }
                    _ => return Err(Fallback),
                }
            }
        }
        // Nothing but whitespace may follow the object.
        match blocks.peek()? {
            None => Ok(()),
            Some(_) => Err(Fallback),
        }
    }

    /// The `log_history` list, row by row: a row is an object without nested values,
    /// which ends at its first `}`.
    fn log_history(
        blocks: &mut Blocks,
        builder: &mut MetricsBuilder,
        state: &mut State,
        scratch: &mut Vec<u8>,
    ) -> Road<()> {
        blocks.expect(b'[')?;
        if blocks.peek()? == Some(b']') {
            blocks.at += 1;
            return Ok(());
        }
        loop {
            if blocks.peek()? != Some(b'{') {
                return Err(Fallback);
            }
            let n = blocks.piece(|b| Ok(memchr(b'}', b).map(|i| i + 1)))?;
            let row = &blocks.buf[blocks.at..blocks.at + n];
            if memchr2(b'{', b'[', &row[1..]).is_some() {
                return Err(Fallback);
            }
            let row = as_json(row, scratch)?;
            if super::take_plain_row(row, builder, state) {
                blocks.at += n;
            } else {
                deserialize(
                    row,
                    LogRow {
                        builder: &mut *builder,
                        state: &mut *state,
                    },
                )?;
                blocks.at += n;
            }
            match blocks.peek()? {
                Some(b',') => blocks.at += 1,
                Some(b']') => {
                    blocks.at += 1;
                    return Ok(());
                }
                _ => return Err(Fallback),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::metrics::Format;
        use proptest::strategy::Strategy as _;

        /// What each road reads from `text`: `None` where the fast road hands over.
        fn both(text: &str) -> (Option<String>, String) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("trainer_state.json");
            std::fs::write(&path, text).unwrap();
            let finish = |builder: MetricsBuilder, state: &State| {
                let m = builder.finish(&path, Format::HfTrainerState);
                format!("{m:?} {:?} {:?}", state.max_steps, state.steps_per_epoch())
            };
            let (mut fast_builder, mut fast_state) = (MetricsBuilder::new(), State::default());
            let fast = read(&path, &mut fast_builder, &mut fast_state)
                .ok()
                .map(|()| finish(fast_builder, &fast_state));
            let (mut builder, mut state) = (MetricsBuilder::new(), State::default());
            let streamed = match super::super::read_streamed(&path, &mut builder, &mut state) {
                Ok(()) => finish(builder, &state),
                Err(e) => format!("error: {e}"),
            };
            (fast, streamed)
        }

        #[test]
        fn plain_rows_read_as_serdes_road_reads_them() {
            let rows = [
                r#"{"epoch": -0, "loss": -0.0, "step": 0}"#,
                r#"{"epoch": 1e0, "loss": 18446744073709551615, "step": 18446744073709551615}"#,
                r#"{"epoch": 2, "loss": -9223372036854775808, "step": 2.5}"#,
                r#"{"epoch": 3, "loss": 18446744073709551616, "step": -4}"#,
                r#"{"epoch": 4, "train_runtime": "1:02", "total_flos": null, "train_loss": 0.3, "loss": 0.2}"#,
                r#"{"epoch": 5, "eval_samples_per_second": 12.5, "eval_loss": 0.25, "step": 50}"#,
                r#"{"ep\u006fch": 6, "loss": 0.1}"#,
                r#"{"epoch": 7, "lr": null, "learning_rate": 1e-5}"#,
                r#"{"epoch": 8, "mode": "train", "loss": 0.05, "epoch": 9}"#,
                r#"{ "epoch" : 10 , "loss" : 01 }"#,
                r#"{"epoch": 11, "lé": 1, "loss": 0.04}"#,
                r#"{}"#,
            ];
            for row in rows {
                let text = format!(r#"{{"log_history": [{row}, {{"epoch": 12, "loss": 0.01}}]}}"#);
                let (fast, streamed) = both(&text);
                if let Some(fast) = fast {
                    assert_eq!(fast, streamed, "{text}");
                }
            }
        }

        proptest::proptest! {
            #[test]
            fn generated_rows_read_as_serdes_road_reads_them(
                fields in proptest::collection::vec((
                    proptest::prop_oneof![
                        proptest::strategy::Just("epoch".to_string()),
                        proptest::strategy::Just("step".to_string()),
                        proptest::strategy::Just("loss".to_string()),
                        proptest::strategy::Just("train_runtime".to_string()),
                        proptest::strategy::Just("train_loss".to_string()),
                        proptest::strategy::Just("eval_loss".to_string()),
                        "[a-z_]{1,6}",
                    ],
                    proptest::prop_oneof![
                        proptest::arbitrary::any::<f64>().prop_map(|v| format!("{v}")),
                        proptest::arbitrary::any::<i64>().prop_map(|v| v.to_string()),
                        "-?[0-9]{1,22}(\\.[0-9]{0,18})?([eE][+-]?[0-9]{0,3})?",
                        proptest::strategy::Just("\"x\"".to_string()),
                        proptest::strategy::Just("null".to_string()),
                    ],
                ), 0..6),
            ) {
                let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                let text = format!(r#"{{"log_history": [{{{}}}]}}"#, body.join(", "));
                let (fast, streamed) = both(&text);
                if let Some(fast) = fast {
                    proptest::prop_assert_eq!(fast, streamed, "{}", text);
                }
            }
        }

        #[test]
        fn the_fast_road_reads_what_serdes_road_reads_or_hands_over() {
            let rows = r#"[{"epoch": 0.5, "loss": 0.7, "step": 5}, {"epoch": 1.0, "eval_loss": NaN, "eval_runtime": 3.1, "step": 10},
                {"epoch": 1.5, "grad_norm": Infinity, "loss": -Infinity, "step": 15},{"epoch":2.0,"loss":0.5,"step":20},
                {"epoch": 2.0, "step": 20, "total_flos": 1e15, "train_loss": 0.6, "train_runtime": 4.2}]"#;
            let read_fast = [
                format!(
                    r#"{{"best_metric": null, "log_history": {rows}, "max_steps": 20, "num_train_epochs": 2}}"#
                ),
                format!(
                    "{{\n  \"global_step\": 20,\r\n\t\"log_history\": {rows},\n  \"max_steps\": 20, \"stateful_callbacks\": {{\"a\": [1, {{\"b\": \"}}]\\\"\"}}], \"c\": {{}}}}, \"x\": \"NaN\"}}\n"
                ),
                format!(r#"{{"log_history": [], "log_history": {rows}}}"#),
                r#"{"log_history": [{"epoch": 1, "loss": 1, "loss": 2, "step": 3}]}"#.to_string(),
                r#"{}"#.to_string(),
                r#"{"log_history": []}"#.to_string(),
            ];
            for text in &read_fast {
                let (fast, streamed) = both(text);
                assert_eq!(fast.as_deref(), Some(streamed.as_str()), "{text}");
            }
            let hand_over = [
                r#"{"log_history": [{"epoch": 1, "loss": 1, "note": "}", "step": 3}]}"#,
                r#"{"log_history": [{"epoch": 1, "loss": [1, 2], "step": 3}]}"#,
                r#"{"log_\u0068istory": []}"#,
                r#"{"log_history": [{"epoch": 1, "loss": 1,}]}"#,
                r#"{"log_history": [{"epoch": "x", "loss": 1}]}"#,
                r#"{"log_history": [{"epoch": 1, "loss": 1}], "max_steps": 1e999}"#,
                r#"{"log_history": [{"epoch": 1, "loss": 1}]} trailing"#,
                r#"{"a": [1,,2], "log_history": []}"#,
                r#"{"a": tru, "log_history": []}"#,
                "{\"a\tb\": 1}",
                r#"["log_history"]"#,
                "",
                r#"{"log_history": [{"epoch": 1, "loss": 1}"#,
            ];
            for text in hand_over {
                let (fast, _) = both(text);
                assert_eq!(fast, None, "{text}");
            }
        }
    }
}

#[cfg(test)]
// Losses at chance level (0.6931 = ln 2 and 2.3026 = ln 10, to the 4 decimals Keras and
// the HF Trainer print) are the logged data under test, not approximations of constants.
#[allow(clippy::approx_constant)]
mod tests {
    use crate::metrics::testing::{ScratchFile, example, values};
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

    #[test]
    fn a_run_shorter_than_its_evaluations_is_read_on_them() {
        // one epoch, an evaluation every 20 steps: the eval loss bottoms out at the third
        // and climbs, which one epoch-point would hide
        let mut rows = Vec::new();
        let eval_loss = [0.90, 0.70, 0.60, 0.65, 0.72];
        for (k, v) in eval_loss.iter().enumerate() {
            let step = 20 * (k as u64 + 1);
            let epoch = step as f64 / 100.0;
            rows.push(format!(
                r#"{{"epoch": {}, "loss": {}, "step": {}}}"#,
                epoch - 0.1,
                1.0 - 0.1 * k as f64,
                step - 10
            ));
            rows.push(format!(
                r#"{{"epoch": {epoch}, "eval_loss": {v}, "eval_runtime": 2.0, "step": {step}}}"#
            ));
        }
        let m = SCRATCH.load(&format!(
            r#"{{"log_history": [{}], "max_steps": 100, "num_train_epochs": 1}}"#,
            rows.join(",")
        ));
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 0.9), (2, 0.7), (3, 0.6), (4, 0.65), (5, 0.72)]
        );
        // each train row lands on the evaluation that follows it
        assert_eq!(values(&m, Canonical::Loss)[1], (2, 0.9));
        let axis = m.eval_axis.as_ref().unwrap();
        assert_eq!(axis.len(), 5);
        assert_eq!((axis[2].step, axis[2].epoch), (Some(60), Some(0.6)));
        assert_eq!((m.steps_per_epoch, m.planned_epochs), (Some(20), Some(5)));
        assert_eq!(
            m.warnings,
            vec![
                "5 evaluations in 1 epoch (steps 20\u{2013}100): each evaluation is a point of the series, not each epoch"
            ]
        );
    }

    #[test]
    fn evaluation_sets_logged_at_one_step_are_one_evaluation() {
        let m = SCRATCH.load(
            r#"{"log_history": [
                 {"epoch": 0.25, "eval_g0_loss": 1.0, "step": 5}, {"epoch": 0.25, "eval_g1_loss": 1.1, "step": 5},
                 {"epoch": 0.5, "eval_g0_loss": 0.9, "step": 10}, {"epoch": 0.5, "eval_g1_loss": 1.0, "step": 10},
                 {"epoch": 0.75, "eval_g0_loss": 0.8, "step": 15}, {"epoch": 0.75, "eval_g1_loss": 0.9, "step": 15}
               ], "num_train_epochs": 1}"#,
        );
        assert_eq!(m.eval_axis.as_ref().map(Vec::len), Some(3));
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 1.0), (2, 0.9), (3, 0.8)]
        );
    }

    #[test]
    fn one_evaluation_per_epoch_stays_on_epochs() {
        // an evaluation before training as well, at step 0
        let m = SCRATCH.load(
            r#"{"log_history": [{"epoch": 0, "eval_loss": 2.1, "step": 0}, {"epoch": 0.5, "loss": 2.0, "step": 5},
                 {"epoch": 1.0, "eval_loss": 1.9, "step": 10},
                 {"epoch": 2.0, "eval_loss": 1.8, "step": 20},
                 {"epoch": 3.0, "eval_loss": 1.7, "step": 30}], "num_train_epochs": 3}"#,
        );
        assert!(m.eval_axis.is_none());
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 2.0), (2, 1.8), (3, 1.7)]
        );
    }
}
