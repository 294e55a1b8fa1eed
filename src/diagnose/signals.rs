//! Logged-signal checks: what single series say about a run beside its loss trend.
//! - `degenerate_loss`: a training loss of exactly 0.0 for whole epochs, or a validation
//!   loss near 0 within the first epoch (degenerate data, leakage, a trivial task);
//! - `accuracy_pinned`: an accuracy at one exact value for many epochs (the model predicts
//!   one class: the value is that class's share);
//! - `metric_out_of_range`: a fraction (accuracy, F1 …) above 1 or below 0, a loss that
//!   cannot be negative far below 0;
//! - `warmup_unfinished`: the learning rate still rising at the end of the log;
//! - `grad_norm_spike` / `grad_norm_rising`: the gradient norm jumping far above its
//!   running median, or climbing over the run.
//!
//! They read per-epoch values (`Series` keeps the epoch means), so a spike inside one
//! epoch shows only as far as it lifts that epoch's mean.

use super::robust::{accuracy_tolerance, sample_count};
use super::trend::CONVERGED_ACCURACY;
use super::{latest_run, series};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::series::{Peak, RECENT_CAPACITY};
use crate::metrics::{Canonical, Format, Point, Series, names};
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity};

/// Consecutive epochs of a training loss at exactly 0.0 that make it degenerate. An epoch
/// value is the mean of the epoch's logged steps, so one epoch at 0.0 already means every
/// step was 0.0; two rule out a one-off (trainproof flags "losses of exactly 0.0 for many
/// steps"; derived).
pub const ZERO_LOSS_MIN_EPOCHS: usize = 2;
/// A validation loss at or below this within the first epoch is degenerate: a real task's
/// held-out cross-entropy does not reach 1e-4 after one pass (the corpus' hate-speech run:
/// 2.1e-5 at epoch 1, leaked labels); a healthy run that ends near 2e-3 is far above it.
/// Derived; no tool publishes it.
pub const DEGENERATE_VAL_LOSS: f64 = 1e-4;
/// …when the training loss started at least this many times higher: a regression on tiny
/// targets has tiny losses from the start, which is scale, not degeneracy (derived).
pub const DEGENERATE_DROP_RATIO: f64 = 100.0;

/// Consecutive epochs at one exact accuracy that make it pinned: a third of a 30-epoch
/// run, and more than a plateau's patience (DETECTORS.md: Keras ReduceLROnPlateau 10,
/// Lightning 3); a real model's accuracy on thousands of examples moves in the last digit
/// every epoch even on a plateau (derived).
pub const PINNED_MIN_EPOCHS: usize = 8;
/// …or this share of all epochs at that value, for a run of at least
/// `PINNED_SHARE_MIN_EPOCHS`: the corpus' grapevine run is 0.15 in 9 of 10 epochs, broken
/// once (derived).
pub const PINNED_SHARE: f64 = 0.8;
pub const PINNED_SHARE_MIN_EPOCHS: usize = 10;
/// Two accuracies closer than this are the same value (float noise of a mean written to
/// text; a real change on n examples is at least 1/n).
const SAME_VALUE: f64 = 1e-9;
/// A pinned accuracy is a model that never learned: the value is at most this far above
/// the series' first value, and nothing after the stretch rose more than this above it.
/// A converged model on a small validation set also repeats one value (0.9359 for 10
/// epochs in the corpus' healthy dlgn run), but it climbed there first. The tolerance is
/// the chance detector's accuracy tolerance (0.05, DETECTORS.md's chance_level row).
const PINNED_LEARNED_TOLERANCE: f64 = 0.05;
/// Relative range ((max − min) / mean) the loss must cover over the pinned stretch: a
/// model predicting one class has a loss that still moves while the argmax does not (the
/// corpus' dlgn run: train loss 0.667–0.716 beside train accuracy 0.5231 for 20 epochs).
/// A loss frozen too (a learning rate decayed to nothing, or far too low: 0.93987 →
/// 0.93983 on Keras' plateau example) means the weights stopped moving, which the plateau
/// and learning-rate findings say (derived).
pub const PINNED_LOSS_MOVES: f64 = 0.01;

/// A loss below this is out of range unless its name allows negative values: the losses
/// negative by construction without such a name (Keras' cosine similarity, a negated Dice
/// or IoU) are bounded by −1; a cross-entropy or MSE is never negative (AUTOTRAINER flags
/// any negative loss; the bound is ours).
pub const NEGATIVE_LOSS_FLOOR: f64 = -1.0;
/// A fraction-named metric above this is a percentage (only when the whole series is).
pub const PERCENT_CEILING: f64 = 100.0;

/// Logged learning rates that must rise one after the other, up to the last, for warmup
/// to be unfinished: four points (three rises) separate a schedule still ramping from one
/// noisy step (derived).
pub const WARMUP_RISING_POINTS: usize = 4;
/// …by at least this much in total over those points, relative (derived: linear warmup
/// over 4 of its last points rises far more).
pub const WARMUP_MIN_RISE: f64 = 0.1;

