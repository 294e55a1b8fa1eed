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

/// `rejects`, with a deadline: a read that blocks (a pipe with no writer) or never ends
/// (`/dev/zero`) fails the test instead of hanging it.
#[track_caller]
fn rejects_at_once(s: &Scratch, args: &[&str], names: &str, says: &str) {
    let before = s.files();
    let out = s
        .command()
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .expect("retune runs");
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains(names), "stderr should name {names}: {err}");
    assert!(err.contains(says), "stderr should say {says:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(s.files(), before, "nothing may be written");
}

/// Every `--metrics-format` a file can be forced to.
const FORMATS: [&str; 8] = [
    "snapshot",
    "keras-history",
    "keras-csv",
    "keras-log",
    "lightning-csv",
    "hf-trainer-state",
    "json-lines",
    "tensorboard",
];

#[test]
fn devices_and_pipes_are_refused_before_they_are_read() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    s.write("m.csv", METRICS);
    let fifo = s.path("pipe.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A pipe nobody writes to would block the read forever; /dev/zero never ends.
    for format in FORMATS {
        for input in ["/dev/zero", "pipe.csv"] {
            let mut args = suggest("c.json", input);
            args.extend(["--metrics-format", format]);
            let kind = if input == "pipe.csv" {
                "named pipe"
            } else {
                "character device"
            };
            rejects_at_once(&s, &args, input, kind);
        }
    }
    rejects_at_once(
        &s,
        &suggest("c.json", "pipe.csv"),
        "pipe.csv",
        "not a regular file",
    );
    rejects_at_once(
        &s,
        &suggest("/dev/zero", "m.csv"),
        "/dev/zero",
        "not a regular file",
    );
    rejects_at_once(
        &s,
        &suggest("pipe.csv", "m.csv"),
        "pipe.csv",
        "named pipe (FIFO)",
    );
    rejects_at_once(
        &s,
        &["diagnose", "--metrics", "pipe.csv"],
        "pipe.csv",
        "not a regular file",
    );
}

#[test]
fn a_2_gb_file_in_any_forced_format_is_refused_or_read_in_bounded_memory() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    // Sparse: two gigabytes of zeros that take no disk.
    let big = std::fs::File::create(s.path("big.dat")).unwrap();
    big.set_len(2 << 30).unwrap();
    drop(big);
    for (format, says) in [
        (
            "snapshot",
            "is 2 GiB; a JSON snapshot is one object of current values",
        ),
        ("keras-history", "big.dat:1:1"),
        ("keras-csv", "big.dat:1: a row longer than 1 MiB"),
        ("lightning-csv", "big.dat:1: a row longer than 1 MiB"),
        ("hf-trainer-state", "big.dat:1:1"),
        ("json-lines", "line 1 is longer than"),
        ("tensorboard", "corrupt record at byte 0"),
    ] {
        let mut args = suggest("c.json", "big.dat");
        args.extend(["--metrics-format", format]);
        rejects_at_once(&s, &args, "big.dat", says);
    }
    // A config is read whole: refused by its size, before a byte is read.
    rejects_at_once(
        &s,
        &suggest("big.dat", "big.dat"),
        "big.dat",
        "is 2 GiB; a training config is read whole, and retune reads at most 4 MiB",
    );
}

