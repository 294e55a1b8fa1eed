//! The report's sections after its header, in reading order: the summary, the findings,
//! the changes and rejections, earlier adjustments, the recent epochs and the config diff.

use std::collections::BTreeMap;

use serde_json::Value;

use super::escape::{code, diff_block, escape_cell, prose};
use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::Canonical;
use crate::metrics::names;
use crate::num::num;
use crate::num::number_from_json;
use crate::num::value_text;
use crate::outcome::Outcome;
use crate::types::Action;
use crate::types::Finding;
use crate::types::Severity;

/// Epochs in the recent-epochs table: enough to see a trend, few enough to scan.
pub const RECENT_EPOCHS: usize = 10;
/// Evidence lists longer than this are cut in the report; the JSON twin has them whole.
pub(super) const EVIDENCE_ITEMS: usize = 12;
/// The series the recent-epochs table shows, in this order, when the metrics have them.
pub(super) const TABLE_SERIES: [Canonical; 5] = [
    Canonical::Loss,
    Canonical::ValLoss,
    Canonical::Accuracy,
    Canonical::ValAccuracy,
    Canonical::Lr,
];

pub(super) fn summary(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    let findings = &outcome.diagnosis.findings;
    let decision = &outcome.decision;
    md.push_str(&say!(lang, "## Summary\n\n", "## 摘要\n\n"));

    match findings.split_first() {
        None => md.push_str(&say!(
            lang,
            "**Healthy:** no detector fired on {} epochs.",
            "**健康：** {} 轮指标未触发任何检测。",
            outcome.run.facts.epochs_done
        )),
        Some((top, rest)) => {
            md.push_str(&say!(
                lang,
                "**{}:** {}",
                "**{}：** {}",
                severity_label(top.severity, lang),
                full_sentence(&prose(&top.summary), lang)
            ));
            if !rest.is_empty() {
                let others: Vec<String> = rest
                    .iter()
                    .map(|f| {
                        say!(
                            lang,
                            "{} ({})",
                            "{}（{}）",
                            code(f.id.as_str()),
                            severity_word(f.severity, lang)
                        )
                    })
                    .collect();
                md.push_str(&say!(
                    lang,
                    " Also: {}.",
                    "另见：{}。",
                    others.join(list_separator(lang))
                ));
            }
        }
    }
    if lang == Lang::En {
        md.push(' ');
    }

    let rejected = decision.rejected.len();
    let rejected_tail = match rejected {
        0 => String::new(),
        1 => say!(lang, "; 1 suggestion rejected", "；1 条建议被拒绝"),
        n => say!(lang, "; {n} suggestions rejected", "；{n} 条建议被拒绝"),
    };
    if decision.changes.is_empty() {
        md.push_str(&say!(
            lang,
            "No change to the config{rejected_tail}.",
            "配置无变更{rejected_tail}。"
        ));
    } else {
        let list: Vec<String> = decision
            .changes
            .iter()
            .map(|c| {
                let clamped = if c.clamped.is_some() {
                    say!(lang, " (clamped)", "（已限幅）")
                } else {
                    String::new()
                };
                format!(
                    "{} {} → {}{clamped}",
                    code(&c.parameter),
                    escape_cell(&value_text(&c.old)),
                    escape_cell(&value_text(&c.new))
                )
            })
            .collect();
        md.push_str(&say!(
            lang,
            "Changes: {}{rejected_tail}.",
            "变更：{}{rejected_tail}。",
            list.join(list_separator(lang))
        ));
    }
    md.push_str("\n\n");

    md.push_str(&say!(
        lang,
        "**What the trainer should do:** {}\n\n",
        "**训练器应当：** {}\n\n",
        trainer_instruction(outcome)
    ));

    // The rules advisor's reading is often the top finding word for word; once is enough.
    let diagnosis = outcome.proposal.diagnosis.trim();
    let repeats = findings
        .first()
        .is_some_and(|f| f.summary.trim() == diagnosis);
    if !diagnosis.is_empty() && !repeats {
        md.push_str(&say!(
            lang,
            "> **Advisor ({}):** {}\n\n",
            "> **顾问（{}）：** {}\n\n",
            escape_cell(&outcome.proposal.provider),
            prose(diagnosis)
        ));
    }
}