/// A gradient norm this many times the median of the values before it is a spike
/// (training-doctor flags a fixed norm of 10; a relative 10× is the same order for a
/// norm near 1 and scale-free: DETECTORS.md prefers relative spikes).
pub const GRAD_SPIKE_FACTOR: f64 = 10.0;
/// Values at the start of a run where large norms are ordinary (random init, warmup):
/// not judged, and not used as the median a later value is measured against (UMLAUT's
/// grace period ignores epochs < 3; with per-epoch values the first epoch is the start).
pub const GRAD_SPIKE_GRACE: usize = 1;
/// Values a running median needs before it is a baseline.
pub const GRAD_SPIKE_MIN_HISTORY: usize = 3;
/// Values an epoch must have logged before its largest is judged against the others: a
/// step-level log (derived: fewer leave the mean of the others to one or two values).
pub const GRAD_STEP_SPIKE_MIN_VALUES: u32 = 8;
/// The share of the first epoch's values where a large norm is ordinary (random init,
/// warmup): the step-level form of `GRAD_SPIKE_GRACE` (derived).
pub const GRAD_STEP_SPIKE_GRACE_SHARE: f64 = 0.1;
/// How far a step-level maximum must stand above the lower of the values logged beside it:
/// a spike is a step or two above its neighbours, while a hump of many steps (a start-up
/// transient rising and decaying over a tenth of an epoch or more) has neighbours close to
/// its top. Half the spike factor, because a neighbour of a true spike is the baseline
/// with its noise, up to about twice the epoch's mean (derived).
pub const GRAD_STEP_SPIKE_LOCAL_FACTOR: f64 = GRAD_SPIKE_FACTOR / 2.0;
/// Fitted rise of the gradient norm over the run (Theil–Sen on log values) that makes it
/// rising: the brief's "last quarter ≥ 3× the first" in a robust form (derived).
pub const GRAD_RISING_FACTOR: f64 = 3.0;
/// Values needed to fit a trend: twice `MIN_EPOCHS`, so a quarter holds at least one.
pub const GRAD_RISING_MIN_POINTS: usize = 2 * super::MIN_EPOCHS;

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    degenerate_loss(run, lang, out);
    accuracy_pinned(run, lang, out);
    metric_out_of_range(run, lang, out);
    warmup_unfinished(run, lang, out);
    grad_norm(run, lang, out);
}

/// Every epoch the series still holds, of its latest run.
fn recent(series: &Series) -> Vec<Point> {
    latest_run(&series.tail(RECENT_CAPACITY)).to_vec()
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

// ---------------------------------------------------------------- degenerate_loss

fn degenerate_loss(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let train = series(run, Canonical::Loss);
    // A console log rounds to 4 decimals: `loss: 0.0000` is not an exact 0.
    let exact = run.metrics.format != Format::KerasLog;
    if let Some(s) = train.filter(|_| exact)
        && let Some((first, last, epochs)) = longest_zero_stretch(&recent(s))
        && epochs >= ZERO_LOSS_MIN_EPOCHS
    {
        out.findings.push(Finding {
            id: FindingId::DegenerateLoss,
            severity: Severity::Warning,
            summary: say!(
                lang,
                "The training loss `{}` is exactly 0 for {epochs} epochs in a row (epochs {first}–{last}): every logged step scored a perfect 0, which a real task does not; the data is degenerate (constant labels, labels leaked into the inputs) or the loss is not computed.",
                "训练损失 `{}` 连续 {epochs} 轮（第 {first}–{last} 轮）恰好为 0：每个记录的步都是 0，真实任务不会如此；数据退化（标签恒定、标签泄漏进输入）或损失没有被计算。",
                s.original
            ),
            evidence: evidence![
                "series" => s.name.as_str(),
                "original" => s.original.as_str(),
                "reason" => "zero_loss",
                "value" => 0.0,
                "first_epoch" => first,
                "last_epoch" => last,
                "epochs" => epochs,
            ],
        });
        return;
    }
    let Some(val) = series(run, Canonical::ValLoss) else {
        return;
    };
    let Some(p) = val.first().filter(|p| {
        p.epoch == 1 && p.value.is_finite() && (0.0..=DEGENERATE_VAL_LOSS).contains(&p.value)
    }) else {
        return;
    };
    // The training loss's first value, else the validation loss's own start is all there is.
    let start = train.and_then(Series::first).map(|t| t.value);
    if !start.is_some_and(|t| t >= DEGENERATE_DROP_RATIO * p.value.max(f64::MIN_POSITIVE)) {
        return;
    }
    let start = start.unwrap_or(f64::NAN);
    out.findings.push(Finding {
        id: FindingId::DegenerateLoss,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "The validation loss `{}` is {} already in the first epoch (the training loss started at {}): no real held-out set is learned that well in one pass; the validation data overlaps the training data, or the labels are trivial.",
            "验证损失 `{}` 在第一轮就已是 {}（训练损失起始为 {}）：真实的留出集不可能一轮就学得这么好；验证数据与训练数据重叠，或标签过于简单。",
            val.original,
            num(p.value),
            num(start)
        ),
        evidence: evidence![
            "series" => val.name.as_str(),
            "original" => val.original.as_str(),
            "reason" => "near_zero_validation",
            "value" => p.value,
            "epoch" => p.epoch,
            "threshold" => DEGENERATE_VAL_LOSS,
            "train_loss_first" => start,
        ],
    });
}

/// The longest stretch of consecutive epochs at exactly 0.0: (first epoch, last, count).
fn longest_zero_stretch(points: &[Point]) -> Option<(u32, u32, usize)> {
    let mut best: Option<(u32, u32, usize)> = None;
    let mut current: Option<(u32, u32, usize)> = None;
    for p in points {
        current = if p.value == 0.0 {
            Some(current.map_or((p.epoch, p.epoch, 1), |(f, _, n)| (f, p.epoch, n + 1)))
        } else {
            None
        };
        if let Some(c) = current
            && best.is_none_or(|b| c.2 > b.2)
        {
            best = Some(c);
        }
    }
    best
}

// ---------------------------------------------------------------- accuracy_pinned

/// One accuracy held at one value: the stretch that makes it pinned.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pinned {
    value: f64,
    /// Epochs at the value, all of them (not only the longest stretch).
    epochs_at_value: usize,
    longest: usize,
    first_epoch: u32,
    last_epoch: u32,
    total: usize,
    /// The longest stretch's first and last epoch.
    stretch: (u32, u32),
    /// The series' first value, when the accuracy climbed from it to the pinned value.
    climbed_from: Option<f64>,
}

