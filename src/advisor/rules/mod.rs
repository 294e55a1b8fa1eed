//! The rules advisor: what a careful practitioner does about each finding, offline and
//! deterministic. Cut the learning rate on divergence (restoring the last sane checkpoint,
//! or restarting when there is none); reduce it when the loss oscillates or plateaus after
//! progress; raise it (or momentum, for plain SGD) when the loss barely moves from where
//! it started; add regularisation or stop on overfitting; leave a healthy run alone; and
//! when a run sits at chance level with nothing in the config to explain it, say that the
//! data and labels need checking instead of inventing changes; but a run at chance or not
//! learning at a rate far above its optimizer's range is cut into the range, since the rate
//! is the harm. Regularisation needs the training side clearly better than validation.
//! Findings about the data or the logging (degenerate loss, pinned accuracy, metrics out
//! of range, unfinished warmup, validation at chance) are advice. It reads the history so a
//! between-epoch loop does not flip-flop: parameters in cooldown are left alone, and its
//! own last change is not reversed without new evidence.

mod lr;
mod regularisation;

use serde_json::Value;

use super::{AdviceInput, Advisor};

use crate::error::Result;
use crate::history::{diverged_since, in_cooldown};
use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::Canonical;
use crate::num::{num, number_from_json, number_like, value_text};
use crate::run::Run;
use crate::space::Tunable;
use crate::types::{Action, FindingId, Proposal, ProposedChange};
use crate::types::{Diagnosis, Finding, Severity};

/// Divergence: a 10× cut, the largest one step allows; halving rarely saves a run whose
/// loss already went non-finite.
const DIVERGENCE_LR_FACTOR: f64 = 0.1;
/// Plateau after progress: between ReduceLROnPlateau's 0.1 (Keras, PyTorch) and PBT's
/// 0.8 perturbation; 0.3 keeps enough step size to continue making progress.
const PLATEAU_LR_FACTOR: f64 = 0.3;
/// Oscillation without net progress: halve, the usual first response to a too-large step.
const OSCILLATION_LR_FACTOR: f64 = 0.5;
/// Slow convergence: raise 3×; a bigger jump risks divergence, the next call can raise
/// again after the cooldown.
const SLOW_LR_FACTOR: f64 = 3.0;
/// A logged learning rate below this share of the config's value means a schedule has
/// already decayed it (two ReduceLROnPlateau or StepLR cuts of 0.1).
const SCHEDULE_DECAYED: f64 = 0.01;
/// Plain SGD that barely moves: momentum 0.9 is the standard setting.
const SGD_MOMENTUM: f64 = 0.9;
/// The usual learning rate of each optimizer family: Adam's 1e-3 (Kingma & Ba 2015, the
/// Keras and PyTorch default) and SGD's 0.01 (the Keras default). A loss that does not
/// move is explained by the step size when the rate is well below it.
const USUAL_LR_ADAPTIVE: f64 = 1e-3;
const USUAL_LR_SGD: f64 = 1e-2;
/// 100× below the usual rate is far too low: raise by the largest step one adjustment
/// allows (×10). Derived.
const FAR_BELOW_USUAL: f64 = 100.0;
/// 3× below the usual rate is low enough to explain a loss stuck at chance. Derived.
const BELOW_USUAL: f64 = 3.0;
/// Overfitting: dropout up by 0.1 while below 0.5 (more than 0.5 hurts most nets).
const DROPOUT_STEP: f64 = 0.1;
const DROPOUT_CEILING: f64 = 0.5;
/// Overfitting: weight decay ×3, or from zero to 1e-4 (AdamW papers' lower range).
const WEIGHT_DECAY_FACTOR: f64 = 3.0;
const WEIGHT_DECAY_START: f64 = 1e-4;
/// EMA: aim for a horizon of a tenth of the run, so the average forgets its start.
const EMA_HORIZON_SHARE: f64 = 0.1;
/// A rate this many times outside its optimizer's usual range (an order of magnitude) is
/// rescued, not tuned: one adjustment may bring it into the range, beyond the step limit
/// (`validate` reads this too).
pub const RESCUE_OUTSIDE_FACTOR: f64 = 10.0;
/// The config check's top of the usual range is 10× the family's usual rate (Adam 1e-2
/// against its default 1e-3; SGD 10× the linear-scaling reference; Adagrad 0.1 against
/// 0.01), so a rescue cuts to a tenth of the top: the usual rate.
const RESCUE_BELOW_TOP: f64 = 10.0;
/// A rate at least 3× Adam's usual 1e-3 is already high: a stalled validation loss is cut
/// as fast as Keras ReduceLROnPlateau(patience=2) would (derived; the rescue benchmark's
/// `rop2` policy is the baseline).
const HIGH_RATE_FACTOR: f64 = 3.0;
/// Epochs without a new best before that cut: ReduceLROnPlateau's `wait >= patience` with
/// patience 2.
const HIGH_RATE_PATIENCE: u32 = 2;
/// A new best must beat the old by this share (PyTorch ReduceLROnPlateau's relative
/// threshold, 1e-4).
const NEW_BEST_MARGIN: f64 = 1e-4;
/// Overfitting needs the training side clearly better than validation: validation loss at
/// least 10% above the training loss (SageMaker Debugger's Overfit rule, ratio 0.1) …
const OVERFIT_LOSS_RATIO: f64 = 0.1;
/// … and training accuracy at least 5 points above validation accuracy (AUTOTRAINER
/// measures gaps of 0.07–0.1 on overfitting runs; 0.05 is derived, and passes the rescue
/// benchmark's overfitting run, whose gap is 0.06–0.11 when its validation loss turns).
const OVERFIT_ACCURACY_GAP: f64 = 0.05;
/// Gradient clipping at 2× the run's typical gradient norm: a step that large is what
/// Lightning's SpikeDetection calls a spike (≥ 2× the running mean), and ordinary steps
/// stay below it, untouched.
const CLIP_OVER_TYPICAL: f64 = 2.0;
/// A clipping key set to 0 (HF `max_grad_norm = 0` turns clipping off) with no grad-norm
/// series to size it from: 1.0, the HF Trainer's default.
const CLIP_DEFAULT: f64 = 1.0;
/// A growing gradient norm without a clipping lever: halve the rate, as for oscillation.
const GRAD_NORM_LR_FACTOR: f64 = 0.5;

pub struct RulesAdvisor;

impl Advisor for RulesAdvisor {
    fn advise(&self, input: &AdviceInput) -> Result<Proposal> {
        let mut plan = Plan {
            run: input.run,
            diagnosis: input.diagnosis,
            lang: input.lang,
            changes: Vec::new(),
            actions: Vec::new(),
            advice: Vec::new(),
        };
        plan.decide();
        let diagnosis = plan.summary();
        Ok(Proposal {
            provider: "rules".into(),
            model: None,
            diagnosis,
            changes: plan.changes,
            actions: plan.actions,
            advice: plan.advice,
            discarded: Vec::new(),
            llm: None,
        })
    }
}