/// The actions in plain words: what to load, whether to go on.
pub(super) fn trainer_instruction(outcome: &Outcome) -> String {
    let lang = outcome.lang;
    let actions = &outcome.decision.actions;
    let changed = !outcome.decision.changes.is_empty();
    let at = match checkpoint_epoch(outcome) {
        Some(e) => say!(lang, " (epoch {e})", "（第 {e} 轮）"),
        None => String::new(),
    };
    if actions.contains(&Action::StopEarly) {
        return say!(
            lang,
            "stop training: more epochs will not help. Keep the best checkpoint{at}.",
            "停止训练：继续训练无益。保留最佳检查点{at}。"
        );
    }
    if actions.contains(&Action::Restart) {
        return say!(
            lang,
            "reinitialise the weights and train from scratch with the adjusted config: no checkpoint of this run is sane.",
            "重新初始化权重，用调整后的配置从头训练：本次训练没有可用的检查点。"
        );
    }
    if actions.contains(&Action::RestoreCheckpoint) {
        return if changed {
            say!(
                lang,
                "reload the best checkpoint{at}, then resume with the adjusted config.",
                "先恢复最佳检查点{at}，再用调整后的配置继续训练。"
            )
        } else {
            say!(
                lang,
                "reload the best checkpoint{at}, then resume.",
                "先恢复最佳检查点{at}，再继续训练。"
            )
        };
    }
    if changed {
        say!(
            lang,
            "resume from the current weights with the adjusted config.",
            "从当前权重出发，用调整后的配置继续训练。"
        )
    } else if !outcome.proposal.advice.is_empty() {
        say!(
            lang,
            "no config change this time; read the advice below before training on.",
            "本次不改配置；继续训练前先阅读下面的建议。"
        )
    } else if !outcome.diagnosis.findings.is_empty() {
        say!(
            lang,
            "continue training; no config change was accepted.",
            "继续训练；没有被接受的配置变更。"
        )
    } else {
        say!(lang, "continue training as it is.", "按原样继续训练。")
    }
}

/// The epoch whose weights to go back to: the best validation (or training) loss. After a
/// divergence that is an epoch before it; the last sane epoch may already be degrading.
pub(super) fn checkpoint_epoch(outcome: &Outcome) -> Option<u32> {
    let metrics = &outcome.run.metrics;
    metrics
        .get(Canonical::ValLoss)
        .or_else(|| metrics.get(Canonical::Loss))
        .and_then(|s| s.min())
        .map(|p| p.epoch)
}

pub(super) fn severity_label(severity: Severity, lang: Lang) -> String {
    match severity {
        Severity::Critical => say!(lang, "Critical", "严重"),
        Severity::Warning => say!(lang, "Warning", "警告"),
        Severity::Info => say!(lang, "Note", "提示"),
    }
}

pub(super) fn severity_word(severity: Severity, lang: Lang) -> String {
    match severity {
        Severity::Critical => say!(lang, "critical", "严重"),
        Severity::Warning => say!(lang, "warning", "警告"),
        Severity::Info => say!(lang, "note", "提示"),
    }
}

pub(super) fn list_separator(lang: Lang) -> &'static str {
    match lang {
        Lang::En => ", ",
        Lang::Zh => "，",
    }
}

/// A detector's summary as a sentence in running text: ends with a full stop.
pub(super) fn full_sentence(text: &str, lang: Lang) -> String {
    if text.ends_with(['.', '!', '?', '。', '！', '？']) {
        text.to_string()
    } else {
        say!(lang, "{text}.", "{text}。")
    }
}

