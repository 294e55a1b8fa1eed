//! Cross-run evidence. Runs whose configs have the same keys are siblings (a sweep, a
//! team's variants of one script). When a run has a training finding its siblings do not
//! have, and one tunable value sets it apart from every one of them — lr 0.5 where they
//! all have at most 0.1 — that is evidence no single run can give: the finding's summary
//! and evidence say so, and through them the LLM prompt.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::diagnose::TRAINING_FINDINGS;

use crate::lang::Lang;
use crate::lang::say;
use crate::num::num;
use crate::run::Run;
use crate::types::{Diagnosis, FindingId, Severity};

/// Fewer siblings without the finding than this, and "they all had less" is anecdote.
const MIN_FINE_SIBLINGS: usize = 2;

/// One run as the comparison sees it.
pub struct Member<'a> {
    pub name: &'a str,
    pub run: &'a Run,
    pub diagnosis: &'a Diagnosis,
}

/// What to add to one finding of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub run: usize,
    pub finding: FindingId,
    pub sentence: String,
    pub evidence: Value,
}

/// Notes for every run whose finding one tunable value explains.
pub fn compare(members: &[Member], lang: Lang) -> Vec<Note> {
    let mut groups: BTreeMap<Vec<String>, Vec<usize>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        let Some(config) = &m.run.config else {
            continue;
        };
        if m.run.tunables.is_empty() {
            continue;
        }
        let mut shape: Vec<String> = config.leaves().into_iter().map(|(k, _)| k).collect();
        shape.sort();
        groups.entry(shape).or_default().push(i);
    }
    let mut notes = Vec::new();
    for group in groups.values().filter(|g| g.len() > MIN_FINE_SIBLINGS) {
        for &i in group {
            for finding in &members[i].diagnosis.findings {
                if finding.severity < Severity::Warning || !TRAINING_FINDINGS.contains(&finding.id)
                {
                    continue;
                }
                let fine: Vec<usize> = group
                    .iter()
                    .copied()
                    .filter(|&j| j != i && !members[j].diagnosis.has(finding.id))
                    .collect();
                if fine.len() < MIN_FINE_SIBLINGS {
                    continue;
                }
                if let Some(note) = set_apart(members, i, &fine, finding.id, lang) {
                    notes.push(note);
                }
            }
        }
    }
    notes
}

/// The tunable whose value in run `i` lies furthest outside the range of the fine
/// siblings' values (by ratio, as learning rates are compared), if any lies outside.
fn set_apart(
    members: &[Member],
    i: usize,
    fine: &[usize],
    finding: FindingId,
    lang: Lang,
) -> Option<Note> {
    let run = members[i].run;
    let mut best: Option<(f64, &str, f64, f64, f64)> = None;
    for tunable in &run.tunables {
        let values: Vec<f64> = fine
            .iter()
            .filter_map(|&j| {
                members[j]
                    .run
                    .tunables
                    .iter()
                    .find(|t| t.path == tunable.path)
                    .map(|t| t.value)
            })
            .collect();
        if values.len() != fine.len() {
            continue;
        }
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let v = tunable.value;
        let gap = if v > hi {
            distance(v, hi)
        } else if v < lo {
            distance(lo, v)
        } else {
            continue;
        };
        if best.is_none_or(|b| gap > b.0) {
            best = Some((gap, tunable.path.as_str(), v, lo, hi));
        }
    }
    let (_, parameter, value, lo, hi) = best?;
    let count = fine.len();
    let (bound, their) = if value > hi {
        ("max", format!("≤ {}", num(hi)))
    } else {
        ("min", format!("≥ {}", num(lo)))
    };
    let sentence = say!(
        lang,
        "Sibling runs: {finding} here at {parameter} {} while the {count} sibling runs at {their} show no {finding}.",
        "同组运行对比：本运行 {parameter} = {} 出现 {finding}，而 {parameter} {their} 的 {count} 个同组运行没有。",
        num(value)
    );
    let mut names: Vec<&str> = fine.iter().map(|&j| members[j].name).collect();
    names.truncate(5);
    Some(Note {
        run: i,
        finding,
        sentence,
        evidence: json!({
            "parameter": parameter,
            "value": value,
            "siblings_without_finding": count,
            "their_range": [lo, hi],
            "outside": bound,
            "siblings": names,
        }),
    })
}

