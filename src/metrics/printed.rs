//! Reads epoch lines a training script printed itself, one or more per epoch:
//!
//! ```text
//! Epoch 1 - loss: 0.3178, accuracy: 0.8922, val_loss: 1.3629, val_accuracy: 0.5776
//! Epoch [1/5], Step [100/600], Loss: 0.2241
//! 2024-03-01 12:00:03 INFO epoch 3: train_loss=0.52 | val_loss=0.61 | val_acc=80.1%
//! Epoch: 4 Train Loss: 0.4410 Val Loss: 0.5874
//! ```
//!
//! A line is an epoch line when the word `epoch` (any case, not inside another word) is
//! followed by its number (`3`, `3/10`, `[3/10]`, `(3 of 10)`) and at least one
//! `name: value` or `name=value` pair follows. Names are what stands between the previous
//! value (or separator) and the `:`/`=`, lower-cased with spaces as `_` (`Train Loss` is
//! `train_loss`), so the usual names resolve to the canonical series; a value must be a
//! whole number token (a trailing `%` is a percentage, read as the number). Several lines
//! of one epoch (a step loop) are averaged into it, as every reader's step rows are. The
//! epoch counter going back is another run or a resume (`RunCounter`); a count from 0 is
//! shifted to the 1-based epochs every reader uses. Lines that are not epoch lines (model
//! summaries, warnings, `Epoch 3: val_loss improved from …`) are skipped. Keras' own
//! console output is the Keras log format, detected first.

use std::io::BufReader;
use std::path::Path;

use super::keras_log::{clean, read_segment};
use super::nonfinite::parse_number;
use super::{Count, MetricsBuilder, RunCounter, text};
use crate::error::{Error, Result};

/// Bytes read per refill (as the Keras log reader).
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Longest metric name read: a name is a few words; longer text before a `:` is prose.
const MAX_NAME_CHARS: usize = 48;
/// Where in a line the word `epoch` may start: after a timestamp and a logger's level and
/// name (`2024-03-01 12:00:03,114 - trainer - INFO - `), not deep inside a sentence.
const MAX_PREFIX_CHARS: usize = 80;
/// Epoch lines among the first lines of a file that make it this format: one line is a
/// sentence that happens to mention an epoch.
const MIN_LINES_TO_DETECT: usize = 2;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, text::open(path)?);
    let mut raw = Vec::new();
    let mut line = String::new();
    let mut epochs = Epochs::default();
    let mut pairs: Vec<(String, f64)> = Vec::new();
    // The latest tqdm redraw of an epoch's bar: the next redraw of the same epoch replaces
    // it, so only the last (the epoch's values) is read.
    let mut bar: Option<(EpochLine, Vec<(String, f64)>)> = None;
    // The epoch a header line (`epoch   3` alone) opened, for the value lines after it.
    let mut header: Option<EpochLine> = None;
    while read_segment(&mut reader, &mut raw)
        .map_err(|e| Error::read(path, &e))?
        .is_some()
    {
        clean(&raw, &mut line);
        let epoch = match classify(&line, &mut pairs, header.is_some()) {
            Line::Epoch(epoch) => {
                header = None;
                epoch
            }
            Line::Header(epoch) => {
                header = Some(epoch);
                continue;
            }
            // A progress bar with no epoch number in it after a header is a batch bar (of
            // the next epoch, when the header comes at an epoch's end, as a Keras tqdm
            // callback logs it): its running values are not the epoch's.
            Line::Values if line.contains("%|") => continue,
            // A value line of the epoch a header opened: the epoch's values, each line
            // adding to them as a step line of that epoch does.
            Line::Values => match &header {
                Some(h) => EpochLine {
                    number: h.number,
                    planned: h.planned,
                },
                None => continue,
            },
            Line::Other => continue,
        };
        let redraw = line.contains("%|");
        if let Some((earlier, values)) = bar.take()
            && !(redraw && earlier.number == epoch.number)
        {
            epochs.take(earlier, values, builder);
        }
        if redraw {
            bar = Some((epoch, std::mem::take(&mut pairs)));
        } else {
            epochs.take(epoch, std::mem::take(&mut pairs), builder);
        }
    }
    if let Some((epoch, values)) = bar {
        epochs.take(epoch, values, builder);
    }
    Ok(())
}

