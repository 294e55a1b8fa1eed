//! Finding runs under folders. A run is a folder whose files include a metrics file (by
//! name, first pattern in the list wins), with a config JSON beside it when there is one.
//! Once a folder is a run its subfolders are its own (checkpoints, TensorBoard splits) and
//! are not searched. A Ray Tune trial folder is a run by Ray's own names (`params.json`
//! beside `result.json`). A folder whose metrics files are of several unrelated runs (a
//! folder of samples, logs copied together) is not a run: each of its files is reviewed
//! as one, and its subfolders are searched. The rules are in `retune review --help` and
//! the README; this module is their one implementation.

use std::path::{Component, Path, PathBuf};

use globset::{Glob, GlobMatcher};

use crate::error::{Error, Result};
use crate::metrics::{self, Canonical};

/// Metrics file names in order of preference: the specific names trainers write first.
/// Deliberately no `*.csv` or `*.log`: a folder of data (`train.csv`) or of server logs
/// would read as a broken run.
pub const METRICS_NAMES: [&str; 13] = [
    "metrics.csv",
    "history.csv",
    "training.csv",
    "log.csv",
    "metrics.jsonl",
    "log.jsonl",
    "trainer_state.json",
    "history.json",
    "training.log",
    "train.log",
    "events.out.tfevents.*",
    // A W&B run folder (`wandb/run-…/`, `wandb/offline-run-…/`): its record of the run.
    "run-*.wandb",
    "metrics.json",
];

pub const CONFIG_NAMES: [&str; 6] = [
    "config.json",
    "train_config.json",
    "training_config.json",
    "hparams.json",
    "params.json",
    "*config*.json",
];

/// Subfolders Keras' TensorBoard callback (and TF Estimator) write event files into; a
/// folder holding them is one TensorBoard run, read as a folder.
const TENSORBOARD_SPLITS: [&str; 4] = ["train", "validation", "val", "eval"];

/// Folders that never hold runs and can be large. (`wandb/` holds W&B runs; its
/// `latest-run` is a symlink to one of them, and symlinked folders are not followed.)
const SKIPPED: [&str; 4] = ["node_modules", "__pycache__", "venv", "site-packages"];

/// A Ray Tune trial folder (`<experiment>/<trainable>_<id>_<n>_<params>_<date>/`): the
/// trial's config as Ray wrote it, and its results, one JSON line per `tune.report`
/// (`result.json`). Ray also writes TensorBoard events there when tensorboardX is
/// installed (it comes with `ray[tune]`); they hold the same values, and the result file
/// is read first. Not `progress.csv`: its text columns (`done` is `False`, `trial_id`,
/// `date`) are not a metrics CSV the readers take; without `result.json` the folder is
/// found by the other names (the TensorBoard events).
const RAY_PARAMS: &str = "params.json";
const RAY_RESULTS: [&str; 1] = ["result.json"];

/// Extensions of files that may hold metrics under a name of the user's own
/// (`keras_history.json`, `run1.log`): in a folder already found to be a run, these are
/// looked at to see whether the folder holds several runs' files.
const SAMPLE_EXTENSIONS: [&str; 5] = ["csv", "json", "jsonl", "log", "txt"];
/// Most files of one folder read to compare: a folder of more is not one run's either
/// way, and reading them all would make discovery as slow as the review.
const MAX_COMPARED: usize = 32;
/// Two files of one run (Keras' CSVLogger and its console log) agree on the last loss up
/// to the console's 4 significant digits; different runs almost never do.
const SAME_RUN_TOLERANCE: f64 = 1e-3;

/// Deeper than any experiment layout; stops a symlink loop or a whole disk being walked.
const MAX_DEPTH: usize = 12;

/// One run found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The folder as the user would type it (`experiments/lr0.5`).
    pub name: String,
    pub dir: PathBuf,
    pub config: Option<PathBuf>,
    /// A file, or the run folder itself for a TensorBoard run split into subfolders.
    pub metrics: PathBuf,
}

/// The name patterns, in order of preference.
pub struct Names {
    config: Vec<GlobMatcher>,
    metrics: Vec<GlobMatcher>,
    /// Only with the built-in metrics names: the user's own list says exactly what counts.
    tensorboard_splits: bool,
}

