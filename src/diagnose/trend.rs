//! Trends of a loss that is neither diverging nor at chance: a plateau (the run learned,
//! then its best loss stopped improving and the curve went flat, while a smaller step
//! could still help), slow convergence (the loss is still falling, but barely, or in a
//! straight line far from where it started), and not learning (no net progress from the
//! first epoch, when the chance check cannot say the run sits at chance). A plateau and
//! slow convergence are kept apart by how far the training loss has come
//! (`LEARNED_MIN_DROP`); slow convergence and not learning by whether the loss still
//! falls (a Mann–Kendall trend test). A loss that rose above its best is not flat either:
//! that is overfitting's or oscillation's to report. A run that came far, reached a high
//! accuracy and already decayed its learning rate has converged: its flat tail is the
//! end of training, not a plateau.

use super::robust::{MK_Z_5PCT, mann_kendall_z, median, theil_sen_slope};
use super::{MIN_EPOCHS, latest_run, series, series_label};

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::series::RECENT_CAPACITY;
use crate::metrics::{Canonical, Point, Series};
use crate::num::num;
use crate::run::Run;
use crate::types::evidence;
use crate::types::{Diagnosis, Finding, FindingId, Severity};

/// An epoch improves on the best loss only by more than this, relative: PyTorch
/// ReduceLROnPlateau's default threshold (mode "rel"). DETECTORS.md started at 1e-3;
/// on a real healthy Keras run (an earlier version of configs/examples/keras/healthy)
/// that called a validation loss still making 0.03% gains (1.2909 → 1.2905, which
/// Keras's own min_delta 1e-4 counts as progress) a plateau, so the published default
/// replaced it.
pub const PLATEAU_MIN_REL_IMPROVEMENT: f64 = 1e-4;
/// Epochs without such an improvement that make a plateau (Lightning EarlyStopping's
/// default patience).
pub const PLATEAU_PATIENCE: u32 = 3;
/// Relative fall over the last `SLOW_LINE_WINDOW` points below which a loss at the end of
/// its run is levelling off, not still falling: a converged run drifts by less (derived:
/// the healthy HF run in tests/real/hf_weibo_rumor_bert_100ep_train_only_healthy eases
/// 0.1668 → 0.1636 over its last logs, 2% in all, and slows as it goes).
pub const ENDED_MIN_FALL: f64 = 0.02;
/// Epochs a validation loss may go without a new best on a run that otherwise looks
/// converged before the stall is said anyway: Keras ReduceLROnPlateau's default patience.
/// Past it, with the training loss still falling, more epochs fit the training data only
/// (held-out set 3, keras_csv_car_cnn_100ep_val_stall: best 0.717 at epoch 42, 0.72–0.82
/// for the 58 epochs after while the training loss fell 0.50 → 0.30).
pub const PLATEAU_LONG_PATIENCE: u32 = 10;
/// A loss whose robust trend line (Theil–Sen) since its best rose more than this,
/// relative to the best, has risen rather than gone flat: what overfitting calls a rise
/// (Prechelt's GL_5). The trend line, not the last epoch, so that a noisy flat curve whose
/// best was a lucky dip is still flat.
pub const PLATEAU_MAX_RISE: f64 = super::overfitting::OVERFIT_GL_ALPHA / 100.0;
/// Epochs over which convergence speed is judged: DeepDiagnosis checks every 5 epochs.
pub const SLOW_WINDOW: usize = 5;
/// With fewer than `SLOW_WINDOW` epochs (but at least `MIN_EPOCHS`), the loss must be
/// stuck rather than slow: under 0.2% a epoch, which no learning run shows in its first
/// epochs (the healthy Keras fixture falls 23% in its second). Derived.
pub const STUCK_MAX_REL_DROP_PER_EPOCH: f64 = 0.002;
/// Below this mean relative loss drop per epoch the loss is barely moving (DETECTORS.md
/// starting point: at 1% an epoch, halving the loss takes ~70 epochs).
pub const SLOW_MIN_REL_DROP_PER_EPOCH: f64 = 0.01;
/// Below this accuracy gain per epoch accuracy is barely moving (AUTOTRAINER's δ).
pub const SLOW_MIN_ACCURACY_GAIN_PER_EPOCH: f64 = 0.01;
/// A training loss whose best is this far below epoch 1 (relative) has learned: if it is
/// flat now that is a plateau; below it, a slow run is slow convergence. Derived: below
/// 10% a run is still near its starting point (of the Keras runs in
/// configs/examples/keras, `chance_level` moved 0.3%, `plateau` 38%).
pub const LEARNED_MIN_DROP: f64 = 0.10;
/// A loss whose best is this far below epoch 1 (relative) has come far: a flat tail after
/// it can be convergence, and a straight-line fall short of it is still far from done.
/// Derived: the real stalled runs moved 7–8% (configs/examples/keras/plateau's validation
/// loss, tests/real/keras_history_transfer_binary_plateau), the real converged ones 31–57%
/// (tests/real/keras_history_telco_churn_healthy, keras_csv_resnet18_cifar10_200ep_healthy).
pub const CAME_FAR_DROP: f64 = 0.25;
/// An accuracy that reached this has converged: AUTOTRAINER flags "not converging" when
/// the best accuracy stays below 0.7.
pub const CONVERGED_ACCURACY: f64 = 0.7;
/// A learning rate cut by at least this factor from its first value has been decayed: one
/// ReduceLROnPlateau cut (Keras and PyTorch factor 0.1). A run that plateaus at its first
/// learning rate may still gain from a smaller step; one that already decayed it has not.
pub const LR_DECAYED_FACTOR: f64 = 10.0;
/// Epochs over which a straight-line fall is judged: two `SLOW_WINDOW`s, one per half, to
/// compare their slopes.
pub const SLOW_LINE_WINDOW: usize = 2 * SLOW_WINDOW;
/// The second half of the window falls at least this fraction as fast as the first (by
/// Theil–Sen slope): a straight line, not a curve levelling off. Derived: a healthy
/// exponential-like decay with a half-life of 5 epochs gives 0.5 across two halves of 5.
pub const SLOW_LINE_MIN_SLOPE_RATIO: f64 = 0.5;
/// Within this fraction of ln C a loss sits at the chance floor (uniform predictions):
/// there is nothing left to fall to without learning, so a loss there that moves by 1e-5
/// is not converging slowly (tests/real/keras_csv_vgg16_cifar10_chance_flat: 2.30261 =
/// ln 10 to 0.001%). Derived; a loss 6% above ln C (configs/examples/keras/lr_too_low,
/// falling every epoch) is still coming down.
pub const CHANCE_FLOOR_REL: f64 = 0.01;
/// A curve whose median epoch-to-epoch change is above this, relative to its level, is
/// noisy: its single best epoch is a lucky dip, so the plateau is judged on the trailing
/// median of `SLOW_WINDOW` epochs (Prechelt's strip of k = 5) instead of the raw values.
/// Derived: 1% is a hundred times the improvement that counts (`PLATEAU_MIN_REL_IMPROVEMENT`);
/// a language-model pretraining loss logged per step batch jitters by 3–4%
/// (tests/real/jsonl_slm_pretrain_healthy), a Keras epoch loss by well under 1%.
pub const NOISY_REL_JITTER: f64 = 0.01;
/// Fewest epochs before a run is called not learning: DeepDiagnosis's 5-epoch window.
pub const NOT_LEARNING_MIN_EPOCHS: usize = SLOW_WINDOW;
/// An accuracy that gained less than this from epoch 1 (median of the last
/// `SLOW_WINDOW` epochs against epoch 1) made no progress: AUTOTRAINER's smallest
/// accuracy swing that counts (ζ = 0.03).
pub const NOT_LEARNING_ACCURACY_GAIN: f64 = 0.03;

