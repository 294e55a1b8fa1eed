//! Bounded storage for one metric. A run can log millions of rows; detectors need only
//! per-epoch values, the first and best epochs, and a recent window, and the chart needs
//! a downsampled overview. So memory is fixed per series whatever the file's length:
//! `RECENT_CAPACITY` epochs verbatim plus at most `OVERVIEW_CAPACITY` overview points.

use std::collections::VecDeque;

use serde::Serialize;

/// Epochs kept verbatim: detector windows are at most 20 epochs, the report shows 10.
pub const RECENT_CAPACITY: usize = 64;
/// Points in the downsampled overview the chart draws.
pub const OVERVIEW_CAPACITY: usize = 256;

/// One epoch's value. Epochs are 1-based everywhere (the first epoch is epoch 1), whatever
/// the source counted from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub epoch: u32,
    pub value: f64,
}

/// Mean of the values logged within one epoch; non-finite values propagate (a NaN step
/// makes the epoch NaN), because they are the evidence of divergence.
#[derive(Debug, Clone, Copy)]
struct Accumulator {
    epoch: u32,
    sum: f64,
    n: u32,
    /// The largest value within the epoch and its place (0-based) among the epoch's
    /// values: a step-level spike the epoch mean hides.
    max: f64,
    max_at: u32,
    /// The values logged just before and just after the maximum (NaN where there is none
    /// yet): whether the maximum stands alone, a spike, or tops a hump of several steps.
    max_before: f64,
    max_after: f64,
    last: f64,
}

impl Accumulator {
    fn start(epoch: u32, value: f64) -> Self {
        Accumulator {
            epoch,
            sum: value,
            n: 1,
            max: value,
            max_at: 0,
            max_before: f64::NAN,
            max_after: f64::NAN,
            last: value,
        }
    }
}

/// The largest of the values logged within one epoch, beside the mean of the others:
/// what a step-level log (HF `logging_steps`, Lightning `log_every_n_steps`) says that
/// the epoch mean hides. Kept for the recent window, for epochs with at least two values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Peak {
    pub epoch: u32,
    pub max: f64,
    /// Place of the maximum among the epoch's values, 0-based.
    pub index: u32,
    /// Values logged within the epoch.
    pub values: u32,
    /// Mean of the epoch's other values.
    pub rest_mean: f64,
    /// The values logged just before and after the maximum within the epoch, where there
    /// are any.
    pub before: Option<f64>,
    pub after: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Series {
    /// Canonical name (`loss`, `val_loss` …) when the metric maps to one, else `original`.
    pub name: String,
    /// The name as the file spells it.
    pub original: String,
    epochs: u64,
    first: Option<Point>,
    last: Option<Point>,
    min: Option<Point>,
    max: Option<Point>,
    first_nonfinite: Option<Point>,
    nonfinite_epochs: u64,
    /// The first value logged, before any averaging: where a step-level log started
    /// within its first epoch.
    first_logged: Option<f64>,
    recent: VecDeque<Point>,
    peaks: VecDeque<Peak>,
    overview: Overview,
    pending: Option<Accumulator>,
}

impl Series {
    pub fn new(original: &str) -> Self {
        Series {
            name: original.to_string(),
            original: original.to_string(),
            epochs: 0,
            first: None,
            last: None,
            min: None,
            max: None,
            first_nonfinite: None,
            nonfinite_epochs: 0,
            first_logged: None,
            recent: VecDeque::with_capacity(RECENT_CAPACITY),
            peaks: VecDeque::new(),
            overview: Overview::default(),
            pending: None,
        }
    }

    /// Adds one logged value. Values for the same epoch in a row are averaged (step-level
    /// logs); a different epoch closes the one before.
    pub fn push(&mut self, epoch: u32, value: f64) {
        match &mut self.pending {
            Some(acc) if acc.epoch == epoch => {
                acc.sum += value;
                if acc.max_at + 1 == acc.n {
                    acc.max_after = value;
                }
                if value > acc.max {
                    acc.max = value;
                    acc.max_at = acc.n;
                    acc.max_before = acc.last;
                    acc.max_after = f64::NAN;
                }
                acc.last = value;
                acc.n += 1;
            }
            _ => {
                self.flush();
                self.first_logged.get_or_insert(value);
                self.pending = Some(Accumulator::start(epoch, value));
            }
        }
    }

