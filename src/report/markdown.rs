//! The Markdown report a person reads after an adjustment: a ten-second summary first
//! (verdict, changes, what the trainer should do), then the findings with their numbers,
//! the changes and everything that was rejected, what followed earlier adjustments, the
//! recent epochs, the chart and the config diff. Numbers go through `num`/`value_text`,
//! never `{}` on a float. Text that came from outside (config keys and values, metric
//! names, advisor prose that may come from an LLM) is escaped so it cannot break a table
//! or smuggle in HTML, links or images.

use std::collections::BTreeMap;

use serde_json::Value;
use similar::TextDiff;

use crate::lang::Lang;
use crate::lang::say;
use crate::metrics::{Canonical, names};
use crate::num::number_from_json;
use crate::num::{num, value_text};
use crate::outcome::Outcome;
use crate::types::Action;
use crate::types::{Finding, Severity};

/// Epochs in the recent-epochs table: enough to see a trend, few enough to scan.
pub const RECENT_EPOCHS: usize = 10;
/// Evidence lists longer than this are cut in the report; the JSON twin has them whole.
const EVIDENCE_ITEMS: usize = 12;
/// The series the recent-epochs table shows, in this order, when the metrics have them.
const TABLE_SERIES: [Canonical; 5] = [
    Canonical::Loss,
    Canonical::ValLoss,
    Canonical::Accuracy,
    Canonical::ValAccuracy,
    Canonical::Lr,
];
/// Characters with a meaning in inline Markdown that outside text must not get: tables
/// (`|`), code spans, emphasis, links and images (`[`), HTML and autolinks (`<`), and
/// GitHub's math (`$`). `_` is left alone: GFM ignores it inside words, and escaping it
/// would litter every `learning_rate`.
const INLINE_SPECIAL: &[char] = &['\\', '`', '*', '[', ']', '<', '>', '|', '$'];

pub fn render(outcome: &Outcome, chart_href: Option<&str>) -> String {
    let mut md = String::new();
    header(&mut md, outcome);
    summary(&mut md, outcome);
    findings(&mut md, outcome);
    changes(&mut md, outcome);
    earlier(&mut md, outcome);
    recent_epochs(&mut md, outcome);
    if let Some(href) = chart_href {
        let lang = outcome.lang;
        md.push_str(&say!(lang, "## Chart\n\n", "## 曲线图\n\n"));
        let alt = say!(lang, "loss and accuracy", "损失与准确率");
        md.push_str(&format!("![{alt}]({})\n\n", link_destination(href)));
    }
    config_diff(&mut md, outcome);
    md
}

/// The LLM exchange in one line: what was asked, what it cost, and whether it was used.
fn llm_line(md: &mut String, llm: &crate::types::LlmReport, lang: Lang) {
    let cached = if llm.cached {
        say!(lang, ", from the cache", "，来自缓存")
    } else {
        String::new()
    };
    md.push_str(&say!(
        lang,
        "- **LLM:** {} at {} ({}); {} answer(s), {} repair(s), {} HTTP request(s); {} prompt + {} completion tokens; {} ms{cached}\n",
        "- **LLM：** {} 于 {}（{}）；{} 个回答，{} 次修复，{} 次 HTTP 请求；提示 {} + 生成 {} 个 token；{} 毫秒{cached}\n",
        code(&llm.model),
        code(&llm.endpoint),
        llm.response_format,
        llm.answers,
        llm.repairs,
        llm.http_attempts,
        llm.prompt_tokens,
        llm.completion_tokens,
        llm.latency_ms
    ));
    if let Some(reason) = &llm.fallback {
        md.push_str(&say!(
            lang,
            "- **Fallback:** the rules advisor decided, because {}\n",
            "- **回退：** 由规则顾问决定，原因：{}\n",
            escape_cell(reason)
        ));
    }
}

