//! MLflow's local file store (`mlruns/`, what `mlflow.set_tracking_uri("file:…")` and
//! MLflow's default before 3.0 write), read the way the REST side reads a server: active
//! experiments and runs only, the same `MlflowRun`, so naming, params and epoch placement
//! are shared.
//!
//! The layout, as `mlflow/store/tracking/file_store.py` (3.17) writes and reads it:
//! - `<root>/<experiment id>/meta.yaml`: `experiment_id`, `name`, `lifecycle_stage`;
//!   deleted experiments move to `<root>/.trash/`;
//! - `<root>/<experiment id>/<run id>/meta.yaml`: `run_id` (`run_uuid` before 1.x),
//!   `run_name` (absent before 1.29: then the `mlflow.runName` tag), `status` as the
//!   number of MLflow's `RunStatus` enum, `lifecycle_stage`, `artifact_uri`;
//! - `params/<key>`, `tags/<key>`: the value is the whole file; a key with `/` is a path;
//! - `metrics/<key>`: one line per value, `timestamp value step` (`timestamp value` before
//!   MLflow 1.0, with the step 0; 5 fields with a dataset name and digest since 3.0), the
//!   value as Python prints a float (`nan`, `inf`).
//!
//! The store is only read: MLflow's own client writes it, and two writers to one folder
//! without locks would be trouble.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value as Yaml;

use super::{Experiment, MetricPoint, MlflowRun};
use crate::error::{Error, Result};

/// The name of every meta file in the store.
const META: &str = "meta.yaml";
/// Where MLflow moves deleted experiments: not read.
const TRASH: &str = ".trash";
/// Experiment folders looked at to decide whether a folder is a store at all; a store
/// with thousands of experiments is recognised by its first ones.
const PROBED_CHILDREN: usize = 64;
/// Key folders nest by `/` in the key; MLflow limits keys to 250 characters, so deeper
/// than this is not a store MLflow wrote.
const MAX_KEY_DEPTH: usize = 64;

/// `RunStatus` in mlflow/protos/service.proto, as the file store writes it.
fn status_name(number: i64) -> Option<&'static str> {
    Some(match number {
        1 => "RUNNING",
        2 => "SCHEDULED",
        3 => "FINISHED",
        4 => "FAILED",
        5 => "KILLED",
        _ => return None,
    })
}

/// A folder that is MLflow's file store, or one experiment's folder in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStore {
    /// The store's root (`mlruns/`).
    pub root: PathBuf,
    /// The experiment folder named, when the folder given was one.
    pub only: Option<String>,
}

/// A run's identity as its `meta.yaml` gives it: enough to name and list the run before
/// its params and metrics are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRun {
    pub dir: PathBuf,
    pub run_id: String,
    pub run_name: String,
    pub experiment_id: String,
    pub status: String,
    pub artifact_uri: String,
    /// Milliseconds since the Unix epoch, for MLflow's default order (newest first).
    pub start_time: i64,
}

/// A run folder listed in an experiment, read or not.
#[derive(Debug)]
pub struct Listed {
    /// The run's folder.
    pub dir: PathBuf,
    /// Its `meta.yaml` as read, or why it could not be.
    pub meta: Result<Option<LocalRun>>,
}

impl LocalStore {
    /// The store a tracking URI names: `file:./mlruns`, `file:mlruns`, `file:/abs/mlruns`,
    /// `file:///abs/mlruns` (MLflow's own client takes all of them), or `None` when the
    /// URI is not a `file:` one.
    pub fn from_uri(uri: &str) -> Option<Result<LocalStore>> {
        let uri = uri.trim();
        let rest = uri.strip_prefix("file:")?;
        let path = if rest.starts_with("//") {
            match reqwest::Url::parse(uri).ok().and_then(|u| {
                let local = matches!(u.host_str(), None | Some("") | Some("localhost"));
                if local { u.to_file_path().ok() } else { None }
            }) {
                Some(path) => path,
                None => {
                    return Some(Err(Error::Usage(format!(
                        "`{uri}`: a file store URI is `file:/absolute/path` or `file:relative/path` on this machine"
                    ))));
                }
            }
        } else {
            PathBuf::from(rest)
        };
        Some(LocalStore::open(&path))
    }

