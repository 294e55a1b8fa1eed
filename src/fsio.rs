//! Writing files so that a reader never sees half of one, and a set of files so that
//! either all of them are written or none: each file is first written to a temporary
//! file in its target's directory and flushed to disk (`Batch::stage`), then renamed over
//! the target (atomic on one file system), and a failed rename puts back what the earlier
//! renames replaced. A target that is a symbolic link is written through: the file it
//! points to gets the new text and the link stays a link.
//!
//! Temporary files are named `.retune-<pid>-XXXXXX`, so that a later call can tell ours
//! from anyone else's and know whether their writer still runs (`clean_stale_temporaries`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// Prefix of every temporary file retune writes; the pid and a random suffix follow.
const TEMP_PREFIX: &str = ".retune-";

/// A temporary file older than this is abandoned even when a process with its pid is
/// running (pids are reused): writing and renaming one takes milliseconds, and a call
/// that holds one for an hour is long dead or stuck.
const STALE_AFTER: Duration = Duration::from_secs(60 * 60);

/// Links followed when resolving a target (the kernel's own limit, `MAXSYMLINKS`, is 40).
const MAX_LINKS: usize = 40;

/// Writes one file atomically (through a symbolic link, if `path` is one).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut batch = Batch::stage(&[(path.to_path_buf(), contents.to_vec())])?;
    batch.commit()
}

/// The file a path names: symbolic links followed (also a dangling one, to the file it
/// would create), relative links taken from the link's directory.
pub fn resolve(path: &Path) -> PathBuf {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(&current) {
                Ok(target) => {
                    current = match current.parent() {
                        Some(dir) if target.is_relative() => dir.join(target),
                        _ => target,
                    };
                }
                Err(_) => return current,
            },
            _ => return current,
        }
    }
    current
}

/// One file or folder by two names (the same device and inode, so symbolic and hard
/// links count), else the same canonical path, else the same path as given.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => resolve(a) == resolve(b),
    }
}