    /// Closes the epoch being accumulated. Called by the builder when the file ends.
    pub fn flush(&mut self) {
        let Some(acc) = self.pending.take() else {
            return;
        };
        let point = Point {
            epoch: acc.epoch,
            value: acc.sum / f64::from(acc.n),
        };
        self.epochs += 1;
        self.first.get_or_insert(point);
        self.last = Some(point);
        if point.value.is_finite() {
            if self.min.is_none_or(|m| point.value < m.value) {
                self.min = Some(point);
            }
            if self.max.is_none_or(|m| point.value > m.value) {
                self.max = Some(point);
            }
        } else {
            self.nonfinite_epochs += 1;
            self.first_nonfinite.get_or_insert(point);
        }
        if self.recent.len() == RECENT_CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back(point);
        if acc.n >= 2 && acc.max.is_finite() {
            if self.peaks.len() == RECENT_CAPACITY {
                self.peaks.pop_front();
            }
            self.peaks.push_back(Peak {
                epoch: acc.epoch,
                max: acc.max,
                index: acc.max_at,
                values: acc.n,
                rest_mean: (acc.sum - acc.max) / f64::from(acc.n - 1),
                before: Some(acc.max_before).filter(|v| !v.is_nan()),
                after: Some(acc.max_after).filter(|v| !v.is_nan()),
            });
        }
        self.overview.push(point);
    }

    /// Every value multiplied by `factor` (> 0, so the order of values and the epochs of the
    /// minimum and maximum stay): a percentage read as a fraction. Call after `flush`.
    pub(crate) fn scale(&mut self, factor: f64) {
        debug_assert!(factor > 0.0 && self.pending.is_none());
        let scale = |p: &mut Point| p.value *= factor;
        for p in [
            &mut self.first,
            &mut self.last,
            &mut self.min,
            &mut self.max,
            &mut self.first_nonfinite,
        ]
        .into_iter()
        .flatten()
        {
            scale(p);
        }
        if let Some(v) = &mut self.first_logged {
            *v *= factor;
        }
        self.recent.iter_mut().for_each(scale);
        self.overview.points.iter_mut().for_each(scale);
        for p in &mut self.peaks {
            p.max *= factor;
            p.rest_mean *= factor;
            for v in [&mut p.before, &mut p.after].into_iter().flatten() {
                *v *= factor;
            }
        }
        if let Some(b) = &mut self.overview.bucket {
            b.sum *= factor;
        }
    }

    /// Number of epochs with a value.
    pub fn len(&self) -> usize {
        self.epochs as usize
    }

    pub fn is_empty(&self) -> bool {
        self.epochs == 0
    }

    pub fn first(&self) -> Option<Point> {
        self.first
    }

    pub fn last(&self) -> Option<Point> {
        self.last
    }

    /// Lowest finite value and its epoch (best for a loss).
    pub fn min(&self) -> Option<Point> {
        self.min
    }

    /// Highest finite value and its epoch (best for an accuracy).
    pub fn max(&self) -> Option<Point> {
        self.max
    }

    /// The first value logged, before its epoch's values were averaged (the same as
    /// `first` for a log of one value per epoch).
    pub fn first_logged(&self) -> Option<f64> {
        self.first_logged
    }

    pub fn first_nonfinite(&self) -> Option<Point> {
        self.first_nonfinite
    }

    pub fn nonfinite_epochs(&self) -> u64 {
        self.nonfinite_epochs
    }

    /// The last `n` epochs (fewer if the run is shorter or `n > RECENT_CAPACITY`), oldest
    /// first.
    pub fn tail(&self, n: usize) -> Vec<Point> {
        let skip = self.recent.len().saturating_sub(n);
        self.recent.iter().skip(skip).copied().collect()
    }

    /// The step-level peaks of the epochs in the recent window that logged several values,
    /// oldest first.
    pub fn peaks(&self) -> impl Iterator<Item = &Peak> {
        self.peaks.iter()
    }

    /// Value at a given epoch, if it is still in the recent window.
    pub fn at(&self, epoch: u32) -> Option<f64> {
        self.recent
            .iter()
            .rev()
            .find(|p| p.epoch == epoch)
            .map(|p| p.value)
    }

