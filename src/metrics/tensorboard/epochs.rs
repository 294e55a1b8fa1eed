//! The first pass over a run's files: what each series' steps are, and the epoch counter,
//! to decide how its steps become epochs (the rules in the module docs).

use indexmap::IndexMap;

use super::folders::{EventFile, series_name};
use super::proto::HPARAMS_PLUGIN;
use super::records::scan;
use crate::error::{Error, Result};
use crate::metrics::snapshot::epoch_from;

/// Tags that count epochs rather than measure the model: Lightning logs `epoch` with
/// every log call, the HF Trainer `train/epoch` (fractional).
pub(super) const EPOCH_COUNTER_TAGS: &[&str] = &["epoch", "train/epoch"];
/// Keras' TensorBoard callback logs epoch values as `epoch_<metric>` at step = epoch index.
const KERAS_EPOCH_PREFIX: &str = "epoch_";
/// tf.keras and Keras 3 repeat each validation value as `evaluation_<metric>_vs_iterations`
/// at the optimizer's iteration count; its `epoch_` twin is the one read, so this one is
/// dropped without a warning.
const KERAS_ITERATIONS_TAG: (&str, &str) = ("evaluation_", "_vs_iterations");

/// What the first pass learns about one series.
#[derive(Debug)]
pub(super) struct SeriesSurvey {
    pub(super) name: String,
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
pub(super) struct EpochCounter {
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
    pub(super) fn epoch_at(&self, step: i64) -> u32 {
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
pub(super) enum Axis {
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
pub(super) struct Survey {
    pub(super) series: IndexMap<String, SeriesSurvey>,
    pub(super) counter: EpochCounter,
    /// Distinct steps of all series, while no epoch counter has been seen.
    pub(super) steps: Vec<i64>,
}

impl Survey {
    pub(super) fn file(&mut self, file: &mut EventFile, warnings: &mut Vec<String>) -> Result<()> {
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
    pub(super) fn plan(&mut self, warnings: &mut Vec<String>) -> Vec<Axis> {
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
pub(super) fn epoch_of_index(index: i64) -> u32 {
    u32::try_from(index.saturating_add(1).max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use crate::metrics::Canonical;
    use crate::metrics::tensorboard::testing::*;
    use crate::metrics::testing::values;

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
}