pub fn check(run: &Run, lang: Lang, out: &mut Diagnosis) {
    plateau(run, lang, out);
    slow_convergence(run, lang, out);
    not_learning(run, lang, out);
}

/// The validation loss when there is one with enough epochs, else the training loss.
fn loss_series(run: &Run, min_epochs: usize) -> Option<&Series> {
    [Canonical::ValLoss, Canonical::Loss]
        .into_iter()
        .filter_map(|c| series(run, c))
        .find(|s| s.len() >= min_epochs)
}

/// The accuracy logged beside a loss: the same split's, else the other split's.
fn accuracy_for<'a>(run: &'a Run, loss: &Series) -> Option<&'a Series> {
    let order = if loss.name == Canonical::ValLoss.as_str() {
        [Canonical::ValAccuracy, Canonical::Accuracy]
    } else {
        [Canonical::Accuracy, Canonical::ValAccuracy]
    };
    order.into_iter().find_map(|c| series(run, c))
}

/// The best epoch of a loss, counting only improvements larger than
/// `PLATEAU_MIN_REL_IMPROVEMENT` (as ReduceLROnPlateau does), so that a crawl of tiny
/// gains does not keep resetting the clock.
fn best_epoch(series: &Series) -> Option<Point> {
    let points = series.tail(RECENT_CAPACITY);
    // The run may be longer than the window: its best so far may lie before it.
    best_epoch_of(&points, series.min())
}

/// `best_epoch` over given points, starting from `earlier` when it lies before them.
fn best_epoch_of(points: &[Point], earlier: Option<Point>) -> Option<Point> {
    let start = points.first()?;
    let mut best = earlier.filter(|m| m.epoch < start.epoch).unwrap_or(*start);
    for p in points {
        if p.value.is_finite()
            && (!best.value.is_finite()
                || p.value < best.value - PLATEAU_MIN_REL_IMPROVEMENT * best.value.abs())
        {
            best = *p;
        }
    }
    best.value.is_finite().then_some(best)
}

/// The median relative change from one epoch to the next: how noisy the curve is.
fn jitter(points: &[Point]) -> Option<f64> {
    let mut steps: Vec<f64> = points
        .windows(2)
        .filter(|w| w[0].value.abs() > 0.0)
        .map(|w| ((w[1].value - w[0].value) / w[0].value).abs())
        .collect();
    median(&mut steps)
}

/// Each point from the `SLOW_WINDOW`th on replaced by the median of it and the
/// `SLOW_WINDOW − 1` before it.
fn trailing_median(points: &[Point]) -> Vec<Point> {
    (SLOW_WINDOW - 1..points.len())
        .filter_map(|i| {
            let from = i + 1 - SLOW_WINDOW;
            let mut v: Vec<f64> = points[from..=i].iter().map(|p| p.value).collect();
            Some(Point {
                epoch: points[i].epoch,
                value: median(&mut v)?,
            })
        })
        .collect()
}

/// How far the best of a loss is below its first epoch, relative.
fn best_drop(series: &Series) -> Option<f64> {
    let first = series.first()?.value;
    let best = series.min()?.value;
    (first.is_finite() && first > 0.0).then(|| (first - best) / first)
}

/// Whether the run has learned: the training loss (else the validation loss) has come
/// down by `LEARNED_MIN_DROP` at its best.
fn learned(run: &Run) -> bool {
    [Canonical::Loss, Canonical::ValLoss]
        .into_iter()
        .find_map(|c| series(run, c))
        .and_then(best_drop)
        .is_some_and(|drop| drop >= LEARNED_MIN_DROP)
}

/// Whether a flat loss is the end of a converged run rather than a plateau: it came far
/// (`CAME_FAR_DROP`), its accuracy (if logged) reached `CONVERGED_ACCURACY`, and its
/// learning rate (if logged) was already decayed by `LR_DECAYED_FACTOR`.
/// Whether the logged learning rate ends `LR_DECAYED_FACTOR`× or more below its peak
/// (against the peak, not epoch 1: a warmup starts low); `None` when none is logged.
pub(super) fn lr_decayed(run: &Run) -> Option<bool> {
    series(run, Canonical::Lr).map(|lr| match (lr.max(), lr.last()) {
        (Some(peak), Some(l)) if peak.value > 0.0 && l.value.is_finite() => {
            l.value * LR_DECAYED_FACTOR <= peak.value
        }
        _ => false,
    })
}

fn converged(run: &Run, loss: &Series) -> bool {
    let came_far = best_drop(loss).is_some_and(|d| d >= CAME_FAR_DROP);
    let accurate = accuracy_for(run, loss)
        .and_then(Series::max)
        .map(|a| a.value >= CONVERGED_ACCURACY);
    let decayed = lr_decayed(run);
    // At least one of the two must speak for convergence, and neither against it.
    let said = accurate.is_some() || decayed.is_some();
    came_far && said && accurate != Some(false) && decayed != Some(false)
}

/// Whether a learning-rate schedule is lowering the step epoch after epoch since `from`
/// (cosine, linear or exponential decay): lower in at least half of the epochs. Cutting
/// the learning rate, what a plateau calls for, is already under way; a step cut by
/// ReduceLROnPlateau (a few epochs of the stretch) does not count.
fn schedule_decaying(run: &Run, from: u32) -> bool {
    let Some(lr) = series(run, Canonical::Lr) else {
        return false;
    };
    let points: Vec<Point> = lr
        .tail(RECENT_CAPACITY)
        .into_iter()
        .filter(|p| p.epoch >= from)
        .collect();
    let steps = points.len().saturating_sub(1);
    let lower = points
        .windows(2)
        .filter(|w| w[1].value < w[0].value)
        .count();
    steps >= PLATEAU_PATIENCE as usize && 2 * lower >= steps
}