    /// The whole run, downsampled to at most `OVERVIEW_CAPACITY` points plus the recent
    /// window, for charts.
    pub fn overview(&self) -> Vec<Point> {
        let mut points = self.overview.points();
        let cut = self.recent.front().map_or(u32::MAX, |p| p.epoch);
        points.retain(|p| p.epoch < cut);
        points.extend(self.recent.iter().copied());
        points
    }
}

/// Downsampling by halving: when full, adjacent points merge into their mean and each new
/// point covers twice as many epochs as before.
#[derive(Debug, Clone, Default)]
struct Overview {
    points: Vec<Point>,
    stride: u32,
    bucket: Option<Accumulator>,
}

impl Overview {
    fn push(&mut self, point: Point) {
        if self.stride == 0 {
            self.stride = 1;
        }
        let acc = self.bucket.get_or_insert(Accumulator {
            n: 0,
            sum: 0.0,
            ..Accumulator::start(point.epoch, point.value)
        });
        acc.sum += point.value;
        acc.n += 1;
        acc.epoch = point.epoch;
        if acc.n >= self.stride {
            let done = Point {
                epoch: acc.epoch,
                value: acc.sum / f64::from(acc.n),
            };
            self.bucket = None;
            self.points.push(done);
            if self.points.len() >= OVERVIEW_CAPACITY {
                self.points = self
                    .points
                    .chunks(2)
                    .map(|pair| Point {
                        epoch: pair[pair.len() - 1].epoch,
                        value: pair.iter().map(|p| p.value).sum::<f64>() / pair.len() as f64,
                    })
                    .collect();
                self.stride *= 2;
            }
        }
    }

    fn points(&self) -> Vec<Point> {
        let mut out = self.points.clone();
        if let Some(acc) = self.bucket {
            out.push(Point {
                epoch: acc.epoch,
                value: acc.sum / f64::from(acc.n),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_steps_within_an_epoch_and_keeps_nan() {
        let mut s = Series::new("loss");
        for (e, v) in [(1, 1.0), (1, 3.0), (2, 0.5), (3, f64::NAN), (3, 1.0)] {
            s.push(e, v);
        }
        s.flush();
        let tail = s.tail(10);
        assert_eq!(tail.len(), 3);
        assert_eq!(
            tail[0],
            Point {
                epoch: 1,
                value: 2.0
            }
        );
        assert!(tail[2].value.is_nan());
        assert_eq!(s.min().unwrap().epoch, 2);
        assert_eq!(s.first_nonfinite().unwrap().epoch, 3);
    }

    #[test]
    fn a_step_peak_keeps_the_values_beside_it() {
        let mut s = Series::new("grad_norm");
        for (e, v) in [
            (1, 1.0),
            (1, 2.0),
            (1, 9.0),
            (1, 3.0),
            (1, 1.0),
            (2, 5.0),
            (2, 7.0),
        ] {
            s.push(e, v);
        }
        s.flush();
        let peaks: Vec<Peak> = s.peaks().copied().collect();
        assert_eq!((peaks[0].index, peaks[0].max), (2, 9.0));
        assert_eq!((peaks[0].before, peaks[0].after), (Some(2.0), Some(3.0)));
        assert_eq!(peaks[0].rest_mean, 7.0 / 4.0);
        // The last value of its epoch has nothing after it.
        assert_eq!((peaks[1].before, peaks[1].after), (Some(5.0), None));
    }

    #[test]
    fn memory_is_bounded_however_long_the_run() {
        let mut s = Series::new("loss");
        for e in 1..=1_000_000u32 {
            s.push(e, 1.0 / f64::from(e));
        }
        s.flush();
        assert_eq!(s.len(), 1_000_000);
        assert_eq!(s.tail(1000).len(), RECENT_CAPACITY);
        let overview = s.overview();
        assert!(overview.len() <= OVERVIEW_CAPACITY + RECENT_CAPACITY);
        assert_eq!(overview.last().unwrap().epoch, 1_000_000);
        assert!(overview.windows(2).all(|w| w[0].epoch < w[1].epoch));
        assert_eq!(s.first().unwrap().value, 1.0);
    }
}
