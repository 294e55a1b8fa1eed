//! W&B run folders through the binary, on files the real `wandb` client wrote offline
//! (tests/fixtures/wandb/, made by scripts/wandb-fixtures.py): a run diagnosed from its
//! `.wandb` file and recorded config, `suggest` with no JSON config giving advice, `review`
//! of a `wandb/` folder of a sweep, and broken files as a user meets them.
//!
//! The last test regenerates the runs with the pinned client and reads them: set
//! RETUNE_TEST_WANDB to a Python with wandb installed (`.ci/run` does, and checks the test
//! ran rather than returned). Without it that test says so and returns.

mod common;

use std::path::{Path, PathBuf};

use common::{Scratch, assert_code, finding_ids, json, repo, stderr, stdout};
use serde_json::Value;

const SWEEP: &str = "tests/fixtures/wandb/sweep/wandb";

/// Copies a folder, keeping symlinks as symlinks (`latest-run`).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let kind = entry.file_type().unwrap();
        let target = to.join(entry.file_name());
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The sweep copied to `wandb/` in a scratch folder.
fn sweep() -> Scratch {
    let s = Scratch::new();
    copy_tree(&repo().join(SWEEP), &s.path("wandb"));
    s
}

/// The run folder (relative to the scratch folder) whose id is `id`.
fn run_dir(s: &Scratch, id: &str) -> String {
    let mut names: Vec<String> = std::fs::read_dir(s.path("wandb"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("offline-run-") && n.ends_with(&format!("-{id}")))
        .collect();
    assert_eq!(names.len(), 1, "{id}: {names:?}");
    format!("wandb/{}", names.remove(0))
}

/// The `.wandb` file of run `id`, relative to the scratch folder.
fn run_file(s: &Scratch, id: &str) -> String {
    format!("{}/run-{id}.wandb", run_dir(s, id))
}

fn diagnose(s: &Scratch, metrics: &str) -> Value {
    let out = s.retune(&["diagnose", "--format", "json", "--metrics", metrics]);
    assert_code(&out, 0);
    json(&out)
}

fn series_names(d: &Value) -> Vec<String> {
    d["metrics"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["original"].as_str().unwrap().to_string())
        .collect()
}

/// Byte offsets where the records of an intact `.wandb` file start (the LevelDB-log
/// framing walked by its chunk headers, padding skipped), and where it ends.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    const BLOCK: usize = 32 * 1024;
    let mut at = 7;
    let mut starts = Vec::new();
    while at < bytes.len() {
        if BLOCK - at % BLOCK < 7 {
            at += BLOCK - at % BLOCK;
            continue;
        }
        let length = u16::from_le_bytes([bytes[at + 4], bytes[at + 5]]) as usize;
        let kind = bytes[at + 6];
        if kind == 1 || kind == 2 {
            starts.push(at);
        }
        at += 7 + length;
    }
    starts
}

#[test]
fn a_diverging_run_is_diagnosed_from_its_wandb_file_with_its_recorded_config() {
    let s = sweep();
    let folder = run_dir(&s, "lr0p5");
    for metrics in [folder.clone(), run_file(&s, "lr0p5")] {
        let d = diagnose(&s, &metrics);
        assert_eq!(d["metrics"]["format"], "wandb", "{metrics}");
        assert_eq!(d["metrics"]["epochs"], 12);
        // history only: no system metric (the file holds stats records), no W&B key
        assert_eq!(
            series_names(&d),
            ["loss", "val_loss", "accuracy", "val_accuracy"],
            "{d:#}"
        );
        assert!(d["metrics"].get("warnings").is_none(), "{d:#}");
        let ids = finding_ids(&d);
        assert!(ids.contains(&"divergence".to_string()), "{ids:?}");
    }
    // The recorded config feeds the config checks: the learning rate is the run's.
    let d = diagnose(&s, &folder);
    assert_eq!(d["config"], run_file(&s, "lr0p5"));
    assert_eq!(d["facts"]["optimizer"], "adam");
    assert_eq!(d["facts"]["classes"]["source"], "config `num_classes`");
    let lr = common::finding(&d, "learning_rate_extreme");
    assert!(
        lr["summary"]
            .as_str()
            .unwrap()
            .contains("learning_rate = 0.5"),
        "{lr:#}"
    );
    // A healthy run of the sweep, which logs no `epoch`: its steps are its epochs.
    let d = diagnose(&s, &run_dir(&s, "lr0p001"));
    assert_eq!(d["metrics"]["epochs"], 12);
    let warnings = d["metrics"]["warnings"].to_string();
    assert!(
        warnings.contains("each W&B step is read as one epoch"),
        "{warnings}"
    );
    assert!(!finding_ids(&d).contains(&"divergence".to_string()));
    // latest-run is the newest run folder
    let latest = diagnose(&s, "wandb/latest-run");
    assert_eq!(latest["metrics"]["epochs"], 12);
}

