//! Reads PyTorch Lightning's `CSVLogger` `metrics.csv`: columns sorted alphabetically,
//! `step` (the global step) always, `epoch` counted from 0, one row per log call with the
//! train-step, validation and train-epoch rows apart and empty cells elsewhere. Each
//! non-empty cell is pushed at its row's epoch under its column name; step-level values
//! (`train_loss_step`) of one epoch are averaged by the builder, and `MetricsBuilder::
//! finish` prefers the `_epoch` columns. A row without an epoch cell belongs to the last
//! epoch seen. Steps per epoch come from the global step at the ends of finished epochs.
//! A row with a `test_*` value is `trainer.test()`'s, not an epoch's, and is left out; an
//! epoch that goes back starts another run (`RunCounter`).

use std::path::Path;

use super::keras_csv::{Columns, at_record, cell_value, read_rows};
use super::{Count, MetricsBuilder, RunCounter};
use crate::error::Result;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut epochs = EpochSteps::default();
    let mut last_epoch: Option<u32> = None;
    let mut runs = RunCounter::default();
    read_rows(path, builder, |record, cols, builder| {
        let counter = |index: Option<usize>, name: &str| -> Result<Option<u64>> {
            let Some(cell) = index.and_then(|i| record.get(i)) else {
                return Ok(None);
            };
            match cell_value(path, record, name, cell)? {
                None => Ok(None),
                Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => Ok(Some(v as u64)),
                Some(_) => Err(at_record(
                    path,
                    record.position(),
                    format!(
                        "column \"{name}\": {:?} is not a count",
                        String::from_utf8_lossy(cell)
                    ),
                )),
            }
        };
        let logged = counter(cols.epoch, "epoch")?
            // Lightning counts epochs from 0.
            .map(|e| u32::try_from(e).unwrap_or(u32::MAX - 1) + 1);
        let step = counter(cols.step, "step")?;
        if is_test_row(record, cols) {
            return Ok(None);
        }
        let epoch = match logged {
            // Rows of one epoch share it; a smaller one is another run logged into the
            // same file (a `fit` repeated with the same logger version) or a resume.
            Some(e) => match runs.see(f64::from(e), false, builder) {
                Count::Replays => return Ok(None),
                Count::Restarts => {
                    epochs = EpochSteps::default();
                    e
                }
                Count::Goes => e,
            },
            None => last_epoch.unwrap_or(1),
        };
        if let Some(step) = step {
            epochs.observe(epoch, step);
        }
        last_epoch = Some(epoch);
        Ok(Some(epoch))
    })?;
    if let Some(steps) = epochs.steps_per_epoch {
        builder.steps_per_epoch = Some(steps);
    }
    Ok(())
}

/// A row `trainer.test()` logged after fitting (`test_loss`, with whatever else the test
/// step logs, such as a `Final F1 Score`): one measurement of the finished model, at the
/// epoch after the last one, not an epoch of training. Its values are left out.
fn is_test_row(record: &csv::ByteRecord, cols: &Columns) -> bool {
    cols.tests.iter().any(|&i| {
        record
            .get(i)
            .is_some_and(|c| !c.iter().all(u8::is_ascii_whitespace))
    })
}

/// Steps per epoch from Lightning's global step. Rows of epoch k (1-based) end at global
/// step k·S − 1 (the last batch's 0-based step), so a finished first epoch gives S as its
/// last step + 1, and two consecutive finished epochs give S as the difference of their
/// last steps (which also holds when the log starts mid-run).
#[derive(Debug, Default)]
struct EpochSteps {
    current: Option<(u32, u64)>,
    previous_end: Option<(u32, u64)>,
    steps_per_epoch: Option<u64>,
}

