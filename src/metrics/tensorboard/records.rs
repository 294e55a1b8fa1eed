//! TFRecord framing: each record's length and data checked against their masked CRC-32C,
//! and where a broken record stops a file's reading.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{Event, SummaryValue};
use crate::error::{Error, Result};

/// TFRecord's CRC mask: rotate right by 15 bits, then add this, because a plain CRC of
/// data that itself holds CRCs is weak.
const CRC_MASK_DELTA: u32 = 0xa282_ead8;
/// A record's header: the u64 data length and the masked CRC of those 8 bytes.
const HEADER_BYTES: u64 = 12;
/// A record's footer: the masked CRC of its data.
const FOOTER_BYTES: u64 = 4;

/// Largest record decoded. A scalar event is under a kilobyte; records past this are
/// graphs, images, histograms or embeddings, never a scalar, so their CRC is checked as
/// they stream past and they are skipped unread, which keeps memory flat whatever length a
/// record announces (up to the file's size, which may be gigabytes).
const MAX_DECODED_RECORD_BYTES: u64 = 1024 * 1024;
/// Bytes of a skipped record checked per read.
const SKIP_CHUNK_BYTES: usize = 64 * 1024;

/// TFRecord's masked CRC-32C.
pub(super) fn masked_crc(bytes: &[u8]) -> u32 {
    mask(crc32c::crc32c(bytes))
}

fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// Whether a file's first bytes are a record header: the masked CRC of the 8 length bytes
/// follows them. A chance match is one in 2³², so this decides the format.
pub(in crate::metrics) fn looks_like(head: &[u8]) -> bool {
    match (head.get(..8), head.get(8..12)) {
        (Some(length), Some(crc)) => {
            let crc: [u8; 4] = [crc[0], crc[1], crc[2], crc[3]];
            masked_crc(length) == u32::from_le_bytes(crc)
        }
        _ => false,
    }
}

/// Why a file's reading stopped before its end.
#[derive(Debug, Clone)]
pub(super) struct Broken {
    offset: u64,
    /// `TRUNCATED` or `CORRUPT`.
    kind: &'static str,
    detail: String,
}

const TRUNCATED: &str = "truncated record";
const CORRUPT: &str = "corrupt record";

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {} ({})", self.kind, self.offset, self.detail)
    }
}

enum Next<'a> {
    Record(&'a [u8]),
    /// A record too big to hold a scalar, checked and not decoded.
    Skipped,
    End,
    Broken(Broken),
}

/// One event file's records in order, both CRCs checked.
struct Records {
    path: PathBuf,
    reader: BufReader<File>,
    /// Byte offset of the next record.
    offset: u64,
    /// Where reading stops: the file's length, or a broken record the first pass found.
    limit: u64,
    data: Vec<u8>,
}

impl Records {
    fn open(path: &Path, limit: Option<u64>) -> Result<Records> {
        let file = crate::input::open_regular(path, "a TensorBoard event file")?;
        let length = file.metadata().map_err(|e| Error::read(path, &e))?.len();
        Ok(Records {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            offset: 0,
            limit: limit.map_or(length, |l| l.min(length)),
            data: Vec::new(),
        })
    }