fn plateau(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let min_epochs = MIN_EPOCHS.max(PLATEAU_PATIENCE as usize + 1);
    let Some(s) = loss_series(run, min_epochs) else {
        return;
    };
    let raw = s.tail(RECENT_CAPACITY);
    // Noise is read after the raw best, where the curve is flat, not on its descent.
    let raw_best = best_epoch(s);
    // A new best within the patience, smoothed or not, is progress.
    if raw_best.is_some_and(|b| {
        s.last()
            .is_some_and(|l| l.epoch.saturating_sub(b.epoch) < PLATEAU_PATIENCE)
    }) {
        return;
    }
    let after_best: Vec<Point> = match raw_best {
        Some(b) => raw.iter().copied().filter(|p| p.epoch >= b.epoch).collect(),
        None => Vec::new(),
    };
    let noisy = after_best.len() > 2 && jitter(&after_best).is_some_and(|j| j > NOISY_REL_JITTER);
    let (first, last, best) = if noisy {
        let smooth = trailing_median(&raw);
        // No new raw best for the patience and no downward trend since it: flat, however
        // the median drifts by hundredths of a percent (ReduceLROnPlateau and EarlyStopping
        // count from the raw best). A raw best that was a lucky dip on a curve still
        // falling shows a falling trend since, and the smoothed best decides. The trend
        // needs Prechelt's strip of k = `SLOW_WINDOW` epochs after the best to be a trend.
        let flat_since_raw_best = after_best.len() > SLOW_WINDOW
            && theil_sen_slope(&after_best).is_some_and(|slope| slope >= 0.0);
        let best = if flat_since_raw_best {
            raw_best
        } else {
            best_epoch_of(&smooth, None)
        };
        (s.first(), smooth.last().copied(), best)
    } else {
        (s.first(), s.last(), best_epoch(s))
    };
    // The best and the last are medians of 5 epochs unless the best is the raw one.
    let medians = noisy && best != raw_best;
    let (Some(first), Some(last), Some(best)) = (first, last, best) else {
        return;
    };
    if !first.value.is_finite() || !last.value.is_finite() || best.value <= 0.0 {
        return;
    }
    let since = last.epoch.saturating_sub(best.epoch);
    let stretch: Vec<Point> = s
        .tail(RECENT_CAPACITY)
        .into_iter()
        .filter(|p| p.epoch >= best.epoch)
        .collect();
    let rise = theil_sen_slope(&stretch).map_or(0.0, |slope| slope * f64::from(since));
    let best_is_start = best.epoch == first.epoch;
    let flat = rise <= PLATEAU_MAX_RISE * best.value && super::overfitting::judge(run).is_none();
    // A run that looks converged is still told when its validation loss has gone long
    // without a new best while training keeps improving: the usual patience has run out.
    let training_moves_on =
        s.name == Canonical::ValLoss.as_str() && since >= PLATEAU_LONG_PATIENCE && {
            let train: Vec<Point> = series(run, Canonical::Loss)
                .map(|t| t.tail(RECENT_CAPACITY))
                .unwrap_or_default()
                .into_iter()
                .filter(|p| p.epoch >= best.epoch)
                .collect();
            train.len() > SLOW_WINDOW && theil_sen_slope(&train).is_some_and(|slope| slope < 0.0)
        };
    if since < PLATEAU_PATIENCE
        || best_is_start
        || !flat
        || !learned(run)
        || (converged(run, s) && !training_moves_on)
        || schedule_decaying(run, best.epoch)
    {
        return;
    }
    let what = series_label(s, lang);
    let min_rel = num(PLATEAU_MIN_REL_IMPROVEMENT * 100.0);
    let (b, be, f, l, le) = (
        num(best.value),
        best.epoch,
        num(first.value),
        num(last.value),
        last.epoch,
    );
    // Flat after coming far, with no accuracy saying it has not converged: as likely the
    // end of a converged run (a language model, a regression, a run whose learning rate
    // is not logged) as a plateau, so it is said, not warned about. A smaller rate may
    // still gain a little; the rules decide that as for any plateau.
    let maybe_converged = best_drop(s).is_some_and(|d| d >= CAME_FAR_DROP)
        && accuracy_for(run, s)
            .and_then(Series::max)
            .is_none_or(|a| a.value >= CONVERGED_ACCURACY);
    let (severity, tail) = if training_moves_on && maybe_converged {
        (
            Severity::Info,
            say!(
                lang,
                " It came far, but the training loss kept falling all that time: the epochs since the best fit the training data only, past the {} epochs ReduceLROnPlateau waits by default.",
                "它已下降了很多，但此间训练损失仍在下降：最佳轮次之后的训练只是在拟合训练数据，已超过 ReduceLROnPlateau 默认等待的 {} 轮。",
                PLATEAU_LONG_PATIENCE
            ),
        )
    } else if maybe_converged {
        (
            Severity::Info,
            say!(
                lang,
                " It came far and may have converged; a smaller learning rate may still gain a little.",
                "它已下降了很多，可能已经收敛；更小的学习率或许还能带来少许改善。"
            ),
        )
    } else {
        (Severity::Warning, String::new())
    };
    let (of, of_zh) = if medians {
        (
            format!(" (as a median of {SLOW_WINDOW} epochs)"),
            format!("（按 {SLOW_WINDOW} 轮中位数）"),
        )
    } else {
        (String::new(), String::new())
    };
    let summary = match lang {
        Lang::En => format!(
            "The {what} has not improved by more than {min_rel}% for {since} epochs: its best{of} was {b} at epoch {be} (down from {f} at epoch 1), and it is {l} at epoch {le}.{tail}"
        ),
        Lang::Zh => format!(
            "{what}已连续 {since} 轮没有超过 {min_rel}% 的改善：最佳值{of_zh}是第 {be} 轮的 {b}（第 1 轮为 {f}），第 {le} 轮为 {l}。{tail}"
        ),
    };
    out.findings.push(Finding {
        id: FindingId::Plateau,
        severity,
        summary,
        evidence: evidence![
            "series" => s.name.as_str(),
            "best" => best.value,
            "best_epoch" => best.epoch,
            "epochs_since_best" => since,
            "first" => first.value,
            "last" => last.value,
            "last_epoch" => last.epoch,
            "min_rel_improvement" => PLATEAU_MIN_REL_IMPROVEMENT,
            "patience" => PLATEAU_PATIENCE,
            "trend_rise_since_best" => rise,
            "smoothed" => noisy,
            "training_still_falling" => training_moves_on,
        ],
    });
}

