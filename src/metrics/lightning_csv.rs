//! Reads PyTorch Lightning's `CSVLogger` `metrics.csv`: columns sorted alphabetically,
//! `step` (the global step) always, `epoch` counted from 0, one row per log call with the
//! train-step, validation and train-epoch rows apart and empty cells elsewhere. Each
//! non-empty cell is pushed at its row's epoch under its column name; step-level values
//! (`train_loss_step`) of one epoch are averaged by the builder, and `MetricsBuilder::
//! finish` prefers the `_epoch` columns. A row without an epoch cell belongs to the last
//! epoch seen. Steps per epoch come from the global step at the ends of finished epochs.

use std::path::Path;

use super::MetricsBuilder;
use super::keras_csv::{at_record, cell_value, read_rows};
use crate::error::Result;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut epochs = EpochSteps::default();
    let mut last_epoch = 1u32;
    read_rows(path, builder, |record, cols| {
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
        let epoch = match counter(cols.epoch, "epoch")? {
            // Lightning counts epochs from 0.
            Some(e) => u32::try_from(e).unwrap_or(u32::MAX - 1) + 1,
            None => last_epoch,
        };
        if let Some(step) = counter(cols.step, "step")? {
            epochs.observe(epoch, step);
        }
        last_epoch = epoch;
        Ok(epoch)
    })?;
    if let Some(steps) = epochs.steps_per_epoch {
        builder.steps_per_epoch = Some(steps);
    }
    Ok(())
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
}
