//! Reads Keras console output captured to a file (`model.fit` with verbose 1 or 2), as in
//! seed 000. What a capture holds: `Epoch N/M` headers (printed only when M > 1), progress
//! states `3038/3038 ━━━━ 207s 68ms/step - accuracy: 0.5032 - loss: 0.6935 - …` (Keras 3),
//! `[=====>....] - ETA: 12s - loss: …` (Keras 2), `3038/3038 - 207s - 68ms/step - …`
//! (verbose 2), each redrawn in place with `\b` and `\r` and coloured with ANSI escapes
//! even into a file (Keras draws dynamically whenever Python runs on POSIX), and lines
//! of other loggers and callbacks in between (`Epoch 1: val_accuracy improved from -inf
//! …`, which is neither a header nor values).
//!
//! The file is read as a stream of progress states split at `\r` and `\n`, each cleaned
//! of escapes and backspaces, so memory is one state however long the log. An epoch's
//! values are its last complete (`N/N`) state: Keras redraws the bar at `N/N` once with the
//! train running means and then once more with the validation values added. A progress
//! bar that starts over after an epoch completed is, under an `Epoch N/M` header, an
//! `evaluate`/`predict` bar and is ignored; without headers (`fit(epochs=1)`, called in a
//! loop or once) each completed bar is the next epoch. An unfinished epoch at the end of
//! the file becomes `partial` (running means, not series values), and its step total
//! gives the steps per epoch if no finished epoch did. A header that goes back to the
//! first epoch (`Epoch 1/15` after `Epoch 15/15`) is another `fit()` call: a new run, and
//! only the latest is judged; back to the middle, a resume whose repeated epochs are
//! skipped (`RunCounter`). `Epoch 1/1` again and again is `fit(epochs=1)` in a loop, one
//! run. A capture in UTF-16 (PowerShell's redirect) is decoded by `text::open`.

use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use super::nonfinite::parse_number;
use super::{Count, MetricsBuilder, PartialEpoch, RunCounter, text};
use crate::error::{Error, Result};

/// Longest progress state kept: a Keras state is a few hundred characters; bytes past this
/// in one segment (a file without line breaks) are dropped rather than held.
const MAX_SEGMENT_BYTES: usize = 64 * 1024;
/// Bytes read per refill: a log of millions of lines is read in few system calls, and
/// the buffer stays the same size whatever the file's length.
const READ_BUFFER_BYTES: usize = 256 * 1024;

// The patterns below are constants exercised by every test of this module, so compiling
// them cannot fail at run time.
static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
        .expect("constant pattern")
});
static HEADER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Epoch (\d+)/(\d+)$").expect("constant pattern"));
/// `347/3038 ━━`, `347/3038 [==`, `3038/3038 - 207s`, `7/Unknown 2s`.
static COUNT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+)/(\d+|Unknown)(?:\s|\[|$)").expect("constant pattern"));
/// Keras ≤ 2.3 verbose 2: ` - 207s - loss: 0.6935 - acc: 0.5032`, and Keras 1's
/// `224s - loss: 3.5508 - acc: 0.2966`: the epoch's duration, no step count.
static COUNTLESS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:- )?\d+s(?:\s|$)").expect("constant pattern"));

/// A value as Keras prints it (`%.4f`, `%.4e`, nan, inf): a state cut off by the end of
/// the file ends in something shorter.
static WHOLE_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^-?(?:\d+\.\d{4}|\d\.\d{4}e[+-]\d{2,}|nan|inf)$").expect("constant pattern")
});

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, text::open(path)?);
    let mut raw = Vec::new();
    let mut text = String::new();
    let mut tracker = Tracker::default();
    // The last progress state's text, for the lines a wrap cut off it (see
    // `continues_values`); a second buffer, swapped with `text`.
    let mut wrapped = String::new();
    while let Some(terminated) =
        read_segment(&mut reader, &mut raw).map_err(|e| Error::read(path, &e))?
    {
        clean(&raw, &mut text);
        let mut state = parse_state_into(&text, &mut tracker.spare);
        if matches!(state, State::Other)
            && !wrapped.is_empty()
            && wrapped.len() + text.len() < MAX_SEGMENT_BYTES
            && continues_values(&wrapped, &text)
        {
            // Joined with one space, as the line was printed before the wrap.
            wrapped.truncate(wrapped.trim_end().len());
            wrapped.push(' ');
            wrapped.push_str(text.trim());
            state = parse_state_into(&wrapped, &mut tracker.spare);
        } else if !text.trim().is_empty() {
            // (An empty segment is the `\n` of a `\r\n`: the wrap goes on after it.)
            wrapped.clear();
            if matches!(state, State::Bar(_)) {
                // Kept by swapping buffers, not copying: `text` is cleaned into afresh.
                std::mem::swap(&mut wrapped, &mut text);
            }
        }
        match state {
            State::Header { epoch, planned } => tracker.header(epoch, planned, builder),
            State::Bar(bar) if terminated || tracker.accepts_cut(&bar) => {
                tracker.bar(bar, builder);
            }
            State::Bar(bar) => tracker.spare = bar.values,
            State::Other => {}
        }
    }
    tracker.finish(builder);
    Ok(())
}

