//! Non-finite numbers as data, and JSON read the way Python writes it. A diverged run logs
//! `nan` and `inf`, and those values are the evidence the divergence detector needs, so no
//! reader may reject them. Python's `json.dumps` writes them as bare `NaN`, `Infinity` and
//! `-Infinity`, which is not JSON and which serde_json refuses; `NonFinite` is a `Read`
//! adapter that quotes those tokens (outside strings) as the bytes stream past, so
//! serde_json can still read the file in one pass without holding it. `Scalar` is a JSON
//! value where a metric may stand (a number, or such a quoted token), `parse_number` reads
//! a CSV cell or a log value as Python prints floats, and the `json_*` helpers open a JSON
//! file through the adapter and word serde_json's errors as `file:line:column: message`.
//! Which fields are metrics is left to the format readers.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::text::{self, TextFile};
use crate::error::Error;

/// Python's spellings of the non-finite floats, as `json.dumps` writes them.
const TOKENS: [&[u8]; 3] = [b"NaN", b"Infinity", b"-Infinity"];
/// Longest token above: a candidate never needs more room than this.
const LONGEST_TOKEN: usize = 9;
/// Longest JSON string (a key or a text value) read. The strings of a metrics file are
/// metric names, phases, ids and paths, a few dozen bytes; serde_json holds a whole string
/// (twice, when it becomes a key), so one string of the file's size (a 200 MB snapshot
/// that is one long text) would cost twice that. Past 1 MiB the read stops with an error.
pub const MAX_STRING_BYTES: u64 = 1024 * 1024;
/// Output one input byte can produce at most: a held candidate (`LONGEST_TOKEN - 1` bytes)
/// given back plus the byte itself, or a whole token with its two quotes.
const PENDING_CAPACITY: usize = LONGEST_TOKEN + 2;

/// A number as Python prints one, including `nan`, `NaN`, `inf`, `-inf`, `Infinity`.
/// Rust's float parser already accepts those spellings (case-insensitively) and
/// e-notation; it rejects what Python never prints as a float (`0x10`, `1_000`).
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

/// How logs spell "no value" where a number would stand: empty, `NA`, `n/a`, `None`
/// (Python's `str(None)`), `null`.
pub fn is_no_value(text: &str) -> bool {
    let text = text.trim();
    ["", "na", "n/a", "none", "null"]
        .iter()
        .any(|spelling| text.eq_ignore_ascii_case(spelling))
}

/// A JSON value in a place where a metric may stand.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A number, or a quoted `"NaN"`/`"Infinity"`/`"-Infinity"` (ours or MLflow's).
    Number(f64),
    /// Any other string (a phase, a session id, a path).
    Text(String),
    /// `null`: no value, as in a Keras history column that skipped an epoch.
    Missing,
    /// A bool, list or object: not a metric value.
    Other,
}

