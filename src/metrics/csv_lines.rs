//! The fast road through a CSV metrics log. Almost every such log is a plain table: no
//! quoted cell, `\n` or `\r\n` line ends, no byte order mark. For those bytes, a record is
//! a line and a cell is what lies between commas, so lines and cells are found with
//! `memchr` over a large buffer instead of the csv crate's byte-by-byte state machine
//! (which was most of the time of a big log's read). Each line becomes the same
//! `csv::ByteRecord` (cells and byte position) the csv crate would have produced, so the
//! row loop after it is shared and every error reads as before.
//!
//! A line this road cannot take exactly as the csv crate would (a quote, which may open a
//! quoted cell running over several lines; a `\r` that is not part of a `\r\n`, which the
//! csv crate takes as a line end) hands the rest of the file, from that line's first byte,
//! back to the csv crate. A UTF-16 file (byte order mark) goes there whole, decoded.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use memchr::{memchr, memchr3};

use crate::error::{Error, Result};
use crate::input;

/// Bytes read per refill. Large enough that a refill (a system call and a copy of the
/// unfinished line to the front) is rare next to the lines it serves, and larger than the
/// longest row read (`MAX_ROW_BYTES`), so a refill always makes room for a whole row;
/// small enough to keep a read's memory flat, whatever the file's length.
const BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// How the fast road ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Every line was read.
    Done,
    /// The line starting at this byte offset (and everything after it) is for the csv
    /// crate.
    ResumeAt(u64),
}

/// Reads `path` line by line into `record`, calling `row` with each non-empty line, until
/// the end or a line the csv crate must read (`Outcome::ResumeAt`). `max_row` bounds a
/// line: a longer one is the error `too_long` builds at the line's position.
pub(super) fn read(
    path: &Path,
    max_row: usize,
    record: &mut csv::ByteRecord,
    too_long: impl Fn(&csv::Position) -> Error,
    mut row: impl FnMut(&csv::ByteRecord) -> Result<()>,
) -> Result<Outcome> {
    debug_assert!(max_row < BUFFER_BYTES);
    let mut file = input::open_regular(path, "a metrics file")?;
    let mut buf = vec![0u8; BUFFER_BYTES];
    // buf[at..filled] is read but not yet used; `base` is the file offset of buf[0].
    let (mut at, mut filled, mut base) = (0usize, 0usize, 0u64);
    let mut eof = false;
    let mut line_no = 1u64;
    let mut records = 0u64;
    let mut position = csv::Position::new();
    loop {
        let rest = &buf[at..filled];
        let (line, next) = match memchr(b'\n', rest) {
            Some(i) => (&rest[..i], at + i + 1),
            None if !eof => {
                if rest.len() > max_row {
                    position.set_byte(base + at as u64).set_line(line_no);
                    return Err(too_long(&position));
                }
                buf.copy_within(at..filled, 0);
                base += at as u64;
                filled -= at;
                at = 0;
                let n =
                    read_some(&mut file, &mut buf[filled..]).map_err(|e| Error::read(path, &e))?;
                if base == 0 && filled < 2 && n > 0 && filled + n >= 2 {
                    // A UTF-16 file is decoded by the csv crate's road.
                    if super::text::utf16_bom(&buf[..2]).is_some() {
                        return Ok(Outcome::ResumeAt(0));
                    }
                }
                filled += n;
                eof = n == 0;
                continue;
            }
            None if rest.is_empty() => return Ok(Outcome::Done),
            None => (rest, filled),
        };
        let start = base + at as u64;
        position.set_byte(start).set_line(line_no);
        if line.len() > max_row {
            return Err(too_long(&position));
        }
        let body = line.strip_suffix(b"\r").unwrap_or(line);
        if !body.is_empty() {
            if !split(body, record) {
                return Ok(Outcome::ResumeAt(start));
            }
            records += 1;
            position.set_record(records - 1);
            record.set_position(Some(position.clone()));
            row(record)?;
        }
        line_no += 1;
        at = next;
    }
}

/// Splits one line (its end removed) into `record`'s cells; false when the line holds a
/// quote or a lone `\r`, which only the csv crate reads right.
fn split(line: &[u8], record: &mut csv::ByteRecord) -> bool {
    record.clear();
    let mut start = 0;
    while let Some(i) = memchr3(b',', b'"', b'\r', &line[start..]) {
        if line[start + i] != b',' {
            return false;
        }
        record.push_field(&line[start..start + i]);
        start += i + 1;
    }
    record.push_field(&line[start..]);
    true
}