/// The epoch counter of the lines read so far.
#[derive(Default)]
struct Epochs {
    counter: RunCounter,
    zero_based: Option<bool>,
}

impl Epochs {
    /// One epoch line's values into the builder, at its 1-based epoch.
    fn take(&mut self, epoch: EpochLine, values: Vec<(String, f64)>, builder: &mut MetricsBuilder) {
        builder.rows += 1;
        match self.counter.see(f64::from(epoch.number), false, builder) {
            Count::Replays => return,
            Count::Restarts => self.zero_based = None,
            Count::Goes => {}
        }
        let base = *self.zero_based.get_or_insert(epoch.number == 0);
        let number = if base {
            epoch.number.saturating_add(1)
        } else {
            epoch.number.max(1)
        };
        if let Some(planned) = epoch.planned {
            builder.planned_epochs = Some(planned);
        }
        for (name, value) in values {
            builder.push(&name, number, value);
        }
    }
}

/// True when the first bytes of a file hold `MIN_LINES_TO_DETECT` epoch lines.
pub fn looks_like(text: &str) -> bool {
    let mut pairs = Vec::new();
    let mut clean_line = String::new();
    let mut in_epoch = false;
    let mut found = 0;
    for line in text.lines() {
        clean(line.as_bytes(), &mut clean_line);
        match classify(&clean_line, &mut pairs, in_epoch) {
            Line::Epoch(_) => found += 1,
            Line::Header(_) => in_epoch = true,
            // Counted once per header: the values that make its epoch.
            Line::Values => {
                found += 1;
                in_epoch = false;
            }
            Line::Other => {}
        }
        if found >= MIN_LINES_TO_DETECT {
            return true;
        }
    }
    false
}

#[derive(Debug, PartialEq)]
struct EpochLine {
    number: u32,
    planned: Option<u32>,
}

/// The epoch of an epoch line, its `name: value` pairs left in `pairs` (cleared first).
fn epoch_line(line: &str, pairs: &mut Vec<(String, f64)>) -> Option<EpochLine> {
    pairs.clear();
    let (at, epoch) = epoch_token(line)?;
    named_values(&line[at..], pairs);
    (!pairs.is_empty()).then_some(epoch)
}

/// A line that is only an epoch's number (`epoch   3`, `Epoch 3:`, `=== Epoch 3 ===`): the
/// values of that epoch follow on the lines after it.
fn epoch_header(line: &str) -> Option<EpochLine> {
    let (at, epoch) = epoch_token(line)?;
    line[at..]
        .chars()
        .all(|c| c.is_whitespace() || matches!(c, ':' | '=' | '-' | '*' | '#'))
        .then_some(epoch)
}

/// What one line is to the reader: an epoch line with its values, an epoch header, or
/// values of the epoch a header opened.
enum Line {
    Epoch(EpochLine),
    Header(EpochLine),
    Values,
    Other,
}

fn classify(line: &str, pairs: &mut Vec<(String, f64)>, in_epoch: bool) -> Line {
    if let Some(epoch) = epoch_line(line, pairs) {
        return Line::Epoch(epoch);
    }
    if let Some(epoch) = epoch_header(line) {
        return Line::Header(epoch);
    }
    if in_epoch && epoch_token(line).is_none() {
        named_values(line, pairs);
        if !pairs.is_empty() {
            return Line::Values;
        }
    }
    Line::Other
}

