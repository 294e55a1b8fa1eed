//! Divergence: the loss (training or validation) became non-finite, jumped far above
//! where it was and stayed there, reached a value no classification loss has, or (for
//! the training loss, with the classes known) stayed far above the chance loss ln C,
//! which is what a run blown up in its first steps looks like when the softmax saturates
//! instead of overflowing (Keras, SGD at lr 50: loss 13.6 for 10 classes). It also
//! reads the gradient norm, because the Hugging Face Trainer hides non-finite step losses
//! (`logging_nan_inf_filter`) while its logged `grad_norm` still shows them. Beside the
//! first bad epoch it reports the last sane one, which is what decides between restoring
//! a checkpoint and restarting from scratch; choosing between them is the advisor's job.
//! A blow-up is often the end of a climb (the real Keras run with SGD at lr 0.42 rose
//! every epoch from epoch 3 and spiked at epoch 10), so the epochs of that climb do not
//! count as sane: restoring one of them would restore weights already on their way out.

use super::{latest_run_start, series, series_label};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::series::RECENT_CAPACITY;
use crate::metrics::{Canonical, Point, Series, names};
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity};

/// A loss this many times the mean of the epochs before it is a spike: Lightning's
/// SpikeDetection flags ≥ 2× the mean *away from* its running mean, that is ≈ 3× the mean.
pub const SPIKE_FACTOR: f64 = 3.0;
/// Epochs in the running mean a spike is measured against (Lightning's window is 10).
pub const SPIKE_WINDOW: usize = 10;
/// A loss at or above this is divergence whatever came before (AUTOTRAINER's backstop).
/// Only for classification runs or a loss that rose to it: a regression loss on raw
/// targets can start far above 1e3 and be healthy.
pub const LOSS_BACKSTOP: f64 = 1e3;
/// An epoch whose loss is above this many times the chance loss ln C is not sane: uniform
/// guessing scores ln C, so twice that means confidently wrong predictions, not an
/// untrained net (a fresh net starts within ~20% of ln C). Derived; no tool publishes it.
/// Checked on the real Keras runs in configs/examples/keras: every sane first epoch is
/// ≤ 1.07 × ln C; `saturated_softmax` (SGD at lr 50) sits at 5.9 × ln C.
pub const SANE_CHANCE_FACTOR: f64 = 2.0;
/// Epochs the training loss must stay above the sane bound, up to the latest, to count
/// as divergence by itself (fewer when that is all the file has): one bad epoch mean
/// can be a burst the run recovers from.
pub const ABOVE_CHANCE_MIN_EPOCHS: usize = 2;
/// A training accuracy at least this share of the way from chance (1/C) to perfect means
/// the model predicts well, whatever its loss says: a loss far above ln C beside it carries
/// a penalty term (weight decay added to the loss: the corpus' food-11 run logs loss 2.29
/// ≈ ln 11 beside accuracy 0.88), not saturated predictions. A saturated softmax predicts
/// one class, at 1/C (0.10 for 10 classes), far below it. Halfway is derived: it leaves
/// room on both sides.
pub const ACCURACY_GUARD_SHARE: f64 = 0.5;

/// The series read, in the order they win a tie on the epoch.
const WATCHED: [Canonical; 3] = [Canonical::Loss, Canonical::ValLoss, Canonical::GradNorm];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reason {
    // Declared in the order they win a tie on the epoch.
    NonFinite,
    Backstop,
    AboveChance,
    Spike,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::NonFinite => "non_finite",
            Reason::Backstop => "backstop",
            Reason::AboveChance => "above_chance",
            Reason::Spike => "spike",
        }
    }
}

/// The first epoch of a divergence that is still in effect.
#[derive(Debug, Clone, Copy)]
struct Event {
    epoch: u32,
    value: f64,
    reason: Reason,
    /// The mean of the epochs before a spike, and how many there were.
    window: Option<(f64, usize)>,
    /// The first epoch of the unbroken rise that ended in the event (the event's own
    /// epoch when the loss did not climb into it).
    climb_start: u32,
}

/// What "sane" means for this run: finite, below the backstop and, with the number of
/// classes known, not far above the chance loss.
struct Sanity {
    chance_loss: Option<f64>,
    classes: Option<u32>,
    classification: bool,
}