    /// The store at `path` (its root, or one experiment's folder in it), or an error
    /// saying what the folder is not.
    pub fn open(path: &Path) -> Result<LocalStore> {
        if !path.is_dir() {
            return Err(Error::input(
                path,
                "no such folder: an MLflow file store is a folder such as mlruns/",
            ));
        }
        match LocalStore::detect(path) {
            Some(store) => Ok(store),
            None => Err(Error::input(
                path,
                "not an MLflow file store: no experiment folder with a meta.yaml in it",
            )),
        }
    }

    /// The store at `path` if it is one: a folder whose experiment folders hold a
    /// `meta.yaml` with an `experiment_id`, or one such experiment folder. Decided on
    /// the files' text, so that a store with a broken `meta.yaml` is still read (and the
    /// broken file reported).
    pub fn detect(path: &Path) -> Option<LocalStore> {
        if is_experiment_dir(path) {
            let root = path.parent()?.to_path_buf();
            let only = path.file_name()?.to_string_lossy().into_owned();
            return Some(LocalStore {
                root: if root.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    root
                },
                only: Some(only),
            });
        }
        let entries = std::fs::read_dir(path).ok()?;
        let mut probed = 0;
        for entry in entries.flatten() {
            if probed == PROBED_CHILDREN {
                break;
            }
            let child = entry.path();
            if !child.is_dir() || entry.file_name() == TRASH {
                continue;
            }
            probed += 1;
            if is_experiment_dir(&child) {
                return Some(LocalStore {
                    root: path.to_path_buf(),
                    only: None,
                });
            }
        }
        None
    }

    /// The store as messages name it.
    pub fn shown(&self) -> String {
        match &self.only {
            Some(only) => self.root.join(only).display().to_string(),
            None => self.root.display().to_string(),
        }
    }

    /// The active experiments, by id (numerically where ids are numbers).
    pub fn experiments(&self) -> Result<Vec<Experiment>> {
        let mut found = Vec::new();
        let dirs: Vec<PathBuf> = match &self.only {
            Some(only) => vec![self.root.join(only)],
            None => {
                let entries =
                    std::fs::read_dir(&self.root).map_err(|e| Error::read(&self.root, &e))?;
                entries
                    .flatten()
                    .filter(|e| e.file_name() != TRASH)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir() && p.join(META).is_file())
                    .collect()
            }
        };
        for dir in dirs {
            let meta = read_meta(&dir.join(META))?;
            let Some(id) = text(&meta, "experiment_id") else {
                // A folder with a meta.yaml that is not an experiment's (MLflow keeps
                // other things beside them, such as registered models in `models/`).
                continue;
            };
            if text(&meta, "lifecycle_stage").as_deref() == Some("deleted") {
                continue;
            }
            let name = text(&meta, "name").unwrap_or_else(|| id.clone());
            found.push(Experiment { id, name });
        }
        found.sort_by(|a, b| {
            let key = |e: &Experiment| (e.id.parse::<u64>().ok(), e.id.clone());
            key(a).cmp(&key(b))
        });
        Ok(found)
    }

    /// The experiment named `name_or_id`, or with that id when no name matches; as the
    /// REST side does, a deleted one is an error and a missing one lists the others.
    pub fn experiment(&self, name_or_id: &str) -> Result<Experiment> {
        let wanted = name_or_id.trim();
        if wanted.is_empty() {
            return Err(Error::Usage("--experiment needs a name or an id".into()));
        }
        let all = self.experiments()?;
        if let Some(e) = all
            .iter()
            .find(|e| e.id == wanted)
            .or_else(|| all.iter().find(|e| e.name == wanted))
        {
            return Ok(e.clone());
        }
        let trashed = self.root.join(TRASH);
        if trashed.join(wanted).join(META).is_file() || self.root.join(wanted).join(META).is_file()
        {
            return Err(Error::input(
                Path::new(&self.shown()),
                format!("experiment `{wanted}` is deleted; restore it or name another"),
            ));
        }
        let names: Vec<String> = all.iter().map(|e| format!("`{}`", e.name)).collect();
        let listed = if names.is_empty() {
            "the store has no experiments".to_string()
        } else {
            format!("experiments there: {}", names.join(", "))
        };
        Err(Error::input(
            Path::new(&self.shown()),
            format!("no experiment named `{wanted}` there; {listed}"),
        ))
    }

    /// The run folders of an experiment, each with its `meta.yaml` read: `Ok(None)` for
    /// a deleted run, an error for a `meta.yaml` that cannot be read. Active runs come
    /// newest first, as MLflow lists them; the others after, by folder.
    pub fn runs(&self, experiment: &Experiment) -> Result<Vec<Listed>> {
        let dir = self.root.join(&experiment.id);
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::read(&dir, &e))?;
        let mut listed: Vec<Listed> = entries
            .flatten()
            .map(|e| e.path())
            // An experiment folder also holds its `tags/` and, since MLflow 3, `traces/`,
            // `datasets/` …: a run folder is one with a meta.yaml.
            .filter(|p| p.is_dir() && p.join(META).is_file())
            .map(|dir| Listed {
                meta: read_run_meta(&dir),
                dir,
            })
            .collect();
        listed.sort_by(|a, b| {
            let key = |l: &Listed| match &l.meta {
                Ok(Some(r)) => (0, -r.start_time, l.dir.clone()),
                _ => (1, 0, l.dir.clone()),
            };
            key(a).cmp(&key(b))
        });
        Ok(listed)
    }
}

