//! Load: a metrics file in any of the formats trainers write, read as a stream into
//! bounded per-series storage. One file per format; this module detects the format and
//! owns the types every format fills in (`MetricsBuilder` → `Metrics`).

mod csv_lines;
mod hf_state;
mod jsonl;
mod keras_csv;
mod keras_history;
mod keras_log;
mod printed;
mod lightning_csv;
pub mod names;
mod nonfinite;
pub mod series;
mod snapshot;
mod tensorboard;
mod text;
mod wandb;

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
    /// Epoch lines a training script printed itself (`Epoch 7 - loss: 0.52, val_loss: 0.61`,
    /// `Epoch [7/10], Step [100/600], Loss: 0.22`).
    Printed,
    /// PyTorch Lightning `CSVLogger` `metrics.csv`.
    LightningCsv,
    /// Hugging Face Trainer `trainer_state.json`.
    HfTrainerState,
    /// One JSON object per line.
    JsonLines,
    /// TensorBoard event files (`events.out.tfevents.*`): one file, or a run folder.
    Tensorboard,
    /// A Weights & Biases run: its `run-<id>.wandb` file, or the run folder holding it.
    Wandb,
    /// A run on an MLflow tracking server, read by `crate::mlflow`; never a file, so not
    /// a `--metrics-format` choice.
    #[value(skip)]
    Mlflow,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Snapshot => "JSON snapshot",
            Format::KerasHistory => "Keras history JSON",
            Format::KerasCsv => "Keras CSVLogger CSV",
            Format::KerasLog => "Keras console log",
            Format::Printed => "printed epoch lines",
            Format::LightningCsv => "Lightning metrics.csv",
            Format::HfTrainerState => "Hugging Face trainer_state.json",
            Format::JsonLines => "JSON Lines",
            Format::Tensorboard => "TensorBoard event file",
            Format::Wandb => "W&B run (.wandb)",
            Format::Mlflow => "MLflow run",
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

/// Earlier runs in the same file. Scripts call `fit()` several times (a sweep, a second
/// stage, a rerun after an abort) and loggers append: the epoch counter starts over and a
/// later run may log other columns. The series hold only the LATEST run, so a loss that
/// jumps up where a new run starts is never read as divergence and two runs are never one
/// oscillating run; this records what was left out, for the report to say.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phases {
    /// Runs the file holds, the latest included (at least 2 when present).
    pub count: u32,
    /// First and last epoch of the latest run, the one the series hold.
    pub latest: (u32, u32),
    /// Rows (or log lines with values) of the earlier runs, left out of the series.
    pub earlier_rows: u64,
    /// First and last epoch of each earlier run, oldest first; at most
    /// `MAX_EARLIER_PHASES_KEPT` (the first ones), `count` says how many there were.
    pub earlier: Vec<(u32, u32)>,
}

/// Most series one read holds. Each series has fixed storage (`series::RECENT_CAPACITY`
/// points plus the overview, a few KiB), so this bounds a read's memory: a file naming
/// millions of metrics (a 10 MB CSV header, a JSON object of a million keys) costs what
/// one of a few thousand does. Real logs name tens of metrics, per-class metrics of a
/// thousand-class model a couple of thousand; names past the limit are counted and said.
pub const MAX_SERIES: usize = 4096;

/// Earlier runs whose epoch span is kept: enough to describe a sweep, bounded for a file
/// that restarts its counter millions of times.
const MAX_EARLIER_PHASES_KEPT: usize = 32;

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
    /// What the reader read around (a truncated TensorBoard record, values it could not
    /// place in an epoch), for the caller to show.
    pub warnings: Vec<String>,
    /// Earlier runs the file holds before the one the series hold; `None` for one run.
    pub phases: Option<Phases>,
    /// The config an experiment tracker recorded with the metrics (a W&B run's), for a
    /// run whose trainer reads no JSON config.
    pub recorded_config: Option<crate::config::ConfigDoc>,
    /// When the x-axis is the run's evaluations rather than its epochs (a short HF run
    /// evaluated more often than it has whole epochs): where each evaluation was, point
    /// k being `eval_axis[k - 1]`. The series' `epoch` is then the evaluation's number.
    pub eval_axis: Option<Vec<EvalMark>>,
}

/// Where one evaluation of a run was: its optimizer step and (fractional) epoch, as the
/// trainer logged them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EvalMark {
    pub step: Option<u64>,
    pub epoch: Option<f64>,
}

/// Evaluations whose place is kept (16 bytes each); a run evaluated more often than this
/// keeps the first ones.
pub const MAX_EVAL_MARKS: usize = 65_536;

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

/// Whether a row's epoch (or step) counter goes on, starts another run, or replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// The same or a later epoch: the run goes on.
    Goes,
    /// Back to where the run began (or before): another run starts here, and the builder
    /// has been told (`restart`).
    Restarts,
    /// Back to the middle of the run: a resume from a checkpoint logging epochs again that
    /// are already logged. The row is skipped; the first logging of an epoch is kept, and
    /// the series stay in epoch order.
    Replays,
}

/// Watches a reader's epoch (or step) counter for the point where it goes back. Back to
/// the run's first value or below is another run (`fit()` called again, runs appended to
/// one log); back to somewhere in the middle is a resume that replays what was logged
/// already, until the counter passes the furthest point logged.
#[derive(Debug, Default)]
pub(crate) struct RunCounter {
    first: Option<f64>,
    furthest: Option<f64>,
    /// Inside a replay: values up to `furthest` (equal included) are replayed.
    replaying: bool,
}