impl Sanity {
    fn of(run: &Run) -> Sanity {
        let classes = super::chance::known_classes(run);
        let classification = classes.is_some()
            || series(run, Canonical::Accuracy).is_some()
            || series(run, Canonical::ValAccuracy).is_some();
        Sanity {
            chance_loss: classes.as_ref().map(|c| f64::from(c.value).ln()),
            classes: classes.map(|c| c.value),
            classification,
        }
    }

    /// The training accuracy says the model predicts well (`ACCURACY_GUARD_SHARE`).
    fn predicts_well(&self, accuracy: Option<f64>) -> bool {
        let (Some(classes), Some(accuracy)) = (self.classes, accuracy) else {
            return false;
        };
        let chance = 1.0 / f64::from(classes.max(1));
        accuracy.is_finite() && accuracy >= chance + ACCURACY_GUARD_SHARE * (1.0 - chance)
    }

    fn is_sane(&self, loss: f64) -> bool {
        loss.is_finite()
            && loss < LOSS_BACKSTOP
            && self
                .chance_loss
                .is_none_or(|chance| loss <= SANE_CHANCE_FACTOR * chance)
    }
}

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let sanity = Sanity::of(run);
    // Epochs up to the latest rollback were undone, so a blow-up in them has been dealt
    // with; judging it again would cut the rate and roll back once more at every epoch
    // that follows (0.3 → 0.03 → 0.003 … while the run trains fine).
    let since = crate::history::rolled_back_through(&run.history).unwrap_or(0);
    let mut worst: Option<(&Series, Event)> = None;
    let mut survived: Option<(&Series, Event)> = None;
    for canonical in WATCHED {
        let Some(s) = series(run, canonical) else {
            continue;
        };
        let event = if canonical == Canonical::GradNorm {
            nonfinite_grad_norm(s)
        } else {
            let (unrecovered, spike) = bad_epochs(s, &sanity, since);
            if let Some(spike) = spike
                && survived.is_none_or(|(_, w)| spike.epoch < w.epoch)
            {
                survived = Some((s, spike));
            }
            let accuracy = series(run, Canonical::Accuracy)
                .and_then(Series::last)
                .map(|p| p.value);
            let above = (canonical == Canonical::Loss)
                .then(|| above_chance(s, &sanity))
                .flatten()
                .filter(|_| !sanity.predicts_well(accuracy));
            [unrecovered, above]
                .into_iter()
                .flatten()
                .min_by_key(|e| (e.epoch, e.reason))
        };
        let key = |e: &Event| (e.climb_start, e.epoch);
        if let Some(event) = event
            && worst.is_none_or(|(_, w)| key(&event) < key(&w))
        {
            worst = Some((s, event));
        }
    }
    // A loss by any other name (`mean_loss`, `Conductor_Copper_loss`, the parts of a
    // multi-term objective) turning non-finite is divergence evidence too: NaN spreads
    // through the shared weights whichever term produced it (runmedic flags any series).
    for s in run.metrics.series.iter().filter(|s| {
        Canonical::ALL.iter().all(|c| s.name != c.as_str()) && names::is_loss_like(&s.original)
    }) {
        let key = |e: &Event| (e.climb_start, e.epoch);
        if let Some(event) = nonfinite_loss(s, since)
            && worst.is_none_or(|(_, w)| key(&event) < key(&w))
        {
            worst = Some((s, event));
        }
    }
    let Some((diverged, event)) = worst else {
        if let Some((s, spike)) = survived {
            out.findings.push(survived_spike(s, &spike, lang));
        }
        return;
    };

    // The gradient norm has no sane scale of its own: judge the epochs by the loss.
    let judged = if diverged.name == Canonical::GradNorm.as_str() {
        series(run, Canonical::Loss).unwrap_or(diverged)
    } else {
        diverged
    };
    let before: Vec<Point> = candidates_before(judged, event.climb_start);
    let last_sane = before
        .iter()
        .rev()
        .find(|p| sanity.is_sane(p.value))
        .copied();
    let best = before
        .iter()
        .filter(|p| sanity.is_sane(p.value))
        .min_by(|a, b| a.value.total_cmp(&b.value))
        .copied();
    let first_value = diverged.first().map_or(f64::NAN, |p| p.value);

    let summary = summary(diverged, &event, last_sane, &sanity, lang);
    out.findings.push(Finding {
        id: FindingId::Divergence,
        severity: Severity::Critical,
        summary,
        evidence: evidence![
            "series" => diverged.name.as_str(),
            "original" => diverged.original.as_str(),
            "epoch" => event.epoch,
            "value" => event.value,
            "reason" => event.reason.as_str(),
            "last_sane_epoch" => last_sane.map(|p| p.epoch),
            "last_sane_value" => last_sane.map(|p| p.value),
            "window_mean" => event.window.map(|(mean, _)| mean),
            "first_value" => first_value,
            "best_epoch" => best.map(|p| p.epoch),
            "best_value" => best.map(|p| p.value),
            "first_nonfinite_epoch" => diverged.first_nonfinite().map(|p| p.epoch),
            "chance_loss" => sanity.chance_loss,
            "climb_start_epoch" => event.climb_start,
        ],
    });
}

