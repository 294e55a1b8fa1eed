//! Bad input, through the binary: each case exits 2, names the file (with line and
//! column for JSON), never panics, and writes nothing.

mod common;

use common::{Scratch, assert_code, stderr};

const CONFIG: &str = "{\n  \"learning_rate\": 0.001,\n  \"batch_size\": 32\n}\n";
const METRICS: &str = "epoch,loss,val_loss\r\n0,1.0,1.1\r\n1,0.8,0.9\r\n";

/// Runs `suggest` and checks the common contract for bad input.
#[track_caller]
fn rejects(s: &Scratch, args: &[&str], names: &str, says: &str) {
    let before = s.files();
    let out = s.retune(args);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(names), "stderr should name {names}: {err}");
    assert!(err.contains(says), "stderr should say {says:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(s.files(), before, "nothing may be written");
}

fn suggest<'a>(config: &'a str, metrics: &'a str) -> Vec<&'a str> {
    vec!["suggest", "--config", config, "--metrics", metrics]
}

#[test]
fn missing_files() {
    let s = Scratch::new();
    s.write("m.csv", METRICS);
    s.write("c.json", CONFIG);
    rejects(
        &s,
        &suggest("nope.json", "m.csv"),
        "nope.json",
        "no such file",
    );
    rejects(
        &s,
        &suggest("c.json", "nope.csv"),
        "nope.csv",
        "no such file",
    );
}

#[test]
fn broken_json_gives_line_and_column() {
    let s = Scratch::new();
    s.write("m.csv", METRICS);
    s.write(
        "c.json",
        "{\n  \"learning_rate\": 0.001,\n  \"batch_size\": ,\n}\n",
    );
    rejects(
        &s,
        &suggest("c.json", "m.csv"),
        "c.json:3:17",
        "expected value",
    );
}

#[test]
fn a_config_that_is_not_an_object() {
    let s = Scratch::new();
    s.write("m.csv", METRICS);
    s.write("c.json", "[0.001, 32]");
    rejects(
        &s,
        &suggest("c.json", "m.csv"),
        "c.json",
        "must be a JSON object, found an array",
    );
}

#[test]
fn an_empty_metrics_file() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write("m.csv", "");
    rejects(&s, &suggest("c.json", "m.csv"), "m.csv", "empty");
}

#[test]
fn a_file_that_is_not_metrics() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write(
        "notes.txt",
        "Meeting notes\nWe should train the model again tomorrow.\n",
    );
    rejects(
        &s,
        &suggest("c.json", "notes.txt"),
        "notes.txt",
        "not a metrics format",
    );
    // A config given where metrics belong.
    rejects(
        &s,
        &suggest("c.json", "c.json"),
        "c.json",
        "looks like a training config",
    );
}

#[test]
fn binary_garbage() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    let garbage: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.write("m.bin", &garbage);
    rejects(&s, &suggest("c.json", "m.bin"), "m.bin", "binary");
    s.write("c.bin", &garbage);
    s.write("m.csv", METRICS);
    rejects(&s, &suggest("c.bin", "m.csv"), "c.bin", "not UTF-8");
}

#[test]
fn out_may_not_be_the_input_config() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write("m.csv", METRICS);
    let mut args = suggest("c.json", "m.csv");
    args.extend(["--out", "./c.json"]);
    rejects(&s, &args, "c.json", "--in-place");
}

#[test]
fn a_broken_space_file_is_named() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write("m.csv", METRICS);
    s.write("space.toml", "[[param]]\nname = \"lr\"\nkeys = [\"lr\"\n");
    let mut args = suggest("c.json", "m.csv");
    args.extend(["--space", "space.toml"]);
    rejects(&s, &args, "space.toml:", "");
}

#[test]
fn usage_errors_exit_2() {
    let s = Scratch::new();
    let out = s.retune(&["suggest", "--metrics", "m.csv"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("--config"));
    let out = s.retune(&["diagnose", "--metrics", "m.csv", "--num-classes", "1"]);
    assert_code(&out, 2);
}