struct Plan<'a> {
    run: &'a Run,
    diagnosis: &'a Diagnosis,
    lang: Lang,
    changes: Vec<ProposedChange>,
    actions: Vec<Action>,
    advice: Vec<String>,
}

impl<'a> Plan<'a> {
    fn decide(&mut self) {
        let d = self.diagnosis;
        if let Some(f) = d.get(FindingId::Divergence) {
            self.divergence(f);
            return;
        }
        // What says the run is not learning at all: at chance, no net progress from the
        // start, or an accuracy pinned at one value while the rate is far too high.
        let stuck = d
            .get(FindingId::ChanceLevel)
            .map(|f| (f, Stuck::Chance))
            .or_else(|| {
                d.get(FindingId::NotLearning)
                    .map(|f| (f, Stuck::NotLearning))
            })
            .or_else(|| {
                d.get(FindingId::AccuracyPinned)
                    .filter(|_| self.extreme_high().is_some())
                    .map(|f| (f, Stuck::Pinned))
            });
        if let Some((f, kind)) = stuck {
            self.barely_moving(f, kind);
        } else if let Some(f) = d.get(FindingId::SlowConvergence) {
            if f.evidence.get("reason").and_then(|r| r.as_str()) == Some("ended_still_falling") {
                // The run is over: its rate was right for the budget; the budget was short.
                self.advice.push(say!(
                    self.lang,
                    "{} Train it longer next time (more epochs at the same settings); nothing in this run needs changing.",
                    "{} 下次训练更多轮（设置不变）；本次训练无需修改。",
                    f.summary
                ));
            } else {
                self.barely_moving(f, Stuck::Slow);
            }
        }
        if let Some(f) = d.get(FindingId::Overfitting) {
            self.overfitting(f);
        } else if let Some(f) = d.get(FindingId::Oscillation) {
            self.reduce_lr(f, OSCILLATION_LR_FACTOR, 0.6);
        } else if let Some(f) = d.get(FindingId::Plateau) {
            self.plateau(f);
        }
        self.high_rate_stall();
        if let Some(f) = d.get(FindingId::LearningRateExtreme) {
            self.still_too_high_after_divergence(f);
        }
        if d.findings.iter().all(|f| {
            f.severity == crate::types::Severity::Info || f.id == FindingId::LearningRateExtreme
        }) {
            self.keep_raising_while_it_helps();
        }
        self.gradient_norm();
        self.signal_advice();
        if let Some(f) = d.get(FindingId::EmaHorizonTooLong) {
            self.ema(f);
        }
        if let Some(f) = d.get(FindingId::EffectiveBatchTooLarge) {
            self.effective_batch(f);
        }
        if let Some(f) = d.get(FindingId::WarmupExceedsTraining) {
            self.advice.push(say!(
                self.lang,
                "warmup does not fit in the run: {} The scheduler reads it only when training starts, so set it before the next run (for example a warmup of about 5% of the run's steps).",
                "预热超出训练长度：{} 调度器只在训练开始时读取该值，请在下次训练前修改（例如设为总步数的约 5%）。",
                f.summary
            ));
        }
        // Config warnings that the curves do not (yet) confirm are advice, not changes:
        // a run that trains well is not retuned on a rule of thumb.
        for id in [
            FindingId::LearningRateExtreme,
            FindingId::DropoutTooHigh,
            FindingId::ClassImbalance,
        ] {
            let Some(f) = d.get(id) else { continue };
            let acted = self.changes.iter().any(|c| {
                let name = self
                    .run
                    .tunables
                    .iter()
                    .find(|t| t.path == c.parameter)
                    .map(|t| t.spec.name.as_str());
                matches!(
                    (id, name),
                    (FindingId::LearningRateExtreme, Some("learning_rate"))
                        | (FindingId::DropoutTooHigh, Some("dropout"))
                )
            });
            let explained = id == FindingId::LearningRateExtreme && stuck.is_some();
            if !acted && !explained {
                self.advice.push(say!(
                    self.lang,
                    "{} The curves do not show harm from it yet, so nothing is changed for it; watch the next epochs.",
                    "{} 目前曲线尚未显示其危害，因此不为此修改；请留意接下来的几轮。",
                    f.summary
                ));
            }
        }
        for f in d
            .findings
            .iter()
            .filter(|f| f.id == FindingId::ConflictingSettings)
        {
            self.advice.push(if f.severity == Severity::Info {
                say!(self.lang, "note: {}", "提示：{}", f.summary)
            } else {
                say!(
                    self.lang,
                    "resolve a conflict in the config: {}",
                    "请解决配置中的冲突：{}",
                    f.summary
                )
            });
        }
    }

    /// Shorten the EMA horizon to a tenth of the run.
    pub(super) fn ema(&mut self, f: &Finding) {
        let Some(ema) = self.run.tunable("ema_decay") else {
            return;
        };
        let total = ev_num(f, "total_steps");
        if total.is_nan() || total <= 0.0 {
            return;
        }
        let new = 1.0 - 1.0 / (total * EMA_HORIZON_SHARE).max(2.0);
        let rationale = say!(
            self.lang,
            "an EMA decay of {} averages over about {} steps, but the whole run has {}: the averaged weights would still be mostly the initial ones at the end; {} gives a horizon of about {} steps, a tenth of the run",
            "EMA 衰减 {} 的平均窗口约为 {} 步，而整个训练只有 {} 步：到训练结束时平均权重仍主要是初始权重；{} 的窗口约为 {} 步，即训练的十分之一",
            num(ema.value),
            ev_text(f, "horizon_steps"),
            num(total),
            num(new),
            num(total * EMA_HORIZON_SHARE)
        );
        self.propose(ema, new, rationale, 0.6);
    }

    /// Too few optimizer steps per epoch: accumulate less, else use smaller batches.
    pub(super) fn effective_batch(&mut self, f: &Finding) {
        let lang = self.lang;
        let evidence = say!(
            lang,
            "the effective batch {} (batch {} × accumulation {} × devices {}) leaves {} optimizer steps per epoch",
            "有效批大小 {}（批 {} × 累积 {} × 设备 {}）使每轮只有 {} 次优化步",
            ev_text(f, "effective_batch"),
            ev_text(f, "batch_size"),
            ev_text(f, "accumulation"),
            ev_text(f, "devices"),
            ev_text(f, "steps_per_epoch")
        );
        if let Some(acc) = self
            .run
            .tunable("gradient_accumulation_steps")
            .filter(|t| t.value > 1.0)
        {
            let new = (acc.value / 2.0).floor().max(1.0);
            let rationale = say!(
                lang,
                "{evidence}; halving gradient accumulation ({} → {}) doubles the updates per epoch",
                "{evidence}；梯度累积减半（{} → {}）使每轮更新次数加倍",
                num(acc.value),
                num(new)
            );
            self.propose(acc, new, rationale, 0.5);
        } else if let Some(batch) = self.run.tunable("batch_size").filter(|t| t.value >= 2.0) {
            let new = (batch.value / 2.0).floor();
            let rationale = say!(
                lang,
                "{evidence}; halving the batch size ({} → {}) doubles the updates per epoch",
                "{evidence}；批大小减半（{} → {}）使每轮更新次数加倍",
                num(batch.value),
                num(new)
            );
            self.propose(batch, new, rationale, 0.5);
        }
    }