impl RunCounter {
    /// `value` is what the row logs; `one_row_per_epoch` says an equal value is a new row
    /// of the counter (Keras: each epoch is logged once) rather than another row of the
    /// same epoch (a train and a val row).
    pub fn see(
        &mut self,
        value: f64,
        one_row_per_epoch: bool,
        builder: &mut MetricsBuilder,
    ) -> Count {
        let (Some(first), Some(furthest)) = (self.first, self.furthest) else {
            self.first = Some(value);
            self.furthest = Some(value);
            return Count::Goes;
        };
        let back = value < furthest || (value == furthest && (one_row_per_epoch || self.replaying));
        if !back {
            self.furthest = Some(value);
            self.replaying = false;
            return Count::Goes;
        }
        if value <= first {
            builder.restart();
            self.first = Some(value);
            self.furthest = Some(value);
            self.replaying = false;
            return Count::Restarts;
        }
        self.replaying = true;
        builder.replayed_rows += 1;
        Count::Replays
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
    pub warnings: Vec<String>,
    /// Runs closed by `restart`: how many, their rows, their first spans.
    earlier_runs: u32,
    earlier_rows: u64,
    earlier_spans: Vec<(u32, u32)>,
    /// `rows` when the current run began.
    run_start_rows: u64,
    /// Rows skipped as a resume's replay of epochs already logged (`Count::Replays`).
    pub replayed_rows: u64,
    /// See `Metrics::recorded_config`.
    pub recorded_config: Option<crate::config::ConfigDoc>,
    /// See `Metrics::eval_axis`.
    pub eval_axis: Option<Vec<EvalMark>>,
    /// Metric names past `MAX_SERIES`, not read.
    pub dropped_names: u64,
    /// Keys given twice in one JSON object, and the first one (with its line, when the
    /// format has one object per line).
    duplicates: u64,
    first_duplicate: Option<(String, Option<u64>)>,
}

impl MetricsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// One value of metric `name` at 1-based `epoch`. Several values for one epoch in a
    /// row are averaged.
    pub fn push(&mut self, name: &str, epoch: u32, value: f64) {
        let full = self.series.len() >= MAX_SERIES;
        match self.series.get_mut(name) {
            Some(series) => series.push(epoch, value),
            None if full => self.dropped_names += 1,
            None => {
                let mut series = Series::new(name);
                series.push(epoch, value);
                self.series.insert(name.to_string(), series);
            }
        }
    }

    /// A stable handle for metric `name`, so a reader that meets the same columns on every
    /// row resolves each name once (per header) instead of hashing it per cell. Past
    /// `MAX_SERIES` names the handle is one `push_id` ignores.
    pub fn series_id(&mut self, name: &str) -> usize {
        match self.series.get_index_of(name) {
            Some(id) => id,
            None if self.series.len() >= MAX_SERIES => {
                self.dropped_names += 1;
                usize::MAX
            }
            None => {
                self.series
                    .insert_full(name.to_string(), Series::new(name))
                    .0
            }
        }
    }

    /// Starts series `name` again, empty: a JSON object gave its key twice and the later
    /// value replaces the earlier, as Python's `json` module reads it.
    pub fn replace_series(&mut self, name: &str) {
        if let Some(series) = self.series.get_mut(name) {
            *series = Series::new(name);
        }
    }

    /// A key given `n` more times in one JSON object (`line` when the format has one object
    /// per line); only the last value was kept.
    pub fn duplicate_key(&mut self, key: &str, n: u64, line: Option<u64>) {
        self.duplicates += n;
        if self.first_duplicate.is_none() {
            self.first_duplicate = Some((key.to_string(), line));
        }
    }

    /// `push` by a handle from `series_id`.
    pub fn push_id(&mut self, id: usize, epoch: u32, value: f64) {
        if let Some((_, series)) = self.series.get_index_mut(id) {
            series.push(epoch, value);
        }
    }

    pub fn has_values(&self) -> bool {
        !self.series.is_empty()
    }

    /// The epoch counter started over: another run (a second `fit()`, an appended log)
    /// begins here. The values so far are an earlier run: their span is recorded and the
    /// series start empty again (under the same handles, so `series_id` stays valid). A
    /// run that gave no value yet is not a run and is not counted.
    pub fn restart(&mut self) {
        let mut span: Option<(u32, u32)> = None;
        for series in self.series.values_mut() {
            series.flush();
            if let (Some(first), Some(last)) = (series.first(), series.last()) {
                span = Some(span.map_or((first.epoch, last.epoch), |(a, b)| {
                    (a.min(first.epoch), b.max(last.epoch))
                }));
            }
        }
        let Some(span) = span else {
            return;
        };
        for series in self.series.values_mut() {
            *series = Series::new(&series.original);
        }
        self.earlier_runs = self.earlier_runs.saturating_add(1);
        self.earlier_rows += self.rows - self.run_start_rows;
        self.run_start_rows = self.rows;
        if self.earlier_spans.len() < MAX_EARLIER_PHASES_KEPT {
            self.earlier_spans.push(span);
        }
        // An epoch left unfinished belonged to the run that ended.
        self.partial = None;
    }

