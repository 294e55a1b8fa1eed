//! TensorBoard event files through the binary: a run folder and a single file as
//! `--metrics`, read the way the same run's CSV is, and broken files as a user meets them.

mod common;

use common::{Scratch, assert_code, example, finding_ids, json, repo, stderr};
use serde_json::Value;

/// `configs/examples/formats/tensorboard/<rel>`.
fn tb(rel: &str) -> String {
    example(&format!("formats/tensorboard/{rel}"))
        .display()
        .to_string()
}

/// The one event file of a fixture folder.
fn event_file(folder: &str) -> String {
    let dir = example(&format!("formats/tensorboard/{folder}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(files.len(), 1, "{}", dir.display());
    files.remove(0).display().to_string()
}

fn diagnose(s: &Scratch, metrics: &str) -> Value {
    let out = s.retune(&["diagnose", "--format", "json", "--metrics", metrics]);
    assert_code(&out, 0);
    json(&out)
}

fn originals(d: &Value) -> Vec<(String, String)> {
    d["metrics"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["original"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_keras_run_folder_is_diagnosed_as_its_csv_is() {
    let s = Scratch::new();
    let d = diagnose(&s, &tb("keras"));
    assert_eq!(d["metrics"]["format"], "tensorboard");
    assert_eq!(d["metrics"]["epochs"], 40);
    assert!(d["metrics"].get("warnings").is_none(), "{d:#}");
    let names = originals(&d);
    assert!(names.contains(&("val_loss".into(), "validation/epoch_loss".into())));
    assert!(names.contains(&("loss".into(), "train/epoch_loss".into())));
    let csv = diagnose(
        &s,
        &example("keras/overfitting/history.csv")
            .display()
            .to_string(),
    );
    assert_eq!(finding_ids(&d), finding_ids(&csv));
    assert!(finding_ids(&d).contains(&"overfitting".to_string()));
    assert_eq!(d["findings"][0]["evidence"], csv["findings"][0]["evidence"]);
}

#[test]
fn a_single_file_and_a_pytorch_folder() {
    let s = Scratch::new();
    let d = diagnose(&s, &event_file("tf2"));
    assert_eq!(d["metrics"]["format"], "tensorboard");
    assert_eq!(d["metrics"]["epochs"], 15);
    let csv = diagnose(
        &s,
        &example("keras/healthy/history.csv").display().to_string(),
    );
    assert_eq!(finding_ids(&d), finding_ids(&csv));
    let d = diagnose(&s, &tb("pytorch"));
    assert!(finding_ids(&d).contains(&"divergence".to_string()), "{d:#}");
    assert!(originals(&d).contains(&("val_loss".into(), "Loss_val".into())));
}

#[test]
fn suggest_reads_a_run_folder_like_the_csv() {
    let s = Scratch::new();
    let config = example("keras/overfitting/config.json")
        .display()
        .to_string();
    let run = |metrics: &str| {
        let out = s.retune(&[
            "suggest",
            "--config",
            &config,
            "--metrics",
            metrics,
            "--format",
            "json",
            "--dry-run",
        ]);
        assert_code(&out, 0);
        json(&out)
    };
    let tb = run(&tb("keras"));
    let csv = run(&example("keras/overfitting/history.csv")
        .display()
        .to_string());
    assert!(!tb["changes"].as_array().unwrap().is_empty(), "{tb:#}");
    assert_eq!(tb["changes"], csv["changes"]);
}

#[test]
fn a_truncated_file_is_read_up_to_the_cut_with_a_warning() {
    let s = Scratch::new();
    let path = repo().join("tests/fixtures/events_truncated.bin");
    let d = diagnose(&s, &path.display().to_string());
    assert_eq!(d["metrics"]["format"], "tensorboard");
    assert_eq!(d["metrics"]["epochs"], 15);
    let warnings = d["metrics"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{d:#}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.contains("events_truncated.bin: truncated record at byte 4980"),
        "{w}"
    );
    // A person sees it on stderr; stdout stays the result alone.
    let out = s.retune(&["diagnose", "--metrics", &path.display().to_string()]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).starts_with("warning: ") && stderr(&out).contains("byte 4980"),
        "{}",
        stderr(&out)
    );
    assert!(!common::stdout(&out).contains("warning"));
}

#[test]
fn broken_inputs_are_input_errors_naming_the_file_and_offset() {
    let s = Scratch::new();
    let corrupt = repo().join("tests/fixtures/events_corrupt.bin");
    let out = s.retune(&["diagnose", "--metrics", &corrupt.display().to_string()]);
    assert_code(&out, 2);
    let e = stderr(&out);
    assert!(
        e.contains("events_corrupt.bin: corrupt record at byte 88 (the CRC of its data does not match), with no scalar value before it"),
        "{e}"
    );
    // the folder of all the fixtures holds several runs
    let out = s.retune(&["diagnose", "--metrics", &tb("")]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("several runs (pytorch/, tf2/)"),
        "{}",
        stderr(&out)
    );
    // an empty log folder
    s.write("logs/train/notes.txt", "nothing yet");
    let out = s.retune(&["diagnose", "--metrics", "logs"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("logs: is a directory with no TensorBoard event file"),
        "{}",
        stderr(&out)
    );
}