/// A set of files written all or none.
pub struct Batch {
    staged: Vec<(PathBuf, tempfile::NamedTempFile)>,
    /// Targets already renamed over, with what they held before (None: they were new).
    done: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Batch {
    /// Writes every file's contents to a temporary file beside its target and flushes it;
    /// nothing is renamed yet. On any failure the temporaries are removed and no target
    /// is touched.
    pub fn stage(files: &[(PathBuf, Vec<u8>)]) -> Result<Batch> {
        let mut staged = Vec::with_capacity(files.len());
        for (path, contents) in files {
            let target = resolve(path);
            if target.is_dir() {
                return Err(Error::write(
                    path,
                    std::io::Error::other("is a directory, expected a file"),
                ));
            }
            let tmp = stage_one(&target, contents).map_err(|e| Error::write(path, e))?;
            staged.push((target, tmp));
        }
        Ok(Batch {
            staged,
            done: Vec::new(),
        })
    }

    /// Renames every staged file over its target, in the order staged. When one fails,
    /// the ones already renamed are put back as they were and the error is returned.
    pub fn commit(&mut self) -> Result<()> {
        for (target, tmp) in std::mem::take(&mut self.staged) {
            // Only a regular file is read back for a rollback: a named pipe in its place
            // would block the read forever (an answer cache entry replaced by one did).
            let before = std::fs::metadata(&target)
                .is_ok_and(|m| m.is_file())
                .then(|| std::fs::read(&target).ok())
                .flatten();
            if let Err(e) = tmp.persist(&target) {
                self.rollback();
                return Err(Error::write(&target, e.error));
            }
            sync_dir(&target);
            self.done.push((target, before));
        }
        Ok(())
    }

    /// Undoes the renames of `commit`: a replaced file gets its old text back, a new one
    /// is removed. Best effort: this runs on the way out of a failure already reported.
    pub fn rollback(&mut self) {
        for (target, before) in self.done.drain(..).rev() {
            match before {
                Some(text) => {
                    if let Ok(tmp) = stage_one(&target, &text) {
                        let _ = tmp.persist(&target);
                    }
                }
                None => {
                    let _ = std::fs::remove_file(&target);
                }
            }
            sync_dir(&target);
        }
    }
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn stage_one(target: &Path, contents: &[u8]) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = parent_dir(target);
    std::fs::create_dir_all(dir)?;
    clean_stale_temporaries(dir);
    let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // A new file gets the permissions any program's new file gets (0666 less the umask),
    // not the temporary file's private 0600: a team's reports and adjusted configs are
    // read by others.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(contents)?;
    // Keep the permissions of a file we replace (a config may be group-readable only).
    if let Ok(meta) = std::fs::metadata(target) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Flushes a directory so that a rename or a new file in it survives a power cut; where
/// the platform cannot open a directory, the rename is as durable as it gets.
pub fn sync_dir(file: &Path) {
    #[cfg(unix)]
    if let Ok(dir) = std::fs::File::open(parent_dir(file)) {
        let _ = dir.sync_all();
    }
}

/// Removes the temporary files retune itself left in `dir` when a call was killed
/// between writing one and renaming it. Only names of our own pattern are touched, and
/// only when their writer is gone: the pid in the name is not a running process, or the
/// file is older than `STALE_AFTER` (pids are reused; a name from an older retune without
/// a pid is judged by its age alone).
pub fn clean_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        let writer_gone = match rest.split_once('-') {
            Some((pid, suffix)) if !suffix.is_empty() && !suffix.contains('-') => pid
                .parse::<u32>()
                .ok()
                .is_some_and(|pid| !process_alive(pid)),
            // Not our pattern with a pid: an older retune's `.retune-XXXXXX`, or a file
            // somebody else named so; only age removes it.
            _ => false,
        };
        if writer_gone || (old && is_our_suffix(rest)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `<pid>-XXXXXX` or the pid-less `XXXXXX` of older versions: six or more letters and
/// digits as `tempfile` makes them.
fn is_our_suffix(rest: &str) -> bool {
    let random = rest.rsplit_once('-').map_or(rest, |(pid, r)| {
        if pid.chars().all(|c| c.is_ascii_digit()) {
            r
        } else {
            ""
        }
    });
    random.len() >= 6 && random.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Whether a process with this id runs (on platforms without signals: assume it does,
/// so only age removes its files).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return true;
        };
        if pid <= 0 {
            return true;
        }
        // Signal 0 checks existence and permission without sending anything; EPERM means
        // it exists under another user.
        // SAFETY: kill with signal 0 has no effect on the target; it only reports.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// An exclusive lock on a directory, held while the value lives: the calls that adjust
/// the configs in one directory read, decide and write one after another, so the second
/// sees the first's change and cooldown. Locking the directory, not the config, because
/// the config is replaced by a rename (a lock on the old file would not hold the new one)
/// and a lock file would be one more file in the person's folder.
pub struct DirLock {
    _dir: Option<std::fs::File>,
}

impl DirLock {
    /// Blocks until no other retune holds the lock on `file`'s directory. A directory
    /// that cannot be opened for reading (a platform without directory handles, or no
    /// read permission) gives no lock rather than no run.
    pub fn acquire(file: &Path) -> Result<DirLock> {
        let dir = parent_dir(file);
        let Ok(handle) = std::fs::File::open(dir) else {
            return Ok(DirLock { _dir: None });
        };
        match handle.lock() {
            Ok(()) => Ok(DirLock { _dir: Some(handle) }),
            Err(e) if e.kind() == std::io::ErrorKind::Unsupported => Ok(DirLock { _dir: None }),
            Err(e) => Err(Error::write(dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/config.json");
        write_atomic(&path, b"{\"a\": 1}").unwrap();
        write_atomic(&path, b"{\"a\": 2}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\": 2}");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_is_readable_by_others_as_the_umask_allows() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.md");
        write_atomic(&path, b"# report").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What any program's new file gets under this umask, not the temporary's 0600.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert_eq!(mode(&path), mode(&plain));
        // A replaced file keeps its own permissions.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&path, b"# again").unwrap();
        assert_eq!(mode(&path), 0o640);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        let target = dir.path().join("real/config.json");
        std::fs::write(&target, "old").unwrap();
        let link = dir.path().join("config.json");
        std::os::unix::fs::symlink("real/config.json", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
    }

    #[test]
    fn a_failed_rename_puts_back_what_the_batch_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.md");
        std::fs::write(&a, "old a").unwrap();
        let mut batch = Batch::stage(&[
            (a.clone(), b"new a".to_vec()),
            (b.clone(), b"new b".to_vec()),
        ])
        .unwrap();
        // A directory where the second file goes: its rename fails.
        std::fs::create_dir(&b).unwrap();
        assert!(batch.commit().is_err());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert!(b.is_dir());
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(TEMP_PREFIX))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn only_our_abandoned_temporaries_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        // A pid no process has (above Linux's pid_max of 2^22).
        std::fs::write(p(".retune-99999999-aB3xY9"), "x").unwrap();
        // Our own pid: a writer that still runs, and fresh.
        let mine = format!(".retune-{}-zZ1yY2", std::process::id());
        std::fs::write(p(&mine), "x").unwrap();
        // An older retune's name, fresh: kept; the same, two hours old: removed.
        std::fs::write(p(".retune-Qw3rTy"), "x").unwrap();
        std::fs::write(p(".retune-Old0ne"), "x").unwrap();
        let old = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
        std::fs::File::options()
            .write(true)
            .open(p(".retune-Old0ne"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        // Somebody else's file with a similar name.
        std::fs::write(p(".retune-notes.txt"), "x").unwrap();
        clean_stale_temporaries(dir.path());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![
            mine,
            ".retune-Qw3rTy".to_string(),
            ".retune-notes.txt".into(),
        ];
        want.sort();
        assert_eq!(left, want);
    }
}