    /// Adds a change unless the parameter is cooling down from an earlier adjustment (the
    /// validator would reject it; saying so here explains why nothing moved).
    pub(super) fn propose(
        &mut self,
        tunable: &Tunable,
        new: f64,
        rationale: String,
        confidence: f64,
    ) {
        let cooling = in_cooldown(&self.run.history, &tunable.path, self.run.facts.epochs_done)
            .filter(|&epoch| !diverged_since(self.diagnosis, epoch));
        if let Some(epoch) = cooling {
            self.advice.push(say!(
                self.lang,
                "{} was changed at epoch {epoch}; leaving it alone while its effect shows ({} epochs of cooldown)",
                "{} 已在第 {epoch} 轮修改；冷却期内（{} 轮）不再改动，以观察效果",
                tunable.path,
                crate::history::COOLDOWN_EPOCHS
            ));
            return;
        }
        if self.changes.iter().any(|c| c.parameter == tunable.path) {
            return;
        }
        let rationale = match self.siblings_agree(tunable, new) {
            Some(evidence) => format!("{rationale}; {evidence}"),
            None => rationale,
        };
        self.changes.push(ProposedChange {
            parameter: tunable.path.clone(),
            new_value: number_like(new, &tunable.raw),
            rationale,
            confidence,
        });
    }

    /// What a review's sibling runs say for a change that moves `tunable` toward their
    /// values (`review` puts it in a finding's `siblings` evidence): the rationale then
    /// rests on the team's other runs as well as on this one's curve.
    pub(super) fn siblings_agree(&self, tunable: &Tunable, new: f64) -> Option<String> {
        self.diagnosis.findings.iter().find_map(|f| {
            let s = f.evidence.get("siblings")?;
            if s["parameter"].as_str()? != tunable.path {
                return None;
            }
            let count = s["siblings_without_finding"].as_u64()?;
            let range = s["their_range"].as_array()?;
            let (lo, hi) = (range.first()?.as_f64()?, range.get(1)?.as_f64()?);
            let (toward, bound) = match s["outside"].as_str()? {
                "max" => (new < tunable.value, format!("≤ {}", num(hi))),
                _ => (new > tunable.value, format!("≥ {}", num(lo))),
            };
            toward.then(|| {
                say!(
                    self.lang,
                    "the {count} sibling runs with {} {bound} show no {}",
                    "{} {bound} 的 {count} 个同组运行没有出现 {}",
                    tunable.path,
                    f.id
                )
            })
        })
    }

    /// True (and says why) when moving `tunable` in `direction` would undo the last change
    /// the history records for it while the run has improved since: the change is
    /// working, and undoing it is how a between-epoch loop starts to flip-flop. A run that
    /// got worse after the change is the new evidence that allows a reversal.
    pub(super) fn would_reverse(&mut self, tunable: &Tunable, direction: f64) -> bool {
        let Some((entry, change)) = crate::history::last_change(&self.run.history, &tunable.path)
        else {
            return false;
        };
        let (old, new) = (
            change.old.as_f64().unwrap_or(0.0),
            change.new.as_f64().unwrap_or(0.0),
        );
        if (new - old).signum() != -direction.signum() {
            return false;
        }
        let watched = [Canonical::ValLoss, Canonical::Loss]
            .into_iter()
            .find_map(|c| {
                let then = entry.metric(c.as_str())?;
                let now = self.run.metrics.get(c)?.last()?.value;
                Some((c.as_str(), then, now))
            });
        let Some((series, then, now)) = watched.filter(|(_, then, now)| now < then) else {
            return false;
        };
        self.advice.push(say!(
            self.lang,
            "not reversing the change of {} at epoch {} ({} → {}): {series} improved since ({} → {})",
            "不撤销第 {1} 轮对 {0} 的修改（{2} → {3}）：此后 {series} 有所改善（{4} → {5}）",
            tunable.path,
            entry.epoch.map(|e| e.to_string()).unwrap_or_else(|| "?".into()),
            value_text(&change.old),
            value_text(&change.new),
            num(then),
            num(now)
        ));
        true
    }

    /// (epoch, value) of the best value of the diverging series, for the restore advice.
    pub(super) fn best_epoch(&self, f: &Finding) -> (String, String) {
        let canonical = match ev_str(f, "series") {
            Some("loss") => Some(Canonical::Loss),
            Some("val_loss") => Some(Canonical::ValLoss),
            _ => None,
        };
        let best = canonical
            .and_then(|c| self.run.metrics.get(c))
            .and_then(|s| s.min());
        match best {
            Some(p) => (p.epoch.to_string(), num(p.value)),
            None => (ev_text(f, "last_sane_epoch"), ev_text(f, "last_sane_value")),
        }
    }

    pub(super) fn is_sgd(&self) -> bool {
        self.run
            .facts
            .optimizer
            .as_deref()
            .is_some_and(|o| o.contains("sgd"))
    }

    pub(super) fn optimizer_name(&self) -> String {
        self.run
            .facts
            .optimizer
            .clone()
            .unwrap_or_else(|| say!(self.lang, "this optimizer", "该优化器"))
    }

    /// One paragraph for the report and the JSON: the verdict in the run's numbers.
    pub(super) fn summary(&self) -> String {
        let lang = self.lang;
        let d = self.diagnosis;
        if d.findings.is_empty() {
            return say!(
                lang,
                "healthy: no detector fired over {} epochs; nothing to change",
                "健康：{} 轮中没有检测器报警；无需修改",
                self.run.facts.epochs_done
            );
        }
        let worst: Vec<&str> = d
            .findings
            .iter()
            .filter(|f| f.severity == d.findings[0].severity)
            .map(|f| f.summary.as_str())
            .collect();
        worst.join(" ")
    }
}

/// What kind of "not moving" a finding reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stuck {
    Chance,
    NotLearning,
    Pinned,
    Slow,
}

/// A finding's summary as a clause: without its final full stop.
fn sentence(summary: &str) -> String {
    summary.trim().trim_end_matches(['.', '。']).to_string()
}