/// A loss spike the run came back from: not a divergence (the weights recovered, nothing
/// to restore), but a step the optimiser barely survived, which clipping or a lower rate
/// keeps from happening again (training-doctor and Lightning's SpikeDetection report it).
fn survived_spike(series: &Series, spike: &Event, lang: Lang) -> Finding {
    let what = series_label(series, lang);
    let latest = series.last().map_or(f64::NAN, |p| p.value);
    let ratio = spike.window.map(|(mean, _)| spike.value / mean);
    let jump = match spike.window {
        Some((before, 1)) => say!(
            lang,
            ", {}× the epoch before it ({})",
            "，是前一轮（{1}）的 {0} 倍",
            num(spike.value / before),
            num(before)
        ),
        Some((mean, n)) => say!(
            lang,
            ", {}× the mean of the {n} epochs before it ({})",
            "，是此前 {n} 轮均值（{1}）的 {0} 倍",
            num(spike.value / mean),
            num(mean)
        ),
        None => String::new(),
    };
    // The training loss did not jump with it (it would have been chosen first): the weights
    // were fine for the training data and briefly bad for the held-out data.
    let meaning = if series.name == Canonical::Loss.as_str() {
        say!(
            lang,
            "the run survived a blow-up; gradient clipping or a lower learning rate keeps the next one from ending it",
            "训练挺过了一次爆炸；梯度裁剪或更低的学习率可防止下一次让训练崩溃"
        )
    } else {
        say!(
            lang,
            "the training loss did not jump with it, so one evaluation went wrong (BatchNorm statistics, a step too large for held-out data); if it keeps happening, a lower learning rate steadies it",
            "训练损失并未随之跃升，说明是某一次评估出了问题（BatchNorm 统计量，或步长对验证数据过大）；若反复出现，降低学习率可使其平稳"
        )
    };
    Finding {
        id: FindingId::LossSpike,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "The {what} jumped to {} at epoch {}{jump}, and came back (now {}): {meaning}.",
            "{what}在第 {1} 轮跃升至 {0}{jump}，之后又恢复（当前 {2}）：{meaning}。",
            num(spike.value),
            spike.epoch,
            num(latest)
        ),
        evidence: evidence![
            "series" => series.name.as_str(),
            "original" => series.original.as_str(),
            "epoch" => spike.epoch,
            "value" => spike.value,
            "reason" => spike.reason.as_str(),
            "window_mean" => spike.window.map(|(mean, _)| mean),
            "ratio" => ratio,
            "threshold_ratio" => SPIKE_FACTOR,
            "latest" => latest,
        ],
    }
}

/// Epochs before `epoch` the series still holds: the recent window, plus the first and
/// the best epoch of a run longer than the window. Oldest first, each epoch once.
fn candidates_before(series: &Series, epoch: u32) -> Vec<Point> {
    let mut points: Vec<Point> = series
        .tail(RECENT_CAPACITY)
        .into_iter()
        .chain(series.first())
        .chain(series.min())
        .filter(|p| p.epoch < epoch)
        .collect();
    points.sort_by_key(|p| p.epoch);
    points.dedup_by_key(|p| p.epoch);
    points
}