fn header(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    let run = &outcome.run;
    md.push_str(&say!(
        lang,
        "# retune adjustment {}\n\n",
        "# retune 调整报告 {}\n\n",
        code(&outcome.adjustment_id)
    ));
    let time = outcome.time.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    md.push_str(&say!(lang, "- **Time:** {time}\n", "- **时间：** {time}\n"));
    let provider = code(&outcome.proposal.provider);
    match outcome.proposal.model.as_deref() {
        Some(model) => md.push_str(&say!(
            lang,
            "- **Advisor:** {provider}, model {}\n",
            "- **顾问：** {provider}，模型 {}\n",
            code(model)
        )),
        None => md.push_str(&say!(
            lang,
            "- **Advisor:** {provider}\n",
            "- **顾问：** {provider}\n"
        )),
    }
    if let Some(llm) = &outcome.proposal.llm {
        llm_line(md, llm, lang);
    }
    if let Some(config) = &run.config {
        md.push_str(&say!(
            lang,
            "- **Config read:** {}\n",
            "- **读取的配置：** {}\n",
            path_code(&config.path)
        ));
    }
    let m = &run.metrics;
    md.push_str(&say!(
        lang,
        "- **Metrics read:** {} ({}; through epoch {}, {} series)\n",
        "- **读取的指标：** {}（{}；截至第 {} 轮，{} 个指标）\n",
        path_code(&m.path),
        m.format.label(),
        run.facts.epochs_done,
        m.series.len()
    ));
    for warning in &m.warnings {
        md.push_str(&say!(
            lang,
            "- **Read with a warning:** {}\n",
            "- **读取警告：** {}\n",
            escape_cell(warning)
        ));
    }
    let w = &outcome.written;
    match &w.config_out {
        Some(out) => md.push_str(&say!(
            lang,
            "- **Adjusted config:** {}\n",
            "- **调整后的配置：** {}\n",
            path_code(out)
        )),
        None => md.push_str(&say!(
            lang,
            "- **Dry run:** nothing was written\n",
            "- **试运行：** 未写入任何文件\n"
        )),
    }
    if let Some(json) = &w.report_json {
        md.push_str(&say!(
            lang,
            "- **Decision as JSON:** {}\n",
            "- **JSON 格式的决定：** {}\n",
            path_code(json)
        ));
    }
    md.push('\n');
}

fn summary(md: &mut String, outcome: &Outcome) {
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
                full_sentence(&escape_cell(&top.summary), lang)
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
            escape_cell(diagnosis)
        ));
    }
}

/// The actions in plain words: what to load, whether to go on.
fn trainer_instruction(outcome: &Outcome) -> String {
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
fn checkpoint_epoch(outcome: &Outcome) -> Option<u32> {
    let metrics = &outcome.run.metrics;
    metrics
        .get(Canonical::ValLoss)
        .or_else(|| metrics.get(Canonical::Loss))
        .and_then(|s| s.min())
        .map(|p| p.epoch)
}

fn severity_label(severity: Severity, lang: Lang) -> String {
    match severity {
        Severity::Critical => say!(lang, "Critical", "严重"),
        Severity::Warning => say!(lang, "Warning", "警告"),
        Severity::Info => say!(lang, "Note", "提示"),
    }
}

fn severity_word(severity: Severity, lang: Lang) -> String {
    match severity {
        Severity::Critical => say!(lang, "critical", "严重"),
        Severity::Warning => say!(lang, "warning", "警告"),
        Severity::Info => say!(lang, "note", "提示"),
    }
}

fn list_separator(lang: Lang) -> &'static str {
    match lang {
        Lang::En => ", ",
        Lang::Zh => "，",
    }
}

/// A detector's summary as a sentence in running text: ends with a full stop.
fn full_sentence(text: &str, lang: Lang) -> String {
    if text.ends_with(['.', '!', '?', '。', '！', '？']) {
        text.to_string()
    } else {
        say!(lang, "{text}.", "{text}。")
    }
}

fn findings(md: &mut String, outcome: &Outcome) {
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
                escape_cell(&s.reason)
            ));
        }
        md.push('\n');
    }
}