/// The run never got better than chance: the loss (training and validation) never fell
/// clearly below ln C since the start or the latest rollback, so no checkpoint holds
/// anything worth keeping and a restart loses nothing. With the class count unknown, a
/// `not_learning` finding (no net progress from the first epoch) says the same.
pub(crate) fn never_learned(run: &Run, diagnosis: &Diagnosis) -> bool {
    let stuck = crate::diagnose::STUCK_FINDINGS
        .into_iter()
        .any(|id| diagnosis.has(id));
    if !stuck {
        return false;
    }
    let classes = diagnosis
        .classes
        .as_ref()
        .or(run.facts.classes.as_ref())
        .map(|k| k.value)
        .filter(|&c| c >= 2);
    let Some(classes) = classes else {
        return diagnosis.has(FindingId::NotLearning);
    };
    let chance = f64::from(classes).ln();
    let since = crate::history::rolled_back_through(&run.history);
    [Canonical::Loss, Canonical::ValLoss]
        .into_iter()
        .filter_map(|c| run.metrics.get(c))
        .flat_map(|s| s.tail(RECENT_POINTS).into_iter().chain(s.min()))
        .filter(|p| since.is_none_or(|e| p.epoch > e) && p.value.is_finite())
        .all(|p| p.value >= chance * (1.0 - CHANCE_BAND))
}

/// Points of a series read by the rules: the recent window the series keeps verbatim.
const RECENT_POINTS: usize = 64;
/// The chance-level detector's band: a loss within 10% of ln C is at chance.
const CHANCE_BAND: f64 = 0.1;

/// "1 epoch", "3 epochs" (the Chinese sentence carries its own measure word).
fn epochs_text(lang: Lang, n: f64) -> String {
    match lang {
        Lang::En if n == 1.0 => "1 epoch".to_string(),
        Lang::En => format!("{} epochs", num(n)),
        Lang::Zh => num(n),
    }
}

/// The rules read evidence by key. A key its detector does not write (renamed, or never
/// there) would read as NaN or "?" and quietly change what the rules do; in every test
/// run, which drives the rules over the detectors' real output, that is a failure.
fn written(f: &Finding, key: &str) {
    debug_assert!(
        f.evidence.contains_key(key),
        "the rules read evidence `{key}` of {}, which its detector does not write (it writes {:?})",
        f.id,
        f.evidence.keys().collect::<Vec<_>>()
    );
}

fn ev_num(f: &Finding, key: &str) -> f64 {
    written(f, key);
    f.evidence
        .get(key)
        .and_then(number_from_json)
        .unwrap_or(f64::NAN)
}

fn ev_str<'f>(f: &'f Finding, key: &str) -> Option<&'f str> {
    written(f, key);
    f.evidence.get(key).and_then(Value::as_str)
}