/// The word `epoch` with its number, and where the text after them starts.
fn epoch_token(line: &str) -> Option<(usize, EpochLine)> {
    let bytes = line.as_bytes();
    let head = &bytes[..bytes.len().min(MAX_PREFIX_CHARS + 5)];
    let mut from = 0;
    loop {
        let found = head
            .get(from..)?
            .windows(5)
            .position(|w| w.eq_ignore_ascii_case(b"epoch"))?
            + from;
        from = found + 5;
        if found > MAX_PREFIX_CHARS {
            return None;
        }
        if found > 0 && (bytes[found - 1].is_ascii_alphanumeric() || bytes[found - 1] == b'_') {
            continue;
        }
        // `Epoch`, `Epoch:`, `epoch=`, `EPOCH [`, `Epoch #` before the number.
        let mut at = found + 5;
        while at < bytes.len() && matches!(bytes[at], b' ' | b':' | b'=' | b'[' | b'(' | b'#') {
            at += 1;
        }
        let (number, after) = digits(bytes, at)?;
        let mut at = after;
        // `/10`, ` / 10`, ` of 10`.
        let mut planned = None;
        let mut look = at;
        while look < bytes.len() && bytes[look] == b' ' {
            look += 1;
        }
        let rest = &bytes[look..];
        let total_at = if rest.starts_with(b"/") {
            Some(look + 1)
        } else if rest
            .get(..3)
            .is_some_and(|r| r.eq_ignore_ascii_case(b"of "))
        {
            Some(look + 3)
        } else {
            None
        };
        if let Some(mut t) = total_at {
            while t < bytes.len() && bytes[t] == b' ' {
                t += 1;
            }
            if let Some((total, end)) = digits(bytes, t) {
                planned = Some(total);
                at = end;
            }
        }
        while at < bytes.len() && matches!(bytes[at], b']' | b')') {
            at += 1;
        }
        // The number must end there: `epoch 3.5`, `epochs 12ms` are not an epoch line.
        if at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'.') {
            continue;
        }
        return Some((
            at,
            EpochLine {
                number,
                planned: planned.filter(|&p| p >= number),
            },
        ));
    }
}

/// The decimal number at `at`, and where it ends (at most 9 digits: an epoch count).
fn digits(bytes: &[u8], at: usize) -> Option<(u32, usize)> {
    let end = bytes[at.min(bytes.len())..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count()
        + at;
    if end == at || end - at > 9 {
        return None;
    }
    let text = std::str::from_utf8(&bytes[at..end]).ok()?;
    Some((text.parse().ok()?, end))
}

/// Every `name: value` and `name=value` pair of the text after the epoch number, in
/// order. A name runs back from the `:` or `=` to the previous pair, separator (`,` `|`
/// `;` ` - ` tab) or bracket; a value is the token after it, up to whitespace, a
/// separator or a `:` (tqdm's description ends in one before the bar), and must be a number
/// (a trailing `%` allowed).
fn named_values(text: &str, pairs: &mut Vec<(String, f64)>) {
    let bytes = text.as_bytes();
    let mut name_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        if !matches!(bytes[at], b':' | b'=') {
            at += 1;
            continue;
        }
        let name = metric_name(&text[name_from..at]);
        let mut v = at + 1;
        while v < bytes.len() && bytes[v] == b' ' {
            v += 1;
        }
        let end = bytes[v..]
            .iter()
            .position(|&b| {
                b.is_ascii_whitespace() || matches!(b, b',' | b'|' | b';' | b']' | b')' | b':')
            })
            .map_or(bytes.len(), |n| v + n);
        let token = &text[v..end];
        let number = token.strip_suffix('%').unwrap_or(token);
        match (name, parse_number(number)) {
            (Some(name), Some(value)) if !number.is_empty() => {
                pairs.push((name, value));
                name_from = end;
                at = end;
            }
            // Not a pair: what follows may hold one (`epoch 3: train_loss=0.52`).
            _ => {
                name_from = at + 1;
                at += 1;
            }
        }
    }
}

