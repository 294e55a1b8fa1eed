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
        // (A subfolder that cannot be listed is not a W&B run; other folder rules decide.)
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && wandb_files_in(&entry.path()).is_ok_and(|files| !files.is_empty())
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use prost::Message;

    use super::log::checksum;
    use super::proto::{ConfigRecord, HistoryRecord, HistoryStep, Item, Record, RunRecord};
    use crate::metrics::testing::values;
    use crate::metrics::{Canonical, Format, Metrics, load_metrics};

    const BLOCK: usize = 32 * 1024;

    #[test]
    fn the_checksum_is_zlibs_crc32_of_the_type_byte_then_the_data() {
        // zlib.crc32(b"123456789", zlib.crc32(b"\x01")) as datastore.py computes it, and
        // the CRC-32 check value itself
        assert_eq!(checksum(1, b"123456789"), 0x21b5_2ec0);
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
    }

    /// Frames `records` as wandb-core's writer does: chunks that fill each 32 KiB block,
    /// a block's last bytes padded when no chunk header fits.
    fn frame(records: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b":W&B\xe1\xbe\x00".to_vec();
        for data in records {
            let mut rest = &data[..];
            let mut first = true;
            loop {
                let left = BLOCK - out.len() % BLOCK;
                if left < 7 {
                    out.extend(vec![0u8; left]);
                    continue;
                }
                let (part, tail) = rest.split_at((left - 7).min(rest.len()));
                let kind = match (first, tail.is_empty()) {
                    (true, true) => 1,
                    (true, false) => 2,
                    (false, false) => 3,
                    (false, true) => 4,
                };
                out.extend(checksum(kind, part).to_le_bytes());
                out.extend((part.len() as u16).to_le_bytes());
                out.push(kind);
                out.extend(part);
                rest = tail;
                first = false;
                if rest.is_empty() {
                    break;
                }
            }
        }
        out
    }

    fn item(key: &str, json: &str) -> Item {
        Item {
            key: String::new(),
            nested_key: key.split('>').map(str::to_string).collect(),
            value_json: json.into(),
        }
    }

    /// A history row at `step` of (key, value as JSON); `a>b` is a nested key.
    fn row(step: i64, items: &[(&str, &str)]) -> Vec<u8> {
        let mut items: Vec<Item> = items.iter().map(|(k, v)| item(k, v)).collect();
        items.push(item("_step", &step.to_string()));
        items.push(item("_runtime", "1.5"));
        Record {
            history: Some(HistoryRecord {
                item: items,
                step: Some(HistoryStep { num: step }),
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn run_record(config: &[(&str, &str)]) -> Vec<u8> {
        Record {
            run: Some(RunRecord {
                run_id: "abc".into(),
                config: Some(ConfigRecord {
                    update: config.iter().map(|(k, v)| item(k, v)).collect(),
                    remove: Vec::new(),
                }),
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
        let path = dir.join("run-abc.wandb");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn load(path: &Path) -> Metrics {
        load_metrics(path, None).unwrap()
    }

    #[test]
    fn a_record_over_three_blocks_and_zeroed_block_ends_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!("\"{}\"", "x".repeat(2 * BLOCK + 100));
        let mut records = vec![
            run_record(&[("learning_rate", "0.1")]),
            row(0, &[("loss", "1.0"), ("note", &big)]),
        ];
        records.push(row(1, &[("loss", "0.5")]));
        let mut bytes = frame(&records);
        // the rest of this block zeroed, as a preallocated file leaves it
        let zeros = BLOCK - bytes.len() % BLOCK;
        bytes.extend(vec![0u8; zeros]);
        // and the next record framed from the next block on
        let next = frame(&[row(2, &[("loss", "0.25")])]);
        bytes.extend(&next[7..]);
        let m = load(&write(dir.path(), &bytes));
        assert_eq!(m.format, Format::Wandb);
        assert!(
            m.warnings.iter().all(|w| !w.contains("record")),
            "{:?}",
            m.warnings
        );
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 1.0), (2, 0.5), (3, 0.25)]
        );
        // the FIRST, MIDDLE and LAST chunks are there
        let kinds: Vec<u8> = [7usize, BLOCK, 2 * BLOCK]
            .iter()
            .map(|&at| {
                let mut at = at;
                // skip the run record's chunk in the first block
                if at == 7 {
                    at += 7 + u16::from_le_bytes([bytes[11], bytes[12]]) as usize;
                }
                bytes[at + 6]
            })
            .collect();
        assert_eq!(kinds, [2, 3, 4]);
    }

    #[test]
    fn epoch_counters_names_and_values() {
        let dir = tempfile::tempdir().unwrap();
        // (the framed records, the loss series they read as)
        type Case = (Vec<Vec<u8>>, Vec<(u32, f64)>);
        let cases: Vec<Case> = vec![
            // Lightning: `epoch` from 0 in every row, several rows per epoch averaged
            (
                vec![
                    row(0, &[("epoch", "0"), ("train_loss", "1.0")]),
                    row(1, &[("epoch", "0"), ("train_loss", "0.8")]),
                    row(2, &[("epoch", "1"), ("train_loss", "0.6")]),
                ],
                vec![(1, 0.9), (2, 0.6)],
            ),
            // the HF Trainer's fractional `train/epoch`
            (
                vec![
                    row(10, &[("train/epoch", "0.5"), ("train/loss", "2.0")]),
                    row(20, &[("train/epoch", "1.0"), ("train/loss", "1.0")]),
                    row(30, &[("train/epoch", "1.5"), ("train/loss", "0.5")]),
                ],
                vec![(1, 1.5), (2, 0.5)],
            ),
            // Keras' WandbMetricsLogger: `epoch/` kept without its prefix, `batch/` left out
            (
                vec![
                    row(0, &[("batch/batch_step", "0"), ("batch/loss", "9.0")]),
                    row(1, &[("epoch/epoch", "0"), ("epoch/loss", "1.0")]),
                    row(2, &[("batch/batch_step", "1"), ("batch/loss", "9.0")]),
                    row(3, &[("epoch/epoch", "1"), ("epoch/loss", "0.5")]),
                ],
                vec![(1, 1.0), (2, 0.5)],
            ),
            // a counter from 1; a row without it belongs to the epoch it last showed
            (
                vec![
                    row(0, &[("epoch", "1"), ("loss", "1.0")]),
                    row(1, &[("loss", "0.6")]),
                    row(2, &[("epoch", "2"), ("loss", "0.5")]),
                ],
                vec![(1, 0.8), (2, 0.5)],
            ),
            // nested keys, non-finite strings, and what is not a metric
            (
                vec![
                    row(
                        0,
                        &[
                            ("train>loss", "1.0"),
                            ("system/gpu.0.temp", "60"),
                            ("_timestamp", "1.7e9"),
                            ("sample", "{\"_type\": \"image-file\"}"),
                            ("done", "false"),
                        ],
                    ),
                    row(1, &[("train>loss", "\"NaN\"")]),
                    row(2, &[("train>loss", "\"Infinity\"")]),
                ],
                vec![(1, 1.0), (2, f64::NAN), (3, f64::INFINITY)],
            ),
        ];
        for (i, (records, want)) in cases.into_iter().enumerate() {
            let m = load(&write(dir.path(), &frame(&records)));
            let names: Vec<&str> = m.series.iter().map(|s| s.original.as_str()).collect();
            assert_eq!(names.len(), 1, "case {i}: {names:?}");
            let got = values(&m, Canonical::Loss);
            assert_eq!(got.len(), want.len(), "case {i}: {got:?}");
            for ((ge, gv), (we, wv)) in got.iter().zip(&want) {
                assert_eq!(ge, we, "case {i}");
                assert!(
                    gv == wv || (gv.is_nan() && wv.is_nan()),
                    "case {i}: {got:?}"
                );
            }
            // only the run without a counter says how it placed its values
            let steps = m
                .warnings
                .iter()
                .any(|w| w.contains("each W&B step is read as one epoch"));
            assert_eq!(
                m.warnings.len(),
                usize::from(steps),
                "case {i}: {:?}",
                m.warnings
            );
            assert_eq!(steps, i == 4, "case {i}");
        }
    }

    #[test]
    fn a_counter_back_at_its_start_is_another_run_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Vec<u8>> = [(0, 2.0), (1, 1.5), (2, 1.0), (0, 3.0), (1, 2.0)]
            .iter()
            .enumerate()
            .map(|(step, (epoch, loss))| {
                row(
                    step as i64,
                    &[("epoch", &epoch.to_string()), ("loss", &loss.to_string())],
                )
            })
            .collect();
        let m = load(&write(dir.path(), &frame(&records)));
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 3.0), (2, 2.0)]);
        assert_eq!(m.phases.as_ref().unwrap().count, 2);
    }

    #[test]
    fn the_config_yaml_of_a_synced_run_is_its_config_where_present() {
        let dir = tempfile::tempdir().unwrap();
        let records = [
            run_record(&[("_wandb", "{}"), ("learning_rate", "0.1"), ("epochs", "3")]),
            Record {
                config: Some(ConfigRecord {
                    update: vec![item("batch_size", "64")],
                    remove: vec![item("epochs", "")],
                }),
                ..Default::default()
            }
            .encode_to_vec(),
            row(0, &[("loss", "1.0")]),
        ];
        let path = write(dir.path(), &frame(&records));
        let m = load(&path);
        let config = m.recorded_config.unwrap();
        assert_eq!(config.path, path);
        assert_eq!(
            serde_json::Value::Object(config.root),
            serde_json::json!({"learning_rate": 0.1, "batch_size": 64})
        );
        std::fs::create_dir_all(dir.path().join("files")).unwrap();
        std::fs::write(
            dir.path().join("files/config.yaml"),
            "_wandb:\n  value:\n    cli_version: 0.31.0\nlearning_rate:\n  value: 0.02\n",
        )
        .unwrap();
        // the run folder itself reads the same file
        let m = load(dir.path());
        let config = m.recorded_config.unwrap();
        assert!(config.path.ends_with("files/config.yaml"));
        assert_eq!(config.get("learning_rate"), Some(&serde_json::json!(0.02)));
    }

    #[test]
    fn chunks_out_of_place_and_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let good = frame(&[row(0, &[("loss", "1.0")]), row(1, &[("loss", "0.5")])]);
        // the second record's chunk type changed to LAST, its checksum made to match
        let second = 7 + 7 + u16::from_le_bytes([good[11], good[12]]) as usize;
        let mut bytes = good.clone();
        bytes[second + 6] = 4;
        let length = u16::from_le_bytes([bytes[second + 4], bytes[second + 5]]) as usize;
        let crc = checksum(4, &bytes[second + 7..second + 7 + length]);
        bytes[second..second + 4].copy_from_slice(&crc.to_le_bytes());
        let path = write(dir.path(), &bytes);
        let m = load(&path);
        assert_eq!(
            m.warnings[..1],
            [format!(
                "{}: corrupt record at byte {second} (a chunk of type 4 at byte {second} where a record should start); the 1 records before it were read",
                path.display()
            )]
        );
        // a record whose bytes are not a Record
        let mut bytes = good[..second].to_vec();
        bytes.extend(&frame(&[vec![0xff, 0xff, 0xff]])[7..]);
        let m = load(&write(dir.path(), &bytes));
        assert!(
            m.warnings[0].contains(&format!(
                "corrupt record at byte {second} (not a W&B Record: "
            )),
            "{:?}",
            m.warnings
        );
        // another format version
        let mut bytes = good.clone();
        bytes[6] = 1;
        let e = load_metrics(&write(dir.path(), &bytes), None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string().ends_with("run-abc.wandb: W&B file format version 1 at byte 6; retune reads version 0, which wandb 0.31 writes"),
            "{e}"
        );
        // only the header: no record, no value
        let e = load_metrics(&write(dir.path(), &good[..7]), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("no metric values found (read as W&B run (.wandb))"),
            "{e}"
        );
    }

    #[test]
    fn detected_by_name_header_and_run_folder() {
        use crate::metrics::{detect, detect_from};
        assert_eq!(detect_from("run-abc.wandb", b""), Some(Format::Wandb));
        assert_eq!(
            detect_from("m.bin", b":W&B\xe1\xbe\x00rest"),
            Some(Format::Wandb)
        );
        assert_eq!(detect_from("m.bin", b":W&B\x00\x00\x00"), None);
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("wandb/offline-run-20261202_000000-abc");
        std::fs::create_dir_all(&run).unwrap();
        write(&run, &frame(&[row(0, &[("loss", "1.0")])]));
        assert_eq!(detect(&run).unwrap(), Format::Wandb);
        let e = detect(&dir.path().join("wandb")).unwrap_err().to_string();
        assert!(
            e.contains("a W&B folder of 1 run (offline-run-20261202_000000-abc)"),
            "{e}"
        );
    }
}