fn pinned(points: &[Point]) -> Option<Pinned> {
    let finite: Vec<Point> = points
        .iter()
        .copied()
        .filter(|p| p.value.is_finite())
        .collect();
    // The value of the longest stretch, and where it is.
    let mut best: Option<(usize, usize)> = None; // (start index, length)
    let mut start = 0;
    for i in 1..=finite.len() {
        let same = i < finite.len() && (finite[i].value - finite[start].value).abs() <= SAME_VALUE;
        if !same {
            if best.is_none_or(|(_, n)| i - start > n) {
                best = Some((start, i - start));
            }
            start = i;
        }
    }
    let (s, longest) = best?;
    let value = finite[s].value;
    // Pinned at 0 is a placeholder nobody computed; at 1 a model that fits its data.
    if value <= 0.0 || value >= 1.0 - SAME_VALUE {
        return None;
    }
    let at: Vec<&Point> = finite
        .iter()
        .filter(|p| (p.value - value).abs() <= SAME_VALUE)
        .collect();
    // Learned past it, before or after: a model that got there, or got out. "Out" is
    // beyond the noise of the examples the accuracy is counted over: on 47 validation
    // images, 0.5532 → 0.6383 is four images. "There" is a converged level: a model that
    // climbed to 0.469 and then repeats 15/32 exactly while its loss moves has frozen
    // predictions, not a finished model.
    let start_value = finite[0].value;
    let after_max = finite[s + longest..]
        .iter()
        .map(|p| p.value)
        .fold(f64::NEG_INFINITY, f64::max);
    let examples = sample_count(finite.iter().map(|p| p.value));
    let out_by = accuracy_tolerance(value, examples, PINNED_LEARNED_TOLERANCE);
    let climbed = value > start_value + PINNED_LEARNED_TOLERANCE;
    if (climbed && value >= CONVERGED_ACCURACY) || after_max > value + out_by {
        return None;
    }
    let total = finite.len();
    let share_rule =
        total >= PINNED_SHARE_MIN_EPOCHS && at.len() as f64 >= PINNED_SHARE * total as f64;
    if longest < PINNED_MIN_EPOCHS && !share_rule {
        return None;
    }
    Some(Pinned {
        value,
        epochs_at_value: at.len(),
        longest,
        first_epoch: at.first()?.epoch,
        last_epoch: at.last()?.epoch,
        total,
        stretch: (finite[s].epoch, finite[s + longest - 1].epoch),
        climbed_from: climbed.then_some(start_value),
    })
}