    /// Closes every series and names the canonical ones. A file that gave no value at all
    /// is not a metrics file: that is an error naming it.
    pub fn finish(self, path: &Path, format: Format) -> Result<Metrics> {
        // Columns announced by a header but never given a value are not series.
        let mut all: Vec<Series> = self
            .series
            .into_values()
            .map(|mut s| {
                s.flush();
                s
            })
            .filter(|s| !s.is_empty())
            .collect();
        let phases = (self.earlier_runs > 0).then(|| {
            let first = all.iter().filter_map(|s| s.first()).map(|p| p.epoch).min();
            let last = all.iter().filter_map(|s| s.last()).map(|p| p.epoch).max();
            Phases {
                count: self.earlier_runs.saturating_add(1),
                latest: (first.unwrap_or(0), last.unwrap_or(0)),
                earlier_rows: self.earlier_rows,
                earlier: self.earlier_spans,
            }
        });
        let mut warnings = self.warnings;
        if let Some(p) = &phases {
            warnings.push(phases_note(p, format));
        }
        if self.replayed_rows > 0 {
            let n = self.replayed_rows;
            warnings.push(format!(
                "{n} {} logged again what was already logged (a resume from a checkpoint); kept the first logging of each epoch",
                if n == 1 { "row" } else { "rows" }
            ));
        }
        if let Some((key, line)) = &self.first_duplicate {
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            let others = match self.duplicates {
                1 => String::new(),
                n => format!("; {} keys were given twice in all", n),
            };
            warnings.push(format!(
                "key {:?} is given twice in one object{at}; kept the last value, as Python's json module does{others}",
                crate::num::truncate(key, 60)
            ));
        }
        if self.dropped_names > 0 {
            warnings.push(format!(
                "{} metric names past the first {MAX_SERIES} were not read",
                self.dropped_names
            ));
        }
        if all.is_empty() && self.partial.is_none() {
            return Err(Error::input(
                path,
                format!(
                    "no metric values found (read as {}); expected per-epoch values such as loss or val_loss",
                    format.label()
                ),
            ));
        }
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
            if let Some(note) = percent_to_fraction(*canonical, &mut all[*i]) {
                warnings.push(note);
            }
        }
        if !canonical_slots.iter().any(|(c, _)| *c == Canonical::Loss)
            && let Some(note) = heads_without_total(&all)
        {
            warnings.push(note);
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
            warnings,
            phases,
            recorded_config: self.recorded_config,
            eval_axis: self.eval_axis,
        })
    }
}

/// An accuracy logged in percent throughout (every value above 1, none above 100: a
/// fraction is never above 1 and a percentage of a learning model soon is) is read as a
/// fraction, so the detectors' fractions (1/C, converged at 0.7, gains of 0.03) apply.
/// A series partly above 1 is left alone: `metric_out_of_range` says it is wrong.
fn percent_to_fraction(canonical: Canonical, series: &mut Series) -> Option<String> {
    if !matches!(canonical, Canonical::Accuracy | Canonical::ValAccuracy) {
        return None;
    }
    let (min, max) = (series.min()?.value, series.max()?.value);
    if !(min > 1.0 && max <= 100.0) {
        return None;
    }
    series.scale(0.01);
    Some(format!(
        "`{}` runs from {} to {}: read as a percentage (divided by 100)",
        series.original,
        crate::num::num(min),
        crate::num::num(max)
    ))
}

/// Training losses of several heads or parts (`cls_loss` and `reg_loss`, two fits'
/// histories merged under prefixes) and no total beside them: none of them is the run's
/// loss, and taking one would judge a part as the whole. Said, so a missing loss check is
/// explained.
fn heads_without_total(all: &[Series]) -> Option<String> {
    let heads: Vec<&str> = all
        .iter()
        .map(|s| s.original.as_str())
        .filter(|n| names::is_loss_like(n) && !names::is_held_out(n))
        .collect();
    if heads.len() < 2 {
        return None;
    }
    let shown: Vec<String> = heads
        .iter()
        .take(4)
        .map(|n| format!("`{}`", crate::num::truncate(n, 40)))
        .collect();
    let more = match heads.len().saturating_sub(4) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Some(format!(
        "losses of {} heads or parts ({}{more}) and no total loss beside them: none is read as the training loss",
        heads.len(),
        shown.join(", ")
    ))
}

/// The warning that says a file holds several runs and which one is judged.
fn phases_note(p: &Phases, format: Format) -> String {
    let earlier = p.count - 1;
    let what = match (format, earlier) {
        (Format::KerasCsv | Format::KerasLog | Format::KerasHistory, 1) => "fit() call",
        (Format::KerasCsv | Format::KerasLog | Format::KerasHistory, _) => "fit() calls",
        (_, 1) => "run",
        _ => "runs",
    };
    let latest = match p.latest {
        (0, _) => "the latest, which has no finished epoch yet".to_string(),
        (a, b) if a == b => format!("the latest (epoch {a})"),
        (a, b) => format!("the latest (epochs {a}\u{2013}{b})"),
    };
    format!(
        "{earlier} earlier {what} in this file (the epoch counter started over); judging {latest}"
    )
}

