//! Opening a text metrics file whatever its encoding. Almost every log is UTF-8 (or bytes
//! close enough to it), but Windows PowerShell 5 writes what `python train.py > log.txt`
//! redirects as UTF-16LE with a byte order mark, so a Keras console capture made on
//! Windows is two bytes per character with every other byte zero. `open` looks at the
//! first two bytes: a UTF-16 BOM (either byte order) turns on a streaming decode to UTF-8,
//! anything else is read as it is. Without a BOM nothing is guessed (a file of zeros is
//! binary, not UTF-16).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};
use crate::input;

/// Bytes decoded per refill of the UTF-16 decoder's output.
const CHUNK_BYTES: usize = 16 * 1024;

/// Which UTF-16 byte order a byte order mark at the start of `head` announces.
pub fn utf16_bom(head: &[u8]) -> Option<ByteOrder> {
    match head {
        [0xff, 0xfe, ..] => Some(ByteOrder::Little),
        [0xfe, 0xff, ..] => Some(ByteOrder::Big),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    fn unit(self, pair: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(pair),
            ByteOrder::Big => u16::from_be_bytes(pair),
        }
    }
}

/// The first bytes of a UTF-16 file with a BOM, as text (for format detection); `None`
/// when there is no BOM. A unit cut off at the end of `head` is dropped.
pub fn decode_utf16_head(head: &[u8]) -> Option<String> {
    let order = utf16_bom(head)?;
    let units: Vec<u16> = head[2..]
        .chunks_exact(2)
        .map(|pair| order.unit([pair[0], pair[1]]))
        .collect();
    Some(String::from_utf16_lossy(&units))
}

/// A text file opened for one pass: its bytes, or its UTF-16 decoded to UTF-8.
pub enum TextFile {
    Plain(File),
    Utf16(Utf16Reader<File>),
}

impl Read for TextFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TextFile::Plain(file) => file.read(buf),
            TextFile::Utf16(reader) => reader.read(buf),
        }
    }
}

/// Opens `path` as text: an error naming it if it is missing or not a regular file (a
/// folder, a pipe, a device).
pub fn open(path: &Path) -> Result<TextFile> {
    let mut file = input::open_regular(path, "a metrics file")?;
    let mut bom = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match file.read(&mut bom[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::read(path, &e)),
        }
    }
    if let Some(order) = utf16_bom(&bom[..got]) {
        return Ok(TextFile::Utf16(Utf16Reader::new(file, order)));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::read(path, &e))?;
    Ok(TextFile::Plain(file))
}

/// Decodes UTF-16 (the BOM already consumed) to UTF-8 as the bytes stream past, in fixed
/// buffers. Unpaired surrogates become U+FFFD, as `String::from_utf16_lossy` makes them.
pub struct Utf16Reader<R> {
    inner: R,
    order: ByteOrder,
    raw: Vec<u8>,
    /// A byte of a unit split across two reads of `inner`.
    odd: Option<u8>,
    /// A high surrogate whose low half is in the next read.
    high: Option<u16>,
    units: Vec<u16>,
    out: Vec<u8>,
    at: usize,
    done: bool,
}

impl<R: Read> Utf16Reader<R> {
    pub fn new(inner: R, order: ByteOrder) -> Self {
        Utf16Reader {
            inner,
            order,
            raw: vec![0; CHUNK_BYTES],
            odd: None,
            high: None,
            units: Vec::with_capacity(CHUNK_BYTES / 2 + 1),
            out: Vec::with_capacity(CHUNK_BYTES * 2),
            at: 0,
            done: false,
        }
    }

    /// Decodes the next chunk of `inner` into `out`; false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.at = 0;
        while self.out.is_empty() && !self.done {
            let n = loop {
                match self.inner.read(&mut self.raw) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            self.units.clear();
            self.units.extend(self.high.take());
            if n == 0 {
                self.done = true;
                // A lone trailing byte is not a character: dropped.
                self.odd = None;
            } else {
                let mut bytes = &self.raw[..n];
                if let Some(first) = self.odd.take() {
                    self.units.push(self.order.unit([first, bytes[0]]));
                    bytes = &bytes[1..];
                }
                let mut pairs = bytes.chunks_exact(2);
                for pair in &mut pairs {
                    self.units.push(self.order.unit([pair[0], pair[1]]));
                }
                self.odd = pairs.remainder().first().copied();
                if self
                    .units
                    .last()
                    .is_some_and(|u| (0xd800..0xdc00).contains(u))
                {
                    self.high = self.units.pop();
                }
            }
            for ch in char::decode_utf16(self.units.iter().copied()) {
                let ch = ch.unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut buf = [0u8; 4];
                self.out
                    .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
        }
        Ok(!self.out.is_empty())
    }
}

impl<R: Read> Read for Utf16Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.out.len() && !self.refill()? {
            return Ok(0);
        }
        let n = (self.out.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str) -> Vec<u8> {
        let mut bytes = vec![0xff, 0xfe];
        for unit in text.encode_utf16() {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        bytes
    }

    /// Reads through a reader that hands out `step` bytes at a time, so units and
    /// surrogate pairs are split across reads.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn decodes_utf16_split_anywhere() {
        let text = "Epoch 1/60\r\n\u{1b}[1m 1/49\u{1b}[0m ━━ 1s/step - loss: 1.5527 🙂 训练\r\n";
        let bytes = utf16le(text);
        for step in [1, 2, 3, 5, 4096] {
            let mut reader = Utf16Reader::new(
                Trickle {
                    bytes: &bytes[2..],
                    step,
                },
                ByteOrder::Little,
            );
            let mut out = String::new();
            reader.read_to_string(&mut out).unwrap();
            assert_eq!(out, text, "step {step}");
        }
        assert_eq!(decode_utf16_head(&bytes).unwrap(), text);
        assert_eq!(decode_utf16_head(b"Epoch 1/2\n"), None);
        // big endian too
        let mut be = vec![0xfe, 0xff];
        for unit in "loss: 1".encode_utf16() {
            be.extend_from_slice(&unit.to_be_bytes());
        }
        assert_eq!(decode_utf16_head(&be).unwrap(), "loss: 1");
    }

    #[test]
    fn a_file_without_a_bom_reads_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "ab").unwrap();
        let mut out = String::new();
        open(&path).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "ab");
        std::fs::write(&path, utf16le("héllo")).unwrap();
        out.clear();
        open(&path).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "héllo");
        std::fs::write(&path, "").unwrap();
        out.clear();
        open(&path).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "");
    }
}
