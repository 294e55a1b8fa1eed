//! Reads TensorBoard event files (`events.out.tfevents.*`), one file or a run folder: the
//! scalars PyTorch's `SummaryWriter` (and TF1) write as `simple_value`, and the ones TF2's
//! `tf.summary.scalar` (so Keras' TensorBoard callback) writes as rank-0 float tensors,
//! with `float_val`/`double_val` or raw little-endian `tensor_content`. Images,
//! histograms, text, graphs and hparams are not metrics and are skipped.
//!
//! A file is a sequence of records, `u64 length | u32 masked CRC-32C of the length | data
//! | u32 masked CRC-32C of the data`, each `data` an `Event` protobuf. Both CRCs are
//! checked. A corrupt or truncated record ends that file's reading with a warning naming
//! its byte offset, and the records before it are used: a run still writing, or a disk
//! that filled up, leaves exactly that. A file whose first record is broken is not an
//! event file, which is an input error.
//!
//! Scalars are keyed by step; the detectors want epochs. Per series:
//! - a Keras `epoch_*` tag is logged at step = epoch index (from 0): epoch = step + 1;
//! - otherwise, when the run logs an epoch counter (`epoch`, as Lightning logs it at every
//!   log call, or the HF Trainer's fractional `train/epoch`), a value belongs to the epoch
//!   the counter shows at its step (counted from 0 when the counter starts at a whole 0,
//!   and several values of one epoch are averaged by the series);
//! - otherwise, steps 0, 1, 2, … with no gap are epoch indices (a PyTorch loop calling
//!   `add_scalar(tag, value, epoch)`): epoch = step + 1;
//! - otherwise the steps are global steps. Beside epoch-indexed series, a series whose
//!   steps stay within their epoch range shares that axis (validation every other epoch);
//!   one that goes beyond (Keras' `batch_*`, logged per optimizer step) cannot be placed
//!   in an epoch and is left out with a warning. With no epoch-indexed series at all,
//!   each distinct step is one point, numbered 1, 2, 3 … in step order across all series
//!   so that values logged at the same step line up, and a warning says so.
//!
//! Folder rule, for `--metrics DIR`: the event files (names containing `tfevents`,
//! TensorBoard's own test) directly in DIR and in its immediate subfolders are read, in
//! name order (their names start with the time they were opened, so a resumed run's files
//! follow each other). A subfolder named for a split (`train/`, `validation/` as Keras'
//! callback writes them, `eval/` as TF Estimator does) qualifies its tags:
//! `validation/epoch_loss`, which reads as `val_loss`. A subfolder that PyTorch's
//! `add_scalars("Loss", {"val": …})` wrote (`Loss_val/`, holding the tag `Loss`) gives
//! its own name: `Loss_val`. In any other subfolder the tags keep their names, except that
//! when DIR holds event files itself, a subfolder holding an hparams summary is the
//! session record `SummaryWriter.add_hparams` writes beside the run, and its scalars (the
//! final metrics again) are not read. When DIR holds no event file itself and several of
//! its subfolders do, DIR holds several runs (`lightning_logs/version_0`, `version_1`):
//! that is an input error naming them. The same naming applies to a single file by the
//! folder it is in, so `logs/validation/events.out.tfevents…` alone reads as validation.
//!
//! Each file is read twice: first to learn each series' steps and the epoch counter,
//! then to push the values, so memory stays bounded whatever the file's length. Only
//! when there is no epoch counter and no epoch-indexed series, the distinct steps are
//! kept (8 bytes each) to number them.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use prost::Message;

use super::MetricsBuilder;
use super::snapshot::epoch_from;
use crate::error::{Error, Result};

/// TFRecord's CRC mask: rotate right by 15 bits, then add this, because a plain CRC of
/// data that itself holds CRCs is weak.
const CRC_MASK_DELTA: u32 = 0xa282_ead8;
/// A record's header: the u64 data length and the masked CRC of those 8 bytes.
const HEADER_BYTES: u64 = 12;
/// A record's footer: the masked CRC of its data.
const FOOTER_BYTES: u64 = 4;
/// TensorBoard's own test for an event file: its name contains this.
const EVENT_FILE_MARK: &str = "tfevents";
/// Subfolders in which a writer puts one split of a run: Keras' TensorBoard callback
/// writes `train/` and `validation/`, TF Estimator `eval/`.
const SPLIT_FOLDERS: &[&str] = &["train", "training", "validation", "valid", "val", "eval"];
/// Tags that count epochs rather than measure the model: Lightning logs `epoch` with
/// every log call, the HF Trainer `train/epoch` (fractional).
const EPOCH_COUNTER_TAGS: &[&str] = &["epoch", "train/epoch"];
/// Keras' TensorBoard callback logs epoch values as `epoch_<metric>` at step = epoch index.
const KERAS_EPOCH_PREFIX: &str = "epoch_";
/// tf.keras and Keras 3 repeat each validation value as `evaluation_<metric>_vs_iterations`
/// at the optimizer's iteration count; its `epoch_` twin is the one read, so this one is
/// dropped without a warning.
const KERAS_ITERATIONS_TAG: (&str, &str) = ("evaluation_", "_vs_iterations");
/// `tensorflow.DataType` codes of the tensors read as scalars.
const DT_FLOAT: i32 = 1;
const DT_DOUBLE: i32 = 2;
/// The plugin TensorBoard draws scalar charts with; other plugins' rank-0 float tensors
/// are not metrics.
const SCALARS_PLUGIN: &str = "scalars";
/// The plugin of `add_hparams`/`log_hyperparams` session summaries.
const HPARAMS_PLUGIN: &str = "hparams";
/// `SummaryMetadata.data_class`: unknown (TF1 and PyTorch leave it unset) or scalar.
const DATA_CLASS_UNKNOWN: i32 = 0;
const DATA_CLASS_SCALAR: i32 = 1;

