//! Write: the adjusted config, the Markdown report with its chart, the JSON twin and the
//! history line, each written atomically; and what the commands print on stdout. The
//! JSON printed by `suggest --format json` and the JSON twin are the same object.

mod chart;
pub mod effects;
mod markdown;

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

use crate::advisor::Action;
use crate::cli::OutputFormat;
use crate::diagnose::{Diagnosis, Finding, Skipped, num};
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::history::{self, HistoryChange, HistoryEntry};
use crate::lang::Lang;
use crate::metrics::Canonical;
use crate::run::{Facts, Run};
use crate::validate::{Change, Rejected};
use crate::{Outcome, say};

/// Files `write` produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Written {
    pub config_out: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub report_json: Option<PathBuf>,
    pub chart: Option<PathBuf>,
    pub history: Option<PathBuf>,
}

/// The decision object: stdout of `suggest --format json` and the report's JSON twin.
#[derive(Debug, Serialize)]
pub struct DecisionJson<'a> {
    pub adjustment_id: &'a str,
    pub time: String,
    pub provider: &'a str,
    pub model: Option<&'a str>,
    /// Last complete epoch in the metrics.
    pub epoch: u32,
    pub diagnosis: &'a str,
    pub findings: &'a [Finding],
    pub changes: &'a [Change],
    pub rejected: &'a [Rejected],
    pub actions: &'a [Action],
    pub advice: &'a [String],
    pub notes: &'a [String],
    /// Model, tokens, latency and attempts when an LLM was asked.
    pub llm: Option<&'a crate::advisor::llm::LlmReport>,
    pub config_out: Option<String>,
    pub report: Option<String>,
    pub dry_run: bool,
}

pub fn decision_json(outcome: &Outcome) -> DecisionJson<'_> {
    let written = &outcome.written;
    let dry_run = written.config_out.is_none();
    DecisionJson {
        adjustment_id: &outcome.adjustment_id,
        time: outcome.time.to_string(),
        provider: &outcome.proposal.provider,
        model: outcome.proposal.model.as_deref(),
        epoch: outcome.run.facts.epochs_done,
        diagnosis: &outcome.proposal.diagnosis,
        findings: &outcome.diagnosis.findings,
        changes: &outcome.decision.changes,
        rejected: &outcome.decision.rejected,
        actions: &outcome.decision.actions,
        advice: &outcome.proposal.advice,
        notes: &outcome.decision.notes,
        llm: outcome.proposal.llm.as_ref(),
        config_out: written.config_out.as_ref().map(|p| p.display().to_string()),
        report: written.report.as_ref().map(|p| p.display().to_string()),
        dry_run,
    }
}

/// Writes the chart, the reports (unless `reports` is false: `--report-on change` on a
/// decision that changes nothing), the adjusted config and the history line, in that
/// order: the history line is last so it only records adjustments whose files exist.
/// `outcome.written` is filled in first, because the report and its JSON twin name the
/// files.
pub fn write(outcome: &mut Outcome, in_place: bool, reports: bool) -> Result<()> {
    let dir = outcome.paths.report_dir.clone();
    let id = outcome.adjustment_id.clone();
    let report = dir.join(format!("{id}.md"));
    let report_json = dir.join(format!("{id}.json"));
    let chart_name = format!("{id}.svg");
    let svg = reports
        .then(|| chart::render(&outcome.run, outcome.lang))
        .flatten();
    outcome.written = Written {
        config_out: Some(outcome.paths.config_out.clone()),
        report: reports.then(|| report.clone()),
        report_json: reports.then(|| report_json.clone()),
        chart: svg.as_ref().map(|_| dir.join(&chart_name)),
        history: Some(outcome.paths.history.clone()),
    };
    if let (Some(svg), Some(path)) = (&svg, &outcome.written.chart) {
        write_atomic(path, svg.as_bytes())?;
    }
    if reports {
        let chart_href = svg.as_ref().map(|_| chart_name.as_str());
        let markdown = markdown::render(outcome, chart_href);
        let json = serde_json::to_string_pretty(&decision_json(outcome))
            .map_err(|e| Error::write(&dir, std::io::Error::other(e)))?;
        write_atomic(&report, markdown.as_bytes())?;
        write_atomic(&report_json, format!("{json}\n").as_bytes())?;
    }

    let config = outcome
        .run
        .config
        .as_ref()
        .ok_or_else(|| Error::Usage("suggest needs --config".into()))?;
    let unchanged = outcome.new_config == config.text;
    if !(in_place && unchanged) {
        write_atomic(&outcome.paths.config_out, outcome.new_config.as_bytes())?;
    }
    history::append(
        &outcome.paths.history,
        &history_entry(outcome, in_place && !unchanged),
    )
}

