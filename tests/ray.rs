//! `retune review` of a Ray Tune experiment folder, on tests/fixtures/ray/scheduled: a
//! sweep Ray 2.60.0 wrote (tests/python/test_ray.py with RETUNE_RAY_KEEP, under
//! retune.ray's scheduler), trimmed to four of its five trials, files as Ray wrote them.
//! Runs without Ray; the sweep itself runs in .ci/ray.sh.
//!
//! Also here: a folder whose metrics files are of several unrelated runs
//! (configs/examples/formats) is not reviewed as one run.

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, assert_code, json, stderr};
use serde_json::Value;

/// The sick trial's rate, and the highest of its healthy siblings in the fixture.
const SICK_LR: &str = "10";
const HIGHEST_HEALTHY_LR: &str = "0.03";

fn fixture() -> PathBuf {
    common::repo().join("tests/fixtures/ray/scheduled")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The trial folders of an experiment folder, by name.
fn trials(experiment: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(experiment)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("params.json").is_file())
        .collect();
    out.sort();
    out
}

fn lr_of(trial: &Path) -> f64 {
    let params: Value =
        serde_json::from_str(&std::fs::read_to_string(trial.join("params.json")).unwrap()).unwrap();
    params["lr"].as_f64().unwrap()
}

/// The review's line for a trial folder.
fn line<'a>(review: &'a Value, trial: &Path) -> &'a Value {
    let dir = trial.display().to_string();
    review["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"]["dir"] == dir)
        .unwrap_or_else(|| panic!("{dir}: {review:#}"))
}

