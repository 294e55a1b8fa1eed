//! Validate: every proposed change, from any advisor, is checked before anything is
//! written. Known tunable parameter, number of the right type, within bounds, within the
//! largest step (clamped and reported), not a no-op, not in cooldown, consistent with
//! the rest of the config, and at most a handful at once. The result is a `Decision`:
//! what is accepted, what was clamped, what was rejected and why.

use serde_json::Value;

use crate::advisor::rules::{RESCUE_OUTSIDE_FACTOR, never_learned};
use crate::history::{COOLDOWN_EPOCHS, diverged_since, in_cooldown};
use crate::lang::Lang;
use crate::lang::say;
use crate::num::{kind_of, num, number_like, truncate};
use crate::run::Run;
use crate::space::{ParamType, Scale, Tunable};
use crate::types::Diagnosis;
use crate::types::{Action, FindingId, Proposal, ProposedChange};
use crate::types::{Change, Clamp, Decision, MAX_CHANGES, Rejected};

/// A change smaller than this, relative to the current value, is float noise (seed 003
/// "changed" weight_decay 0.0001 → 9.999999999999999e-05).
pub const NOOP_RELATIVE: f64 = 0.02;
/// Rationales are for reading; an advisor that writes an essay is cut here.
pub const MAX_RATIONALE_CHARS: usize = 600;

pub fn validate(run: &Run, diagnosis: &Diagnosis, proposal: &Proposal, lang: Lang) -> Decision {
    let mut decision = Decision::default();
    let actions = validate_actions(run, diagnosis, &proposal.actions, lang, &mut decision.notes);
    let restarting = actions.contains(&Action::Restart);
    decision.actions = actions;

    let mut seen: Vec<String> = Vec::new();
    for change in &proposal.changes {
        let reject = |reason: String| Rejected {
            parameter: change.parameter.clone(),
            proposed: change.new_value.clone(),
            reason,
        };
        let tunable = match resolve(run, &change.parameter, lang) {
            Ok(t) => t,
            Err(reason) => {
                decision.rejected.push(reject(reason));
                continue;
            }
        };
        if seen.contains(&tunable.path) {
            decision.rejected.push(reject(say!(
                lang,
                "proposed twice; the first proposal is kept",
                "重复提议；保留第一个"
            )));
            continue;
        }
        seen.push(tunable.path.clone());
        // A change must say why; one generic reason for several explains none of them.
        let rationale = change.rationale.trim();
        if rationale.is_empty() {
            decision.rejected.push(reject(say!(
                lang,
                "no rationale: each change needs its own reason, citing the run's numbers",
                "没有理由：每项变更都需要引用本次训练数据的理由"
            )));
            continue;
        }
        if let Some(twin) = decision
            .changes
            .iter()
            .find(|c| c.rationale.trim().eq_ignore_ascii_case(rationale))
        {
            decision.rejected.push(reject(say!(
                lang,
                "the same rationale as the change to {}: each change needs its own reason",
                "与 {} 的理由相同：每项变更都需要自己的理由",
                twin.parameter
            )));
            continue;
        }
        match check_change(run, diagnosis, tunable, change, restarting, lang) {
            Ok(accepted) => {
                let step = accepted.old.as_f64().zip(accepted.new.as_f64());
                if let Some((old, new)) = step
                    && let Some(factor) = tunable.spec.max_factor
                    && old > 0.0
                    && new > 0.0
                    && (old / new).max(new / old) > factor * (1.0 + 1e-9)
                {
                    decision.notes.push(say!(
                        lang,
                        "{} moves {} → {} in one step, beyond the ×{} an adjustment allows: the rate was an order of magnitude outside its optimizer's usual range, and a rescue may bring it into the range at once",
                        "{} 一步从 {} 变为 {}，超过每次 ×{} 的限制：该学习率偏离优化器常用范围一个数量级以上，救援时允许一步回到范围内",
                        accepted.parameter,
                        num(old),
                        num(new),
                        num(factor)
                    ));
                }
                decision.changes.push(accepted)
            }
            Err(reason) => decision.rejected.push(reject(reason)),
        }
    }

    cross_check(run, &mut decision, lang);
    against_the_findings(diagnosis, &mut decision, lang);
    decision.rejected.extend(proposal.discarded.iter().cloned());

    if decision.changes.len() > MAX_CHANGES {
        let mut ranked = std::mem::take(&mut decision.changes);
        // Stable sort: among equal confidences the advisor's order stands.
        ranked.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        for extra in ranked.split_off(MAX_CHANGES) {
            decision.rejected.push(Rejected {
                parameter: extra.parameter,
                proposed: extra.new,
                reason: say!(
                    lang,
                    "at most {MAX_CHANGES} changes at once, and this one had lower confidence than those kept",
                    "每次最多 {MAX_CHANGES} 项变更，此项置信度低于保留的变更"
                ),
            });
        }
        decision.changes = ranked;
    }
    decision
}