fn history_entry(outcome: &Outcome, keep_text: bool) -> HistoryEntry {
    let run = &outcome.run;
    let config = run.config.as_ref();
    HistoryEntry {
        time: outcome.time.to_string(),
        adjustment_id: outcome.adjustment_id.clone(),
        epoch: run.metrics.last_epoch(),
        provider: outcome.proposal.provider.clone(),
        config: config
            .map(|c| c.path.display().to_string())
            .unwrap_or_default(),
        config_out: Some(outcome.paths.config_out.display().to_string()),
        changes: outcome
            .decision
            .changes
            .iter()
            .map(|c| HistoryChange {
                parameter: c.parameter.clone(),
                canonical: c.canonical.clone(),
                old: c.old.clone(),
                new: c.new.clone(),
            })
            .collect(),
        actions: outcome.decision.actions.clone(),
        findings: outcome
            .diagnosis
            .findings
            .iter()
            .map(|f| f.id.to_string())
            .collect(),
        metrics: Canonical::ALL
            .iter()
            .filter_map(|c| {
                let last = run.metrics.get(*c)?.last()?;
                Some((c.as_str().to_string(), history::number_to_json(last.value)))
            })
            .collect(),
        config_before: keep_text.then(|| config.map(|c| c.text.clone())).flatten(),
        reverts: Vec::new(),
    }
}

/// stdout of `suggest`.
pub fn print_suggest(outcome: &Outcome, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json => print_json(&decision_json(outcome)),
        OutputFormat::Text => emit(&suggest_text(outcome)),
    }
}

/// stdout of `prompt`: the messages, then their size.
pub fn print_prompt(
    messages: &[crate::advisor::llm::prompt::Message],
    format: OutputFormat,
) -> Result<()> {
    let (chars, tokens) = crate::advisor::llm::prompt::size(messages);
    match format {
        OutputFormat::Json => print_json(&serde_json::json!({
            "messages": messages,
            "characters": chars,
            "estimated_tokens": tokens,
        })),
        OutputFormat::Text => {
            let mut out = String::new();
            for m in messages {
                out.push_str(&format!(
                    "--- {} ({} characters) ---\n{}\n\n",
                    m.role,
                    m.content.chars().count(),
                    m.content
                ));
            }
            out.push_str(&format!(
                "{} messages, {chars} characters, about {tokens} tokens (4 characters a token)\n",
                messages.len()
            ));
            emit(&out)
        }
    }
}