/// Whether `line` is the rest of the progress state `before`, cut off by a wrap: Windows
/// PowerShell writes what a program prints to stderr (tqdm-style bars, Keras through
/// absl logging) with `2>&1` as error records wrapped at the console's width, so an epoch's
/// `- val_loss: 1.6042` can land on the next line. The line goes on the values: it opens
/// with `name: value` (or `- name: value`), or with a value when `before` ends in `name:`.
fn continues_values(before: &str, line: &str) -> bool {
    let line = line.trim();
    let is_value = |t: &str| {
        t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.')
            || t.starts_with("nan")
            || t.starts_with("inf")
    };
    if before.trim_end().ends_with(':') {
        return is_value(line);
    }
    let line = line.strip_prefix("- ").unwrap_or(line);
    let name_len = line
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'.'))
        .count();
    name_len > 0
        && line.as_bytes()[0].is_ascii_alphabetic()
        && line[name_len..]
            .strip_prefix(':')
            .is_some_and(|rest| is_value(rest.trim_start()))
}

/// True when `text` (the first bytes of a file) holds an `Epoch N/M` header or a Keras
/// progress state with values.
pub fn looks_like(text: &str) -> bool {
    let mut clean_text = String::new();
    text.split(['\r', '\n']).any(|segment| {
        clean(segment.as_bytes(), &mut clean_text);
        match parse_state(&clean_text) {
            State::Header { .. } => true,
            State::Bar(bar) => !bar.values.is_empty(),
            State::Other => false,
        }
    })
}

