//! What the commands print on stdout: text for people, one JSON object for programs.
//! Errors and warnings go to stderr elsewhere; stdout is the result alone.
//!
//! Everything printed passes through `emit`, which makes terminal controls visible
//! (`crate::untrusted::printable`): a rationale from the LLM or a column name from the
//! user's CSV can hold ESC, OSC, BEL, C1 or bidi characters, and a terminal would obey
//! them (retitle itself, clear the screen, reorder a line).

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use crate::history::HistoryEntry;
use crate::lang::{Lang, say};
use crate::metrics::Canonical;
use crate::num::{num, number_to_json, value_text};
use crate::outcome::Outcome;
use crate::report::decision_json;
use crate::run::{Facts, Run};
use crate::types::{Diagnosis, Finding, Skipped};
use serde_json::Value;

/// stdout of `suggest`.
pub fn print_suggest(outcome: &Outcome, format: OutputFormat) -> Result<()> {
    match format {
        OutputFormat::Json => print_json(&decision_json(outcome)),
        OutputFormat::Text => emit(&suggest_text(outcome)),
    }
}

/// stdout of `prompt`: the messages, then their size.
pub fn print_prompt(messages: &[crate::types::Message], format: OutputFormat) -> Result<()> {
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

/// The `history` table's adjustment column: an id as `suggest` writes it
/// (`adj-20261123T003241Z-e0012-1a2b3c`, 33 characters) and one space more.
const ID_WIDTH: usize = 34;

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
                            say!(lang, "now, epoch {}", "当前，第 {} 轮", last.epoch),
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
                "{:<6} {:<ID_WIDTH$} {:<28} {:<26} {}\n",
                "{:<6} {:<ID_WIDTH$} {:<28} {:<26} {}\n",
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
                        "{ep:<6} {id:<ID_WIDTH$} {parameter:<28} {change:<26} {fo}\n"
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

/// Writes text to stdout, terminal controls made visible. A reader that closed the pipe
/// early (`retune … | head`) is not an error worth a message: the output it wanted, it
/// got.
pub(crate) fn emit(text: &str) -> Result<()> {
    write_stdout(&crate::untrusted::printable(text))
}

fn write_stdout(text: &str) -> Result<()> {
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
    write_stdout(&format!("{}\n", crate::untrusted::printable_json(&text)))
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
        _ if outcome.run.config_recorded => out.push_str(&say!(
            lang,
            "nothing written: a W&B run's recorded config gets advice, not a new file\n",
            "未写入任何文件：W&B 运行记录的配置只给建议，不生成新文件\n"
        )),
        _ => out.push_str(&say!(
            lang,
            "dry run: nothing written\n",
            "试运行：未写入任何文件\n"
        )),
    }
    out
}

fn findings_text(diagnosis: &Diagnosis, lang: Lang) -> String {
    let mut out = String::new();
    // "Healthy" is a verdict only when every check that could contradict it ran: a check
    // skipped (no config, classes unknown …) might have found something.
    if diagnosis.findings.is_empty() && diagnosis.skipped.is_empty() {
        out.push_str(&say!(lang, "healthy: no finding\n", "健康：没有发现问题\n"));
    } else if diagnosis.findings.is_empty() {
        let n = diagnosis.skipped.len();
        out.push_str(&say!(
            lang,
            "no finding from the checks that ran, but {} could not judge the run, so this is not a verdict of healthy:\n",
            "已运行的检查没有发现问题，但有 {} 项检查无法判断，因此不能断定训练健康：\n",
            if n == 1 {
                say!(lang, "1 check", "1")
            } else {
                say!(lang, "{n} checks", "{n}")
            }
        ));
        for s in &diagnosis.skipped {
            out.push_str(&say!(
                lang,
                "  not judged: {} ({})\n",
                "  未判断：{}（{}）\n",
                s.check,
                s.reason
            ));
        }
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
    /// What a point of the series is: `epoch`, or `evaluation` when a run evaluated more
    /// often than it has whole epochs (`evaluations` then gives each one's step and epoch).
    x_axis: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    evaluations: Option<&'a [crate::metrics::EvalMark]>,
    series: Vec<SeriesRead<'a>>,
    partial_epoch: Option<&'a crate::metrics::PartialEpoch>,
    /// Earlier runs in the same file (fit() called again, runs appended): only the latest
    /// is judged. Absent when the file holds one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    phases: Option<&'a crate::metrics::Phases>,
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
                x_axis: if m.eval_axis.is_some() {
                    "evaluation"
                } else {
                    "epoch"
                },
                evaluations: m.eval_axis.as_deref(),
                series: m
                    .series
                    .iter()
                    .map(|s| SeriesRead {
                        name: &s.name,
                        original: &s.original,
                        epochs: s.len(),
                        last: s.last().map(|p| number_to_json(p.value)),
                    })
                    .collect(),
                partial_epoch: m.partial.as_ref(),
                phases: m.phases.as_ref(),
                warnings: &m.warnings,
            },
            config: run.config.as_ref().map(|c| c.path.display().to_string()),
            facts: &run.facts,
            findings: &diagnosis.findings,
            skipped: &diagnosis.skipped,
        }),
        OutputFormat::Text => {
            let (points, points_zh) = if m.eval_axis.is_some() {
                ("evaluations", "次评估")
            } else {
                ("epochs", "轮")
            };
            let mut out = say!(
                lang,
                "read {} as {}: {} {points}, series {}\n",
                "读取 {}（{}）：{} {points_zh}，指标 {}\n",
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
            // With no finding, `findings_text` has listed the skipped checks already.
            let skipped: &[Skipped] = if diagnosis.findings.is_empty() {
                &[]
            } else {
                &diagnosis.skipped
            };
            for s in skipped {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_finding_is_healthy_only_when_every_check_ran() {
        let mut d = Diagnosis::default();
        assert_eq!(findings_text(&d, Lang::En), "healthy: no finding\n");
        d.skipped.push(Skipped {
            check: "chance_level",
            reason: "the number of classes is unknown: pass --num-classes".into(),
        });
        let text = findings_text(&d, Lang::En);
        assert!(!text.contains("healthy: no finding"), "{text}");
        assert_eq!(
            text,
            "no finding from the checks that ran, but 1 check could not judge the run, so this is not a verdict of healthy:\n  not judged: chance_level (the number of classes is unknown: pass --num-classes)\n"
        );
    }
}
