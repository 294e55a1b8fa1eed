//! The framing of a `.wandb` file, as wandb-core writes it (`core/pkg/leveldb/record.go`,
//! used by `core/internal/transactionlog` with `CRCAlgoIEEE`) and as the SDK's
//! `wandb/sdk/internal/datastore.py` reads it:
//!
//! ```text
//! file   := header block*
//! header := ident ":W&B" | magic u16 0xBEE1 | version u8 0     (7 bytes, little-endian)
//! block  := chunk* padding?                                    (32 KiB, counted from byte 0)
//! chunk  := checksum u32 | length u16 | type u8 | data[length]
//! ```
//!
//! A record is one FULL chunk, or FIRST, MIDDLE…, LAST. The checksum is the CRC-32 (IEEE,
//! zlib's `crc32`) of the type byte followed by the data: datastore.py seeds
//! `zlib.crc32(data, crc32(type))`, record.go checksums `buf[i-1:j]`. It is NOT LevelDB's
//! masked CRC-32C, which wandb-core keeps only as the non-default `CRCAlgoCustom`. When
//! fewer than 7 bytes are left in a block they are padding and the next chunk starts in
//! the next block. A chunk header of zeros (a file preallocated with mmap) is skipped to
//! the next block, as record.go's reader does. The last block is short: a run still being
//! written ends wherever its last whole record ends.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `LEVELDBLOG_HEADER_IDENT`, `_MAGIC` and `_VERSION` in datastore.py.
pub(super) const IDENT: &[u8; 4] = b":W&B";
const MAGIC: u16 = 0xBEE1;
const VERSION: u8 = 0;
const FILE_HEADER_BYTES: u64 = 7;
/// `LEVELDBLOG_BLOCK_LEN`.
const BLOCK_BYTES: u64 = 32 * 1024;
/// A chunk's checksum, length and type.
const CHUNK_HEADER_BYTES: u64 = 7;

const FULL: u8 = 1;
const FIRST: u8 = 2;
const MIDDLE: u8 = 3;
const LAST: u8 = 4;

/// Whether a file's first bytes are a `.wandb` header (the version is checked on reading).
pub(in crate::metrics) fn looks_like(head: &[u8]) -> bool {
    head.len() >= FILE_HEADER_BYTES as usize
        && head.starts_with(IDENT)
        && u16::from_le_bytes([head[4], head[5]]) == MAGIC
}

/// The checksum of a chunk of type `kind` holding `data`.
pub(super) fn checksum(kind: u8, data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(data);
    hasher.finalize()
}

/// Why a file's reading stopped before its end.
#[derive(Debug, Clone)]
pub(super) struct Broken {
    /// Where the record that could not be read starts.
    pub(super) offset: u64,
    pub(super) kind: &'static str,
    pub(super) detail: String,
}

pub(super) const TRUNCATED: &str = "truncated record";
pub(super) const CORRUPT: &str = "corrupt record";

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {} ({})", self.kind, self.offset, self.detail)
    }
}

pub(super) enum Next<'a> {
    /// A whole record's bytes, and the byte offset it starts at.
    Record(&'a [u8], u64),
    End,
    Broken(Broken),
}

/// The records of one `.wandb` file in order, every chunk's checksum checked.
pub(super) struct Records {
    path: PathBuf,
    reader: BufReader<File>,
    /// Byte offset of the next chunk.
    offset: u64,
    /// Where reading stops: the file's length when opened, or where a first pass stopped.
    limit: u64,
    data: Vec<u8>,
    chunk: Vec<u8>,
}

impl Records {
    /// Opens `path` and checks its header; a file without one is not a `.wandb` file,
    /// which is an input error naming the byte where it differs.
    pub(super) fn open(path: &Path, limit: Option<u64>) -> Result<Records> {
        let file = File::open(path).map_err(|e| Error::read(path, &e))?;
        let length = file.metadata().map_err(|e| Error::read(path, &e))?.len();
        let mut records = Records {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            offset: 0,
            limit: limit.map_or(length, |l| l.min(length)),
            data: Vec::new(),
            chunk: Vec::new(),
        };
        let mut header = [0u8; FILE_HEADER_BYTES as usize];
        let got = records.fill_some(&mut header)?;
        let not = |at: usize, what: String| {
            Error::input(
                path,
                format!(
                    "not a W&B run file (.wandb): {what} at byte {at}; a .wandb file starts with `:W&B`, the magic number 0xBEE1 and version 0"
                ),
            )
        };
        if let Some(at) = (0..got.min(4)).find(|&i| header[i] != IDENT[i]) {
            return Err(not(
                at,
                format!("byte {:#04x} where `:W&B` belongs", header[at]),
            ));
        }
        if got < FILE_HEADER_BYTES as usize {
            return Err(not(got, format!("the file ends after {got} bytes")));
        }
        let magic = u16::from_le_bytes([header[4], header[5]]);
        if magic != MAGIC {
            return Err(not(4, format!("magic number {magic:#06x}")));
        }
        if header[6] != VERSION {
            return Err(Error::input(
                path,
                format!(
                    "W&B file format version {} at byte 6; retune reads version {VERSION}, which wandb 0.31 writes",
                    header[6]
                ),
            ));
        }
        records.offset = FILE_HEADER_BYTES;
        Ok(records)
    }