/// Reads up to the next `\r` or `\n` into `segment`. `Some(true)` when a terminator ended
/// it, `Some(false)` for a last segment the file ends inside, `None` at the end.
pub(super) fn read_segment(
    reader: &mut impl BufRead,
    segment: &mut Vec<u8>,
) -> io::Result<Option<bool>> {
    segment.clear();
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok((!segment.is_empty()).then_some(false));
        }
        let end = memchr::memchr2(b'\r', b'\n', available);
        let take = end.unwrap_or(available.len());
        let room = MAX_SEGMENT_BYTES.saturating_sub(segment.len());
        segment.extend_from_slice(&available[..take.min(room)]);
        match end {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(Some(true));
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// What a terminal would show for one segment: escapes removed, backspaces applied.
/// Backspaces at the end only move the cursor back for the next redraw, so they leave
/// the state as it was drawn.
pub(super) fn clean(raw: &[u8], out: &mut String) {
    // `from_utf8` checks ASCII a word at a time; `from_utf8_lossy` walks the bytes in
    // chunks even when they are valid (the same text either way).
    let text = match std::str::from_utf8(raw) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(raw),
    };
    // Most segments (every line of a redirected log) hold no escape and no backspace:
    // the regex and the character loop are skipped for them, after one look for both.
    if memchr::memchr2(0x1b, 0x08, raw).is_none() {
        out.clear();
        out.push_str(&text);
        return;
    }
    let text = if raw.contains(&0x1b) {
        ANSI.replace_all(&text, "")
    } else {
        std::borrow::Cow::Borrowed(text.as_ref())
    };
    out.clear();
    if !raw.contains(&0x08) {
        out.push_str(&text);
        return;
    }
    for ch in text.trim_end_matches('\u{8}').chars() {
        if ch == '\u{8}' {
            out.pop();
        } else {
            out.push(ch);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Header { epoch: u32, planned: u32 },
    Bar(Bar),
    Other,
}

/// One drawn progress state.
#[derive(Debug, Clone, PartialEq)]
struct Bar {
    /// Steps done; `None` for the count-less verbose 2 line of old Keras.
    step: Option<u64>,
    /// Steps in the epoch; `None` while Keras does not know (`7/Unknown`).
    total: Option<u64>,
    /// Old Keras counted samples, not steps (`60000/60000 … 50us/sample`).
    per_sample: bool,
    values: Vec<(String, f64)>,
    /// The last value is printed whole (see `WHOLE_VALUE`).
    ends_whole: bool,
}

impl Bar {
    fn is_complete(&self) -> bool {
        match (self.step, self.total) {
            (None, _) => true,
            (Some(step), Some(total)) => step >= total,
            (Some(_), None) => false,
        }
    }

    /// The same progress bar drawn again, further along.
    fn continues(&self, earlier: &Bar) -> bool {
        match (earlier.step, self.step) {
            (Some(before), Some(now)) => {
                now >= before && (earlier.total.is_none() || earlier.total == self.total)
            }
            _ => false,
        }
    }
}

fn parse_state(text: &str) -> State {
    parse_state_into(text, &mut Vec::new())
}

/// `parse_state`, its values written over those of `spare` (a state read before and no
/// longer needed), so that a log of millions of lines does not allocate each line's names.
fn parse_state_into(text: &str, spare: &mut Vec<(String, f64)>) -> State {
    let text = text.trim();
    // Every line of a long log is a header or a bar: ASCII lines (all of a redirected
    // log) are matched by hand (`patterns`), the regexes kept for the rest, where their
    // Unicode classes differ from ASCII's.
    let ascii = text.is_ascii();
    if text.starts_with("Epoch ") {
        let parts = if ascii {
            patterns::header(text)
        } else {
            HEADER.captures(text).map(|c| {
                (
                    c.get(1).map_or("", |m| m.as_str()),
                    c.get(2).map_or("", |m| m.as_str()),
                )
            })
        };
        if let Some((epoch, planned)) = parts {
            if let (Ok(epoch), Ok(planned)) = (epoch.parse(), planned.parse()) {
                return State::Header { epoch, planned };
            }
            return State::Other;
        }
    }
    let count = if !text.starts_with(|c: char| c.is_ascii_digit()) {
        None
    } else if ascii {
        patterns::count(text)
    } else {
        COUNT.captures(text).map(|c| {
            let whole = c.get(0).map_or(0, |m| m.end());
            (
                c.get(1).map_or("", |m| m.as_str()),
                c.get(2).map_or("", |m| m.as_str()),
                whole,
            )
        })
    };
    let countless = || {
        if ascii {
            patterns::countless(text)
        } else {
            COUNTLESS.is_match(text)
        }
    };
    let (step, total, rest) = match count {
        Some((step, total, end)) => {
            let Ok(step) = step.parse::<u64>() else {
                return State::Other;
            };
            (Some(step), total.parse::<u64>().ok(), &text[end..])
        }
        None if countless() => (None, None, text),
        None => return State::Other,
    };
    let mut values = std::mem::take(spare);
    let mut used = 0;
    let mut ends_whole = true;
    for (name, raw) in named_values(rest) {
        if name == "ETA" {
            continue;
        }
        let whole = if ascii {
            patterns::whole_value(raw)
        } else {
            WHOLE_VALUE.is_match(raw).then_some(patterns::Whole::Other)
        };
        ends_whole = whole.is_some();
        // A decimal as Keras prints it reads the same with the fast parser as with the
        // standard one (both round correctly); anything else goes to the standard one.
        let value = match whole {
            Some(patterns::Whole::Decimal) => fast_float2::parse::<f64, _>(raw).ok(),
            _ => parse_number(raw),
        };
        if let Some(v) = value {
            match values.get_mut(used) {
                Some(slot) => {
                    slot.0.clear();
                    slot.0.push_str(name);
                    slot.1 = v;
                }
                None => values.push((name.to_string(), v)),
            }
            used += 1;
        }
    }
    values.truncate(used);
    State::Bar(Bar {
        step,
        total,
        per_sample: rest.contains("/sample"),
        values,
        ends_whole,
    })
}

/// `HEADER`, `COUNT`, `COUNTLESS` and `WHOLE_VALUE` written out for ASCII text, where
/// `\d` and `\s` are the ASCII digits and whitespace; the tests hold them to the regexes.
mod patterns {
    fn digits(text: &str) -> usize {
        text.bytes().take_while(u8::is_ascii_digit).count()
    }

    /// `^Epoch (\d+)/(\d+)$`: the two numbers.
    pub fn header(text: &str) -> Option<(&str, &str)> {
        let (epoch, planned) = text.strip_prefix("Epoch ")?.split_once('/')?;
        let whole = |s: &str| !s.is_empty() && digits(s) == s.len();
        (whole(epoch) && whole(planned)).then_some((epoch, planned))
    }

    /// Whether `text` is empty or starts with whitespace (`(?:\s|$)`), and the length of
    /// that whitespace character.
    fn ends_here(text: &str) -> Option<usize> {
        match text.chars().next() {
            None => Some(0),
            Some(c) if c.is_whitespace() => Some(c.len_utf8()),
            Some(_) => None,
        }
    }

    /// `^(\d+)/(\d+|Unknown)(?:\s|\[|$)`: the step, the total and where the match ends.
    pub fn count(text: &str) -> Option<(&str, &str, usize)> {
        let step = digits(text);
        if step == 0 || text.as_bytes().get(step) != Some(&b'/') {
            return None;
        }
        let rest = &text[step + 1..];
        let total = match digits(rest) {
            0 if rest.starts_with("Unknown") => "Unknown".len(),
            0 => return None,
            n => n,
        };
        let after = &rest[total..];
        let tail = if after.starts_with('[') {
            1
        } else {
            ends_here(after)?
        };
        Some((&text[..step], &rest[..total], step + 1 + total + tail))
    }

    /// `^(?:- )?\d+s(?:\s|$)`.
    pub fn countless(text: &str) -> bool {
        let text = text.strip_prefix("- ").unwrap_or(text);
        let n = digits(text);
        n > 0 && text[n..].starts_with('s') && ends_here(&text[n + 1..]).is_some()
    }

    /// What `WHOLE_VALUE` matched.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Whole {
        /// `\d+\.\d{4}` or `\d\.\d{4}e[+-]\d{2,}`, a minus sign before it or not.
        Decimal,
        /// `nan`, `inf`, or a match of the regex itself.
        Other,
    }

    /// `^-?(?:\d+\.\d{4}|\d\.\d{4}e[+-]\d{2,}|nan|inf)$`.
    pub fn whole_value(raw: &str) -> Option<Whole> {
        let v = raw.strip_prefix('-').unwrap_or(raw);
        if v == "nan" || v == "inf" {
            return Some(Whole::Other);
        }
        let int = digits(v);
        if int == 0 || v.as_bytes().get(int) != Some(&b'.') {
            return None;
        }
        let frac = &v[int + 1..];
        let four = frac.len() >= 4 && digits(&frac[..4]) == 4;
        if four && frac.len() == 4 {
            return Some(Whole::Decimal);
        }
        let exp = frac.get(4..).unwrap_or("");
        let exp_digits = exp.get(2..).unwrap_or("");
        (int == 1
            && four
            && exp.starts_with('e')
            && matches!(exp.as_bytes().get(1), Some(b'+' | b'-'))
            && exp_digits.len() >= 2
            && digits(exp_digits) == exp_digits.len())
        .then_some(Whole::Decimal)
    }
}

/// The `- name: value` pairs of a progress line, in order: a `- ` at the start or after
/// whitespace, a name that starts with a letter or `_` and runs to the first `:` or
/// whitespace, then `: ` and the value up to the next whitespace. Written out rather than
/// as a regex because it runs on every line of logs with millions of them, where the
/// regex was a third of the time.
fn named_values(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let bytes = text.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at + 1 < bytes.len() {
            let start = at;
            at += 1;
            if bytes[start] != b'-'
                || bytes[start + 1] != b' '
                || (start > 0 && !bytes[start - 1].is_ascii_whitespace())
            {
                continue;
            }
            let name_start = start + 2;
            let name_len = text[name_start..]
                .find(|c: char| c == ':' || c.is_whitespace())
                .unwrap_or(text.len() - name_start);
            let name = &text[name_start..name_start + name_len];
            let starts_well = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            let after = &text[name_start + name_len..];
            if !starts_well || !after.starts_with(": ") {
                continue;
            }
            let value_start = name_start + name_len + 2;
            let value_len = text[value_start..]
                .find(char::is_whitespace)
                .unwrap_or(text.len() - value_start);
            if value_len == 0 {
                continue;
            }
            at = value_start + value_len;
            return Some((name, &text[value_start..at]));
        }
        None
    })
}