impl Names {
    /// The built-in lists, or the user's (`--config-name`, `--metrics-name`).
    pub fn new(config: &[String], metrics: &[String]) -> Result<Names> {
        let compile = |patterns: Vec<&str>, flag: &str| -> Result<Vec<GlobMatcher>> {
            patterns
                .into_iter()
                .map(|p| {
                    Glob::new(p)
                        .map(|g| g.compile_matcher())
                        .map_err(|e| Error::Usage(format!("--{flag} {p:?}: {e}")))
                })
                .collect()
        };
        let or_default = |given: &[String], default: &[&'static str]| -> Vec<String> {
            if given.is_empty() {
                default.iter().map(|s| s.to_string()).collect()
            } else {
                given.to_vec()
            }
        };
        let config = or_default(config, &CONFIG_NAMES);
        let metrics_list = or_default(metrics, &METRICS_NAMES);
        Ok(Names {
            config: compile(config.iter().map(String::as_str).collect(), "config-name")?,
            metrics: compile(
                metrics_list.iter().map(String::as_str).collect(),
                "metrics-name",
            )?,
            tensorboard_splits: metrics.is_empty(),
        })
    }

    fn metrics_in(&self, files: &[String]) -> Option<String> {
        first_match(&self.metrics, files, |_| true)
    }

    fn config_in(&self, files: &[String]) -> Option<String> {
        first_match(&self.config, files, |name| {
            !name.ends_with(".retuned.json") && !self.metrics.iter().any(|m| m.is_match(name))
        })
    }
}

/// The first pattern that matches a file wins; among files matching one pattern, the
/// first by name.
fn first_match(
    patterns: &[GlobMatcher],
    files: &[String],
    allowed: impl Fn(&str) -> bool,
) -> Option<String> {
    patterns.iter().find_map(|p| {
        files
            .iter()
            .find(|f| p.is_match(f.as_str()) && allowed(f))
            .cloned()
    })
}