impl Scalar {
    pub fn number(&self) -> Option<f64> {
        match self {
            Scalar::Number(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as an error message quotes it.
    pub fn describe(&self) -> String {
        match self {
            Scalar::Number(v) => v.to_string(),
            Scalar::Text(t) => format!("{t:?}"),
            Scalar::Missing => "null".to_string(),
            Scalar::Other => "a list, object or bool".to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        // Only the non-finite spellings count as numbers: a string "0.5" in a JSON file is
        // text someone chose to quote (a config value), not a logged metric.
        Ok(match parse_number(v).filter(|n| !n.is_finite()) {
            Some(n) => Scalar::Number(n),
            None => Scalar::Text(v.to_string()),
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Missing)
    }

    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Missing)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

/// Quotes Python's bare `NaN`, `Infinity` and `-Infinity` outside JSON strings, so that
/// serde_json reads them as strings. Everything else passes through unchanged, byte for
/// byte. Tokens split across the inner reader's buffers are recognised all the same.
///
/// serde_json reports positions in the rewritten stream: the line is right, the column is
/// two further right per token quoted earlier on that line.
///
/// It also bounds the strings (`MAX_STRING_BYTES`): it is the one pass over every byte of
/// a JSON metrics file, and it knows where strings begin and end.
pub struct NonFinite<R> {
    inner: R,
    scanner: Scanner,
    pending: Pending,
    /// Input bytes consumed before the current chunk.
    consumed: u64,
}

impl<R: BufRead> NonFinite<R> {
    pub fn new(inner: R) -> Self {
        NonFinite {
            inner,
            scanner: Scanner::default(),
            pending: Pending::default(),
            consumed: 0,
        }
    }

    fn string_too_long(&self) -> io::Error {
        crate::input::exceeded(format!(
            "a JSON string (a key or a text value) longer than {}, starting at byte {}; a metrics file's strings are names, phases and ids",
            crate::input::size_text(MAX_STRING_BYTES),
            self.scanner.string_start
        ))
    }
}

impl<R: BufRead> Read for NonFinite<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut written = self.pending.drain_into(buf);
        while written < buf.len() {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                self.scanner.finish(&mut self.pending);
                written += self.pending.drain_into(&mut buf[written..]);
                break;
            }
            let mut used = 0;
            while used < chunk.len() && written < buf.len() && self.pending.is_empty() {
                if self.scanner.is_plain() {
                    // Copy ordinary bytes in one go: most of a file is digits and keys.
                    let room = (buf.len() - written).min(chunk.len() - used);
                    let run = chunk[used..used + room]
                        .iter()
                        .position(|&b| self.scanner.is_special(b))
                        .unwrap_or(room);
                    buf[written..written + run].copy_from_slice(&chunk[used..used + run]);
                    written += run;
                    used += run;
                    if self.scanner.in_string {
                        self.scanner.string_bytes += run as u64;
                    }
                    if run == room {
                        continue;
                    }
                }
                self.scanner
                    .feed(chunk[used], self.consumed + used as u64, &mut self.pending);
                used += 1;
                written += self.pending.drain_into(&mut buf[written..]);
            }
            self.inner.consume(used);
            self.consumed += used as u64;
            if self.scanner.string_bytes > MAX_STRING_BYTES {
                return Err(self.string_too_long());
            }
            if written > 0 {
                break;
            }
        }
        Ok(written)
    }
}

/// Where the adapter is in the JSON text: inside a string (and after a backslash), or
/// holding the first bytes of what may be a non-finite token.
#[derive(Debug, Default)]
struct Scanner {
    in_string: bool,
    escaped: bool,
    /// Where the current (or last) string began, and its bytes so far.
    string_start: u64,
    string_bytes: u64,
    candidate: [u8; LONGEST_TOKEN],
    candidate_len: usize,
}

impl Scanner {
    /// True when the next byte passes through unless it is special.
    fn is_plain(&self) -> bool {
        self.candidate_len == 0 && !self.escaped
    }

    fn is_special(&self, b: u8) -> bool {
        if self.in_string {
            b == b'"' || b == b'\\'
        } else {
            matches!(b, b'"' | b'N' | b'I' | b'-')
        }
    }

    /// Takes input byte `b`, found at byte offset `at`.
    fn feed(&mut self, b: u8, at: u64, out: &mut Pending) {
        if self.in_string {
            self.string_bytes += 1;
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            out.push(b);
            return;
        }
        if self.candidate_len > 0 {
            let len = self.candidate_len + 1;
            self.candidate[self.candidate_len] = b;
            let held = &self.candidate[..len];
            if let Some(token) = TOKENS.iter().find(|t| t.starts_with(held)) {
                if token.len() == len {
                    out.push(b'"');
                    out.extend(held);
                    out.push(b'"');
                    self.candidate_len = 0;
                } else {
                    self.candidate_len = len;
                }
                return;
            }
            // Not a token after all (`-1.5`, `Nonsense`): the held bytes were plain text,
            // and `b` starts afresh.
            out.extend(&self.candidate[..self.candidate_len]);
            self.candidate_len = 0;
        }
        match b {
            b'"' => {
                self.in_string = true;
                self.string_start = at;
                self.string_bytes = 0;
                out.push(b);
            }
            b'N' | b'I' | b'-' => {
                self.candidate[0] = b;
                self.candidate_len = 1;
            }
            _ => out.push(b),
        }
    }

    /// The input ended: a held prefix was plain text.
    fn finish(&mut self, out: &mut Pending) {
        out.extend(&self.candidate[..self.candidate_len]);
        self.candidate_len = 0;
    }
}

/// Bytes produced but not yet handed to the caller's buffer.
#[derive(Debug, Default)]
struct Pending {
    bytes: [u8; PENDING_CAPACITY],
    start: usize,
    end: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.start == self.end
    }

    fn push(&mut self, b: u8) {
        self.bytes[self.end] = b;
        self.end += 1;
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.bytes[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
    }

    fn drain_into(&mut self, buf: &mut [u8]) -> usize {
        let n = (self.end - self.start).min(buf.len());
        buf[..n].copy_from_slice(&self.bytes[self.start..self.start + n]);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        n
    }
}

/// A JSON file opened for one streaming pass: buffered file, non-finite tokens quoted,
/// buffered again because serde_json reads its input a byte at a time.
pub type JsonReader = BufReader<NonFinite<BufReader<TextFile>>>;

pub fn open_json(
    path: &Path,
) -> Result<serde_json::Deserializer<serde_json::de::IoRead<JsonReader>>, Error> {
    let file = text::open(path)?;
    let reader = BufReader::new(NonFinite::new(BufReader::new(file)));
    Ok(serde_json::Deserializer::from_reader(reader))
}

/// A serde_json error as `file:line:column: message`, the line counted from `first_line`
/// (JSON Lines parse one line at a time). Read failures keep their own wording, and a
/// limit passed its own message (`crate::input`).
pub fn json_error(path: &Path, first_line: usize, err: serde_json::Error) -> Error {
    if err.io_error_kind().is_some() {
        return crate::input::read_error(path, &io::Error::from(err));
    }
    if first_line == 1 {
        return Error::json(path, &err);
    }
    let text = err.to_string();
    let message = text.rfind(" at line ").map_or(&text[..], |i| &text[..i]);
    let line = first_line + err.line().saturating_sub(1);
    Error::at(path, line as u64, Some(err.column() as u64), message)
}

#[cfg(test)]
// Losses at chance level (0.6931 = ln 2 and 2.3026 = ln 10, to the 4 decimals Keras and
// the HF Trainer print) are the logged data under test, not approximations of constants.
#[allow(clippy::approx_constant)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, so tokens fall across buffer boundaries.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn rewrite(input: &str, inner_step: usize, outer_buf: usize) -> String {
        let inner = BufReader::with_capacity(
            inner_step,
            Trickle {
                data: input.as_bytes(),
                step: inner_step,
            },
        );
        let mut adapter = NonFinite::new(inner);
        let mut out = Vec::new();
        let mut buf = vec![0u8; outer_buf];
        loop {
            let n = adapter.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(out).unwrap()
    }

    const INPUT: &str = r#"{"loss": [0.5, NaN, Infinity, -Infinity, -1.5e-3], "s": "NaN \"Infinity\" \\", "Nx": -0, "N": null, "验证": NaN}"#;
    const WANT: &str = r#"{"loss": [0.5, "NaN", "Infinity", "-Infinity", -1.5e-3], "s": "NaN \"Infinity\" \\", "Nx": -0, "N": null, "验证": "NaN"}"#;

    #[test]
    fn quotes_bare_tokens_whatever_the_buffer_sizes() {
        for inner_step in 1..=INPUT.len() {
            for outer_buf in [1, 2, 3, 7, 64] {
                assert_eq!(
                    rewrite(INPUT, inner_step, outer_buf),
                    WANT,
                    "inner {inner_step}, outer {outer_buf}"
                );
            }
        }
    }

    #[test]
    fn leaves_ordinary_json_and_unfinished_prefixes_alone() {
        for text in [
            r#"{"a": -1, "b": "I", "c": [Nul]}"#,
            "Infin",
            "-",
            "",
            r#"{"NaN": "\\"}"#,
        ] {
            for step in 1..=text.len().max(1) {
                assert_eq!(rewrite(text, step, 5), text, "{text:?} step {step}");
            }
        }
    }

    #[test]
    fn rewritten_stream_parses_to_scalars() {
        let reader = NonFinite::new(INPUT.as_bytes());
        let value: std::collections::BTreeMap<String, Scalar> =
            serde_json::from_reader(reader).unwrap();
        let Scalar::Other = value["loss"] else {
            panic!("a list is not a scalar")
        };
        assert_eq!(value["s"], Scalar::Text("NaN \"Infinity\" \\".into()));
        assert!(value["验证"].number().unwrap().is_nan());
        assert_eq!(value["N"], Scalar::Missing);
        let list: Vec<Scalar> =
            serde_json::from_reader(NonFinite::new(&b"[NaN, -Infinity, 2, \"1.5\"]"[..])).unwrap();
        assert!(list[0].number().unwrap().is_nan());
        assert_eq!(list[1].number(), Some(f64::NEG_INFINITY));
        assert_eq!(list[2].number(), Some(2.0));
        assert_eq!(list[3], Scalar::Text("1.5".into()));
    }

    #[test]
    fn parses_numbers_as_python_prints_them() {
        assert!(parse_number("nan").unwrap().is_nan());
        assert!(parse_number("NaN").unwrap().is_nan());
        assert_eq!(parse_number("inf"), Some(f64::INFINITY));
        assert_eq!(parse_number("-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_number("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_number(" 1.2345e-04 "), Some(1.2345e-4));
        assert_eq!(parse_number("0.6931"), Some(0.6931));
        assert_eq!(parse_number("NA"), None);
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("0.5s"), None);
    }

    #[test]
    fn json_errors_name_the_line_of_the_file() {
        let err = serde_json::from_str::<Scalar>("{\n  \"a\": }").unwrap_err();
        let e = json_error(Path::new("m.jsonl"), 10, err).to_string();
        let err = serde_json::from_str::<Scalar>("{\n  \"a\": }").unwrap_err();
        assert!(e.starts_with("m.jsonl:11:8: "), "{e}");
        assert!(!e.contains(" at line "), "{e}");
        let e = json_error(Path::new("m.json"), 1, err).to_string();
        assert!(e.starts_with("m.json:2:8: "), "{e}");
    }
}
