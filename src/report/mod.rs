//! Render: the Markdown report with its chart, the JSON twin and the history line, which
//! `pipeline::write` writes with the adjusted config, all or none. The JSON printed by `suggest --format json` and
//! the JSON twin are the same object (`decision_json`).

mod chart;
mod markdown;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::history::{HistoryChange, HistoryEntry};
use crate::metrics::Canonical;
use crate::num::number_to_json;
use crate::outcome::{Outcome, Written};
use crate::types::Action;
use crate::types::Finding;
use crate::types::{Change, Rejected};

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
    /// Model, tokens, latency and attempts when an LLM was asked; its review of the rules'
    /// proposal item by item (`llm.review`) when its answer was used.
    pub llm: Option<&'a crate::types::LlmReport>,
    /// That review in the line the Markdown report shows.
    pub review_summary: Option<String>,
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
        review_summary: markdown::review_line(outcome, &|p| p.to_string(), &|t| t.to_string()),
        config_out: written.config_out.as_ref().map(|p| p.display().to_string()),
        report: written.report.as_ref().map(|p| p.display().to_string()),
        dry_run,
    }
}

/// Renders the chart and the reports (unless `reports` is false: `--report-on change` on
/// a decision that changes nothing) as (path, contents), for the write stage
/// (`pipeline::write`) to write with the config and the history line, all or none.
/// `outcome.written` is filled in first, because the report and its JSON twin name the
/// files.
pub fn render(outcome: &mut Outcome, reports: bool) -> Result<Vec<(PathBuf, Vec<u8>)>> {
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
    let mut files = Vec::new();
    if let (Some(svg), Some(path)) = (&svg, &outcome.written.chart) {
        files.push((path.clone(), svg.clone().into_bytes()));
    }
    if reports {
        let chart_href = svg.as_ref().map(|_| chart_name.as_str());
        let markdown = markdown::render(outcome, chart_href);
        let json = crate::untrusted::json_string_pretty(&decision_json(outcome))
            .map_err(|e| Error::write(&dir, std::io::Error::other(e)))?;
        files.push((report, markdown.into_bytes()));
        files.push((report_json, format!("{json}\n").into_bytes()));
    }
    Ok(files)
}

pub(crate) fn history_entry(outcome: &Outcome, keep_text: bool) -> HistoryEntry {
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
                Some((c.as_str().to_string(), number_to_json(last.value)))
            })
            .collect(),
        config_before: keep_text.then(|| config.map(|c| c.text.clone())).flatten(),
        reverts: Vec::new(),
        state: None,
        applied: None,
        not_applied: Vec::new(),
        written: true,
    }
}
