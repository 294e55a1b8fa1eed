//! `retune suggest` end to end through the binary, the way a person or a trainer calls it.

mod common;

use common::{
    Scratch, TREND_FINDINGS, assert_code, finding, finding_ids, ids, json, stdout, suggest,
};
use serde_json::Value;

/// A scratch dir holding the diverging Keras run as `config.json` and `history.csv`.
fn diverging_run() -> Scratch {
    let s = Scratch::new();
    s.copy_example("keras/diverging/config.json", "config.json");
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s
}

/// `suggest` on the `config.json` and `history.csv` of a scratch dir, then `extra`.
fn suggest_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["suggest", "-c", "config.json", "-m", "history.csv"];
    args.extend_from_slice(extra);
    args
}

/// Lines that differ between two texts (old, new), in order.
fn changed_lines(old: &str, new: &str) -> Vec<(String, String)> {
    assert_eq!(
        old.lines().count(),
        new.lines().count(),
        "line count changed:\n{new}"
    );
    old.lines()
        .zip(new.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn seed003_gets_a_clean_evidenced_report() {
    let (s, d) = suggest("seed003", "metrics.json", &[]);
    for key in [
        "adjustment_id",
        "provider",
        "model",
        "findings",
        "changes",
        "rejected",
        "actions",
        "config_out",
        "report",
    ] {
        assert!(d.get(key).is_some(), "decision lacks {key}: {d:#}");
    }
    assert_eq!(d["provider"], "rules");
    assert_eq!(finding(&d, "chance_level")["evidence"]["classes"], 5);
    // Every accepted change is a real change with its own rationale.
    let changes = d["changes"].as_array().unwrap();
    let mut rationales: Vec<&str> = changes
        .iter()
        .map(|c| c["rationale"].as_str().unwrap())
        .collect();
    rationales.dedup();
    assert_eq!(rationales.len(), changes.len());
    for c in changes {
        let (old, new) = (c["old"].as_f64().unwrap(), c["new"].as_f64().unwrap());
        assert!((new - old).abs() > 0.02 * old.abs(), "no-op change {c}");
    }
    let report = s.read(d["report"].as_str().unwrap());
    // A diff when something changed, and a plain statement when nothing did.
    if changes.is_empty() {
        assert!(
            report.contains("No change: the adjusted config is the input config"),
            "{report}"
        );
        assert!(
            d["advice"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().unwrap().contains("Check the data and labels"))
        );
    } else {
        assert!(report.contains("```diff"), "{report}");
    }
    assert!(report.contains("chance_level"));
    let noise = regex::Regex::new(r"\d\.\d*(0000000|9999999)\d").unwrap();
    assert!(!noise.is_match(&report), "float noise in report:\n{report}");
    let out = s.read("run/config.retuned.json");
    assert!(!noise.is_match(&out), "float noise in config:\n{out}");
}

#[test]
fn a_diverging_run_gets_its_rate_cut_and_a_restore() {
    let (s, d) = suggest("keras/diverging", "history.csv", &[]);
    assert!(finding_ids(&d).contains(&"divergence".to_string()), "{d:#}");
    assert_eq!(d["actions"], serde_json::json!(["restore_checkpoint"]));
    let change = &d["changes"][0];
    assert_eq!(change["canonical"], "learning_rate");
    let (old, new) = (
        change["old"].as_f64().unwrap(),
        change["new"].as_f64().unwrap(),
    );
    assert!((new / old - 0.1).abs() < 1e-9, "{change}");
    // Only the learning-rate line of the config changed, and nothing else moved.
    let lines = changed_lines(
        &s.read("run/config.json"),
        &s.read("run/config.retuned.json"),
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn a_run_that_diverged_from_the_start_is_restarted() {
    let (_, d) = suggest("keras/diverging_from_start", "history.csv", &[]);
    assert_eq!(d["actions"], serde_json::json!(["restart"]), "{d:#}");
}

#[test]
fn a_healthy_run_is_left_alone() {
    let (s, d) = suggest("keras/healthy", "history.csv", &[]);
    for id in finding_ids(&d) {
        assert!(
            !TREND_FINDINGS.contains(&id.as_str()),
            "healthy run flagged {id}: {d:#}"
        );
    }
    assert_eq!(d["changes"], serde_json::json!([]));
    assert_eq!(s.read("run/config.json"), s.read("run/config.retuned.json"));
}

#[test]
fn an_overfitting_run_gets_regularised_or_stopped() {
    let (_, d) = suggest("keras/overfitting", "history.csv", &[]);
    assert!(
        finding_ids(&d).contains(&"overfitting".to_string()),
        "{d:#}"
    );
    let changed = ids(&d, "changes", "canonical");
    let actions = d["actions"].as_array().unwrap();
    assert!(
        changed
            .iter()
            .any(|c| c == "dropout" || c == "weight_decay")
            || actions.contains(&Value::from("stop_early")),
        "{d:#}"
    );
}

#[test]
fn dry_run_writes_nothing() {
    let s = diverging_run();
    let before = s.files();
    let out = s.retune(&suggest_args(&["--dry-run"]));
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("dry run: nothing written"),
        "{}",
        stdout(&out)
    );
    assert_eq!(s.files(), before);
}

#[test]
fn in_place_keeps_the_previous_text_in_the_history() {
    let s = diverging_run();
    let original = s.read("config.json");
    let out = s.retune(&suggest_args(&["--in-place", "--format", "json"]));
    assert_code(&out, 0);
    assert_ne!(s.read("config.json"), original);
    let history = s.read("reports/history.jsonl");
    let entry: Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    assert_eq!(entry["config_before"], Value::from(original));
    assert!(!s.files().iter().any(|f| f.contains("retuned")));
}

#[test]
fn a_second_call_on_the_same_log_does_not_cut_again() {
    // A trainer that calls twice for one epoch (a retry, a resumed job) must not compound.
    let s = diverging_run();
    let in_place = suggest_args(&["--in-place", "--format", "json"]);
    let first = json(&s.retune(&in_place));
    assert_eq!(first["changes"].as_array().unwrap().len(), 1);
    let second = s.retune(&in_place);
    assert_code(&second, 0);
    let second = json(&second);
    assert_eq!(second["changes"], serde_json::json!([]), "{second:#}");
    // The report says why: the parameter is cooling down, and what the first change was.
    let report = s.read(second["report"].as_str().unwrap());
    assert!(
        report.contains(
            "Cooling down: `optimizer.lr` (changed at epoch 12; free to change again from epoch 14)"
        ),
        "{report}"
    );
    assert!(report.contains("0.42 → 0.042"), "{report}");
}

#[test]
fn json_output_is_one_document_and_text_output_is_for_people() {
    let s = diverging_run();
    let out = s.retune(&suggest_args(&["--format", "json", "--dry-run"]));
    assert_code(&out, 0);
    json(&out);
    let out = s.retune(&suggest_args(&[]));
    let text = stdout(&out);
    assert!(
        text.contains("divergence") && text.contains("change ") && text.contains("wrote "),
        "{text}"
    );
}

#[test]
fn concurrent_calls_never_interleave_history_lines() {
    let s = diverging_run();
    let bin = assert_cmd::cargo::cargo_bin("retune");
    let children: Vec<_> = (0..8)
        .map(|i| {
            std::process::Command::new(&bin)
                .current_dir(s.dir.path())
                .args(suggest_args(&["--history", "shared.jsonl"]))
                .args([
                    "--out",
                    &format!("out{i}.json"),
                    "--report-dir",
                    &format!("r{i}"),
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let history = s.read("shared.jsonl");
    assert_eq!(history.lines().count(), 8);
    for line in history.lines() {
        let entry: Value = serde_json::from_str(line).expect("every line is whole JSON");
        assert!(entry["adjustment_id"].as_str().unwrap().starts_with("adj-"));
    }
}

#[test]
fn the_report_is_written_in_chinese_on_request() {
    let (s, d) = suggest("seed003", "metrics.json", &["--lang", "zh"]);
    let report = s.read(d["report"].as_str().unwrap());
    assert!(
        report.contains("诊断") || report.contains("发现"),
        "{report}"
    );
}

#[test]
fn report_on_change_skips_the_report_of_a_decision_that_changes_nothing() {
    // The healthy run: no change, no action. The config copy and the history line are
    // still written; the report, its JSON twin and its chart are not.
    let (s, d) = common::suggest("keras/healthy", "history.csv", &["--report-on", "change"]);
    assert!(d["changes"].as_array().unwrap().is_empty(), "{d:#}");
    assert!(d["report"].is_null(), "{d:#}");
    assert_eq!(
        s.files(),
        [
            "reports/history.jsonl",
            "run/config.json",
            "run/config.retuned.json",
            "run/history.csv"
        ]
    );
    // A decision that changes something still gets its report.
    let (s, d) = common::suggest("keras/diverging", "history.csv", &["--report-on", "change"]);
    assert!(s.path(d["report"].as_str().unwrap()).is_file(), "{d:#}");
}

#[test]
fn a_blow_up_the_trainer_rolled_back_from_is_not_acted_on_again() {
    // A trainer calling suggest after every epoch, CSVLogger(append=True): NaN at epoch 4,
    // restored; the restored run trains on; then blows up again.
    let s = Scratch::new();
    s.write(
        "config.json",
        r#"{"optimizer": "adam", "learning_rate": 0.3, "batch_size": 32, "epochs": 30, "num_classes": 10}"#,
    );
    let mut csv = String::from(
        "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.2,2.0,0.2,2.1\r\n1,0.3,1.5,0.3,1.6\r\n2,0.4,1.2,0.4,1.3\r\n3,0.1,nan,0.1,nan\r\n",
    );
    let mut step = |row: Option<&str>| {
        if let Some(row) = row {
            csv.push_str(row);
            csv.push_str("\r\n");
        }
        s.write("history.csv", &csv);
        let out = s.retune(&[
            "suggest",
            "-c",
            "config.json",
            "-m",
            "history.csv",
            "--in-place",
            "--history",
            "h.jsonl",
            "--format",
            "json",
            "--provider",
            "rules",
        ]);
        assert_code(&out, 0);
        let d = json(&out);
        let lr: Vec<f64> = d["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["canonical"] == "learning_rate")
            .map(|c| c["new"].as_f64().unwrap())
            .collect();
        (finding_ids(&d), lr, d["actions"].clone())
    };
    let (ids, lr, actions) = step(None);
    assert!(ids.contains(&"divergence".to_string()));
    // Adam at 0.3 is 30× above its usual range: one cut lands in the range (Adam's 1e-3),
    // not 10× down to a rate still far too high (#12).
    assert_eq!(
        (lr, actions),
        (vec![0.001], serde_json::json!(["restore_checkpoint"]))
    );
    // The epoch after the restore: the old NaN is not judged again, and the cut is
    // cooling down: no second cut, no second restore.
    let (ids, lr, actions) = step(Some("4,0.42,1.15,0.41,1.25"));
    assert!(!ids.contains(&"divergence".to_string()), "{ids:?}");
    assert!(lr.is_empty(), "{lr:?}");
    assert_eq!(actions, serde_json::json!([]));
    // A new blow-up after the restore is a new divergence, acted on at once.
    let (ids, lr, actions) = step(Some("5,0.1,nan,0.1,nan"));
    assert!(ids.contains(&"divergence".to_string()));
    assert_eq!(
        (lr, actions),
        (vec![0.0001], serde_json::json!(["restore_checkpoint"]))
    );
}

// -- write safety (issue 13) -------------------------------------------------------------

#[test]
fn an_output_that_is_an_input_is_refused_and_nothing_is_written() {
    let s = diverging_run();
    let metrics = s.read("history.csv");
    std::os::unix::fs::symlink("history.csv", s.path("log-link.csv")).unwrap();
    std::fs::hard_link(s.path("config.json"), s.path("config-hard.json")).unwrap();
    let before = s.files();
    for extra in [
        &["--out", "history.csv"][..],
        &["--out", "log-link.csv"],
        &["--out", "config-hard.json"],
        &["--history", "history.csv"],
        &["--history", "config.json", "--in-place"],
        &["--history", "log-link.csv", "--in-place"],
    ] {
        let out = s.retune(&suggest_args(extra));
        assert_code(&out, 2);
        let err = common::stderr(&out);
        assert!(
            err.contains("no output may overwrite an input") || err.contains("is the input config"),
            "{extra:?}: {err}"
        );
        assert_eq!(s.read("history.csv"), metrics, "{extra:?}");
        assert_eq!(s.files(), before, "{extra:?}");
    }
}

#[test]
fn in_place_on_a_symlinked_config_writes_through_the_link() {
    let s = Scratch::new();
    s.copy_example("keras/diverging/config.json", "real/config.json");
    s.copy_example("keras/diverging/history.csv", "history.csv");
    std::os::unix::fs::symlink("real/config.json", s.path("config.json")).unwrap();
    let original = s.read("real/config.json");
    let out = s.retune(&suggest_args(&["--in-place", "--format", "json"]));
    assert_code(&out, 0);
    let meta = std::fs::symlink_metadata(s.path("config.json")).unwrap();
    assert!(
        meta.file_type().is_symlink(),
        "the link was replaced by a file"
    );
    let now = s.read("real/config.json");
    assert_ne!(now, original, "the linked file kept the old text");
    assert!(now.contains("0.042"), "{now}");
}

#[test]
fn stale_temporaries_of_a_killed_call_are_removed_and_no_others() {
    let s = diverging_run();
    // A writer that is gone (no process has this pid), in both folders a call writes to.
    s.write(".retune-99999999-aB3xY9", "half a config");
    s.write("reports/.retune-99999999-Zz9Qq1", "half a report");
    // A writer that still runs (this test) and somebody else's file: left alone.
    let alive = format!(".retune-{}-k3Ep1t", std::process::id());
    s.write(&alive, "being written");
    s.write(".retune-notes.txt", "not ours");
    assert_code(&s.retune(&suggest_args(&["--in-place"])), 0);
    let files = s.files();
    assert!(!files.iter().any(|f| f.contains("99999999")), "{files:?}");
    assert!(files.contains(&alive) && files.contains(&".retune-notes.txt".to_string()));
}

#[test]
fn a_failing_output_leaves_nothing_written() {
    let s = diverging_run();
    let original = s.read("config.json");
    // A dangling history link (its folder is missing): no config, no report, no folder.
    std::os::unix::fs::symlink("gone/history.jsonl", s.path("h.jsonl")).unwrap();
    let before = s.files();
    for extra in [
        &["--history", "h.jsonl"][..],
        &["--history", "h.jsonl", "--in-place"],
    ] {
        let out = s.retune(&suggest_args(extra));
        assert_code(&out, 4);
        assert_eq!(s.files(), before, "{extra:?}");
        assert!(!s.path("reports").exists(), "{extra:?}");
        assert_eq!(s.read("config.json"), original);
    }
    // --out in a folder that cannot exist: the reports and the history line are not
    // written either.
    s.write("blocker", "a file where a folder should be");
    let before = s.files();
    let out = s.retune(&suggest_args(&["--out", "blocker/out.json"]));
    assert_code(&out, 4);
    assert_eq!(s.files(), before);
}

#[test]
fn a_suggestion_not_applied_is_no_cooldown_and_is_proposed_again() {
    let s = diverging_run();
    let first = json(&s.retune(&suggest_args(&["--format", "json"])));
    assert_eq!(first["changes"].as_array().unwrap().len(), 1, "{first:#}");
    let suggested = s.read("config.retuned.json");
    // The input config still has the old rate: the first change was not applied.
    let second = json(&s.retune(&suggest_args(&["--format", "json"])));
    let change = |d: &Value| {
        let c = &d["changes"][0];
        (c["parameter"].clone(), c["old"].clone(), c["new"].clone())
    };
    assert_eq!(change(&second), change(&first), "{second:#}");
    let report = s.read(second["report"].as_str().unwrap());
    assert!(!report.contains("Cooling down"), "{report}");
    assert_eq!(s.read("config.retuned.json"), suggested);
    // Applied by hand, it is a change made: the next call leaves it to cool down.
    std::fs::copy(s.path("config.retuned.json"), s.path("config.json")).unwrap();
    let third = json(&s.retune(&suggest_args(&["--format", "json"])));
    assert_eq!(third["changes"], serde_json::json!([]), "{third:#}");
}

#[test]
fn a_no_change_answer_does_not_overwrite_an_unapplied_suggestion() {
    let s = diverging_run();
    s.copy_example("keras/healthy/history.csv", "healthy.csv");
    s.copy_example("keras/healthy/config.json", "healthy.json");
    let first = json(&s.retune(&suggest_args(&["--out", "tuned.json", "--format", "json"])));
    assert_eq!(first["changes"].as_array().unwrap().len(), 1, "{first:#}");
    let suggested = s.read("tuned.json");
    // A call whose answer is "no change", writing to the same output.
    let out = s.retune(&[
        "suggest",
        "-c",
        "healthy.json",
        "-m",
        "healthy.csv",
        "--out",
        "tuned.json",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let second = json(&out);
    assert_eq!(second["changes"], serde_json::json!([]), "{second:#}");
    assert_eq!(s.read("tuned.json"), suggested);
    let notes = second["notes"].to_string();
    assert!(notes.contains("still holds suggestion"), "{notes}");
}

#[test]
fn concurrent_in_place_calls_on_one_config_make_one_change() {
    let s = diverging_run();
    let original = s.read("config.json");
    let bin = assert_cmd::cargo::cargo_bin("retune");
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(&bin)
                .current_dir(s.dir.path())
                .env("SOURCE_DATE_EPOCH", "1790000000")
                .env_remove("OPENAI_API_KEY")
                .env_remove("OPENAI_BASE_URL")
                .args(suggest_args(&["--in-place", "--provider", "rules"]))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let history = s.read("reports/history.jsonl");
    let changing: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["changes"].as_array().is_some_and(|c| !c.is_empty()))
        .collect();
    assert_eq!(changing.len(), 1, "{history}");
    assert_eq!(changing[0]["config_before"], Value::from(original));
    // The rate was cut once, not compounded.
    assert!(s.read("config.json").contains("0.042"));
}