fn finding_item(finding: &Finding, lang: Lang) -> String {
    let mut item = say!(
        lang,
        "- **{}** {}: {}\n",
        "- **{}** {}：{}\n",
        severity_label(finding.severity, lang),
        code(finding.id.as_str()),
        escape_cell(&finding.summary)
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
fn evidence_text(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::Number(_) => value_text(value),
        Value::String(s) => match number_from_json(value) {
            Some(n) => num(n),
            None => escape_cell(s),
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

fn changes(md: &mut String, outcome: &Outcome) {
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
            let mut rationale = escape_cell(&c.rationale);
            if let Some(clamp) = &c.clamped {
                values.push_str(&say!(lang, " **(clamped)**", " **（已限幅）**"));
                let reason = escape_cell(&clamp.reason);
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
                escape_cell(&r.reason)
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

fn bullet_section(md: &mut String, heading: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    md.push_str(heading);
    md.push_str("\n\n");
    for item in items {
        md.push_str(&format!("- {}\n", escape_cell(item)));
    }
    md.push('\n');
}

/// 0.8 → "80%"; an out-of-range confidence is shown as it is, validation clamps it.
fn percent(confidence: f64) -> String {
    format!("{}%", num((confidence * 100.0).round()))
}

fn earlier(md: &mut String, outcome: &Outcome) {
    let lang = outcome.lang;
    md.push_str(&say!(
        lang,
        "## Earlier adjustments of this run\n\n",
        "## 本次训练之前的调整\n\n"
    ));
    let sentences = &outcome.diagnosis.effects;
    if sentences.is_empty() {
        md.push_str(&say!(
            lang,
            "None: this is the first adjustment of this run.\n\n",
            "无：这是本次训练的第一次调整。\n\n"
        ));
        return;
    }
    for sentence in sentences.iter() {
        md.push_str(&format!("- {}\n", escape_cell(sentence)));
    }
    md.push('\n');
    let run = &outcome.run;
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

fn recent_epochs(md: &mut String, outcome: &Outcome) {
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

fn config_diff(md: &mut String, outcome: &Outcome) {
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

/// A unified diff of the config in a fenced block, or `None` when nothing changed. The
/// fence is longer than any backtick run in the text, so a config cannot close it.
pub(crate) fn diff_block(old: &str, new: &str, old_name: &str, new_name: &str) -> Option<String> {
    if old == new {
        return None;
    }
    let diff = TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string();
    let fence = "`".repeat(longest_run(&diff, '`').max(2) + 1);
    let newline = if diff.ends_with('\n') { "" } else { "\n" };
    Some(format!("{fence}diff\n{diff}{newline}{fence}\n"))
}

fn longest_run(text: &str, c: char) -> usize {
    let (mut best, mut current) = (0, 0);
    for ch in text.chars() {
        current = if ch == c { current + 1 } else { 0 };
        best = best.max(current);
    }
    best
}

/// Outside text made safe for one line of Markdown, table cells included: whitespace runs
/// (newlines too) become one space, control characters go, inline syntax is
/// backslash-escaped, and a leading block marker (`#`, `-`, `1.` …) is neutralised.
pub(crate) fn escape_cell(text: &str) -> String {
    let one_line = one_line(text);
    let mut out = String::with_capacity(one_line.len() + 8);
    for c in one_line.chars() {
        if INLINE_SPECIAL.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    if out.starts_with(['#', '+', '-', '=', '~']) {
        out.insert(0, '\\');
    } else {
        // "1. text" or "1) text" would start an ordered list.
        let digits = out.chars().take_while(char::is_ascii_digit).count();
        let rest = &out[digits..];
        if (1..=9).contains(&digits)
            && rest.starts_with(['.', ')'])
            && rest[1..].chars().next().is_none_or(|c| c == ' ')
        {
            out.insert(digits, '\\');
        }
    }
    out
}

/// An identifier from outside (config key, path, id) as a code span, with a fence longer
/// than any backtick run inside. A `|` cannot be escaped inside a code span outside a
/// table, so such text is escaped as plain text instead.
pub(crate) fn code(text: &str) -> String {
    let one_line = one_line(text);
    if one_line.is_empty() || one_line.contains('|') {
        return escape_cell(&one_line);
    }
    let fence = "`".repeat(longest_run(&one_line, '`') + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{one_line}{pad}{fence}")
}

/// Whitespace runs (newlines included) as one space, none after CJK punctuation, which
/// carries its own spacing; control characters dropped.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        let cjk_stop = out.ends_with(['。', '！', '？', '；', '：', '，', '、', '）', '」']);
        if !out.is_empty() && !cjk_stop {
            out.push(' ');
        }
        out.extend(word.chars().filter(|c| !c.is_control()));
    }
    out
}

fn path_code(path: &std::path::Path) -> String {
    code(&path.display().to_string())
}

/// A link destination: bare when it is plain, in angle brackets when it has spaces or
/// parentheses (CommonMark's form for those).
fn link_destination(href: &str) -> String {
    if href.contains([' ', '(', ')', '<', '>']) {
        format!("<{}>", href.replace(['<', '>', '\n'], ""))
    } else {
        href.to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use jiff::Timestamp;

    use super::*;
    use crate::config::ConfigDoc;
    use crate::history::{self, HistoryEntry};
    use crate::metrics::{Format, MetricsBuilder, PartialEpoch};
    use crate::outcome::OutputPaths;
    use crate::report::Written;
    use crate::run::Run;
    use crate::space::Space;
    use crate::types::FindingId;
    use crate::types::Proposal;
    use crate::types::evidence;
    use crate::types::{Change, Clamp, Decision, Rejected};
    use crate::types::{Diagnosis, Skipped};

    #[test]
    fn escape_cell_keeps_tables_and_html_intact() {
        assert_eq!(escape_cell("a | b"), r"a \| b");
        assert_eq!(
            escape_cell("line one\nline two\r\n\n three"),
            "line one line two three"
        );
        assert_eq!(
            escape_cell("<img src=x onerror=alert(1)>"),
            r"\<img src=x onerror=alert(1)\>"
        );
        assert_eq!(
            escape_cell("![pixel](http://t.example/p.png)"),
            r"!\[pixel\](http://t.example/p.png)"
        );
        assert_eq!(escape_cell("use `lr` *now*"), r"use \`lr\` \*now\*");
        assert_eq!(escape_cell("# Heading"), r"\# Heading");
        assert_eq!(escape_cell("- item"), r"\- item");
        assert_eq!(escape_cell("1. first"), r"1\. first");
        assert_eq!(escape_cell("1.5 is fine"), "1.5 is fine");
        assert_eq!(escape_cell("costs $5"), r"costs \$5");
        assert_eq!(escape_cell("C:\\data"), r"C:\\data");
        assert_eq!(escape_cell("learning_rate 降低"), "learning_rate 降低");
        assert_eq!(escape_cell("tab\there\u{7}"), "tab here");
        assert_eq!(escape_cell("第一句。\n第二句"), "第一句。第二句");
    }

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("optimizer.lr"), "`optimizer.lr`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("a|b"), r"a\|b");
        assert_eq!(code("two\nlines"), "`two lines`");
    }

    #[test]
    fn the_diff_block_shows_only_what_changed() {
        let old = "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": 3,\n  \"d\": 4,\n  \"e\": 5,\n  \"lr\": 0.001\n}\n";
        let new = old.replace("0.001", "0.0003");
        let block = diff_block(old, &new, "run/config.json", "run/config.retuned.json").unwrap();
        assert!(block.starts_with("```diff\n--- run/config.json\n+++ run/config.retuned.json\n"));
        assert!(
            block.contains("\n-  \"lr\": 0.001\n+  \"lr\": 0.0003\n"),
            "{block}"
        );
        assert!(!block.contains("\"a\": 1"), "context is 3 lines: {block}");
        assert!(block.ends_with("}\n```\n"));
        assert!(diff_block(old, old, "a", "b").is_none());
        // A config string holding a fence cannot close the block early.
        let sneaky = "{\"note\": \"```\", \"lr\": 1}";
        let block = diff_block(sneaky, &sneaky.replace("1}", "2}"), "a", "b").unwrap();
        assert!(
            block.starts_with("````diff\n") && block.ends_with("\n````\n"),
            "{block}"
        );
    }

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

    const CONFIG: &str = r#"{
  "model_name": "MobileNetV3",
  "data_dir": "E:\\PIC|SLM\\dataset",
  "optimizer": "Adam",
  "num_classes": 5,
  "num_epochs": 20,
  "batch_size": 32,
  "learning_rate": 0.001,
  "weight_decay": 0.0001,
  "dropout_rate": 0.5,
  "label_smoothing": 0.1,
  "model_ema_decay": 0.9999
}
"#;

    /// A run twelve epochs in that started to overfit after epoch 9, adjusted once before
    /// at epoch 8, with the epoch-13 progress line of a Keras log.
    fn outcome(lang: Lang) -> Outcome {
        let config = ConfigDoc::parse(Path::new("runs/mnv3/config.json"), CONFIG.into()).unwrap();
        let mut b = MetricsBuilder::new();
        let loss = [
            1.61, 1.32, 1.1, 0.95, 0.84, 0.75, 0.68, 0.62, 0.57, 0.52, 0.48, 0.44,
        ];
        let val_loss = [
            1.58, 1.35, 1.15, 1.02, 0.93, 0.86, 0.8, 0.76, 0.73, 0.745, 0.77, 0.8,
        ];
        let acc = [
            0.31, 0.45, 0.56, 0.63, 0.68, 0.72, 0.75, 0.78, 0.8, 0.82, 0.84, 0.86,
        ];
        let val_acc = [
            0.3, 0.42, 0.52, 0.58, 0.62, 0.65, 0.67, 0.69, 0.7, 0.70, 0.69, 0.685,
        ];
        for e in 0..12 {
            let epoch = e as u32 + 1;
            b.push("loss", epoch, loss[e]);
            b.push("val_loss", epoch, val_loss[e]);
            b.push("acc", epoch, acc[e]);
            b.push("val_acc", epoch, val_acc[e]);
            b.push(
                "lr",
                epoch,
                if epoch <= 8 {
                    0.003
                } else {
                    0.0010000000474974513
                },
            );
        }
        b.partial = Some(PartialEpoch {
            epoch: 13,
            steps_done: 120,
            steps_total: Some(469),
            values: vec![("acc".into(), 0.871), ("loss".into(), 0.4312)],
        });
        let metrics = b
            .finish(Path::new("runs/mnv3/train.log"), Format::KerasLog)
            .unwrap();
        let history = vec![HistoryEntry {
            time: "2026-09-01T10:00:00Z".into(),
            adjustment_id: "adj-20260901T100000Z-0a1b2c".into(),
            config: "runs/mnv3/config.json".into(),
            config_out: Some("runs/mnv3/config.json".into()),
            ..history::entry(
                Some(8),
                &[("learning_rate", "learning_rate", 0.003, 0.001)],
                &["oscillation"],
                &[
                    ("loss", 0.62),
                    ("val_loss", 0.76),
                    ("accuracy", 0.78),
                    ("val_accuracy", 0.69),
                ],
            )
        }];
        let run = Run::new(
            Some(config.clone()),
            metrics,
            Space::load(None).unwrap(),
            history,
            None,
        );

        let diagnosis = Diagnosis {
            findings: vec![
                Finding {
                    id: FindingId::Overfitting,
                    severity: Severity::Warning,
                    summary: say!(
                        lang,
                        "val_loss has risen for 3 epochs since its best (0.73 at epoch 9) while loss kept falling",
                        "val_loss 自最佳值（第 9 轮 0.73）起连续 3 轮上升，而 loss 仍在下降"
                    ),
                    evidence: evidence![
                        "best_epoch" => 9u32,
                        "best_val_loss" => 0.73,
                        "val_loss" => vec![0.745, 0.77, 0.8],
                        "overfit_ratio" => 0.8181818181818182,
                    ],
                },
                Finding {
                    id: FindingId::EmaHorizonTooLong,
                    severity: Severity::Info,
                    summary: say!(
                        lang,
                        "model_ema_decay 0.9999 averages over about 10000 steps, longer than the 9380 steps the run has",
                        "model_ema_decay 0.9999 约平均 10000 步，超过训练的 9380 步"
                    ),
                    evidence: evidence!["horizon_steps" => 10000u32, "total_steps" => 9380u32],
                },
            ],
            skipped: vec![Skipped {
                check: "chance_level",
                reason: say!(lang, "accuracy is far above 1/5", "准确率远高于 1/5"),
            }],
            classes: None,
            effects: crate::diagnose::effects::effects(&run, lang),
        };

        let proposal = Proposal {
            provider: "openai".into(),
            model: Some("gpt-4o-mini".into()),
            diagnosis: say!(
                lang,
                "The model memorises the training set: val_loss turned at epoch 9.\nRegularise | slow down.",
                "模型在记忆训练集：val_loss 在第 9 轮转头。\n加强正则化 | 放慢学习。"
            ),
            changes: vec![],
            actions: vec![Action::RestoreCheckpoint],
            advice: vec![say!(
                lang,
                "add data augmentation: the config has no augmentation key to change",
                "增加数据增强：配置中没有可修改的增强参数"
            )],
            discarded: vec![],
            llm: None,
        };
        let decision = Decision {
            changes: vec![
                Change {
                    parameter: "weight_decay".into(),
                    canonical: "weight_decay".into(),
                    old: Value::from(0.0001),
                    new: Value::from(0.0003),
                    rationale: say!(
                        lang,
                        "train/val gap grows | stronger L2 <b>now</b>",
                        "训练/验证差距扩大 | 加强 L2 <b>正则</b>"
                    ),
                    confidence: 0.7,
                    clamped: None,
                },
                Change {
                    parameter: "dropout_rate".into(),
                    canonical: "dropout".into(),
                    old: Value::from(0.5),
                    new: Value::from(0.6),
                    rationale: say!(
                        lang,
                        "more dropout against memorising",
                        "提高 dropout 以抑制记忆"
                    ),
                    confidence: 0.55,
                    clamped: Some(Clamp {
                        proposed: Value::from(0.8),
                        reason: say!(
                            lang,
                            "clamped from 0.8 to 0.6: one adjustment moves dropout by at most 0.1",
                            "从 0.8 限制为 0.6：dropout 每次最多变化 0.1"
                        ),
                    }),
                },
            ],
            rejected: vec![Rejected {
                parameter: "learning_rate".into(),
                proposed: Value::from(9.999999999999999e-4),
                reason: say!(
                    lang,
                    "no-op: 0.001 → 0.001 changes the value by less than 2%",
                    "无效变更：0.001 → 0.001 的变化小于 2%"
                ),
            }],
            actions: vec![Action::RestoreCheckpoint],
            notes: vec![say!(
                lang,
                "dropped the action `stop_early`: the findings do not support it",
                "已忽略动作 `stop_early`：诊断结果不支持"
            )],
        };
        let new_config = config
            .with_changes(&[
                ("weight_decay".into(), Value::from(0.0003)),
                ("dropout_rate".into(), Value::from(0.6)),
            ])
            .unwrap();
        let id = "adj-20260914T112126Z-3f9a0c";
        Outcome {
            adjustment_id: id.into(),
            time: Timestamp::from_second(1_789_384_886).unwrap(),
            lang,
            run,
            diagnosis,
            proposal,
            decision,
            paths: OutputPaths {
                config_out: PathBuf::from("runs/mnv3/config.retuned.json"),
                report_dir: PathBuf::from("reports"),
                history: PathBuf::from("reports/history.jsonl"),
            },
            new_config,
            written: Written {
                config_out: Some(PathBuf::from("runs/mnv3/config.retuned.json")),
                report: Some(PathBuf::from(format!("reports/{id}.md"))),
                report_json: Some(PathBuf::from(format!("reports/{id}.json"))),
                chart: Some(PathBuf::from(format!("reports/{id}.svg"))),
                history: Some(PathBuf::from("reports/history.jsonl")),
            },
        }
    }

    #[test]
    fn report_en() {
        let o = outcome(Lang::En);
        let md = render(&o, Some("adj-20260914T112126Z-3f9a0c.svg"));
        insta::assert_snapshot!(md);
    }

    #[test]
    fn report_zh() {
        let o = outcome(Lang::Zh);
        let md = render(&o, Some("adj-20260914T112126Z-3f9a0c.svg"));
        insta::assert_snapshot!(md);
    }

    #[test]
    fn a_healthy_run_with_no_change_says_so() {
        let mut o = outcome(Lang::En);
        o.diagnosis.findings.clear();
        o.decision = Decision::default();
        o.proposal.diagnosis.clear();
        o.proposal.advice.clear();
        o.run.history.clear();
        o.diagnosis.effects.clear();
        o.new_config = o.run.config.as_ref().unwrap().text.clone();
        o.written = Written::default();
        let md = render(&o, None);
        assert!(
            md.contains("**Healthy:** no detector fired on 12 epochs. No change to the config.")
        );
        assert!(md.contains("continue training as it is."));
        assert!(md.contains("first adjustment of this run"));
        assert!(md.contains("No change: the adjusted config is the input config."));
        assert!(md.contains("**Dry run:** nothing was written"));
        assert!(!md.contains("## Chart"));
        assert!(!md.contains("Rejected"));
    }

    #[test]
    fn advice_without_a_change_is_what_the_trainer_acts_on() {
        let mut o = outcome(Lang::En);
        o.decision = Decision::default();
        // An advisor that repeats the top finding is not quoted twice.
        o.proposal.diagnosis = o.diagnosis.findings[0].summary.clone();
        let md = render(&o, None);
        assert!(
            md.contains("no config change this time; read the advice below"),
            "{md}"
        );
        assert!(!md.contains("> **Advisor"), "{md}");
        o.proposal.advice.clear();
        let md = render(&o, None);
        assert!(md.contains("continue training; no config change was accepted."));
    }
}
