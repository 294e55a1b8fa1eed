//! `retune revert` and `retune history` through the binary: a run can live with its
//! adjustments, and undo them.

mod common;

use common::{Scratch, assert_code, json, stderr, stdout};

fn diverging_in(s: &Scratch) -> String {
    s.copy_example("keras/diverging/history.csv", "history.csv");
    let original = std::fs::read_to_string(common::example("keras/diverging/config.json")).unwrap();
    s.write("config.json", &original);
    original
}

#[test]
fn an_in_place_adjustment_is_reverted_byte_for_byte() {
    let s = Scratch::new();
    let original = diverging_in(&s);
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--in-place",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let id = json(&out)["adjustment_id"].as_str().unwrap().to_string();
    assert_ne!(s.read("config.json"), original);

    let out = s.retune(&[
        "revert",
        "--history",
        "reports/history.jsonl",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let r = json(&out);
    assert_eq!(r["reverted"], serde_json::json!([id]));
    assert_eq!(s.read("config.json"), original);

    // The history shows the adjustment and its revert; the next revert has nothing left.
    let text = stdout(&s.retune(&["history", "reports/history.jsonl"]));
    assert!(
        text.contains(&id) && text.contains("optimizer.lr") && text.contains("0.42 → 0.042"),
        "{text}"
    );
    assert!(text.contains(&format!("revert of {id}")), "{text}");
    let out = s.retune(&["revert", "--history", "reports/history.jsonl"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no adjustment that changed the config"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_separate_output_is_reverted_by_splicing_back_the_old_values() {
    let s = Scratch::new();
    let original = diverging_in(&s);
    assert_code(
        &s.retune(&["suggest", "-c", "config.json", "-m", "history.csv"]),
        0,
    );
    assert!(s.read("config.retuned.json").contains("\"lr\": 0.042"));
    assert_code(
        &s.retune(&["revert", "--history", "reports/history.jsonl"]),
        0,
    );
    assert_eq!(s.read("config.retuned.json"), original);
    assert_eq!(
        s.read("config.json"),
        original,
        "the input was never touched"
    );
}

#[test]
fn a_hand_edit_since_the_adjustment_is_not_overwritten_without_force() {
    let s = Scratch::new();
    diverging_in(&s);
    assert_code(
        &s.retune(&["suggest", "-c", "config.json", "-m", "history.csv"]),
        0,
    );
    let edited = s
        .read("config.retuned.json")
        .replace("\"lr\": 0.042", "\"lr\": 0.05");
    s.write("config.retuned.json", &edited);
    let out = s.retune(&["revert", "--history", "reports/history.jsonl"]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("config.retuned.json") && err.contains("--force") && err.contains("0.05"),
        "{err}"
    );
    assert_eq!(s.read("config.retuned.json"), edited, "nothing written");
    assert_code(
        &s.retune(&["revert", "--history", "reports/history.jsonl", "--force"]),
        0,
    );
    assert!(s.read("config.retuned.json").contains("\"lr\": 0.42"));
}

#[test]
fn an_unknown_id_lists_the_latest() {
    let s = Scratch::new();
    diverging_in(&s);
    let out = s.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--format",
        "json",
    ]);
    let id = json(&out)["adjustment_id"].as_str().unwrap().to_string();
    let out = s.retune(&[
        "revert",
        "--history",
        "reports/history.jsonl",
        "--to",
        "adj-nope",
    ]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains(&id), "{}", stderr(&out));
}

#[test]
fn history_says_what_followed_when_given_the_metrics() {
    let s = Scratch::new();
    diverging_in(&s);
    assert_code(
        &s.retune(&["suggest", "-c", "config.json", "-m", "history.csv"]),
        0,
    );
    let out = s.retune(&[
        "history",
        "reports/history.jsonl",
        "--metrics",
        "history.csv",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let rows = json(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["changes"][0]["parameter"], "optimizer.lr");
    assert!(
        rows[0]["followed_by"].as_str().unwrap().contains("(now)"),
        "{rows:#}"
    );
}
