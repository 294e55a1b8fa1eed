//! What followed each earlier adjustment of a run: the metrics recorded in its history
//! line against the metrics now. The report lists these sentences; the rules advisor and
//! the LLM prompt read the same `measure` result, so all three tell one story. This module
//! only compares numbers; whether an adjustment should be undone is the advisor's call.

use crate::history::HistoryEntry;
use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::Canonical;
use crate::num::{change_text, num};
use crate::run::Run;

/// A move smaller than this, relative to where the metric was, is epoch-to-epoch noise,
/// not an effect (the plateau detector's 0.1% is for a best value; a last value wobbles
/// more).
pub const FLAT_RELATIVE: f64 = 0.01;

/// Whether a metric moved the way one wants it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Better,
    Worse,
    Flat,
}

/// One metric then (at the adjustment) and now (the latest complete epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub metric: Canonical,
    /// The name as the metrics file spells it.
    pub name: String,
    pub then: f64,
    pub now: f64,
    pub verdict: Verdict,
}

/// An earlier adjustment and what the metrics did after it.
#[derive(Debug, Clone)]
pub struct Effect<'a> {
    pub entry: &'a HistoryEntry,
    /// Complete epochs since the adjustment; `None` when its epoch was not recorded.
    pub epochs_since: Option<u32>,
    /// Headline loss first (validation loss when both moments have it), then accuracy.
    /// Empty when no epoch finished since.
    pub moves: Vec<Move>,
}

/// Every history entry of the run, oldest first, with what followed it.
pub fn measure(run: &Run) -> Vec<Effect<'_>> {
    let now_epoch = run.facts.epochs_done;
    run.history
        .iter()
        .map(|entry| {
            let epochs_since = entry.epoch.map(|e| now_epoch.saturating_sub(e));
            let moves = if epochs_since == Some(0) {
                Vec::new()
            } else {
                [
                    [Canonical::ValLoss, Canonical::Loss],
                    [Canonical::ValAccuracy, Canonical::Accuracy],
                ]
                .iter()
                .filter_map(|choices| choices.iter().find_map(|c| metric_move(run, entry, *c)))
                .collect()
            };
            Effect {
                entry,
                epochs_since,
                moves,
            }
        })
        .collect()
}

/// One sentence per earlier adjustment, oldest first, e.g. "epoch 2: learning_rate
/// 0.3 → 0.03; in the 3 epochs since, val_loss 2.31 → 1.12 (−51.5%, better)".
pub fn effects(run: &Run, lang: Lang) -> Vec<String> {
    measure(run)
        .iter()
        .map(|effect| sentence(effect, run.facts.epochs_done, lang))
        .collect()
}

fn metric_move(run: &Run, entry: &HistoryEntry, metric: Canonical) -> Option<Move> {
    let series = run.metrics.get(metric)?;
    let now = series.last()?;
    let then = entry
        .metric(metric.as_str())
        .or_else(|| entry.epoch.and_then(|e| series.at(e)))?;
    Some(Move {
        metric,
        name: series.original.clone(),
        then,
        now: now.value,
        verdict: verdict(metric, then, now.value),
    })
}

fn verdict(metric: Canonical, then: f64, now: f64) -> Verdict {
    match (then.is_finite(), now.is_finite()) {
        (false, true) => return Verdict::Better,
        (true, false) => return Verdict::Worse,
        (false, false) => return Verdict::Flat,
        (true, true) => {}
    }
    if (now - then).abs() <= FLAT_RELATIVE * then.abs().max(f64::EPSILON) {
        return Verdict::Flat;
    }
    let lower_is_better = matches!(metric, Canonical::Loss | Canonical::ValLoss);
    if (now < then) == lower_is_better {
        Verdict::Better
    } else {
        Verdict::Worse
    }
}

fn sentence(effect: &Effect, now_epoch: u32, lang: Lang) -> String {
    let entry = effect.entry;
    let mut what: Vec<String> = entry
        .changes
        .iter()
        .map(|c| change_text(&c.parameter, &c.old, &c.new))
        .collect();
    what.extend(entry.actions.iter().map(|a| a.as_str().to_string()));
    let what = if what.is_empty() {
        say!(lang, "no change", "无变更")
    } else {
        what.join(say!(lang, ", ", "，").as_str())
    };
    let when = match entry.epoch {
        Some(e) => say!(lang, "epoch {e}", "第 {e} 轮"),
        None => say!(lang, "an unrecorded epoch", "未记录的轮次"),
    };
    let head = say!(lang, "{when}: {what}", "{when}：{what}");

    let since = match effect.epochs_since {
        Some(0) => {
            return match entry.epoch {
                Some(e) if e > now_epoch => say!(
                    lang,
                    "{head}; the metrics now end at epoch {now_epoch}, before it (a restart counts epochs afresh)",
                    "{head}；当前指标止于第 {now_epoch} 轮，早于该次调整（重新开始训练时轮次重新计数）"
                ),
                _ => say!(
                    lang,
                    "{head}; no epoch has finished since",
                    "{head}；此后尚无完成的轮次"
                ),
            };
        }
        Some(1) => say!(lang, "in the epoch since", "此后 1 轮"),
        Some(n) => say!(lang, "in the {n} epochs since", "此后 {n} 轮"),
        None => say!(lang, "since", "此后"),
    };
    if effect.moves.is_empty() {
        return say!(
            lang,
            "{head}; no loss or accuracy recorded then and now to compare",
            "{head}；没有可比较的当时与现在的损失或准确率"
        );
    }
    let moves: Vec<String> = effect.moves.iter().map(|m| move_text(m, lang)).collect();
    match lang {
        Lang::En => format!("{head}; {since}, {}", moves.join(", ")),
        Lang::Zh => format!("{head}；{since}，{}", moves.join("，")),
    }
}