/// One `read` that retries when interrupted; 0 at the end of the file.
fn read_some(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The records the csv crate reads from `text`, configured as the CSV readers are.
    fn by_csv_crate(text: &[u8]) -> Records {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text);
        let mut out = Vec::new();
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let cells = record.iter().map(<[u8]>::to_vec).collect();
            out.push((cells, record.position().unwrap().byte()));
        }
        out
    }

    /// Each record's cells and the byte offset it starts at.
    type Records = Vec<(Vec<Vec<u8>>, u64)>;

    /// What the fast road reads from `text`, and where it hands over.
    fn by_lines(text: &[u8]) -> (Records, Outcome) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        std::fs::write(&path, text).unwrap();
        let mut out = Vec::new();
        let mut record = csv::ByteRecord::new();
        let outcome = read(
            &path,
            1024,
            &mut record,
            |p| Error::at(&path, p.line(), None, "too long"),
            |r| {
                let cells = r.iter().map(<[u8]>::to_vec).collect();
                out.push((cells, r.position().unwrap().byte()));
                Ok(())
            },
        )
        .unwrap();
        (out, outcome)
    }

    /// The first byte of a record's line: the csv crate counts the `\n` of a `\r\n`
    /// before a record as the record's start.
    fn line_start(text: &[u8], byte: u64) -> u64 {
        let mut b = byte as usize;
        while b < text.len() && matches!(text[b], b'\r' | b'\n') {
            b += 1;
        }
        b as u64
    }

    #[test]
    fn plain_tables_read_as_the_csv_crate_reads_them() {
        let cases: [&[u8]; 8] = [
            b"epoch,loss\r\n0,0.5\r\n1,0.4\r\n",
            b"epoch,loss\n0,0.5\n1,0.4",
            b"epoch,loss\n\n\n0,0.5\n\r\n1,,\n",
            b"a,b,c\n1,2\n1,2,3,4\n , \n",
            b"",
            b"\n\n",
            b"only\n",
            b"x,\xff\xfe,y\n1,2,3\n",
        ];
        for text in cases {
            let (got, outcome) = by_lines(text);
            assert_eq!(outcome, Outcome::Done, "{text:?}");
            let want: Vec<_> = by_csv_crate(text)
                .into_iter()
                .map(|(cells, byte)| (cells, line_start(text, byte)))
                .collect();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn quotes_and_lone_carriage_returns_go_to_the_csv_crate_from_their_line() {
        let (got, outcome) = by_lines(b"epoch,loss\n0,0.5\n1,\"[1,\n2]\"\n2,0.3\n");
        assert_eq!(got.len(), 2);
        assert_eq!(outcome, Outcome::ResumeAt(17));
        let (got, outcome) = by_lines(b"epoch,loss\r\n0,0.5\r1,0.4\r\n");
        assert_eq!(got.len(), 1);
        assert_eq!(outcome, Outcome::ResumeAt(12));
        let (got, outcome) = by_lines(b"\xff\xfee\x00,\x00");
        assert!(got.is_empty());
        assert_eq!(outcome, Outcome::ResumeAt(0));
    }

    #[test]
    fn a_line_past_the_limit_is_an_error_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        for tail in ["\n", ""] {
            let text = format!("epoch,loss\n0,0.5\n{}{tail}", "9".repeat(2000));
            std::fs::write(&path, text).unwrap();
            let e = read(
                &path,
                1024,
                &mut csv::ByteRecord::new(),
                |p| Error::at(&path, p.line(), None, format!("too long at {}", p.byte())),
                |_| Ok(()),
            )
            .unwrap_err()
            .to_string();
            assert!(e.ends_with("log.csv:3: too long at 17"), "{e}");
        }
    }

    #[test]
    fn lines_across_refills_are_whole() {
        // Lines straddle the buffer's end several times over.
        let mut text = String::from("epoch,loss\r\n");
        for e in 0..400_000u32 {
            text.push_str(&format!("{e},0.{e:07}\r\n"));
        }
        let (got, outcome) = by_lines(text.as_bytes());
        assert_eq!(outcome, Outcome::Done);
        assert_eq!(got.len(), 400_001);
        for (e, (cells, _)) in got.iter().skip(1).enumerate() {
            assert_eq!(cells[0], e.to_string().as_bytes());
            assert_eq!(cells[1], format!("0.{e:07}").as_bytes());
        }
        assert_eq!(
            got[400_000].1 as usize,
            text.len() - "399999,0.0399999\r\n".len()
        );
    }
}