/// What the review of the fixture says, with results read from `results` (`result.json`
/// or `progress.csv`).
fn assert_experiment_review(review: &Value, experiment: &Path, results: &str) {
    let trials = trials(experiment);
    assert_eq!(trials.len(), 4);
    assert_eq!(review["totals"]["runs"], 4, "{review:#}");
    for trial in &trials {
        let run = line(review, trial);
        assert_eq!(
            run["source"]["config"],
            trial.join("params.json").display().to_string()
        );
        assert_eq!(
            run["source"]["metrics"],
            trial.join(results).display().to_string()
        );
        if lr_of(trial) == 10.0 {
            assert_eq!(run["status"], "critical", "{run:#}");
            let divergence = run["findings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["id"] == "divergence")
                .unwrap_or_else(|| panic!("{run:#}"));
            let summary = divergence["summary"].as_str().unwrap();
            assert!(
                summary.contains(&format!(
                    "Sibling runs: divergence here at lr {SICK_LR} while the 3 sibling runs at ≤ {HIGHEST_HEALTHY_LR} show no divergence."
                )),
                "{summary}"
            );
        } else {
            assert_eq!(run["status"], "healthy", "{run:#}");
            assert_eq!(run["epochs"], 8, "{run:#}");
        }
    }
}

#[test]
fn each_trial_is_a_run_and_its_siblings_are_the_evidence() {
    let scratch = Scratch::new();
    let experiment = fixture();
    let out = scratch.retune(&[
        "review",
        &experiment.display().to_string(),
        "--format",
        "json",
    ]);
    assert_code(&out, 1);
    assert_experiment_review(&json(&out), &experiment, "result.json");
}

/// Without `result.json` the trial is still found, by the TensorBoard events Ray wrote
/// beside it (the same values); `progress.csv` is not read (see src/review/discover.rs).
#[test]
fn the_events_serve_when_there_is_no_result_json() {
    let scratch = Scratch::new();
    let experiment = scratch.path("scheduled");
    copy_dir(&fixture(), &experiment);
    for trial in trials(&experiment) {
        std::fs::remove_file(trial.join("result.json")).unwrap();
    }
    let out = scratch.retune(&["review", "scheduled", "--format", "json"]);
    let review = json(&out);
    let relative: Vec<PathBuf> = trials(&experiment)
        .iter()
        .map(|t| PathBuf::from("scheduled").join(t.file_name().unwrap()))
        .collect();
    assert_eq!(review["totals"]["runs"], 4);
    for trial in &relative {
        let run = line(&review, trial);
        let metrics = run["source"]["metrics"].as_str().unwrap();
        assert!(
            metrics.starts_with(&format!("{}/events.out.tfevents.", trial.display())),
            "{run:#}"
        );
        assert_ne!(run["status"], "error", "{run:#}");
    }
}

#[test]
fn a_params_json_that_is_not_an_object_is_named() {
    let scratch = Scratch::new();
    let experiment = scratch.path("scheduled");
    copy_dir(&fixture(), &experiment);
    let trial = trials(&experiment).remove(0);
    let params = trial.join("params.json");
    std::fs::write(&params, "[0.01, 0.9]\n").unwrap();
    let before = scratch.files();
    // diagnose of the one trial: exit 2, the file named, nothing written
    let out = scratch.retune(&[
        "diagnose",
        "--config",
        &params.display().to_string(),
        "--metrics",
        &trial.join("result.json").display().to_string(),
    ]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains(&params.display().to_string()), "{err}");
    assert!(err.contains("object"), "{err}");
    assert_eq!(scratch.files(), before);
    // review: that trial could not be reviewed, and says why; the others are
    let out = scratch.retune(&["review", "scheduled", "--format", "json"]);
    assert_code(&out, 2);
    let review = json(&out);
    let run = line(
        &review,
        &PathBuf::from("scheduled").join(trial.file_name().unwrap()),
    );
    assert_eq!(run["status"], "error", "{run:#}");
    let error = run["error"].as_str().unwrap_or_default();
    assert!(error.contains("params.json"), "{run:#}");
    assert_eq!(review["totals"]["runs"], 4);
}

#[test]
fn a_folder_of_format_samples_is_not_one_run() {
    let scratch = Scratch::new();
    scratch.copy_example_dir("formats", "formats");
    let out = scratch.retune(&["review", "formats", "--format", "json"]);
    let review = json(&out);
    let names: Vec<&str> = review["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"formats"), "{names:?}");
    // each sample file with a history is its own run, and the sample folders below are
    // searched
    for name in [
        "formats/keras_csvlogger.csv",
        "formats/keras_history.json",
        "formats/metrics.jsonl",
        "formats/keras3_verbose1.log",
    ] {
        assert!(names.contains(&name), "{name}: {names:?}");
    }
    assert!(
        names.iter().any(|n| n.starts_with("formats/lightning/")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("formats/hf")),
        "{names:?}"
    );
    for run in review["runs"].as_array().unwrap() {
        assert_ne!(run["status"], "error", "{run:#}");
    }
}

#[test]
fn two_files_of_one_run_are_still_one_run() {
    // A Keras run's CSVLogger file and its console log hold the same epochs: one run.
    let scratch = Scratch::new();
    let run = scratch.path("keras_run");
    std::fs::create_dir_all(&run).unwrap();
    let rows = [(0, 1.2, 1.3), (1, 0.9, 1.0), (2, 0.7, 0.85)];
    let mut csv = String::from("epoch,loss,val_loss\n");
    let mut log = String::new();
    for (epoch, loss, val) in rows {
        csv.push_str(&format!("{epoch},{loss},{val}\n"));
        log.push_str(&format!(
            "Epoch {}/3\n100/100 - 1s - 10ms/step - loss: {loss:.4} - val_loss: {val:.4}\n",
            epoch + 1
        ));
    }
    std::fs::write(run.join("history.csv"), csv).unwrap();
    std::fs::write(run.join("training.log"), log).unwrap();
    let out = scratch.retune(&["review", "keras_run", "--format", "json"]);
    let review = json(&out);
    assert_eq!(review["totals"]["runs"], 1, "{review:#}");
    assert_eq!(review["runs"][0]["name"], "keras_run");
}
