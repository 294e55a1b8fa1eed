//! Reads a Weights & Biases run: its `run-<id>.wandb` file, the full record the client
//! keeps of every run, online or offline (`wandb/run-<time>-<id>/`,
//! `wandb/offline-run-<time>-<id>/`, and `wandb/latest-run`, a symlink to the newest).
//! wandb 0.31 writes no history JSON beside it, so the `.wandb` file is the run.
//!
//! The file is a sequence of `Record` protobufs in LevelDB-log framing (`log`). Read here:
//! - history records, one per `wandb.log` call: each item a key (or a nested key, joined
//!   with `.`) and its value as JSON text, `"NaN"` and `"Infinity"` for non-finite values.
//!   W&B's own keys (`_step`, `_runtime`, `_timestamp`, `_wandb`) are not metrics, nor are
//!   `system/…` keys. Keras' `WandbMetricsLogger` logs `epoch/loss`, `epoch/val_loss` …
//!   per epoch and `batch/…` per batch: with `epoch/` keys present the `batch/` ones are
//!   left out and `epoch/` is dropped from the names;
//! - the run record's config and later config records (`config`), for the config checks;
//! - not the stats records, which are the system metrics (CPU, memory, GPU).
//!
//! Epochs: when rows log an epoch counter (`epoch` as Lightning and most loops log it,
//! `epoch/epoch` from Keras' logger, the HF Trainer's fractional `train/epoch`), a row
//! belongs to the epoch the counter last showed (from 0 when it starts at 0, so epoch 0 is
//! the first; a fractional counter's 0.5 belongs to the first); several rows of one epoch
//! are averaged. Without a counter, each row is one step and step `n` (W&B's `_step`, from
//! 0) is epoch `n + 1`, with a warning saying so. A counter that goes back to its start is
//! another run in the same file, one that goes back to the middle is a resume replaying
//! epochs: both as for the other formats (`RunCounter`).
//!
//! A corrupt or truncated record ends the reading with a warning naming its byte offset,
//! and the records before it are used (a run killed mid-write, a disk that filled up). A
//! run still being written is read up to its last whole record. A file without the W&B
//! header is not a `.wandb` file: an input error naming the file and the byte.
//!
//! The file is read twice, first for the counter and the key names, then for the values,
//! so memory stays bounded whatever its length; the second pass stops where the first
//! did, so a file that grows in between reads consistently.

mod config;
mod log;
mod proto;

use std::path::{Path, PathBuf};

use prost::Message;

use super::{Count, MetricsBuilder, RunCounter};
use crate::error::{Error, Result};
use config::{CONFIG_YAML, RecordedConfig};
use log::{Broken, CORRUPT, Next, Records};
use proto::{HistoryRecord, Item, Record};

pub(in crate::metrics) use log::looks_like;

/// The epoch counters integrations log, in the order they are preferred.
const EPOCH_KEYS: &[&str] = &["epoch", "epoch/epoch", "train/epoch", "trainer/epoch"];
/// Keras' `WandbMetricsLogger` prefixes: per-epoch values, per-batch values.
const EPOCH_PREFIX: &str = "epoch/";
const BATCH_PREFIX: &str = "batch/";
/// Keys of system metrics when an integration logs them as history.
const SYSTEM_PREFIX: &str = "system/";
/// W&B's step key, also kept in the history record's `step`.
const STEP_KEY: &str = "_step";

/// A `.wandb` file's name: `run-<id>.wandb`.
pub(in crate::metrics) fn is_wandb_name(name: &str) -> bool {
    name.ends_with(".wandb")
}