/// Every run under `roots`, sorted by name. `skip` are folders never searched (the
/// report folder, whose runs/ would otherwise be found as runs next time).
pub fn discover(roots: &[PathBuf], names: &Names, skip: &[PathBuf]) -> Result<Vec<Found>> {
    let skip: Vec<PathBuf> = skip.iter().filter_map(|p| p.canonicalize().ok()).collect();
    let mut found = Vec::new();
    for root in roots {
        let meta = std::fs::metadata(root).map_err(|e| Error::read(root, &e))?;
        if !meta.is_dir() {
            return Err(Error::input(
                root,
                "is a file; review searches folders (for one run use `retune suggest` or `retune diagnose`)",
            ));
        }
        walk(root, root, names, &skip, 0, &mut found)?;
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    // One folder given twice (or through a symlink) is one run; the files of a folder of
    // several runs are each their own.
    found.dedup_by(|a, b| {
        crate::fsio::same_file(&a.dir, &b.dir) && a.metrics.file_name() == b.metrics.file_name()
    });
    Ok(found)
}

fn walk(
    root: &Path,
    dir: &Path,
    names: &Names,
    skip: &[PathBuf],
    depth: usize,
    found: &mut Vec<Found>,
) -> Result<()> {
    if depth > MAX_DEPTH || dir.canonicalize().is_ok_and(|c| skip.contains(&c)) {
        return Ok(());
    }
    let (files, subdirs) = list(dir)?;
    if names.tensorboard_splits
        && let Some((config, results)) = ray_trial(dir, &files)
    {
        found.push(Found {
            name: display_name(root, dir),
            dir: dir.to_path_buf(),
            config: Some(config),
            metrics: results,
        });
        return Ok(());
    }
    let metrics = names.metrics_in(&files).map(|f| dir.join(f)).or_else(|| {
        (names.tensorboard_splits && has_tensorboard_splits(dir, &subdirs))
            .then(|| dir.to_path_buf())
    });
    if let Some(metrics) = metrics {
        let several = if names.tensorboard_splits && metrics.is_file() {
            unrelated_runs(dir, &files, names)
        } else {
            Vec::new()
        };
        if !several.is_empty() {
            let name = display_name(root, dir);
            for file in several {
                found.push(Found {
                    name: format!("{name}/{file}"),
                    dir: dir.to_path_buf(),
                    config: None,
                    metrics: dir.join(file),
                });
            }
            for sub in latest_checkpoints_only(subdirs) {
                walk(root, &dir.join(sub), names, skip, depth + 1, found)?;
            }
            return Ok(());
        }
        found.push(Found {
            name: display_name(root, dir),
            dir: dir.to_path_buf(),
            config: names.config_in(&files).map(|f| dir.join(f)),
            metrics,
        });
        return Ok(());
    }
    for sub in latest_checkpoints_only(subdirs) {
        walk(root, &dir.join(sub), names, skip, depth + 1, found)?;
    }
    Ok(())
}

/// The config and the results of a Ray Tune trial folder, when `dir` is one with results.
fn ray_trial(dir: &Path, files: &[String]) -> Option<(PathBuf, PathBuf)> {
    if !files.iter().any(|f| f == RAY_PARAMS) {
        return None;
    }
    let results = RAY_RESULTS.iter().find(|r| files.iter().any(|f| f == *r))?;
    Some((dir.join(RAY_PARAMS), dir.join(results)))
}

/// The metrics files of `dir` when they are of several unrelated runs, else nothing (the
/// folder is one run). Candidates are the text files a metrics name matches and the
/// files with a metrics-like extension whose first bytes read as a metrics format;
/// configs, adjusted configs and retune's own history are not. Files of one run agree on the
/// last training (or validation) loss and its epoch; a file that does not load or has
/// no loss is left to the review of the one run, which reports it.
fn unrelated_runs(dir: &Path, files: &[String], names: &Names) -> Vec<String> {
    let config = names.config_in(files);
    let candidates: Vec<&String> = files
        .iter()
        .filter(|f| Some(*f) != config.as_ref())
        .filter(|f| !f.ends_with(".retuned.json") && f.as_str() != "history.jsonl")
        // A folder's event files are one TensorBoard run split at restarts, and a W&B
        // folder holds one run: the binary formats are never several runs' samples.
        .filter(|f| !f.starts_with("events.out.tfevents.") && !f.ends_with(".wandb"))
        .filter(|f| {
            names.metrics.iter().any(|m| m.is_match(f.as_str()))
                || (has_sample_extension(f) && metrics::detect(&dir.join(f)).is_ok())
        })
        .take(MAX_COMPARED + 1)
        .collect();
    if candidates.len() < 2 {
        return Vec::new();
    }
    let mut runs: Vec<(&String, metrics::Metrics)> = Vec::new();
    for file in candidates {
        let Ok(m) = metrics::load_metrics(&dir.join(file), None) else {
            continue;
        };
        let history = [Canonical::Loss, Canonical::ValLoss]
            .into_iter()
            .any(|c| m.get(c).is_some_and(|s| s.len() >= MIN_COMPARED_EPOCHS));
        if history {
            runs.push((file, m));
        }
    }
    match runs.split_first() {
        Some(((_, first), rest)) if rest.iter().any(|(_, m)| !same_run(first, m)) => {
            runs.into_iter().map(|(f, _)| f.clone()).collect()
        }
        _ => Vec::new(),
    }
}

/// Epochs of loss a file needs to be compared: a one-row summary (`all_results.json`,
/// the HF Trainer's average training loss) is not a history to match against.
const MIN_COMPARED_EPOCHS: usize = 2;

/// Whether two files can be one run's: at every loss both have, their values at the
/// last epoch both reached agree (a file flushed an epoch later is still the same run).
/// Files with no loss in common cannot be told apart and are taken as one run.
fn same_run(a: &metrics::Metrics, b: &metrics::Metrics) -> bool {
    [Canonical::Loss, Canonical::ValLoss].into_iter().all(|c| {
        let (Some(x), Some(y)) = (a.get(c), b.get(c)) else {
            return true;
        };
        let (Some(lx), Some(ly)) = (x.last(), y.last()) else {
            return true;
        };
        let epoch = lx.epoch.min(ly.epoch);
        match (x.at(epoch), y.at(epoch)) {
            (Some(u), Some(v)) => close(u, v),
            _ => false,
        }
    })
}

fn close(u: f64, v: f64) -> bool {
    if !u.is_finite() || !v.is_finite() {
        return u.is_nan() == v.is_nan() && (u.is_nan() || u == v);
    }
    u == v || (u - v).abs() <= SAME_RUN_TOLERANCE * u.abs().max(v.abs())
}

fn has_sample_extension(file: &str) -> bool {
    Path::new(file)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| SAMPLE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// File and folder names in `dir`, sorted; symlinked folders are not followed.
fn list(dir: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::read(dir, &e))? {
        let entry = entry.map_err(|e| Error::read(dir, &e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') && !SKIPPED.contains(&name.as_str()) {
                dirs.push(name);
            }
        } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            files.push(name);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

fn has_tensorboard_splits(dir: &Path, subdirs: &[String]) -> bool {
    subdirs
        .iter()
        .filter(|s| TENSORBOARD_SPLITS.contains(&s.as_str()))
        .any(|s| {
            list(&dir.join(s))
                .is_ok_and(|(files, _)| files.iter().any(|f| f.starts_with("events.out.tfevents.")))
        })
}

/// The Hugging Face Trainer saves `checkpoint-500/`, `checkpoint-1000/` … each with the
/// whole `trainer_state.json` so far: the same run at several points. Only the latest
/// is reviewed; other folders pass through.
fn latest_checkpoints_only(subdirs: Vec<String>) -> Vec<String> {
    let step = |name: &str| {
        name.strip_prefix("checkpoint-")
            .and_then(|n| n.parse::<u64>().ok())
    };
    let latest = subdirs.iter().filter_map(|s| step(s)).max();
    subdirs
        .into_iter()
        .filter(|s| step(s).is_none() || step(s) == latest)
        .collect()
}

/// `root/a/b` as the user typed root; the root itself by its own name.
fn display_name(root: &Path, dir: &Path) -> String {
    let shown = if dir == root {
        root.to_path_buf()
    } else {
        dir.to_path_buf()
    };
    let text = shown.display().to_string();
    let trimmed = text.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." {
        std::env::current_dir()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| ".".into())
    } else {
        trimmed.strip_prefix("./").unwrap_or(trimmed).to_string()
    }
}

/// A relative folder for a run's reports under the report folder: its name with every
/// `..`, root and prefix component dropped, so nothing lands outside.
pub fn report_subdir(name: &str) -> PathBuf {
    let clean: PathBuf = Path::new(name)
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part),
            _ => None,
        })
        .collect();
    if clean.as_os_str().is_empty() {
        PathBuf::from("run")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }

    fn names_of(found: &[Found], root: &Path) -> Vec<(String, Option<String>, String)> {
        let rel = |p: &Path| p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        found
            .iter()
            .map(|f| (rel(&f.dir), f.config.as_deref().map(rel), rel(&f.metrics)))
            .collect()
    }

    #[test]
    fn finds_runs_by_their_metrics_and_pairs_the_config() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(root, "sweep/lr0.1/config.json");
        touch(root, "sweep/lr0.1/history.csv");
        touch(root, "sweep/lr0.1/config.retuned.json");
        // The specific name wins over a generic one, and a metrics file is never the config.
        touch(root, "sweep/lr0.5/model_config.json");
        touch(root, "sweep/lr0.5/metrics.json");
        touch(root, "sweep/lr0.5/training.log");
        // No config: still a run.
        touch(root, "lightning_logs/version_0/metrics.csv");
        touch(root, "lightning_logs/version_0/hparams.yaml");
        // Data, not a run.
        touch(root, "data/train.csv");
        touch(root, ".git/metrics.csv");
        let found = discover(&[root.to_path_buf()], &Names::new(&[], &[]).unwrap(), &[]).unwrap();
        assert_eq!(
            names_of(&found, root),
            vec![
                (
                    "lightning_logs/version_0".into(),
                    None,
                    "lightning_logs/version_0/metrics.csv".into()
                ),
                (
                    "sweep/lr0.1".into(),
                    Some("sweep/lr0.1/config.json".into()),
                    "sweep/lr0.1/history.csv".into()
                ),
                (
                    "sweep/lr0.5".into(),
                    Some("sweep/lr0.5/model_config.json".into()),
                    "sweep/lr0.5/training.log".into()
                ),
            ]
        );
    }

    #[test]
    fn a_run_folder_is_not_searched_further_and_only_the_latest_checkpoint_counts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(root, "done/trainer_state.json");
        touch(root, "done/checkpoint-500/trainer_state.json");
        touch(root, "running/checkpoint-500/trainer_state.json");
        touch(root, "running/checkpoint-1500/trainer_state.json");
        touch(root, "running/checkpoint-1000/trainer_state.json");
        touch(root, "keras_tb/config.json");
        touch(
            root,
            "keras_tb/train/events.out.tfevents.1700000000.host.1.v2",
        );
        touch(
            root,
            "keras_tb/validation/events.out.tfevents.1700000001.host.1.v2",
        );
        let found = discover(&[root.to_path_buf()], &Names::new(&[], &[]).unwrap(), &[]).unwrap();
        assert_eq!(
            names_of(&found, root),
            vec![
                ("done".into(), None, "done/trainer_state.json".into()),
                (
                    "keras_tb".into(),
                    Some("keras_tb/config.json".into()),
                    "keras_tb".into()
                ),
                (
                    "running/checkpoint-1500".into(),
                    None,
                    "running/checkpoint-1500/trainer_state.json".into()
                ),
            ]
        );
    }

    #[test]
    fn the_users_names_replace_the_built_in_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(root, "a/setup.json");
        touch(root, "a/progress.txt");
        touch(root, "a/metrics.csv");
        let names = Names::new(&["setup.json".into()], &["progress.txt".into()]).unwrap();
        let found = discover(&[root.to_path_buf()], &names, &[]).unwrap();
        assert_eq!(
            names_of(&found, root),
            vec![(
                "a".into(),
                Some("a/setup.json".into()),
                "a/progress.txt".into()
            )]
        );
        let bad = Names::new(&["[".into()], &[]).err().unwrap().to_string();
        assert!(bad.contains("--config-name"), "{bad}");
    }

    #[test]
    fn the_report_folder_and_missing_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(root, "reports/runs/x/metrics.jsonl");
        touch(root, "x/metrics.jsonl");
        let found = discover(
            &[root.to_path_buf()],
            &Names::new(&[], &[]).unwrap(),
            &[root.join("reports")],
        )
        .unwrap();
        assert_eq!(found.len(), 1);
        let missing =
            discover(&[root.join("nope")], &Names::new(&[], &[]).unwrap(), &[]).unwrap_err();
        assert!(
            missing.to_string().contains("nope: no such file"),
            "{missing}"
        );
    }

    #[test]
    fn w_and_b_run_folders_are_runs_and_latest_run_is_not_counted_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        touch(root, "project/config.json");
        touch(
            root,
            "project/wandb/offline-run-20261202_025226-a1/run-a1.wandb",
        );
        touch(
            root,
            "project/wandb/offline-run-20261202_025226-a1/files/requirements.txt",
        );
        touch(root, "project/wandb/run-20261202_030000-b2/run-b2.wandb");
        touch(
            root,
            "project/wandb/run-20261202_030000-b2/files/metrics.json",
        );
        std::os::unix::fs::symlink(
            "run-20261202_030000-b2",
            root.join("project/wandb/latest-run"),
        )
        .unwrap();
        let found = discover(&[root.to_path_buf()], &Names::new(&[], &[]).unwrap(), &[]).unwrap();
        assert_eq!(
            names_of(&found, root),
            vec![
                (
                    "project/wandb/offline-run-20261202_025226-a1".into(),
                    None,
                    "project/wandb/offline-run-20261202_025226-a1/run-a1.wandb".into()
                ),
                (
                    "project/wandb/run-20261202_030000-b2".into(),
                    None,
                    "project/wandb/run-20261202_030000-b2/run-b2.wandb".into()
                ),
            ]
        );
        // latest-run given as the root is that one run
        let latest = root.join("project/wandb/latest-run");
        let found = discover(&[latest], &Names::new(&[], &[]).unwrap(), &[]).unwrap();
        assert_eq!(found.len(), 1);
        assert!(found[0].metrics.ends_with("latest-run/run-b2.wandb"));
    }

    #[test]
    fn a_ray_trial_is_read_by_rays_names() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let trial = "sweep/trainable_8f524_00000_0_lr=0.0100_2026-12-02_06-49-45";
        touch(root, "sweep/experiment_state-2026-12-02_06-49-45.json");
        touch(root, "sweep/tuner.pkl");
        touch(root, &format!("{trial}/params.json"));
        touch(root, &format!("{trial}/progress.csv"));
        touch(root, &format!("{trial}/result.json"));
        touch(root, &format!("{trial}/events.out.tfevents.1796194278.vm"));
        touch(root, &format!("{trial}/retune/metrics.csv"));
        // Without result.json, the TensorBoard events Ray wrote beside it.
        touch(root, "sweep/t1/params.json");
        touch(root, "sweep/t1/progress.csv");
        touch(root, "sweep/t1/events.out.tfevents.1796194278.vm");
        let found = discover(&[root.to_path_buf()], &Names::new(&[], &[]).unwrap(), &[]).unwrap();
        assert_eq!(
            names_of(&found, root),
            vec![
                (
                    "sweep/t1".into(),
                    Some("sweep/t1/params.json".into()),
                    "sweep/t1/events.out.tfevents.1796194278.vm".into()
                ),
                (
                    trial.into(),
                    Some(format!("{trial}/params.json")),
                    format!("{trial}/result.json")
                ),
            ]
        );
    }

    #[test]
    fn report_folders_stay_inside() {
        assert_eq!(report_subdir("../x/./y"), PathBuf::from("x/y"));
        assert_eq!(report_subdir("/abs/run"), PathBuf::from("abs/run"));
        assert_eq!(report_subdir(".."), PathBuf::from("run"));
    }
}