    fn next(&mut self) -> Result<Next<'_>> {
        let start = self.offset;
        let left = self.limit.saturating_sub(start);
        let broken = |kind, detail: String| {
            Next::Broken(Broken {
                offset: start,
                kind,
                detail,
            })
        };
        if left == 0 {
            return Ok(Next::End);
        }
        if left < HEADER_BYTES + FOOTER_BYTES {
            return Ok(broken(
                TRUNCATED,
                format!("{left} bytes left, fewer than a record's header and footer"),
            ));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        if !self.fill(&mut header)? {
            return Ok(broken(TRUNCATED, "the file ends inside it".into()));
        }
        let (length, crc) = header.split_at(8);
        if masked_crc(length) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Ok(broken(
                CORRUPT,
                "the CRC of its length does not match".into(),
            ));
        }
        let length = u64::from_le_bytes([
            length[0], length[1], length[2], length[3], length[4], length[5], length[6], length[7],
        ]);
        let room = left - HEADER_BYTES - FOOTER_BYTES;
        let Some(size) = usize::try_from(length).ok().filter(|_| length <= room) else {
            return Ok(broken(
                TRUNCATED,
                format!("{length} bytes of data announced, {room} left in the file"),
            ));
        };
        if length > MAX_DECODED_RECORD_BYTES {
            return self.skip(start, length);
        }
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        data.resize(size, 0);
        let mut footer = [0u8; FOOTER_BYTES as usize];
        let complete = self.fill(&mut data)? && self.fill(&mut footer)?;
        self.data = data;
        if !complete {
            return Ok(broken(TRUNCATED, "the file ends inside it".into()));
        }
        if masked_crc(&self.data) != u32::from_le_bytes(footer) {
            return Ok(broken(CORRUPT, "the CRC of its data does not match".into()));
        }
        self.offset = start + HEADER_BYTES + length + FOOTER_BYTES;
        Ok(Next::Record(&self.data))
    }

    /// Streams past a record of `length` data bytes starting at `start`, checking its CRC.
    fn skip(&mut self, start: u64, length: u64) -> Result<Next<'_>> {
        let mut chunk = vec![0u8; SKIP_CHUNK_BYTES];
        let mut crc = 0u32;
        let mut left = length;
        while left > 0 {
            let n = usize::try_from(left).map_or(SKIP_CHUNK_BYTES, |l| l.min(SKIP_CHUNK_BYTES));
            if !self.fill(&mut chunk[..n])? {
                return Ok(Next::Broken(Broken {
                    offset: start,
                    kind: TRUNCATED,
                    detail: "the file ends inside it".into(),
                }));
            }
            crc = crc32c::crc32c_append(crc, &chunk[..n]);
            left -= n as u64;
        }
        let mut footer = [0u8; FOOTER_BYTES as usize];
        if !self.fill(&mut footer)? {
            return Ok(Next::Broken(Broken {
                offset: start,
                kind: TRUNCATED,
                detail: "the file ends inside it".into(),
            }));
        }
        if mask(crc) != u32::from_le_bytes(footer) {
            return Ok(Next::Broken(Broken {
                offset: start,
                kind: CORRUPT,
                detail: "the CRC of its data does not match".into(),
            }));
        }
        self.offset = start + HEADER_BYTES + length + FOOTER_BYTES;
        Ok(Next::Skipped)
    }

    /// Fills `buf`; false when the file ends first (it shrank since it was opened).
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Error::read(&self.path, &e)),
        }
    }
}

/// What a pass over one file found.
pub(super) struct Scan {
    pub(super) records: u64,
    pub(super) end: u64,
    pub(super) broken: Option<Broken>,
}

