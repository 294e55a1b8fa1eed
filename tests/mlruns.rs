//! `retune review` of MLflow's local file store, on the store in tests/fixtures/mlruns,
//! which MLflow 3.17.2's own client wrote (how: tests/fixtures/mlruns/README.md). The same
//! review against a store written during the test, and against a server serving that
//! store, is in tests/mlflow.rs (it needs a Python with mlflow).

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, assert_code, json, stderr};
use serde_json::Value;

/// The fixture's one experiment: three active runs and one deleted.
const EXPERIMENT: &str = "retune-test";

fn fixture() -> PathBuf {
    common::repo().join("tests/fixtures/mlruns")
}

/// The fixture copied into the scratch folder, for tests that break a file of it.
fn copy_store(scratch: &Scratch) -> PathBuf {
    let to = scratch.path("mlruns");
    copy_dir(&fixture(), &to);
    to
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

/// The folder of the fixture's run named `name`.
fn run_dir(store: &Path, name: &str) -> PathBuf {
    for experiment in std::fs::read_dir(store).unwrap().flatten() {
        if !experiment.path().is_dir() {
            continue;
        }
        for run in std::fs::read_dir(experiment.path()).unwrap().flatten() {
            let tag = run.path().join("tags/mlflow.runName");
            if std::fs::read_to_string(&tag).is_ok_and(|n| n == name) {
                return run.path();
            }
        }
    }
    panic!("no run named {name} in {}", store.display());
}

fn line<'a>(review: &'a Value, name: &str) -> &'a Value {
    review["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == format!("{EXPERIMENT}/{name}"))
        .unwrap_or_else(|| panic!("{name}: {review:#}"))
}