#[test]
fn suggest_without_a_config_advises_and_writes_nothing() {
    let s = sweep();
    let before = s.files();
    let folder = run_dir(&s, "lr0p5");
    let out = s.retune(&[
        "suggest",
        "--metrics",
        &folder,
        "--provider",
        "rules",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let d = json(&out);
    assert_eq!(d["changes"], Value::Array(vec![]), "{d:#}");
    let advice: Vec<String> = d["advice"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        advice[0].starts_with("W&B run: its config is the one W&B recorded"),
        "{advice:?}"
    );
    assert!(
        advice
            .iter()
            .any(|a| a.starts_with("set learning_rate to ") && a.contains("(now 0.5)")),
        "{advice:?}"
    );
    assert_eq!(s.files(), before, "nothing written");
    // The text says so too.
    let out = s.retune(&["suggest", "--metrics", &folder, "--provider", "rules"]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(text.contains("advice    W&B run:"), "{text}");
    assert!(
        text.contains("nothing written: a W&B run's recorded config gets advice"),
        "{text}"
    );
    assert_eq!(s.files(), before, "nothing written");
    // Metrics that bring no config still need --config.
    s.write("m.csv", "epoch,loss\n0,1.0\n1,0.9\n");
    let out = s.retune(&["suggest", "--metrics", "m.csv"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("suggest needs --config"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn review_of_a_wandb_folder_is_one_line_per_run_with_sibling_evidence() {
    let s = sweep();
    let out = s.retune(&["review", "wandb", "--format", "json"]);
    assert_code(&out, 1);
    let r = json(&out);
    let runs = r["runs"].as_array().unwrap();
    // four runs: latest-run is one of them, not a fifth
    assert_eq!(runs.len(), 4, "{r:#}");
    let names: Vec<&str> = runs.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(
        names.iter().all(|n| n.starts_with("wandb/offline-run-")),
        "{names:?}"
    );
    let sick = runs
        .iter()
        .find(|r| r["name"].as_str().unwrap().ends_with("-lr0p5"))
        .unwrap();
    assert_eq!(sick["status"], "critical");
    let divergence = sick["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "divergence")
        .unwrap();
    let siblings = &divergence["evidence"]["siblings"];
    assert_eq!(siblings["parameter"], "learning_rate", "{divergence:#}");
    assert_eq!(siblings["siblings_without_finding"], 3);
    assert_eq!(siblings["their_range"], serde_json::json!([0.001, 0.01]));
    // its advice says the config is W&B's and gives the change
    let advice = sick["advice"].to_string();
    assert!(
        advice.contains("W&B run: its config is the one W&B recorded"),
        "{advice}"
    );
    for run in runs.iter().filter(|r| r != &sick) {
        assert_eq!(run["status"], "healthy", "{run:#}");
        assert_eq!(run["epochs"], 12);
    }
    // The text summary: one line per run.
    let out = s.retune(&["review", "wandb"]);
    let text = stdout(&out);
    for id in ["lr0p5", "lr0p01", "lr0p003", "lr0p001"] {
        assert_eq!(
            text.lines()
                .filter(|l| l.contains(&format!("-{id}")))
                .count(),
            1,
            "{id}:\n{text}"
        );
    }
    // `diagnose` of the whole folder says to name a run or review it.
    let out = s.retune(&["diagnose", "--metrics", "wandb"]);
    assert_code(&out, 2);
    let e = stderr(&out);
    assert!(e.contains("a W&B folder of 4 runs"), "{e}");
    assert!(e.contains("retune review wandb"), "{e}");
}

/// The sick run's file in a scratch folder, changed by `edit`, as a run folder.
fn edited(edit: impl FnOnce(&mut Vec<u8>, &[usize])) -> (Scratch, String, Vec<usize>) {
    let s = Scratch::new();
    let source = Scratch::new();
    copy_tree(&repo().join(SWEEP), &source.path("wandb"));
    let mut bytes = std::fs::read(source.path(&run_file(&source, "lr0p5"))).unwrap();
    let offsets = record_offsets(&bytes);
    edit(&mut bytes, &offsets);
    s.write("run/run-lr0p5.wandb", &bytes);
    (s, "run/run-lr0p5.wandb".into(), offsets)
}

/// The history records (one per epoch in this run) of the sick run that end before
/// `offset`. The client writes a `Record`'s `num` first (field 1, a varint: tag 0x08),
/// then its `history` (field 2, length-delimited: tag 0x12) or another type.
fn epochs_before(offset: usize) -> u64 {
    let s = sweep();
    let bytes = std::fs::read(s.path(&run_file(&s, "lr0p5"))).unwrap();
    let offsets = record_offsets(&bytes);
    let mut n = 0;
    for (i, &start) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).copied().unwrap_or(bytes.len());
        let data = &bytes[start + 7..];
        let after_num = if data[0] == 0x08 {
            1 + data[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1
        } else {
            0
        };
        if end <= offset && data[after_num] == 0x12 {
            n += 1;
        }
    }
    n
}

#[test]
fn a_truncated_record_is_reported_with_its_offset_and_the_records_before_it_are_used() {
    // Cut in the middle of the record that spans the first two blocks (FIRST, then LAST).
    let (s, file, offsets) = edited(|bytes, _| bytes.truncate(32_768 + 100));
    let split = *offsets.iter().rfind(|&&o| o < 32_768).unwrap();
    let out = s.retune(&["diagnose", "--format", "json", "--metrics", &file]);
    assert_code(&out, 0);
    let d = json(&out);
    let warnings = d["metrics"]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = warnings[0].as_str().unwrap();
    let before = offsets.iter().filter(|&&o| o < split).count();
    assert!(
        w.starts_with(&format!("{file}: truncated record at byte {split} (")),
        "{w}"
    );
    assert!(
        w.ends_with(&format!("the {before} records before it were read")),
        "{w}"
    );
    assert_eq!(d["metrics"]["epochs"], epochs_before(split));
    // the same on stderr for a person
    let out = s.retune(&["diagnose", "--metrics", &file]);
    assert!(stderr(&out).contains("warning: run/run-lr0p5.wandb: truncated record at byte"));

    // A run still being written stops at a whole record in its last block: nothing to say.
    let (s, file, offsets) = edited(|bytes, offsets| bytes.truncate(offsets[offsets.len() / 3]));
    let d = json(&s.retune(&["diagnose", "--format", "json", "--metrics", &file]));
    assert!(d["metrics"].get("warnings").is_none(), "{d:#}");
    assert_eq!(
        d["metrics"]["epochs"],
        epochs_before(offsets[offsets.len() / 3])
    );
    // and one whose last record has only its first part written says the file ends early
    let (s, file, _) = edited(|bytes, _| bytes.truncate(32_768));
    let d = json(&s.retune(&["diagnose", "--format", "json", "--metrics", &file]));
    let w = d["metrics"]["warnings"][0].as_str().unwrap().to_string();
    assert!(
        w.contains(
            "(the file ends before its last part: a run still being written, or a file cut short)"
        ),
        "{w}"
    );
}

#[test]
fn a_corrupt_record_is_reported_with_its_offset_and_the_records_before_it_are_used() {
    let target = std::cell::Cell::new(0usize);
    let (s, file, offsets) = edited(|bytes, offsets| {
        // a record in the middle of the run, its data changed after the chunk header
        let at = offsets[offsets.len() / 2];
        target.set(at);
        bytes[at + 20] ^= 0x40;
    });
    let at = target.get();
    let before = offsets.iter().filter(|&&o| o < at).count();
    let out = s.retune(&["diagnose", "--format", "json", "--metrics", &file]);
    assert_code(&out, 0);
    let d = json(&out);
    assert_eq!(
        d["metrics"]["warnings"],
        serde_json::json!([format!(
            "{file}: corrupt record at byte {at} (its checksum does not match); the {before} records before it were read"
        )])
    );
    assert_eq!(d["metrics"]["epochs"], epochs_before(at));

    // a broken record with no history before it is an error, exit 2
    let (s, file, offsets) = edited(|bytes, offsets| bytes[offsets[1] + 9] ^= 0x01);
    let out = s.retune(&["diagnose", "--metrics", &file]);
    assert_code(&out, 2);
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "error: {file}: corrupt record at byte {} (its checksum does not match), with no history value before it",
            offsets[1]
        )
    );
}

#[test]
fn a_file_that_is_not_a_wandb_file_is_an_error_naming_it_and_the_byte() {
    let s = Scratch::new();
    s.write("run/run-x.wandb", "epoch,loss\n0,1.0\n");
    let out = s.retune(&["diagnose", "--metrics", "run/run-x.wandb"]);
    assert_code(&out, 2);
    assert_eq!(
        stderr(&out).trim_end(),
        "error: run/run-x.wandb: not a W&B run file (.wandb): byte 0x65 where `:W&B` belongs at byte 0; a .wandb file starts with `:W&B`, the magic number 0xBEE1 and version 0"
    );
    // the right ident and a wrong magic, then a header cut short
    s.write("run/run-y.wandb", b":W&B\x00\x00\x00");
    let out = s.retune(&["diagnose", "--metrics", "run/run-y.wandb"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains(
            "run/run-y.wandb: not a W&B run file (.wandb): magic number 0x0000 at byte 4"
        ),
        "{}",
        stderr(&out)
    );
    s.write("run/run-z.wandb", b":W&");
    let out = s.retune(&["diagnose", "--metrics", "run/run-z.wandb"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("the file ends after 3 bytes at byte 3"),
        "{}",
        stderr(&out)
    );
    // a CSV read as W&B because the user said so
    s.write("m.csv", "epoch,loss\n0,1.0\n");
    let out = s.retune(&[
        "diagnose",
        "--metrics",
        "m.csv",
        "--metrics-format",
        "wandb",
    ]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("m.csv: not a W&B run file"),
        "{}",
        stderr(&out)
    );
    // and nothing was written anywhere
    assert_eq!(
        s.files(),
        [
            "m.csv",
            "run/run-x.wandb",
            "run/run-y.wandb",
            "run/run-z.wandb"
        ]
    );
}

/// The findings of each run of a sweep, by run id.
fn findings_by_run(s: &Scratch) -> Vec<(String, Vec<String>)> {
    let out = s.retune(&["review", "wandb", "--format", "json"]);
    let r = json(&out);
    let mut runs: Vec<(String, Vec<String>)> = r["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            let name = run["name"].as_str().unwrap();
            let id = name.rsplit('-').next().unwrap().to_string();
            (id, finding_ids(run))
        })
        .collect();
    runs.sort();
    runs
}

#[test]
fn runs_written_now_by_the_pinned_wandb_client_read_as_the_fixtures_do() {
    let python = match std::env::var("RETUNE_TEST_WANDB") {
        Ok(p) if !p.trim().is_empty() => PathBuf::from(p),
        _ => {
            eprintln!(
                "RETUNE_TEST_WANDB is not set: point it at a Python with wandb installed (see .ci/run)"
            );
            return;
        }
    };
    let fresh = Scratch::new();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(&python)
        .arg(repo().join("scripts/wandb-fixtures.py"))
        .arg(fresh.path(""))
        .current_dir(fresh.path(""))
        .env("WANDB_MODE", "offline")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "wandb-fixtures.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "wandb wrote the sweep in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(fresh.path("wandb/latest-run").is_symlink());
    let committed = findings_by_run(&sweep());
    assert_eq!(findings_by_run(&fresh), committed);
    let sick = &committed.iter().find(|(id, _)| id == "lr0p5").unwrap().1;
    assert!(sick.contains(&"divergence".to_string()), "{committed:?}");
    // and the fresh sick run reads as the committed one, series by series
    let d_fresh = diagnose(&fresh, &run_dir(&fresh, "lr0p5"));
    let s = sweep();
    let d_kept = diagnose(&s, &run_dir(&s, "lr0p5"));
    assert_eq!(d_fresh["metrics"]["series"], d_kept["metrics"]["series"]);
}