/// `tensorflow.Event`, only the fields read; prost skips the rest (graphs, session logs,
/// wall time).
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(message, optional, tag = "5")]
    summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: a tag and one of several kinds of value (images, audio
/// and histograms are left undecoded).
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    tensor: Option<TensorProto>,
    /// Written with a tag's first value only by most writers.
    #[prost(message, optional, tag = "9")]
    metadata: Option<SummaryMetadata>,
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    plugin_data: Option<PluginData>,
    #[prost(int32, tag = "4")]
    data_class: i32,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
struct PluginData {
    #[prost(string, tag = "1")]
    plugin_name: String,
}

/// `tensorflow.TensorProto`, numeric parts.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorProto {
    #[prost(int32, tag = "1")]
    dtype: i32,
    #[prost(message, optional, tag = "2")]
    tensor_shape: Option<TensorShape>,
    #[prost(bytes = "vec", tag = "4")]
    tensor_content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    double_val: Vec<f64>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorShape {
    #[prost(message, repeated, tag = "2")]
    dim: Vec<TensorDim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
struct TensorDim {
    #[prost(int64, tag = "1")]
    size: i64,
}

impl SummaryValue {
    /// The value when it is one number: `simple_value`, or a float or double tensor of one
    /// element (rank 0 as `tf.summary.scalar` writes it, or a shape of ones).
    fn scalar(&self) -> Option<f64> {
        if let Some(v) = self.simple_value {
            return Some(f64::from(v));
        }
        let t = self.tensor.as_ref()?;
        let elements = t
            .tensor_shape
            .iter()
            .flat_map(|s| &s.dim)
            .try_fold(1i64, |n, d| n.checked_mul(d.size))?;
        if elements != 1 {
            return None;
        }
        match t.dtype {
            DT_FLOAT => t.float_val.first().map(|v| f64::from(*v)).or_else(|| {
                let bytes: [u8; 4] = t.tensor_content.as_slice().try_into().ok()?;
                Some(f64::from(f32::from_le_bytes(bytes)))
            }),
            DT_DOUBLE => t.double_val.first().copied().or_else(|| {
                let bytes: [u8; 8] = t.tensor_content.as_slice().try_into().ok()?;
                Some(f64::from_le_bytes(bytes))
            }),
            _ => None,
        }
    }

    fn plugin(&self) -> Option<&str> {
        let data = self.metadata.as_ref()?.plugin_data.as_ref()?;
        Some(data.plugin_name.as_str())
    }

    /// False when the metadata (if any) puts the value in a plugin other than scalars.
    fn may_be_scalar(&self) -> bool {
        let Some(meta) = &self.metadata else {
            return true;
        };
        let plugin = self.plugin().unwrap_or_default();
        (plugin.is_empty() || plugin == SCALARS_PLUGIN)
            && matches!(meta.data_class, DATA_CLASS_UNKNOWN | DATA_CLASS_SCALAR)
    }
}

/// TFRecord's masked CRC-32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
        .rotate_right(15)
        .wrapping_add(CRC_MASK_DELTA)
}

/// Whether a file's first bytes are a record header: the masked CRC of the 8 length bytes
/// follows them. A chance match is one in 2³², so this decides the format.
pub(super) fn looks_like(head: &[u8]) -> bool {
    match (head.get(..8), head.get(8..12)) {
        (Some(length), Some(crc)) => {
            let crc: [u8; 4] = [crc[0], crc[1], crc[2], crc[3]];
            masked_crc(length) == u32::from_le_bytes(crc)
        }
        _ => false,
    }
}

/// Whether a (lowercased) file name is an event file's, by TensorBoard's own rule.
pub(super) fn is_event_file_name(name: &str) -> bool {
    name.contains(EVENT_FILE_MARK)
}

/// Why a file's reading stopped before its end.
#[derive(Debug, Clone)]
struct Broken {
    offset: u64,
    /// `TRUNCATED` or `CORRUPT`.
    kind: &'static str,
    detail: String,
}

const TRUNCATED: &str = "truncated record";
const CORRUPT: &str = "corrupt record";

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {} ({})", self.kind, self.offset, self.detail)
    }
}

enum Next<'a> {
    Record(&'a [u8]),
    End,
    Broken(Broken),
}

/// One event file's records in order, both CRCs checked.
struct Records {
    path: PathBuf,
    reader: BufReader<File>,
    /// Byte offset of the next record.
    offset: u64,
    /// Where reading stops: the file's length, or a broken record the first pass found.
    limit: u64,
    data: Vec<u8>,
}

impl Records {
    fn open(path: &Path, limit: Option<u64>) -> Result<Records> {
        let file = File::open(path).map_err(|e| Error::read(path, &e))?;
        let length = file.metadata().map_err(|e| Error::read(path, &e))?.len();
        Ok(Records {
            path: path.to_path_buf(),
            reader: BufReader::new(file),
            offset: 0,
            limit: limit.map_or(length, |l| l.min(length)),
            data: Vec::new(),
        })
    }