/// The epoch being read: its number, where it came from, and its latest state.
#[derive(Debug)]
struct OpenEpoch {
    epoch: u32,
    from_header: bool,
    bar: Option<Bar>,
    /// A bar after this epoch's completed one started over (`evaluate`): ignore the rest.
    locked: bool,
}

#[derive(Debug, Default)]
struct Tracker {
    open: Option<OpenEpoch>,
    last_done: u32,
    /// Where the `Epoch N/M` headers go back (another `fit()`, a resume).
    runs: RunCounter,
    /// A resume is logging epochs already read: their bars are skipped.
    replaying: bool,
    /// The values of a state no longer needed, for the next line to write over.
    spare: Vec<(String, f64)>,
    ids: SeriesIds,
}

/// Names whose series handle is remembered: a Keras log prints the same few metrics on
/// every line; a log with more names than this still reads right, the rest found by name.
const REMEMBERED_NAMES: usize = 256;

/// Each metric name's series handle, so an epoch's values go to their series without
/// hashing each name on every line.
#[derive(Debug, Default)]
struct SeriesIds {
    known: Vec<(String, usize)>,
}

impl SeriesIds {
    /// `MetricsBuilder::push`, through the remembered handles.
    fn push(&mut self, builder: &mut MetricsBuilder, name: &str, epoch: u32, value: f64) {
        let id = match self.known.iter().find(|(known, _)| known == name) {
            Some(&(_, id)) => id,
            None => {
                let id = builder.series_id(name);
                // A name past `MAX_SERIES` has no series: asked for again each time, so
                // that each of its values is counted as left out, as `push` counts them.
                if id != usize::MAX && self.known.len() < REMEMBERED_NAMES {
                    self.known.push((name.to_string(), id));
                }
                id
            }
        };
        builder.push_id(id, epoch, value);
    }
}

impl Tracker {
    /// An `Epoch N/M` header. One that goes back to where the run began (`Epoch 1/15`
    /// after `Epoch 15/15`) starts another `fit()` call, a new run; one that goes back to
    /// the middle is a resume whose epochs already read are skipped.
    fn header(&mut self, epoch: u32, planned: u32, builder: &mut MetricsBuilder) {
        self.close(builder, false);
        // `fit(epochs=1)` called in a loop prints `Epoch 1/1` every time (Keras 1 and 2):
        // each call trains the same model one epoch further, so each is the next epoch,
        // and the header says nothing of how many epochs the loop runs.
        let epoch = if (epoch, planned) == (1, 1) {
            self.last_done.saturating_add(1)
        } else {
            builder.planned_epochs = Some(planned);
            epoch
        };
        match self.runs.see(f64::from(epoch), true, builder) {
            Count::Restarts => {
                self.last_done = 0;
                self.replaying = false;
            }
            Count::Replays => self.replaying = true,
            Count::Goes => self.replaying = false,
        }
        self.open = Some(OpenEpoch {
            epoch,
            from_header: true,
            bar: None,
            locked: self.replaying,
        });
    }

    fn bar(&mut self, bar: Bar, builder: &mut MetricsBuilder) {
        let next = self.last_done.saturating_add(1);
        let Some(open) = &mut self.open else {
            self.open = Some(OpenEpoch {
                epoch: next,
                from_header: false,
                bar: Some(bar),
                locked: false,
            });
            return;
        };
        if open.locked {
            return;
        }
        match &open.bar {
            Some(current) if !bar.continues(current) && current.is_complete() => {
                if open.from_header {
                    open.locked = true;
                } else {
                    self.close(builder, false);
                    let epoch = self.last_done.saturating_add(1);
                    self.open = Some(OpenEpoch {
                        epoch,
                        from_header: false,
                        bar: Some(bar),
                        locked: false,
                    });
                }
            }
            // A first state, the same bar further along, or an unfinished bar that
            // started over (the newer one is what runs now).
            _ => {
                if let Some(old) = open.bar.replace(bar) {
                    self.spare = old.values;
                }
            }
        }
    }

    /// Whether a state the file ends inside is whole enough to use.
    fn accepts_cut(&self, bar: &Bar) -> bool {
        let before = self
            .open
            .as_ref()
            .and_then(|o| o.bar.as_ref())
            .map_or(0, |b| b.values.len());
        bar.ends_whole && bar.values.len() >= before
    }

    fn close(&mut self, builder: &mut MetricsBuilder, at_end: bool) {
        let Some(open) = self.open.take() else {
            return;
        };
        let Some(bar) = open.bar else {
            return;
        };
        let steps = bar.total.filter(|_| !bar.per_sample);
        if bar.is_complete() {
            for (name, value) in &bar.values {
                self.ids.push(builder, name, open.epoch, *value);
            }
            builder.rows += 1;
            self.last_done = open.epoch;
            if steps.is_some() {
                builder.steps_per_epoch = steps;
            }
            self.spare = bar.values;
        } else if at_end {
            // Running means of an epoch still under way: shown, never a series value.
            if builder.steps_per_epoch.is_none() {
                builder.steps_per_epoch = steps;
            }
            builder.partial = Some(PartialEpoch {
                epoch: open.epoch,
                steps_done: bar.step.unwrap_or(0),
                steps_total: bar.total,
                values: bar.values,
            });
        }
        // An unfinished epoch followed by a new header was interrupted: nothing to keep.
    }

