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

mod epochs;
mod folders;
mod proto;
mod records;

use std::path::Path;

use indexmap::IndexMap;

use super::MetricsBuilder;
use crate::error::{Error, Result};
use epochs::{Axis, EPOCH_COUNTER_TAGS, Survey, epoch_of_index};
use folders::{EventFile, run_files, series_name};
use records::scan;

pub(in crate::metrics) use folders::{check_folder, is_event_file_name};
pub(in crate::metrics) use records::looks_like;

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

/// Fixtures the tests of every part share: the example folders, and a TensorBoard writer.
#[cfg(test)]
mod testing {
    use std::path::{Path, PathBuf};

    use prost::Message;

    use super::folders::event_files_in;
    use super::proto::{Event, PluginData, Summary, SummaryMetadata, SummaryValue};
    use super::records::masked_crc;
    use crate::metrics::testing::example;
    use crate::metrics::{Format, Metrics, load_metrics};

    pub(super) const TB: &str = "configs/examples/formats/tensorboard";

    /// The one event file in a fixture folder.
    pub(super) fn only_file(folder: &str) -> PathBuf {
        let files = event_files_in(&example(&format!("{TB}/{folder}"))).unwrap();
        assert_eq!(files.len(), 1, "{folder}: {files:?}");
        files.into_iter().next().unwrap()
    }

    pub(super) fn load(path: &Path) -> Metrics {
        load_metrics(path, Some(Format::Tensorboard)).unwrap()
    }

    pub(super) fn error(path: &Path) -> String {
        load_metrics(path, Some(Format::Tensorboard))
            .unwrap_err()
            .to_string()
    }

    // A TensorBoard writer for the rules' edge cases: records framed and checksummed as
    // the real writers do (the fixtures prove the framing against TensorBoard's own).

    pub(super) fn record(data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u64).to_le_bytes().to_vec();
        let length_crc = masked_crc(&out);
        out.extend(length_crc.to_le_bytes());
        out.extend(data);
        out.extend(masked_crc(data).to_le_bytes());
        out
    }

    pub(super) fn event(step: i64, value: SummaryValue) -> Vec<u8> {
        let event = Event {
            step,
            summary: Some(Summary { value: vec![value] }),
        };
        record(&event.encode_to_vec())
    }

    pub(super) fn simple(tag: &str, v: f32) -> SummaryValue {
        SummaryValue {
            tag: tag.into(),
            simple_value: Some(v),
            ..Default::default()
        }
    }

    pub(super) fn plugin(name: &str) -> Option<SummaryMetadata> {
        Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: name.into(),
            }),
            data_class: 0,
        })
    }

    /// Writes `records` after the empty first event every writer starts with.
    pub(super) fn write(dir: &Path, rel: &str, records: &[Vec<u8>]) -> PathBuf {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut bytes = record(&Event::default().encode_to_vec());
        for r in records {
            bytes.extend(r);
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub(super) const EVENTS: &str = "events.out.tfevents.1790000000.host.1.0";
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use crate::metrics::testing::{example, values};
    use crate::metrics::{Canonical, Metrics, load_metrics};

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
}
