//! `retune diagnose` through the binary: every detector on real logs, every format, and
//! a metrics file alone.

mod common;

use common::{
    Scratch, TREND_FINDINGS, assert_code, example, finding, finding_ids, ids, item, json, stdout,
};
use serde_json::Value;

fn diagnose(args: &[&str]) -> Value {
    let s = Scratch::new();
    let mut all = vec!["diagnose", "--format", "json"];
    all.extend_from_slice(args);
    let out = s.retune(&all);
    assert_code(&out, 0);
    json(&out)
}

fn path(relative: &str) -> String {
    example(relative).display().to_string()
}

#[test]
fn seed000_log_alone_is_at_chance_and_says_what_it_skipped() {
    let d = diagnose(&["--metrics", &path("seed000/training.log")]);
    assert_eq!(d["metrics"]["format"], "keras-log");
    assert_eq!(finding(&d, "chance_level")["evidence"]["classes"], 2);
    let skipped = ids(&d, "skipped", "check");
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
    assert_eq!(finding(&d, "chance_level")["evidence"]["classes"], 5);
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
        for id in TREND_FINDINGS {
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

#[test]
fn config_checks_through_the_binary() {
    // An HF-style config whose warmup and EMA outlast the run, with a multiplied batch
    // that leaves few steps per epoch, and settings that contradict each other.
    let s = Scratch::new();
    s.write(
        "config.json",
        r#"{
  "learning_rate": 5e-05,
  "min_lr": 1e-04,
  "optimizer": "adamw",
  "per_device_train_batch_size": 64,
  "gradient_accumulation_steps": 8,
  "num_train_samples": 10000,
  "num_train_epochs": 3,
  "warmup_steps": 1000,
  "ema_decay": 0.9999,
  "dropout": 0.7,
  "early_stopping_patience": 5,
  "seed": 7
}
"#,
    );
    s.write("metrics.jsonl", "{\"epoch\": 1, \"loss\": 2.0, \"val_loss\": 2.1}\n{\"epoch\": 2, \"loss\": 1.6, \"val_loss\": 1.7}\n");
    let out = s.retune(&[
        "diagnose",
        "--config",
        "config.json",
        "--metrics",
        "metrics.jsonl",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let d = json(&out);
    let ids = finding_ids(&d);
    for id in [
        "warmup_exceeds_training",
        "ema_horizon_too_long",
        "effective_batch_too_large",
        "conflicting_settings",
        "dropout_too_high",
    ] {
        assert!(ids.contains(&id.to_string()), "expected {id}: {ids:?}");
    }
    // 10000 / (64 × 8) = 20 steps per epoch, 60 in the run: the numbers are in the evidence.
    assert_eq!(
        finding(&d, "effective_batch_too_large")["evidence"]["effective_batch"],
        512
    );
    assert_eq!(
        finding(&d, "warmup_exceeds_training")["evidence"]["total_steps"],
        60
    );
    assert_eq!(
        finding(&d, "ema_horizon_too_long")["evidence"]["horizon_steps"].as_f64(),
        Some(10000.0)
    );
    assert_eq!(d["facts"]["steps_per_epoch"]["value"], 20);

    // And suggest acts on them within the rules: warmup is advice (read only at start),
    // the EMA decay moves by at most its largest step.
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "metrics.jsonl",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let decision = json(&out);
    assert!(
        decision["advice"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("warmup")),
        "{decision:#}"
    );
    let ema = item(&decision, "changes", "canonical", "ema_decay");
    assert!(ema["new"].as_f64().unwrap() < 0.9999);
}

#[test]
fn the_text_output_names_the_running_epoch() {
    let s = Scratch::new();
    let out = s.retune(&["diagnose", "--metrics", &path("seed000/training.log")]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("epoch 3 still running at step 347/3038"),
        "{text}"
    );
    assert!(
        text.contains("skipped   config_checks: no --config given"),
        "{text}"
    );
}