/// A folder whose `meta.yaml` reads as an experiment's.
fn is_experiment_dir(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(META)).is_ok_and(|text| {
        text.lines().any(|l| l.starts_with("experiment_id:"))
            && text.lines().any(|l| l.starts_with("artifact_location:"))
    })
}

/// A `meta.yaml` as a YAML mapping; anything else is an error at its line.
fn read_meta(path: &Path) -> Result<Yaml> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, &e))?;
    let value: Yaml = serde_yaml_ng::from_str(&text).map_err(|e| match e.location() {
        Some(at) => Error::at(
            path,
            at.line() as u64,
            Some(at.column() as u64),
            format!("not valid YAML: {}", yaml_message(&e)),
        ),
        None => Error::input(path, format!("not valid YAML: {}", yaml_message(&e))),
    })?;
    if !value.is_mapping() {
        return Err(Error::input(
            path,
            "not MLflow's meta.yaml: expected a mapping of `key: value` lines",
        ));
    }
    Ok(value)
}

/// A YAML error's message without the position, which the error puts in front.
fn yaml_message(e: &serde_yaml_ng::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A field as text: strings as they are, numbers as written (YAML may read an id as
/// a number when MLflow did not quote it).
fn text(meta: &Yaml, key: &str) -> Option<String> {
    match meta.get(key)? {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The run's identity from its folder's `meta.yaml`; `None` for a deleted run.
pub fn read_run_meta(dir: &Path) -> Result<Option<LocalRun>> {
    let path = dir.join(META);
    let meta = read_meta(&path)?;
    if text(&meta, "lifecycle_stage").as_deref() == Some("deleted") {
        return Ok(None);
    }
    let Some(run_id) = text(&meta, "run_id").or_else(|| text(&meta, "run_uuid")) else {
        return Err(Error::input(
            &path,
            "not a run's meta.yaml: no `run_id` (nor `run_uuid`)",
        ));
    };
    let status = match meta.get("status") {
        Some(Yaml::Number(n)) => n
            .as_i64()
            .and_then(status_name)
            .map(str::to_string)
            .ok_or_else(|| {
                Error::input(&path, format!("`status: {n}` is not one of MLflow's (1–5)"))
            })?,
        Some(Yaml::String(s)) => s.clone(),
        _ => String::new(),
    };
    let run_name = match text(&meta, "run_name").filter(|n| !n.is_empty()) {
        Some(name) => name,
        None => read_value(&dir.join("tags").join("mlflow.runName"))?.unwrap_or_default(),
    };
    let start_time = meta
        .get("start_time")
        .and_then(Yaml::as_i64)
        .unwrap_or_default();
    Ok(Some(LocalRun {
        dir: dir.to_path_buf(),
        run_id,
        run_name,
        experiment_id: text(&meta, "experiment_id").unwrap_or_default(),
        status,
        artifact_uri: text(&meta, "artifact_uri").unwrap_or_default(),
        start_time,
    }))
}

/// A param's or tag's file, `None` when there is none.
fn read_value(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::read(path, &e)),
    }
}

impl LocalRun {
    /// The whole run: params and tags by key, and every metric's history.
    pub fn read(&self) -> Result<MlflowRun> {
        let params = key_files(&self.dir.join("params"))?
            .into_iter()
            .map(|(key, path)| {
                let value = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, &e))?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        let tags = key_files(&self.dir.join("tags"))?
            .into_iter()
            .map(|(key, path)| {
                let value = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, &e))?;
                Ok((key, value))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut metrics = BTreeMap::new();
        for (key, path) in key_files(&self.dir.join("metrics"))? {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::read(&path, &e))?;
            metrics.insert(key, metric_lines(&path, &text)?);
        }
        Ok(MlflowRun {
            run_id: self.run_id.clone(),
            run_name: self.run_name.clone(),
            experiment_id: self.experiment_id.clone(),
            status: self.status.clone(),
            artifact_uri: self.artifact_uri.clone(),
            params,
            tags,
            metrics,
        })
    }

    /// Whether the run has logged no metric value yet (started, nothing written).
    pub fn no_metrics_yet(&self) -> bool {
        key_files(&self.dir.join("metrics")).is_ok_and(|files| {
            files
                .iter()
                .all(|(_, p)| std::fs::metadata(p).is_ok_and(|m| m.len() == 0))
        })
    }
}

/// Every file under `dir` as (key, path), the key being its path under `dir` with `/`
/// (MLflow stores `a/b` as a subfolder), sorted by key. No folder: no keys.
fn key_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    if !dir.is_dir() {
        return Ok(found);
    }
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0usize)];
    while let Some((folder, prefix, depth)) = stack.pop() {
        if depth > MAX_KEY_DEPTH {
            return Err(Error::input(
                &folder,
                format!("folders nested deeper than {MAX_KEY_DEPTH}: not a store MLflow wrote"),
            ));
        }
        let entries = std::fs::read_dir(&folder).map_err(|e| Error::read(&folder, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::read(&folder, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let key = format!("{prefix}{name}");
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| Error::read(&path, &e))?;
            if kind.is_dir() {
                stack.push((path, format!("{key}/"), depth + 1));
            } else {
                found.push((key, path));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A metric file's lines as points. A line of the wrong shape stops the read with its
/// line number: a file whose lines have a step and one line without is a line cut short
/// (MLflow appends one line per value; a crash mid-write leaves half a line).
fn metric_lines(path: &Path, text: &str) -> Result<Vec<MetricPoint>> {
    let mut points = Vec::new();
    let mut with_step = false;
    let mut without_step: Option<u64> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i as u64 + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(' ').collect();
        let bad = |what: String| {
            Error::at(
                path,
                number,
                None,
                format!(
                    "metric line `{}`: {what}; MLflow writes `timestamp value step`",
                    crate::num::truncate(line, 80)
                ),
            )
        };
        if !matches!(fields.len(), 2 | 3 | 5) {
            return Err(bad(format!("{} field(s), a line cut short?", fields.len())));
        }
        let timestamp: i64 = fields[0]
            .parse()
            .map_err(|_| bad(format!("timestamp `{}` is not a whole number", fields[0])))?;
        let value: f64 = fields[1]
            .parse()
            .map_err(|_| bad(format!("value `{}` is not a number", fields[1])))?;
        let step: i64 = match fields.get(2) {
            Some(s) => s
                .parse()
                .map_err(|_| bad(format!("step `{s}` is not a whole number")))?,
            None => 0,
        };
        if fields.len() == 2 {
            without_step.get_or_insert(number);
        } else {
            with_step = true;
        }
        points.push(MetricPoint {
            step,
            timestamp,
            value,
        });
    }
    if let (true, Some(number)) = (with_step, without_step) {
        return Err(Error::at(
            path,
            number,
            None,
            "metric line without its step among lines with one: a line cut short? MLflow writes `timestamp value step`",
        ));
    }
    Ok(points)
}

/// Names for runs as the REST side gives them: `<experiment>/<run name>`, with the start
/// of the id when two runs of a review share a name, `<experiment>/<id start>` without one.
pub fn run_names<'a>(runs: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> Vec<String> {
    let runs: Vec<(&str, &str, &str)> = runs.collect();
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    for &(experiment, name, _) in &runs {
        *seen.entry((experiment, name)).or_default() += 1;
    }
    runs.iter()
        .map(|&(experiment, name, id)| {
            let short = id.get(..8).unwrap_or(id);
            match name {
                "" => format!("{experiment}/{short}"),
                name if seen[&(experiment, name)] > 1 => format!("{experiment}/{name}@{short}"),
                name => format!("{experiment}/{name}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn metric_lines_read_every_version_and_name_a_cut_line() {
        let p = Path::new("m/loss");
        let points =
            metric_lines(p, "10 1.5 0\n11 nan 1\n12 inf 2\n13 -inf 3 train abc\n").unwrap();
        assert_eq!(points.len(), 4);
        assert!(points[1].value.is_nan());
        assert_eq!((points[2].value, points[2].step), (f64::INFINITY, 2));
        assert_eq!(points[3].value, f64::NEG_INFINITY);
        // before MLflow 1.0: no step
        let old = metric_lines(p, "10 1.5\n11 1.2\n").unwrap();
        assert_eq!(old.iter().map(|p| p.step).collect::<Vec<_>>(), [0, 0]);
        for (text, line, says) in [
            ("10 1.5 0\n1796", 2, "1 field(s)"),
            ("10 1.5 0\n11 1.", 2, "without its step"),
            ("10 1.5 0\n11 x 1\n", 2, "value `x`"),
            ("10 1.5 0 a\n", 1, "4 field(s)"),
            ("1.5 1.5 0\n", 1, "timestamp `1.5`"),
        ] {
            let e = metric_lines(p, text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("m/loss:{line}: ")), "{e}");
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn uris_name_stores_absolute_and_relative() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("mlruns");
        write(
            &root.join("0/meta.yaml"),
            "artifact_location: file:///x\nexperiment_id: '0'\nlifecycle_stage: active\nname: Default\n",
        );
        let abs = root.display().to_string();
        for uri in [format!("file:{abs}"), format!("file://{abs}")] {
            let store = LocalStore::from_uri(&uri).unwrap().unwrap();
            assert_eq!(store.root, root, "{uri}");
        }
        assert!(LocalStore::from_uri("http://h:5000").is_none());
        let e = LocalStore::from_uri("file://elsewhere/mlruns")
            .unwrap()
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let one = LocalStore::open(&root.join("0")).unwrap();
        assert_eq!(one.only.as_deref(), Some("0"));
        let e = LocalStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not an MLflow file store"), "{e}");
    }

    #[test]
    fn a_broken_meta_yaml_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("1/abc");
        write(
            &run.join("meta.yaml"),
            "run_id: abc\nstatus: 3\nrun_name: [a\n",
        );
        let e = read_run_meta(&run).unwrap_err().to_string();
        assert!(e.contains("1/abc/meta.yaml:"), "{e}");
        assert!(e.contains("not valid YAML"), "{e}");
        write(&run.join("meta.yaml"), "status: 3\n");
        let e = read_run_meta(&run).unwrap_err().to_string();
        assert!(e.contains("no `run_id`"), "{e}");
        write(&run.join("meta.yaml"), "run_id: abc\nstatus: 9\n");
        assert!(
            read_run_meta(&run)
                .unwrap_err()
                .to_string()
                .contains("status: 9")
        );
        write(
            &run.join("meta.yaml"),
            "run_uuid: abc\nstatus: 4\nexperiment_id: '1'\nlifecycle_stage: active\n",
        );
        write(&run.join("tags/mlflow.runName"), "old-run");
        let r = read_run_meta(&run).unwrap().unwrap();
        assert_eq!(
            (r.run_name.as_str(), r.status.as_str()),
            ("old-run", "FAILED")
        );
        write(&run.join("metrics/system/cpu"), "");
        assert!(r.no_metrics_yet());
        write(&run.join("metrics/loss"), "1 2.0 0\n");
        write(&run.join("params/optimizer/lr"), "0.1");
        let read = r.read().unwrap();
        assert_eq!(
            read.params,
            [("optimizer/lr".to_string(), "0.1".to_string())]
        );
        assert_eq!(
            read.metrics.keys().collect::<Vec<_>>(),
            ["loss", "system/cpu"]
        );
    }

    #[test]
    fn names_follow_the_rest_side() {
        let names = run_names(
            [
                ("e", "a", "1234567890"),
                ("e", "a", "abcdefabcd"),
                ("e", "b", "x"),
                ("f", "a", "y"),
                ("e", "", "0011223344"),
            ]
            .into_iter(),
        );
        assert_eq!(
            names,
            ["e/a@12345678", "e/a@abcdefab", "e/b", "f/a", "e/00112233"]
        );
    }
}
