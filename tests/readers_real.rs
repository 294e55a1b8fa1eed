//! The metrics readers on real training logs of `tests/real/` that once failed to read,
//! through the binary: `retune diagnose --format json` on each exits 0 and reports the
//! series it read, the epochs of the run it judged and, for a file holding several
//! `fit()` calls, the note saying which one that is. And bad numbers in a metrics file
//! are an error naming the file and line (exit 2), not something read around.

mod common;

use common::{Scratch, assert_code, finding_ids, json, repo, stderr};
use serde_json::Value;

/// What a real log must read as.
struct Expect {
    /// Under `tests/real/`.
    file: &'static str,
    format: &'static str,
    /// Canonical series names (the first ones, in order).
    series: &'static [&'static str],
    /// Epochs of the run judged (the latest, for a file of several).
    epochs: u64,
    /// The note on earlier runs, when the file holds several.
    phases: Option<&'static str>,
}

const EXPECTED: &[Expect] = &[
    Expect {
        file: "keras1_v2_kanji_augmented_multi_fit/model_for_augmented_dataset_training_log.txt",
        format: "keras-log",
        series: &["loss", "val_loss", "accuracy", "val_accuracy"],
        epochs: 6,
        phases: Some(
            "2 earlier fit() calls in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}6)",
        ),
    },
    Expect {
        file: "keras1_v2_kanji_multi_fit/model_training_log.txt",
        format: "keras-log",
        // the last two fits ran without validation
        series: &["loss", "accuracy"],
        epochs: 14,
        phases: Some(
            "3 earlier fit() calls in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}14)",
        ),
    },
    Expect {
        file: "keras1_v2_lstm_sweep_overfit/0508_results.rb",
        format: "keras-log",
        series: &["loss", "val_loss", "accuracy", "val_accuracy"],
        epochs: 14,
        phases: Some(
            "21 earlier fit() calls in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}14)",
        ),
    },
    Expect {
        file: "keras2_v2_char_lstm_five_fits/ReadMe.txt",
        format: "keras-log",
        series: &["loss", "accuracy"],
        epochs: 100,
        phases: Some(
            "4 earlier fit() calls in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}100)",
        ),
    },
    Expect {
        file: "keras_csv_food11_appended_runs_weight_penalty/inceptionV3_regularize.csv",
        format: "keras-csv",
        series: &["loss", "val_loss", "accuracy", "val_accuracy"],
        epochs: 7,
        phases: Some(
            "3 earlier fit() calls in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}7)",
        ),
    },
    Expect {
        file: "keras_csv_food11_aborted_then_rerun/inceptionV3_training.csv",
        format: "keras-csv",
        series: &["loss", "val_loss", "accuracy", "val_accuracy"],
        epochs: 9,
        phases: Some(
            "1 earlier fit() call in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}9)",
        ),
    },
    Expect {
        file: "jsonl_chipood_chance_pinned/metrics.jsonl",
        format: "json-lines",
        series: &["loss", "accuracy", "test_acc"],
        epochs: 20,
        phases: Some(
            "2 earlier runs in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}20)",
        ),
    },
    Expect {
        file: "keras_history_records_tampered_images_healthy/model_history.json",
        format: "keras-history",
        series: &["loss", "val_loss", "accuracy", "val_accuracy"],
        epochs: 14,
        phases: None,
    },
    Expect {
        // two heads and their total, no key named loss: the totals are the losses
        file: "keras_history_age_gender_two_heads_total/exp07_extended_early_stop_results_20260302T121659Z.json",
        format: "keras-history",
        series: &["loss", "val_loss"],
        epochs: 19,
        phases: None,
    },
    Expect {
        file: "lightning_lstm_tagger_healthy/version_18/metrics.csv",
        format: "lightning-csv",
        // the test row (test_loss, Final F1 Score) is not an epoch
        series: &["loss", "val_loss"],
        epochs: 35,
        phases: None,
    },
    Expect {
        // a `set` column (train/eval) beside the numbers: its eval rows are the
        // validation series
        file: "keras_csv_phase_rows_date_regression_plateau/epoch_log_12_6_11_4_6.csv",
        format: "keras-csv",
        series: &["loss", "val_loss"],
        epochs: 77,
        phases: None,
    },
    Expect {
        // 1.36 epochs, 6 evaluations: each its own point, not two epochs
        file: "hf_whisper_tr_val_worse_after_warmup/trainer_state.json",
        format: "hf-trainer-state",
        series: &["loss", "val_loss", "lr", "grad_norm"],
        epochs: 6,
        phases: None,
    },
    Expect {
        // 0.23 of an epoch, 20 evaluations: not one point
        file: "hf_whisper_bashkir_fraction_epoch_healthy/trainer_state.json",
        format: "hf-trainer-state",
        series: &["loss", "val_loss", "lr", "grad_norm"],
        epochs: 20,
        phases: None,
    },
    Expect {
        file: "keras3_utf16_lung_disease_healthy/training_output.txt",
        format: "keras-log",
        series: &["loss", "val_loss", "accuracy", "val_accuracy", "lr"],
        epochs: 60,
        phases: None,
    },
];