/// Calls `each(record index, step, value)` for every summary value of the file's records,
/// up to `limit` when given. A record that is not an `Event` (its CRCs match but the
/// bytes do not decode) counts as corrupt.
pub(super) fn scan(
    path: &Path,
    limit: Option<u64>,
    mut each: impl FnMut(u64, i64, &SummaryValue),
) -> Result<Scan> {
    let mut records = Records::open(path, limit)?;
    let mut count = 0u64;
    loop {
        let offset = records.offset;
        let broken = match records.next()? {
            Next::End => None,
            Next::Broken(b) => Some(b),
            Next::Skipped => {
                count += 1;
                continue;
            }
            Next::Record(data) => match Event::decode(data) {
                Ok(event) => {
                    for value in event.summary.iter().flat_map(|s| &s.value) {
                        each(count, event.step, value);
                    }
                    count += 1;
                    continue;
                }
                Err(e) => Some(Broken {
                    offset,
                    kind: CORRUPT,
                    detail: format!("not a TensorBoard Event: {e}"),
                }),
            },
        };
        let end = broken.as_ref().map_or(records.offset, |b| b.offset);
        return Ok(Scan {
            records: count,
            end,
            broken,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tensorboard::testing::*;
    use crate::metrics::testing::example;
    use crate::metrics::{Canonical, load_metrics};

    #[test]
    fn masked_crc_is_tensorflows() {
        // The CRC-32C check value, then the mask applied to it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
        // Every header TensorBoard's writer framed checks out.
        for folder in [
            "pytorch",
            "pytorch/Loss_train",
            "lightning/version_0",
            "tf2",
            "keras/train",
            "keras/validation",
        ] {
            let bytes = std::fs::read(only_file(folder)).unwrap();
            assert!(looks_like(&bytes), "{folder}");
            let mut flipped = bytes.clone();
            flipped[3] ^= 0x10;
            assert!(!looks_like(&flipped), "{folder}");
        }
        assert!(!looks_like(b"epoch,loss\n0,0.5\n"));
        assert!(!looks_like(&[0u8; 11]));
    }

    /// Byte offsets of the records of an intact event file.
    fn offsets(bytes: &[u8]) -> Vec<u64> {
        let mut at = 0usize;
        let mut out = Vec::new();
        while at < bytes.len() {
            out.push(at as u64);
            let length = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            at += 16 + length;
        }
        out
    }

    #[test]
    fn a_truncated_file_keeps_the_records_before_the_cut() {
        let path = example("tests/fixtures/events_truncated.bin");
        let m = load(&path);
        let intact = offsets(&std::fs::read(only_file("tf2")).unwrap());
        let cut = intact[intact.len() - 3];
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        let w = &m.warnings[0];
        assert!(
            w.starts_with(&format!(
                "{}: truncated record at byte {cut} (",
                path.display()
            )),
            "{w}"
        );
        assert!(
            w.ends_with(&format!(
                "the {} records before it were read",
                intact.len() - 3
            )),
            "{w}"
        );
        // the last epoch lost its validation values and learning rate, nothing else
        assert_eq!(m.get(Canonical::Loss).unwrap().len(), 15);
        assert_eq!(m.get(Canonical::Accuracy).unwrap().len(), 15);
        assert_eq!(m.get(Canonical::ValLoss).unwrap().len(), 14);
        assert_eq!(m.get(Canonical::Lr).unwrap().len(), 14);
    }

    #[test]
    fn a_corrupt_second_record_leaves_nothing_and_is_an_error_with_its_offset() {
        let path = example("tests/fixtures/events_corrupt.bin");
        let second = offsets(&std::fs::read(only_file("tf2")).unwrap())[1];
        let e = load_metrics(&path, None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            format!(
                "{}: corrupt record at byte {second} (the CRC of its data does not match), with no scalar value before it",
                path.display()
            )
        );
    }

    #[test]
    fn a_later_broken_record_is_a_warning_for_either_crc() {
        let bytes = std::fs::read(only_file("tf2")).unwrap();
        let at = offsets(&bytes);
        // record 21 is the first of epoch 5 (one file_version record, then 5 per epoch)
        let k = 21;
        for (flip, what) in [
            (at[k] as usize + 2, "the CRC of its length does not match"),
            (at[k] as usize + 20, "the CRC of its data does not match"),
            (at[k] as usize + 9, "the CRC of its length does not match"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut broken = bytes.clone();
            broken[flip] ^= 0x04;
            let path = dir.path().join(EVENTS);
            std::fs::write(&path, &broken).unwrap();
            let m = load(&path);
            assert_eq!(
                m.warnings,
                vec![format!(
                    "{}: corrupt record at byte {} ({what}); the {k} records before it were read",
                    path.display(),
                    at[k]
                )]
            );
            assert_eq!(m.last_epoch(), Some(4), "flip at {flip}");
        }
    }

    #[test]
    fn a_record_too_big_for_a_scalar_is_checked_and_skipped_unread() {
        // an image-sized record between two scalar events: its CRC is checked as it
        // streams past, it is never held, and the events on both sides are read
        let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let records = [
            event(1, simple("loss", 0.5)),
            record(&big),
            event(2, simple("loss", 0.25)),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), EVENTS, &records);
        let m = load(&path);
        assert!(
            !m.warnings.iter().any(|w| w.contains("record")),
            "{:?}",
            m.warnings
        );
        assert_eq!(m.get(Canonical::Loss).unwrap().len(), 2);
        // one flipped bit in its data is still a corrupt record, at its offset
        let mut bytes = std::fs::read(&path).unwrap();
        let at = offsets(&bytes)[2];
        bytes[at as usize + 12 + 2 * 1024 * 1024] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let m = load(&path);
        let want = format!(
            "{}: corrupt record at byte {at} (the CRC of its data does not match); the 2 records before it were read",
            path.display()
        );
        assert!(m.warnings.contains(&want), "{:?}", m.warnings);
        assert_eq!(m.get(Canonical::Loss).unwrap().len(), 1);
    }

    #[test]
    fn a_broken_first_record_is_not_an_event_file() {
        let e = error(&example("tests/fixtures/garbage.bin"));
        assert!(
            e.ends_with("garbage.bin: corrupt record at byte 0 (the CRC of its length does not match): not a TensorBoard event file, or a damaged one"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(only_file("tf2")).unwrap();
        let path = dir.path().join(EVENTS);
        std::fs::write(&path, &bytes[..7]).unwrap();
        let e = error(&path);
        assert!(
            e.contains("truncated record at byte 0 (7 bytes left, fewer than a record's header and footer): not a TensorBoard event file"),
            "{e}"
        );
        let mut flipped = bytes.clone();
        flipped[40] ^= 0x01;
        std::fs::write(&path, &flipped).unwrap();
        let e = error(&path);
        assert!(
            e.contains("corrupt record at byte 0 (the CRC of its data does not match)"),
            "{e}"
        );
        // framing that checks out around bytes that are no Event
        std::fs::write(&path, record(&[0xff, 0xff, 0xff])).unwrap();
        let e = error(&path);
        assert!(
            e.contains("corrupt record at byte 0 (not a TensorBoard Event: "),
            "{e}"
        );
        // an empty file has no record, and no value
        std::fs::write(&path, b"").unwrap();
        assert!(error(&path).contains("no metric values found (read as TensorBoard event file)"));
    }
}
