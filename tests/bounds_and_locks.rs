//! Through the binary: the parameter space and the history are read within bounds, a long
//! history is read from its end, and `review --suggest` takes the lock `suggest` takes.

mod common;

use common::{Scratch, assert_code, json, stderr};
use serde_json::Value;

/// Real Keras runs copied as a team's experiments folder: `exp/<scenario>/`.
fn experiments(scenarios: &[&str]) -> Scratch {
    let s = Scratch::new();
    for scenario in scenarios {
        s.copy_example(
            &format!("keras/{scenario}/config.json"),
            &format!("exp/{scenario}/config.json"),
        );
        s.copy_example(
            &format!("keras/{scenario}/history.csv"),
            &format!("exp/{scenario}/history.csv"),
        );
    }
    s
}

/// `retune` as a child process in the scratch dir, with what `Scratch::command` sets: a
/// fixed clock and nothing of the developer's own setup.
fn spawnable(s: &Scratch, time: &str) -> std::process::Command {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("retune"));
    command
        .current_dir(s.dir.path())
        .env("SOURCE_DATE_EPOCH", time)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("RETUNE_MODEL")
        .env("XDG_CONFIG_HOME", s.path(".xdg-config"))
        .env("RETUNE_CACHE_DIR", s.path(".cache"));
    command
}

fn diverging_run() -> Scratch {
    let s = Scratch::new();
    s.copy_example("keras/diverging/config.json", "config.json");
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s
}

#[test]
fn a_space_file_that_is_not_a_bounded_regular_file_is_refused_by_name() {
    let s = diverging_run();
    let suggest = |space: &str| {
        s.retune(&[
            "suggest",
            "-c",
            "config.json",
            "-m",
            "history.csv",
            "--space",
            space,
            "--dry-run",
        ])
    };
    #[cfg(unix)]
    {
        let out = suggest("/dev/zero");
        assert_code(&out, 2);
        assert!(
            stderr(&out).contains("/dev/zero: is a character device"),
            "{}",
            stderr(&out)
        );
    }
    // Larger than MAX_SPACE_BYTES (1 MiB): refused before it is read.
    let big = s.path("space.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1024 * 1024 + 1)
        .unwrap();
    let out = suggest("space.toml");
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("space.toml") && err.contains("at most 1 MiB"),
        "{err}"
    );
    assert!(!s.path("reports").exists());
}

/// A history `n` adjustments long, grown by hand from the two lines one real
/// `suggest --in-place` writes (the pending adjustment and its `applied` follow-up), so
/// the test stays fast: each copy has its own id, and all but the newest were made at
/// epoch 0, long out of their cooldown. The config holds the newest one's value.
fn long_history(s: &Scratch, n: usize) {
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--history",
        "h.jsonl",
        "--in-place",
        "--provider",
        "rules",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let written: Vec<Value> = s
        .read("h.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written.len(), 2, "{written:?}");
    let (adjustment, applied) = (&written[0], &written[1]);
    assert!(
        adjustment["changes"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );
    let mut text = String::new();
    for i in 0..n {
        let id = format!("adj-{i:05}");
        let mut copy = adjustment.clone();
        copy["adjustment_id"] = Value::from(id.as_str());
        copy["time"] = Value::from(format!("2026-01-01T{:02}:{:02}:00Z", i / 60, i % 60));
        if i + 1 < n {
            copy["epoch"] = Value::from(0);
        }
        let mut follow = applied.clone();
        follow["adjustment_id"] = Value::from(id.as_str());
        text.push_str(&format!("{copy}\n{follow}\n"));
    }
    s.write("h.jsonl", text);
}

#[test]
fn a_long_history_is_read_from_its_end_and_listed_whole() {
    let s = diverging_run();
    long_history(&s, 1000);
    // `retune history` lists every adjustment.
    let out = s.retune(&["history", "h.jsonl", "--format", "json"]);
    assert_code(&out, 0);
    assert_eq!(json(&out).as_array().map(Vec::len), Some(1000));
    // A decision reads the latest ones: the newest change, at the run's last epoch, is
    // cooling down, so the rate is not cut again (the oldest ones, at epoch 0, would
    // not hold it).
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--history",
        "h.jsonl",
        "--dry-run",
        "--provider",
        "rules",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let decision = json(&out);
    let changed: Vec<&str> = decision["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["parameter"].as_str())
        .collect();
    assert!(!changed.contains(&"optimizer.lr"), "{decision:#}");
    // The same history with its newest adjustment dropped: nothing holds the rate.
    let text = s.read("h.jsonl");
    let kept: Vec<&str> = text.lines().take(2 * 999).collect();
    s.write("h.jsonl", kept.join("\n") + "\n");
    let mut latest = decision.clone();
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--history",
        "h.jsonl",
        "--dry-run",
        "--provider",
        "rules",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    latest["changes"] = json(&out)["changes"].clone();
    assert_ne!(latest["changes"], decision["changes"], "{latest:#}");
}

#[test]
fn a_history_line_past_the_limit_is_named_with_its_number() {
    let s = diverging_run();
    long_history(&s, 3);
    // Six lines now: the seventh is too long.
    // A last line of MAX_LINE_BYTES + 1 zero bytes (9 MiB + 1).
    let path = s.path("h.jsonl");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len + 9 * 1024 * 1024 + 1)
        .unwrap();
    for args in [
        &["history", "h.jsonl"][..],
        &[
            "suggest",
            "-c",
            "config.json",
            "-m",
            "history.csv",
            "--history",
            "h.jsonl",
            "--dry-run",
        ][..],
    ] {
        let out = s.retune(args);
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains("h.jsonl:7:") && err.contains("MAX_LINE_BYTES"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn review_suggest_waits_for_the_lock_suggest_takes() {
    let s = experiments(&["diverging"]);
    // Hold the lock `suggest --in-place` holds on the run's folder.
    let dir = std::fs::File::open(s.path("exp/diverging")).unwrap();
    dir.lock().unwrap();
    let mut child = spawnable(&s, "1790000000")
        .args(["review", "exp", "--suggest", "--format", "json"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // However long the review takes to get there, it writes nothing while the lock is
    // held: after a while it is still waiting, with no history line.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the review did not wait"
    );
    assert!(!s.path("reports/runs/exp/diverging/history.jsonl").exists());
    dir.unlock().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        s.read("reports/runs/exp/diverging/history.jsonl")
            .lines()
            .count(),
        1
    );
}

#[test]
fn two_concurrent_reviews_write_one_after_the_other() {
    let s = experiments(&["diverging", "overfitting", "healthy"]);
    let children: Vec<_> = ["1790000000", "1790000060"]
        .iter()
        .map(|time| {
            spawnable(&s, time)
                .args(["review", "exp", "--suggest", "--format", "json"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        assert_code(out, 1);
        assert_eq!(json(out)["totals"]["runs"], 3);
    }
    for run in ["diverging", "overfitting"] {
        let history = s.read(&format!("reports/runs/exp/{run}/history.jsonl"));
        let ids: Vec<String> = history
            .lines()
            .map(|l| {
                let entry: Value = serde_json::from_str(l).expect("every line whole");
                entry["adjustment_id"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 2, "{run}: {history}");
        assert_ne!(ids[0], ids[1]);
        let adjusted: Value =
            serde_json::from_str(&s.read(&format!("exp/{run}/config.retuned.json"))).unwrap();
        assert!(adjusted.is_object());
        // Every file of both reviews is whole and where it belongs: no temporary left.
        let left: Vec<String> = s
            .files()
            .into_iter()
            .filter(|f| f.contains(".retune-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
