//! A small builder so each end-to-end test is a few lines: a scratch directory, files
//! copied or written into it, and the real `retune` binary run inside it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// The repository root, where configs/examples lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(relative: &str) -> PathBuf {
    repo().join("configs/examples").join(relative)
}

pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` at `relative`, creating folders.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, contents).expect("write");
        path
    }

    /// Copies a file from configs/examples into the scratch directory.
    pub fn copy_example(&self, from: &str, to: &str) -> PathBuf {
        let bytes = std::fs::read(example(from)).unwrap_or_else(|e| panic!("{from}: {e}"));
        self.write(to, bytes)
    }

    /// Copies a folder of configs/examples, with everything under it, to `to`.
    pub fn copy_example_dir(&self, from: &str, to: &str) {
        let root = example(from);
        let mut files = Vec::new();
        walk(&root, &root, &mut files);
        for rel in files {
            self.copy_example(&format!("{from}/{rel}"), &format!("{to}/{rel}"));
        }
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
    }

    /// Every file under the scratch directory, relative, sorted.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.dir.path(), self.dir.path(), &mut out);
        out.sort();
        out
    }

    /// The `retune` binary set to run inside the scratch directory, with a fixed clock and
    /// nothing from the developer's own setup: no endpoint, key, config file or cache.
    pub fn command(&self) -> Command {
        let mut command = Command::cargo_bin("retune").expect("binary built");
        command
            .current_dir(self.dir.path())
            .env("SOURCE_DATE_EPOCH", "1790000000")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("RETUNE_MODEL")
            .env("XDG_CONFIG_HOME", self.path(".xdg-config"))
            .env("RETUNE_CACHE_DIR", self.path(".cache"));
        command
    }

    /// `retune ARGS` run inside the scratch directory.
    pub fn retune(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("retune runs")
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(
                path.strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string(),
            );
        }
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts an exit code and says what the process printed when it differs.
#[track_caller]
pub fn assert_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", stdout(output)))
}

/// Copies an example folder's config and metrics into a scratch dir (`run/config.json`,
/// `run/<metrics>`) and runs suggest on them with `--format json` and `extra`, which must
/// succeed; returns the scratch dir and the decision.
pub fn suggest(example: &str, metrics: &str, extra: &[&str]) -> (Scratch, Value) {
    let s = Scratch::new();
    s.copy_example(&format!("{example}/config.json"), "run/config.json");
    s.copy_example(&format!("{example}/{metrics}"), &format!("run/{metrics}"));
    let metrics_path = format!("run/{metrics}");
    let mut args = vec![
        "suggest",
        "--config",
        "run/config.json",
        "--metrics",
        &metrics_path,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = s.retune(&args);
    assert_code(&out, 0);
    let decision = json(&out);
    (s, decision)
}

/// The text at `field` of every element of the list `key` (finding ids, changed
/// parameters), in order.
pub fn ids(document: &Value, key: &str, field: &str) -> Vec<String> {
    list(document, key)
        .iter()
        .map(|v| {
            v[field]
                .as_str()
                .unwrap_or_else(|| panic!("{key} element without text {field}: {v}"))
                .to_string()
        })
        .collect()
}

/// The element of the list `key` whose `field` is `value`.
#[track_caller]
pub fn item<'a>(document: &'a Value, key: &str, field: &str, value: &str) -> &'a Value {
    list(document, key)
        .iter()
        .find(|v| v[field] == value)
        .unwrap_or_else(|| panic!("no {key} element with {field} {value}: {document:#}"))
}

/// The ids of a diagnosis's or a decision's findings, in order.
pub fn finding_ids(document: &Value) -> Vec<String> {
    ids(document, "findings", "id")
}

/// The findings read from the metrics' trend, none of which a healthy run may get.
pub const TREND_FINDINGS: &[&str] = &[
    "divergence",
    "plateau",
    "slow_convergence",
    "overfitting",
    "oscillation",
    "chance_level",
];

/// The finding `id` of a diagnosis or a decision.
#[track_caller]
pub fn finding<'a>(document: &'a Value, id: &str) -> &'a Value {
    item(document, "findings", "id", id)
}

#[track_caller]
fn list<'a>(document: &'a Value, key: &str) -> &'a Vec<Value> {
    document[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing: {document:#}"))
}