/// What the review of the fixture says, whichever way the store was named.
fn assert_fixture_review(review: &Value) {
    let names: Vec<&str> = review["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    // newest first, as MLflow lists runs; the deleted run is not among them
    assert_eq!(
        names,
        [
            "retune-test/overfitting",
            "retune-test/diverged",
            "retune-test/healthy"
        ],
        "{review:#}"
    );
    for (name, status, epochs) in [
        ("healthy", "healthy", 10),
        ("diverged", "critical", 7),
        ("overfitting", "warning", 12),
    ] {
        let run = line(review, name);
        assert_eq!(run["status"], status, "{name}: {run:#}");
        assert_eq!(run["epochs"], epochs, "{name}");
        assert_eq!(run["source"]["kind"], "mlruns", "{name}");
    }
    let diverged = line(review, "diverged");
    assert_eq!(diverged["source"]["run_status"], "FAILED");
    assert_eq!(diverged["findings"][0]["id"], "divergence");
    assert_eq!(diverged["changes"][0]["parameter"], "learning_rate");
    let overfitting = line(review, "overfitting");
    assert!(
        overfitting["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "overfitting"),
        "{overfitting:#}"
    );
}

#[test]
fn review_reads_the_store_as_a_folder_and_as_a_file_uri() {
    let scratch = Scratch::new();
    let store = fixture();
    let store_text = store.display().to_string();
    let out = scratch.retune(&["review", &store_text, "--format", "json"]);
    assert_code(&out, 1);
    let review = json(&out);
    assert_fixture_review(&review);
    let dir = PathBuf::from(line(&review, "diverged")["source"]["dir"].as_str().unwrap());
    assert_eq!(dir, run_dir(&store, "diverged"));
    // nothing in the store changes; the summary goes to the report dir
    assert!(scratch.path("reports").is_dir());

    // the URI MLflow's client takes, absolute and relative, and the experiment by name or id
    let copied = copy_store(&scratch);
    let id = run_dir(&copied, "healthy")
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    for (uri, experiment) in [
        (format!("file://{}", copied.display()), EXPERIMENT),
        ("file:./mlruns".to_string(), id.as_str()),
        ("mlruns".to_string(), EXPERIMENT),
    ] {
        let out = scratch.retune(&[
            "review",
            "--mlflow",
            &uri,
            "--experiment",
            experiment,
            "--format",
            "json",
        ]);
        assert_code(&out, 1);
        assert_fixture_review(&json(&out));
    }
    // one experiment's folder is that experiment
    let out = scratch.retune(&["review", &format!("mlruns/{id}"), "--format", "json"]);
    assert_code(&out, 1);
    assert_fixture_review(&json(&out));
    // with a folder of ordinary runs beside it, both are reviewed
    scratch.copy_example_dir("sweep/lr_0.5", "plain/lr_0.5");
    let out = scratch.retune(&["review", "mlruns", "plain", "--format", "json"]);
    assert_code(&out, 1);
    assert_eq!(json(&out)["totals"]["runs"], 4);
}

#[test]
fn a_store_is_not_written_to_and_asking_says_so() {
    let scratch = Scratch::new();
    let store = copy_store(&scratch);
    let before = scratch.files();
    let out = scratch.retune(&[
        "review",
        "--mlflow",
        "file:./mlruns",
        "--experiment",
        EXPERIMENT,
        "--write-back",
    ]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(
            "--write-back records results on a tracking server; a file store is only read"
        ),
        "{err}"
    );
    assert!(err.contains("mlflow server --backend-store-uri"), "{err}");
    assert_eq!(scratch.files(), before, "nothing written");
    let out = scratch.retune(&[
        "review",
        "--mlflow",
        "file:./mlruns",
        "--experiment",
        EXPERIMENT,
        "--filter",
        "params.optimizer = 'sgd'",
    ]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("a file store is read whole"));
    // a missing experiment lists the ones there; a deleted run's experiment is not hidden
    let out = scratch.retune(&[
        "review",
        "--mlflow",
        "file:./mlruns",
        "--experiment",
        "nope",
    ]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(
            "no experiment named `nope` there; experiments there: `Default`, `retune-test`"
        ),
        "{err}"
    );
    assert!(store.is_dir());
}

#[test]
fn a_cut_metric_line_or_a_broken_meta_yaml_names_the_file_and_line() {
    let scratch = Scratch::new();
    let store = copy_store(&scratch);
    // a crash mid-append: the last line of the diverged run's loss cut short
    let loss = run_dir(&store, "diverged").join("metrics/loss");
    let text = std::fs::read_to_string(&loss).unwrap();
    let cut = &text[..text.trim_end().rfind(' ').unwrap()];
    std::fs::write(&loss, cut).unwrap();
    let lines = cut.lines().count();
    // and the overfitting run's meta.yaml is not YAML
    let meta = run_dir(&store, "overfitting").join("meta.yaml");
    let yaml = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(
        &meta,
        yaml.replace("run_name: overfitting", "run_name: [overfitting"),
    )
    .unwrap();

    let out = scratch.retune(&["review", "mlruns", "--format", "json"]);
    assert_code(&out, 2);
    let review = json(&out);
    let diverged = line(&review, "diverged");
    assert_eq!(diverged["status"], "error");
    let error = diverged["error"].as_str().unwrap();
    // named as the review was given the store: mlruns/<experiment>/<run>/metrics/loss
    let relative = |p: &Path| {
        p.strip_prefix(scratch.dir.path())
            .unwrap()
            .display()
            .to_string()
    };
    assert!(
        error.starts_with(&format!("{}:{lines}: metric line", relative(&loss))),
        "{error}"
    );
    assert!(error.contains("line cut short?"), "{error}");
    // the broken run is listed by its folder, with the file and line
    let broken = review["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "error" && r != &diverged)
        .unwrap_or_else(|| panic!("{review:#}"));
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("{}:", relative(&meta))),
        "{error}"
    );
    assert!(error.contains("not valid YAML"), "{error}");
    // the healthy run is still reviewed
    assert_eq!(line(&review, "healthy")["status"], "healthy");
    assert_eq!(review["totals"]["error"], 2);
}