/// stdout of `history`: one row per changed value, with what followed the adjustment
/// (the next adjustment's recorded metrics, or the metrics now when given).
pub fn print_history(
    entries: &[HistoryEntry],
    run: Option<&Run>,
    format: OutputFormat,
    lang: Lang,
) -> Result<()> {
    let followed: Vec<String> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let later = entries[i + 1..].iter().find(|e| !e.metrics.is_empty());
            let now = |name: &str| -> Option<(f64, String)> {
                match later {
                    Some(next) => Some((
                        next.metric(name)?,
                        say!(
                            lang,
                            "epoch {}",
                            "第 {} 轮",
                            next.epoch.map_or("?".into(), |e| e.to_string())
                        ),
                    )),
                    None => {
                        let run = run?;
                        let c = Canonical::ALL.into_iter().find(|c| c.as_str() == name)?;
                        let last = run.metrics.get(c)?.last()?;
                        Some((
                            last.value,
                            say!(lang, "epoch {} (now)", "第 {} 轮（当前）", last.epoch),
                        ))
                    }
                }
            };
            ["val_loss", "loss"]
                .iter()
                .find_map(|name| {
                    let then = entry.metric(name)?;
                    let (value, at) = now(name)?;
                    Some(format!("{name} {} → {} ({at})", num(then), num(value)))
                })
                .unwrap_or_else(|| "—".into())
        })
        .collect();
    match format {
        OutputFormat::Json => print_json(
            &entries
                .iter()
                .zip(&followed)
                .map(|(e, f)| {
                    serde_json::json!({
                        "adjustment_id": e.adjustment_id,
                        "time": e.time,
                        "epoch": e.epoch,
                        "provider": e.provider,
                        "config": e.config_out.as_deref().unwrap_or(&e.config),
                        "changes": e.changes,
                        "actions": e.actions,
                        "findings": e.findings,
                        "reverts": e.reverts,
                        "followed_by": f,
                    })
                })
                .collect::<Vec<_>>(),
        ),
        OutputFormat::Text => {
            let mut out = say!(
                lang,
                "{:<6} {:<32} {:<28} {:<26} {}\n",
                "{:<6} {:<32} {:<28} {:<26} {}\n",
                "epoch",
                "adjustment",
                "parameter",
                "old → new",
                "followed by"
            );
            if entries.is_empty() {
                out.push_str(&say!(lang, "(no adjustments yet)\n", "（尚无调整）\n"));
            }
            for (e, f) in entries.iter().zip(&followed) {
                let epoch = e.epoch.map_or("?".into(), |x| x.to_string());
                let mut rows: Vec<(String, String)> = e
                    .changes
                    .iter()
                    .map(|c| {
                        (
                            c.parameter.clone(),
                            format!("{} → {}", value_text(&c.old), value_text(&c.new)),
                        )
                    })
                    .collect();
                if rows.is_empty() {
                    rows.push((say!(lang, "(no change)", "（无变更）"), String::new()));
                }
                let note = if e.reverts.is_empty() {
                    f.clone()
                } else {
                    say!(lang, "revert of {}", "撤销 {}", e.reverts.join(", "))
                };
                for (k, (parameter, change)) in rows.iter().enumerate() {
                    let (ep, id, fo) = if k == 0 {
                        (epoch.as_str(), e.adjustment_id.as_str(), note.as_str())
                    } else {
                        ("", "", "")
                    };
                    out.push_str(&format!(
                        "{ep:<6} {id:<32} {parameter:<28} {change:<26} {fo}\n"
                    ));
                }
            }
            emit(&out)
        }
    }
}

/// stdout of `revert`.
pub fn print_revert(plan: &crate::history::RevertPlan, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json => print_json(&serde_json::json!({
            "config": plan.file.display().to_string(),
            "reverted": plan.undone,
            "restored": plan.restored,
        })),
        OutputFormat::Text => {
            let mut out = format!(
                "reverted {} in {}\n",
                plan.undone.join(", "),
                plan.file.display()
            );
            for c in &plan.restored {
                out.push_str(&format!(
                    "  {} {} → {}\n",
                    c.parameter,
                    value_text(&c.old),
                    value_text(&c.new)
                ));
            }
            emit(&out)
        }
    }
}

/// Writes to stdout. A reader that closed the pipe early (`retune … | head`) is not an
/// error worth a message: the output it wanted, it got.
pub(crate) fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::write(std::path::Path::new("<stdout>"), e))
        }
        _ => Ok(()),
    }
}

pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::write(std::path::Path::new("<stdout>"), std::io::Error::other(e)))?;
    emit(&format!("{text}\n"))
}

/// The summary a person reads in the terminal.
pub fn suggest_text(outcome: &Outcome) -> String {
    let lang = outcome.lang;
    let d = &outcome.decision;
    let mut out = String::new();
    out.push_str(&findings_text(&outcome.diagnosis, lang));
    if d.changes.is_empty() {
        out.push_str(&say!(lang, "no change to the config\n", "配置无变更\n"));
    }
    for c in &d.changes {
        let clamp = if c.clamped.is_some() {
            say!(lang, " (clamped)", "（已限幅）")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "change    {} {} → {}{clamp}: {}\n",
            c.parameter,
            value_text(&c.old),
            value_text(&c.new),
            c.rationale
        ));
    }
    for r in &d.rejected {
        out.push_str(&format!(
            "rejected  {} = {}: {}\n",
            r.parameter,
            value_text(&r.proposed),
            r.reason
        ));
    }
    for a in &d.actions {
        out.push_str(&format!("action    {}\n", a.as_str()));
    }
    for advice in &outcome.proposal.advice {
        out.push_str(&format!("advice    {advice}\n"));
    }
    for note in &d.notes {
        out.push_str(&format!("note      {note}\n"));
    }
    let w = &outcome.written;
    match (&w.config_out, &w.report) {
        (Some(config), Some(report)) => out.push_str(&say!(
            lang,
            "wrote {} and {} ({} advisor)\n",
            "已写入 {} 和 {}（{} 顾问）\n",
            config.display(),
            report.display(),
            outcome.proposal.provider
        )),
        (Some(config), None) => out.push_str(&say!(
            lang,
            "wrote {} (no report: nothing changed, --report-on change) ({} advisor)\n",
            "已写入 {}（无变更，未写报告：--report-on change）（{} 顾问）\n",
            config.display(),
            outcome.proposal.provider
        )),
        _ => out.push_str(&say!(
            lang,
            "dry run: nothing written\n",
            "试运行：未写入任何文件\n"
        )),
    }
    out
}