    fn next(&mut self) -> Result<Next<'_>> {
        let start = self.offset;
        let left = self.limit.saturating_sub(start);
        let broken = |kind, detail: String| {
            Next::Broken(Broken {
                offset: start,
                kind,
                detail,
            })
        };
        if left == 0 {
            return Ok(Next::End);
        }
        if left < HEADER_BYTES + FOOTER_BYTES {
            return Ok(broken(
                TRUNCATED,
                format!("{left} bytes left, fewer than a record's header and footer"),
            ));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        if !self.fill(&mut header)? {
            return Ok(broken(TRUNCATED, "the file ends inside it".into()));
        }
        let (length, crc) = header.split_at(8);
        if masked_crc(length) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Ok(broken(
                CORRUPT,
                "the CRC of its length does not match".into(),
            ));
        }
        let length = u64::from_le_bytes([
            length[0], length[1], length[2], length[3], length[4], length[5], length[6], length[7],
        ]);
        let room = left - HEADER_BYTES - FOOTER_BYTES;
        let Some(size) = usize::try_from(length).ok().filter(|_| length <= room) else {
            return Ok(broken(
                TRUNCATED,
                format!("{length} bytes of data announced, {room} left in the file"),
            ));
        };
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        data.resize(size, 0);
        let mut footer = [0u8; FOOTER_BYTES as usize];
        let complete = self.fill(&mut data)? && self.fill(&mut footer)?;
        self.data = data;
        if !complete {
            return Ok(broken(TRUNCATED, "the file ends inside it".into()));
        }
        if masked_crc(&self.data) != u32::from_le_bytes(footer) {
            return Ok(broken(CORRUPT, "the CRC of its data does not match".into()));
        }
        self.offset = start + HEADER_BYTES + length + FOOTER_BYTES;
        Ok(Next::Record(&self.data))
    }

    /// Fills `buf`; false when the file ends first (it shrank since it was opened).
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool> {
        match self.reader.read_exact(buf) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(Error::read(&self.path, &e)),
        }
    }
}

