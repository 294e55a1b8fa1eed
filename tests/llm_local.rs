//! End to end against a real model: llama.cpp's llama-server with Gemma 3 270M, started
//! by `scripts/local-llm.sh start` (CI does this and sets RETUNE_TEST_LLM_URL). The model
//! is weak; whatever it answers, a valid adjusted config and a report must come out and
//! every accepted change must have passed validation. The model reviews the rules
//! advisor's proposal: when its answer is used, the decision says what it did with it.
//!
//! Without RETUNE_TEST_LLM_URL these tests say so and return: they need a server that
//! takes minutes to build, which `.ci/run` provides.

mod common;

use common::{Scratch, assert_code, json, stderr};
use serde_json::Value;

fn endpoint() -> Option<String> {
    match std::env::var("RETUNE_TEST_LLM_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "RETUNE_TEST_LLM_URL is not set: start a server with scripts/local-llm.sh start"
            );
            None
        }
    }
}

/// Runs suggest against the local model on an example and checks what came out.
fn run_example(url: &str, example: &str, metrics: &str) -> Value {
    let s = Scratch::new();
    s.copy_example(&format!("{example}/config.json"), "config.json");
    s.copy_example(&format!("{example}/{metrics}"), metrics);
    let out = s
        .command()
        .args([
            "suggest",
            "-c",
            "config.json",
            "-m",
            metrics,
            "--format",
            "json",
        ])
        .args([
            "--provider",
            "openai",
            "--base-url",
            url,
            "--model",
            "gemma-3-270m",
        ])
        .args(["--timeout", "120", "--deadline", "600"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let d = json(&out);
    eprintln!("{example}: provider {}, llm {}", d["provider"], d["llm"]);
    eprintln!(
        "{example}: changes {} rejected {}",
        d["changes"], d["rejected"]
    );
    assert!(
        d["provider"].as_str().unwrap().starts_with("openai"),
        "{d:#}"
    );
    let llm = &d["llm"];
    assert!(
        llm["answers"].as_u64().unwrap() >= 1 || llm["fallback"].is_string(),
        "{llm}"
    );
    if llm["first_answer_parsed"] == true {
        let verdict = llm["first_verdict"].as_str().unwrap_or_default();
        assert!(["agree", "amend", "replace"].contains(&verdict), "{llm}");
    }
    // A used answer is a review of the rules' proposal, in the JSON and in the report.
    if d["provider"] == "openai" {
        assert!(llm["review"]["items"].is_array(), "{llm}");
        let summary = d["review_summary"].as_str().expect("review_summary");
        assert!(summary.starts_with("the model "), "{summary}");
    } else {
        assert!(d["review_summary"].is_null(), "{d:#}");
    }

    // The adjusted config parses, keeps every key, and every accepted change is within
    // its parameter's bounds (validation's own contract, checked from the outside).
    let before: Value = serde_json::from_str(&s.read("config.json")).unwrap();
    let after: Value = serde_json::from_str(&s.read("config.retuned.json")).unwrap();
    assert_eq!(keys(&before), keys(&after), "keys were added or removed");
    for change in d["changes"].as_array().unwrap() {
        let new = change["new"].as_f64().expect("numbers only");
        assert!(new.is_finite());
        let old = change["old"].as_f64().unwrap();
        if old > 0.0 && change["clamped"].is_null() {
            assert!(
                new / old <= 10.0 + 1e-9 && old / new <= 10.0 + 1e-9,
                "{change}"
            );
        }
        assert!((new - old).abs() > 0.0, "no-op accepted: {change}");
    }
    let report = s.read(d["report"].as_str().unwrap());
    assert!(
        report.contains("## Findings") && report.contains("LLM"),
        "{report}"
    );
    assert_eq!(
        report.contains("**Review:** the model "),
        d["provider"] == "openai",
        "{report}"
    );
    assert!(stderr(&out).is_empty() || !stderr(&out).contains("panicked"));
    d
}

fn keys(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(prefix: String, v: &Value, out: &mut Vec<String>) {
        if let Value::Object(m) = v {
            for (k, child) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.push(p.clone());
                walk(p, child, out);
            }
        }
    }
    walk(String::new(), v, &mut out);
    out
}

#[test]
fn seed003_through_the_real_model() {
    let Some(url) = endpoint() else { return };
    run_example(&url, "seed003", "metrics.json");
}

#[test]
fn seed000_through_the_real_model() {
    let Some(url) = endpoint() else { return };
    run_example(&url, "seed000", "training.log");
}

#[test]
fn a_diverging_run_through_the_real_model() {
    let Some(url) = endpoint() else { return };
    let d = run_example(&url, "keras/diverging", "history.csv");
    // Whatever the model said, a diverging run must not end with a higher learning rate.
    for change in d["changes"].as_array().unwrap() {
        if change["canonical"] == "learning_rate" {
            assert!(change["new"].as_f64() < change["old"].as_f64(), "{change}");
        }
    }
}

/// A nightly review of a learning-rate sweep with the real model: the sick run goes to
/// the model with its siblings' evidence, the healthy ones do not, the call cap holds,
/// and whatever the model says, the diverged run is not given a higher learning rate.
#[test]
fn a_review_of_a_sweep_through_the_real_model() {
    let Some(url) = endpoint() else { return };
    let s = Scratch::new();
    s.copy_example_dir("sweep", "sweep");
    let out = s
        .command()
        .args(["review", "sweep", "--suggest", "--format", "json"])
        .args([
            "--provider",
            "openai",
            "--base-url",
            &url,
            "--model",
            "gemma-3-270m",
        ])
        .args([
            "--timeout",
            "120",
            "--deadline",
            "600",
            "--max-llm-calls",
            "3",
        ])
        .output()
        .unwrap();
    assert_code(&out, 1);
    let review = json(&out);
    eprintln!("llm usage {}", review["llm_usage"]);
    assert!(review["llm_usage"]["calls"].as_u64().unwrap() <= 3);
    for run in review["runs"].as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        eprintln!(
            "{name}: {} {} {}",
            run["status"], run["provider"], run["changes"]
        );
        if name == "sweep/lr_0.5" {
            assert_eq!(run["status"], "critical");
            assert!(
                run["provider"].as_str().unwrap().starts_with("openai"),
                "{run:#}"
            );
            for change in run["changes"].as_array().unwrap() {
                if change["canonical"] == "learning_rate" {
                    assert!(change["new"].as_f64() < change["old"].as_f64(), "{change}");
                }
            }
            let adjusted: Value =
                serde_json::from_str(&s.read("sweep/lr_0.5/config.retuned.json")).unwrap();
            let before: Value = serde_json::from_str(&s.read("sweep/lr_0.5/config.json")).unwrap();
            assert_eq!(keys(&before), keys(&adjusted), "keys were added or removed");
        } else if name == "sweep/lr_0.01" {
            // 8 epochs since its best validation loss: a plateau warning, sent like any
            // run that needs attention; a weak model's answer is validated as any other.
            assert_eq!(run["status"], "warning", "{run:#}");
            assert_eq!(run["findings"][0]["id"], "plateau", "{run:#}");
            for change in run["changes"].as_array().unwrap() {
                if change["canonical"] == "learning_rate" {
                    assert!(change["new"].as_f64() < change["old"].as_f64(), "{change}");
                }
            }
            let adjusted: Value =
                serde_json::from_str(&s.read("sweep/lr_0.01/config.retuned.json")).unwrap();
            let before: Value = serde_json::from_str(&s.read("sweep/lr_0.01/config.json")).unwrap();
            assert_eq!(keys(&before), keys(&adjusted), "keys were added or removed");
        } else {
            assert_eq!(run["status"], "healthy", "{run:#}");
            assert_eq!(run["provider"], "rules", "healthy runs are not sent");
        }
    }
}
