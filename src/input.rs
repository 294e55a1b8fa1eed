//! Reading input files within bounds. Every input retune reads is a regular file (or, for
//! TensorBoard, a folder of them): a named pipe with no writer would block the read
//! forever and `/dev/zero` never ends, so the file type is checked before the read starts,
//! and the open itself cannot block. Files read whole (a config, retune.toml, a JSON
//! snapshot) have a size limit checked before reading and again while reading (a file can
//! grow); streamed formats bound what one line, row or token may hold. A limit passed is
//! an input error naming the file and the limit, never an abort or an exhausted machine.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// An input passed one of the limits: the whole message for the user, carried inside an
/// `io::Error` through the parsers (serde_json, csv) that read through a bounded reader.
#[derive(Debug)]
pub struct Exceeded(pub String);

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Exceeded {}

/// The `io::Error` a bounded reader fails with.
pub fn exceeded(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Exceeded(message.into()))
}

/// A read failure as an input error naming `path`: a limit's own message, or
/// `Error::read`'s wording for the usual failures.
pub fn read_error(path: &Path, err: &io::Error) -> Error {
    match err.get_ref().and_then(|e| e.downcast_ref::<Exceeded>()) {
        Some(Exceeded(message)) => Error::input(path, message.clone()),
        None => Error::read(path, err),
    }
}

/// A size for messages: `4 MiB`, `1.5 GiB`, `812 bytes`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What a file that is neither regular nor a folder is, for the refusal.
fn special_kind(meta: &Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    let _ = meta;
    "not a regular file"
}

/// Refuses anything but a regular file: a folder, a pipe, a device, a socket.
fn check_regular(path: &Path, meta: &Metadata, what: &str) -> Result<()> {
    if meta.is_file() {
        return Ok(());
    }
    if meta.is_dir() {
        return Err(Error::input(
            path,
            format!("is a directory, expected {what}"),
        ));
    }
    Err(Error::input(
        path,
        format!(
            "is {}, not a regular file; give {what} as a regular file (a pipe or a device may never end)",
            special_kind(meta)
        ),
    ))
}

/// The file type of `path` (through symlinks), as an input error naming it when missing.
pub fn metadata(path: &Path) -> Result<Metadata> {
    std::fs::metadata(path).map_err(|e| Error::read(path, &e))
}

/// Opens `path` for reading if it is a regular file (symlinks followed); otherwise an
/// input error naming it and saying what `what` (`"a metrics file"`) had to be. The type
/// is checked before the open, and the open does not wait for a writer (`O_NONBLOCK`), so a
/// FIFO swapped in between is refused too rather than blocking.
pub fn open_regular(path: &Path, what: &str) -> Result<File> {
    check_regular(path, &metadata(path)?, what)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Harmless on a regular file (reads of one never wait); on a FIFO it makes the open
        // return at once instead of waiting for a writer.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::read(path, &e))?;
    let meta = file.metadata().map_err(|e| Error::read(path, &e))?;
    check_regular(path, &meta, what)?;
    Ok(file)
}

/// Reads a whole regular file of at most `max` bytes; `what` names it for the messages
/// (`"a training config"`). The length is checked before reading, and the read stops one
/// byte past `max` in case the file grew.
pub fn read_capped(path: &Path, what: &str, max: u64) -> Result<Vec<u8>> {
    let file = open_regular(path, what)?;
    let too_big = |size: &str| {
        Error::input(
            path,
            format!(
                "is {size}; {what} is read whole, and retune reads at most {}",
                size_text(max)
            ),
        )
    };
    let len = file.metadata().map_err(|e| Error::read(path, &e))?.len();
    if len > max {
        return Err(too_big(&size_text(len)));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::read(path, &e))?;
    if bytes.len() as u64 > max {
        return Err(too_big(&format!("more than {}", size_text(max))));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(812), "812 bytes");
        assert_eq!(size_text(4 * 1024 * 1024), "4 MiB");
        assert_eq!(size_text(1536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(size_text(200_000_000), "190.7 MiB");
    }

    #[test]
    fn only_regular_files_open() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_regular(dir.path(), "a metrics file").unwrap_err();
        assert!(
            e.to_string()
                .contains("is a directory, expected a metrics file"),
            "{e}"
        );
        let e = open_regular(Path::new("/dev/zero"), "a metrics file").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().contains("/dev/zero: is a character device"),
            "{e}"
        );
        let file = dir.path().join("c.json");
        std::fs::write(&file, "{}").unwrap();
        let mut text = String::new();
        open_regular(&file, "a config")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{}");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("metrics.csv");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let e = open_regular(&fifo, "a metrics file")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is a named pipe (FIFO), not a regular file"),
            "{e}"
        );
    }

    #[test]
    fn capped_reads_stop_past_the_limit_with_the_message() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, "0123456789").unwrap();
        assert_eq!(read_capped(&file, "a config", 10).unwrap().len(), 10);
        let e = read_capped(&file, "a config", 9).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "c.json: is 10 bytes; a config is read whole, and retune reads at most 9 bytes"
            ),
            "{e}"
        );
        let err = exceeded("too long");
        assert_eq!(
            read_error(&file, &err).to_string(),
            format!("{}: too long", file.display())
        );
    }
}