/// The tunable a proposal names: a dotted config path, or a catalogue name the config
/// has exactly one key for (an LLM may say `learning_rate` for `optimizer.lr`).
fn resolve<'r>(run: &'r Run, parameter: &str, lang: Lang) -> Result<&'r Tunable, String> {
    let Some(config) = &run.config else {
        return Err(say!(
            lang,
            "no config was given, so nothing can be changed",
            "未提供配置文件，无法修改任何参数"
        ));
    };
    if let Some(t) = run.tunables.iter().find(|t| t.path == parameter) {
        return Ok(t);
    }
    if let Some(value) = config.get(parameter) {
        return Err(match run.space.lookup(parameter) {
            Some(_) => say!(
                lang,
                "frozen: `{parameter}` is {}, not a number retune can tune",
                "冻结：`{parameter}` 是{}，不是可调的数值",
                kind_of(value)
            ),
            None => say!(
                lang,
                "frozen: not a tunable hyperparameter (paths, names, seeds, data settings and architecture never change)",
                "冻结：不是可调超参数（路径、名称、随机种子、数据设置和模型结构不会被修改）"
            ),
        });
    }
    let by_name: Vec<&Tunable> = run
        .tunables
        .iter()
        .filter(|t| t.spec.name == parameter)
        .collect();
    if let [only] = by_name.as_slice() {
        return Ok(only);
    }
    Err(say!(
        lang,
        "unknown: the config has no key `{parameter}`, and retune never adds keys",
        "未知：配置中没有 `{parameter}`，retune 不会新增键"
    ))
}