/// One event file of the run.
#[derive(Debug)]
struct EventFile {
    path: PathBuf,
    /// Name of the folder holding it, which can qualify its tags.
    folder: Option<String>,
    /// In a subfolder beside the run's own files, where `add_hparams` writes.
    beside_run: bool,
    /// Where the first pass stopped: the end, or the broken record.
    end: u64,
    broken: Option<Broken>,
    /// Index of the record holding an hparams summary, in a file beside the run: the
    /// scalars from there on are the session's final metrics, not a series.
    hparams_from: Option<u64>,
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
fn series_name(folder: Option<&str>, tag: &str) -> String {
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
fn run_files(path: &Path) -> Result<Vec<EventFile>> {
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
fn event_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
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
pub(super) fn check_folder(path: &Path) -> Result<()> {
    run_files(path).map(|_| ())
}

/// What a pass over one file found.
struct Scan {
    records: u64,
    end: u64,
    broken: Option<Broken>,
}

/// Calls `each(record index, step, value)` for every summary value of the file's records,
/// up to `limit` when given. A record that is not an `Event` (its CRCs match but the
/// bytes do not decode) counts as corrupt.
fn scan(
    path: &Path,
    limit: Option<u64>,
    mut each: impl FnMut(u64, i64, &SummaryValue),
) -> Result<Scan> {
    let mut records = Records::open(path, limit)?;
    let mut count = 0u64;
    loop {
        let offset = records.offset;
        let broken = match records.next()? {
            Next::End => None,
            Next::Broken(b) => Some(b),
            Next::Record(data) => match Event::decode(data) {
                Ok(event) => {
                    for value in event.summary.iter().flat_map(|s| &s.value) {
                        each(count, event.step, value);
                    }
                    count += 1;
                    continue;
                }
                Err(e) => Some(Broken {
                    offset,
                    kind: CORRUPT,
                    detail: format!("not a TensorBoard Event: {e}"),
                }),
            },
        };
        let end = broken.as_ref().map_or(records.offset, |b| b.offset);
        return Ok(Scan {
            records: count,
            end,
            broken,
        });
    }
}

/// What the first pass learns about one series.
#[derive(Debug)]
struct SeriesSurvey {
    name: String,
    /// Every tag of the series is a Keras `epoch_*` tag.
    keras_epoch: bool,
    keras_iterations: bool,
    /// Its metadata puts it in a plugin other than scalars.
    not_scalar: bool,
    /// Steps so far were 0, 1, 2, … in order.
    consecutive: bool,
    next_step: i64,
    max_step: i64,
}

/// The epoch counter's values where they change: (step, epoch if counted from 0, epoch as
/// logged), 1-based.
#[derive(Debug)]
struct EpochCounter {
    changes: Vec<(i64, u32, u32)>,
    min: f64,
    whole: bool,
}

impl Default for EpochCounter {
    fn default() -> Self {
        EpochCounter {
            changes: Vec::new(),
            min: f64::INFINITY,
            whole: true,
        }
    }
}

impl EpochCounter {
    fn observe(&mut self, step: i64, logged: f64) {
        if !logged.is_finite() {
            return;
        }
        self.min = self.min.min(logged);
        self.whole &= logged.fract() == 0.0;
        let change = (step, epoch_from(logged, true), epoch_from(logged, false));
        if self
            .changes
            .last()
            .is_none_or(|last| (last.1, last.2) != (change.1, change.2))
        {
            self.changes.push(change);
        }
    }

    fn seen(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Lightning counts whole epochs from 0; the HF Trainer logs progress (0.5 = half of
    /// the first epoch, 1.0 = its end), and a script that counts from 1 starts at 1.
    fn zero_based(&self) -> bool {
        self.min == 0.0 && self.whole
    }

    /// The epoch the counter shows at `step`: the latest change at or before it.
    fn epoch_at(&self, step: i64) -> u32 {
        let i = self.changes.partition_point(|c| c.0 <= step);
        match self.changes.get(i.saturating_sub(1)) {
            Some(&(_, from_zero, _)) if self.zero_based() => from_zero,
            Some(&(_, _, as_logged)) => as_logged,
            None => 1,
        }
    }
}

/// How a series' steps become epochs (module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    /// epoch = step + 1.
    EpochIndex,
    /// The epoch counter at the step.
    Counter,
    /// The step's rank among all distinct steps.
    Ordinal,
    /// Not read.
    Skip,
}

/// The first pass over all files.
#[derive(Debug, Default)]
struct Survey {
    series: IndexMap<String, SeriesSurvey>,
    counter: EpochCounter,
    /// Distinct steps of all series, while no epoch counter has been seen.
    steps: Vec<i64>,
}

impl Survey {
    fn file(&mut self, file: &mut EventFile, warnings: &mut Vec<String>) -> Result<()> {
        let mut ids: IndexMap<String, usize> = IndexMap::new();
        let beside_run = file.beside_run;
        let mut hparams_from = None;
        let folder = file.folder.as_deref();
        let scan = scan(&file.path, None, |index, step, value| {
            if beside_run && value.plugin() == Some(HPARAMS_PLUGIN) {
                hparams_from.get_or_insert(index);
            }
            if hparams_from.is_some() {
                return;
            }
            let scalar = value.scalar();
            if EPOCH_COUNTER_TAGS.contains(&value.tag.as_str()) {
                if let Some(x) = scalar {
                    self.counter.observe(step, x);
                    self.steps = Vec::new();
                }
                return;
            }
            // Another plugin's metadata comes with a tag's first value only, which need
            // not be one number, and marks the values after it.
            let other_plugin = !value.may_be_scalar();
            if scalar.is_none() && !other_plugin {
                return;
            }
            let id = match ids.get(&value.tag) {
                Some(id) => *id,
                None => {
                    let id = self.series_id(&series_name(folder, &value.tag), &value.tag);
                    ids.insert(value.tag.clone(), id);
                    id
                }
            };
            let s = &mut self.series[id];
            s.not_scalar |= other_plugin;
            if s.not_scalar || scalar.is_none() {
                return;
            }
            s.consecutive &= step == s.next_step;
            s.next_step = step.saturating_add(1);
            s.max_step = s.max_step.max(step);
            if !self.counter.seen() && self.steps.last() != Some(&step) {
                self.steps.push(step);
            }
        })?;
        file.end = scan.end;
        file.hparams_from = hparams_from;
        if let Some(broken) = &scan.broken {
            if scan.records == 0 {
                return Err(Error::input(
                    &file.path,
                    format!("{broken}: not a TensorBoard event file, or a damaged one"),
                ));
            }
            warnings.push(format!(
                "{}: {broken}; the {} records before it were read",
                file.path.display(),
                scan.records
            ));
        }
        file.broken = scan.broken;
        Ok(())
    }

    fn series_id(&mut self, name: &str, tag: &str) -> usize {
        if let Some(id) = self.series.get_index_of(name) {
            let s = &mut self.series[id];
            s.keras_epoch &= tag.starts_with(KERAS_EPOCH_PREFIX);
            return id;
        }
        let (prefix, suffix) = KERAS_ITERATIONS_TAG;
        let survey = SeriesSurvey {
            name: name.to_string(),
            keras_epoch: tag.starts_with(KERAS_EPOCH_PREFIX),
            keras_iterations: tag.starts_with(prefix) && tag.ends_with(suffix),
            not_scalar: false,
            consecutive: true,
            next_step: 0,
            max_step: i64::MIN,
        };
        self.series.insert_full(name.to_string(), survey).0
    }

    /// Each series' axis, by the rules in the module docs.
    fn plan(&mut self, warnings: &mut Vec<String>) -> Vec<Axis> {
        self.counter.changes.sort_by_key(|c| c.0);
        let counter = self.counter.seen();
        let mut axes: Vec<Option<Axis>> = self
            .series
            .values()
            .map(|s| {
                if s.not_scalar {
                    Some(Axis::Skip)
                } else if s.keras_epoch {
                    Some(Axis::EpochIndex)
                } else if counter {
                    Some(Axis::Counter)
                } else if s.consecutive {
                    Some(Axis::EpochIndex)
                } else {
                    None
                }
            })
            .collect();
        let epoch_range = self
            .series
            .values()
            .zip(&axes)
            .filter(|(_, a)| **a == Some(Axis::EpochIndex))
            .map(|(s, _)| s.max_step)
            .max();
        let mut left_out = Vec::new();
        let mut ordinal = false;
        for (s, axis) in self.series.values().zip(axes.iter_mut()) {
            if axis.is_some() {
                continue;
            }
            *axis = Some(match epoch_range {
                Some(range) if s.max_step <= range => Axis::EpochIndex,
                Some(_) => {
                    if !s.keras_iterations {
                        left_out.push(s.name.as_str());
                    }
                    Axis::Skip
                }
                None => {
                    ordinal = true;
                    Axis::Ordinal
                }
            });
        }
        if !left_out.is_empty() {
            warnings.push(format!(
                "{} logged by global step beside per-epoch values, with no `epoch` scalar to say which epoch a step belongs to; not read",
                left_out.join(", ")
            ));
        }
        if ordinal {
            self.steps.sort_unstable();
            self.steps.dedup();
            self.steps.shrink_to_fit();
            warnings.push(
                "values are logged by global step and no `epoch` scalar says which epoch a step belongs to: each logged step is read as one epoch (log `epoch` at the same steps to group them)".into(),
            );
        } else {
            self.steps = Vec::new();
        }
        axes.into_iter().map(|a| a.unwrap_or(Axis::Skip)).collect()
    }
}

/// The 1-based epoch of a 0-based index.
fn epoch_of_index(index: i64) -> u32 {
    u32::try_from(index.saturating_add(1).max(1)).unwrap_or(u32::MAX)
}

/// The second pass: values pushed at their epochs.
struct Push<'a> {
    survey: &'a Survey,
    axes: &'a [Axis],
    builder: &'a mut MetricsBuilder,
    /// Builder handle per series, made at its first value.
    handles: Vec<Option<usize>>,
    last_epoch: Vec<u32>,
    /// Values at an epoch before one already pushed, per series.
    behind: Vec<u64>,
    values: u64,
}

impl Push<'_> {
    fn file(&mut self, file: &EventFile) -> Result<()> {
        let mut ids: IndexMap<String, usize> = IndexMap::new();
        let mut counted: Option<u64> = None;
        scan(&file.path, Some(file.end), |index, step, value| {
            if file.hparams_from.is_some_and(|from| index >= from)
                || EPOCH_COUNTER_TAGS.contains(&value.tag.as_str())
            {
                return;
            }
            let Some(x) = value.scalar() else {
                return;
            };
            let id = match ids.get(&value.tag) {
                Some(id) => *id,
                None => {
                    let name = series_name(file.folder.as_deref(), &value.tag);
                    let Some(id) = self.survey.series.get_index_of(&name) else {
                        // A value the first pass did not see: the file grew in between.
                        return;
                    };
                    ids.insert(value.tag.clone(), id);
                    id
                }
            };
            let epoch = match self.axes[id] {
                Axis::EpochIndex => epoch_of_index(step),
                Axis::Counter => self.survey.counter.epoch_at(step),
                Axis::Ordinal => {
                    let rank = match self.survey.steps.binary_search(&step) {
                        Ok(i) | Err(i) => i,
                    };
                    epoch_of_index(i64::try_from(rank).unwrap_or(i64::MAX))
                }
                Axis::Skip => return,
            };
            if epoch < self.last_epoch[id] {
                self.behind[id] += 1;
                return;
            }
            self.last_epoch[id] = epoch;
            let handle = *self.handles[id]
                .get_or_insert_with(|| self.builder.series_id(&self.survey.series[id].name));
            self.builder.push_id(handle, epoch, x);
            self.values += 1;
            if counted != Some(index) {
                counted = Some(index);
                self.builder.rows += 1;
            }
        })?;
        Ok(())
    }
}

/// Reads an event file, or a run folder's event files (module docs), into `builder`.
/// Warnings (a broken record, values that could not be placed in an epoch) go to
/// `builder.warnings`.
pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut files = run_files(path)?;
    let mut survey = Survey::default();
    for file in &mut files {
        survey.file(file, &mut builder.warnings)?;
    }
    let axes = survey.plan(&mut builder.warnings);
    let n = survey.series.len();
    let mut push = Push {
        survey: &survey,
        axes: &axes,
        builder,
        handles: vec![None; n],
        last_epoch: vec![0; n],
        behind: vec![0; n],
        values: 0,
    };
    for file in &files {
        push.file(file)?;
    }
    let (values, behind) = (push.values, push.behind);
    for (s, count) in survey.series.values().zip(behind) {
        if count > 0 {
            builder.warnings.push(format!(
                "{}: {count} values logged at steps before ones already read (a resumed run logging again?) were not read",
                s.name
            ));
        }
    }
    // A broken record that left nothing to read is the error, not a warning.
    if values == 0
        && let Some((file, broken)) = files.iter().find_map(|f| f.broken.as_ref().map(|b| (f, b)))
    {
        return Err(Error::input(
            &file.path,
            format!("{broken}, with no scalar value before it"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use prost::Message;

    use super::*;
    use crate::metrics::testing::{example, values};
    use crate::metrics::{Canonical, Format, Metrics, load_metrics};

    const TB: &str = "configs/examples/formats/tensorboard";

    /// The one event file in a fixture folder.
    fn only_file(folder: &str) -> PathBuf {
        let files = event_files_in(&example(&format!("{TB}/{folder}"))).unwrap();
        assert_eq!(files.len(), 1, "{folder}: {files:?}");
        files.into_iter().next().unwrap()
    }

    fn load(path: &Path) -> Metrics {
        load_metrics(path, Some(Format::Tensorboard)).unwrap()
    }

    fn error(path: &Path) -> String {
        load_metrics(path, Some(Format::Tensorboard))
            .unwrap_err()
            .to_string()
    }

    /// Series `c` of the TensorBoard reading equals the one read from the CSV the fixture
    /// was written from, epoch by epoch, the CSV's values rounded to the f32 TensorBoard
    /// stores.
    #[track_caller]
    fn assert_same(tb: &Metrics, csv: &Metrics, c: Canonical) {
        let want: Vec<(u32, f64)> = values(csv, c)
            .into_iter()
            .map(|(e, v)| (e, f64::from(v as f32)))
            .collect();
        let got = values(tb, c);
        assert_eq!(got.len(), want.len(), "{c:?}: {got:?} vs {want:?}");
        for ((ge, gv), (we, wv)) in got.iter().zip(&want) {
            assert_eq!(ge, we, "{c:?}");
            assert!(
                gv == wv || (gv.is_nan() && wv.is_nan()),
                "{c:?} epoch {ge}: {gv} vs {wv}"
            );
        }
    }

    fn csv(rel: &str) -> Metrics {
        load_metrics(&example(rel), None).unwrap()
    }

    const MODEL_SERIES: [Canonical; 4] = [
        Canonical::Loss,
        Canonical::ValLoss,
        Canonical::Accuracy,
        Canonical::ValAccuracy,
    ];

    // A TensorBoard writer for the rules' edge cases: records framed and checksummed as
    // the real writers do (the fixtures prove the framing against TensorBoard's own).

    fn record(data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u64).to_le_bytes().to_vec();
        let length_crc = masked_crc(&out);
        out.extend(length_crc.to_le_bytes());
        out.extend(data);
        out.extend(masked_crc(data).to_le_bytes());
        out
    }

    fn event(step: i64, value: SummaryValue) -> Vec<u8> {
        let event = Event {
            step,
            summary: Some(Summary { value: vec![value] }),
        };
        record(&event.encode_to_vec())
    }

    fn simple(tag: &str, v: f32) -> SummaryValue {
        SummaryValue {
            tag: tag.into(),
            simple_value: Some(v),
            ..Default::default()
        }
    }

    fn plugin(name: &str) -> Option<SummaryMetadata> {
        Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: name.into(),
            }),
            data_class: 0,
        })
    }

