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
    // Applied by hand: the history counts a change once the config has it.
    std::fs::copy(s.path("config.retuned.json"), s.path("config.json")).unwrap();
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
        rows[0]["followed_by"]
            .as_str()
            .unwrap()
            .contains("(now, epoch 12)"),
        "{rows:#}"
    );
}

/// The history as a kill between the pending line and the rename leaves it: the pending
/// line with the old text, no `applied` line after it.
fn without_applied_lines(history: &str) -> String {
    history
        .lines()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["state"] != "applied")
        .map(|l| format!("{l}\n"))
        .collect()
}

const IN_PLACE: &[&str] = &[
    "suggest",
    "-c",
    "config.json",
    "-m",
    "history.csv",
    "--in-place",
    "--format",
    "json",
];

#[test]
fn a_pending_line_whose_config_was_not_replaced_is_not_an_adjustment() {
    let s = Scratch::new();
    let original = diverging_in(&s);
    let first = s.retune(IN_PLACE);
    assert_code(&first, 0);
    let history = s.read("reports/history.jsonl");
    let pending: serde_json::Value = serde_json::from_str(history.lines().next().unwrap()).unwrap();
    assert_eq!(pending["state"], "pending", "{history}");
    assert_eq!(
        pending["config_before"],
        serde_json::Value::from(original.as_str())
    );

    // Killed before the rename: the config still has the old text.
    s.write("config.json", &original);
    s.write("reports/history.jsonl", without_applied_lines(&history));
    let out = s.retune(&["revert", "--history", "reports/history.jsonl"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("no adjustment that changed the config"));
    // No cooldown from a change that never happened: it is made now.
    let again = s.retune(IN_PLACE);
    assert_code(&again, 0);
    assert_eq!(json(&again)["changes"].as_array().unwrap().len(), 1);
}

#[test]
fn a_pending_line_whose_config_was_replaced_is_reverted() {
    let s = Scratch::new();
    let original = diverging_in(&s);
    assert_code(&s.retune(IN_PLACE), 0);
    let adjusted = s.read("config.json");
    // Killed after the rename, before the `applied` line.
    let history = s.read("reports/history.jsonl");
    s.write("reports/history.jsonl", without_applied_lines(&history));
    // It counts: the next call leaves the rate to cool down.
    let again = json(&s.retune(IN_PLACE));
    assert_eq!(again["changes"], serde_json::json!([]), "{again:#}");
    assert_eq!(s.read("config.json"), adjusted);
    let out = s.retune(&["revert", "--history", "reports/history.jsonl"]);
    assert_code(&out, 0);
    assert_eq!(s.read("config.json"), original);
}

#[test]
fn a_change_the_trainer_could_not_apply_live_starts_no_cooldown_and_shows_no_effect() {
    let s = Scratch::new();
    diverging_in(&s);
    let first = s.retune(IN_PLACE);
    assert_code(&first, 0);
    let id = json(&first)["adjustment_id"].as_str().unwrap().to_string();
    // A parameter the adjustment did not change is refused, naming what it changed.
    let out = s.retune(&[
        "applied",
        "--history",
        "reports/history.jsonl",
        &id,
        "dropout",
    ]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("optimizer.lr"), "{}", stderr(&out));
    let out = s.retune(&["applied", "--history", "reports/history.jsonl", "adj-nope"]);
    assert_code(&out, 2);
    // The trainer took none of it.
    let out = s.retune(&["applied", "--history", "reports/history.jsonl", &id]);
    assert_code(&out, 0);
    assert!(
        stdout(&out).contains("applied live: none; not applied: optimizer.lr"),
        "{}",
        stdout(&out)
    );
    let text = stdout(&s.retune(&["history", "reports/history.jsonl"]));
    assert!(!text.contains("0.42 → 0.042"), "{text}");
    // No cooldown: the next call's report does not say the rate is cooling down.
    let again = json(&s.retune(IN_PLACE));
    let report = s.read(again["report"].as_str().unwrap());
    assert!(!report.contains("Cooling down"), "{report}");
    // The config file did get the text: revert still puts it back.
    let out = s.retune(&["revert", "--history", "reports/history.jsonl", "--to", &id]);
    assert_code(&out, 0);
}
