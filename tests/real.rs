//! The corpus of real training logs (tests/real, labels in tests/real/labels.toml): every
//! run is diagnosed by the binary and judged against its labels, the way
//! `scripts/corpus.py` scores it. The detectors are being improved, so the runs retune
//! does not read or judge right yet are listed below with the reason; the lists may only
//! shrink: a listed run that now passes fails this test until it is removed.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// Runs the binary cannot read yet (exit code ≠ 0), and why.
const KNOWN_UNREAD: &[(&str, &str)] = &[];

/// Runs read but judged wrong against labels.toml, and what is wrong.
const KNOWN_WRONG: &[(&str, &str)] = &[(
    "lightning_ratos_chance_level",
    "says chance_level (right) and slow_convergence; the label also asks for not_learning or val_at_chance, while its training loss moves 1.10 -> 0.995 in the last 3 epochs",
)];

fn corpus() -> PathBuf {
    common::repo().join("tests/real")
}

/// Every file under `dir`, sorted by path (as Python's `sorted(Path.rglob(...))`).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read corpus folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The metrics file of a run, chosen as `scripts/corpus.py` `metrics_path` does: the file
/// SOURCE.txt's `path:` names (its base name, found anywhere in the folder); the folder
/// itself for a TensorBoard run of several event files; else the one data file there.
fn metrics_path(run: &Path) -> PathBuf {
    let source = std::fs::read_to_string(run.join("SOURCE.txt")).unwrap_or_default();
    let field = |name: &str| {
        source
            .lines()
            .filter(|l| l.to_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l.split_once(':').map_or("", |(_, v)| v).trim().to_string())
            .collect::<Vec<_>>()
    };
    let files = files_under(run);
    let format = field("format").into_iter().next().unwrap_or_default();
    for p in field("path") {
        let first = p.split(',').next().unwrap_or("").trim();
        let Some(base) = Path::new(first).file_name() else {
            continue;
        };
        if let Some(found) = files.iter().find(|f| f.file_name() == Some(base)) {
            let events = files
                .iter()
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("events.out.tfevents"))
                })
                .count();
            if format == "tensorboard" && events > 1 {
                return run.to_path_buf();
            }
            return found.clone();
        }
    }
    let data: Vec<&PathBuf> = files
        .iter()
        .filter(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name != "SOURCE.txt" && !name.ends_with(".json")) || name == "trainer_state.json"
        })
        .collect();
    match data.as_slice() {
        [only] => (*only).clone(),
        _ => run.to_path_buf(),
    }
}

/// Right or wrong against the labels, and why (`scripts/corpus.py` `judge`).
fn judge(label: &toml::Table, findings: &[Value]) -> Vec<String> {
    let ids: BTreeSet<&str> = findings.iter().filter_map(|f| f["id"].as_str()).collect();
    let loud: BTreeSet<&str> = findings
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("warning" | "critical")))
        .filter_map(|f| f["id"].as_str())
        .collect();
    let list = |key: &str| -> Vec<String> {
        label
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let healthy = label
        .get("healthy")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut why = Vec::new();
    for m in list("must") {
        if !ids.contains(m.as_str()) {
            why.push(format!("missed {m}"));
        }
    }
    let any_of = list("any_of");
    if !any_of.is_empty() && !any_of.iter().any(|m| ids.contains(m.as_str())) {
        why.push(format!("none of {any_of:?}"));
    }
    for m in list("must_not") {
        if loud.contains(m.as_str()) || (healthy && ids.contains(m.as_str())) {
            why.push(format!("false {m}"));
        }
    }
    if healthy {
        for i in &loud {
            if !why.contains(&format!("false {i}")) {
                why.push(format!("alarm {i}"));
            }
        }
    }
    why
}

#[test]
fn the_real_corpus_is_read_and_judged_against_its_labels() {
    let labels: toml::Table = std::fs::read_to_string(corpus().join("labels.toml"))
        .expect("labels.toml")
        .parse()
        .expect("labels.toml parses");
    let runs = labels["runs"].as_table().expect("[runs.*] tables");
    let listed = |list: &[(&str, &str)], slug: &str| list.iter().any(|(s, _)| *s == slug);
    for (slug, _) in KNOWN_UNREAD.iter().chain(KNOWN_WRONG) {
        assert!(
            runs.contains_key(*slug),
            "{slug} is listed but has no label"
        );
    }
    let (mut right, mut read, mut judged) = (0, 0, 0);
    let mut failures = Vec::new();
    for (slug, label) in runs {
        let label = label.as_table().expect("a run's label is a table");
        let path = metrics_path(&corpus().join(slug));
        let out = Command::cargo_bin("retune")
            .unwrap()
            .args(["diagnose", "--format", "json", "--metrics"])
            .arg(&path)
            .output()
            .expect("run retune");
        if !out.status.success() {
            if !listed(KNOWN_UNREAD, slug) {
                failures.push(format!(
                    "{slug}: not read ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            continue;
        }
        read += 1;
        if listed(KNOWN_UNREAD, slug) {
            failures.push(format!("{slug} is read now: remove it from KNOWN_UNREAD"));
        }
        let json: Value = serde_json::from_slice(&out.stdout).expect("diagnose prints JSON");
        let findings = json["findings"].as_array().cloned().unwrap_or_default();
        let why = judge(label, &findings);
        let ambiguous = label
            .get("ambiguous")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let healthy = label
            .get("healthy")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if why.is_empty() {
            right += 1;
        }
        // Ambiguous runs count in the score but only a healthy run's alarms fail the test.
        if ambiguous && !healthy {
            continue;
        }
        judged += 1;
        match (why.is_empty(), listed(KNOWN_WRONG, slug)) {
            (false, false) => failures.push(format!("{slug}: {}", why.join("; "))),
            (true, true) => failures.push(format!(
                "{slug} is judged right now: remove it from KNOWN_WRONG"
            )),
            _ => {}
        }
    }
    println!(
        "real corpus: {right}/{} runs diagnosed right, {read} read, {judged} judged (ambiguous ones scored only)",
        runs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