impl EpochSteps {
    fn observe(&mut self, epoch: u32, step: u64) {
        match &mut self.current {
            Some((e, last)) if *e == epoch => *last = (*last).max(step),
            _ => {
                if let Some((done, last)) = self.current
                    && done.checked_add(1) == Some(epoch)
                {
                    let estimate = match self.previous_end {
                        Some((before, before_last)) if before.checked_add(1) == Some(done) => {
                            last.checked_sub(before_last)
                        }
                        _ if done == 1 => Some(last + 1),
                        _ => None,
                    };
                    if let Some(s) = estimate.filter(|s| *s > 0) {
                        self.steps_per_epoch = Some(s);
                    }
                    self.previous_end = Some((done, last));
                } else {
                    self.previous_end = None;
                }
                self.current = Some((epoch, step));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::testing::{ScratchFile, example, values};
    use crate::metrics::{Canonical, Format, load_metrics};

    const SCRATCH: ScratchFile = ScratchFile {
        name: "metrics.csv",
        format: Format::LightningCsv,
    };

    #[test]
    fn reads_the_example_preferring_epoch_means() {
        let m = load_metrics(
            &example("configs/examples/formats/lightning/version_0/metrics.csv"),
            None,
        )
        .unwrap();
        assert_eq!(m.format, Format::LightningCsv);
        assert_eq!(m.steps_per_epoch, Some(188));
        let loss = m.get(Canonical::Loss).unwrap();
        assert_eq!(loss.original, "train_loss_epoch");
        assert_eq!(loss.len(), 6);
        assert_eq!(loss.first().unwrap().value, 1.2104012966156006);
        assert_eq!(loss.last().unwrap().epoch, 6);
        let val = values(&m, Canonical::ValLoss);
        assert_eq!(val.len(), 6);
        assert_eq!(val[0], (1, 0.8830519914627075));
        assert_eq!(m.get(Canonical::ValAccuracy).unwrap().original, "val_acc");
        assert_eq!(
            m.get(Canonical::Accuracy).unwrap().original,
            "train_acc_epoch"
        );
        // the step-level column is kept too, one averaged value per epoch
        let steps = m
            .series
            .iter()
            .find(|s| s.original == "train_loss_step")
            .unwrap();
        assert_eq!(steps.len(), 6);
    }

    #[test]
    fn step_rows_average_into_their_epoch_and_rows_without_epoch_stay_in_it() {
        let m = SCRATCH.load(
            "epoch,lr-Adam,step,train_loss_step,val_loss\n\
             0,,1,1.0,\n0,,3,3.0,\n0,,3,,2.5\n,0.01,3,,\n1,,5,nan,\n1,,7,,1.5\n",
        );
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss[0], (1, 2.0));
        assert!(loss[1].1.is_nan());
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 2.5), (2, 1.5)]);
        assert_eq!(values(&m, Canonical::Lr), vec![(1, 0.01)]);
        assert_eq!(m.steps_per_epoch, Some(4));
        assert_eq!(m.rows, 6);
    }

    #[test]
    fn a_bad_cell_names_line_and_column() {
        let e = SCRATCH
            .error("epoch,step,val_loss\n0,10,0.5\n1,x,0.4\n")
            .to_string();
        assert!(
            e.ends_with("metrics.csv:3: column \"step\": \"x\" is not a number"),
            "{e}"
        );
        let e = SCRATCH
            .error("epoch,step,val_loss\n0,10,0.5\n1,20,abc\n")
            .to_string();
        assert!(
            e.ends_with("metrics.csv:3: column \"val_loss\": \"abc\" is not a number"),
            "{e}"
        );
        let e = SCRATCH.error("epoch,step,val_loss\n").to_string();
        assert!(e.contains("no metric values found"), "{e}");
    }

    #[test]
    fn reads_train_and_val_rows_apart_and_leaves_the_test_row_out() {
        // As version_18 of the LSTM tagger: a column named with spaces, train and val rows
        // apart, and a last row from trainer.test() at the epoch after the last one.
        let text = "Final F1 Score,epoch,step,test_loss,train_loss,val_loss\n\
             ,0,749,,,0.155\n,0,749,,0.455,\n,1,1499,,,0.114\n,1,1499,,0.116,\n\
             0.985,2,1500,0.030,,\n";
        assert_eq!(
            crate::metrics::detect_from("metrics.csv", text.as_bytes()),
            Some(Format::LightningCsv)
        );
        let m = SCRATCH.load(text);
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 0.155), (2, 0.114)]);
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.455), (2, 0.116)]);
        assert_eq!(m.last_epoch(), Some(2));
        assert_eq!(m.series.len(), 2, "{:?}", m.series);
        assert_eq!(m.rows, 4);
        assert_eq!(m.steps_per_epoch, Some(750));
    }

    #[test]
    fn a_second_fit_in_one_file_is_a_run() {
        let m = SCRATCH.load(
            "epoch,step,train_loss,val_loss\n0,9,1.0,\n0,9,,1.1\n1,19,0.8,\n1,19,,0.9\n\
             0,9,2.0,\n0,9,,2.1\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 2.0)]);
        let p = m.phases.as_ref().unwrap();
        assert_eq!(
            (p.count, p.latest, p.earlier.clone()),
            (2, (1, 1), vec![(1, 2)])
        );
        assert!(
            m.warnings[0].starts_with("1 earlier run in this file"),
            "{:?}",
            m.warnings
        );
    }
}