#[test]
fn oversize_headers_rows_and_strings_are_refused_naming_the_limit() {
    let s = Scratch::new();
    s.write("c.json", CONFIG);
    // A 10 MB header: one name run on without a break, then a million short names.
    let mut long = "epoch,".to_string();
    long.push_str(&"a".repeat(10 << 20));
    long.push_str("\r\n0,1\r\n");
    s.write("long.csv", &long);
    rejects_at_once(
        &s,
        &suggest("c.json", "long.csv"),
        "long.csv:1",
        "a row longer than 1 MiB",
    );
    let wide: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
    s.write(
        "wide.csv",
        format!("epoch,loss,{}\n0,1.0\n", wide.join(",")),
    );
    rejects_at_once(
        &s,
        &suggest("c.json", "wide.csv"),
        "wide.csv:1",
        "5002 columns; retune reads at most 4096",
    );
    // One string as long as a file: read, it would be held twice.
    s.write(
        "snap.json",
        format!(
            "{{\"epoch\": 1, \"loss\": 0.5, \"note\": \"{}\"}}",
            "x".repeat(3 << 20)
        ),
    );
    rejects_at_once(
        &s,
        &suggest("c.json", "snap.json"),
        "snap.json",
        "a JSON string (a key or a text value) longer than 1 MiB, starting at byte 34",
    );
    s.write(
        "c.json",
        format!(
            "{{\"learning_rate\": 0.001, \"pad\": \"{}\"}}",
            " ".repeat(5 << 20)
        ),
    );
    rejects_at_once(
        &s,
        &suggest("c.json", "snap.json"),
        "c.json",
        "is 5.0 MiB; a training config is read whole, and retune reads at most 4 MiB",
    );
}

#[test]
fn a_key_given_twice_in_a_keras_history_keeps_the_last_list() {
    let s = Scratch::new();
    // Python's json.load keeps the second "loss": a run that improved steadily. Joined,
    // the two lists would be one 6-epoch series that jumps back up at epoch 4.
    s.write(
        "history.json",
        r#"{"loss": [2.0, 1.5, 1.2], "val_loss": [2.1, 1.6, 1.3], "loss": [0.9, 0.8, 0.7]}"#,
    );
    let out = s.retune(&["diagnose", "--metrics", "history.json", "--format", "json"]);
    assert_code(&out, 0);
    let doc = common::json(&out);
    let series = doc["metrics"]["series"].as_array().unwrap();
    let loss = series.iter().find(|s| s["name"] == "loss").unwrap();
    assert_eq!(loss["epochs"], 3, "{loss}");
    assert_eq!(loss["last"], 0.7, "{loss}");
    assert_eq!(doc["metrics"]["rows"], 3);
    let warnings = doc["metrics"]["warnings"].to_string();
    assert!(
        warnings.contains("key \\\"loss\\\" is given twice in one object; kept the last value"),
        "{warnings}"
    );
    // The same in one JSON Lines row: the last value, not the mean of both.
    s.write(
        "m.jsonl",
        "{\"epoch\": 1, \"loss\": 5.0, \"loss\": 1.0}\n{\"epoch\": 2, \"loss\": 0.5}\n",
    );
    let out = s.retune(&["diagnose", "--metrics", "m.jsonl", "--format", "json"]);
    assert_code(&out, 0);
    let doc = common::json(&out);
    let warnings = doc["metrics"]["warnings"].to_string();
    assert!(warnings.contains("(line 1)"), "{warnings}");
    assert!(stderr(&out).contains("warning: key \"loss\" is given twice"));
}

#[test]
fn a_json_lines_row_nested_100000_deep_is_named_not_dropped_silently() {
    let s = Scratch::new();
    let deep = format!("{}1{}", "{\"a\": ".repeat(100_000), "}".repeat(100_000));
    s.write(
        "m.jsonl",
        format!(
            "{{\"epoch\": 1, \"loss\": 1.0}}\n{{\"epoch\": 2, \"loss\": {deep}}}\n{{\"epoch\": 3, \"loss\": 0.8}}\n"
        ),
    );
    let out = s.retune(&["diagnose", "--metrics", "m.jsonl"]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains(
            "warning: 1 row gave no metric value and added nothing (line 2); on line 2, \"loss\" holds a list, an object or a bool, not a number"
        ),
        "{err}"
    );
    // and a row that is nothing but nesting, with no stack overflow on the way
    s.write(
        "m.jsonl",
        format!("{{\"epoch\": 1, \"loss\": 1.0}}\n{deep}\n"),
    );
    let out = s.retune(&["diagnose", "--metrics", "m.jsonl"]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("(line 2); on line 2, \"a\" holds"),
        "{}",
        stderr(&out)
    );
}