fn move_text(m: &Move, lang: Lang) -> String {
    let change = if m.then.is_finite() && m.now.is_finite() {
        let loss = matches!(m.metric, Canonical::Loss | Canonical::ValLoss);
        if loss && m.then != 0.0 {
            // One decimal is all a percentage of an epoch-to-epoch value can carry.
            let pct = (1000.0 * (m.now - m.then) / m.then.abs()).round() / 10.0;
            Some(signed(pct, "%"))
        } else if loss {
            None
        } else {
            // Accuracy moves read in points, not percent of a percent.
            Some(signed(m.now - m.then, ""))
        }
    } else {
        None
    };
    let word = match m.verdict {
        Verdict::Better => say!(lang, "better", "变好"),
        Verdict::Worse => say!(lang, "worse", "变差"),
        Verdict::Flat => say!(lang, "flat", "持平"),
    };
    let note = match (change, lang) {
        (Some(c), Lang::En) => format!(" ({c}, {word})"),
        (Some(c), Lang::Zh) => format!("（{c}，{word}）"),
        (None, Lang::En) => format!(" ({word})"),
        (None, Lang::Zh) => format!("（{word}）"),
    };
    format!("{} {} → {}{note}", m.name, num(m.then), num(m.now))
}

/// `+0.31`, `−51.5%`: a typographic minus, so the sign reads at a glance.
fn signed(value: f64, unit: &str) -> String {
    let text = num(value.abs());
    if value < 0.0 {
        format!("−{text}{unit}")
    } else {
        format!("+{text}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history;
    use crate::types::Action;

    fn entry(epoch: Option<u32>, metrics: &[(&str, f64)]) -> HistoryEntry {
        HistoryEntry {
            actions: vec![Action::RestoreCheckpoint],
            ..history::entry(
                epoch,
                &[("lr", "learning_rate", 0.3, 0.030000000000000002)],
                &["divergence"],
                metrics,
            )
        }
    }

    fn run(series: &[(&str, &[f64])], history: Vec<HistoryEntry>) -> Run {
        Run {
            history,
            ..crate::run::testing::run(Some(r#"{"lr": 0.03}"#), series)
        }
    }

    #[test]
    fn says_what_followed_in_the_files_names() {
        let r = run(
            &[
                ("loss", &[2.5, 2.4, 1.9, 1.5, 1.2]),
                ("eval_loss", &[2.4, 2.31, 1.8, 1.4, 1.12]),
                ("acc", &[0.2, 0.31, 0.45, 0.55, 0.62]),
            ],
            vec![entry(Some(2), &[("val_loss", 2.31), ("accuracy", 0.31)])],
        );
        assert_eq!(
            effects(&r, Lang::En),
            [
                "epoch 2: lr 0.3 → 0.03, restore_checkpoint; in the 3 epochs since, \
                 eval_loss 2.31 → 1.12 (−51.5%, better), acc 0.31 → 0.62 (+0.31, better)"
            ]
        );
        assert_eq!(
            effects(&r, Lang::Zh),
            ["第 2 轮：lr 0.3 → 0.03，restore_checkpoint；此后 3 轮，\
                 eval_loss 2.31 → 1.12（−51.5%，变好），acc 0.31 → 0.62（+0.31，变好）"]
        );
    }

    #[test]
    fn nan_then_finite_now_is_better_and_the_series_fills_a_missing_record() {
        // The entry recorded no val_loss; the series still holds epoch 2's value.
        let r = run(
            &[
                ("loss", &[1.0, f64::NAN, 0.9]),
                ("val_loss", &[1.0, 1.5, 1.495]),
            ],
            vec![entry(Some(2), &[("loss", f64::NAN)])],
        );
        let measured = measure(&r);
        let moves = &measured[0].moves;
        assert_eq!(moves[0].metric, Canonical::ValLoss);
        assert_eq!(moves[0].verdict, Verdict::Flat);
        let loss_only = run(
            &[("loss", &[1.0, f64::NAN, 0.9])],
            vec![entry(Some(2), &[("loss", f64::NAN)])],
        );
        let text = effects(&loss_only, Lang::En).remove(0);
        assert!(
            text.ends_with("in the epoch since, loss NaN → 0.9 (better)"),
            "{text}"
        );
    }

    #[test]
    fn no_epoch_since_and_restarts_are_said_plainly() {
        let r = run(
            &[("loss", &[1.0, 0.9])],
            vec![entry(Some(2), &[("loss", 0.9)])],
        );
        assert_eq!(
            effects(&r, Lang::En),
            ["epoch 2: lr 0.3 → 0.03, restore_checkpoint; no epoch has finished since"]
        );
        let restarted = run(&[("loss", &[1.0])], vec![entry(Some(4), &[("loss", 9.0)])]);
        let text = effects(&restarted, Lang::En).remove(0);
        assert!(text.contains("now end at epoch 1, before it"), "{text}");
    }

    #[test]
    fn a_loss_that_rose_is_worse() {
        let r = run(&[("loss", &[1.0, 1.0, 2.0])], vec![entry(Some(2), &[])]);
        let measured = measure(&r);
        assert_eq!(measured[0].moves[0].verdict, Verdict::Worse);
        assert!(effects(&r, Lang::En)[0].ends_with("loss 1 → 2 (+100%, worse)"));
    }
}
