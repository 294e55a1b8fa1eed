//! `retune diagnose` through the binary: every detector on real logs, every format, and
//! a metrics file alone.

mod common;

use common::{Scratch, assert_code, example, json, stdout};
use serde_json::Value;

fn diagnose(args: &[&str]) -> Value {
    let s = Scratch::new();
    let mut all = vec!["diagnose", "--format", "json"];
    all.extend_from_slice(args);
    let out = s.retune(&all);
    assert_code(&out, 0);
    json(&out)
}

fn finding_ids(d: &Value) -> Vec<String> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn path(relative: &str) -> String {
    example(relative).display().to_string()
}

#[test]
fn seed000_log_alone_is_at_chance_and_says_what_it_skipped() {
    let d = diagnose(&["--metrics", &path("seed000/training.log")]);
    assert_eq!(d["metrics"]["format"], "keras-log");
    let chance = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "chance_level")
        .expect("chance_level");
    assert_eq!(chance["evidence"]["classes"], 2);
    let skipped: Vec<&str> = d["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["check"].as_str().unwrap())
        .collect();
    assert!(
        !skipped.is_empty(),
        "config checks should be listed as skipped: {d:#}"
    );
    assert!(
        d["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("--config")
    );
}

#[test]
fn seed003_snapshot_is_at_chance_with_five_classes_from_the_config() {
    let d = diagnose(&[
        "--metrics",
        &path("seed003/metrics.json"),
        "--config",
        &path("seed003/config.json"),
    ]);
    let chance = d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "chance_level")
        .expect("chance_level");
    assert_eq!(chance["evidence"]["classes"], 5);
}

#[test]
fn each_real_keras_run_gets_its_finding() {
    let cases = [
        ("diverging", "divergence"),
        ("diverging_from_start", "divergence"),
        ("lr_too_low", "slow_convergence"),
        ("overfitting", "overfitting"),
        ("chance_level", "chance_level"),
        ("plateau", "plateau"),
        ("oscillating", "oscillation"),
    ];
    for (scenario, id) in cases {
        let dir = format!("keras/{scenario}");
        let d = diagnose(&[
            "--metrics",
            &path(&format!("{dir}/history.csv")),
            "--config",
            &path(&format!("{dir}/config.json")),
        ]);
        assert!(
            finding_ids(&d).contains(&id.to_string()),
            "{scenario}: expected {id}, got {:?}",
            finding_ids(&d)
        );
    }
}

#[test]
fn the_healthy_keras_run_has_no_trend_finding_in_any_of_its_files() {
    for file in ["history.csv", "history.json", "training.log"] {
        let d = diagnose(&[
            "--metrics",
            &path(&format!("keras/healthy/{file}")),
            "--config",
            &path("keras/healthy/config.json"),
        ]);
        let ids = finding_ids(&d);
        for id in [
            "divergence",
            "plateau",
            "slow_convergence",
            "overfitting",
            "oscillation",
            "chance_level",
        ] {
            assert!(
                !ids.contains(&id.to_string()),
                "{file}: healthy run flagged {id}"
            );
        }
    }
}

#[test]
fn every_format_is_detected_and_read() {
    let cases = [
        ("formats/keras_history.json", "keras-history"),
        ("formats/keras_csvlogger.csv", "keras-csv"),
        ("formats/keras3_verbose1.log", "keras-log"),
        ("formats/keras2_verbose1.log", "keras-log"),
        ("formats/keras3_verbose2.log", "keras-log"),
        ("formats/lightning/version_0/metrics.csv", "lightning-csv"),
        ("formats/hf/trainer_state.json", "hf-trainer-state"),
        ("formats/metrics.jsonl", "json-lines"),
        ("formats/snapshot.json", "snapshot"),
    ];
    for (file, format) in cases {
        let d = diagnose(&["--metrics", &path(file)]);
        assert_eq!(d["metrics"]["format"], format, "{file}");
        let series: Vec<&str> = d["metrics"]["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(
            series.contains(&"loss") || series.contains(&"val_loss"),
            "{file}: {series:?}"
        );
    }
}

#[test]
fn metrics_format_overrides_detection() {
    let s = Scratch::new();
    s.copy_example("formats/keras_csvlogger.csv", "log.txt");
    let out = s.retune(&[
        "diagnose",
        "--metrics",
        "log.txt",
        "--metrics-format",
        "keras-csv",
    ]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("Keras CSVLogger"), "{}", stdout(&out));
}