/// The `.wandb` file `path` stands for: the file itself, or the one in a run folder.
/// `None` for a folder that is not a W&B run folder (other folder rules apply); an error
/// for a `wandb/` folder of several runs, or a run folder with several `.wandb` files.
pub(in crate::metrics) fn run_file(path: &Path) -> Result<Option<PathBuf>> {
    if !path.is_dir() {
        return Ok(Some(path.to_path_buf()));
    }
    let mine = wandb_files_in(path)?;
    match mine.as_slice() {
        [one] => return Ok(Some(one.clone())),
        [] => {}
        several => {
            let names: Vec<String> = several.iter().map(|p| file_name(p)).collect();
            return Err(Error::input(
                path,
                format!(
                    "holds several .wandb files ({}); name the one to read",
                    names.join(", ")
                ),
            ));
        }
    }
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| Error::read(path, &e))? {
        let entry = entry.map_err(|e| Error::read(path, &e))?;
        // `latest-run` is a symlink to one of the others: not a run of its own.
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !wandb_files_in(&entry.path())?.is_empty()
        {
            runs.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    runs.sort();
    if runs.is_empty() {
        return Ok(None);
    }
    Err(Error::input(
        path,
        format!(
            "a W&B folder of {} run{} ({}); name one run folder ({}latest-run is the newest), or review them all with `retune review {}`",
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            runs.join(", "),
            path.join("").display(),
            path.display()
        ),
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `.wandb` files directly in `dir`, by name.
fn wandb_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::read(dir, &e))? {
        let entry = entry.map_err(|e| Error::read(dir, &e))?;
        let path = entry.path();
        if is_wandb_name(&file_name(&path)) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A history item's metric name and value, or `None` for an item that is not a metric.
fn metric(item: &Item) -> Option<(String, f64)> {
    let path = item.path();
    let first = *path.first()?;
    if first.is_empty() || first.starts_with('_') || first.starts_with(SYSTEM_PREFIX) {
        return None;
    }
    let value = number(&item.value_json)?;
    Some((path.join("."), value))
}

/// A history value as a number: JSON numbers, and the strings W&B writes for non-finite
/// values. Anything else (text, media, histograms, booleans) is not a metric.
fn number(json: &str) -> Option<f64> {
    let text = json.trim();
    if let Some(quoted) = text.strip_prefix('"') {
        return match quoted.strip_suffix('"')? {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        };
    }
    match text.as_bytes().first()? {
        b'-' | b'0'..=b'9' => serde_json::from_str::<f64>(text).ok(),
        _ => match text {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
    }
}

/// The step of a history row: its `step`, else its `_step` item.
fn step_of(history: &HistoryRecord) -> Option<i64> {
    history.step.as_ref().map(|s| s.num).or_else(|| {
        history
            .item
            .iter()
            .find(|i| i.path() == [STEP_KEY])
            .and_then(|i| number(&i.value_json))
            .map(|v| v as i64)
    })
}

/// The epoch counter a row logs, by the preference of `EPOCH_KEYS`.
fn counter_of(history: &HistoryRecord) -> Option<f64> {
    EPOCH_KEYS.iter().find_map(|key| {
        history
            .item
            .iter()
            .find(|i| i.path().join("/") == *key)
            .and_then(|i| number(&i.value_json))
            .filter(|v| v.is_finite())
    })
}

/// What the first pass learns.
#[derive(Default)]
struct Survey {
    /// The first value of the epoch counter, when the rows log one.
    first_counter: Option<f64>,
    /// Keras' `WandbMetricsLogger` epoch values are present.
    epoch_prefixed: bool,
    config: RecordedConfig,
    records: u64,
    /// Where reading stopped, and why when it stopped early.
    end: u64,
    broken: Option<Broken>,
}

/// Calls `each` on every record of the file, up to `limit`; a record that is not a W&B
/// `Record` (its checksums match but its bytes do not decode) counts as corrupt.
fn scan(
    path: &Path,
    limit: Option<u64>,
    mut each: impl FnMut(Record),
) -> Result<(u64, u64, Option<Broken>)> {
    let mut records = Records::open(path, limit)?;
    let mut count = 0u64;
    loop {
        let broken = match records.next()? {
            Next::End => None,
            Next::Broken(b) => Some(b),
            Next::Record(data, offset) => match Record::decode(data) {
                Ok(record) => {
                    each(record);
                    count += 1;
                    continue;
                }
                Err(e) => Some(Broken {
                    offset,
                    kind: CORRUPT,
                    detail: format!("not a W&B Record: {e}"),
                }),
            },
        };
        let end = broken.as_ref().map_or(records.offset(), |b| b.offset);
        return Ok((count, end, broken));
    }
}

fn survey(path: &Path) -> Result<Survey> {
    let mut s = Survey::default();
    let (records, end, broken) = scan(path, None, |record| {
        if let Some(run) = &record.run
            && let Some(config) = &run.config
        {
            s.config.apply(config);
        }
        if let Some(config) = &record.config {
            s.config.apply(config);
        }
        if let Some(history) = &record.history {
            if s.first_counter.is_none() {
                s.first_counter = counter_of(history);
            }
            s.epoch_prefixed |= history.item.iter().any(|i| {
                i.path()
                    .first()
                    .is_some_and(|k| k.starts_with(EPOCH_PREFIX))
            });
        }
    })?;
    s.records = records;
    s.end = end;
    s.broken = broken;
    Ok(s)
}

/// The 1-based epoch a counter value stands for (module docs).
fn epoch_of(counter: f64, zero_based: bool) -> u32 {
    let epoch = if zero_based {
        counter.floor() + 1.0
    } else {
        counter.ceil()
    };
    epoch.clamp(1.0, f64::from(u32::MAX)) as u32
}

/// The second pass: each row's values pushed at its epoch.
struct Push<'a> {
    survey: &'a Survey,
    builder: &'a mut MetricsBuilder,
    runs: RunCounter,
    counter: Option<f64>,
    last_epoch: u32,
    values: u64,
}

impl Push<'_> {
    fn row(&mut self, history: &HistoryRecord) {
        let zero_based = self.survey.first_counter == Some(0.0);
        let (epoch, count) = match self.survey.first_counter {
            Some(first) => {
                if let Some(c) = counter_of(history) {
                    self.counter = Some(c);
                }
                let c = self.counter.unwrap_or(first);
                (
                    epoch_of(c, zero_based),
                    self.runs.see(c, false, self.builder),
                )
            }
            None => {
                let step = step_of(history).unwrap_or(self.last_epoch.into());
                let epoch = u32::try_from(step.saturating_add(1).max(1)).unwrap_or(u32::MAX);
                (epoch, self.runs.see(step as f64, true, self.builder))
            }
        };
        match count {
            Count::Replays => return,
            Count::Restarts => self.last_epoch = 0,
            Count::Goes => {}
        }
        if epoch < self.last_epoch {
            return;
        }
        self.last_epoch = epoch;
        let mut any = false;
        for item in &history.item {
            let Some((name, value)) = metric(item) else {
                continue;
            };
            if EPOCH_KEYS.contains(&name.replace('.', "/").as_str()) {
                continue;
            }
            let name = if self.survey.epoch_prefixed {
                if name.starts_with(BATCH_PREFIX) {
                    continue;
                }
                name.strip_prefix(EPOCH_PREFIX).unwrap_or(&name).to_string()
            } else {
                name
            };
            self.builder.push(&name, epoch, value);
            self.values += 1;
            any = true;
        }
        if any {
            self.builder.rows += 1;
        }
    }
}

/// Reads a `.wandb` file, or the one in a W&B run folder, into `builder`: the history as
/// metrics, the recorded config as `builder.recorded_config` (a synced run's
/// `files/config.yaml` where present, else the records').
pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let file = run_file(path)?.ok_or_else(|| {
        Error::input(
            path,
            "a folder with no .wandb file (a W&B run folder holds run-<id>.wandb)",
        )
    })?;
    let survey = survey(&file)?;
    let mut push = Push {
        survey: &survey,
        builder,
        runs: RunCounter::default(),
        counter: None,
        last_epoch: 0,
        values: 0,
    };
    scan(&file, Some(survey.end), |record| {
        if let Some(history) = &record.history {
            push.row(history);
        }
    })?;
    let values = push.values;
    if let Some(broken) = &survey.broken {
        if values == 0 {
            return Err(Error::input(
                &file,
                format!("{broken}, with no history value before it"),
            ));
        }
        builder.warnings.push(format!(
            "{}: {broken}; the {} records before it were read",
            file.display(),
            survey.records
        ));
    }
    if survey.first_counter.is_none() && values > 0 {
        builder.warnings.push(format!(
            "{}: the run logs no epoch counter (`epoch`): each W&B step is read as one epoch",
            file.display()
        ));
    }
    let yaml = file
        .parent()
        .map(|dir| dir.join(CONFIG_YAML))
        .filter(|p| p.is_file());
    builder.recorded_config = match yaml {
        Some(yaml) => config::read_yaml(&yaml)?,
        None => survey.config.into_doc(&file)?,
    };
    Ok(())
}