/// The metric name in the text before a `:`/`=`: its last part after a separator, trimmed,
/// lower-cased, spaces as `_`; `None` when that is not a name (empty, too long, not
/// starting with a letter, holding other punctuation).
fn metric_name(before: &str) -> Option<String> {
    let part = before
        .rsplit([',', '|', ';', '\t', '[', '(', ']', ')'])
        .next()
        .unwrap_or(before);
    let part = part.rsplit(" - ").next().unwrap_or(part);
    let part = part.trim_matches(|c: char| c.is_whitespace() || c == '-');
    let ok = !part.is_empty()
        && part.chars().count() <= MAX_NAME_CHARS
        && part.starts_with(|c: char| c.is_ascii_alphabetic())
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '/' | '.' | '-' | '@'));
    ok.then(|| {
        // `TrainLoss` is `train_loss`, `ValAcc` `val_acc`: a capital after a small letter
        // or a digit starts a word.
        let mut name = String::with_capacity(part.len() + 4);
        let mut previous = ' ';
        for c in part.chars() {
            if c.is_ascii_uppercase()
                && (previous.is_ascii_lowercase() || previous.is_ascii_digit())
            {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
            previous = c;
        }
        name.split_whitespace().collect::<Vec<_>>().join("_")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Canonical;
    use crate::metrics::Format;
    use crate::metrics::testing::{ScratchFile, values};

    const PRINTED: ScratchFile = ScratchFile {
        name: "train.log",
        format: Format::Printed,
    };

    fn line(text: &str) -> Option<(EpochLine, Vec<(String, f64)>)> {
        let mut pairs = Vec::new();
        epoch_line(text, &mut pairs).map(|e| (e, pairs))
    }

    #[test]
    fn reads_the_lines_scripts_print() {
        let (e, p) = line(
            "Epoch 1 - loss: 0.3178, accuracy: 0.8922, val_loss: 1.3629, val_accuracy: 0.5776",
        )
        .unwrap();
        assert_eq!((e.number, e.planned), (1, None));
        assert_eq!(p[0], ("loss".to_string(), 0.3178));
        assert_eq!(p[3], ("val_accuracy".to_string(), 0.5776));
        let (e, p) = line("Epoch [3/5], Step [100/600], Loss: 0.2241").unwrap();
        assert_eq!((e.number, e.planned), (3, Some(5)));
        assert_eq!(p, vec![("loss".to_string(), 0.2241)]);
        let (e, p) = line(
            "2024-03-01 12:00:03 INFO epoch 3: train_loss=0.52 | val_loss=0.61 | val_acc=80.1%",
        )
        .unwrap();
        assert_eq!(e.number, 3);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["train_loss", "val_loss", "val_acc"]);
        assert_eq!(p[2].1, 80.1);
        let (e, p) = line("Epoch: 4 Train Loss: 0.4410 Val Loss: 0.5874").unwrap();
        assert_eq!(e.number, 4);
        assert_eq!(
            p,
            vec![
                ("train_loss".to_string(), 0.441),
                ("val_loss".to_string(), 0.5874)
            ]
        );
        // A tqdm bar whose description carries the values.
        let (e, p) = line(
            "Epoch [10/10], Loss: 0.485, Acc: 0.827, F1-Score: 0.827: 100%|██████████| 35/35 [04:03<00:00,  6.95s/it]",
        )
        .unwrap();
        assert_eq!(e.number, 10);
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["loss", "acc", "f1-score"]);
        let (e, _) = line("EPOCH (2 of 10) loss=nan").unwrap();
        assert_eq!((e.number, e.planned), (2, Some(10)));
    }

    #[test]
    fn other_lines_are_not_epoch_lines() {
        for text in [
            "Epoch 3: val_loss improved from 0.61 to 0.52, saving model to best.h5",
            "Epoch 00005: ReduceLROnPlateau reducing learning rate to 0.0001.",
            "Epoch 1/10",
            "training for 8 epochs: lr=0.001",
            "the epoch 3.5 checkpoint: loss=0.2",
            "Total params: 167,202",
            "",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}epoch 1 loss",
        ] {
            assert!(line(text).is_none(), "{text}");
        }
        // Text that is not ASCII next to where a count of epochs could stand is read byte
        // by byte, never cut inside a character.
        let (e, p) = line("Epoch 3 of\u{e9}: loss: 1").unwrap();
        assert_eq!((e.number, e.planned, p.len()), (3, None, 1));
    }

    #[test]
    fn steps_average_into_their_epoch_and_a_count_from_zero_is_shifted() {
        let log = "Epoch [0/2], Step [1/2], Loss: 1.0\nEpoch [0/2], Step [2/2], Loss: 0.5\n\
                   Epoch [1/2], Step [1/2], Loss: 0.25\nEpoch [1/2], Step [2/2], Loss: 0.25\n";
        let m = PRINTED.load(log);
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.75), (2, 0.25)]);
        assert_eq!(m.planned_epochs, Some(2));
    }

    #[test]
    fn of_a_tqdm_bar_redrawn_in_place_only_the_last_drawing_counts() {
        let log = "Epoch [1/2], Loss: 2.0:  50%|#####     | 1/2\rEpoch [1/2], Loss: 1.0: 100%|##########| 2/2\n\
                   Epoch [2/2], Loss: 0.8:  50%|#####     | 1/2\rEpoch [2/2], Loss: 0.6: 100%|##########| 2/2\n";
        let m = PRINTED.load(log);
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 1.0), (2, 0.6)]);
    }

    #[test]
    fn an_epoch_header_with_its_values_on_the_lines_after() {
        let log = "epoch   1\nloss: 6.608444\ntest accuracy: 20.78%, (512570/2466133)\n\
                   epoch   2\nloss: 5.523848\ntest accuracy: 24.24%, (597769/2466093)\n";
        assert!(looks_like(log));
        let m = PRINTED.load(log);
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 6.608444), (2, 5.523848)]
        );
        // A header logged at the epoch's end (a Keras tqdm callback through `logging`): its
        // value lines are the epoch's; the batch bars of the next epoch after them are not.
        let log = "10%|#| 5/171 [00:01, 4.7batch/s, accuracy=0.0125, loss=5.22]\n\
                   Epoch 1: \nloss=4.8200, accuracy=0.0190, \nval_loss=4.3600, val_accuracy=0.0425\n\
                   10%|#| 1/10 [00:26, 26.86s/epoch, accuracy=0.019, loss=4.82]\n\
                   1%|| 1.00/171 [00:00, 1.07batch/s, accuracy=0.2, loss=3.9]\n\
                   Epoch 2: \nloss=3.7617, accuracy=0.1390, \nval_loss=3.4104, val_accuracy=0.1978\n";
        let m = PRINTED.load(log);
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 4.82), (2, 3.7617)]);
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 4.36), (2, 3.4104)]);
        // Camel-case names are words: `TrainLoss` is the training loss.
        let (_, p) = line("Epoch [008/30] TrainLoss=1.1406 TrainAcc=63.89% | ValLoss=1.1442 ValAcc=65.14% | LR=1.00e-04 | Time=407.5s").unwrap();
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["train_loss", "train_acc", "val_loss", "val_acc", "lr"]
        );
    }

    #[test]
    fn a_second_run_in_the_file_is_judged_alone() {
        let log = "Epoch 1 - loss: 2.0\nEpoch 2 - loss: 1.5\nEpoch 3 - loss: 1.2\n\
                   Epoch 1 - loss: 0.9\nEpoch 2 - loss: 0.8\n";
        let m = PRINTED.load(log);
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.9), (2, 0.8)]);
    }

    #[test]
    fn detection_needs_two_epoch_lines() {
        assert!(looks_like(
            "hello\nEpoch 1 - loss: 0.5\nEpoch 2 - loss: 0.4\n"
        ));
        assert!(!looks_like("Epoch 1 - loss: 0.5\nthat was the only one\n"));
    }
}