/// How far apart two values are: a ratio for positive values, else the difference.
fn distance(big: f64, small: f64) -> f64 {
    if big > 0.0 && small > 0.0 {
        (big / small).ln()
    } else {
        big - small
    }
}

/// Adds the notes to their findings: a sentence to the summary, `siblings` to the evidence.
pub fn apply(notes: Vec<Note>, diagnoses: &mut [&mut Diagnosis]) {
    for note in notes {
        if let Some(finding) = diagnoses[note.run]
            .findings
            .iter_mut()
            .find(|f| f.id == note.finding)
        {
            finding.summary = format!("{} {}", finding.summary, note.sentence);
            finding.evidence.insert("siblings".into(), note.evidence);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::testing;
    use crate::types::Finding;

    fn run_with_lr(lr: f64) -> Run {
        let config = format!(
            r#"{{"optimizer": "adam", "learning_rate": {lr}, "batch_size": 32, "epochs": 20}}"#
        );
        testing::run(Some(&config), &[("loss", &[1.0, 0.9])])
    }

    fn diagnosis(ids: &[&'static str]) -> Diagnosis {
        Diagnosis {
            findings: ids
                .iter()
                .map(|id| Finding {
                    id: FindingId::parse(id).expect("a finding id"),
                    severity: Severity::Critical,
                    summary: format!("{id} seen."),
                    evidence: Default::default(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_diverged_run_set_apart_by_its_learning_rate() {
        let runs = [0.5, 0.1, 0.01, 0.001].map(run_with_lr);
        let mut diagnoses = [
            diagnosis(&["divergence"]),
            diagnosis(&[]),
            diagnosis(&[]),
            diagnosis(&["plateau"]),
        ];
        let names = ["lr0.5", "lr0.1", "lr0.01", "lr0.001"];
        let members: Vec<Member> = (0..4)
            .map(|i| Member {
                name: names[i],
                run: &runs[i],
                diagnosis: &diagnoses[i],
            })
            .collect();
        let notes = compare(&members, Lang::En);
        // The plateau's siblings are the three runs without one (0.5 included): 0.001 is
        // below them all.
        let divergence = notes
            .iter()
            .find(|n| n.finding == FindingId::Divergence)
            .unwrap();
        assert_eq!(divergence.run, 0);
        assert_eq!(
            divergence.sentence,
            "Sibling runs: divergence here at learning_rate 0.5 while the 3 sibling runs at ≤ 0.1 show no divergence."
        );
        assert_eq!(divergence.evidence["their_range"], json!([0.001, 0.1]));
        let plateau = notes
            .iter()
            .find(|n| n.finding == FindingId::Plateau)
            .unwrap();
        assert_eq!(plateau.evidence["outside"], "min");

        let mut refs: Vec<&mut Diagnosis> = diagnoses.iter_mut().collect();
        apply(notes, &mut refs);
        let f = &diagnoses[0].findings[0];
        assert!(f.summary.starts_with("divergence seen. Sibling runs:"));
        assert_eq!(f.evidence["siblings"]["parameter"], "learning_rate");
    }

    /// The notes for runs at these learning rates with these findings.
    fn notes(lrs: &[f64], findings: &[&[&'static str]]) -> Vec<Note> {
        let runs: Vec<Run> = lrs.iter().copied().map(run_with_lr).collect();
        let diagnoses: Vec<Diagnosis> = findings.iter().map(|f| diagnosis(f)).collect();
        let members: Vec<Member> = runs
            .iter()
            .zip(&diagnoses)
            .map(|(run, diagnosis)| Member {
                name: "r",
                run,
                diagnosis,
            })
            .collect();
        compare(&members, Lang::En)
    }

    #[test]
    fn no_note_without_enough_siblings_or_a_separating_value() {
        assert!(notes(&[0.5, 0.1], &[&["divergence"], &[]]).is_empty());
        // The sick run's value lies inside the fine ones' range: nothing sets it apart.
        assert!(notes(&[0.01, 0.1, 0.001], &[&["divergence"], &[], &[]]).is_empty());
        // Three runs, two fine above it: enough.
        assert_eq!(
            notes(&[0.5, 0.1, 0.01], &[&["divergence"], &[], &[]]).len(),
            1
        );
    }
}
