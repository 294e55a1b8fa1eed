//! What people read, snapshotted so that a change to it is a reviewed diff: the report of
//! the bundled seed examples and of a real diverging run, and the help texts.

mod common;

use common::{Scratch, assert_code};

/// Runs suggest on an example copied into a scratch dir and returns the report text.
fn report(example: &str, metrics: &str, extra: &[&str]) -> String {
    let (s, decision) = common::suggest(example, metrics, extra);
    s.read(decision["report"].as_str().expect("report path"))
}

#[test]
fn seed003_report() {
    insta::assert_snapshot!(report("seed003", "metrics.json", &[]));
}

#[test]
fn seed000_report() {
    insta::assert_snapshot!(report("seed000", "training.log", &[]));
}

#[test]
fn diverging_report() {
    insta::assert_snapshot!(report("keras/diverging", "history.csv", &[]));
}

#[test]
fn seed003_report_in_chinese() {
    insta::assert_snapshot!(report("seed003", "metrics.json", &["--lang", "zh"]));
}

#[test]
fn help_texts() {
    let s = Scratch::new();
    for args in [
        &["--help"][..],
        &["suggest", "--help"],
        &["diagnose", "--help"],
        &["review", "--help"],
    ] {
        let out = s.retune(args);
        assert_code(&out, 0);
        let name = format!("help_{}", args.join("_").replace("--", ""));
        insta::assert_snapshot!(name, common::stdout(&out));
    }
}
