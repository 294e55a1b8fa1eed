//! Load: a metrics file in any of the formats trainers write, read as a stream into
//! bounded per-series storage. One file per format; this module detects the format and
//! owns the types every format fills in (`MetricsBuilder` → `Metrics`).

mod hf_state;
mod jsonl;
mod keras_csv;
mod keras_history;
mod keras_log;
mod lightning_csv;
pub mod names;
mod nonfinite;
pub mod series;
mod snapshot;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Serialize;

pub use names::Canonical;
pub use series::{Point, Series};

use crate::error::{Error, Result};

/// The formats we read. `--metrics-format` names one; otherwise `detect` picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One JSON object of current values (`{"epoch": 2, "loss": 1.69, ...}`).
    Snapshot,
    /// Keras `history.history` dumped as JSON: `{"loss": [...], "val_loss": [...]}`.
    KerasHistory,
    /// Keras `CSVLogger` output.
    KerasCsv,
    /// Keras console output captured to a file (`model.fit` with verbose 1 or 2).
    KerasLog,
    /// PyTorch Lightning `CSVLogger` `metrics.csv`.
    LightningCsv,
    /// Hugging Face Trainer `trainer_state.json`.
    HfTrainerState,
    /// One JSON object per line.
    JsonLines,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Snapshot => "JSON snapshot",
            Format::KerasHistory => "Keras history JSON",
            Format::KerasCsv => "Keras CSVLogger CSV",
            Format::KerasLog => "Keras console log",
            Format::LightningCsv => "Lightning metrics.csv",
            Format::HfTrainerState => "Hugging Face trainer_state.json",
            Format::JsonLines => "JSON Lines",
        }
    }
}

/// An epoch still running when the log was captured (Keras prints running means).
#[derive(Debug, Clone, Serialize)]
pub struct PartialEpoch {
    pub epoch: u32,
    pub steps_done: u64,
    pub steps_total: Option<u64>,
    pub values: Vec<(String, f64)>,
}

/// What a metrics file says about the run, in bounded memory.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub path: PathBuf,
    pub format: Format,
    /// Data rows (or log lines with values) read.
    pub rows: u64,
    /// Every series, canonical ones first (in `Canonical::ALL` order), then the rest in
    /// file order.
    pub series: Vec<Series>,
    /// Optimizer steps per epoch when the file says (Keras `3038/3038`, HF steps/epochs).
    pub steps_per_epoch: Option<u64>,
    /// Epochs the run was started for when the file says (Keras `Epoch 3/5`, HF).
    pub planned_epochs: Option<u32>,
    /// Total optimizer steps planned when the file says (HF `max_steps`).
    pub max_steps: Option<u64>,
    pub partial: Option<PartialEpoch>,
}

impl Metrics {
    pub fn get(&self, canonical: Canonical) -> Option<&Series> {
        self.series
            .iter()
            .find(|s| s.name == canonical.as_str() && !s.is_empty())
    }

    /// The latest complete epoch any series reached.
    pub fn last_epoch(&self) -> Option<u32> {
        self.series
            .iter()
            .filter_map(|s| s.last().map(|p| p.epoch))
            .max()
    }
}

/// Collects values as a parser streams them. Series are created on first sight.
#[derive(Debug, Default)]
pub struct MetricsBuilder {
    series: IndexMap<String, Series>,
    pub rows: u64,
    pub steps_per_epoch: Option<u64>,
    pub planned_epochs: Option<u32>,
    pub max_steps: Option<u64>,
    pub partial: Option<PartialEpoch>,
}

impl MetricsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// One value of metric `name` at 1-based `epoch`. Several values for one epoch in a
    /// row are averaged.
    pub fn push(&mut self, name: &str, epoch: u32, value: f64) {
        match self.series.get_mut(name) {
            Some(series) => series.push(epoch, value),
            None => {
                let mut series = Series::new(name);
                series.push(epoch, value);
                self.series.insert(name.to_string(), series);
            }
        }
    }

    pub fn has_values(&self) -> bool {
        !self.series.is_empty()
    }

    /// Closes every series and names the canonical ones. A file that gave no value at all
    /// is not a metrics file: that is an error naming it.
    pub fn finish(self, path: &Path, format: Format) -> Result<Metrics> {
        if self.series.is_empty() && self.partial.is_none() {
            return Err(Error::input(
                path,
                format!(
                    "no metric values found (read as {}); expected per-epoch values such as loss or val_loss",
                    format.label()
                ),
            ));
        }
        let mut all: Vec<Series> = self
            .series
            .into_values()
            .map(|mut s| {
                s.flush();
                s
            })
            .collect();
        let mut canonical_slots: Vec<(Canonical, usize)> = Vec::new();
        for canonical in Canonical::ALL {
            let best = all
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.is_empty())
                .filter_map(|(i, s)| {
                    names::canonicalize(&s.original)
                        .filter(|(c, _)| *c == canonical)
                        .map(|(_, rank)| (rank, i))
                })
                .min();
            if let Some((_, i)) = best {
                canonical_slots.push((canonical, i));
            }
        }
        for (canonical, i) in &canonical_slots {
            all[*i].name = canonical.as_str().to_string();
        }
        let mut ordered = Vec::with_capacity(all.len());
        let chosen: Vec<usize> = canonical_slots.iter().map(|(_, i)| *i).collect();
        let mut rest = Vec::new();
        let mut picked: Vec<Option<Series>> = all.into_iter().map(Some).collect();
        for i in &chosen {
            if let Some(s) = picked[*i].take() {
                ordered.push(s);
            }
        }
        for s in picked.into_iter().flatten() {
            rest.push(s);
        }
        ordered.extend(rest);
        Ok(Metrics {
            path: path.to_path_buf(),
            format,
            rows: self.rows,
            series: ordered,
            steps_per_epoch: self.steps_per_epoch,
            planned_epochs: self.planned_epochs,
            max_steps: self.max_steps,
            partial: self.partial,
        })
    }
}