/// An evidence value for a sentence ("?" when the detector did not record it).
fn ev_text(f: &Finding, key: &str) -> String {
    written(f, key);
    match f.evidence.get(key) {
        None | Some(Value::Null) => "?".into(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => value_text(v),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history;
    use crate::run::testing::run;
    use crate::types::evidence;

    fn finding(id: &'static str, evidence: serde_json::Map<String, Value>) -> Finding {
        Finding {
            id: FindingId::parse(id).expect("a finding id"),
            severity: Severity::Warning,
            summary: format!("{id} seen"),
            evidence,
        }
    }

    fn advise(run: &Run, findings: Vec<Finding>) -> Proposal {
        let diagnosis = Diagnosis {
            findings,
            ..Default::default()
        };
        RulesAdvisor
            .advise(&AdviceInput {
                run,
                diagnosis: &diagnosis,
                lang: Lang::En,
                trial: &|_| crate::types::Decision::default(),
            })
            .unwrap()
    }

    const ADAM: &str =
        r#"{"optimizer": "adam", "learning_rate": 0.3, "dropout": 0.1, "epochs": 20}"#;

    #[test]
    fn a_cut_toward_the_siblings_says_so_and_a_move_away_does_not() {
        let r = run(Some(ADAM), &[("loss", &[2.0, 1.5, f64::NAN])]);
        let siblings = |outside: &str| {
            let mut f = finding(
                "divergence",
                evidence!["series" => "loss", "original" => "loss", "epoch" => 3u32, "value" => f64::NAN, "last_sane_epoch" => 2u32, "last_sane_value" => 1.5],
            );
            f.evidence.insert(
                "siblings".into(),
                json!({"parameter": "learning_rate", "value": 0.3, "siblings_without_finding": 3,
                       "their_range": [0.001, 0.01], "outside": outside}),
            );
            f
        };
        let p = advise(&r, vec![siblings("max")]);
        assert!(
            p.changes[0]
                .rationale
                .ends_with("; the 3 sibling runs with learning_rate ≤ 0.01 show no divergence"),
            "{}",
            p.changes[0].rationale
        );
        // Evidence that the fine runs sit above this one does not support a cut.
        let p = advise(&r, vec![siblings("min")]);
        assert!(!p.changes[0].rationale.contains("sibling"));
    }

    #[test]
    fn a_healthy_run_is_left_alone() {
        let r = run(Some(ADAM), &[("loss", &[2.0, 1.5, 1.2, 1.0])]);
        let p = advise(&r, vec![]);
        assert!(p.changes.is_empty() && p.actions.is_empty() && p.advice.is_empty());
        assert!(p.diagnosis.starts_with("healthy"));
    }

    #[test]
    fn divergence_cuts_the_rate_and_restores_or_restarts() {
        let r = run(Some(ADAM), &[("loss", &[2.0, 1.5, f64::NAN])]);
        let sane = finding(
            "divergence",
            evidence!["series" => "loss", "original" => "loss", "epoch" => 3u32, "value" => f64::NAN, "last_sane_epoch" => 2u32, "last_sane_value" => 1.5],
        );
        let p = advise(&r, vec![sane]);
        assert_eq!(p.actions, vec![Action::RestoreCheckpoint]);
        assert_eq!(p.changes[0].new_value, json!(0.03));
        assert!(
            p.changes[0].rationale.contains("became NaN at epoch 3"),
            "{}",
            p.changes[0].rationale
        );
        assert!(p.changes[0].rationale.contains("0.3 → 0.03"));

        let never = finding(
            "divergence",
            evidence!["series" => "loss", "original" => "loss", "epoch" => 1u32, "value" => f64::INFINITY, "last_sane_epoch" => Value::Null],
        );
        let p = advise(&r, vec![never]);
        assert_eq!(p.actions, vec![Action::Restart]);
    }

    #[test]
    fn chance_level_with_an_ordinary_rate_asks_for_a_data_check_not_a_change() {
        let cfg = r#"{"optimizer": "adam", "learning_rate": 0.001, "loss": "binary_crossentropy"}"#;
        let r = run(
            Some(cfg),
            &[("loss", &[0.6935, 0.6933]), ("accuracy", &[0.5032, 0.4973])],
        );
        let f = finding(
            "chance_level",
            evidence!["classes" => 2u32, "chance_loss" => std::f64::consts::LN_2, "loss" => 0.6933, "accuracy" => 0.4973, "epochs_at_chance" => 2u32],
        );
        let p = advise(&r, vec![f]);
        assert!(p.changes.is_empty());
        assert!(
            p.advice[0].contains("Check the data and labels"),
            "{}",
            p.advice[0]
        );
        assert!(p.advice[0].contains("loss 0.6933 ≈ ln 2"));
    }

    #[test]
    fn chance_level_with_a_tiny_rate_raises_it() {
        let cfg = r#"{"optimizer": "adam", "learning_rate": 1e-7}"#;
        let r = run(Some(cfg), &[("loss", &[2.30, 2.30, 2.30])]);
        let f = finding(
            "chance_level",
            evidence!["classes" => 10u32, "chance_loss" => std::f64::consts::LN_10, "loss" => 2.3, "accuracy" => 0.1, "epochs_at_chance" => 3u32],
        );
        let p = advise(&r, vec![f]);
        assert_eq!(
            p.changes[0].new_value,
            json!(1e-6),
            "far too low: the largest step, ×10"
        );
    }

    #[test]
    fn chance_level_with_a_low_rate_raises_it_step_by_step() {
        let cfg = r#"{"optimizer": "adam", "learning_rate": 1e-4}"#;
        let r = run(Some(cfg), &[("loss", &[2.30, 2.30, 2.30])]);
        let f = finding(
            "chance_level",
            evidence!["classes" => 10u32, "chance_loss" => std::f64::consts::LN_10, "loss" => 2.3, "accuracy" => 0.1, "epochs_at_chance" => 3u32],
        );
        let p = advise(&r, vec![f]);
        assert_eq!(
            p.changes[0].new_value,
            json!(3e-4),
            "3× below Adam's usual 1e-3: ×3"
        );
    }

    #[test]
    fn a_rate_still_too_high_after_a_divergence_is_cut_again() {
        let cfg = r#"{"optimizer": "adam", "learning_rate": 0.1}"#;
        let mut r = run(Some(cfg), &[("loss", &[2.3, 2.1, 2.0, 1.9, 1.9])]);
        let high = || {
            finding(
                "learning_rate_extreme",
                evidence!["parameter" => "learning_rate", "direction" => "high", "high" => 0.01],
            )
        };
        // Without an earlier divergence, a high rate on a run that trains is advice.
        let p = advise(&r, vec![high()]);
        assert!(p.changes.is_empty());
        r.history.push(crate::history::entry(
            Some(1),
            &[("learning_rate", "learning_rate", 1.0, 0.1)],
            &["divergence"],
            &[("loss", f64::NAN)],
        ));
        // 0.1 is 10× the top of Adam's range: one cut takes it into the range.
        let p = advise(&r, vec![high()]);
        assert_eq!(p.changes[0].new_value, json!(0.001), "{:?}", p);
        assert!(p.changes[0].rationale.contains("diverged at epoch 1"));
    }

    #[test]
    fn a_plateau_cut_that_did_not_help_means_stop() {
        let mut r = run(
            Some(ADAM),
            &[("loss", &[1.0, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])],
        );
        r.history.push(crate::history::entry(
            Some(5),
            &[("learning_rate", "learning_rate", 1.0, 0.3)],
            &["plateau"],
            &[("loss", 0.5)],
        ));
        let f = finding(
            "plateau",
            evidence!["series" => "loss", "first" => 2.0, "best" => 0.5, "best_epoch" => 3u32, "epochs_since_best" => 6u32],
        );
        let p = advise(&r, vec![f]);
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert_eq!(
            p.actions,
            vec![Action::RestoreCheckpoint, Action::StopEarly]
        );
        assert!(
            p.advice[0].contains("already cut for this plateau at epoch 5 (1 → 0.3)"),
            "{}",
            p.advice[0]
        );
    }

    #[test]
    fn a_rate_already_too_high_is_never_raised() {
        let cfg = r#"{"optimizer": "sgd", "lr": 0.5, "momentum": 0.9}"#;
        let r = run(Some(cfg), &[("loss", &[2.3, 2.3, 2.3, 2.3, 2.3])]);
        let slow = finding(
            "slow_convergence",
            evidence!["series" => "loss", "first" => 2.3, "last" => 2.25, "mean_rel_drop_per_epoch" => 0.004, "epochs" => 5u32],
        );
        let high = finding(
            "learning_rate_extreme",
            evidence!["parameter" => "lr", "direction" => "high", "high" => 0.125],
        );
        let p = advise(&r, vec![slow, high]);
        assert!(
            p.advice[0].contains("already above the usual range"),
            "{:?}",
            p.advice
        );
        // The flat loss at a rate above the range is cut (the stall rule), never raised.
        assert!(
            p.changes.iter().all(|c| c.new_value.as_f64() < Some(0.5)),
            "{:?}",
            p.changes
        );
    }

    #[test]
    fn a_raise_that_got_the_loss_moving_is_followed_by_another() {
        let cfg = r#"{"optimizer": "adam", "learning_rate": 1e-4}"#;
        let mut r = run(
            Some(cfg),
            &[("loss", &[2.79, 2.78, 2.78, 2.7, 2.5, 2.3, 2.1])],
        );
        // Without an earlier raise of ours, a low rate on a run that learns is left alone.
        assert!(advise(&r, vec![]).changes.is_empty());
        r.history.push(crate::history::entry(
            Some(4),
            &[("learning_rate", "learning_rate", 1e-5, 1e-4)],
            &["slow_convergence"],
            &[("loss", 2.7)],
        ));
        let p = advise(&r, vec![]);
        assert_eq!(p.changes[0].new_value, json!(3e-4), "{p:?}");
        assert!(
            p.changes[0]
                .rationale
                .contains("got the loss moving (2.7 → 2.1 since)"),
            "{}",
            p.changes[0].rationale
        );
    }

    #[test]
    fn plain_sgd_that_barely_moves_gets_momentum() {
        let cfg = r#"{"optimizer": "sgd", "lr": 0.01, "momentum": 0.0}"#;
        let r = run(Some(cfg), &[("loss", &[2.3, 2.29, 2.28, 2.27, 2.26])]);
        let f = finding(
            "slow_convergence",
            evidence!["series" => "loss", "first" => 2.3, "last" => 2.25, "mean_rel_drop_per_epoch" => 0.004, "epochs" => 5u32],
        );
        let p = advise(&r, vec![f]);
        assert_eq!(p.changes.len(), 1);
        assert_eq!(p.changes[0].parameter, "momentum");
        assert_eq!(p.changes[0].new_value, json!(0.9));
    }

    #[test]
    fn overfitting_regularises_where_it_can_and_stops_where_it_cannot() {
        let f = || {
            finding(
                "overfitting",
                evidence!["val_series" => "val_loss", "train_series" => "loss", "rising_epochs" => 3u32, "val_best" => 0.6, "val_best_epoch" => 4u32, "val_last" => 0.7, "train_last" => 0.2],
            )
        };
        let r = run(Some(ADAM), &[("loss", &[1.0, 0.5, 0.2])]);
        let p = advise(&r, vec![f()]);
        assert_eq!(p.changes[0].parameter, "dropout");
        assert_eq!(p.changes[0].new_value, json!(0.2));
        assert_eq!(p.actions, vec![Action::RestoreCheckpoint]);

        let bare = r#"{"optimizer": "adam", "learning_rate": 0.001}"#;
        let r = run(Some(bare), &[("loss", &[1.0, 0.5, 0.2])]);
        let p = advise(&r, vec![f()]);
        assert!(p.changes.is_empty());
        assert_eq!(
            p.actions,
            vec![Action::RestoreCheckpoint, Action::StopEarly]
        );
        assert!(p.advice[0].contains("epoch 4"));
    }

    #[test]
    fn plateau_cuts_and_cooldown_holds() {
        let plateau = || {
            finding(
                "plateau",
                evidence!["series" => "val_loss", "first" => 2.0, "best" => 0.5, "best_epoch" => 3u32, "epochs_since_best" => 3u32],
            )
        };
        let mut r = run(Some(ADAM), &[("loss", &[1.0, 0.6, 0.5, 0.5, 0.5, 0.5])]);
        let p = advise(&r, vec![plateau()]);
        assert_eq!(p.changes[0].new_value, json!(0.09));
        r.history.push(history::entry(
            Some(5),
            &[("learning_rate", "learning_rate", 1.0, 0.3)],
            &["plateau"],
            &[("loss", 0.6)],
        ));
        let p = advise(&r, vec![plateau()]);
        assert!(p.changes.is_empty());
        assert!(p.advice[0].contains("changed at epoch 5"), "{:?}", p.advice);
    }

    #[test]
    fn its_own_last_change_is_not_reversed_while_it_works() {
        let mut r = run(
            Some(ADAM),
            &[(
                "loss",
                &[2.3, 2.3, 2.29, 2.29, 2.28, 2.28, 2.28, 2.27, 2.27],
            )],
        );
        r.history.push(history::entry(
            Some(2),
            &[("learning_rate", "learning_rate", 0.6, 0.3)],
            &["oscillation"],
            &[("loss", 2.3)],
        ));
        let slow = finding(
            "slow_convergence",
            evidence!["series" => "loss", "first" => 2.3, "last" => 2.25, "mean_rel_drop_per_epoch" => 0.004, "epochs" => 5u32],
        );
        let p = advise(&r, vec![slow]);
        assert!(p.changes.is_empty(), "{:?}", p.changes);
        assert!(p.advice[0].starts_with("not reversing"), "{:?}", p.advice);
    }
}

#[cfg(test)]
mod rescue_tests {
    use serde_json::json;

    use super::*;
    use crate::run::testing::run;
    use crate::types::evidence;

    /// Hand-built findings of the new detectors (#12): the rules read only their summary,
    /// so the evidence keys here are what a detector would sensibly write.
    fn finding(id: FindingId, evidence: serde_json::Map<String, Value>) -> Finding {
        Finding {
            id,
            severity: Severity::Warning,
            summary: format!("{id} seen (numbers here)."),
            evidence,
        }
    }

    fn advise(run: &Run, findings: Vec<Finding>) -> (Proposal, crate::types::Decision) {
        let diagnosis = Diagnosis {
            findings,
            ..Default::default()
        };
        let p = RulesAdvisor
            .advise(&AdviceInput {
                run,
                diagnosis: &diagnosis,
                lang: Lang::En,
                trial: &|_| crate::types::Decision::default(),
            })
            .unwrap();
        let d = crate::validate::validate(run, &diagnosis, &p, Lang::En);
        (p, d)
    }

    fn extreme(parameter: &str, high: f64, low: f64) -> Finding {
        finding(
            FindingId::LearningRateExtreme,
            evidence!["parameter" => parameter, "direction" => "high", "high" => high, "low" => low],
        )
    }

    fn chance(loss: f64, epochs: u32) -> Finding {
        finding(
            FindingId::ChanceLevel,
            evidence!["classes" => 10u32, "chance_loss" => std::f64::consts::LN_10, "loss" => loss, "accuracy" => 0.1, "epochs_at_chance" => epochs],
        )
    }

    const SGD_3: &str = r#"{"optimizer": "sgd", "learning_rate": 3.0, "momentum": 0.9, "batch_size": 32, "num_classes": 10}"#;

    #[test]
    fn sgd_at_chance_an_order_of_magnitude_too_high_is_cut_into_range_and_restarted() {
        let r = run(
            Some(SGD_3),
            &[
                ("loss", &[3.04, 2.43, 2.44, 2.40]),
                ("accuracy", &[0.1, 0.1, 0.11, 0.1]),
            ],
        );
        let (p, d) = advise(
            &r,
            vec![chance(2.40, 3), extreme("learning_rate", 0.125, 1e-5)],
        );
        assert_eq!(p.changes[0].new_value, json!(0.0125), "{p:?}");
        assert!(
            p.changes[0]
                .rationale
                .contains("3 → 0.0125, into the usual range in one step: the step limit is for tuning, this is a rescue"),
            "{}",
            p.changes[0].rationale
        );
        assert_eq!(p.actions, vec![Action::Restart]);
        assert!(
            !p.advice.iter().any(|a| a.contains("Check the data")),
            "{:?}",
            p.advice
        );
        // Validation lets the rescue through unclamped, and says why.
        assert_eq!(d.changes[0].new, json!(0.0125), "{d:?}");
        assert!(d.changes[0].clamped.is_none());
        assert!(
            d.notes
                .iter()
                .any(|n| n.contains("a rescue may bring it into the range"))
        );
        assert_eq!(d.actions, vec![Action::Restart]);
    }

    #[test]
    fn a_run_at_chance_that_learned_before_goes_back_rather_than_restarting() {
        let r = run(Some(SGD_3), &[("loss", &[1.2, 0.9, 2.35, 2.33, 2.34])]);
        let (p, d) = advise(
            &r,
            vec![chance(2.34, 3), extreme("learning_rate", 0.125, 1e-5)],
        );
        assert_eq!(p.actions, vec![Action::RestoreCheckpoint]);
        assert_eq!(d.actions, vec![Action::RestoreCheckpoint]);
    }

    #[test]
    fn a_rate_a_few_times_too_high_at_chance_is_cut_by_the_largest_step() {
        let cfg = r#"{"optimizer": "sgd", "learning_rate": 0.5, "momentum": 0.9, "batch_size": 32, "num_classes": 10}"#;
        let r = run(Some(cfg), &[("loss", &[2.5, 2.33, 2.33, 2.34])]);
        let (p, d) = advise(
            &r,
            vec![chance(2.34, 3), extreme("learning_rate", 0.125, 1e-5)],
        );
        assert_eq!(p.changes[0].new_value, json!(0.05), "{p:?}");
        assert!(!p.changes[0].rationale.contains("rescue"));
        assert!(
            d.changes[0].clamped.is_none() && d.notes.is_empty(),
            "{d:?}"
        );
    }

    #[test]
    fn not_learning_is_like_chance_level() {
        let cfg = r#"{"optimizer": "adam", "learning_rate": 0.5}"#;
        let r = run(Some(cfg), &[("loss", &[5.0, 5.1, 4.9, 5.0])]);
        let nl = finding(
            FindingId::NotLearning,
            evidence!["series" => "loss", "first" => 5.0, "last" => 5.0, "epochs" => 4u32],
        );
        let (p, d) = advise(&r, vec![nl.clone(), extreme("learning_rate", 0.01, 1e-7)]);
        assert_eq!(p.changes[0].new_value, json!(0.001), "{p:?}");
        assert!(
            p.changes[0].rationale.starts_with(
                "not_learning seen (numbers here); the learning rate 0.5 is 50× the top"
            )
        );
        assert_eq!(d.actions, vec![Action::Restart]);
        // An ordinary rate: check the data, change nothing.
        let cfg = r#"{"optimizer": "adam", "learning_rate": 0.001}"#;
        let r = run(Some(cfg), &[("loss", &[5.0, 5.1, 4.9, 5.0])]);
        let (p, _) = advise(&r, vec![nl]);
        assert!(p.changes.is_empty() && p.actions.is_empty(), "{p:?}");
        assert!(
            p.advice[0].contains("Check the data and labels"),
            "{:?}",
            p.advice
        );
    }

    #[test]
    fn a_model_that_has_not_fitted_its_training_data_gets_no_regularisation() {
        let cfg =
            r#"{"optimizer": "adam", "learning_rate": 0.002, "dropout": 0.1, "weight_decay": 0.0}"#;
        let overfit = || {
            finding(
                FindingId::Overfitting,
                evidence!["val_series" => "val_loss", "train_series" => "loss", "rising_epochs" => 3u32, "val_best" => 2.0, "val_best_epoch" => 2u32, "val_last" => 2.2, "train_last" => 1.9],
            )
        };
        // Training accuracy 0.28 against validation 0.25: not fitted.
        let r = run(
            Some(cfg),
            &[
                ("loss", &[2.1, 2.0, 1.95, 1.9]),
                ("val_loss", &[2.05, 2.0, 2.1, 2.2]),
                ("accuracy", &[0.2, 0.25, 0.27, 0.28]),
                ("val_accuracy", &[0.22, 0.26, 0.25, 0.25]),
            ],
        );
        let (p, d) = advise(&r, vec![overfit()]);
        assert!(p.changes.is_empty() && p.actions.is_empty(), "{p:?}");
        assert!(p.advice[0].contains("not overfitting"), "{:?}", p.advice);
        assert!(p.advice[0].contains("accuracy 0.28 against val_accuracy 0.25"));
        assert!(d.changes.is_empty());
        // Clearly better on both: regularise, quoting the gap.
        let r = run(
            Some(cfg),
            &[
                ("loss", &[1.0, 0.6, 0.4, 0.3]),
                ("val_loss", &[0.9, 0.7, 0.75, 0.8]),
                ("accuracy", &[0.7, 0.8, 0.9, 0.95]),
                ("val_accuracy", &[0.7, 0.78, 0.77, 0.76]),
            ],
        );
        let (p, _) = advise(&r, vec![overfit()]);
        assert_eq!(p.changes[0].parameter, "dropout");
        assert!(
            p.changes[0].rationale.contains(
                "(loss 0.3 against val_loss 0.8, accuracy 0.95 against val_accuracy 0.76)"
            )
        );
        // A rate far above its range is the suspect, not memorisation.
        let adam = r#"{"optimizer": "adam", "learning_rate": 0.2, "dropout": 0.1}"#;
        let r = run(
            Some(adam),
            &[
                ("loss", &[1.0, 0.6, 0.4, 0.3]),
                ("val_loss", &[0.9, 0.7, 0.75, 0.8]),
            ],
        );
        let (p, _) = advise(&r, vec![overfit(), extreme("learning_rate", 0.01, 1e-7)]);
        assert!(!p.changes.iter().any(|c| c.parameter == "dropout"), "{p:?}");
        // … and validation at chance is the validation data's problem.
        let vac = finding(
            FindingId::ValAtChance,
            evidence!["series" => "val_accuracy", "value" => 0.1, "epochs" => 5u32],
        );
        let r = run(
            Some(cfg),
            &[
                ("loss", &[1.0, 0.6, 0.4, 0.3]),
                ("val_loss", &[2.3, 2.3, 2.4, 2.5]),
            ],
        );
        let (p, _) = advise(&r, vec![overfit(), vac]);
        assert!(p.changes.is_empty(), "{p:?}");
        assert!(
            p.advice.iter().any(|a| a.contains("validation data")),
            "{:?}",
            p.advice
        );
    }

    #[test]
    fn an_oscillation_cut_of_an_extreme_rate_goes_into_the_range() {
        let r = run(Some(SGD_3), &[("loss", &[2.0, 2.5, 1.9, 2.6, 2.0, 2.5])]);
        let osc = finding(
            FindingId::Oscillation,
            evidence!["series" => "loss", "swings" => 5u32, "window_epochs" => 6u32, "amplitude" => 0.6, "net_change" => 0.5],
        );
        let (p, d) = advise(&r, vec![osc, extreme("learning_rate", 0.125, 1e-5)]);
        assert_eq!(p.changes[0].new_value, json!(0.0125), "not 1.5: {p:?}");
        assert!(
            p.changes[0].rationale.contains("this is a rescue"),
            "{}",
            p.changes[0].rationale
        );
        assert_eq!(d.changes[0].new, json!(0.0125));
    }

    #[test]
    fn a_high_rate_whose_validation_loss_stalls_two_epochs_is_cut_and_a_usual_one_is_not() {
        let series: &[(&str, &[f64])] = &[
            ("loss", &[1.0, 0.7, 0.6, 0.55, 0.5]),
            ("val_loss", &[1.0, 0.8, 0.7, 0.72, 0.71]),
        ];
        let r = run(
            Some(r#"{"optimizer": "adam", "learning_rate": 0.01}"#),
            series,
        );
        let (p, d) = advise(&r, vec![]);
        assert_eq!(p.changes[0].new_value, json!(0.003), "{p:?}");
        assert!(
            p.changes[0].rationale.starts_with(
                "val_loss has made no new best for 2 epochs (best 0.7 at epoch 3, now 0.71)"
            ),
            "{}",
            p.changes[0].rationale
        );
        assert_eq!(d.changes.len(), 1);
        // The healthy rate is left alone, and so is a high rate still improving.
        let r = run(
            Some(r#"{"optimizer": "adam", "learning_rate": 0.001}"#),
            series,
        );
        assert!(advise(&r, vec![]).0.changes.is_empty());
        let improving: &[(&str, &[f64])] = &[("val_loss", &[1.0, 0.8, 0.7, 0.72, 0.69])];
        let r = run(
            Some(r#"{"optimizer": "adam", "learning_rate": 0.01}"#),
            improving,
        );
        assert!(advise(&r, vec![]).0.changes.is_empty());
    }

    #[test]
    fn gradient_norm_findings_clip_where_the_config_can_and_advise_where_it_cannot() {
        let norms: &[(&str, &[f64])] = &[
            ("loss", &[1.0, 0.9, 0.85, 0.8, 0.9]),
            ("grad_norm", &[1.0, 1.2, 0.9, 1.1, 9.0]),
        ];
        let spike = || {
            finding(
                FindingId::GradNormSpike,
                evidence!["series" => "grad_norm", "epoch" => 5u32, "value" => 9.0, "baseline" => 1.05, "ratio" => 8.6],
            )
        };
        // Clipping far above the typical norm: clip at 2× it.
        let r = run(
            Some(r#"{"optimizer": "adamw", "learning_rate": 0.0001, "max_grad_norm": 100.0}"#),
            norms,
        );
        let (p, _) = advise(&r, vec![spike()]);
        assert_eq!(p.changes[0].parameter, "max_grad_norm");
        assert_eq!(p.changes[0].new_value, json!(2.2), "{p:?}");
        // Clipping already at the typical norm: the rate comes down instead.
        let r = run(
            Some(r#"{"optimizer": "adamw", "learning_rate": 0.0001, "max_grad_norm": 1.0}"#),
            norms,
        );
        let (p, _) = advise(&r, vec![spike()]);
        assert_eq!(p.changes[0].parameter, "learning_rate");
        assert_eq!(p.changes[0].new_value, json!(0.00005));
        // No clipping key: advice for a spike, a halved rate for a rising norm.
        let r = run(
            Some(r#"{"optimizer": "adamw", "learning_rate": 0.0001}"#),
            norms,
        );
        let (p, _) = advise(&r, vec![spike()]);
        assert!(p.changes.is_empty(), "{p:?}");
        assert!(
            p.advice[0].contains("clip in the training script at about 2.2"),
            "{:?}",
            p.advice
        );
        let rising = finding(
            FindingId::GradNormRising,
            evidence!["series" => "grad_norm", "first" => 1.0, "last" => 9.0, "ratio" => 9.0, "epochs" => 5u32],
        );
        let (p, _) = advise(&r, vec![rising]);
        assert_eq!(p.changes[0].new_value, json!(0.00005), "{p:?}");
    }

    #[test]
    fn a_run_that_ended_still_improving_is_told_to_train_longer_not_retuned() {
        let r = run(
            Some(r#"{"optimizer": "adam", "learning_rate": 0.001, "epochs": 12}"#),
            &[("val_loss", &[1.8, 1.5, 1.07, 1.055, 1.04, 1.025])],
        );
        let f = finding(
            FindingId::SlowConvergence,
            evidence!["series" => "val_loss", "reason" => "ended_still_falling", "epochs" => 10u32],
        );
        let (p, _) = advise(&r, vec![f]);
        assert!(p.changes.is_empty(), "{p:?}");
        assert!(
            p.advice.iter().any(|a| a.contains("Train it longer")),
            "{:?}",
            p.advice
        );
    }

    #[test]
    fn a_training_loss_spike_turns_clipping_on_and_a_validation_spike_changes_nothing() {
        let series: &[(&str, &[f64])] = &[("loss", &[1.0, 0.7, 0.6, 9.0, 0.5])];
        let spike = |on: &str| {
            finding(
                FindingId::LossSpike,
                evidence!["series" => on, "epoch" => 4u32, "value" => 9.0, "ratio" => 11.0],
            )
        };
        let r = run(
            Some(r#"{"optimizer": "adamw", "learning_rate": 0.0001, "max_grad_norm": 0}"#),
            series,
        );
        // No gradient norm logged: clipping goes on at the HF Trainer's default.
        let (p, _) = advise(&r, vec![spike("loss")]);
        assert_eq!(p.changes[0].parameter, "max_grad_norm", "{p:?}");
        assert_eq!(p.changes[0].new_value, json!(1));
        let (p, _) = advise(&r, vec![spike("val_loss")]);
        assert!(p.changes.is_empty(), "{p:?}");
    }

    #[test]
    fn data_and_logging_findings_are_advice_and_change_nothing() {
        let cfg = r#"{"optimizer": "adam", "learning_rate": 0.001, "dropout": 0.1, "warmup_steps": 5000}"#;
        let r = run(Some(cfg), &[("loss", &[0.5, 0.0, 0.0, 0.0])]);
        for (id, needle) in [
            (FindingId::DegenerateLoss, "label leakage"),
            (FindingId::AccuracyPinned, "class_weight"),
            (FindingId::MetricOutOfRange, "fix the metric"),
            (
                FindingId::WarmupUnfinished,
                "warmup may be longer than the run",
            ),
            (FindingId::ValAtChance, "validation labels"),
        ] {
            let (p, d) = advise(
                &r,
                vec![finding(
                    id,
                    evidence!["series" => "loss", "value" => 0.0, "epochs" => 3u32],
                )],
            );
            assert!(p.changes.is_empty() && p.actions.is_empty(), "{id}: {p:?}");
            assert!(d.changes.is_empty());
            assert!(
                p.advice.iter().any(|a| a.contains(needle)),
                "{id}: {:?}",
                p.advice
            );
        }
    }

    #[test]
    fn validation_keeps_the_step_limit_for_a_rate_only_a_few_times_out_of_range() {
        // 0.5 is 4× above SGD's range: 0.5 → 0.0125 is clamped to ×10.
        let cfg =
            r#"{"optimizer": "sgd", "learning_rate": 0.5, "momentum": 0.9, "batch_size": 32}"#;
        let r = run(Some(cfg), &[("loss", &[2.0, 2.1])]);
        let diagnosis = Diagnosis {
            findings: vec![extreme("learning_rate", 0.125, 1e-5)],
            ..Default::default()
        };
        let p = Proposal {
            provider: "test".into(),
            model: None,
            diagnosis: String::new(),
            changes: vec![ProposedChange {
                parameter: "learning_rate".into(),
                new_value: json!(0.0125),
                rationale: "because".into(),
                confidence: 0.5,
            }],
            actions: vec![Action::Restart],
            advice: vec![],
            discarded: vec![],
            llm: None,
        };
        let d = crate::validate::validate(&r, &diagnosis, &p, Lang::En);
        assert_eq!(d.changes[0].new, json!(0.05));
        assert!(d.changes[0].clamped.is_some());
        assert!(d.actions.is_empty(), "no finding supports a restart: {d:?}");
    }
}