/// Reads a metrics file (or a TensorBoard log folder), detecting its format unless one
/// is given.
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
        Format::Printed => printed::read(path, &mut builder)?,
        Format::LightningCsv => lightning_csv::read(path, &mut builder)?,
        Format::HfTrainerState => hf_state::read(path, &mut builder)?,
        Format::JsonLines => jsonl::read(path, &mut builder)?,
        Format::Tensorboard => tensorboard::read(path, &mut builder)?,
        Format::Wandb => wandb::read(path, &mut builder)?,
        Format::Mlflow => {
            return Err(Error::input(
                path,
                "MLflow runs are read from a tracking server (`retune review --mlflow URL`), not from a file",
            ));
        }
    }
    builder.finish(path, format)
}

/// Bytes read from the start of a file to recognise its format.
const SNIFF_BYTES: usize = 64 * 1024;

/// Recognises the format from the file's name and first bytes. A folder is a W&B run
/// folder, a TensorBoard log folder, or an error saying why not.
pub fn detect(path: &Path) -> Result<Format> {
    use std::io::Read;
    if crate::input::metadata(path)?.is_dir() {
        if wandb::run_file(path)?.is_some() {
            return Ok(Format::Wandb);
        }
        return tensorboard::check_folder(path).map(|()| Format::Tensorboard);
    }
    let file = crate::input::open_regular(path, "a metrics file")?;
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
        } else if looks_binary(&head) && text::utf16_bom(&head).is_none() {
            Error::input(path, "binary data, not a metrics file (CSV, JSON, JSON Lines or a Keras log)")
        } else {
            Error::input(
                path,
                "not a metrics format retune knows (Keras CSV/history/log, Lightning metrics.csv, HF trainer_state.json, JSON, JSON Lines, TensorBoard event file, W&B .wandb file); name one with --metrics-format",
            )
        }
    })
}

/// Control bytes in a text file: tab, line ends, form feed, and the backspace and escape
/// that progress bars draw with.
const TEXT_CONTROLS: &[u8] = b"\t\n\r\x08\x0b\x0c\x1b";
/// Share of other control bytes above which the head is binary, not text. Not valid UTF-8
/// alone is not binary: a log written on a Chinese Windows system is GBK.
const BINARY_CONTROL_SHARE: f64 = 0.1;

fn looks_binary(head: &[u8]) -> bool {
    if head.contains(&0) {
        return true;
    }
    let controls = head
        .iter()
        .filter(|&&b| (b < 0x20 && !TEXT_CONTROLS.contains(&b)) || b == 0x7f)
        .count();
    !head.is_empty() && controls as f64 / head.len() as f64 > BINARY_CONTROL_SHARE
}

/// The detection rules, on a lowercased file name and the file's first bytes; `None` when
/// nothing fits. Content decides where it is clear (a renamed file is still recognised);
/// the name decides between shapes that look alike (`.jsonl`, `trainer_state.json`).
pub(crate) fn detect_from(name: &str, head: &[u8]) -> Option<Format> {
    // Event files are binary; a valid record header is as sure a sign as a name.
    if tensorboard::is_event_file_name(name) || tensorboard::looks_like(head) {
        return Some(Format::Tensorboard);
    }
    if wandb::is_wandb_name(name) || wandb::looks_like(head) {
        return Some(Format::Wandb);
    }
    // A console capture redirected by Windows PowerShell is UTF-16 with a BOM: judged by
    // its text (every reader decodes it through `text::open`).
    if let Some(decoded) = text::decode_utf16_head(head) {
        return detect_from(name, decoded.as_bytes());
    }
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
        return Some(detect_json(name, trimmed));
    }
    // A list of per-epoch records (`pd.DataFrame(history.history).to_json(orient=
    // "records")`, `json.dump([{"epoch": 1, "loss": …}, …])`).
    if trimmed
        .strip_prefix('[')
        .is_some_and(|rest| rest.trim_start().starts_with('{'))
    {
        return Some(Format::KerasHistory);
    }
    let mut lines = trimmed.lines().filter(|l| !l.trim().is_empty());
    let first_line = lines.next().unwrap_or_default();
    let header: Vec<String> = header_cells(first_line)
        .map(|c| c.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    // A header is column names; the next line (if any) has at least as many cells (more
    // when CSVLogger quotes a list value). Prose with commas (a logger line, `Total
    // params: 167,202`) is not a header.
    let names_only = header.len() >= 2 && header.iter().all(|h| looks_like_column(h));
    // Lightning's CSVLogger writes `epoch` and `step` beside whatever `self.log` was
    // given, a tensor's repr (`out_tensor([0.])`) included: those two cells are header
    // enough whatever the other names are.
    let lightning_header = ["epoch", "step"]
        .iter()
        .all(|want| header.iter().any(|h| h == want))
        && header
            .iter()
            .all(|h| !h.is_empty() && !h.chars().any(char::is_control));
    let same_width = lines
        .next()
        .is_none_or(|l| l.split(',').count() >= header.len());
    if (names_only || lightning_header) && (same_width || name.ends_with(".csv")) {
        if header.iter().any(|h| h == "step") {
            return Some(Format::LightningCsv);
        }
        if header
            .iter()
            .any(|h| names::canonicalize(h).is_some() || h == "epoch")
        {
            return Some(Format::KerasCsv);
        }
        // A first line with commas may be prose before a Keras log (` Total params:
        // 167,202 (653.13 KB)`), so the log rule still gets its turn.
    }
    if keras_log::looks_like(text) {
        return Some(Format::KerasLog);
    }
    printed::looks_like(text).then_some(Format::Printed)
}

