//! Crash safety: `retune suggest --in-place` killed with SIGKILL at random moments. After
//! every kill the config is the old text or the new one and parses, every history line is
//! a whole JSON line, a new config always has the old text in the history, and
//! `retune revert` brings the old text back (or, when the config was not replaced, has
//! nothing to undo). The next call then runs and leaves no temporary file behind.

#![cfg(unix)]

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, assert_code, stderr};
use serde_json::Value;

/// Kills per run of the test: enough to land in every phase of a call (reading, deciding,
/// writing the reports, the pending line, the rename, the applied line) many times over,
/// few enough to keep the suite fast on a debug build.
const KILLS: usize = 48;

/// A small deterministic generator (xorshift64*), seeded from the clock and printed, so
/// a failing sequence of delays can be replayed with RETUNE_CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

const SUGGEST: &[&str] = &[
    "suggest",
    "-c",
    "config.json",
    "-m",
    "history.csv",
    "--in-place",
    "--provider",
    "rules",
    "--format",
    "json",
];

fn diverging(s: &Scratch) -> String {
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s.copy_example("keras/diverging/config.json", "config.json");
    s.read("config.json")
}

fn temporaries(s: &Scratch) -> Vec<String> {
    s.files()
        .into_iter()
        .filter(|f| {
            std::path::Path::new(f)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".retune-"))
        })
        .collect()
}

#[test]
fn a_kill_at_any_moment_keeps_the_config_whole_and_the_old_text_recoverable() {
    // One undisturbed call: the new text, and how long a call takes here.
    let reference = Scratch::new();
    let old = diverging(&reference);
    let started = Instant::now();
    let out = reference.retune(SUGGEST);
    let took = started.elapsed();
    assert_code(&out, 0);
    let new = reference.read("config.json");
    assert_ne!(
        new, old,
        "the diverging run must get a change for this test to mean much"
    );

    let seed = std::env::var("RETUNE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    let window = took.as_micros() as u64 * 12 / 10 + 1;
    let bin = assert_cmd::cargo::cargo_bin("retune");
    let (mut kept_old, mut got_new) = (0, 0);
    for kill in 0..KILLS {
        let s = Scratch::new();
        diverging(&s);
        let delay = Duration::from_micros(rng.next() % window);
        let mut child = std::process::Command::new(&bin);
        child
            .current_dir(s.dir.path())
            .env("SOURCE_DATE_EPOCH", "1790000000")
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .args(SUGGEST)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut running = child.spawn().unwrap();
        std::thread::sleep(delay);
        // Child::kill sends SIGKILL on unix: no handler, no cleanup.
        let _ = running.kill();
        running.wait().unwrap();
        let context = format!("kill {kill} after {delay:?} (seed {seed})");

        let config = s.read("config.json");
        serde_json::from_str::<Value>(&config)
            .unwrap_or_else(|e| panic!("{context}: the config does not parse: {e}"));
        assert!(
            config == old || config == new,
            "{context}: the config is neither the old nor the new text:\n{config}"
        );
        let history = std::fs::read_to_string(s.path("reports/history.jsonl")).unwrap_or_default();
        assert!(
            history.is_empty() || history.ends_with('\n'),
            "{context}: the history ends in a torn line:\n{history}"
        );
        for line in history.lines() {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("{context}: a torn history line ({e}): {line}"));
        }

        let revert = s.retune(&["revert", "--history", "reports/history.jsonl"]);
        if config == new {
            got_new += 1;
            assert!(
                history.lines().any(|l| {
                    serde_json::from_str::<Value>(l).unwrap()["config_before"] == old.as_str()
                }),
                "{context}: the config was replaced but the old text is in no history line"
            );
            assert_code(&revert, 0);
            assert_eq!(
                s.read("config.json"),
                old,
                "{context}: revert did not restore"
            );
        } else {
            kept_old += 1;
            // A pending line whose config was never replaced is nothing to undo.
            assert_code(&revert, 2);
            assert!(
                stderr(&revert).contains("no adjustment that changed the config"),
                "{context}: {}",
                stderr(&revert)
            );
            assert_eq!(s.read("config.json"), old);
        }

        // The next call runs as if nothing had happened and removes what the killed one
        // left behind. When the killed call never replaced the config, its pending line
        // is no reason for a cooldown: the change is made now.
        let again = s.retune(SUGGEST);
        assert_code(&again, 0);
        if config == old {
            assert_eq!(s.read("config.json"), new, "{context}: the next call");
        }
        let left = temporaries(&s);
        assert!(left.is_empty(), "{context}: temporaries left: {left:?}");
    }
    eprintln!("{KILLS} kills (seed {seed}): {kept_old} left the old config, {got_new} the new one");
}