    /// Writes `records` after the empty first event every writer starts with.
    fn write(dir: &Path, rel: &str, records: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = record(&Event::default().encode_to_vec());
        for r in records {
            bytes.extend(r);
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    const EVENTS: &str = "events.out.tfevents.1790000000.host.1.0";

    #[test]
    fn masked_crc_is_tensorflows() {
        // The CRC-32C check value, then the mask applied to it.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
        // Every header TensorBoard's writer framed checks out.
        for folder in [
            "pytorch",
            "pytorch/Loss_train",
            "lightning/version_0",
            "tf2",
            "keras/train",
            "keras/validation",
        ] {
            let bytes = std::fs::read(only_file(folder)).unwrap();
            assert!(looks_like(&bytes), "{folder}");
            let mut flipped = bytes.clone();
            flipped[3] ^= 0x10;
            assert!(!looks_like(&flipped), "{folder}");
        }
        assert!(!looks_like(b"epoch,loss\n0,0.5\n"));
        assert!(!looks_like(&[0u8; 11]));
    }

    #[test]
    fn pytorch_simple_values_and_add_scalars_folders() {
        let m = load(&example(&format!("{TB}/pytorch")));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let source = csv("configs/examples/keras/diverging/history.csv");
        for c in MODEL_SERIES {
            assert_same(&m, &source, c);
        }
        assert_eq!(m.get(Canonical::Loss).unwrap().original, "Loss_train");
        assert_eq!(m.get(Canonical::ValLoss).unwrap().original, "Loss_val");
        assert_eq!(
            m.get(Canonical::Accuracy).unwrap().original,
            "Accuracy/train"
        );
        let loss = m.get(Canonical::Loss).unwrap();
        assert_eq!(loss.first_nonfinite().unwrap().epoch, 11);
        assert_eq!(m.last_epoch(), Some(12));
        // The main file alone has the accuracies, at step = epoch index.
        let main = load(&only_file("pytorch"));
        assert_eq!(main.series.len(), 2);
        assert_eq!(main.get(Canonical::ValAccuracy).unwrap().len(), 12);
    }

    #[test]
    fn tf2_rank_zero_tensors_float_and_double() {
        let m = load(&only_file("tf2"));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let source = csv("configs/examples/keras/healthy/history.csv");
        for c in MODEL_SERIES {
            assert_same(&m, &source, c);
        }
        // learning_rate is a DT_DOUBLE tensor: no f32 rounding.
        let lr = values(&m, Canonical::Lr);
        assert_eq!(lr.len(), 15);
        assert_eq!(lr[0], (1, 1e-3));
        assert_eq!(lr[2], (3, 1e-3 * 0.9f64.powi(2)));
        assert_eq!(m.rows, 75);
    }

    #[test]
    fn keras_run_folder_merges_train_and_validation() {
        let m = load(&example(&format!("{TB}/keras")));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let source = csv("configs/examples/keras/overfitting/history.csv");
        for c in MODEL_SERIES {
            assert_same(&m, &source, c);
        }
        assert_eq!(
            m.get(Canonical::ValLoss).unwrap().original,
            "validation/epoch_loss"
        );
        // float32 as Keras keeps it, read from raw tensor_content bytes
        assert_eq!(
            m.get(Canonical::Lr).unwrap().last().unwrap().value,
            0.0010000000474974513
        );
        // the model config (a string tensor) and the per-iteration repeats are not series
        let names: Vec<&str> = m.series.iter().map(|s| s.original.as_str()).collect();
        assert_eq!(names.len(), 5, "{names:?}");
        // The validation file alone is validation, by its folder.
        let val = load(&only_file("keras/validation"));
        assert_eq!(val.get(Canonical::ValLoss).unwrap().len(), 40);
        assert!(val.get(Canonical::Loss).is_none());
        assert!(val.warnings.is_empty(), "{:?}", val.warnings);
    }

    #[test]
    fn lightning_epoch_counter_reads_as_the_csv_logger() {
        let m = load(&example(&format!("{TB}/lightning/version_0")));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
        let source = csv("configs/examples/formats/lightning/version_0/metrics.csv");
        for c in MODEL_SERIES {
            assert_same(&m, &source, c);
        }
        // the step-level values of one epoch are averaged as the CSV reader averages them
        let step = |m: &Metrics| {
            m.series
                .iter()
                .find(|s| s.original == "train_loss_step")
                .unwrap()
                .tail(10)
        };
        assert_eq!(step(&m).len(), 6);
        for (tb, csv) in step(&m).iter().zip(step(&source)) {
            assert_eq!(tb.epoch, csv.epoch);
            assert!((tb.value - csv.value).abs() < 1e-6, "{tb:?} {csv:?}");
        }
        assert!(m.series.iter().all(|s| s.original != "epoch"));
        assert_eq!(m.last_epoch(), Some(6));
        // The folder above the one run reads the same.
        let parent = load(&example(&format!("{TB}/lightning")));
        assert_eq!(
            values(&parent, Canonical::ValLoss),
            values(&m, Canonical::ValLoss)
        );
    }

    /// Byte offsets of the records of an intact event file.
    fn offsets(bytes: &[u8]) -> Vec<u64> {
        let mut at = 0usize;
        let mut out = Vec::new();
        while at < bytes.len() {
            out.push(at as u64);
            let length = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            at += 16 + length;
        }
        out
    }

    #[test]
    fn a_truncated_file_keeps_the_records_before_the_cut() {
        let path = example("tests/fixtures/events_truncated.bin");
        let m = load(&path);
        let intact = offsets(&std::fs::read(only_file("tf2")).unwrap());
        let cut = intact[intact.len() - 3];
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        let w = &m.warnings[0];
        assert!(
            w.starts_with(&format!(
                "{}: truncated record at byte {cut} (",
                path.display()
            )),
            "{w}"
        );
        assert!(
            w.ends_with(&format!(
                "the {} records before it were read",
                intact.len() - 3
            )),
            "{w}"
        );
        // the last epoch lost its validation values and learning rate, nothing else
        assert_eq!(m.get(Canonical::Loss).unwrap().len(), 15);
        assert_eq!(m.get(Canonical::Accuracy).unwrap().len(), 15);
        assert_eq!(m.get(Canonical::ValLoss).unwrap().len(), 14);
        assert_eq!(m.get(Canonical::Lr).unwrap().len(), 14);
    }

    #[test]
    fn a_corrupt_second_record_leaves_nothing_and_is_an_error_with_its_offset() {
        let path = example("tests/fixtures/events_corrupt.bin");
        let second = offsets(&std::fs::read(only_file("tf2")).unwrap())[1];
        let e = load_metrics(&path, None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            e.to_string(),
            format!(
                "{}: corrupt record at byte {second} (the CRC of its data does not match), with no scalar value before it",
                path.display()
            )
        );
    }

    #[test]
    fn a_later_broken_record_is_a_warning_for_either_crc() {
        let bytes = std::fs::read(only_file("tf2")).unwrap();
        let at = offsets(&bytes);
        // record 21 is the first of epoch 5 (one file_version record, then 5 per epoch)
        let k = 21;
        for (flip, what) in [
            (at[k] as usize + 2, "the CRC of its length does not match"),
            (at[k] as usize + 20, "the CRC of its data does not match"),
            (at[k] as usize + 9, "the CRC of its length does not match"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut broken = bytes.clone();
            broken[flip] ^= 0x04;
            let path = dir.path().join(EVENTS);
            std::fs::write(&path, &broken).unwrap();
            let m = load(&path);
            assert_eq!(
                m.warnings,
                vec![format!(
                    "{}: corrupt record at byte {} ({what}); the {k} records before it were read",
                    path.display(),
                    at[k]
                )]
            );
            assert_eq!(m.last_epoch(), Some(4), "flip at {flip}");
        }
    }

    #[test]
    fn a_broken_first_record_is_not_an_event_file() {
        let e = error(&example("tests/fixtures/garbage.bin"));
        assert!(
            e.ends_with("garbage.bin: corrupt record at byte 0 (the CRC of its length does not match): not a TensorBoard event file, or a damaged one"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let bytes = std::fs::read(only_file("tf2")).unwrap();
        let path = dir.path().join(EVENTS);
        std::fs::write(&path, &bytes[..7]).unwrap();
        let e = error(&path);
        assert!(
            e.contains("truncated record at byte 0 (7 bytes left, fewer than a record's header and footer): not a TensorBoard event file"),
            "{e}"
        );
        let mut flipped = bytes.clone();
        flipped[40] ^= 0x01;
        std::fs::write(&path, &flipped).unwrap();
        let e = error(&path);
        assert!(
            e.contains("corrupt record at byte 0 (the CRC of its data does not match)"),
            "{e}"
        );
        // framing that checks out around bytes that are no Event
        std::fs::write(&path, record(&[0xff, 0xff, 0xff])).unwrap();
        let e = error(&path);
        assert!(
            e.contains("corrupt record at byte 0 (not a TensorBoard Event: "),
            "{e}"
        );
        // an empty file has no record, and no value
        std::fs::write(&path, b"").unwrap();
        assert!(error(&path).contains("no metric values found (read as TensorBoard event file)"));
    }

    #[test]
    fn global_steps_are_grouped_by_an_epoch_counter() {
        let dir = tempfile::tempdir().unwrap();
        let run = |counter: &[(&str, i64, f32)]| {
            let mut records = Vec::new();
            for (i, step) in [100i64, 200, 300, 400].into_iter().enumerate() {
                records.push(event(step, simple("train/loss", 1.0 + i as f32)));
                if step % 200 == 0 {
                    records.push(event(step, simple("val/loss", 10.0 * step as f32)));
                }
                for (tag, at, value) in counter {
                    if *at == step {
                        records.push(event(step, simple(tag, *value)));
                    }
                }
            }
            load(&write(dir.path(), EVENTS, &records))
        };
        // no counter: each distinct step is one point, aligned across tags
        let m = run(&[]);
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
        );
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(2, 2000.0), (4, 4000.0)]
        );
        assert_eq!(m.warnings.len(), 1);
        assert!(m.warnings[0].contains("each logged step is read as one epoch"));
        // Lightning's `epoch`, counted from 0
        let lightning = [
            ("epoch", 100, 0.0),
            ("epoch", 200, 0.0),
            ("epoch", 300, 1.0),
            ("epoch", 400, 1.0),
        ];
        // the HF Trainer's `train/epoch`, progress through training
        let hf = [
            ("train/epoch", 100, 0.5),
            ("train/epoch", 200, 1.0),
            ("train/epoch", 300, 1.5),
            ("train/epoch", 400, 2.0),
        ];
        // a script's own counter from 1
        let from_one = [
            ("epoch", 100, 1.0),
            ("epoch", 200, 1.0),
            ("epoch", 300, 2.0),
            ("epoch", 400, 2.0),
        ];
        for counter in [&lightning[..], &hf, &from_one] {
            let m = run(counter);
            assert!(m.warnings.is_empty(), "{:?}", m.warnings);
            assert_eq!(values(&m, Canonical::Loss), vec![(1, 1.5), (2, 3.5)]);
            assert_eq!(
                values(&m, Canonical::ValLoss),
                vec![(1, 2000.0), (2, 4000.0)]
            );
            assert!(m.series.iter().all(|s| !s.original.ends_with("epoch")));
        }
    }

    #[test]
    fn per_epoch_steps_and_what_cannot_join_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = Vec::new();
        for epoch in 0..5i64 {
            records.push(event(epoch, simple("Loss/train", 5.0 - epoch as f32)));
            if epoch % 2 == 0 {
                records.push(event(epoch, simple("Loss/val", 6.0 - epoch as f32)));
            }
            for batch in 0..3 {
                let step = epoch * 30 + batch * 10;
                records.push(event(step, simple("batch_loss", 0.5)));
            }
        }
        let m = load(&write(dir.path(), EVENTS, &records));
        assert_eq!(values(&m, Canonical::Loss).len(), 5);
        // validation every other epoch stays on the epoch axis
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 6.0), (3, 4.0), (5, 2.0)]
        );
        assert!(m.series.iter().all(|s| s.original != "batch_loss"));
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].starts_with("batch_loss logged by global step"));
    }

    #[test]
    fn a_resumed_run_going_back_is_read_once_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let first: Vec<_> = (0..4)
            .map(|e| event(e, simple("epoch_loss", 1.0)))
            .collect();
        let second: Vec<_> = (2..6)
            .map(|e| event(e, simple("epoch_loss", 3.0)))
            .collect();
        write(dir.path(), "events.out.tfevents.1790000000.h.1.0", &first);
        write(dir.path(), "events.out.tfevents.1790000900.h.1.0", &second);
        let m = load(dir.path());
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss.last(), Some(&(6, 3.0)));
        assert_eq!(loss[3], (4, 2.0), "{loss:?}");
        assert_eq!(
            m.warnings,
            vec![
                "epoch_loss: 1 values logged at steps before ones already read (a resumed run logging again?) were not read"
            ]
        );
    }

    #[test]
    fn only_scalars_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let tensor = |dtype, dims: &[i64], float_val: Vec<f32>, content: Vec<u8>| TensorProto {
            dtype,
            tensor_shape: Some(TensorShape {
                dim: dims.iter().map(|&size| TensorDim { size }).collect(),
            }),
            tensor_content: content,
            float_val,
            double_val: Vec::new(),
        };
        let value = |tag: &str, t: TensorProto, metadata| SummaryValue {
            tag: tag.into(),
            tensor: Some(t),
            metadata,
            ..Default::default()
        };
        let mut records = Vec::new();
        for step in 0..3 {
            let first = step == 0;
            // a one-element float tensor of another plugin, its metadata only once
            let meta = if first { plugin("pr_curves") } else { None };
            records.push(event(
                step,
                value("pr", tensor(DT_FLOAT, &[], vec![0.5], vec![]), meta),
            ));
            // a histogram, its plugin named on a first value of two numbers, then one
            // number at a time
            let (dims, numbers, meta) = if first {
                (&[2][..], vec![0.1, 0.2], plugin("histograms"))
            } else {
                (&[1][..], vec![0.3], None)
            };
            records.push(event(
                step,
                value("weights", tensor(DT_FLOAT, dims, numbers, vec![]), meta),
            ));
            // an int tensor
            records.push(event(
                step,
                value("count", tensor(3, &[], vec![], vec![1, 0, 0, 0]), None),
            ));
            // a [1, 1] shaped float tensor with raw bytes is one number
            let meta = if first { plugin("scalars") } else { None };
            let bytes = (0.25f32 * (step + 1) as f32).to_le_bytes().to_vec();
            records.push(event(
                step,
                value("loss", tensor(DT_FLOAT, &[1, 1], vec![], bytes), meta),
            ));
        }
        let m = load(&write(dir.path(), EVENTS, &records));
        let names: Vec<&str> = m.series.iter().map(|s| s.original.as_str()).collect();
        assert_eq!(names, ["loss"]);
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 0.25), (2, 0.5), (3, 0.75)]
        );
    }

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