/// The first epoch of a divergence of a loss series that the run has not recovered from.
/// A non-finite loss counts at once; a spike or a backstop value counts while the latest
/// value has not come back to a sane value below the mean before it. Beside it, the spike
/// (or backstop value) the run did come back from that towered most over the mean before
/// it.
fn bad_epochs(series: &Series, sanity: &Sanity, since: u32) -> (Option<Event>, Option<Event>) {
    let mut points = series.tail(RECENT_CAPACITY);
    // Several runs appended in one file: the latest is judged, and its first epoch is its
    // start (a run that starts again above the last one's end is not a spike).
    let appended = latest_run_start(&points);
    points.drain(..appended);
    // The first non-finite epoch after the rollback: the series keeps the very first one,
    // and the recent window holds what came after it.
    let first_nonfinite = match series.first_nonfinite() {
        Some(p) if p.epoch > since && appended == 0 => Some(p),
        Some(_) => points
            .iter()
            .find(|p| p.epoch > since && !p.value.is_finite())
            .copied(),
        None => None,
    };
    let nonfinite = first_nonfinite.map(|p| Event {
        epoch: p.epoch,
        value: p.value,
        reason: Reason::NonFinite,
        window: None,
        climb_start: climb_start(&points, p.epoch),
    });
    // The run's start, or where it started again after a rollback.
    let Some(first) = series
        .first()
        .filter(|p| p.epoch > since && appended == 0)
        .or_else(|| points.iter().find(|p| p.epoch > since).copied())
    else {
        return (nonfinite, None);
    };
    let Some(last) = series.last() else {
        return (nonfinite, None);
    };
    let mut finite_event = None;
    let mut survived: Option<Event> = None;
    for (i, point) in points.iter().enumerate() {
        if !point.value.is_finite() || point.epoch <= since {
            continue;
        }
        // Epochs rolled back are not what the run's weights came from: a blow-up there
        // would hide a spike now in its mean.
        let window: Vec<f64> = points[i.saturating_sub(SPIKE_WINDOW)..i]
            .iter()
            .filter(|p| p.epoch > since)
            .map(|p| p.value)
            .filter(|v| v.is_finite())
            .collect();
        let mean = (!window.is_empty()).then(|| window.iter().sum::<f64>() / window.len() as f64);
        // A regression loss may start above the backstop; only a rise to it counts there.
        let backstop =
            point.value >= LOSS_BACKSTOP && (sanity.classification || point.value > first.value);
        // A ratio to the mean means nothing for a loss that can be negative (an NLL).
        let spike = mean.is_some_and(|m| {
            m > 0.0 && point.value > SPIKE_FACTOR * m && point.value > first.value
        });
        let reason = if backstop {
            Reason::Backstop
        } else if spike {
            Reason::Spike
        } else {
            continue;
        };
        let recovered = last.value.is_finite()
            && last.epoch > point.epoch
            && sanity.is_sane(last.value)
            && mean.is_none_or(|m| last.value <= m);
        let event = Event {
            epoch: point.epoch,
            value: point.value,
            reason,
            window: mean.map(|m| (m, window.len())),
            climb_start: climb_start(&points, point.epoch),
        };
        if !recovered {
            finite_event = Some(event);
            break;
        }
        // Measured against the mean before it, the one that towered most; a backstop value
        // with no window before it against nothing, so first.
        let height = |e: &Event| e.window.map_or(f64::INFINITY, |(m, _)| e.value / m);
        if survived.is_none_or(|s| height(&event) > height(&s)) {
            survived = Some(event);
        }
    }
    let unrecovered = [nonfinite, finite_event]
        .into_iter()
        .flatten()
        .min_by_key(|e| (e.epoch, e.reason));
    (unrecovered, survived)
}

/// The first epoch of the unbroken rise that ends at `epoch`: walking back, every epoch
/// that is non-finite or above the one before belongs to the climb.
fn climb_start(points: &[Point], epoch: u32) -> u32 {
    let Some(k) = points.iter().position(|p| p.epoch == epoch) else {
        return epoch;
    };
    let rose = |i: usize| {
        i >= 1
            && (!points[i].value.is_finite()
                || (points[i - 1].value.is_finite() && points[i].value > points[i - 1].value))
    };
    let mut i = k;
    while rose(i) {
        i -= 1;
    }
    // `points[i]` did not rise: it is the low point before the climb, or the event.
    if i == k { epoch } else { points[i + 1].epoch }
}

/// The training loss has stayed above `SANE_CHANCE_FACTOR` × ln C up to the latest epoch:
/// the first epoch of that stretch. Only the training loss: an overfit model's validation
/// loss can honestly sit far above ln C.
fn above_chance(series: &Series, sanity: &Sanity) -> Option<Event> {
    let limit = SANE_CHANCE_FACTOR * sanity.chance_loss?;
    let points = series.tail(RECENT_CAPACITY);
    let stretch: Vec<&Point> = points
        .iter()
        .rev()
        .take_while(|p| p.value.is_finite() && p.value > limit)
        .collect();
    let start = stretch.last()?;
    if stretch.len() < ABOVE_CHANCE_MIN_EPOCHS.min(series.len()) {
        return None;
    }
    Some(Event {
        epoch: start.epoch,
        value: start.value,
        reason: Reason::AboveChance,
        window: None,
        climb_start: start.epoch,
    })
}