/// A JSON value for a sentence: numbers without float noise, strings unquoted.
/// `learning_rate 0.5 → 0.05`, as every summary writes a change.
pub fn change_text(parameter: &str, old: &Value, new: &Value) -> String {
    format!("{parameter} {} → {}", value_text(old), value_text(new))
}

pub fn value_text(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => n.as_f64().map(num).unwrap_or_else(|| n.to_string()),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn findings_text(diagnosis: &Diagnosis, lang: Lang) -> String {
    let mut out = String::new();
    if diagnosis.findings.is_empty() {
        out.push_str(&say!(lang, "healthy: no finding\n", "健康：没有发现问题\n"));
    }
    for f in &diagnosis.findings {
        out.push_str(&format!(
            "{:<9} {}: {}\n",
            f.severity.as_str(),
            f.id,
            f.summary
        ));
    }
    out
}

/// What `diagnose --format json` prints.
#[derive(Debug, Serialize)]
struct DiagnosisJson<'a> {
    metrics: MetricsRead<'a>,
    config: Option<String>,
    facts: &'a Facts,
    findings: &'a [Finding],
    skipped: &'a [Skipped],
}

#[derive(Debug, Serialize)]
struct MetricsRead<'a> {
    path: String,
    format: crate::metrics::Format,
    rows: u64,
    epochs: u32,
    series: Vec<SeriesRead<'a>>,
    partial_epoch: Option<&'a crate::metrics::PartialEpoch>,
    /// What the reader read around (a truncated TensorBoard record); absent when nothing.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
}

#[derive(Debug, Serialize)]
struct SeriesRead<'a> {
    name: &'a str,
    original: &'a str,
    epochs: usize,
    last: Option<Value>,
}

pub fn print_diagnosis(
    run: &Run,
    diagnosis: &Diagnosis,
    format: OutputFormat,
    lang: Lang,
) -> Result<()> {
    let m = &run.metrics;
    match format {
        OutputFormat::Json => print_json(&DiagnosisJson {
            metrics: MetricsRead {
                path: m.path.display().to_string(),
                format: m.format,
                rows: m.rows,
                epochs: run.facts.epochs_done,
                series: m
                    .series
                    .iter()
                    .map(|s| SeriesRead {
                        name: &s.name,
                        original: &s.original,
                        epochs: s.len(),
                        last: s.last().map(|p| history::number_to_json(p.value)),
                    })
                    .collect(),
                partial_epoch: m.partial.as_ref(),
                warnings: &m.warnings,
            },
            config: run.config.as_ref().map(|c| c.path.display().to_string()),
            facts: &run.facts,
            findings: &diagnosis.findings,
            skipped: &diagnosis.skipped,
        }),
        OutputFormat::Text => {
            let mut out = say!(
                lang,
                "read {} as {}: {} epochs, series {}\n",
                "读取 {}（{}）：{} 轮，指标 {}\n",
                m.path.display(),
                m.format.label(),
                run.facts.epochs_done,
                m.series
                    .iter()
                    .map(|s| if s.name == s.original {
                        s.name.clone()
                    } else {
                        format!("{} ({})", s.name, s.original)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(p) = &m.partial {
                let total = p.steps_total.map_or(String::new(), |t| format!("/{t}"));
                out.push_str(&say!(
                    lang,
                    "epoch {} still running at step {}{total} (its running values are not judged)\n",
                    "第 {} 轮仍在进行，第 {}{total} 步（其进行中的数值不参与判断）\n",
                    p.epoch,
                    p.steps_done
                ));
            }
            out.push_str(&findings_text(diagnosis, lang));
            for s in &diagnosis.skipped {
                out.push_str(&say!(
                    lang,
                    "skipped   {}: {}\n",
                    "已跳过    {}：{}\n",
                    s.check,
                    s.reason
                ));
            }
            emit(&out)
        }
    }
}
