//! The error messages users see, through the binary: each bad input exits 2 and its
//! stderr is snapshotted whole, so a change to how errors are built (a location type
//! instead of `file:line:col` in the path) cannot change a word of what is printed. The
//! scratch folder's path is filtered out; the files are given by absolute path so the
//! filter has something to do.

mod common;

use common::{Scratch, assert_code, stderr};

const CONFIG: &str = "{\n  \"learning_rate\": 0.001,\n  \"batch_size\": 32\n}\n";
const METRICS: &str = "epoch,loss,val_loss\r\n0,1.0,1.1\r\n1,0.8,0.9\r\n";

/// The stderr of `retune ARGS`, which must exit 2, with the scratch path as `[TMP]`. File
/// names, and names of what the test wrote, are given as absolute paths in the scratch.
fn stderr_of(s: &Scratch, args: &[&str]) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            let file = [".json", ".jsonl", ".csv", ".toml"]
                .iter()
                .any(|ext| a.ends_with(ext));
            if file || s.path(a).exists() {
                s.path(a).display().to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let out = s.command().args(&args).output().expect("retune runs");
    assert_code(&out, 2);
    let root = s.dir.path().display().to_string();
    let err = stderr(&out).replace(&root, "[TMP]");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn suggest<'a>(config: &'a str, metrics: &'a str) -> Vec<&'a str> {
    vec!["suggest", "--config", config, "--metrics", metrics]
}

#[test]
fn bad_json_config_names_line_and_column() {
    let s = Scratch::new();
    s.write("m.csv", METRICS);
    s.write(
        "c.json",
        "{\n  \"learning_rate\": 0.001,\n  \"batch_size\": ,\n}\n",
    );
    insta::assert_snapshot!(stderr_of(&s, &suggest("c.json", "m.csv")));
}

#[test]
fn bad_csv_cell_names_its_line() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write("m.csv", "epoch,loss,val_loss\n0,1.0,1.1\n1,abc,0.9\n");
    insta::assert_snapshot!(stderr_of(&s, &suggest("c.json", "m.csv")));
}

#[test]
fn missing_file() {
    let s = Scratch::new();
    s.write("m.csv", METRICS);
    insta::assert_snapshot!(stderr_of(&s, &suggest("nope.json", "m.csv")));
}

#[test]
fn bad_toml_space_file_names_line_and_column() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write("m.csv", METRICS);
    s.write("space.toml", "[[param]]\nname = \"lr\"\nkeys = [\"lr\"\n");
    let mut args = suggest("c.json", "m.csv");
    args.extend(["--space", "space.toml"]);
    insta::assert_snapshot!(stderr_of(&s, &args));
}

#[test]
fn a_directory_given_as_config() {
    let s = Scratch::new();
    s.write("m.csv", METRICS);
    s.write("run/notes.txt", "x");
    insta::assert_snapshot!(stderr_of(&s, &suggest("run", "m.csv")));
}

#[test]
fn unknown_metrics_format() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write("m.csv", METRICS);
    let mut args = suggest("c.json", "m.csv");
    args.extend(["--metrics-format", "excel"]);
    insta::assert_snapshot!(stderr_of(&s, &args));
}

#[test]
fn bad_history_line_names_line_and_column() {
    let s = Scratch::new();
    s.write("m.csv", METRICS);
    s.write("h.jsonl", "\n{\"id\": }\n");
    insta::assert_snapshot!(stderr_of(&s, &["history", "h.jsonl", "--metrics", "m.csv"]));
}