/// The loss of the accuracy's split (else the other split's) moved over the stretch by
/// `PINNED_LOSS_MOVES`; true when no loss is logged, as nothing says otherwise.
fn loss_moves(run: &Run, accuracy: &Series, (from, to): (u32, u32)) -> bool {
    let (own, other) = if names::is_held_out(&accuracy.original) {
        (Canonical::ValLoss, Canonical::Loss)
    } else {
        (Canonical::Loss, Canonical::ValLoss)
    };
    let Some(loss) = series(run, own).or_else(|| series(run, other)) else {
        return true;
    };
    let values: Vec<f64> = recent(loss)
        .iter()
        .filter(|p| (from..=to).contains(&p.epoch) && p.value.is_finite())
        .map(|p| p.value)
        .collect();
    if values.len() < 2 {
        return true;
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    mean.abs() > 0.0 && (hi - lo) / mean.abs() >= PINNED_LOSS_MOVES
}

fn accuracy_pinned(run: &Run, lang: Lang, out: &mut Diagnosis) {
    // Canonical accuracies first, then any other accuracy-named series (`test_acc`).
    let candidates = run
        .metrics
        .series
        .iter()
        .filter(|s| names::is_accuracy_like(&s.original) || s.name.contains("accuracy"));
    let mut found: Vec<(&Series, Pinned)> = candidates
        .filter_map(|s| Some((s, pinned(&recent(s))?)))
        .filter(|(s, p)| loss_moves(run, s, p.stretch))
        .collect();
    // One finding: the longest pinned series speaks for the rest.
    found.sort_by_key(|(_, p)| std::cmp::Reverse(p.longest));
    let Some((s, p)) = found.first().copied() else {
        return;
    };
    // A run that was sane and then diverged sits at one accuracy because it diverged
    // (a saturated softmax predicts one class): the divergence finding says it.
    if let Some(d) = out.get(FindingId::Divergence)
        && !d.evidence["last_sane_epoch"].is_null()
        && d.evidence["epoch"]
            .as_u64()
            .is_some_and(|e| e <= u64::from(p.first_epoch))
    {
        return;
    }
    let others: Vec<&str> = found[1..]
        .iter()
        .map(|(s, _)| s.original.as_str())
        .collect();
    let classes = super::chance::known_classes(run).map(|c| c.value);
    let summary = match p.climbed_from {
        None => say!(
            lang,
            "`{}` is exactly {} in {} of {} epochs ({} in a row; epochs {}–{}): an accuracy that does not move in the last digit means the model predicts the same class for (nearly) every example, and {} is that class's share of the data.",
            "`{}` 恰好为 {} 的轮次有 {} 轮（共 {} 轮；连续 {} 轮；第 {}–{} 轮）：准确率连最后一位都不变，说明模型对（几乎）所有样本预测同一类别，{} 即该类别在数据中的占比。",
            s.original,
            num(p.value),
            p.epochs_at_value,
            p.total,
            p.longest,
            p.first_epoch,
            p.last_epoch,
            num(p.value)
        ),
        Some(from) => say!(
            lang,
            "`{}` climbed from {} to exactly {} and stayed there in {} of {} epochs ({} in a row; epochs {}–{}) while the loss kept moving: the predictions froze short of a converged accuracy (below {}); the model makes the same calls every epoch, often one class for most examples.",
            "`{}` 从 {} 升到恰好 {} 后停在那里，共 {} 轮（共 {} 轮；连续 {} 轮；第 {}–{} 轮），而损失仍在变化：预测在达到收敛水平（{}）之前就冻结了，模型每轮给出同样的判断，常常是大多数样本都判为同一类。",
            s.original,
            num(from),
            num(p.value),
            p.epochs_at_value,
            p.total,
            p.longest,
            p.first_epoch,
            p.last_epoch,
            num(CONVERGED_ACCURACY)
        ),
    };
    out.findings.push(Finding {
        id: FindingId::AccuracyPinned,
        severity: Severity::Warning,
        summary,
        evidence: evidence![
            "series" => s.name.as_str(),
            "original" => s.original.as_str(),
            "value" => p.value,
            "epochs_at_value" => p.epochs_at_value,
            "longest_stretch" => p.longest,
            "epochs" => p.total,
            "first_epoch" => p.first_epoch,
            "last_epoch" => p.last_epoch,
            "chance_accuracy" => classes.map(|c| 1.0 / f64::from(c)),
            "climbed_from" => p.climbed_from,
            "also_pinned" => others,
        ],
    });
}

// ---------------------------------------------------------------- metric_out_of_range

/// The first out-of-range value of a series and why it is out of range.
fn out_of_range(series: &Series) -> Option<(Point, &'static str)> {
    let (min, max) = (series.min()?, series.max()?);
    // The run's first epoch, then the recent window: the earliest out-of-range epoch the
    // series still holds.
    let points: Vec<Point> = series
        .first()
        .into_iter()
        .chain(series.tail(RECENT_CAPACITY))
        .collect();
    let first_where = |f: &dyn Fn(f64) -> bool, extreme: Point| {
        points
            .iter()
            .copied()
            .find(|p| p.value.is_finite() && f(p.value))
            .unwrap_or(extreme)
    };
    if names::is_fraction(&series.original) {
        if min.value < 0.0 {
            return Some((first_where(&|v| v < 0.0, min), "negative_fraction"));
        }
        // A whole series above 1 is a percentage; a series that is a fraction somewhere
        // and above 1 elsewhere, or beyond 100, is out of range.
        let percent = min.value > 1.0;
        if max.value > PERCENT_CEILING || (max.value > 1.0 && !percent) {
            let limit = if percent { PERCENT_CEILING } else { 1.0 };
            return Some((first_where(&|v| v > limit, max), "fraction_above_one"));
        }
    } else if names::is_nonnegative_loss(&series.original) && min.value < NEGATIVE_LOSS_FLOOR {
        return Some((
            first_where(&|v| v < NEGATIVE_LOSS_FLOOR, min),
            "negative_loss",
        ));
    }
    None
}

fn metric_out_of_range(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let found: Vec<(&Series, Point, &str)> = run
        .metrics
        .series
        .iter()
        .filter_map(|s| out_of_range(s).map(|(p, why)| (s, p, why)))
        .collect();
    let Some(&(s, p, why)) = found.first() else {
        return;
    };
    let others: Vec<&str> = found[1..]
        .iter()
        .map(|(s, _, _)| s.original.as_str())
        .collect();
    let lowest = s.min().map_or(f64::NAN, |m| m.value);
    let highest = s.max().map_or(f64::NAN, |m| m.value);
    let (severity, summary) = if why == "negative_loss" {
        // A loss far below 0 (past the divergence backstop's magnitude) is not an
        // objective being minimised: the labels are outside the loss's domain (binary
        // cross-entropy on labels beyond {0, 1}), so nothing the run learns means anything:
        // critical. A mildly negative one may be a density model's NLL logged as `loss`
        // (negative on continuous data): a warning.
        let runaway = lowest <= -super::divergence::LOSS_BACKSTOP;
        let (what, value, epoch, low) = (
            super::series_label(s, lang),
            num(p.value),
            p.epoch,
            num(lowest),
        );
        if runaway {
            (
                Severity::Critical,
                say!(
                    lang,
                    "The {what} is {value} at epoch {epoch} and reaches {low}: a cross-entropy or squared error is never negative, so the labels are outside the loss's domain (e.g. binary cross-entropy on labels other than 0/1) and the optimiser is driving it down without bound.",
                    "{what}为 {value}（第 {epoch} 轮），最低达到 {low}：交叉熵或平方误差不可能为负，说明标签超出了损失函数的定义域（例如二元交叉熵的标签不是 0/1），优化器正在把它无限压低。"
                ),
            )
        } else {
            (
                Severity::Warning,
                say!(
                    lang,
                    "The {what} is {value} at epoch {epoch} (lowest {low}): a cross-entropy or squared error is never negative; unless this loss is a likelihood of continuous data, the labels are outside its domain.",
                    "{what}为 {value}（第 {epoch} 轮；最低 {low}）：交叉熵或平方误差不可能为负；除非该损失是连续数据的似然，否则标签超出了其定义域。"
                ),
            )
        }
    } else {
        (
            Severity::Warning,
            say!(
                lang,
                "`{}` is {} at epoch {} (range {}–{}): a fraction must lie between 0 and 1 (or 0 and 100 when the whole series is a percentage); the metric is computed wrongly (summed instead of averaged, wrong averaging, labels mis-encoded), so it cannot be trusted.",
                "`{}` 为 {}（第 {} 轮；范围 {}–{}）：比例应在 0 到 1 之间（整个序列为百分比时在 0 到 100 之间）；该指标计算有误（求和而非平均、平均方式错误、标签编码错误），不可信。",
                s.original,
                num(p.value),
                p.epoch,
                num(lowest),
                num(highest)
            ),
        )
    };
    out.findings.push(Finding {
        id: FindingId::MetricOutOfRange,
        severity,
        summary,
        evidence: evidence![
            "series" => s.name.as_str(),
            "original" => s.original.as_str(),
            "reason" => why,
            "value" => p.value,
            "epoch" => p.epoch,
            "min" => lowest,
            "max" => highest,
            "also_out_of_range" => others,
        ],
    });
}

// ---------------------------------------------------------------- warmup_unfinished

fn warmup_unfinished(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let Some(lr) = series(run, Canonical::Lr) else {
        return;
    };
    let points = recent(lr);
    if points.len() < WARMUP_RISING_POINTS {
        return;
    }
    let last = &points[points.len() - WARMUP_RISING_POINTS..];
    let rising = last.windows(2).all(|w| w[1].value > w[0].value);
    let (from, to) = (last[0], last[last.len() - 1]);
    let rose_enough = from.value > 0.0 && to.value >= (1.0 + WARMUP_MIN_RISE) * from.value;
    if !(rising && rose_enough) {
        return;
    }
    // Where the rise began: every logged rate since is above the one before.
    let start = points
        .windows(2)
        .rposition(|w| w[1].value <= w[0].value)
        .map_or(points[0], |i| points[i + 1]);
    // Finished as planned: the run has reached the epochs (or steps) it was started for.
    let planned = run.facts.planned_epochs.as_ref().map(|p| p.value);
    let ended = planned.is_some_and(|p| to.epoch >= p);
    // Warning when the run ended still warming up: it never trained at its peak rate and
    // never decayed. Info while it runs: mid-warmup is where every warmup run is at first.
    let (severity, tail) = if ended {
        (
            Severity::Warning,
            say!(
                lang,
                "the run ended at its planned epoch {} still warming up: it never trained at its peak rate and never decayed, so the warmup is longer than the run (check warmup steps against total steps)",
                "训练在计划的第 {} 轮结束时仍在预热：从未以峰值学习率训练，也从未衰减，预热比整个训练还长（检查预热步数与总步数）",
                to.epoch
            ),
        )
    } else {
        (
            Severity::Info,
            say!(
                lang,
                "the run is still in its warmup; if the warmup should have ended by now, it is longer than intended",
                "训练仍处于预热阶段；如果预热本应已结束，说明预热比预期更长"
            ),
        )
    };
    out.findings.push(Finding {
        id: FindingId::WarmupUnfinished,
        severity,
        summary: say!(
            lang,
            "The learning rate rose on every logged epoch from {} (epoch {}) to {} (epoch {}), the last: {tail}.",
            "学习率在每个记录的轮次都在上升，从 {}（第 {} 轮）到 {}（第 {} 轮，最后一轮）：{tail}。",
            num(start.value),
            start.epoch,
            num(to.value),
            to.epoch
        ),
        evidence: evidence![
            "series" => lr.name.as_str(),
            "original" => lr.original.as_str(),
            "rising_since_epoch" => start.epoch,
            "first_value" => start.value,
            "last_epoch" => to.epoch,
            "last_value" => to.value,
            "planned_epochs" => planned,
            "ended" => ended,
        ],
    });
}

// ---------------------------------------------------------------- grad_norm

/// The first value at least `GRAD_SPIKE_FACTOR` × the median of the values before it
/// (after the grace period): (index, median before it).
fn grad_spike(values: &[f64]) -> Option<(usize, f64)> {
    for i in GRAD_SPIKE_GRACE + GRAD_SPIKE_MIN_HISTORY..values.len() {
        let mut before: Vec<f64> = values[GRAD_SPIKE_GRACE..i]
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if before.len() < GRAD_SPIKE_MIN_HISTORY {
            continue;
        }
        let m = median(&mut before)?;
        if m > 0.0 && values[i].is_finite() && values[i] >= GRAD_SPIKE_FACTOR * m {
            return Some((i, m));
        }
    }
    None
}

/// The step-level spike: the epoch whose largest logged value is the most times the mean of
/// its other values, when that is at least `GRAD_SPIKE_FACTOR` (outside the first epoch's
/// grace share) and the value stands alone: at least `GRAD_STEP_SPIKE_LOCAL_FACTOR` × the
/// lower of the values logged beside it.
fn grad_step_spike(series: &Series) -> Option<Peak> {
    let first_epoch = series.first()?.epoch;
    let ratio = |p: &Peak| p.max / p.rest_mean;
    series
        .peaks()
        .filter(|p| p.values >= GRAD_STEP_SPIKE_MIN_VALUES && p.rest_mean > 0.0)
        .filter(|p| {
            p.epoch != first_epoch
                || f64::from(p.index) >= GRAD_STEP_SPIKE_GRACE_SHARE * f64::from(p.values)
        })
        .filter(|p| ratio(p) >= GRAD_SPIKE_FACTOR)
        .filter(|p| {
            let beside = [p.before, p.after]
                .into_iter()
                .flatten()
                .filter(|v| v.is_finite())
                .fold(f64::INFINITY, f64::min);
            p.max >= GRAD_STEP_SPIKE_LOCAL_FACTOR * beside
        })
        .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
        .copied()
}

/// The Theil–Sen slope of log values per point: the median of the pairwise slopes, robust
/// to the outliers a gradient norm is full of.
fn theil_sen_log(values: &[f64]) -> Option<f64> {
    let logs: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite() && **v > 0.0)
        .map(|(i, v)| (i, v.ln()))
        .collect();
    let mut slopes = Vec::with_capacity(logs.len() * logs.len() / 2);
    for (a, &(i, x)) in logs.iter().enumerate() {
        for &(j, y) in &logs[a + 1..] {
            slopes.push((y - x) / (j - i) as f64);
        }
    }
    median(&mut slopes)
}