    /// Byte offset of the next record.
    pub(super) fn offset(&self) -> u64 {
        self.offset
    }

    pub(super) fn next(&mut self) -> Result<Next<'_>> {
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        let step = self.read_record(&mut data);
        self.data = data;
        Ok(match step? {
            Ok(start) => Next::Record(&self.data, start),
            Err(None) => Next::End,
            Err(Some(broken)) => Next::Broken(broken),
        })
    }

    /// Appends the next record's chunks to `data`: its start offset, or why there is none
    /// (`None` at the end of the file).
    fn read_record(
        &mut self,
        data: &mut Vec<u8>,
    ) -> Result<std::result::Result<u64, Option<Broken>>> {
        let mut start: Option<u64> = None;
        loop {
            let chunk_at = self.offset;
            let broken = |kind, detail: String| {
                Err(Some(Broken {
                    offset: start.unwrap_or(chunk_at),
                    kind,
                    detail,
                }))
            };
            // The file (or what a first pass read of it) ends here.
            let ended = |start: Option<u64>| {
                match start {
                None => Err(None),
                Some(_) => broken(
                    TRUNCATED,
                    "the file ends before its last part: a run still being written, or a file cut short".into(),
                ),
            }
            };
            let left_in_block = BLOCK_BYTES - chunk_at % BLOCK_BYTES;
            if left_in_block < CHUNK_HEADER_BYTES {
                // Padding: the next chunk starts in the next block.
                if !self.skip(left_in_block)? {
                    return Ok(ended(start));
                }
                continue;
            }
            let left = self.limit.saturating_sub(chunk_at);
            if left == 0 {
                return Ok(ended(start));
            }
            if left < CHUNK_HEADER_BYTES {
                return Ok(broken(
                    TRUNCATED,
                    format!("{left} bytes left, fewer than a chunk header"),
                ));
            }
            let mut header = [0u8; CHUNK_HEADER_BYTES as usize];
            if !self.fill(&mut header)? {
                return Ok(broken(TRUNCATED, "the file ends inside it".into()));
            }
            self.offset = chunk_at + CHUNK_HEADER_BYTES;
            if header == [0u8; CHUNK_HEADER_BYTES as usize] {
                // Zeros to the end of the block; what follows is in the next one.
                if !self.skip(left_in_block - CHUNK_HEADER_BYTES)? {
                    return Ok(ended(start));
                }
                continue;
            }
            let crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            let length = u64::from(u16::from_le_bytes([header[4], header[5]]));
            let kind = header[6];
            if CHUNK_HEADER_BYTES + length > left_in_block {
                return Ok(broken(
                    CORRUPT,
                    format!(
                        "a chunk of {length} bytes at byte {chunk_at} overruns its 32 KiB block"
                    ),
                ));
            }
            if CHUNK_HEADER_BYTES + length > left {
                return Ok(broken(
                    TRUNCATED,
                    format!(
                        "{length} bytes announced at byte {chunk_at}, {} left in the file",
                        left - CHUNK_HEADER_BYTES
                    ),
                ));
            }
            let mut chunk = std::mem::take(&mut self.chunk);
            chunk.resize(length as usize, 0);
            let complete = self.fill(&mut chunk)?;
            self.chunk = chunk;
            if !complete {
                return Ok(broken(TRUNCATED, "the file ends inside it".into()));
            }
            if checksum(kind, &self.chunk) != crc {
                return Ok(broken(
                    CORRUPT,
                    if start.is_some() {
                        format!("the checksum of its part at byte {chunk_at} does not match")
                    } else {
                        "its checksum does not match".into()
                    },
                ));
            }
            let at_start = start.is_none();
            let fits = match kind {
                FULL | FIRST => at_start,
                MIDDLE | LAST => !at_start,
                _ => false,
            };
            if !fits {
                let place = if at_start {
                    "where a record should start"
                } else {
                    "inside a record"
                };
                return Ok(broken(
                    CORRUPT,
                    format!("a chunk of type {kind} at byte {chunk_at} {place}"),
                ));
            }
            self.offset = chunk_at + CHUNK_HEADER_BYTES + length;
            let first = *start.get_or_insert(chunk_at);
            data.extend_from_slice(&self.chunk);
            if matches!(kind, FULL | LAST) {
                return Ok(Ok(first));
            }
        }
    }

    /// Skips `n` bytes; false when the readable part ends first.
    fn skip(&mut self, n: u64) -> Result<bool> {
        if self.offset + n > self.limit {
            self.offset = self.limit;
            return Ok(false);
        }
        let copied = std::io::copy(&mut (&mut self.reader).take(n), &mut std::io::sink())
            .map_err(|e| Error::read(&self.path, &e))?;
        self.offset += copied;
        Ok(copied == n)
    }

    /// Fills `buf`; false when the file ends first (it shrank since it was opened).
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Error::read(&self.path, &e)),
        }
    }

    /// Reads as much of `buf` as the file has.
    fn fill_some(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::read(&self.path, &e)),
            }
        }
        Ok(got)
    }
}