/// Whether the points fall as a trend (`falling`) without levelling off: the second half
/// falls at least `SLOW_LINE_MIN_SLOPE_RATIO` as fast as the first (Theil–Sen slopes).
fn falling_straight(points: &[Point]) -> bool {
    let (a, b) = points.split_at(points.len() / 2);
    falling(points)
        && matches!(
            (theil_sen_slope(a), theil_sen_slope(b)),
            (Some(sa), Some(sb)) if sa < 0.0 && sb <= SLOW_LINE_MIN_SLOPE_RATIO * sa
        )
}

/// Whether the points fall as a trend: Mann–Kendall at 5%, or never higher than the
/// epoch before and lower at the end (a crawl too short or too coarsely logged, with ties
/// at 4 decimals, for the test to reach 5%).
fn falling(points: &[Point]) -> bool {
    let monotone = points.len() >= 2
        && points.windows(2).all(|w| w[1].value <= w[0].value)
        && points[points.len() - 1].value < points[0].value;
    monotone || mann_kendall_z(points).is_some_and(|z| z <= -MK_Z_5PCT)
}

/// Whether the loss sits at the chance floor ln C of the class count the chance check
/// found.
fn at_chance_floor(out: &Diagnosis, loss: f64) -> bool {
    out.classes.as_ref().is_some_and(|c| {
        let chance = f64::from(c.value).ln();
        c.value >= 2 && (loss / chance - 1.0).abs() <= CHANCE_FLOOR_REL
    })
}

fn slow_convergence(run: &Run, lang: Lang, out: &mut Diagnosis) {
    // Speed of learning is read on the training loss; validation stands in without one.
    let (loss, accuracy) = match series(run, Canonical::Loss) {
        Some(l) => (l, series(run, Canonical::Accuracy)),
        None => match series(run, Canonical::ValLoss) {
            Some(l) => (l, series(run, Canonical::ValAccuracy)),
            None => return,
        },
    };
    if loss.len() < MIN_EPOCHS {
        return;
    }
    // Before SLOW_WINDOW epochs exist, only a loss that has not moved at all counts: a
    // trainer calling every epoch should not wait five epochs to hear that the step size
    // is a thousand times too small.
    let early = loss.len() < SLOW_WINDOW;
    let limit = if early {
        STUCK_MAX_REL_DROP_PER_EPOCH
    } else {
        SLOW_MIN_REL_DROP_PER_EPOCH
    };
    let Some(first) = loss.first() else { return };
    let line = loss.tail(SLOW_LINE_WINDOW);
    let window = loss.tail(SLOW_WINDOW);
    if window.len() < SLOW_WINDOW.min(loss.len())
        || !first.value.is_finite()
        || first.value <= 0.0
        || line.iter().any(|p| !p.value.is_finite() || p.value <= 0.0)
    {
        return;
    }
    let steps = (window.len() - 1) as f64;
    let mean_rel_drop = window
        .windows(2)
        .map(|w| (w[0].value - w[1].value) / w[0].value)
        .sum::<f64>()
        / steps;
    let (w_first, w_last) = (window[0], window[window.len() - 1]);
    let accuracy_gain = accuracy.and_then(|a| {
        let start = a.at(w_first.epoch)?;
        let end = a.at(w_last.epoch)?;
        (start.is_finite() && end.is_finite())
            .then(|| (end - start) / f64::from(w_last.epoch - w_first.epoch))
    });
    let total_drop = (first.value - w_last.value) / first.value;
    // A loss that does not fall as a trend is not converging at all (not learning, or at
    // chance), and one at the chance floor has nowhere to go without learning.
    if !falling(&window) || at_chance_floor(out, w_last.value) {
        return;
    }
    let barely = mean_rel_drop < limit
        && accuracy_gain.is_none_or(|g| g < SLOW_MIN_ACCURACY_GAIN_PER_EPOCH)
        && total_drop < LEARNED_MIN_DROP
        && best_drop(loss).is_some_and(|d| d < LEARNED_MIN_DROP);
    // Still falling in a straight line, far from where a converging run gets: the second
    // half of the window falls as fast as the first, the loss is still within
    // `CAME_FAR_DROP` of epoch 1, and the accuracy (if logged) has not converged.
    let straight = line.len() >= SLOW_LINE_WINDOW
        && falling_straight(&line)
        && best_drop(loss).is_some_and(|d| d < CAME_FAR_DROP)
        && accuracy
            .and_then(Series::max)
            .is_none_or(|a| a.value < CONVERGED_ACCURACY);
    if !barely && !straight {
        ended_still_falling(run, lang, out);
        return;
    }
    let what = series_label(loss, lang);
    let n = window.len();
    let moved = say!(
        lang,
        "fell {}% per epoch on average",
        "平均每轮仅下降 {}%",
        num(mean_rel_drop * 100.0)
    );
    let since_first = say!(lang, "only {}% below", "只低 {}%", num(total_drop * 100.0));
    let (f, l, le) = (num(first.value), num(w_last.value), w_last.epoch);
    let acc = match (accuracy, accuracy_gain) {
        (Some(a), Some(g)) => say!(
            lang,
            ", and the {} changes {} per epoch",
            "，{}每轮变化 {}",
            series_label(a, lang),
            num(g)
        ),
        _ => String::new(),
    };
    let summary = if barely {
        say!(
            lang,
            "Over the last {n} epochs the {what} {moved}{acc}; at epoch {le} it is {l}, {since_first} the {f} of epoch 1.",
            "最近 {n} 轮{what}{moved}{acc}；第 {le} 轮为 {l}，与第 1 轮的 {f} 相比{since_first}。"
        )
    } else {
        let ln = line.len();
        say!(
            lang,
            "Over the last {ln} epochs the {what} has fallen in a straight line, {moved}{acc}, without levelling off; at epoch {le} it is {l}, {since_first} the {f} of epoch 1: at this pace it is far from converged.",
            "最近 {ln} 轮{what}呈直线下降，{moved}{acc}，没有放缓；第 {le} 轮为 {l}，与第 1 轮的 {f} 相比{since_first}：按此速度远未收敛。"
        )
    };
    out.findings.push(Finding {
        id: FindingId::SlowConvergence,
        severity: Severity::Warning,
        summary,
        evidence: evidence![
            "series" => loss.name.as_str(),
            "first" => first.value,
            "last" => w_last.value,
            "epochs" => n,
            "mean_rel_drop_per_epoch" => mean_rel_drop,
            "accuracy_gain_per_epoch" => accuracy_gain,
            "total_rel_drop" => total_drop,
            "accuracy_series" => accuracy.map(|a| a.name.clone()),
            "reason" => if barely { "barely_moving" } else { "straight_line" },
        ],
    });
}