/// Reads a metrics file, detecting its format unless one is given.
pub fn load_metrics(path: &Path, format: Option<Format>) -> Result<Metrics> {
    let format = match format {
        Some(f) => f,
        None => detect(path)?,
    };
    let mut builder = MetricsBuilder::new();
    match format {
        Format::Snapshot => snapshot::read(path, &mut builder)?,
        Format::KerasHistory => keras_history::read(path, &mut builder)?,
        Format::KerasCsv => keras_csv::read(path, &mut builder)?,
        Format::KerasLog => keras_log::read(path, &mut builder)?,
        Format::LightningCsv => lightning_csv::read(path, &mut builder)?,
        Format::HfTrainerState => hf_state::read(path, &mut builder)?,
        Format::JsonLines => jsonl::read(path, &mut builder)?,
    }
    builder.finish(path, format)
}

/// Bytes read from the start of a file to recognise its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Recognises the format from the file's name and first bytes.
pub fn detect(path: &Path) -> Result<Format> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::read(path, &e))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::input(
            path,
            "is a directory, expected a metrics file",
        ));
    }
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    file.take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::read(path, &e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    detect_from(&name, &head).ok_or_else(|| {
        if head.iter().all(|b| b.is_ascii_whitespace()) {
            Error::input(path, "empty file; expected metrics (CSV, JSON, JSON Lines or a Keras log)")
        } else if looks_binary(&head) {
            Error::input(path, "binary data, not a metrics file (CSV, JSON, JSON Lines or a Keras log)")
        } else {
            Error::input(
                path,
                "not a metrics format retune knows (Keras CSV/history/log, Lightning metrics.csv, HF trainer_state.json, JSON, JSON Lines); name one with --metrics-format",
            )
        }
    })
}

fn looks_binary(head: &[u8]) -> bool {
    head.contains(&0) || std::str::from_utf8(head).is_err() && head.len() < SNIFF_BYTES
}

/// The detection rules, on a name and the file's first bytes; `None` when nothing fits.
fn detect_from(name: &str, head: &[u8]) -> Option<Format> {
    if looks_binary(head) {
        return None;
    }
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}');
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return None;
    }
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        return Some(Format::JsonLines);
    }
    if trimmed.starts_with('{') {
        if name == "trainer_state.json" || trimmed.contains("\"log_history\"") {
            return Some(Format::HfTrainerState);
        }
        let mut lines = trimmed.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or_default();
        let second = lines.next().unwrap_or_default();
        if first.starts_with('{') && first.ends_with('}') && second.starts_with('{') {
            return Some(Format::JsonLines);
        }
        // History maps names to lists; a snapshot maps names to scalars.
        let history = regex::Regex::new(r#"^\{\s*"[^"]*"\s*:\s*\["#).ok()?;
        if history.is_match(trimmed) {
            return Some(Format::KerasHistory);
        }
        if first.starts_with('{') && first.ends_with('}') && !name.ends_with(".json") {
            return Some(Format::JsonLines);
        }
        return Some(Format::Snapshot);
    }
    let first_line = trimmed.lines().next().unwrap_or_default();
    let looks_csv = first_line.contains(',') && !first_line.contains(" - ");
    if name.ends_with(".csv") || looks_csv {
        let header: Vec<String> = first_line
            .split(',')
            .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
            .collect();
        if header.iter().any(|h| h == "step") {
            return Some(Format::LightningCsv);
        }
        if header
            .iter()
            .any(|h| names::canonicalize(h).is_some() || h == "epoch")
        {
            return Some(Format::KerasCsv);
        }
        return None;
    }
    keras_log::looks_like(&text).then_some(Format::KerasLog)
}