pub(super) fn findings(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    let diagnosis = &outcome.diagnosis;
    md.push_str(&say!(lang, "## Findings\n\n", "## 诊断结果\n\n"));
    if diagnosis.findings.is_empty() {
        md.push_str(&say!(
            lang,
            "No detector fired.\n\n",
            "没有检测项触发。\n\n"
        ));
    }
    for finding in &diagnosis.findings {
        md.push_str(&finding_item(finding, lang));
    }
    if !diagnosis.findings.is_empty() {
        md.push('\n');
    }
    if !diagnosis.skipped.is_empty() {
        md.push_str(&say!(lang, "Not checked:\n\n", "未检查：\n\n"));
        for s in &diagnosis.skipped {
            md.push_str(&say!(
                lang,
                "- {}: {}\n",
                "- {}：{}\n",
                code(s.check),
                prose(&s.reason)
            ));
        }
        md.push('\n');
    }
}

pub(super) fn finding_item(finding: &Finding, lang: Lang) -> String {
    let mut item = say!(
        lang,
        "- **{}** {}: {}\n",
        "- **{}** {}：{}\n",
        severity_label(finding.severity, lang),
        code(finding.id.as_str()),
        prose(&finding.summary)
    );
    if finding.evidence.values().any(|v| !v.is_null()) {
        // A null says "not known"; listing it adds nothing a reader can use.
        let pairs: Vec<String> = finding
            .evidence
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| format!("{} = {}", escape_cell(k), evidence_text(v)))
            .collect();
        item.push_str(&say!(
            lang,
            "  - evidence: {}\n",
            "  - 依据：{}\n",
            pairs.join(" · ")
        ));
    }
    item
}

/// An evidence value for reading: numbers through `num`, "NaN" strings as NaN, long
/// lists cut.
pub(super) fn evidence_text(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::Number(_) => value_text(value),
        Value::String(s) => match number_from_json(value) {
            Some(n) => num(n),
            None => prose(s),
        },
        Value::Array(items) => {
            let mut parts: Vec<String> = items
                .iter()
                .take(EVIDENCE_ITEMS)
                .map(evidence_text)
                .collect();
            if items.len() > EVIDENCE_ITEMS {
                parts.push(format!("… +{}", items.len() - EVIDENCE_ITEMS));
            }
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", escape_cell(k), evidence_text(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Bool(b) => b.to_string(),
    }
}

pub(super) fn changes(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    let d = &outcome.decision;
    md.push_str(&say!(lang, "## Changes\n\n", "## 变更\n\n"));
    if d.changes.is_empty() {
        md.push_str(&say!(
            lang,
            "No change to the config.\n\n",
            "配置无变更。\n\n"
        ));
    } else {
        md.push_str(&say!(
            lang,
            "| Parameter | Old → new | Rationale | Confidence |\n",
            "| 参数 | 原值 → 新值 | 理由 | 置信度 |\n"
        ));
        md.push_str("|---|---|---|---:|\n");
        for c in &d.changes {
            let mut parameter = code(&c.parameter);
            if !c.canonical.is_empty() && c.canonical != c.parameter {
                parameter.push_str(&say!(lang, " ({})", "（{}）", escape_cell(&c.canonical)));
            }
            let mut values = format!(
                "{} → {}",
                escape_cell(&value_text(&c.old)),
                escape_cell(&value_text(&c.new))
            );
            let mut rationale = prose(&c.rationale);
            if let Some(clamp) = &c.clamped {
                values.push_str(&say!(lang, " **(clamped)**", " **（已限幅）**"));
                let reason = prose(&clamp.reason);
                rationale.push_str(&say!(lang, "; *{reason}*", "；*{reason}*"));
            }
            md.push_str(&format!(
                "| {parameter} | {values} | {rationale} | {} |\n",
                percent(c.confidence)
            ));
        }
        md.push('\n');
    }

    if !d.rejected.is_empty() {
        md.push_str(&say!(
            lang,
            "### Rejected and dropped suggestions\n\n| Parameter | Proposed | Reason |\n",
            "### 被拒绝和丢弃的建议\n\n| 参数 | 提议值 | 原因 |\n"
        ));
        md.push_str("|---|---|---|\n");
        for r in &d.rejected {
            md.push_str(&format!(
                "| {} | {} | {} |\n",
                code(&r.parameter),
                escape_cell(&value_text(&r.proposed)),
                prose(&r.reason)
            ));
        }
        md.push('\n');
    }
    bullet_section(
        md,
        &say!(
            lang,
            "### Advice (not config changes)",
            "### 建议（非配置变更）"
        ),
        &outcome.proposal.advice,
    );
    bullet_section(
        md,
        &say!(lang, "### Validation notes", "### 校验说明"),
        &d.notes,
    );
}