fn diagnose(file: &str) -> Value {
    let path = repo().join("tests/real").join(file);
    let out = Scratch::new().retune(&[
        "diagnose",
        "--format",
        "json",
        "--metrics",
        &path.display().to_string(),
    ]);
    assert_code(&out, 0);
    json(&out)
}

#[test]
fn real_logs_that_once_failed_now_read() {
    for want in EXPECTED {
        let d = diagnose(want.file);
        let m = &d["metrics"];
        assert_eq!(m["format"], want.format, "{}", want.file);
        let names: Vec<&str> = m["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(
            names.starts_with(want.series),
            "{}: series {names:?}",
            want.file
        );
        if want.file.starts_with("lightning") {
            assert_eq!(names, want.series, "{}", want.file);
        }
        assert_eq!(m["epochs"], want.epochs, "{}", want.file);
        // every canonical series covers the run judged, epoch by epoch
        for s in m["series"].as_array().unwrap() {
            if want.series.contains(&s["name"].as_str().unwrap()) {
                assert_eq!(s["epochs"], want.epochs, "{}: {s}", want.file);
            }
        }
        let warnings: Vec<&str> = m["warnings"]
            .as_array()
            .map(|w| w.iter().map(|w| w.as_str().unwrap()).collect())
            .unwrap_or_default();
        match want.phases {
            Some(note) => {
                assert!(
                    warnings.contains(&note),
                    "{}: warnings {warnings:?}",
                    want.file
                );
                // The same, for a program: how many runs, and the span of the judged one.
                let phases = &m["phases"];
                assert!(phases["count"].as_u64().unwrap() >= 2, "{}", want.file);
                assert_eq!(phases["latest"][1], want.epochs, "{}", want.file);
            }
            None => {
                assert!(
                    !warnings.iter().any(|w| w.contains("earlier")),
                    "{}: warnings {warnings:?}",
                    want.file
                );
                assert!(m.get("phases").is_none(), "{}", want.file);
            }
        }
    }
}

#[test]
fn a_rerun_is_never_read_as_a_divergence() {
    // Four runs appended: each later one starts at a loss four to seven times the last
    // one's end. Read as one run that would be a blow-up; it is not.
    let d = diagnose("keras_csv_food11_appended_runs_weight_penalty/inceptionV3_regularize.csv");
    let findings = finding_ids(&d);
    assert!(!findings.iter().any(|f| f == "divergence"), "{findings:?}");
}

#[test]
fn a_metrics_file_with_an_epoch_that_is_not_a_number_is_refused_at_its_line() {
    let s = Scratch::new();
    for (name, text, says) in [
        (
            "metrics.jsonl",
            "{\"loss\": 0.5, \"epoch\": 1}\n{\"loss\": \"NaN\", \"epoch\": \"two\"}\n",
            "metrics.jsonl:2:31: \"epoch\": \"two\" is not an epoch number",
        ),
        (
            "history.json",
            "{\"loss\": [0.5, 0.4],\n \"val_loss\": [0.6, \"abc\"]}",
            "history.json:2:25: \"val_loss\" epoch 2: \"abc\" is not a number",
        ),
        (
            "log.csv",
            "epoch,loss,val_loss\r\n0,0.9,1.0\r\nx,0.8,0.9\r\n",
            "log.csv:3: column \"epoch\": \"x\" is not a number",
        ),
    ] {
        s.write(name, text);
        let out = s.retune(&["diagnose", "--format", "json", "--metrics", name]);
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty(), "{name}");
    }
}