/// The first non-finite value of a loss after the rollback, as an event.
fn nonfinite_loss(series: &Series, since: u32) -> Option<Event> {
    let p = match series.first_nonfinite() {
        Some(p) if p.epoch > since => p,
        Some(_) => series
            .tail(RECENT_CAPACITY)
            .into_iter()
            .find(|p| p.epoch > since && !p.value.is_finite())?,
        None => return None,
    };
    Some(Event {
        epoch: p.epoch,
        value: p.value,
        reason: Reason::NonFinite,
        window: None,
        climb_start: p.epoch,
    })
}

/// A non-finite gradient norm the run has not come back from. With fp16 loss scaling an
/// overflow step has an infinite gradient norm and is skipped by the scaler; when later
/// epochs are finite again, that is what happened, not a divergence.
fn nonfinite_grad_norm(series: &Series) -> Option<Event> {
    let first = series.first_nonfinite()?;
    let last = series.last()?;
    if last.value.is_finite() {
        return None;
    }
    Some(Event {
        epoch: first.epoch,
        value: first.value,
        reason: Reason::NonFinite,
        window: None,
        climb_start: first.epoch,
    })
}

fn summary(
    series: &Series,
    event: &Event,
    last_sane: Option<Point>,
    sanity: &Sanity,
    lang: Lang,
) -> String {
    let what = series_label(series, lang);
    let epoch = event.epoch;
    let value = num(event.value);
    let climb = if event.climb_start < event.epoch {
        say!(
            lang,
            "it had risen every epoch since epoch {}, so ",
            "此前自第 {} 轮起逐轮上升，因此",
            event.climb_start
        )
    } else {
        String::new()
    };
    let sane = match last_sane {
        Some(p) => say!(
            lang,
            "{climb}the last sane epoch is {}, with {}",
            "{climb}最后一个正常的是第 {} 轮，值为 {}",
            p.epoch,
            num(p.value)
        ),
        None => say!(
            lang,
            "{climb}no epoch before it was sane, so no checkpoint of this run is usable",
            "{climb}此前没有任何正常的轮次，本次训练的检查点都不可用"
        ),
    };
    match event.reason {
        Reason::NonFinite if series.name == Canonical::GradNorm.as_str() => say!(
            lang,
            "The {what} became {value} at epoch {epoch} and has stayed non-finite; the weights are broken even where the logged loss looks finite (Hugging Face filters non-finite step losses); {sane}.",
            "{what}在第 {epoch} 轮变为 {value} 且之后一直非有限；即使记录的损失看似正常，权重也已损坏（Hugging Face 会过滤非有限的步损失）；{sane}。"
        ),
        Reason::NonFinite => say!(
            lang,
            "The {what} became {value} at epoch {epoch}: the run diverged; {sane}.",
            "{what}在第 {epoch} 轮变为 {value}：训练已发散；{sane}。"
        ),
        Reason::Backstop => say!(
            lang,
            "The {what} reached {value} at epoch {epoch}, beyond any plausible loss (≥ {}): the run diverged; {sane}.",
            "{what}在第 {epoch} 轮达到 {value}，超出任何合理损失（≥ {}）：训练已发散；{sane}。",
            num(LOSS_BACKSTOP)
        ),
        Reason::AboveChance => {
            let chance = sanity.chance_loss.unwrap_or(f64::NAN);
            let times = num(event.value / chance);
            let (ln_c, last) = (
                num(chance),
                num(series.last().map_or(f64::NAN, |p| p.value)),
            );
            say!(
                lang,
                "The {what} has stayed above {}× the chance loss ln C = {ln_c} since epoch {epoch} ({value}, {times}× ln C; now {last}): the predictions are confidently wrong, the weights blew up; {sane}.",
                "{what}自第 {epoch} 轮起一直高于随机水平损失 ln C = {ln_c} 的 {} 倍（{value}，为 ln C 的 {times} 倍；当前 {last}）：预测错得很自信，权重已爆炸；{sane}。",
                num(SANE_CHANCE_FACTOR)
            )
        }
        Reason::Spike => {
            let (mean, n) = event.window.unwrap_or((f64::NAN, 0));
            let times = num(event.value / mean);
            let mean = num(mean);
            say!(
                lang,
                "The {what} jumped to {value} at epoch {epoch}, {times}× the mean of the {n} epochs before ({mean}), and has not come back: the run is diverging; {sane}.",
                "{what}在第 {epoch} 轮跃升至 {value}，是此前 {n} 轮均值（{mean}）的 {times} 倍，且未回落：训练正在发散；{sane}。"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;
    use serde_json::{Value, json};

    fn finding(f: Fixture) -> Option<serde_json::Map<String, Value>> {
        f.check(check)
            .get(FindingId::Divergence)
            .map(|f| f.evidence.clone())
    }

    #[test]
    fn a_single_nan_at_the_end_fires_with_the_epoch_before_as_sane() {
        let e = finding(Fixture::new().series("loss", &[2.3, 1.2, 0.8, 0.6, f64::NAN])).unwrap();
        assert_eq!(e["reason"], "non_finite");
        assert_eq!(e["epoch"], 5);
        assert_eq!(e["value"], "NaN");
        assert_eq!(e["last_sane_epoch"], 4);
        assert_eq!(e["last_sane_value"], 0.6);
        assert_eq!(e["first_value"], 2.3);
        assert_eq!(e["series"], "loss");
    }

    #[test]
    fn epochs_rolled_back_are_not_judged_again_and_a_new_blow_up_is() {
        let restored_at = |epoch: u32| {
            let mut e = crate::history::entry(Some(epoch), &[], &["divergence"], &[]);
            e.actions = vec![crate::types::Action::RestoreCheckpoint];
            e
        };
        // NaN at epoch 4, restored there; the epochs since train on.
        let mut run = Fixture::new()
            .series("loss", &[2.0, 1.5, 1.2, f64::NAN, 1.15, 1.05])
            .run();
        let judge = |run: &Run| {
            let mut out = Diagnosis::default();
            check(run, Lang::En, &mut out);
            out.get(FindingId::Divergence)
                .map(|f| f.evidence["epoch"].clone())
        };
        assert_eq!(
            judge(&run),
            Some(json!(4)),
            "no rollback recorded: still judged"
        );
        run.history.push(restored_at(4));
        assert_eq!(judge(&run), None);
        // A blow-up after the rollback is a new divergence.
        let mut again = Fixture::new()
            .series("loss", &[2.0, 1.5, 1.2, f64::NAN, 1.15, f64::NAN])
            .run();
        again.history.push(restored_at(4));
        assert_eq!(judge(&again), Some(json!(6)));
    }

    #[test]
    fn nan_in_the_first_epoch_leaves_nothing_sane() {
        let e = finding(Fixture::new().series("loss", &[f64::NAN, f64::NAN])).unwrap();
        assert_eq!(e["epoch"], 1);
        assert_eq!(e["last_sane_epoch"], Value::Null);
        assert_eq!(e["last_sane_value"], Value::Null);
    }

    #[test]
    fn a_validation_nan_counts_and_keeps_the_files_name() {
        let e = finding(
            Fixture::new()
                .series("loss", &[1.0, 0.8, 0.7])
                .series("eval_loss", &[0.9, f64::INFINITY, f64::INFINITY]),
        )
        .unwrap();
        assert_eq!(e["series"], "val_loss");
        assert_eq!(e["original"], "eval_loss");
        assert_eq!(e["epoch"], 2);
        assert_eq!(e["value"], "Infinity");
    }

    #[test]
    fn a_spike_that_stays_fires_and_one_that_recovers_does_not() {
        let e = finding(Fixture::new().series("loss", &[1.0, 0.7, 0.6, 0.55, 9.0, 12.0])).unwrap();
        assert_eq!(e["reason"], "spike");
        assert_eq!(e["epoch"], 5);
        assert_eq!(e["window_mean"], 0.7125);
        assert_eq!(e["last_sane_epoch"], 4);
        assert_eq!(e["best_epoch"], 4);
        let healed = Fixture::new().series("loss", &[1.0, 0.7, 0.6, 0.55, 9.0, 0.5]);
        assert!(finding(healed).is_none());
    }

    #[test]
    fn a_spike_the_run_came_back_from_is_a_loss_spike() {
        // 1e308 is the loss of a step that overflowed all but one bit; the next epoch is fine.
        let d = Fixture::new()
            .series("loss", &[1.0, 1e308, 0.8])
            .check(check);
        let f = d.get(FindingId::LossSpike).expect("a loss spike");
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(f.evidence["epoch"], 2);
        assert_eq!(f.evidence["reason"], "backstop");
        assert!(d.get(FindingId::Divergence).is_none());
        // The tallest of two, measured against the mean before it.
        let d = Fixture::new()
            .series("loss", &[1.0, 0.7, 3.0, 0.6, 0.55, 9.0, 0.5])
            .check(check);
        let f = d.get(FindingId::LossSpike).expect("a loss spike");
        assert_eq!(f.evidence["epoch"], 6);
        assert_eq!(f.evidence["reason"], "spike");
        assert!(f.summary.contains("came back (now 0.5)"), "{}", f.summary);
        // A spike that stays is divergence and only that; a rise within 3× is neither.
        let d = Fixture::new()
            .series("loss", &[1.0, 0.7, 0.6, 0.55, 9.0, 12.0])
            .check(check);
        assert!(d.get(FindingId::LossSpike).is_none());
        let d = Fixture::new()
            .series("loss", &[1.0, 0.7, 0.6, 0.55, 1.5, 0.5])
            .check(check);
        assert!(d.get(FindingId::LossSpike).is_none());
    }

    #[test]
    fn a_slow_climb_is_caught_when_it_passes_three_times_the_mean() {
        let e = finding(Fixture::new().series("loss", &[0.5, 0.45, 0.8, 1.5, 4.0, 12.0])).unwrap();
        assert_eq!(e["reason"], "spike");
        assert_eq!(e["epoch"], 5, "4.0 > 3 × mean(0.5, 0.45, 0.8, 1.5)");
        // Epochs 3 and 4 were the run-up: their weights were already going.
        assert_eq!(e["climb_start_epoch"], 3);
        assert_eq!(e["last_sane_epoch"], 2);
        assert_eq!(e["best_epoch"], 2);
    }

    #[test]
    fn a_healthy_run_and_a_fresh_ten_class_net_do_not_fire() {
        let healthy = [2.7, 1.4, 0.9, 0.7, 0.55, 0.5, 0.47, 0.45];
        assert!(finding(Fixture::new().series("loss", &healthy).classes(10)).is_none());
        // Tiny late losses may triple and still be far below the first epoch.
        let tiny = [2.3, 0.1, 0.01, 0.003, 0.002, 0.009];
        assert!(finding(Fixture::new().series("loss", &tiny)).is_none());
    }

    #[test]
    fn the_backstop_fires_from_the_first_epoch_for_classification() {
        let e = finding(
            Fixture::new()
                .series("loss", &[5.0e4, 3.0e4, 2.0e4])
                .series("accuracy", &[0.1, 0.1, 0.1]),
        )
        .unwrap();
        assert_eq!(e["reason"], "backstop");
        assert_eq!(e["epoch"], 1);
        assert_eq!(e["last_sane_epoch"], Value::Null);
    }

    #[test]
    fn a_regression_loss_that_starts_high_and_falls_is_healthy() {
        let mse = [8.0e6, 2.0e6, 4.0e5, 1.2e5, 9.0e4];
        assert!(finding(Fixture::new().series("loss", &mse)).is_none());
    }

    #[test]
    fn an_absurd_first_epoch_is_not_sane_when_the_classes_are_known() {
        // ln 10 = 2.30; 9.1 is four times that: the weights were already broken.
        let e = finding(
            Fixture::new()
                .series("loss", &[9.1, 40.0, f64::NAN])
                .classes(10),
        )
        .unwrap();
        assert_eq!(e["epoch"], 2);
        assert_eq!(e["reason"], "spike");
        assert_eq!(e["last_sane_epoch"], Value::Null);
        let e = finding(Fixture::new().series("loss", &[2.1, 40.0]).classes(10)).unwrap();
        assert_eq!(e["last_sane_epoch"], 1);
    }

    #[test]
    fn a_training_loss_far_above_chance_from_the_start_is_divergence() {
        // Keras, SGD at lr 50, 10 classes (a run like configs/examples/keras/saturated_softmax).
        let loss = [14.7658, 14.9334, 14.9334, 14.9334, 14.9334];
        let e = finding(Fixture::new().series("loss", &loss).classes(10)).unwrap();
        assert_eq!(e["reason"], "above_chance");
        assert_eq!(e["epoch"], 1);
        assert_eq!(e["last_sane_epoch"], Value::Null);
        assert_eq!(
            e["chance_loss"],
            crate::num::round_sig(std::f64::consts::LN_10)
        );
        // Unknown classes: nothing to measure against, so no verdict.
        assert!(finding(Fixture::new().series("loss", &loss)).is_none());
        // One absurd epoch the run came back from is not a divergence.
        let burst = [2.2, 5.1, 1.9, 1.7];
        assert!(finding(Fixture::new().series("loss", &burst).classes(10)).is_none());
        // An overfit validation loss far above ln C is not one either.
        let overfit = Fixture::new()
            .series("loss", &[0.69, 0.4, 0.2, 0.1])
            .series("val_loss", &[0.7, 0.9, 1.5, 1.6])
            .classes(2);
        assert!(finding(overfit).is_none());
    }

    #[test]
    fn a_loss_by_any_name_turning_nan_is_divergence() {
        // A PINN: no column named `loss`, every part NaN at the end.
        let e = finding(
            Fixture::new()
                .series(
                    "Dielectric_Air_loss",
                    &[7.6e4, 1.6, 1.4, f64::NAN, f64::NAN],
                )
                .series("pde_residual", &[1.0, 0.5, 0.4, 0.3, 0.3]),
        )
        .unwrap();
        assert_eq!(e["original"], "Dielectric_Air_loss");
        assert_eq!(e["reason"], "non_finite");
        assert_eq!(e["epoch"], 4);
        assert_eq!(e["last_sane_epoch"], 3);
        // A NaN in a series that is not a loss is not.
        let other = Fixture::new()
            .series("loss", &[1.0, 0.8, 0.7])
            .series("eval_pearson", &[0.3, f64::NAN, 0.5]);
        assert!(finding(other).is_none());
    }

    #[test]
    fn a_loss_far_above_chance_beside_a_high_accuracy_carries_a_penalty() {
        // Food-11 with a weight penalty in the loss: 2.29 ≈ ln 11, accuracy 0.88.
        let penalty = Fixture::new()
            .series("loss", &[5.3, 5.1, 4.9])
            .series("accuracy", &[0.86, 0.88, 0.88])
            .classes(11);
        assert!(finding(penalty).is_none());
        // The same loss at chance accuracy is a saturated softmax.
        let saturated = Fixture::new()
            .series("loss", &[14.77, 14.93, 14.93])
            .series("accuracy", &[0.1, 0.1, 0.1])
            .classes(10);
        assert_eq!(finding(saturated).unwrap()["reason"], "above_chance");
    }

    #[test]
    fn appended_runs_are_judged_on_the_latest() {
        // A second run starts above where the first ended: not a spike.
        let mut run = Fixture::new().run();
        let mut b = crate::metrics::MetricsBuilder::new();
        for (epoch, value) in [
            (1, 0.52),
            (2, 0.39),
            (3, 0.33),
            (1, 2.29),
            (2, 1.23),
            (3, 0.96),
        ] {
            b.push("loss", epoch, value);
        }
        run.metrics = b
            .finish(
                std::path::Path::new("m.csv"),
                crate::metrics::Format::KerasCsv,
            )
            .unwrap();
        let mut out = Diagnosis::default();
        check(&run, Lang::En, &mut out);
        assert!(out.findings.is_empty(), "{:?}", out.findings);
    }

    #[test]
    fn a_nan_grad_norm_counts_unless_the_run_came_back() {
        let stuck = Fixture::new()
            .series("loss", &[0.9, 0.7, 0.69, 0.69])
            .series("grad_norm", &[1.2, 0.8, f64::NAN, f64::NAN]);
        let e = finding(stuck).unwrap();
        assert_eq!(e["series"], "grad_norm");
        assert_eq!(e["epoch"], 3);
        assert_eq!(e["last_sane_epoch"], 2);
        assert_eq!(e["last_sane_value"], 0.7);
        let skipped_step = Fixture::new()
            .series("loss", &[0.9, 0.7, 0.6, 0.5])
            .series("grad_norm", &[1.2, f64::INFINITY, 0.7, 0.6]);
        assert!(finding(skipped_step).is_none());
    }

    #[test]
    fn the_summary_quotes_the_numbers() {
        let d = Fixture::new()
            .series("loss", &[1.0, 0.7, 0.6, 0.55, 9.0, 12.0])
            .check(check);
        let s = &d.findings[0].summary;
        assert!(
            s.contains("epoch 5") && s.contains('9') && s.contains("0.7125"),
            "{s}"
        );
        assert_eq!(d.findings[0].evidence["reason"], json!("spike"));
    }
}