pub(super) fn bullet_section(md: &mut String, heading: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    md.push_str(heading);
    md.push_str("\n\n");
    for item in items {
        md.push_str(&format!("- {}\n", prose(item)));
    }
    md.push('\n');
}

/// 0.8 → "80%"; an out-of-range confidence is shown as it is, validation clamps it.
pub(super) fn percent(confidence: f64) -> String {
    format!("{}%", num((confidence * 100.0).round()))
}

pub(super) fn earlier(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    md.push_str(&say!(
        lang,
        "## Earlier adjustments of this run\n\n",
        "## 本次训练之前的调整\n\n"
    ));
    let run = &outcome.run;
    let sentences = &outcome.diagnosis.effects;
    // `effects` has one sentence per history entry, in order. A trainer calls `suggest`
    // every epoch, and a list of every call that changed nothing (25 lines by epoch 26)
    // would bury the adjustments; those calls are counted in one line instead.
    let mut listed: Vec<&String> = Vec::new();
    let mut quiet: Vec<Option<u32>> = Vec::new();
    if sentences.len() == run.history.len() {
        for (entry, sentence) in run.history.iter().zip(sentences) {
            if adjusted(entry) {
                listed.push(sentence);
            } else {
                quiet.push(entry.epoch);
            }
        }
    } else {
        listed.extend(sentences);
    }
    if listed.is_empty() && quiet.is_empty() {
        md.push_str(&say!(
            lang,
            "None: this is the first adjustment of this run.\n\n",
            "无：这是本次训练的第一次调整。\n\n"
        ));
        return;
    }
    if listed.is_empty() {
        md.push_str(&say!(
            lang,
            "None yet: {}.\n\n",
            "暂无：{}。\n\n",
            quiet_calls(&quiet, lang)
        ));
    } else {
        for sentence in listed {
            md.push_str(&format!("- {}\n", prose(sentence)));
        }
        md.push('\n');
        if !quiet.is_empty() {
            md.push_str(&say!(
                lang,
                "Not listed: {}.\n\n",
                "未列出：{}。\n\n",
                quiet_calls(&quiet, lang)
            ));
        }
    }
    let cooling: Vec<String> = run
        .tunables
        .iter()
        .filter_map(|t| {
            let epoch = crate::history::in_cooldown(&run.history, &t.path, run.facts.epochs_done)?;
            Some(say!(
                lang,
                "{} (changed at epoch {epoch}; free to change again from epoch {})",
                "{}（第 {epoch} 轮修改；从第 {} 轮起可再次修改）",
                code(&t.path),
                epoch + crate::history::COOLDOWN_EPOCHS
            ))
        })
        .collect();
    if !cooling.is_empty() {
        md.push_str(&say!(
            lang,
            "Cooling down: {}.\n\n",
            "冷却中：{}。\n\n",
            cooling.join(", ")
        ));
    }
}

/// A history entry that did something: changed a value (applied or not), asked for an
/// action, or reverted earlier adjustments.
fn adjusted(entry: &crate::history::HistoryEntry) -> bool {
    !entry.changes.is_empty()
        || !entry.not_applied.is_empty()
        || !entry.actions.is_empty()
        || !entry.reverts.is_empty()
}

/// "3 calls that changed nothing (epochs 4–9)".
fn quiet_calls(epochs: &[Option<u32>], lang: Lang) -> String {
    let n = epochs.len();
    let known = epochs.iter().flatten();
    let span = match (known.clone().min(), known.max()) {
        (Some(a), Some(b)) if a == b => say!(lang, " (epoch {a})", "（第 {a} 轮）"),
        (Some(a), Some(b)) => say!(lang, " (epochs {a}–{b})", "（第 {a}–{b} 轮）"),
        _ => String::new(),
    };
    if n == 1 {
        say!(
            lang,
            "1 call that changed nothing{span}",
            "1 次没有任何变更的调用{span}"
        )
    } else {
        say!(
            lang,
            "{n} calls that changed nothing{span}",
            "{n} 次没有任何变更的调用{span}"
        )
    }
}