    fn finish(&mut self, builder: &mut MetricsBuilder) {
        self.close(builder, true);
    }
}

#[cfg(test)]
// Losses at chance level (0.6931 = ln 2 and 2.3026 = ln 10, to the 4 decimals Keras and
// the HF Trainer print) are the logged data under test, not approximations of constants.
#[allow(clippy::approx_constant)]
mod tests {
    use super::*;

    #[test]
    fn hand_matchers_agree_with_the_regexes_on_ascii() {
        let lines = [
            "Epoch 3/5",
            "Epoch 3/",
            "Epoch /5",
            "Epoch 3/5 ",
            "Epoch 3x/5",
            "Epoch 12/1000000",
            "Epoch 99999999999/5",
            "3038/3038 - 207s",
            "347/3038 [==",
            "7/Unknown 2s",
            "7/Unknown",
            "7/Unknownx",
            "7/12x",
            "7/",
            "12/34",
            "12/34\t- loss: 1",
            "1/2[",
            "- 207s - loss: 0.6935",
            "224s - loss: 3.5",
            "224s",
            "224",
            "224sx",
            "- s",
            "-  207s",
            "100/100 - 1s - 13ms/step",
            "12/34\x0b-",
        ];
        for line in lines {
            let header = HEADER
                .captures(line)
                .map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str()));
            assert_eq!(patterns::header(line), header, "{line:?}");
            let count = COUNT.captures(line).map(|c| {
                (
                    c.get(1).unwrap().as_str(),
                    c.get(2).unwrap().as_str(),
                    c.get(0).unwrap().end(),
                )
            });
            assert_eq!(patterns::count(line), count, "{line:?}");
            assert_eq!(
                patterns::countless(line),
                COUNTLESS.is_match(line),
                "{line:?}"
            );
        }
        for raw in [
            "0.1234",
            "-0.1234",
            "12.3456",
            "0.123",
            "0.12345",
            "1.2345e-04",
            "1.2345e+123",
            "1.2345e-4",
            "12.3456e-04",
            "1.2345E-04",
            "nan",
            "-nan",
            "inf",
            "-inf",
            "NaN",
            "--0.1234",
            "-",
            "",
            ".1234",
            "1.",
            "1.2345e",
            "1.2345e-",
            "1.2345e-0x",
            "a.1234",
        ] {
            assert_eq!(
                patterns::whole_value(raw).is_some(),
                WHOLE_VALUE.is_match(raw),
                "{raw:?}"
            );
            if patterns::whole_value(raw) == Some(patterns::Whole::Decimal) {
                assert_eq!(
                    fast_float2::parse::<f64, _>(raw).ok(),
                    parse_number(raw),
                    "{raw:?}"
                );
            }
        }
    }

    #[test]
    fn named_values_read_as_the_pattern_they_replace_did() {
        // The regex the hand-written reader replaced, as the oracle.
        let pattern = Regex::new(r"(?:^|\s)- ([A-Za-z_][^\s:]*): (\S+)").unwrap();
        for line in [
            "100/100 - 1s - 13ms/step - accuracy: 0.1151 - loss: 2.3007 - val_loss: nan",
            "- 207s - loss: 0.6935 - acc: 0.5032",
            " 3/10 [===>......] - ETA: 2s - loss: 1.2e-05 - lr: 1.0000e-04",
            "x- loss: 1 -loss: 2 - 9bad: 3 - ok:4 - fine: 5 - end: ",
            "- a: b- c: d - _x.y/z: -0.5  - \u{e9}t\u{e9}: 1",
            "",
            "-",
            "- ",
        ] {
            let expected: Vec<(&str, &str)> = pattern
                .captures_iter(line)
                .map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str()))
                .collect();
            assert_eq!(named_values(line).collect::<Vec<_>>(), expected, "{line:?}");
        }
    }
    use crate::metrics::testing::{ScratchFile, example, values};
    use crate::metrics::{Canonical, Format, Metrics, load_metrics};

    const SCRATCH: ScratchFile = ScratchFile {
        name: "train.log",
        format: Format::KerasLog,
    };

    fn partial_value(m: &Metrics, name: &str) -> f64 {
        m.partial
            .as_ref()
            .unwrap()
            .values
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
    }

    #[test]
    fn reads_seed_000_with_its_partial_third_epoch() {
        let m = load_metrics(&example("configs/examples/seed000/training.log"), None).unwrap();
        assert_eq!(m.format, Format::KerasLog);
        assert_eq!(m.rows, 2);
        assert_eq!(m.planned_epochs, Some(5));
        assert_eq!(m.steps_per_epoch, Some(3038));
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.6935), (2, 0.6933)]);
        assert_eq!(
            values(&m, Canonical::Accuracy),
            vec![(1, 0.5032), (2, 0.4973)]
        );
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 0.6931), (2, 0.6931)]
        );
        assert_eq!(
            values(&m, Canonical::ValAccuracy),
            vec![(1, 0.5051), (2, 0.5048)]
        );
        let partial = m.partial.as_ref().unwrap();
        assert_eq!(
            (partial.epoch, partial.steps_done, partial.steps_total),
            (3, 347, Some(3038))
        );
        assert_eq!(partial_value(&m, "accuracy"), 0.4930);
        assert_eq!(partial_value(&m, "loss"), 0.6933);
        assert_eq!(m.last_epoch(), Some(2));
    }

    #[test]
    fn reads_a_keras_3_terminal_capture() {
        let m = load_metrics(
            &example("configs/examples/formats/keras3_verbose1.log"),
            None,
        )
        .unwrap();
        assert_eq!(m.format, Format::KerasLog);
        assert_eq!(m.planned_epochs, Some(8));
        assert_eq!(m.steps_per_epoch, Some(1563));
        assert_eq!(m.rows, 6);
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss.len(), 6);
        assert_eq!(loss[0], (1, 1.5712));
        assert_eq!(loss[5], (6, 0.6618));
        let val = values(&m, Canonical::ValAccuracy);
        assert_eq!(val[5], (6, 0.7024));
        // e-notation survives
        assert_eq!(values(&m, Canonical::Lr)[5], (6, 5.0e-4));
        let partial = m.partial.as_ref().unwrap();
        assert_eq!((partial.epoch, partial.steps_done), (7, 912));
        assert_eq!(partial_value(&m, "loss"), 0.6241);
        assert!(partial.values.iter().all(|(n, _)| !n.starts_with("val_")));
    }

    #[test]
    fn reads_keras_2_bars_with_eta() {
        let m = load_metrics(
            &example("configs/examples/formats/keras2_verbose1.log"),
            None,
        )
        .unwrap();
        assert_eq!(m.format, Format::KerasLog);
        assert_eq!(m.planned_epochs, Some(6));
        assert_eq!(m.steps_per_epoch, Some(469));
        assert_eq!(m.rows, 6);
        assert!(m.partial.is_none());
        let val = values(&m, Canonical::ValLoss);
        assert_eq!(val.len(), 6);
        assert_eq!(val[0], (1, 0.1454));
        assert_eq!(values(&m, Canonical::Accuracy)[5], (6, 0.9912));
        assert_eq!(values(&m, Canonical::Lr)[0], (1, 1.0e-3));
    }

    #[test]
    fn reads_keras_3_verbose_2_with_early_stopping() {
        let m = load_metrics(
            &example("configs/examples/formats/keras3_verbose2.log"),
            None,
        )
        .unwrap();
        assert_eq!(m.format, Format::KerasLog);
        assert_eq!(m.planned_epochs, Some(20));
        assert_eq!(m.steps_per_epoch, Some(250));
        assert_eq!(m.rows, 7);
        let val = values(&m, Canonical::ValLoss);
        assert_eq!(val.len(), 7);
        assert_eq!(m.get(Canonical::ValLoss).unwrap().min().unwrap().epoch, 4);
        assert!(m.partial.is_none());
    }

    #[test]
    fn without_headers_each_completed_bar_is_an_epoch() {
        // fit(epochs=1) called in a loop: no `Epoch N/M`, one bar per call.
        let bar = |loss: &str| {
            format!(
                "\r 1/10 ━━━━━━━━━━━━━━━━━━━━ 1s 150ms/step - loss: 0.9000\u{8}\u{8}\r10/10 ━━━━━━━━━━━━━━━━━━━━ 2s 100ms/step - loss: {loss} - val_loss: 0.8000\n"
            )
        };
        let m = SCRATCH.load(&format!("{}{}{}", bar("0.7000"), bar("0.6000"), bar("nan")));
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss[..2], [(1, 0.7), (2, 0.6)]);
        assert!(loss[2].1.is_nan());
        assert_eq!(m.planned_epochs, None);
        assert_eq!(m.steps_per_epoch, Some(10));
    }

    #[test]
    fn an_evaluate_bar_after_the_last_epoch_is_not_an_epoch() {
        let m = SCRATCH.load(
            "Epoch 1/2\n10/10 ━━ 2s 100ms/step - loss: 0.5000 - val_loss: 0.6000\n\
             Epoch 2/2\n10/10 ━━ 2s 100ms/step - loss: 0.4000 - val_loss: 0.5000\n\
             \r1/4 ━━ 0s 10ms/step - loss: 0.9000\r4/4 ━━ 0s 10ms/step - loss: 0.5500\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.5), (2, 0.4)]);
        assert_eq!(m.steps_per_epoch, Some(10));
    }

    #[test]
    fn old_keras_samples_and_countless_lines() {
        let m = SCRATCH.load(
            "Train on 60000 samples\nEpoch 1/2\n60000/60000 [==============================] - 3s 50us/sample - loss: 0.2950 - acc: 0.9149\n\
             Epoch 2/2\n - 3s - loss: 0.1401 - acc: 0.9581\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.2950), (2, 0.1401)]);
        assert_eq!(
            values(&m, Canonical::Accuracy),
            vec![(1, 0.9149), (2, 0.9581)]
        );
        assert_eq!(m.steps_per_epoch, None);
    }

    #[test]
    fn a_state_cut_off_by_the_end_of_the_file_is_not_read() {
        let m = SCRATCH.load(
            "Epoch 1/3\n5/5 ━━ 1s - loss: 0.5000\nEpoch 2/3\n\r2/5 ━━ 1s - accuracy: 0.6100 - loss: 0.4100\r3/5 ━━ 1s - accuracy: 0.6",
        );
        let partial = m.partial.as_ref().unwrap();
        assert_eq!(partial.steps_done, 2);
        assert_eq!(partial_value(&m, "loss"), 0.41);
    }

    #[test]
    fn a_file_without_progress_has_no_values() {
        let e = SCRATCH
            .error("Epoch 1: val_accuracy improved from -inf to 0.50509\nINFO start\n")
            .to_string();
        assert!(
            e.contains("no metric values found (read as Keras console log)"),
            "{e}"
        );
        let e = load_metrics(
            &example("tests/fixtures/garbage.bin"),
            Some(Format::KerasLog),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn parses_each_kind_of_state() {
        let mut text = String::new();
        clean(
            "\u{1b}[1m 347/3038\u{1b}[0m \u{1b}[32m━━\u{1b}[0m\u{1b}[37m━━━━\u{1b}[0m \u{1b}[1m2:56\u{1b}[0m 65ms/step - accuracy: 0.4930 - loss: 6.9330e-01\u{8}\u{8}\u{8}"
                .as_bytes(),
            &mut text,
        );
        let State::Bar(bar) = parse_state(&text) else {
            panic!("{text:?}")
        };
        assert_eq!((bar.step, bar.total), (Some(347), Some(3038)));
        assert_eq!(
            bar.values,
            vec![("accuracy".into(), 0.493), ("loss".into(), 0.6933)]
        );
        assert!(bar.ends_whole && !bar.is_complete());
        let State::Bar(bar) =
            parse_state("  32/469 [>.............................] - ETA: 1:12 - loss: 2.3026")
        else {
            panic!()
        };
        assert_eq!(bar.values, vec![("loss".into(), 2.3026)]);
        assert_eq!(
            parse_state("Epoch 3/5"),
            State::Header {
                epoch: 3,
                planned: 5
            }
        );
        for other in [
            "Epoch 1: val_accuracy improved from -inf to 0.50509, saving model to m.keras",
            "2025-06-22 22:10:14.441 | 68935:8269531200 | INFO | src.process2:model_train:151 | 开始训练模型...",
            " Total params: 167,202 (653.13 KB)",
            "Epoch 3/5 extra",
        ] {
            assert_eq!(parse_state(other), State::Other, "{other}");
        }
        let mut erased = String::new();
        clean(b"abc\x08\x08xy\x08\x08\x08", &mut erased);
        assert_eq!(erased, "axy");
    }

    #[test]
    fn recognises_keras_output() {
        assert!(looks_like("Epoch 1/5\n"));
        assert!(looks_like(" Total params: 1\n\r 1/10 ━━ 1s - loss: 0.5000"));
        assert!(looks_like(
            "469/469 - 3s - 5ms/step - accuracy: 0.9541 - loss: 0.1571\n"
        ));
        assert!(!looks_like("Epoch 1: early stopping\nhello\n"));
        assert!(!looks_like("epoch,loss\n0,0.5\n"));
    }

    /// Two `fit()` calls with Keras 1 verbose 2, as the Kanji logs hold them: the duration
    /// starts each epoch line, an early-stopping line sits between header and values,
    /// and the second call drops validation.
    const KERAS1_TWO_FITS: &str = "Train on 40000 samples, validate on 10000 samples\n\
        Epoch 1/50\n\
        224s - loss: 3.5508 - acc: 0.2966 - val_loss: 1.4529 - val_acc: 0.5808\n\
        Epoch 2/50\n\
        Epoch 00001: early stopping\n\
        223s - loss: 1.0899 - acc: 0.6879 - val_loss: 0.7529 - val_acc: 0.7712\n\
        stopped after  2 epochs\n\
        Epoch 1/19\n\
        268s - loss: 3.7610 - acc: 0.2457\n\
        Epoch 2/19\n\
        268s - loss: 0.9657 - acc: 0.7191\n\
        Epoch 3/19\n\
        269s - loss: 0.6127 - acc: 0.8202\n";

    #[test]
    fn keras_1_verbose_2_lines_and_a_second_fit_as_a_new_run() {
        let m = SCRATCH.load(KERAS1_TWO_FITS);
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 3.761), (2, 0.9657), (3, 0.6127)]
        );
        assert_eq!(values(&m, Canonical::Accuracy)[2], (3, 0.8202));
        // the second fit logged no validation: the first fit's is not carried over
        assert!(m.get(Canonical::ValLoss).is_none());
        assert_eq!(m.planned_epochs, Some(19));
        assert_eq!(m.rows, 5);
        let phases = m.phases.as_ref().unwrap();
        assert_eq!(phases.count, 2);
        assert_eq!(phases.latest, (1, 3));
        assert_eq!(phases.earlier, vec![(1, 2)]);
        assert_eq!(phases.earlier_rows, 2);
        assert_eq!(
            m.warnings,
            vec![
                "1 earlier fit() call in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}3)"
            ]
        );
        assert!(looks_like(KERAS1_TWO_FITS));
        assert_eq!(
            parse_state("3083s - loss: 1.7197 - acc: 0.5893"),
            State::Bar(Bar {
                step: None,
                total: None,
                per_sample: false,
                values: vec![("loss".into(), 1.7197), ("acc".into(), 0.5893)],
                ends_whole: true,
            })
        );
    }

    #[test]
    fn keras_1_bars_and_tf_2_9_verbose_2_lines() {
        let m = SCRATCH.load(
            "Epoch 1/40\n127/127 [==============================] - 10s - loss: 194.3781 - val_loss: 0.3296\n\
             Epoch 2/40\n127/127 [==============================] - 7s - loss: 0.2349 - val_loss: 0.1870\n",
        );
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 0.3296), (2, 0.187)]
        );
        assert_eq!(m.steps_per_epoch, Some(127));
        let m = SCRATCH.load(
            "Epoch 1/100\r\n128/128 - 5s - loss: 3.1494 - accuracy: 0.1463 - 5s/epoch - 43ms/step\r\n\
             Epoch 2/100\r\n128/128 - 0s - loss: 2.9102 - accuracy: 0.1586 - 358ms/epoch - 3ms/step\r\n\
             Epoch 1/500\r\n128/128 - 0s - loss: 5.1100 - accuracy: 0.0500 - 351ms/epoch - 3ms/step\r\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 5.11)]);
        assert_eq!(m.planned_epochs, Some(500));
        assert_eq!(m.phases.as_ref().unwrap().earlier, vec![(1, 2)]);
        assert!(m.phases.as_ref().unwrap().latest == (1, 1));
        assert!(
            m.warnings[0].ends_with("judging the latest (epoch 1)"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn a_resume_that_logs_epochs_again_keeps_the_first_logging() {
        let m = SCRATCH.load(
            "Epoch 1/5\n - 3s - loss: 0.9000\nEpoch 2/5\n - 3s - loss: 0.8000\nEpoch 3/5\n - 3s - loss: 0.7000\n\
             Epoch 2/5\n - 3s - loss: 0.8100\nEpoch 3/5\n - 3s - loss: 0.7100\nEpoch 4/5\n - 3s - loss: 0.6000\n",
        );
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]
        );
        assert!(m.phases.is_none());
        assert_eq!(
            m.warnings,
            vec![
                "2 rows logged again what was already logged (a resume from a checkpoint); kept the first logging of each epoch"
            ]
        );
    }

    #[test]
    fn a_second_fit_still_in_its_first_epoch_leaves_only_a_partial() {
        let m = SCRATCH.load(
            "Epoch 1/2\n10/10 - 1s - loss: 0.5000\nEpoch 2/2\n10/10 - 1s - loss: 0.4000\n\
             Epoch 1/3\n\r 3/10 ━━ 1s - loss: 0.9000",
        );
        assert!(m.series.is_empty());
        assert_eq!(m.partial.as_ref().unwrap().epoch, 1);
        assert!(m.warnings[0].ends_with("judging the latest, which has no finished epoch yet"));
    }

    /// `text` as Windows PowerShell writes a redirected console: UTF-16 LE with a BOM, read
    /// with the format detected.
    fn read_utf16_capture(text: &str) -> Metrics {
        let mut bytes = vec![0xff, 0xfe];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("training_output.txt");
        std::fs::write(&path, &bytes).unwrap();
        load_metrics(&path, None).unwrap()
    }

    #[test]
    fn reads_a_utf16_capture_with_escapes() {
        let text = "Epoch 1/2\r\n\u{1b}[1m 1/49\u{1b}[0m \u{1b}[37m====\u{1b}[0m \u{1b}[1m1:06\u{1b}[0m 1s/step - accuracy: 0.0000e+00 - loss: 1.5527\r\n\
            \u{1b}[1m49/49\u{1b}[0m \u{1b}[32m====\u{1b}[0m\u{1b}[37m\u{1b}[0m \u{1b}[1m17s\u{1b}[0m 342ms/step - accuracy: 0.2205 - loss: 1.6100 - val_accuracy: 0.3100 - val_loss: 1.6000 - learning_rate: 1.0000e-03\r\n\
            Epoch 2/2\r\n\
            \u{1b}[1m49/49\u{1b}[0m \u{1b}[32m====\u{1b}[0m\u{1b}[37m\u{1b}[0m \u{1b}[1m17s\u{1b}[0m 342ms/step - accuracy: 0.3000 - loss: 1.5000 - val_accuracy: 0.3500 - val_loss: 1.5500 - learning_rate: 1.0000e-03\r\n";
        let m = read_utf16_capture(text);
        assert_eq!(m.format, Format::KerasLog);
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 1.6), (2, 1.55)]);
        assert_eq!(values(&m, Canonical::Lr)[1], (2, 1.0e-3));
        assert_eq!(m.steps_per_epoch, Some(49));
    }

    #[test]
    fn an_epoch_line_wrapped_by_powershell_is_read_whole() {
        // stderr through `2>&1` in Windows PowerShell: error records wrapped at the
        // console's width, after a space, UTF-16 with a BOM and ANSI colours
        let text = "Epoch 1/2\r\n\u{1b}[1m49/49\u{1b}[0m - 14s - 255ms/step - accuracy: 0.2196 - loss: \r\n\
            1.6121 - val_accuracy: 0.3144 - \r\nval_loss: 1.6042\r\n\
            Epoch 2/2\r\n\u{1b}[1m49/49\u{1b}[0m - 14s - 255ms/step - accuracy: 0.3196 - loss: 1.5121 \r\n\
            - val_accuracy: 0.3544 - val_loss: 1.5042\r\n\
            Epoch 2: val_loss improved from 1.60420 to 1.50420\r\n";
        let m = read_utf16_capture(text);
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 1.6121), (2, 1.5121)]);
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 1.6042), (2, 1.5042)]
        );
        assert_eq!(values(&m, Canonical::ValAccuracy)[0], (1, 0.3144));
        // other loggers' lines are not values
        assert!(!continues_values(
            "49/49 - loss: 1.0",
            "Epoch 2: val_loss improved"
        ));
        assert!(!continues_values(
            "49/49 - loss: 1.0",
            "Restoring model weights"
        ));
        assert!(continues_values("49/49 - loss:", "1.0 - acc: 0.5"));
    }

    #[test]
    fn fit_for_one_epoch_in_a_loop_is_one_run() {
        let m = SCRATCH.load(
            "Epoch 1/1\n - 3s - loss: 0.9000\nEpoch 1/1\n - 3s - loss: 0.8000\nEpoch 1/1\n - 3s - loss: 0.7000\n",
        );
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 0.9), (2, 0.8), (3, 0.7)]
        );
        assert!(m.phases.is_none() && m.warnings.is_empty());
        assert_eq!(m.planned_epochs, None);
    }
}