/// The cells of a CSV header line, a quoted cell (`"tensor([0., 1.])"`) whole: commas
/// inside quotes do not split.
fn header_cells(line: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    let mut start = 0;
    let mut bounds = Vec::new();
    for (i, b) in line.bytes().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                bounds.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    bounds.push((start, line.len()));
    bounds.into_iter().map(move |(a, b)| &line[a..b])
}

/// A CSV column name as trainers write them (`val_loss`, `lr-Adam`, `train/acc`, and
/// Lightning's `self.log("Final F1 Score", …)`, spaces and all).
fn looks_like_column(cell: &str) -> bool {
    let mut chars = cell.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || "_-./@ ".contains(c))
}

/// Which JSON shape a text starting with `{` is.
fn detect_json(name: &str, trimmed: &str) -> Format {
    if name == "trainer_state.json" || trimmed.contains("\"log_history\"") {
        return Format::HfTrainerState;
    }
    let mut lines = trimmed.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_default();
    if first.starts_with('{') && first.ends_with('}') && second.starts_with('{') {
        return Format::JsonLines;
    }
    // History maps names to lists (at the top, or under `history` in a fuller dump); a
    // snapshot maps names to scalars. Matched by hand: compiling the equivalent regexes
    // was a fifth of a `suggest` process on a snapshot (benches/README.md, start-up).
    let nested = || {
        trimmed.match_indices("\"history\"").any(|(i, m)| {
            let rest = skip_ws(&trimmed[i + m.len()..]);
            rest.strip_prefix(':')
                .map(skip_ws)
                .and_then(|r| r.strip_prefix('{'))
                .is_some_and(|r| key_then(r, 0..=usize::MAX, |_| true).is_some())
        })
    };
    if trimmed
        .strip_prefix('{')
        .is_some_and(|r| key_then(r, 0..=usize::MAX, |_| true).is_some())
        || nested()
    {
        return Format::KerasHistory;
    }
    // A history dump whose first keys are the run's settings (`"config": {…}`,
    // `"timestamp": "…"`) before its lists: a metric's name mapped to a list of numbers.
    let metric_list = trimmed.match_indices('"').any(|(i, _)| {
        key_then(&trimmed[i..], 1..=100, |list| {
            let v = skip_ws(list);
            v.starts_with(|c: char| c.is_ascii_digit())
                || v.strip_prefix('-').is_some_and(|n| {
                    n.starts_with(|c: char| c.is_ascii_digit()) || n.starts_with("Infinity")
                })
                || v.starts_with("NaN")
                || v.starts_with("Infinity")
                || v.starts_with("null")
        })
        .is_some_and(|key| names::canonicalize(&key.to_ascii_lowercase()).is_some())
    });
    if metric_list {
        return Format::KerasHistory;
    }
    // One object, on one line or many, is a snapshot (a JSON Lines file of one row reads
    // the same either way).
    Format::Snapshot
}

fn skip_ws(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', '\n', '\r'])
}

/// `"key"` (its length in `len`, no quote inside), optional whitespace, `:`, optional
/// whitespace and `[`, at the start of `s` after optional whitespace; then `list` on what
/// follows the bracket. The key when all of it holds.
fn key_then(
    s: &str,
    len: std::ops::RangeInclusive<usize>,
    list: impl Fn(&str) -> bool,
) -> Option<&str> {
    let s = skip_ws(s).strip_prefix('"')?;
    let end = s.find('"')?;
    let (key, rest) = (&s[..end], &s[end + 1..]);
    let rest = skip_ws(skip_ws(rest).strip_prefix(':')?).strip_prefix('[')?;
    (len.contains(&key.chars().count()) && list(rest)).then_some(key)
}