pub(super) fn recent_epochs(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    let metrics = &outcome.run.metrics;
    md.push_str(&say!(lang, "## Recent epochs\n\n", "## 最近的轮次\n\n"));
    let columns: Vec<&crate::metrics::Series> = TABLE_SERIES
        .iter()
        .filter_map(|c| metrics.get(*c))
        .collect();
    if columns.is_empty() {
        md.push_str(&say!(
            lang,
            "The metrics have no loss, accuracy or learning-rate series.\n\n",
            "指标中没有损失、准确率或学习率。\n\n"
        ));
        return;
    }

    let mut rows: BTreeMap<u32, Vec<Option<f64>>> = BTreeMap::new();
    for (i, series) in columns.iter().enumerate() {
        for p in series.tail(RECENT_EPOCHS) {
            rows.entry(p.epoch)
                .or_insert_with(|| vec![None; columns.len()])[i] = Some(p.value);
        }
    }
    let skip = rows.len().saturating_sub(RECENT_EPOCHS);

    let headers: Vec<String> = columns.iter().map(|s| escape_cell(&s.original)).collect();
    md.push_str(&format!(
        "| {} | {} |\n",
        say!(lang, "epoch", "轮次"),
        headers.join(" | ")
    ));
    md.push_str(&format!("|---:|{}\n", "---:|".repeat(columns.len())));
    let cell = |v: Option<f64>| v.map(num).unwrap_or_default();
    for (epoch, values) in rows.into_iter().skip(skip) {
        let cells: Vec<String> = values.into_iter().map(cell).collect();
        md.push_str(&format!("| {epoch} | {} |\n", cells.join(" | ")));
    }
    if let Some(partial) = &metrics.partial {
        let steps = match partial.steps_total {
            Some(total) => format!("{}/{total}", partial.steps_done),
            None => partial.steps_done.to_string(),
        };
        let label = say!(
            lang,
            "{} (running, {steps} steps)",
            "{}（进行中，{steps} 步）",
            partial.epoch
        );
        let cells: Vec<String> = columns
            .iter()
            .map(|series| {
                partial
                    .values
                    .iter()
                    .find(|(name, _)| {
                        *name == series.original
                            || *name == series.name
                            || names::canonicalize(name)
                                .is_some_and(|(c, _)| c.as_str() == series.name)
                    })
                    .map(|(_, v)| num(*v))
                    .unwrap_or_default()
            })
            .collect();
        md.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
    }
    md.push('\n');
}

pub(super) fn config_diff(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    md.push_str(&say!(lang, "## Config diff\n\n", "## 配置差异\n\n"));
    let Some(config) = &outcome.run.config else {
        md.push_str(&say!(lang, "No config was read.\n", "未读取配置文件。\n"));
        return;
    };
    let out = outcome
        .written
        .config_out
        .as_ref()
        .unwrap_or(&outcome.paths.config_out);
    match diff_block(
        &config.text,
        &outcome.new_config,
        &config.path.display().to_string(),
        &out.display().to_string(),
    ) {
        Some(block) => md.push_str(&block),
        None => md.push_str(&say!(
            lang,
            "No change: the adjusted config is the input config.\n",
            "无变更：调整后的配置与输入相同。\n"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::evidence;

    #[test]
    fn evidence_reads_as_numbers() {
        let e = evidence![
            "loss" => 0.30000000000000004,
            "first_nonfinite" => f64::NAN,
            "epochs" => 3u32,
            "window" => vec![1.0, 0.5],
        ];
        let text: Vec<String> = e.values().map(evidence_text).collect();
        assert_eq!(text, ["0.3", "NaN", "3", "[1, 0.5]"]);
    }
}
