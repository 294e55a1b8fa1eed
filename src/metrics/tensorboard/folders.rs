//! Which event files a path stands for (the folder rule in the module docs), and the
//! series name a tag takes from the folder holding its file.

use std::path::{Path, PathBuf};

use super::records::Broken;
use crate::error::{Error, Result};

/// TensorBoard's own test for an event file: its name contains this.
const EVENT_FILE_MARK: &str = "tfevents";
/// Subfolders in which a writer puts one split of a run: Keras' TensorBoard callback
/// writes `train/` and `validation/`, TF Estimator `eval/`.
const SPLIT_FOLDERS: &[&str] = &["train", "training", "validation", "valid", "val", "eval"];

/// Whether a (lowercased) file name is an event file's, by TensorBoard's own rule.
pub(in crate::metrics) fn is_event_file_name(name: &str) -> bool {
    name.contains(EVENT_FILE_MARK)
}

/// One event file of the run.
#[derive(Debug)]
pub(super) struct EventFile {
    pub(super) path: PathBuf,
    /// Name of the folder holding it, which can qualify its tags.
    pub(super) folder: Option<String>,
    /// In a subfolder beside the run's own files, where `add_hparams` writes.
    pub(super) beside_run: bool,
    /// Where the first pass stopped: the end, or the broken record.
    pub(super) end: u64,
    pub(super) broken: Option<Broken>,
    /// Index of the record holding an hparams summary, in a file beside the run: the
    /// scalars from there on are the session's final metrics, not a series.
    pub(super) hparams_from: Option<u64>,
}

impl EventFile {
    fn new(path: PathBuf, beside_run: bool) -> EventFile {
        let folder = folder_name(&path);
        EventFile {
            path,
            folder,
            beside_run,
            end: 0,
            broken: None,
            hparams_from: None,
        }
    }
}

/// The series name of `tag` in a file held by `folder`.
pub(super) fn series_name(folder: Option<&str>, tag: &str) -> String {
    match folder {
        Some(f) if is_split_folder(f) => format!("{f}/{tag}"),
        Some(f) if is_add_scalars_folder(f, tag) => f.to_string(),
        _ => tag.to_string(),
    }
}

fn is_split_folder(name: &str) -> bool {
    SPLIT_FOLDERS.iter().any(|s| name.eq_ignore_ascii_case(s))
}

/// The folder holding `file`, resolved so that a bare file name in the current folder
/// still has one.
fn folder_name(file: &Path) -> Option<String> {
    let resolved = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    let name = resolved.parent()?.file_name()?;
    Some(name.to_string_lossy().into_owned())
}

/// PyTorch's `add_scalars(main_tag, {key: …})` writes tag `main_tag` into the folder
/// `<main_tag with / as _>_<key>`.
fn is_add_scalars_folder(folder: &str, tag: &str) -> bool {
    let main = tag.replace('/', "_");
    folder.len() > main.len() + 1
        && folder.starts_with(&main)
        && folder.as_bytes().get(main.len()) == Some(&b'_')
}

/// The event files `path` stands for: itself, or by the folder rule (module docs).
pub(super) fn run_files(path: &Path) -> Result<Vec<EventFile>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::read(path, &e))?;
    if !meta.is_dir() {
        return Ok(vec![EventFile::new(path.to_path_buf(), false)]);
    }
    let direct = event_files_in(path)?;
    let mut subfolders = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| Error::read(path, &e))? {
        let entry = entry.map_err(|e| Error::read(path, &e))?;
        if entry.path().is_dir() {
            let files = event_files_in(&entry.path())?;
            if !files.is_empty() {
                subfolders.push((entry.file_name().to_string_lossy().into_owned(), files));
            }
        }
    }
    subfolders.sort();
    let runs: Vec<&str> = subfolders
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| !is_split_folder(name))
        .collect();
    if direct.is_empty() && runs.len() > 1 {
        return Err(Error::input(
            path,
            format!(
                "holds the TensorBoard event files of several runs ({}); point --metrics at one of them",
                runs.iter()
                    .map(|r| format!("{r}/"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let beside_run = !direct.is_empty();
    let mut files: Vec<EventFile> = direct
        .into_iter()
        .map(|p| EventFile::new(p, false))
        .collect();
    for (name, paths) in subfolders {
        let split = is_split_folder(&name);
        files.extend(
            paths
                .into_iter()
                .map(|p| EventFile::new(p, beside_run && !split)),
        );
    }
    if files.is_empty() {
        return Err(Error::input(
            path,
            "is a directory with no TensorBoard event file (a name containing `tfevents`) in it or its immediate subfolders; expected a metrics file or a TensorBoard log folder",
        ));
    }
    Ok(files)
}

/// The event files directly in `dir`, in name order (their names start with the time
/// the writer opened them).
pub(super) fn event_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::read(dir, &e))? {
        let entry = entry.map_err(|e| Error::read(dir, &e))?;
        let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
        if is_event_file_name(&name) && entry.path().is_file() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Checks that a folder is a TensorBoard run folder, for format detection.
pub(in crate::metrics) fn check_folder(path: &Path) -> Result<()> {
    run_files(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use crate::metrics::tensorboard::proto::HPARAMS_PLUGIN;
    use crate::metrics::tensorboard::proto::SummaryValue;
    use crate::metrics::tensorboard::testing::*;
    use crate::metrics::testing::values;
    use crate::metrics::{Canonical, Format, load_metrics};

    #[test]
    fn folder_rules() {
        // several runs side by side
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &format!("b/{EVENTS}"),
            &[event(0, simple("loss", 1.0))],
        );
        write(
            dir.path(),
            &format!("a/{EVENTS}"),
            &[event(0, simple("loss", 1.0))],
        );
        let e = load_metrics(dir.path(), None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().ends_with(
                "holds the TensorBoard event files of several runs (a/, b/); point --metrics at one of them"
            ),
            "{e}"
        );
        // none at all
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("notes.txt"), "x").unwrap();
        let e = load_metrics(empty.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("is a directory with no TensorBoard event file"),
            "{e}"
        );
        // add_hparams beside the run: its copy of the final metrics is not a series
        let run = tempfile::tempdir().unwrap();
        let losses: Vec<_> = (0..3)
            .map(|e| event(e, simple("loss", 1.0 - 0.1 * e as f32)))
            .collect();
        write(run.path(), EVENTS, &losses);
        let hparams = SummaryValue {
            tag: "_hparams_/session_start_info".into(),
            metadata: plugin(HPARAMS_PLUGIN),
            ..Default::default()
        };
        write(
            run.path(),
            &format!("1790000123.456/{EVENTS}"),
            &[event(0, hparams), event(0, simple("loss", 0.8))],
        );
        let m = load_metrics(run.path(), None).unwrap();
        assert_eq!(m.format, Format::Tensorboard);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        assert_eq!(values(&m, Canonical::Loss).len(), 3);
    }
}