fn check_change(
    run: &Run,
    diagnosis: &Diagnosis,
    tunable: &Tunable,
    change: &ProposedChange,
    restarting: bool,
    lang: Lang,
) -> Result<Change, String> {
    let spec = &tunable.spec;
    let old = tunable.value;
    let proposed = proposed_number(&change.new_value).ok_or_else(|| {
        say!(
            lang,
            "not a number: {}",
            "不是数值：{}",
            truncate(&change.new_value.to_string(), 60)
        )
    })?;
    if !proposed.is_finite() {
        return Err(say!(lang, "not a finite number", "不是有限数值"));
    }
    if spec.kind == ParamType::Int && (proposed - proposed.round()).abs() > 1e-9 {
        return Err(say!(
            lang,
            "must be an integer, got {}",
            "必须是整数，收到 {}",
            num(proposed)
        ));
    }
    if proposed < spec.min || proposed > spec.max {
        return Err(say!(
            lang,
            "outside the bounds of {} [{}, {}]",
            "超出 {} 的范围 [{}, {}]",
            spec.name,
            num(spec.min),
            num(spec.max)
        ));
    }
    if !spec.between_epochs && run.facts.epochs_done >= 1 && !restarting {
        return Err(say!(
            lang,
            "{} is read only when a run starts; changing it mid-run has no effect without a restart",
            "{} 只在训练开始时读取；不重启训练时中途修改无效",
            spec.name
        ));
    }
    if let Some(epoch) = in_cooldown(&run.history, &tunable.path, run.facts.epochs_done)
        && !diverged_since(diagnosis, epoch)
    {
        return Err(say!(
            lang,
            "cooldown: changed at epoch {epoch}; left alone for {COOLDOWN_EPOCHS} epochs so its effect can show",
            "冷却期：已在第 {epoch} 轮修改；{COOLDOWN_EPOCHS} 轮内不再改动，以观察效果"
        ));
    }

    let (mut new, mut clamped) = (proposed, None);
    // A rate an order of magnitude outside its optimizer's usual range may come into the
    // range in one adjustment: the step limit is for tuning, not for a rescue.
    let rescue = spec.name == "learning_rate" && rescue_into_range(diagnosis, tunable, proposed);
    if !rescue && let Some((limit, why)) = step_limit(spec, old, proposed, lang) {
        new = limit;
        clamped = Some(why);
    }
    if spec.kind == ParamType::Int {
        new = new.round();
    }
    new = new.clamp(spec.min, spec.max);

    // Judged on 1 − value for decay rates, whose horizon is what a change moves.
    let (base_old, base_new) = if spec.decay {
        (1.0 - old, 1.0 - new)
    } else {
        (old, new)
    };
    if (base_new - base_old).abs() <= NOOP_RELATIVE * base_old.abs().max(f64::EPSILON) {
        let shown = if clamped.is_some() {
            say!(
                lang,
                "{} (clamped from {})",
                "{}（由 {} 限幅）",
                num(new),
                num(proposed)
            )
        } else {
            num(proposed)
        };
        return Err(say!(
            lang,
            "no-op: {} → {} changes the value by less than {}%",
            "无效变更：{} → {} 的变化小于 {}%",
            num(old),
            shown,
            NOOP_RELATIVE * 100.0
        ));
    }
    let confidence = if change.confidence.is_finite() {
        change.confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Ok(Change {
        parameter: tunable.path.clone(),
        canonical: spec.name.clone(),
        old: tunable.raw.clone(),
        new: number_like(new, &tunable.raw),
        rationale: truncate(change.rationale.trim(), MAX_RATIONALE_CHARS),
        confidence,
        clamped: clamped.map(|reason| Clamp {
            proposed: change.new_value.clone(),
            reason,
        }),
    })
}

/// True when `proposed` moves a learning rate that the config check found at least
/// `RESCUE_OUTSIDE_FACTOR` (10×) outside its optimizer's usual range into that range.
pub(crate) fn rescue_into_range(diagnosis: &Diagnosis, tunable: &Tunable, proposed: f64) -> bool {
    let old = tunable.value;
    diagnosis
        .findings
        .iter()
        .filter(|f| f.id == FindingId::LearningRateExtreme)
        .filter(|f| {
            f.evidence
                .get("parameter")
                .and_then(Value::as_str)
                .is_none_or(|p| p == tunable.path)
        })
        .any(|f| {
            let bound = |k: &str| f.evidence.get(k).and_then(Value::as_f64);
            let (Some(low), Some(high)) = (bound("low"), bound("high")) else {
                return false;
            };
            let slack = 1.0 + 1e-9;
            let far_outside = old >= high * RESCUE_OUTSIDE_FACTOR / slack
                || old * RESCUE_OUTSIDE_FACTOR <= low * slack;
            far_outside && proposed >= low / slack && proposed <= high * slack
        })
}

/// Numbers, and numbers an LLM wrote as strings ("5e-4").
fn proposed_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// The clamped value and why, when `proposed` moves further than one adjustment may.
fn step_limit(
    spec: &crate::space::ParamSpec,
    old: f64,
    proposed: f64,
    lang: Lang,
) -> Option<(f64, String)> {
    let (lo, hi, largest) = match (spec.scale, spec.max_factor) {
        (Scale::Log, Some(factor)) if old > 0.0 => {
            (old / factor, old * factor, format!("×{}", num(factor)))
        }
        _ => {
            let step = spec.max_step?;
            (old - step, old + step, num(step))
        }
    };
    // A hair of slack, so that a limit computed in floating point (1e-6 × 10 =
    // 9.999999999999999e-6) does not clamp a proposal of exactly that limit (1e-5).
    let slack = 1e-9 * hi.abs().max(lo.abs());
    if proposed >= lo - slack && proposed <= hi + slack {
        return None;
    }
    let limit = proposed.clamp(lo, hi);
    Some((
        limit,
        say!(
            lang,
            "clamped from {} to {}: one adjustment moves {} by at most {}",
            "从 {} 限制为 {}：{} 每次最多变化 {}",
            num(proposed),
            num(limit),
            spec.name,
            largest
        ),
    ))
}

/// Changes that move against what the findings establish: a larger step on a run that
/// diverges or oscillates, less regularisation on a run that overfits. No advisor that
/// read the findings proposes them; a confused model does (a weak one answers a
/// diverging run with learning rate 0.001 → 1.001).
const AGAINST: &[(FindingId, &str, f64)] = &[
    (FindingId::Divergence, "learning_rate", 1.0),
    (FindingId::Oscillation, "learning_rate", 1.0),
    (FindingId::Overfitting, "dropout", -1.0),
    (FindingId::Overfitting, "weight_decay", -1.0),
    // Validation at chance while training learns is the validation data, not overfitting.
    (FindingId::ValAtChance, "dropout", 1.0),
    (FindingId::ValAtChance, "weight_decay", 1.0),
];

fn against_the_findings(diagnosis: &Diagnosis, decision: &mut Decision, lang: Lang) {
    let mut keep = Vec::with_capacity(decision.changes.len());
    for change in std::mem::take(&mut decision.changes) {
        let (old, new) = (
            change.old.as_f64().unwrap_or(0.0),
            change.new.as_f64().unwrap_or(0.0),
        );
        // A learning rate the config check found out of range may only move back into it.
        let range = diagnosis.get(FindingId::LearningRateExtreme).and_then(|f| {
            match f.evidence.get("direction").and_then(Value::as_str) {
                Some("high") => Some((FindingId::LearningRateExtreme, "learning_rate", 1.0)),
                Some("low") => Some((FindingId::LearningRateExtreme, "learning_rate", -1.0)),
                _ => None,
            }
        });
        let wrong = AGAINST
            .iter()
            .chain(range.as_ref())
            .find(|(finding, canonical, direction)| {
                change.canonical == *canonical
                    && diagnosis.has(*finding)
                    && (new - old) * direction > 0.0
            });
        match wrong {
            Some((finding, _, direction)) => decision.rejected.push(Rejected {
                parameter: change.parameter,
                proposed: change.new,
                reason: say!(
                    lang,
                    "moves against the finding `{finding}`: {} must not {} on this run",
                    "与诊断 `{finding}` 相悖：此次训练中 {} 不应{}",
                    change.canonical,
                    if *direction > 0.0 {
                        say!(lang, "increase", "增大")
                    } else {
                        say!(lang, "decrease", "减小")
                    }
                ),
            }),
            None => keep.push(change),
        }
    }
    decision.changes = keep;
}

/// Rules that involve more than one parameter, applied to the accepted set.
fn cross_check(run: &Run, decision: &mut Decision, lang: Lang) {
    // Warmup must fit in the run, and we must know the run's length to say it does.
    let mut keep = Vec::with_capacity(decision.changes.len());
    for change in std::mem::take(&mut decision.changes) {
        let new = change.new.as_f64().unwrap_or(f64::NAN);
        let problem = match change.canonical.as_str() {
            "warmup_steps" => match &run.facts.total_steps {
                None => Some(say!(
                    lang,
                    "the run's total optimizer steps are unknown (no max_steps, dataset size or steps per epoch anywhere), so a warmup length cannot be checked",
                    "训练总优化步数未知（配置和日志中都没有 max_steps、数据集大小或每轮步数），无法检查预热长度"
                )),
                Some(total) if new >= total.value as f64 => Some(say!(
                    lang,
                    "a warmup of {} steps does not fit in the run's {} optimizer steps ({})",
                    "{} 步预热超过了训练的总优化步数 {}（{}）",
                    num(new),
                    total.value,
                    total.source
                )),
                _ => None,
            },
            "learning_rate" => {
                let floor = decision
                    .changes
                    .iter()
                    .chain(keep.iter())
                    .find(|c| c.canonical == "min_lr")
                    .and_then(|c| c.new.as_f64())
                    .or_else(|| run.tunable("min_lr").map(|t| t.value));
                floor.filter(|f| new < *f).map(|f| {
                    say!(
                        lang,
                        "below the schedule's floor min_lr = {}",
                        "低于调度器下限 min_lr = {}",
                        num(f)
                    )
                })
            }
            _ => None,
        };
        match problem {
            Some(reason) => decision.rejected.push(Rejected {
                parameter: change.parameter,
                proposed: change.new,
                reason,
            }),
            None => keep.push(change),
        }
    }
    decision.changes = keep;
    linear_scaling(run, decision, lang);
}

/// A batch-size change with SGD keeps the learning rate per example constant (the linear
/// scaling rule, Goyal et al. 2017), unless the learning rate is already being changed.
/// Adaptive optimizers do not follow the rule; we say so instead.
fn linear_scaling(run: &Run, decision: &mut Decision, lang: Lang) {
    let Some(batch) = decision
        .changes
        .iter()
        .find(|c| c.canonical == "batch_size")
    else {
        return;
    };
    if decision
        .changes
        .iter()
        .any(|c| c.canonical == "learning_rate")
    {
        return;
    }
    let Some(lr) = run.tunable("learning_rate") else {
        return;
    };
    let (old_b, new_b) = (
        batch.old.as_f64().unwrap_or(0.0),
        batch.new.as_f64().unwrap_or(0.0),
    );
    if old_b <= 0.0 {
        return;
    }
    let sgd = run
        .facts
        .optimizer
        .as_deref()
        .is_some_and(|o| o.contains("sgd") || o.contains("momentum") || o.contains("nesterov"));
    if !sgd {
        decision.notes.push(say!(
            lang,
            "batch size changes {} → {}; the learning rate ({}) is left as it is because the linear scaling rule holds for SGD, not for adaptive optimizers like {}",
            "批大小 {} → {}；学习率（{}）保持不变：线性缩放规则适用于 SGD，不适用于 {} 等自适应优化器",
            num(old_b),
            num(new_b),
            lr.path,
            run.facts.optimizer.as_deref().unwrap_or("Adam")
        ));
        return;
    }
    let scaled = (lr.value * new_b / old_b).clamp(lr.spec.min, lr.spec.max);
    decision.changes.push(Change {
        parameter: lr.path.clone(),
        canonical: lr.spec.name.clone(),
        old: lr.raw.clone(),
        new: number_like(scaled, &lr.raw),
        rationale: say!(
            lang,
            "linear scaling rule: batch size {} → {} with SGD, so the learning rate scales by the same factor ({} → {})",
            "线性缩放规则：SGD 下批大小 {} → {}，学习率按同一比例缩放（{} → {}）",
            num(old_b),
            num(new_b),
            num(lr.value),
            num(scaled)
        ),
        confidence: batch.confidence,
        clamped: None,
    });
}

/// Drops actions the findings do not support: a restart throws away all training, so it
/// needs a divergence with no sane epoch; a restore needs something worth going back from.
fn validate_actions(
    run: &Run,
    diagnosis: &Diagnosis,
    proposed: &[Action],
    lang: Lang,
    notes: &mut Vec<String>,
) -> Vec<Action> {
    let mut actions: Vec<Action> = Vec::new();
    let divergence = diagnosis.get(FindingId::Divergence);
    // A run stuck at chance (or not learning at all): starting again loses nothing when
    // no epoch was ever better than chance; going back to its best epoch never hurts.
    let stuck = crate::diagnose::STUCK_FINDINGS
        .into_iter()
        .any(|id| diagnosis.has(id));
    let never = never_learned(run, diagnosis);
    let sane_epoch = divergence
        .and_then(|f| f.evidence.get("last_sane_epoch"))
        .is_some_and(|v| !v.is_null());
    for &action in proposed {
        if actions.contains(&action) {
            continue;
        }
        let supported = match action {
            Action::Restart => (divergence.is_some() && !sane_epoch) || never,
            // Going back to the best weights is also how a run stopped on a plateau keeps
            // its best epoch rather than its last.
            Action::RestoreCheckpoint => {
                (divergence.is_some() && sane_epoch)
                    || stuck
                    || diagnosis.has(FindingId::Overfitting)
                    || (diagnosis.has(FindingId::Plateau) && proposed.contains(&Action::StopEarly))
            }
            Action::StopEarly => {
                diagnosis.has(FindingId::Overfitting) || diagnosis.has(FindingId::Plateau)
            }
        };
        if supported {
            actions.push(action);
        } else {
            notes.push(say!(
                lang,
                "dropped the action `{}`: the findings do not support it",
                "已忽略动作 `{}`：诊断结果不支持",
                action.as_str()
            ));
        }
    }
    if actions.contains(&Action::Restart) {
        actions.retain(|a| *a != Action::RestoreCheckpoint);
    }
    actions
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history;
    use crate::run::testing::run;
    use crate::types::{Finding, Severity};

    const CONFIG: &str = r#"{"optimizer": {"name": "adam", "lr": 0.001}, "batch_size": 32, "dropout": 0.1,
        "weight_decay": 0.0001, "epochs": 20, "seed": 42, "data_dir": "/data", "warmup_steps": 0, "min_lr": 1e-6}"#;

    fn propose(changes: &[(&str, Value)]) -> Proposal {
        Proposal {
            provider: "test".into(),
            model: None,
            diagnosis: String::new(),
            changes: changes
                .iter()
                .map(|(p, v)| ProposedChange {
                    parameter: p.to_string(),
                    new_value: v.clone(),
                    rationale: format!("because {p} should move"),
                    confidence: 0.7,
                })
                .collect(),
            actions: vec![],
            advice: vec![],
            discarded: vec![],
            llm: None,
        }
    }

    fn decide(changes: &[(&str, Value)]) -> Decision {
        let r = run(Some(CONFIG), &[("loss", &[1.0, 0.9, 0.8])]);
        validate(&r, &Diagnosis::default(), &propose(changes), Lang::En)
    }

    fn reason(d: &Decision, parameter: &str) -> String {
        d.rejected
            .iter()
            .find(|r| r.parameter == parameter)
            .map(|r| r.reason.clone())
            .unwrap_or_else(|| panic!("{parameter} not rejected: {d:?}"))
    }

    #[test]
    fn dangerous_values_are_rejected_with_reasons() {
        let d = decide(&[
            ("data_dir", json!("/tmp")),
            ("seed", json!(1)),
            ("optimizer.lr", json!(100.0)),
            ("batch_size", json!(0)),
            ("momentum", json!(0.9)),
            ("dropout", json!(1.5)),
            ("epochs", json!(1e9)),
        ]);
        assert!(d.changes.is_empty(), "{:?}", d.changes);
        assert!(reason(&d, "data_dir").starts_with("frozen"));
        assert!(reason(&d, "seed").starts_with("frozen"));
        assert!(reason(&d, "optimizer.lr").contains("outside the bounds"));
        assert!(reason(&d, "batch_size").contains("outside the bounds"));
        assert!(reason(&d, "momentum").starts_with("unknown"));
        assert!(reason(&d, "dropout").contains("outside the bounds"));
        assert!(reason(&d, "epochs").contains("outside the bounds"));
    }

    #[test]
    fn float_noise_is_a_no_op_and_shortest_floats_are_written() {
        let d = decide(&[
            ("weight_decay", json!(9.999999999999999e-05)),
            ("optimizer.lr", json!(0.001 / 5.0)),
        ]);
        assert!(reason(&d, "weight_decay").starts_with("no-op"));
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].new.to_string(), "0.0002");
        assert_eq!(d.changes[0].canonical, "learning_rate");
    }

    #[test]
    fn large_steps_are_clamped_and_integers_stay_integers() {
        let d = decide(&[("optimizer.lr", json!(0.01)), ("batch_size", json!(128))]);
        assert!(
            d.changes.iter().all(|c| c.clamped.is_none()),
            "exactly the largest step: {d:?}"
        );
        let d = decide(&[("optimizer.lr", json!(0.5)), ("batch_size", json!(512))]);
        let lr = d
            .changes
            .iter()
            .find(|c| c.parameter == "optimizer.lr")
            .unwrap();
        assert_eq!(lr.new, json!(0.01));
        assert!(lr.clamped.as_ref().unwrap().reason.contains("×10"));
        let batch = d
            .changes
            .iter()
            .find(|c| c.parameter == "batch_size")
            .unwrap();
        assert_eq!(batch.new, json!(128));
        let d = decide(&[("batch_size", json!(16.5))]);
        assert!(reason(&d, "batch_size").contains("integer"));
        let d = decide(&[("batch_size", json!(16.0))]);
        assert_eq!(d.changes[0].new.to_string(), "16");
    }

    #[test]
    fn decay_rates_are_judged_on_their_horizon() {
        let cfg = r#"{"ema_decay": 0.9999, "optimizer": {"betas": [0.9, 0.999]}}"#;
        let r = run(Some(cfg), &[("loss", &[1.0, 0.9])]);
        let p = propose(&[
            ("ema_decay", json!(0.999)),
            ("optimizer.betas.1", json!(0.9995)),
        ]);
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert_eq!(d.changes.len(), 2, "{d:?}");
        let p = propose(&[("ema_decay", json!(0.99990000001))]);
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert!(reason(&d, "ema_decay").starts_with("no-op"));
    }

    #[test]
    fn one_generic_rationale_for_several_changes_is_rejected() {
        let mut p = propose(&[("optimizer.lr", json!(0.0005)), ("dropout", json!(0.2))]);
        for c in &mut p.changes {
            c.rationale = "based on the current training metrics".into();
        }
        let r = run(Some(CONFIG), &[("loss", &[1.0, 0.9])]);
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert_eq!(d.changes.len(), 1);
        assert!(reason(&d, "dropout").contains("same rationale as the change to optimizer.lr"));
        let mut p = propose(&[("optimizer.lr", json!(0.0005))]);
        p.changes[0].rationale = "  ".into();
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert!(reason(&d, "optimizer.lr").starts_with("no rationale"));
    }

    #[test]
    fn catalogue_names_resolve_to_the_configs_path() {
        let d = decide(&[("learning_rate", json!(0.0005))]);
        assert_eq!(d.changes[0].parameter, "optimizer.lr");
    }

    #[test]
    fn strings_and_duplicates_and_nonsense_confidence() {
        let mut p = propose(&[
            ("dropout", json!("0.3")),
            ("dropout", json!(0.2)),
            ("optimizer.lr", json!("fast")),
        ]);
        p.changes[0].confidence = 1.001;
        let r = run(Some(CONFIG), &[("loss", &[1.0, 0.9])]);
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].new, json!(0.3));
        assert_eq!(d.changes[0].confidence, 1.0);
        assert!(
            d.rejected
                .iter()
                .any(|r| r.reason.contains("proposed twice"))
        );
        assert!(reason(&d, "optimizer.lr").starts_with("not a number"));
    }

    #[test]
    fn warmup_needs_a_known_run_length() {
        let d = decide(&[("warmup_steps", json!(500))]);
        // Mid-run, warmup is read only at the start; and the run's length is unknown.
        assert!(reason(&d, "warmup_steps").contains("read only when a run starts"));
        let mut p = propose(&[("warmup_steps", json!(500))]);
        p.actions = vec![Action::Restart];
        let r = run(Some(CONFIG), &[("loss", &[f64::NAN])]);
        let mut diag = Diagnosis::default();
        diag.findings.push(Finding {
            id: FindingId::Divergence,
            severity: Severity::Critical,
            summary: String::new(),
            evidence: crate::types::evidence!["last_sane_epoch" => Value::Null],
        });
        let d = validate(&r, &diag, &p, Lang::En);
        assert_eq!(d.actions, vec![Action::Restart]);
        assert!(reason(&d, "warmup_steps").contains("total optimizer steps are unknown"));
    }

    #[test]
    fn at_most_a_handful_of_changes_keeping_the_most_confident() {
        let mut p = propose(&[
            ("optimizer.lr", json!(0.002)),
            ("batch_size", json!(64)),
            ("dropout", json!(0.2)),
            ("weight_decay", json!(0.0003)),
            ("epochs", json!(30)),
        ]);
        p.changes[4].confidence = 0.9;
        p.changes[1].confidence = 0.1;
        let r = run(Some(CONFIG), &[("loss", &[1.0])]);
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert_eq!(d.changes.len(), MAX_CHANGES);
        assert!(reason(&d, "batch_size").contains("at most"));
        assert!(d.changes.iter().any(|c| c.parameter == "epochs"));
    }

    #[test]
    fn sgd_batch_change_scales_the_learning_rate_adam_does_not() {
        let sgd = r#"{"optimizer": "sgd", "lr": 0.1, "batch_size": 128}"#;
        let r = run(Some(sgd), &[("loss", &[1.0])]);
        let d = validate(
            &r,
            &Diagnosis::default(),
            &propose(&[("batch_size", json!(256))]),
            Lang::En,
        );
        let lr = d.changes.iter().find(|c| c.parameter == "lr").unwrap();
        assert_eq!(lr.new, json!(0.2));
        let adam = r#"{"optimizer": "adam", "lr": 0.001, "batch_size": 128}"#;
        let r = run(Some(adam), &[("loss", &[1.0])]);
        let d = validate(
            &r,
            &Diagnosis::default(),
            &propose(&[("batch_size", json!(256))]),
            Lang::En,
        );
        assert_eq!(d.changes.len(), 1);
        assert!(d.notes[0].contains("linear scaling rule holds for SGD"));
    }

    #[test]
    fn cooldown_holds_unless_the_run_diverges() {
        let mut r = run(Some(CONFIG), &[("loss", &[1.0, 0.9, 0.8])]);
        r.history.push(history::entry(
            Some(2),
            &[("optimizer.lr", "learning_rate", 0.003, 0.001)],
            &[],
            &[],
        ));
        let p = propose(&[("optimizer.lr", json!(0.0005))]);
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert!(reason(&d, "optimizer.lr").starts_with("cooldown"));
        let diverged_at = |epoch: u32| {
            let mut diag = Diagnosis::default();
            diag.findings.push(Finding {
                id: FindingId::Divergence,
                severity: Severity::Critical,
                summary: String::new(),
                evidence: crate::types::evidence!["epoch" => epoch],
            });
            diag
        };
        // A divergence after the change is new evidence: the cooldown gives way.
        let d = validate(&r, &diverged_at(3), &p, Lang::En);
        assert_eq!(d.changes.len(), 1);
        // The divergence the change answered is not.
        let d = validate(&r, &diverged_at(2), &p, Lang::En);
        assert!(reason(&d, "optimizer.lr").starts_with("cooldown"));
    }

    #[test]
    fn changes_against_the_findings_are_rejected() {
        let r = run(Some(CONFIG), &[("loss", &[1.0, f64::NAN])]);
        let mut diag = Diagnosis::default();
        diag.findings.push(Finding {
            id: FindingId::Divergence,
            severity: Severity::Critical,
            summary: String::new(),
            evidence: Default::default(),
        });
        let d = validate(
            &r,
            &diag,
            &propose(&[("optimizer.lr", json!(0.005))]),
            Lang::En,
        );
        assert!(reason(&d, "optimizer.lr").contains("against the finding `divergence`"));
        let d = validate(
            &r,
            &diag,
            &propose(&[("optimizer.lr", json!(0.0001))]),
            Lang::En,
        );
        assert_eq!(d.changes.len(), 1);
        // A rate found far too low may only go up.
        let mut low = Diagnosis::default();
        low.findings.push(Finding {
            id: FindingId::LearningRateExtreme,
            severity: Severity::Warning,
            summary: String::new(),
            evidence: crate::types::evidence!["direction" => "low"],
        });
        let d = validate(
            &r,
            &low,
            &propose(&[("optimizer.lr", json!(0.0005))]),
            Lang::En,
        );
        assert!(reason(&d, "optimizer.lr").contains("against the finding `learning_rate_extreme`"));
    }

    #[test]
    fn unsupported_actions_are_dropped() {
        let mut p = propose(&[]);
        p.actions = vec![Action::Restart, Action::StopEarly];
        let r = run(Some(CONFIG), &[("loss", &[1.0, 0.9])]);
        let d = validate(&r, &Diagnosis::default(), &p, Lang::En);
        assert!(d.actions.is_empty());
        assert_eq!(d.notes.len(), 2);
    }
}