/// The fitted rise over the run (exp of the slope over its span) and the medians of its
/// first and last quarters, when the norm is rising.
fn grad_rising(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.len() < GRAD_RISING_MIN_POINTS {
        return None;
    }
    let slope = theil_sen_log(values)?;
    let rise = (slope * (values.len() - 1) as f64).exp();
    let quarter = values.len().div_ceil(4);
    let first = median(&mut values[..quarter].to_vec())?;
    let last = median(&mut values[values.len() - quarter..].to_vec())?;
    (rise >= GRAD_RISING_FACTOR && last > first).then_some((rise, first, last))
}

fn grad_norm(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let Some(g) = series(run, Canonical::GradNorm) else {
        return;
    };
    let points = recent(g);
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    if let Some((i, median)) = grad_spike(&values) {
        let p = points[i];
        let ratio = p.value / median;
        let latest = values.last().copied().unwrap_or(f64::NAN);
        out.findings.push(Finding {
            id: FindingId::GradNormSpike,
            severity: Severity::Warning,
            summary: say!(
                lang,
                "The gradient norm jumped to {} at epoch {}, {}× the median of the epochs before ({}; now {}): a spike that large is a step the optimiser barely survived; gradient clipping or a lower learning rate keeps the next one from blowing the run up.",
                "梯度范数跃升至 {}（第 {} 轮），是此前各轮中位数的 {} 倍（中位数 {}；当前 {}）：如此大的尖峰意味着优化器险些失控；梯度裁剪或更低的学习率可防止下一次尖峰导致训练发散。",
                num(p.value),
                p.epoch,
                num(ratio),
                num(median),
                num(latest)
            ),
            evidence: evidence![
                "series" => g.name.as_str(),
                "original" => g.original.as_str(),
                "epoch" => p.epoch,
                "value" => p.value,
                "median_before" => median,
                "ratio" => ratio,
                "threshold_ratio" => GRAD_SPIKE_FACTOR,
                "latest" => latest,
            ],
        });
    } else if let Some(p) = grad_step_spike(g) {
        let ratio = p.max / p.rest_mean;
        let others = p.values - 1;
        out.findings.push(Finding {
            id: FindingId::GradNormSpike,
            severity: Severity::Warning,
            summary: say!(
                lang,
                "The gradient norm reached {} within epoch {}, {}× the mean of the epoch's {others} other logged values ({}); the epoch's mean hides it, the steps do not: a spike that large is a step the optimiser barely survived; gradient clipping or a lower learning rate keeps the next one from blowing the run up.",
                "第 {1} 轮内梯度范数一度达到 {0}，是该轮其余 {others} 个记录值均值（{3}）的 {2} 倍；按轮平均看不出，按步看得出：如此大的尖峰意味着优化器险些失控；梯度裁剪或更低的学习率可防止下一次尖峰导致训练发散。",
                num(p.max),
                p.epoch,
                num(ratio),
                num(p.rest_mean)
            ),
            evidence: evidence![
                "series" => g.name.as_str(),
                "original" => g.original.as_str(),
                "epoch" => p.epoch,
                "value" => p.max,
                "level" => "step",
                "values_in_epoch" => p.values,
                "mean_of_others" => p.rest_mean,
                "ratio" => ratio,
                "threshold_ratio" => GRAD_SPIKE_FACTOR,
            ],
        });
    }
    if let Some((rise, first, last)) = grad_rising(&values) {
        let (from, to) = (points[0].epoch, points[points.len() - 1].epoch);
        out.findings.push(Finding {
            id: FindingId::GradNormRising,
            severity: Severity::Warning,
            summary: say!(
                lang,
                "The gradient norm keeps climbing: its median went from {} in the first quarter of epochs {}–{} to {} in the last, a fitted rise of {}× (Theil–Sen on log values); the loss surface is getting sharper under the learning rate, which often comes before a blow-up.",
                "梯度范数持续上升：中位数从前四分之一的 {}（第 {}–{} 轮区间）升至最后四分之一的 {}，拟合上升 {} 倍（对数值的 Theil–Sen 斜率）；在当前学习率下损失面越来越陡，这常常是发散的前兆。",
                num(first),
                from,
                to,
                num(last),
                num(rise)
            ),
            evidence: evidence![
                "series" => g.name.as_str(),
                "original" => g.original.as_str(),
                "first_epoch" => from,
                "last_epoch" => to,
                "first_quarter_median" => first,
                "last_quarter_median" => last,
                "fitted_rise" => rise,
                "threshold_rise" => GRAD_RISING_FACTOR,
            ],
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;

    fn ids(f: Fixture) -> Vec<&'static str> {
        f.check(check)
            .findings
            .iter()
            .map(|f| f.id.as_str())
            .collect()
    }

    fn get(f: Fixture, id: FindingId) -> Option<Finding> {
        f.check(check).get(id).cloned()
    }

    #[test]
    fn a_training_loss_of_exactly_zero_for_epochs_is_degenerate() {
        let f = get(
            Fixture::new().series("loss", &[0.85, 0.01, 0.0, 0.0, 0.0]),
            FindingId::DegenerateLoss,
        )
        .unwrap();
        assert_eq!(f.evidence["first_epoch"], 3);
        assert_eq!(f.evidence["epochs"], 3);
        assert_eq!(f.severity, Severity::Warning);
        // One zero epoch, or tiny but non-zero losses, are not.
        assert!(ids(Fixture::new().series("loss", &[0.85, 0.01, 0.0, 0.002])).is_empty());
        assert!(ids(Fixture::new().series("loss", &[19.2, 0.0025, 0.0023, 0.0023])).is_empty());
    }

    #[test]
    fn a_validation_loss_near_zero_in_the_first_epoch_is_degenerate() {
        let f = get(
            Fixture::new()
                .series("loss", &[0.008])
                .series("eval_loss", &[2.09e-5]),
            FindingId::DegenerateLoss,
        )
        .unwrap();
        assert_eq!(f.evidence["reason"], "near_zero_validation");
        assert_eq!(f.evidence["epoch"], 1);
        // 2e-3 is a well-trained model, not a leak; a tiny regression loss from the start
        // is scale.
        let healthy = Fixture::new()
            .series("loss", &[2.5, 0.01])
            .series("eval_loss", &[0.0536, 0.002]);
        assert!(ids(healthy).is_empty());
        let tiny = Fixture::new()
            .series("loss", &[3e-5, 2e-5])
            .series("val_loss", &[2e-5, 1e-5]);
        assert!(ids(tiny).is_empty());
    }

    #[test]
    fn an_accuracy_at_one_value_for_many_epochs_is_pinned() {
        let mut acc = vec![0.5276; 22];
        acc.extend([0.5327, 0.5226, 0.5276]);
        let f = get(
            Fixture::new().series("val_acc", &acc),
            FindingId::AccuracyPinned,
        )
        .unwrap();
        assert_eq!(f.evidence["value"], 0.5276);
        assert_eq!(f.evidence["longest_stretch"], 22);
        assert_eq!(f.evidence["epochs_at_value"], 23);
        // 9 of 10, broken once: the share rule.
        let grape = [0.15, 0.15, 0.15, 0.29, 0.15, 0.15, 0.15, 0.15, 0.15, 0.15];
        assert!(
            get(
                Fixture::new().series("acc", &grape),
                FindingId::AccuracyPinned
            )
            .is_some()
        );
        // Moving accuracies, a short flat stretch, and a model at 100% are not pinned.
        let moving: Vec<f64> = (0..20).map(|i| 0.6 + 0.01 * f64::from(i)).collect();
        assert!(ids(Fixture::new().series("accuracy", &moving)).is_empty());
        let short = [0.4, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.62];
        assert!(ids(Fixture::new().series("accuracy", &short)).is_empty());
        assert!(ids(Fixture::new().series("accuracy", &[1.0; 12])).is_empty());
        // A model that climbed to its value (a small validation set repeats it), or got
        // out of a stuck start, is not pinned.
        let mut climbed = vec![0.77, 0.85, 0.9];
        climbed.extend([0.9359; 10]);
        assert!(ids(Fixture::new().series("val_acc", &climbed)).is_empty());
        let mut escaped = vec![0.0557; 9];
        escaped.extend([0.1, 0.15, 0.23]);
        assert!(ids(Fixture::new().series("accuracy", &escaped)).is_empty());
        // Accuracy and loss frozen together: the weights stopped moving (a learning rate
        // decayed to nothing), not a model predicting one class.
        let frozen = Fixture::new().series("val_accuracy", &[0.844; 10]).series(
            "val_loss",
            &[
                0.93987, 0.93986, 0.93985, 0.93984, 0.93983, 0.93983, 0.93983, 0.93983, 0.93983,
                0.93983,
            ],
        );
        assert!(ids(frozen).is_empty());
        let one_class = Fixture::new().series("train_acc", &[0.5231; 10]).series(
            "train_loss",
            &[
                0.689, 0.706, 0.716, 0.688, 0.668, 0.689, 0.705, 0.715, 0.688, 0.669,
            ],
        );
        assert_eq!(ids(one_class), ["accuracy_pinned"]);
    }

    #[test]
    fn a_climb_that_freezes_short_of_converged_is_pinned() {
        // tests/real/lightning_mnist_subset_acc_pinned: acc_epoch over 32 examples climbs
        // 4/32 → 11/32, then sits at 15/32 for 8 epochs while the loss falls 17%.
        let mut acc = vec![0.125, 0.34375];
        acc.extend([0.46875; 8]);
        let loss = [2.2, 1.8, 1.475, 1.41, 1.37, 1.33, 1.29, 1.26, 1.235, 1.224];
        let f = get(
            Fixture::new().series("acc", &acc).series("loss", &loss),
            FindingId::AccuracyPinned,
        )
        .expect("frozen below a converged accuracy");
        assert_eq!(f.evidence["climbed_from"], 0.125);
        assert!(f.summary.contains("climbed from 0.125"), "{}", f.summary);
    }

    #[test]
    fn leaving_a_pinned_value_by_a_few_examples_is_not_getting_out() {
        // tests/real/keras_csv_drowsiness_val_acc_pinned_near_chance: 47 validation images,
        // 26/47 for 17 epochs, then 27/47–30/47: within two standard errors (0.145).
        let mut acc = vec![0.5531914830207825; 17];
        acc.extend([
            0.5744680762290955,
            0.5957446694374084,
            0.6170212626457214,
            0.6382978558540344,
            0.6170212626457214,
        ]);
        let loss: Vec<f64> = (0..22).map(|i| 0.69 - 0.001 * f64::from(i)).collect();
        let run = Fixture::new()
            .series("val_accuracy", &acc)
            .series("val_loss", &loss);
        assert_eq!(ids(run), ["accuracy_pinned"]);
        // The same climb over a large set (no common denominator ≤ 400) got out.
        let mut big = vec![0.5532; 17];
        big.extend([0.5745, 0.5957, 0.6170, 0.6383, 0.6170]);
        let run = Fixture::new()
            .series("val_accuracy", &big)
            .series("val_loss", &loss);
        assert!(ids(run).is_empty());
    }

    #[test]
    fn out_of_range_fractions_and_negative_losses() {
        let f = get(
            Fixture::new().series("eval_f1", &[0.8, 1.7, 0.9]),
            FindingId::MetricOutOfRange,
        )
        .unwrap();
        assert_eq!(f.evidence["reason"], "fraction_above_one");
        assert_eq!(f.evidence["epoch"], 2);
        assert_eq!(f.severity, Severity::Warning);
        // A word error rate in percent, and an accuracy in percent throughout, are fine.
        assert!(ids(Fixture::new().series("eval_wer", &[62.0, 40.0, 25.0])).is_empty());
        assert!(ids(Fixture::new().series("val_acc", &[45.0, 71.5, 88.2])).is_empty());
        // The ECG run: negative from the first epoch and running away.
        let mut ecg = vec![-33_835.0];
        ecg.extend((1..70).map(|i| -1.0e6 * f64::from(i)));
        let f = get(
            Fixture::new().series("loss", &ecg),
            FindingId::MetricOutOfRange,
        )
        .unwrap();
        assert!(f.summary.contains("training loss"), "{}", f.summary);
        assert_eq!(f.evidence["reason"], "negative_loss");
        assert_eq!(f.evidence["epoch"], 1);
        assert_eq!(f.severity, Severity::Critical);
        let nll = Fixture::new().series("loss", &[0.5, -1.5, -2.5, -3.2]);
        let f = get(nll, FindingId::MetricOutOfRange).unwrap();
        assert_eq!(f.severity, Severity::Warning);
        // Names that may be negative, and a cosine-similarity loss bounded by −1.
        assert!(ids(Fixture::new().series("elbo_loss", &[-50.0, -80.0, -90.0])).is_empty());
        assert!(ids(Fixture::new().series("loss", &[-0.2, -0.7, -0.95])).is_empty());
    }

    #[test]
    fn a_learning_rate_still_rising_at_the_end_is_an_unfinished_warmup() {
        let lr = [9.4e-7, 2.44e-6, 3.94e-6, 5.44e-6, 7.19e-6];
        let f = get(
            Fixture::new().series("lr", &lr),
            FindingId::WarmupUnfinished,
        )
        .unwrap();
        assert_eq!(f.evidence["rising_since_epoch"], 1);
        assert_eq!(f.evidence["last_epoch"], 5);
        // The planned length unknown: the run may still be warming up as planned.
        assert_eq!(f.severity, Severity::Info);
        // Warmup then cosine decay, and a constant rate, are quiet.
        let cosine = [1e-5, 3e-4, 6e-4, 5.5e-4, 4e-4, 2e-4, 6e-5];
        assert!(ids(Fixture::new().series("lr", &cosine)).is_empty());
        assert!(ids(Fixture::new().series("lr", &[3e-6; 8])).is_empty());
    }

    #[test]
    fn a_gradient_norm_spike_against_its_running_median() {
        // The first epoch's large norm is ordinary; epoch 7 is 10× the median before it.
        let g = [15.0, 1.1, 0.9, 1.2, 1.0, 1.1, 12.5, 1.0];
        let f = get(
            Fixture::new().series("grad_norm", &g),
            FindingId::GradNormSpike,
        )
        .unwrap();
        assert_eq!(f.evidence["epoch"], 7);
        assert_eq!(f.evidence["median_before"], 1.1);
        // A big first epoch alone, and a noisy norm within 10×, are not spikes.
        let start = [4.25, 0.0127, 0.0118, 0.012, 0.011];
        assert!(ids(Fixture::new().series("grad_norm", &start)).is_empty());
        let noisy = [5.5, 5.9, 5.5, 4.1, 4.2, 3.0, 3.0, 2.6, 2.4, 1.5, 3.3, 5.3];
        assert!(ids(Fixture::new().series("grad_norm", &noisy)).is_empty());
    }

    /// A step-level log: `per_epoch` values of `base` per epoch for 3 epochs, with the given
    /// (epoch, place, value) replaced.
    fn steps(per_epoch: u32, base: f64, spikes: &[(u32, u32, f64)]) -> Fixture {
        let mut f = Fixture::new();
        for epoch in 1..=3 {
            for i in 0..per_epoch {
                let v = spikes
                    .iter()
                    .find(|(e, at, _)| *e == epoch && *at == i)
                    .map_or(base + 0.01 * f64::from(i % 7), |s| s.2);
                f = f.at("grad_norm", epoch, v);
            }
        }
        f
    }

    #[test]
    fn a_step_level_spike_the_epoch_mean_hides_is_a_spike() {
        // tests/real/hf_t5_summarize_grad_norm_spike: one log of 35.6 among ~143 near 2.4.
        let f = get(steps(143, 2.4, &[(3, 90, 35.6)]), FindingId::GradNormSpike).unwrap();
        assert_eq!(f.evidence["level"], "step");
        assert_eq!(f.evidence["epoch"], 3);
        assert_eq!(f.evidence["value"], 35.6);
        assert!(f.summary.contains("within epoch 3"), "{}", f.summary);
        // The first tenth of epoch 1 is the start of training, where large norms are
        // ordinary; 5× the others is noise, not a spike; an epoch of few values has no
        // baseline.
        assert!(ids(steps(143, 2.4, &[(1, 0, 56.8)])).is_empty());
        assert!(ids(steps(143, 2.4, &[(2, 40, 12.0)])).is_empty());
        assert!(ids(steps(4, 2.4, &[(2, 2, 35.6)])).is_empty());
        // A spike two logs wide is still a spike: the lower neighbour is the baseline.
        let wide = steps(143, 2.4, &[(2, 60, 35.6), (2, 61, 20.0)]);
        assert_eq!(
            get(wide, FindingId::GradNormSpike).unwrap().evidence["epoch"],
            2
        );
    }

    #[test]
    fn a_start_up_hump_of_many_steps_is_not_a_spike() {
        // A one-epoch run's gradient norm rising over its first logs and decaying for a
        // fifth of the epoch (past the grace share): its top is far above the epoch's mean
        // but close to the steps beside it.
        let hump = [
            (1, 3, 8.0),
            (1, 4, 20.0),
            (1, 5, 45.0),
            (1, 6, 60.0),
            (1, 7, 52.0),
            (1, 8, 40.0),
            (1, 9, 30.0),
            (1, 10, 22.0),
            (1, 11, 15.0),
            (1, 12, 10.0),
            (1, 13, 6.0),
        ];
        assert!(ids(steps(143, 1.0, &hump)).is_empty());
    }

    #[test]
    fn a_gradient_norm_that_keeps_climbing_is_rising() {
        // hf_finnews per epoch: ~8 early, 21-76 late.
        let g = [
            8.84, 6.25, 12.06, 10.19, 11.36, 23.47, 20.74, 25.93, 48.70, 25.43,
        ];
        let f = get(
            Fixture::new().series("grad_norm", &g),
            FindingId::GradNormRising,
        )
        .unwrap();
        assert!(f.evidence["fitted_rise"].as_f64().unwrap() >= GRAD_RISING_FACTOR);
        // A drift 1.0 → 2.0 and a falling norm are not.
        let drift = [1.0, 1.2, 1.5, 1.8, 2.0, 2.0, 2.1, 2.0];
        assert!(ids(Fixture::new().series("grad_norm", &drift)).is_empty());
        let falling = [5.5, 5.9, 5.5, 4.1, 4.2, 3.0, 3.0, 2.6];
        assert!(ids(Fixture::new().series("grad_norm", &falling)).is_empty());
    }

    #[test]
    fn appended_runs_are_judged_on_the_latest() {
        let run = [0.0, 0.0, 0.0, 2.05, 2.02, 1.98];
        let points: Vec<Point> = [1, 2, 3, 1, 2, 3]
            .into_iter()
            .zip(run)
            .map(|(epoch, value)| Point { epoch, value })
            .collect();
        assert_eq!(latest_run(&points).len(), 3);
        assert_eq!(latest_run(&points)[0].value, 2.05);
    }
}