/// No net progress from the first epoch: the loss does not fall as a trend, and the
/// accuracy gained less than `NOT_LEARNING_ACCURACY_GAIN` (or, with no accuracy, the loss
/// stayed within `LEARNED_MIN_DROP` of epoch 1). Beside `chance_level` it says the run
/// never left chance; without it, it is the finding for when chance cannot be judged.
/// A run that reached the end it was planned for (the config's or the log's epochs, an HF
/// run's steps) while its loss (the validation loss when there is one: what more epochs
/// would buy) still falls in a straight line: it stopped before converging. Nothing is
/// wrong with it, so it is said, not warned about; a trainer calling every epoch never
/// hears it before the last one.
fn ended_still_falling(run: &Run, lang: Lang, out: &mut Diagnosis) {
    let Some(planned) = run.facts.planned_epochs.as_ref().map(|p| p.value) else {
        return;
    };
    let Some(loss) = [Canonical::ValLoss, Canonical::Loss]
        .into_iter()
        .filter_map(|c| series(run, c))
        .find(|s| s.len() >= SLOW_LINE_WINDOW)
    else {
        return;
    };
    let all = loss.tail(SLOW_LINE_WINDOW);
    let line = latest_run(&all);
    let (Some(first), Some(last)) = (line.first().copied(), line.last().copied()) else {
        return;
    };
    // Evaluations as the x-axis: the last evaluation falls before the run's last steps
    // when the evaluation interval does not divide them (33 evaluations every 50 steps of
    // a 1,689-step run planned as 34), so one short of the plan is the end.
    let slack = u32::from(run.metrics.eval_axis.is_some());
    if last.epoch + slack < planned
        || line.len() < SLOW_LINE_WINDOW
        || line.iter().any(|p| !p.value.is_finite() || p.value <= 0.0)
    {
        return;
    }
    let fall = (first.value - last.value) / first.value;
    if !falling_straight(line) || fall < ENDED_MIN_FALL {
        return;
    }
    let what = series_label(loss, lang);
    let n = line.len();
    let per_epoch = num(fall / (n - 1) as f64 * 100.0);
    let (f, l, fe, le) = (num(first.value), num(last.value), first.epoch, last.epoch);
    out.findings.push(Finding {
        id: FindingId::SlowConvergence,
        severity: Severity::Info,
        summary: say!(
            lang,
            "The run reached the end it was planned for with the {what} still falling in a straight line: {f} at epoch {fe}, {l} at epoch {le}, {per_epoch}% per epoch without levelling off. It stopped before converging: more epochs would likely still improve it.",
            "训练已到计划的终点，而{what}仍在直线下降：第 {fe} 轮 {f}，第 {le} 轮 {l}，每轮 {per_epoch}%，没有放缓。训练在收敛前就停止了：再多训练几轮很可能还会改善。"
        ),
        evidence: evidence![
            "series" => loss.name.as_str(),
            "first" => first.value,
            "first_epoch" => fe,
            "last" => last.value,
            "last_epoch" => le,
            "planned_epochs" => planned,
            "epochs" => n,
            "mean_rel_drop_per_epoch" => fall / (n - 1) as f64,
            "reason" => "ended_still_falling",
        ],
    });
}