/// What the readers' tests share: the repository's files, a scratch file named as its
/// trainer names it, and a series as (epoch, value) pairs.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    use super::{Canonical, Format, Metrics, load_metrics};
    use crate::error::Error;

    /// A file of the repository (`configs/examples/…`, `tests/fixtures/…`).
    pub fn example(rel: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    /// Text written to a scratch file for one reader: under the file name its trainer
    /// writes (which the error messages under test name), read in its format.
    pub struct ScratchFile {
        pub name: &'static str,
        pub format: Format,
    }

    impl ScratchFile {
        /// The file holding `text`; it lives as long as the returned directory.
        fn write(&self, text: &str) -> (tempfile::TempDir, PathBuf) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(self.name);
            std::fs::write(&path, text).unwrap();
            (dir, path)
        }

        pub fn load(&self, text: &str) -> Metrics {
            let (_dir, path) = self.write(text);
            load_metrics(&path, Some(self.format)).unwrap()
        }

        /// The error reading `text` gives; a panic if it reads.
        pub fn error(&self, text: &str) -> Error {
            let (_dir, path) = self.write(text);
            load_metrics(&path, Some(self.format)).unwrap_err()
        }
    }

    /// The last 100 (epoch, value) pairs of series `c`, which must exist.
    pub fn values(m: &Metrics, c: Canonical) -> Vec<(u32, f64)> {
        m.get(c)
            .unwrap()
            .tail(100)
            .iter()
            .map(|p| (p.epoch, p.value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ScratchFile, example, values};
    use super::*;

    /// Every example, by its own name and renamed to something neutral.
    const EXAMPLES: &[(&str, Format)] = &[
        (
            "configs/examples/formats/keras_history.json",
            Format::KerasHistory,
        ),
        (
            "configs/examples/formats/keras_csvlogger.csv",
            Format::KerasCsv,
        ),
        (
            "configs/examples/formats/keras3_verbose1.log",
            Format::KerasLog,
        ),
        (
            "configs/examples/formats/keras2_verbose1.log",
            Format::KerasLog,
        ),
        (
            "configs/examples/formats/keras3_verbose2.log",
            Format::KerasLog,
        ),
        (
            "configs/examples/formats/lightning/version_0/metrics.csv",
            Format::LightningCsv,
        ),
        (
            "configs/examples/formats/hf/trainer_state.json",
            Format::HfTrainerState,
        ),
        ("configs/examples/formats/metrics.jsonl", Format::JsonLines),
        ("configs/examples/formats/snapshot.json", Format::Snapshot),
        ("configs/examples/seed003/metrics.json", Format::Snapshot),
        ("configs/examples/seed000/training.log", Format::KerasLog),
        (
            "configs/examples/formats/tensorboard/tf2/events.out.tfevents.1790000161.retune.4242.4.v2",
            Format::Tensorboard,
        ),
        (
            "configs/examples/formats/tensorboard/keras/validation/events.out.tfevents.1790000240.retune.4242.6.v2",
            Format::Tensorboard,
        ),
        (
            "configs/examples/formats/tensorboard/lightning/version_0/events.out.tfevents.1790000055.retune.4242.3",
            Format::Tensorboard,
        ),
        (
            "configs/examples/formats/tensorboard/pytorch/events.out.tfevents.1790000001.retune.4242.0",
            Format::Tensorboard,
        ),
        // a copy cut short, under a name that says nothing: the first record decides
        ("tests/fixtures/events_truncated.bin", Format::Tensorboard),
    ];

    #[test]
    fn detects_every_example_by_name_and_by_content() {
        for (rel, want) in EXAMPLES {
            let path = example(rel);
            assert_eq!(detect(&path).unwrap(), *want, "{rel}");
            let head = std::fs::read(&path).unwrap();
            for neutral in ["m.txt", "metrics", "run.out"] {
                assert_eq!(
                    detect_from(neutral, &head),
                    Some(*want),
                    "{rel} as {neutral}"
                );
            }
            // and every example reads in the format it is detected as
            let m = load_metrics(&path, None).unwrap();
            assert!(m.last_epoch().is_some() || m.partial.is_some(), "{rel}");
        }
    }

    #[test]
    fn an_accuracy_in_percent_throughout_is_read_as_a_fraction() {
        let m = ScratchFile {
            name: "history.json",
            format: Format::KerasHistory,
        }
        .load(
            r#"{"loss": [1.1, 0.9, 0.7], "acc": [35.5, 48.0, 56.0], "val_acc": [0.3, 1.5, 0.6]}"#,
        );
        assert_eq!(
            values(&m, Canonical::Accuracy),
            [(1, 0.355), (2, 0.48), (3, 0.56)]
        );
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("`acc` runs from 35.5 to 56")),
            "{:?}",
            m.warnings
        );
        // A fraction that once exceeds 1 is a wrong metric, not a percentage: kept as is.
        assert_eq!(values(&m, Canonical::ValAccuracy)[1], (2, 1.5));
    }

    #[test]
    fn json_shapes_are_told_apart_as_the_regexes_did() {
        // The hand matchers of `detect_json` against the regexes they replaced, on every
        // JSON file of the repository and on shapes at their edges.
        let regex_shape = |t: &str| {
            let history = regex::Regex::new(r#"^\{\s*"[^"]*"\s*:\s*\["#).unwrap();
            let nested = regex::Regex::new(r#""history"\s*:\s*\{\s*"[^"]*"\s*:\s*\["#).unwrap();
            let list =
                regex::Regex::new(r#""([^"]{1,100})"\s*:\s*\[\s*(-?[0-9]|NaN|-?Infinity|null)"#)
                    .unwrap();
            history.is_match(t)
                || nested.is_match(t)
                || list
                    .captures_iter(t)
                    .any(|c| names::canonicalize(&c[1].to_ascii_lowercase()).is_some())
        };
        let mut texts: Vec<String> = [
            r#"{"loss": [1, 2]}"#,
            r#"{ "" : [ ]}"#,
            r#"{"epochs": 3, "history": {"loss": [0.5]}}"#,
            r#"{"config": {"lr": 1}, "val_loss": [NaN, 1]}"#,
            r#"{"config": {"lr": 1}, "val_loss": [-Infinity]}"#,
            r#"{"config": {"lr": 1}, "val_loss": [null]}"#,
            r#"{"config": {"lr": 1}, "val_loss": ["a"]}"#,
            r#"{"config": {"lr": 1}, "tags": [1, 2]}"#,
            r#"{"loss": 0.5, "accuracy": 0.9}"#,
            r#"{"a": "x", "loss": [-1]}"#,
        ]
        .map(String::from)
        .to_vec();
        for dir in ["tests/real", "configs/examples", "tests/fixtures"] {
            let mut stack = vec![testing::example(dir)];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if let Ok(t) = std::fs::read_to_string(&p)
                        && t.trim_start().starts_with('{')
                    {
                        texts.push(t);
                    }
                }
            }
        }
        for t in &texts {
            let trimmed = t.trim();
            let hand = detect_json("x.json", trimmed) == Format::KerasHistory;
            let shape = !trimmed.contains("\"log_history\"")
                && {
                    let mut lines = trimmed.lines().map(str::trim).filter(|l| !l.is_empty());
                    let (a, b) = (
                        lines.next().unwrap_or_default(),
                        lines.next().unwrap_or_default(),
                    );
                    !(a.starts_with('{') && a.ends_with('}') && b.starts_with('{'))
                }
                && regex_shape(trimmed);
            assert_eq!(hand, shape, "{}", &trimmed[..trimmed.len().min(200)]);
        }
    }

    #[test]
    fn detection_rules() {
        let cases: &[(&str, &str, Option<Format>)] = &[
            (
                "m.txt",
                "epoch,accuracy,loss\r\n0,0.5,0.7\r\n",
                Some(Format::KerasCsv),
            ),
            (
                "training.log",
                "epoch,acc,loss\n0,0.5,0.7\n",
                Some(Format::KerasCsv),
            ),
            (
                "m.txt",
                "epoch,step,val_loss\n0,10,0.5\n",
                Some(Format::LightningCsv),
            ),
            ("h.csv", "epoch,loss,val_loss\r\n", Some(Format::KerasCsv)),
            (
                "m.txt",
                "{\"loss\": [0.5, NaN]}",
                Some(Format::KerasHistory),
            ),
            (
                "m.json",
                "{\"epoch\": [0], \"history\": {\"loss\": [0.5]}}",
                Some(Format::KerasHistory),
            ),
            (
                "m.json",
                "{\"epoch\": 2, \"loss\": 1.69}",
                Some(Format::Snapshot),
            ),
            (
                "m.txt",
                "{\"epoch\": 2, \"loss\": 1.69}\n",
                Some(Format::Snapshot),
            ),
            (
                "m.json",
                "{\"epoch\": 1}\n{\"epoch\": 2}\n",
                Some(Format::JsonLines),
            ),
            ("m.jsonl", "{\"epoch\": 1}", Some(Format::JsonLines)),
            (
                "trainer_state.json",
                "{\"best_metric\": null}",
                Some(Format::HfTrainerState),
            ),
            ("m.txt", "Epoch 1/3\n", Some(Format::KerasLog)),
            (
                "m.txt",
                "2025-07-03 14:10:02 | INFO | training for 8 epochs (batch 32, lr 0.001)\nEpoch 1/8\n",
                Some(Format::KerasLog),
            ),
            // Keras 1 verbose 2 under any name (a sweep's results saved as `.rb`)
            (
                "0508_results.rb",
                "Building and compiling model ...\n('Cell type: LSTM', 'Drop Input: 0.1')\nTrain on 8000 samples\nEpoch 1/15\n67s - loss: 2.4808 - acc: 0.2275\n",
                Some(Format::KerasLog),
            ),
            (
                "m.txt",
                "224s - loss: 3.5508 - acc: 0.2966 - val_loss: 1.4529\n",
                Some(Format::KerasLog),
            ),
            // Keras history as a list of records
            (
                "model_history.json",
                "[\n  {\n    \"epoch\": 1,\n    \"loss\": 0.1569\n  }\n]",
                Some(Format::KerasHistory),
            ),
            ("m.json", "[1, 2]", None),
            // a history dump that opens with the run's settings
            (
                "training_history.json",
                "{\n  \"config\": {\"lr\": 3e-4},\n  \"epochs\": [1, 2],\n  \"train_loss\": [2.8, 1.9]\n}",
                Some(Format::KerasHistory),
            ),
            // … but a snapshot holding a list that is not a metric stays a snapshot
            (
                "m.json",
                "{\"loss\": 0.4, \"classes\": [0, 1, 2]}",
                Some(Format::Snapshot),
            ),
            // a Lightning column logged under a name with spaces
            (
                "metrics.csv",
                "Final F1 Score,epoch,step,test_loss,train_loss,val_loss\n,0,749,,,0.155\n",
                Some(Format::LightningCsv),
            ),
            // columns named by a tensor's repr, a quoted one holding commas
            (
                "metrics.csv",
                "epoch,out_tensor([0.]),step,train_loss\n0,0.5,9,\n",
                Some(Format::LightningCsv),
            ),
            (
                "metrics.csv",
                "epoch,\"w_tensor([0., 1.])\",step\n0,0.5,9\n",
                Some(Format::LightningCsv),
            ),
            // a phase column beside the metrics
            (
                "log.csv",
                "epoch,phase,loss,acc\n0,train,0.7,0.5\n0,val,0.8,0.4\n",
                Some(Format::KerasCsv),
            ),
            ("m.txt", "hello, world\nnothing here\n", None),
            ("m.csv", "name,value\nfoo,1\n", None),
            ("m.txt", "   \n", None),
            ("m.txt", "\u{0}\u{1}binary", None),
            // by TensorBoard's name rule, whatever the content (the reader says what is wrong)
            (
                "events.out.tfevents.1790000000.host.1.0",
                "",
                Some(Format::Tensorboard),
            ),
            (
                "events.out.tfevents.1790000000.host.1.0.v2",
                "x",
                Some(Format::Tensorboard),
            ),
        ];
        for (name, text, want) in cases {
            assert_eq!(
                detect_from(name, text.as_bytes()),
                *want,
                "{name}: {text:?}"
            );
        }
    }

    #[test]
    fn a_tensorboard_log_folder_is_detected() {
        for rel in [
            "keras",
            "keras/train",
            "pytorch",
            "lightning",
            "lightning/version_0",
        ] {
            let path = example(&format!("configs/examples/formats/tensorboard/{rel}"));
            assert_eq!(detect(&path).unwrap(), Format::Tensorboard, "{rel}");
            assert_eq!(
                load_metrics(&path, None).unwrap().format,
                Format::Tensorboard
            );
        }
        // a valid record header decides over a name that says otherwise
        let head = std::fs::read(example("tests/fixtures/events_corrupt.bin")).unwrap();
        assert_eq!(detect_from("metrics.csv", &head), Some(Format::Tensorboard));
    }

    #[test]
    fn a_gbk_log_is_text_and_garbage_is_binary() {
        // 开始训练 in GBK: not UTF-8, still a log
        let mut gbk = b"\xbf\xaa\xca\xbc\xd1\xb5\xc1\xb7\n".to_vec();
        gbk.extend_from_slice("Epoch 1/5\n".as_bytes());
        assert_eq!(detect_from("train.log", &gbk), Some(Format::KerasLog));
        let garbage = std::fs::read(example("tests/fixtures/garbage.bin")).unwrap();
        assert!(looks_binary(&garbage));
    }

    #[test]
    fn every_reader_refuses_broken_inputs_without_panicking() {
        let formats = [
            Format::Snapshot,
            Format::KerasHistory,
            Format::KerasCsv,
            Format::KerasLog,
            Format::LightningCsv,
            Format::HfTrainerState,
            Format::JsonLines,
            Format::Tensorboard,
            Format::Wandb,
        ];
        for rel in [
            "tests/fixtures/garbage.bin",
            "tests/fixtures/empty.csv",
            "tests/fixtures/header_only.csv",
            "tests/fixtures/broken.json",
            "tests/fixtures/not_metrics.json",
            "tests/fixtures/missing.json",
            "tests/fixtures",
        ] {
            for format in formats {
                let e = load_metrics(&example(rel), Some(format))
                    .expect_err(&format!("{rel} as {format:?}"));
                assert_eq!(e.exit_code(), 2, "{rel} as {format:?}: {e}");
                assert!(
                    e.to_string().contains("tests/fixtures"),
                    "{rel} as {format:?}: {e}"
                );
            }
        }
    }

    #[test]
    fn undetectable_files_are_input_errors() {
        for (rel, want) in [
            ("tests/fixtures/empty.csv", "empty file"),
            ("tests/fixtures/garbage.bin", "binary data"),
        ] {
            let e = detect(&example(rel)).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(want), "{rel}: {e}");
        }
        let e = detect(&example("configs")).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = detect(&example("configs/examples/formats/tensorboard"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("several runs (pytorch/, tf2/)"), "{e}");
        let e = load_metrics(&example("tests/fixtures/not_metrics.json"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no metric values found (read as JSON snapshot)"),
            "{e}"
        );
        let e = load_metrics(&example("tests/fixtures/header_only.csv"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no metric values found"), "{e}");
        let e = load_metrics(&example("tests/fixtures/broken.json"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("broken.json:3:16: key must be a string"), "{e}");
    }

    #[test]
    fn a_read_holds_at_most_max_series_and_says_how_many_names_it_left_out() {
        let mut b = MetricsBuilder::new();
        for i in 0..MAX_SERIES + 10 {
            b.push(&format!("m{i}"), 1, 0.5);
        }
        assert_eq!(b.series_id("another"), usize::MAX);
        b.push_id(usize::MAX, 1, 0.5);
        b.push("loss", 1, 0.5);
        let m = b.finish(Path::new("m.jsonl"), Format::JsonLines).unwrap();
        assert_eq!(m.series.len(), MAX_SERIES);
        assert_eq!(
            m.warnings,
            vec![format!(
                "12 metric names past the first {MAX_SERIES} were not read"
            )]
        );
    }

    #[test]
    fn a_utf16_file_with_a_bom_is_detected_by_its_text() {
        let encode = |text: &str, big: bool| {
            let mut bytes = if big {
                vec![0xfe, 0xff]
            } else {
                vec![0xff, 0xfe]
            };
            for unit in text.encode_utf16() {
                bytes.extend_from_slice(&if big {
                    unit.to_be_bytes()
                } else {
                    unit.to_le_bytes()
                });
            }
            bytes
        };
        let log = "python.exe : 2026-03-05 \r\nEpoch 1/60\r\n\u{1b}[1m 1/49\u{1b}[0m 1s/step - loss: 1.5527\r\n";
        assert_eq!(
            detect_from("training_output.txt", &encode(log, false)),
            Some(Format::KerasLog)
        );
        assert_eq!(
            detect_from("m.csv", &encode("epoch,loss\r\n0,0.5\r\n", true)),
            Some(Format::KerasCsv)
        );
        // and read: a UTF-16 CSV, by the reader the text says
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        std::fs::write(&path, encode("epoch,loss\r\n0,0.5\r\n1,0.25\r\n", false)).unwrap();
        let m = load_metrics(&path, None).unwrap();
        assert_eq!(
            super::testing::values(&m, Canonical::Loss),
            vec![(1, 0.5), (2, 0.25)]
        );
        // UTF-16 prose is not a metrics file, and not called binary
        std::fs::write(&path, encode("hello\r\nworld\r\n", false)).unwrap();
        let e = detect(&path).unwrap_err().to_string();
        assert!(e.contains("not a metrics format retune knows"), "{e}");
    }
}
