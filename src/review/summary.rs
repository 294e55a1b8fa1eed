//! What a review says: the table on stdout, and the Markdown summary (with its JSON twin)
//! in the report folder, linking each run's own report.

use std::path::Path;

use jiff::Timestamp;
use unicode_width::UnicodeWidthStr;

use super::{Review, RunReview, Status};
use crate::error::{Error, Result};
use crate::fsio::write_atomic;
use crate::lang::Lang;
use crate::lang::say;
use crate::num::{change_text, value_text};

/// Writes `review-<time>.md` and `review-<time>.json` and records the Markdown's path.
pub fn write(review: &mut Review, dir: &Path, time: &Timestamp, lang: Lang) -> Result<()> {
    let stem = format!("review-{}", time.strftime("%Y%m%dT%H%M%SZ"));
    let md = dir.join(format!("{stem}.md"));
    review.summary_report = Some(md.clone());
    let json = serde_json::to_string_pretty(review)
        .map_err(|e| Error::write(dir, std::io::Error::other(e)))?;
    write_atomic(
        &dir.join(format!("{stem}.json")),
        format!("{json}\n").as_bytes(),
    )?;
    write_atomic(&md, markdown(review, dir, lang).as_bytes())
}

/// `learning_rate 0.5 → 0.05, restart`, or `-`.
fn proposed(run: &RunReview) -> String {
    let mut parts: Vec<String> = run
        .changes
        .iter()
        .map(|c| change_text(&c.parameter, &c.old, &c.new))
        .collect();
    parts.extend(run.actions.iter().map(|a| a.as_str().to_string()));
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// Finding ids, most severe first (the diagnosis keeps that order).
fn finding_ids(run: &RunReview) -> String {
    if run.status == Status::Error {
        return "-".into();
    }
    let ids: Vec<&str> = run.findings.iter().map(|f| f.id.as_str()).collect();
    if ids.is_empty() {
        "-".into()
    } else {
        ids.join(", ")
    }
}

fn headline(review: &Review, lang: Lang) -> String {
    let t = &review.totals;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match lang {
        Lang::En => format!(
            "{} run{}: {} critical, {} warning, {} healthy, {} not started, {} could not be reviewed; {} change{} proposed",
            t.runs,
            plural(t.runs),
            t.critical,
            t.warning,
            t.healthy,
            t.pending,
            t.error,
            t.changes,
            plural(t.changes)
        ),
        Lang::Zh => format!(
            "{} 个运行：{} 个严重，{} 个警告，{} 个健康，{} 个尚未开始，{} 个无法评审；共提出 {} 项变更",
            t.runs, t.critical, t.warning, t.healthy, t.pending, t.error, t.changes
        ),
    }
}

fn llm_line(review: &Review, lang: Lang) -> Option<String> {
    let u = review.llm_usage?;
    let limit = |n: Option<u64>| n.map(|n| format!(" / {n}")).unwrap_or_default();
    Some(say!(
        lang,
        "LLM: {} calls{}, {} tokens{}, {} refused by the limits",
        "LLM：{} 次调用{}，{} 个 token{}，{} 次因限额被拒",
        u.calls,
        limit(u.max_calls),
        u.tokens,
        limit(u.max_tokens),
        u.refused
    ))
}

/// The table a person reads in the terminal.
pub fn table(review: &Review, lang: Lang) -> String {
    let header = [
        say!(lang, "run", "运行"),
        say!(lang, "status", "状态"),
        "crit".into(),
        "warn".into(),
        "info".into(),
        say!(lang, "findings", "发现"),
        say!(lang, "proposed", "建议"),
    ];
    let rows: Vec<[String; 7]> = review
        .runs
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.status.as_str().to_string(),
                r.counts.critical.to_string(),
                r.counts.warning.to_string(),
                r.counts.info.to_string(),
                finding_ids(r),
                proposed(r),
            ]
        })
        .collect();
    // Padded by display width, not characters: a Chinese label takes two columns.
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].width())
            .chain([header[i].width()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..7).map(width).collect();
    let line = |cells: &[String; 7]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.width());
            let last = i == cells.len() - 1;
            // Counts read best right-aligned; the text columns left-aligned.
            if (2..=4).contains(&i) {
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            } else {
                out.push_str(cell);
                if !last {
                    out.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                out.push_str("  ");
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(&header);
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push('\n');
    for r in review.runs.iter().filter(|r| r.status == Status::Error) {
        out.push_str(&format!(
            "{} {}: {}\n",
            say!(lang, "could not review", "无法评审"),
            r.name,
            r.error.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&headline(review, lang));
    out.push('\n');
    if let Some(line) = llm_line(review, lang) {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(path) = &review.summary_report {
        out.push_str(&say!(
            lang,
            "summary: {}\n",
            "汇总报告：{}\n",
            path.display()
        ));
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A link from the summary (in `dir`) to a run's report.
fn link(dir: &Path, report: &Path) -> String {
    let rel = report.strip_prefix(dir).unwrap_or(report);
    let href = rel.display().to_string().replace(' ', "%20");
    format!(
        "[{}]({href})",
        rel.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    )
}

fn markdown(review: &Review, dir: &Path, lang: Lang) -> String {
    let mut out = String::new();
    out.push_str(&say!(
        lang,
        "# retune review, {}\n\n",
        "# retune 评审，{}\n\n",
        review.time
    ));
    out.push_str(&format!("{}.\n", headline(review, lang)));
    if let Some(line) = llm_line(review, lang) {
        out.push_str(&format!("{line}.\n"));
    }
    out.push('\n');
    out.push_str(&say!(
        lang,
        "| run | status | findings | proposed | report |\n",
        "| 运行 | 状态 | 发现 | 建议 | 报告 |\n"
    ));
    out.push_str("|---|---|---|---|---|\n");
    for r in &review.runs {
        let report = r
            .report
            .as_deref()
            .map(|p| link(dir, p))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            cell(&r.name),
            r.status.as_str(),
            cell(&finding_ids(r)),
            cell(&proposed(r)),
            report
        ));
    }
    let sick: Vec<&RunReview> = review
        .runs
        .iter()
        .filter(|r| matches!(r.status, Status::Critical | Status::Warning))
        .collect();
    if !sick.is_empty() {
        out.push_str(&say!(
            lang,
            "\n## Runs that need attention\n",
            "\n## 需要关注的运行\n"
        ));
    }
    for r in sick {
        out.push_str(&format!("\n### {} ({})\n\n", r.name, r.status.as_str()));
        for f in &r.findings {
            out.push_str(&format!(
                "- **{}** ({}): {}\n",
                f.id,
                f.severity.as_str(),
                f.summary
            ));
        }
        for c in &r.changes {
            out.push_str(&format!(
                "- {} `{}`: {} → {}. {}\n",
                say!(lang, "change", "变更"),
                c.parameter,
                value_text(&c.old),
                value_text(&c.new),
                c.rationale
            ));
        }
        for a in &r.actions {
            out.push_str(&format!(
                "- {}: `{}`\n",
                say!(lang, "action", "操作"),
                a.as_str()
            ));
        }
        for a in &r.advice {
            out.push_str(&format!("- {}: {a}\n", say!(lang, "advice", "建议")));
        }
        if let Some(p) = &r.provider {
            out.push_str(&format!("- {}: {p}\n", say!(lang, "advisor", "顾问")));
        }
    }
    let errors: Vec<&RunReview> = review
        .runs
        .iter()
        .filter(|r| r.status == Status::Error)
        .collect();
    if !errors.is_empty() {
        out.push_str(&say!(
            lang,
            "\n## Runs that could not be reviewed\n\n",
            "\n## 无法评审的运行\n\n"
        ));
    }
    for r in errors {
        out.push_str(&format!(
            "- {}: {}\n",
            r.name,
            r.error.as_deref().unwrap_or("")
        ));
    }
    out
}

/// What `--write-back` records on an MLflow run: how it stands, what was found, what was
/// proposed. Every key is sent every time, empty when it does not apply, so that a tag
/// from an earlier review (an error since fixed) does not outlive it. Values are cut to
/// the server's limit on a character boundary.
pub fn tags(run: &RunReview) -> Vec<(String, String)> {
    let none = |text: String| {
        if text == "-" {
            "none".to_string()
        } else {
            text
        }
    };
    [
        ("retune.status", run.status.as_str().to_string()),
        ("retune.findings", none(finding_ids(run))),
        ("retune.proposed", none(proposed(run))),
        ("retune.provider", run.provider.clone().unwrap_or_default()),
        (
            "retune.adjustment_id",
            run.adjustment_id.clone().unwrap_or_default(),
        ),
        ("retune.error", run.error.clone().unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| {
        let v: String = v.chars().take(crate::mlflow::MAX_TAG_VALUE_CHARS).collect();
        (k.to_string(), v)
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{Item, Source, Totals, blank};
    use super::*;
    use crate::error::ExitStatus;

    fn run(name: &str, status: Status) -> RunReview {
        let item = Item {
            name: name.into(),
            source: Source::Folder {
                dir: PathBuf::from(name),
                config: None,
                metrics: PathBuf::from(name).join("metrics.csv"),
            },
            subdir: PathBuf::from(name),
            mlflow: None,
        };
        blank(item, status)
    }

    /// The display columns (start, end) of each space-free cell of a table line.
    fn spans(line: &str) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        let mut at = 0;
        let mut start = None;
        for c in line.chars() {
            if c == ' ' {
                if let Some(s) = start.take() {
                    spans.push((s, at));
                }
            } else if start.is_none() {
                start = Some(at);
            }
            at += c.to_string().width();
        }
        if let Some(s) = start {
            spans.push((s, at));
        }
        spans
    }

    #[test]
    fn zh_labels_line_up_with_the_rows_by_display_width() {
        let review = Review {
            time: "20260914T112126Z".into(),
            runs: vec![run("resnet-a", Status::Healthy), run("b", Status::Pending)],
            totals: Totals::default(),
            llm_usage: None,
            summary_report: None,
            exit_code: ExitStatus::Success,
        };
        let text = table(&review, Lang::Zh);
        let lines: Vec<&str> = text.lines().take(3).collect();
        assert!(lines[0].starts_with("运行"), "{text}");
        let header = spans(lines[0]);
        assert_eq!(header.len(), 7, "{text}");
        for row in &lines[1..] {
            let cells = spans(row);
            assert_eq!(cells.len(), 7, "{text}");
            for i in 0..7 {
                if (2..=4).contains(&i) {
                    // The counts are right-aligned under their labels.
                    assert_eq!(cells[i].1, header[i].1, "column {i}:\n{text}");
                } else {
                    assert_eq!(cells[i].0, header[i].0, "column {i}:\n{text}");
                }
            }
        }
    }
}