fn not_learning(run: &Run, lang: Lang, out: &mut Diagnosis) {
    // Validation at chance while training learns is its own finding; a divergence from a
    // sane start explains the lack of progress. A run at chance is judged here too: the
    // chance check says where the run is, this says it never moved from there (QuALITY's
    // 4-way run: eval loss ln 4 and train loss 1.38–1.41 over 20 epochs), which a run that
    // learned and fell back to chance did not do. A loss absurd from its first epoch that
    // never came down (1.5e8–7.9e8 over 10 epochs, tests/real/lightning_grapevine) never
    // had a sane start to lose: that it made no progress is the second fact about it.
    let diverged_from_sane = out
        .get(FindingId::Divergence)
        .is_some_and(|d| !d.evidence["last_sane_epoch"].is_null());
    // A loss still coming down slowly is moving: `slow_convergence` has said so.
    if out.has(FindingId::ValAtChance) || out.has(FindingId::SlowConvergence) || diverged_from_sane
    {
        return;
    }
    let Some(loss) = [Canonical::Loss, Canonical::ValLoss]
        .into_iter()
        .filter_map(|c| series(run, c))
        .find(|s| s.len() >= NOT_LEARNING_MIN_EPOCHS)
    else {
        return;
    };
    let all = loss.tail(RECENT_CAPACITY);
    let points = latest_run(&all);
    let restarted = points.len() < all.len();
    let Some(first) = (if restarted {
        points.first().copied()
    } else {
        loss.first()
    }) else {
        return;
    };
    if points.len() < NOT_LEARNING_MIN_EPOCHS
        || !first.value.is_finite()
        || first.value <= 0.0
        || points.iter().any(|p| !p.value.is_finite())
    {
        return;
    }
    let recent = |s: &Series| {
        let mut v: Vec<f64> = s.tail(SLOW_WINDOW).iter().map(|p| p.value).collect();
        median(&mut v)
    };
    let Some(loss_recent) = recent(loss) else {
        return;
    };
    // A step-level log's first point is the mean of its first epoch (or evaluation): a run
    // that came down within it started where its first logged value is (a Whisper
    // fine-tune evaluated every 250 steps: 0.83 at its first log, 0.25 as the mean up to the
    // first evaluation; held-out by the readers, hf_whisper_tr_val_worse_after_warmup).
    let start = loss
        .first_logged()
        .filter(|v| !restarted && v.is_finite() && *v > first.value)
        .unwrap_or(first.value);
    let loss_drop = (start - loss_recent) / start;
    // A fall is progress when it is a trend and more than a stuck loss drifts: a loss at
    // ln 2 going 0.6952 → 0.6929 in 5 epochs is a Mann–Kendall trend at full precision
    // and none at the console's 4 decimals, and in neither case is it learning.
    let stuck_drift = STUCK_MAX_REL_DROP_PER_EPOCH * points.len() as f64;
    if falling(points) && loss_drop >= stuck_drift {
        return;
    }
    let accuracy = accuracy_for(run, loss).filter(|a| a.len() >= NOT_LEARNING_MIN_EPOCHS);
    let accuracy_first = accuracy.and_then(|a| {
        if restarted {
            a.at(first.epoch)
        } else {
            Some(a.first()?.value)
        }
    });
    let accuracy_gain = accuracy.and_then(|a| Some(recent(a)? - accuracy_first?));
    // An accuracy that has reached a converged level learned, if only in epoch 1 (a
    // pretrained model fine-tuned): staying there is not "not learning".
    let accurate = accuracy
        .and_then(Series::max)
        .is_some_and(|a| a.value >= CONVERGED_ACCURACY);
    let stuck = !accurate
        && match accuracy_gain {
            Some(g) => g.is_finite() && g < NOT_LEARNING_ACCURACY_GAIN,
            None => loss_drop < LEARNED_MIN_DROP,
        };
    if !stuck {
        return;
    }
    let what = series_label(loss, lang);
    let n = loss.len();
    let (f, r) = (num(first.value), num(loss_recent));
    let acc = match (accuracy, accuracy_gain) {
        (Some(a), Some(g)) => {
            let (af, ar) = (num(accuracy_first.unwrap_or(f64::NAN)), num(g));
            say!(
                lang,
                ", and the {} moved {ar} from its {af} of epoch 1",
                "，{}相对第 1 轮的 {af} 仅变化 {ar}",
                series_label(a, lang)
            )
        }
        _ => String::new(),
    };
    let unknown = if out.classes.is_none() {
        say!(
            lang,
            "; the class count is unknown, so whether it sits at chance cannot be said (give --num-classes N)",
            "；类别数未知，无法判断是否处于随机水平（请用 --num-classes N 指定）"
        )
    } else {
        String::new()
    };
    out.findings.push(Finding {
        id: FindingId::NotLearning,
        severity: Severity::Warning,
        summary: say!(
            lang,
            "After {n} epochs the {what} has made no net progress from epoch 1: {f} then, {r} now (median of the last {SLOW_WINDOW} epochs), with no downward trend{acc}. The model is not learning{unknown}.",
            "训练 {n} 轮后{what}相对第 1 轮没有净进展：当时 {f}，现在 {r}（最近 {SLOW_WINDOW} 轮中位数），没有下降趋势{acc}。模型没有在学习{unknown}。"
        ),
        evidence: evidence![
            "series" => loss.name.as_str(),
            "epochs" => n,
            "first" => first.value,
            "recent_median" => loss_recent,
            "start" => start,
            "rel_drop" => loss_drop,
            "mann_kendall_z" => mann_kendall_z(points),
            "accuracy_series" => accuracy.map(|a| a.name.clone()),
            "accuracy_gain" => accuracy_gain,
        ],
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnose::fixture::Fixture;
    use serde_json::Value;

    const HEALTHY_LOSS: [f64; 10] = [2.1, 1.3, 0.95, 0.78, 0.66, 0.58, 0.52, 0.47, 0.43, 0.40];
    const HEALTHY_VAL: [f64; 10] = [1.5, 1.1, 0.9, 0.8, 0.72, 0.66, 0.62, 0.59, 0.57, 0.555];
    const HEALTHY_ACC: [f64; 10] = [0.3, 0.55, 0.67, 0.73, 0.77, 0.8, 0.82, 0.84, 0.85, 0.86];

    #[test]
    fn a_healthy_run_has_no_trend_finding() {
        let d = Fixture::new()
            .series("loss", &HEALTHY_LOSS)
            .series("val_loss", &HEALTHY_VAL)
            .series("accuracy", &HEALTHY_ACC)
            .check(check);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
    }

    #[test]
    fn a_flat_validation_loss_after_progress_is_a_plateau() {
        let val = [1.5, 1.0, 0.8, 0.7, 0.70005, 0.69995, 0.7001];
        let d = Fixture::new()
            .series("loss", &[2.0, 1.2, 0.9, 0.75, 0.7, 0.66, 0.63])
            .series("val_loss", &val)
            .check(check);
        let f = d.get(FindingId::Plateau).expect("plateau");
        let e = &f.evidence;
        assert_eq!(e["series"], "val_loss");
        assert_eq!(e["best"], 0.7);
        assert_eq!(e["best_epoch"], 4, "0.69995 is within 0.01% of 0.7");
        assert_eq!(e["epochs_since_best"], 3);
        assert_eq!(e["first"], 1.5);
        assert_eq!(e["last"], 0.7001);
        assert!(f.summary.contains("epoch 4"), "{}", f.summary);
        assert!(!d.has(FindingId::SlowConvergence), "it learned: not slow");
    }

    #[test]
    fn a_noisy_flat_validation_loss_long_after_its_best_is_a_plateau() {
        // configs/examples/sweep/lr_0.01 (Keras, Adam at 0.01): the best 0.5271 at epoch 7,
        // then 8 epochs hovering around 0.54 (steps of 1–3%, so the curve is noisy) while
        // the training loss keeps falling. Its 5-epoch median drifts down by 0.09% at the
        // end, which must not count as progress.
        let val = [
            0.6367, 0.5935, 0.5449, 0.5542, 0.6027, 0.5631, 0.5271, 0.5299, 0.5488, 0.5433, 0.5447,
            0.5350, 0.5517, 0.5398, 0.5428,
        ];
        let loss = [
            1.080, 0.488, 0.439, 0.399, 0.354, 0.340, 0.297, 0.277, 0.271, 0.269, 0.240, 0.235,
            0.230, 0.220, 0.216,
        ];
        let d = Fixture::new()
            .series("loss", &loss)
            .series("val_loss", &val)
            .check(check);
        let e = &d.get(FindingId::Plateau).expect("plateau").evidence;
        assert_eq!(e["best"], 0.5271);
        assert_eq!(e["best_epoch"], 7);
        assert_eq!(e["epochs_since_best"], 8);
        assert_eq!(e["smoothed"], true);
    }

    #[test]
    fn a_noisy_curve_still_falling_after_a_lucky_dip_is_not_a_plateau() {
        // The dip at epoch 5 is 6 epochs old, but the curve since falls as a trend.
        let val = [
            1.0, 0.9, 0.85, 0.8, 0.70, 0.79, 0.78, 0.765, 0.77, 0.75, 0.755, 0.74,
        ];
        let d = Fixture::new()
            .series(
                "loss",
                &[
                    1.2, 1.0, 0.9, 0.8, 0.75, 0.7, 0.66, 0.62, 0.6, 0.57, 0.55, 0.52,
                ],
            )
            .series("val_loss", &val)
            .check(check);
        assert!(!d.has(FindingId::Plateau), "{:?}", d.findings);
    }

    #[test]
    fn a_converged_run_whose_validation_stalled_long_while_training_fell_is_told() {
        // Held-out set 3's car CNN, shortened: val_loss 1.9 → best 0.717, then 0.72–0.82 for
        // 12 epochs, val_accuracy 0.75 (converged by the accuracy), training still falling.
        let mut val = vec![1.9, 1.4, 1.1, 0.9, 0.8, 0.75, 0.717];
        val.extend([
            0.74, 0.78, 0.72, 0.76, 0.82, 0.73, 0.75, 0.77, 0.74, 0.79, 0.75, 0.746,
        ]);
        let train: Vec<f64> = (0..val.len())
            .map(|i| 1.8 / (1.0 + 0.3 * i as f64))
            .collect();
        let acc = vec![0.75; val.len()];
        let d = Fixture::new()
            .series("val_loss", &val)
            .series("loss", &train)
            .series("val_accuracy", &acc)
            .check(check);
        let f = d
            .get(FindingId::Plateau)
            .expect("a stalled validation loss");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.evidence["epochs_since_best"], 12);
        assert_eq!(f.evidence["training_still_falling"], true);
        // The same stall with the training loss flat too is a converged run: quiet.
        let flat = vec![0.5; val.len()];
        let d = Fixture::new()
            .series("val_loss", &val)
            .series("loss", &flat)
            .series("val_accuracy", &acc)
            .check(check);
        assert!(!d.has(FindingId::Plateau), "{:?}", d.findings);
        // And a stall shorter than ReduceLROnPlateau's patience is too.
        let d = Fixture::new()
            .series("val_loss", &val[..15])
            .series("loss", &train[..15])
            .series("val_accuracy", &acc[..15])
            .check(check);
        assert!(!d.has(FindingId::Plateau), "{:?}", d.findings);
    }

    #[test]
    fn a_loss_that_came_down_within_its_first_point_learned() {
        // Evaluations as the x-axis: the first point is the mean of the training logs up to
        // the first evaluation, 0.83 at the first log and 0.12 at the last, 0.2 on average.
        let mut f = Fixture::new();
        for v in [0.83, 0.2, 0.15, 0.12, 0.12, 0.11, 0.12, 0.11, 0.12, 0.12] {
            f = f.at("loss", 1, v);
        }
        for (e, v) in [(2, 0.20), (3, 0.19), (4, 0.21), (5, 0.20), (6, 0.20)] {
            f = f.at("loss", e, v);
        }
        let d = f.check(check);
        assert!(!d.has(FindingId::NotLearning), "{:?}", d.findings);
        // The same points logged once a point are flat from the start: not learning.
        let flat = [0.2, 0.20, 0.19, 0.21, 0.20, 0.20];
        let d = Fixture::new().series("loss", &flat).check(check);
        assert!(d.has(FindingId::NotLearning), "{:?}", d.findings);
    }

    #[test]
    fn two_flat_epochs_are_not_yet_a_plateau() {
        let d = Fixture::new()
            .series("val_loss", &[1.5, 1.0, 0.8, 0.7, 0.7005, 0.701])
            .check(check);
        assert!(!d.has(FindingId::Plateau));
    }

    #[test]
    fn a_loss_flat_from_the_start_is_not_learning_not_a_plateau_nor_slow() {
        // Noisy and flat from epoch 1 with the accuracy flat: no C is known here (the
        // chance check is not run), so it is not learning.
        let loss = [1.10, 1.098, 1.097, 1.099, 1.096, 1.097];
        let d = Fixture::new()
            .series("loss", &loss)
            .series("accuracy", &[0.33, 0.34, 0.33, 0.34, 0.35, 0.34])
            .check(check);
        assert!(
            !d.has(FindingId::Plateau),
            "no progress ever: nothing to plateau from"
        );
        assert!(!d.has(FindingId::SlowConvergence), "no downward trend");
        let e = &d
            .get(FindingId::NotLearning)
            .expect("not learning")
            .evidence;
        assert_eq!(e["series"], "loss");
        assert_eq!(e["first"], 1.1);
        assert_eq!(e["accuracy_gain"], 0.01);
    }

    #[test]
    fn a_falling_loss_or_a_learned_accuracy_is_not_not_learning() {
        // A fine-tuned model at 0.82 accuracy from epoch 1 learned, if only in epoch 1.
        let d = Fixture::new()
            .series("loss", &[0.52, 0.39, 0.45, 0.41, 0.5, 0.44])
            .series("accuracy", &[0.82, 0.86, 0.84, 0.85, 0.83, 0.84])
            .check(check);
        assert!(!d.has(FindingId::NotLearning), "{:?}", d.findings);
        // Runs appended to one file: judged within the last (epoch counter restarts).
        let d = Fixture::new()
            .series("loss", &[0.52, 0.39, 0.38, 0.35, 0.32, 0.33])
            .series("loss", &[2.29, 1.23, 0.96, 0.80, 0.71])
            .check(check);
        assert!(!d.has(FindingId::NotLearning), "{:?}", d.findings);
    }

    #[test]
    fn a_straight_line_fall_far_from_done_is_slow_on_validation_alone() {
        // About ln 10 and falling by the same step every epoch: 10 epochs, 17% down.
        let val = [2.27, 2.23, 2.19, 2.14, 2.10, 2.06, 2.01, 1.97, 1.93, 1.88];
        let d = Fixture::new().series("val_loss", &val).check(check);
        let e = &d.get(FindingId::SlowConvergence).expect("slow").evidence;
        assert_eq!(e["series"], "val_loss");
        assert_eq!(e["reason"], "straight_line");
        // The same start levelling off (a healthy decay) is not slow.
        let healthy = [2.27, 1.6, 1.25, 1.05, 0.93, 0.86, 0.81, 0.78, 0.76, 0.75];
        let d = Fixture::new().series("val_loss", &healthy).check(check);
        assert!(!d.has(FindingId::SlowConvergence), "{:?}", d.findings);
    }

    #[test]
    fn a_converged_run_with_a_decayed_learning_rate_is_not_a_plateau() {
        let val = [
            1.37, 0.95, 0.8, 0.7, 0.62, 0.6, 0.595, 0.597, 0.596, 0.598, 0.597,
        ];
        let acc = [
            0.62, 0.75, 0.8, 0.83, 0.85, 0.87, 0.87, 0.87, 0.87, 0.87, 0.87,
        ];
        let lr = [
            1e-3, 1e-3, 1e-3, 3e-4, 3e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6, 1e-6,
        ];
        let loss = [1.7, 1.1, 0.9, 0.7, 0.55, 0.45, 0.4, 0.38, 0.37, 0.37, 0.36];
        let run = || {
            Fixture::new()
                .series("loss", &loss)
                .series("val_loss", &val)
                .series("val_accuracy", &acc)
        };
        let d = run().series("lr", &lr).check(check);
        assert!(!d.has(FindingId::Plateau), "{:?}", d.findings);
        // At its first learning rate, the same curve is a plateau a smaller step may help.
        let d = run().series("lr", &[1e-3; 11]).check(check);
        assert!(d.has(FindingId::Plateau));
    }

    #[test]
    fn at_the_chance_floor_a_loss_is_not_slow() {
        let mut d = Diagnosis {
            classes: Some(crate::types::Known {
                value: 10,
                source: "test".into(),
            }),
            ..Diagnosis::default()
        };
        let run = Fixture::new()
            .series(
                "loss",
                &[2.30281, 2.30277, 2.30274, 2.3027, 2.30265, 2.30262],
            )
            .run();
        slow_convergence(&run, Lang::En, &mut d);
        assert!(!d.has(FindingId::SlowConvergence));
        // 6% above ln 10 and falling every epoch (configs/examples/keras/lr_too_low) is.
        let run = Fixture::new()
            .series(
                "loss",
                &[2.45078, 2.45075, 2.45073, 2.4507, 2.45068, 2.45065],
            )
            .run();
        slow_convergence(&run, Lang::En, &mut d);
        assert!(d.has(FindingId::SlowConvergence));
    }

    #[test]
    fn a_run_that_ended_still_falling_in_a_straight_line_is_told_so() {
        // 12 planned epochs, a validation loss 45% down and still falling ~1.5% an epoch.
        let val: Vec<f64> = (0..12)
            .map(|i| {
                if i < 2 {
                    1.8 - 0.3 * i as f64
                } else {
                    1.1 - 0.015 * i as f64
                }
            })
            .collect();
        let train: Vec<f64> = val.iter().map(|v| v * 0.95).collect();
        let fixture = || {
            Fixture::new()
                .series("loss", &train)
                .series("val_loss", &val)
                .config(r#"{"epochs": 12}"#)
        };
        let d = fixture().check(check);
        let f = d
            .get(FindingId::SlowConvergence)
            .expect("ended still falling");
        assert_eq!(f.severity, Severity::Info);
        assert_eq!(f.evidence["reason"], "ended_still_falling");
        // Before its end (a trainer asking after epoch 12 of 30) it is an ordinary run.
        let d = Fixture::new()
            .series("loss", &train)
            .series("val_loss", &val)
            .config(r#"{"epochs": 30}"#)
            .check(check);
        assert!(!d.has(FindingId::SlowConvergence), "{:?}", d.findings);
        // A loss levelling off at the end is converging, not cut short.
        let easing: Vec<f64> = (0..12).map(|i| 0.2 + 0.8 * 0.6f64.powi(i)).collect();
        let d = Fixture::new()
            .series("val_loss", &easing)
            .series("loss", &easing)
            .config(r#"{"epochs": 12}"#)
            .check(check);
        assert!(!d.has(FindingId::SlowConvergence), "{:?}", d.findings);
    }

    #[test]
    fn a_crawling_loss_without_accuracy_is_slow_and_accuracy_can_clear_it() {
        let loss = [2.30, 2.29, 2.27, 2.26, 2.24, 2.23, 2.21];
        let d = Fixture::new().series("loss", &loss).check(check);
        let e = &d.get(FindingId::SlowConvergence).expect("slow").evidence;
        assert_eq!(e["accuracy_gain_per_epoch"], Value::Null);
        assert!(e["mean_rel_drop_per_epoch"].as_f64().unwrap() < 0.01);
        // The same loss while accuracy climbs 3 points an epoch is learning.
        let d = Fixture::new()
            .series("loss", &loss)
            .series("accuracy", &[0.1, 0.13, 0.16, 0.19, 0.22, 0.25, 0.28])
            .check(check);
        assert!(!d.has(FindingId::SlowConvergence));
    }

    #[test]
    fn a_validation_loss_that_rose_well_above_its_best_is_not_flat() {
        let d = Fixture::new()
            .series("loss", &[2.0, 1.2, 0.9, 0.75, 0.7, 0.66, 0.63])
            .series("val_loss", &[1.5, 1.0, 0.8, 0.82, 0.85, 0.86, 0.9])
            .check(check);
        assert!(!d.has(FindingId::Plateau));
    }

    #[test]
    fn a_validation_loss_that_never_improved_is_not_a_plateau() {
        let d = Fixture::new()
            .series("loss", &[2.0, 1.2, 0.9, 0.75, 0.7, 0.66, 0.63])
            .series("val_loss", &[1.5, 1.51, 1.505, 1.51, 1.5, 1.505, 1.51])
            .check(check);
        assert!(!d.has(FindingId::Plateau));
    }

    #[test]
    fn a_chance_level_run_is_not_a_plateau() {
        // A real Keras LSTM on random labels (an earlier version of
        // configs/examples/keras/chance_level): the validation loss improved 0.1% once,
        // the training loss 1% in all; nothing was learned to plateau from.
        let d = Fixture::new()
            .series("loss", &[0.6952, 0.6920, 0.6903, 0.6897, 0.6885, 0.6881])
            .series(
                "val_loss",
                &[0.69656, 0.69575, 0.69614, 0.69588, 0.69689, 0.69776],
            )
            .check(check);
        assert!(!d.has(FindingId::Plateau));
        assert!(d.has(FindingId::SlowConvergence));
    }

    #[test]
    fn a_loss_rising_from_the_start_is_not_learning_not_slow() {
        let d = Fixture::new()
            .series("loss", &[1.0, 1.0, 1.01, 1.02, 1.025, 1.03])
            .check(check);
        assert!(
            !d.has(FindingId::SlowConvergence),
            "it does not converge at all"
        );
        let e = &d
            .get(FindingId::NotLearning)
            .expect("not learning")
            .evidence;
        assert_eq!(e["first"], 1.0);
        assert_eq!(e["recent_median"], 1.02);
    }

    #[test]
    fn too_few_epochs_judge_nothing() {
        let d = Fixture::new().series("loss", &[1.1, 1.1]).check(check);
        assert!(d.findings.is_empty());
    }

    #[test]
    fn before_five_epochs_only_a_stuck_loss_is_slow() {
        let stuck = Fixture::new()
            .series("loss", &[2.786, 2.7847, 2.783, 2.7814])
            .check(check);
        assert!(
            stuck.has(FindingId::SlowConvergence),
            "{:?}",
            stuck.findings
        );
        // Falling 1% an epoch in the first epochs is learning, however slowly.
        let slow = Fixture::new()
            .series("loss", &[2.0, 1.98, 1.96, 1.94])
            .check(check);
        assert!(!slow.has(FindingId::SlowConvergence));
    }

    #[test]
    fn a_run_that_learned_then_flattened_is_not_slow() {
        let loss = [2.0, 1.0, 0.6, 0.5, 0.49999, 0.49998, 0.49997, 0.49996];
        let d = Fixture::new().series("loss", &loss).check(check);
        assert!(!d.has(FindingId::SlowConvergence));
        assert!(d.has(FindingId::Plateau));
    }
}
