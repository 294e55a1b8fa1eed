//! `retune review` through the binary: runs found under folders, the summary on stdout
//! and on disk, exit codes, per-run files with --suggest, and LLM limits shared by runs.

mod common;

use common::{Scratch, assert_code, json, stderr, stdout};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

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

fn run<'a>(review: &'a Value, name: &str) -> &'a Value {
    review["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no run {name}: {review:#}"))
}

#[test]
fn sick_runs_are_named_with_their_findings_and_changes() {
    let s = experiments(&["healthy", "diverging", "overfitting", "plateau"]);
    let out = s.retune(&["review", "exp", "--format", "json"]);
    assert_code(&out, 1);
    let review = json(&out);
    assert_eq!(review["totals"]["runs"], 4);
    assert_eq!(review["exit_code"], 1);
    assert_eq!(run(&review, "exp/healthy")["status"], "healthy");
    let diverging = run(&review, "exp/diverging");
    assert_eq!(diverging["status"], "critical");
    assert_eq!(diverging["findings"][0]["id"], "divergence");
    assert_eq!(diverging["changes"][0]["parameter"], "optimizer.lr");
    assert_eq!(diverging["provider"], "rules");
    assert_eq!(run(&review, "exp/overfitting")["status"], "warning");
    // Without --suggest only the summary is written: no run's files are touched.
    let summary = review["summary_report"].as_str().unwrap();
    assert_eq!(summary, "reports/review-20260921T141320Z.md");
    let mut files = s.files();
    files.retain(|f| !f.starts_with("exp/"));
    assert_eq!(
        files,
        [
            "reports/review-20260921T141320Z.json",
            "reports/review-20260921T141320Z.md"
        ]
    );
    assert_eq!(
        s.files().iter().filter(|f| f.starts_with("exp/")).count(),
        8
    );
    let on_disk: Value =
        serde_json::from_str(&s.read("reports/review-20260921T141320Z.json")).unwrap();
    assert_eq!(on_disk, review);
}

#[test]
fn the_table_and_the_summary_report() {
    let s = experiments(&["healthy", "diverging", "overfitting"]);
    let out = s.retune(&["review", "exp"]);
    assert_code(&out, 1);
    insta::assert_snapshot!("review_table", stdout(&out));
    insta::assert_snapshot!(
        "review_summary_md",
        s.read("reports/review-20260921T141320Z.md")
    );
    // No progress bar when stderr is not a terminal.
    assert_eq!(stderr(&out), "");
}

#[test]
fn all_healthy_exits_0() {
    let s = experiments(&["healthy"]);
    let out = s.retune(&["review", "exp", "--report-dir", "out"]);
    assert_code(&out, 0);
    assert!(stdout(&out).contains("1 run: 0 critical, 0 warning, 1 healthy"));
}

#[test]
fn with_suggest_each_run_gets_what_suggest_writes() {
    let s = experiments(&["healthy", "diverging"]);
    let out = s.retune(&["review", "exp", "--suggest", "--format", "json"]);
    assert_code(&out, 1);
    let review = json(&out);
    let diverging = run(&review, "exp/diverging");
    let report = diverging["report"].as_str().unwrap();
    assert!(
        report.starts_with("reports/runs/exp/diverging/adj-"),
        "{report}"
    );
    assert_eq!(diverging["config_out"], "exp/diverging/config.retuned.json");
    let adjusted: Value =
        serde_json::from_str(&s.read("exp/diverging/config.retuned.json")).unwrap();
    assert_eq!(adjusted["optimizer"]["lr"], diverging["changes"][0]["new"]);
    // The input config is never modified.
    assert_eq!(
        s.read("exp/diverging/config.json"),
        std::fs::read_to_string(common::example("keras/diverging/config.json")).unwrap()
    );
    assert!(s.read(report).contains("optimizer.lr"));
    let history = s.read("reports/runs/exp/diverging/history.jsonl");
    assert_eq!(history.lines().count(), 1);
    // The summary links each run's report relative to itself.
    let md = s.read("reports/review-20260921T141320Z.md");
    let rel = report.strip_prefix("reports/").unwrap();
    assert!(md.contains(&format!("]({rel})")), "{md}");

    // The next review reads that history, and the adjusted config is not taken for a
    // run's config. The config still has the old rate: the cut was not applied, so it
    // is no cooldown and is proposed again (issue 13, item 11).
    let again = s.retune(&["review", "exp", "--suggest", "--format", "json"]);
    let again = json(&again);
    assert_eq!(again["totals"]["runs"], 2);
    let diverging = run(&again, "exp/diverging");
    assert_eq!(
        diverging["changes"][0]["parameter"], "optimizer.lr",
        "{diverging:#}"
    );
    assert_eq!(
        s.read("reports/runs/exp/diverging/history.jsonl")
            .lines()
            .count(),
        2
    );
}

#[test]
fn a_broken_run_is_reported_and_the_others_still_reviewed() {
    let s = experiments(&["healthy", "diverging"]);
    s.write(
        "exp/broken/config.json",
        "{\"learning_rate\": 0.1,\n  \"batch_size\": }\n",
    );
    s.copy_example("keras/healthy/history.csv", "exp/broken/history.csv");
    let out = s.retune(&["review", "exp", "--format", "json"]);
    assert_code(&out, 2);
    let review = json(&out);
    let broken = run(&review, "exp/broken");
    assert_eq!(broken["status"], "error");
    let error = broken["error"].as_str().unwrap();
    assert!(error.starts_with("exp/broken/config.json:2:17:"), "{error}");
    assert_eq!(run(&review, "exp/diverging")["status"], "critical");
    assert_eq!(review["totals"]["error"], 1);

    let text = s.retune(&["review", "exp"]);
    assert_code(&text, 2);
    assert!(
        stdout(&text).contains("could not review exp/broken: exp/broken/config.json:2:17:"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn a_run_without_config_is_diagnosed_from_its_metrics() {
    let s = Scratch::new();
    s.copy_example(
        "formats/lightning/version_0/metrics.csv",
        "lightning_logs/version_0/metrics.csv",
    );
    let out = s.retune(&["review", "lightning_logs", "--format", "json"]);
    let review = json(&out);
    let r = run(&review, "lightning_logs/version_0");
    assert!(r["provider"].is_null());
    assert!(r["advice"][0].as_str().unwrap().contains("no config"));
}

#[test]
fn bad_usage_exits_2_and_says_why() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("empty/sub")).unwrap();
    let out = s.retune(&["review", "empty"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("no runs found under empty"),
        "{}",
        stderr(&out)
    );

    let out = s.retune(&["review", "missing"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("missing: no such file"),
        "{}",
        stderr(&out)
    );

    let out = s.retune(&["review"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("<DIR>"), "{}", stderr(&out));
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[test]
fn an_unwritable_report_folder_exits_4_after_printing_the_review() {
    let s = experiments(&["healthy"]);
    s.write("reports", "a file where the folder should be");
    let out = s.retune(&["review", "exp", "--format", "json"]);
    assert_code(&out, 4);
    assert_eq!(json(&out)["exit_code"], 4);
    assert!(stderr(&out).contains("could not write"), "{}", stderr(&out));
}

/// A stand-in LLM that answers the diverging run validly, every time.
async fn llm() -> MockServer {
    let server = MockServer::start().await;
    let content = json!({
        "diagnosis": "The loss rose from epoch 3 and became NaN at epoch 11.",
        "changes": [{"parameter": "optimizer.lr", "new_value": 0.042,
                     "rationale": "loss rose every epoch from 1.42 to 14.09; cut 10x", "confidence": 0.8}]
    })
    .to_string();
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1790000000, "model": "stand-in",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 100, "total_tokens": 1000}
        })))
        .mount(&server)
        .await;
    server
}

/// Three copies of the diverging run and one healthy run.
fn three_diverging() -> Scratch {
    let s = experiments(&["healthy"]);
    for name in ["a", "b", "c"] {
        s.copy_example(
            "keras/diverging/config.json",
            &format!("exp/{name}/config.json"),
        );
        s.copy_example(
            "keras/diverging/history.csv",
            &format!("exp/{name}/history.csv"),
        );
    }
    s
}

async fn review_with(s: &Scratch, server: &MockServer, extra: &[&str]) -> std::process::Output {
    let base = format!("{}/v1", server.uri());
    let mut command = s.command();
    command
        .args([
            "review",
            "exp",
            "--format",
            "json",
            "--base-url",
            &base,
            "--no-cache",
        ])
        .args(extra);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_call_cap_is_shared_by_all_runs() {
    let server = llm().await;
    let s = three_diverging();
    let out = review_with(&s, &server, &["--max-llm-calls", "2", "--concurrency", "3"]).await;
    assert_code(&out, 1);
    let review = json(&out);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
    let providers: Vec<&str> = ["exp/a", "exp/b", "exp/c"]
        .iter()
        .map(|n| run(&review, n)["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers.iter().filter(|p| **p == "openai").count(), 2);
    let capped = ["exp/a", "exp/b", "exp/c"]
        .iter()
        .map(|n| run(&review, n))
        .find(|r| r["provider"] == "openai→rules")
        .unwrap();
    assert!(
        capped["advice"][0]
            .as_str()
            .unwrap()
            .contains("--max-llm-calls"),
        "{capped:#}"
    );
    // Healthy runs are not sent to the LLM.
    assert_eq!(run(&review, "exp/healthy")["provider"], "rules");
    assert_eq!(review["llm_usage"]["calls"], 2);
    assert_eq!(review["llm_usage"]["refused"], 1);
    assert_eq!(review["llm_usage"]["tokens"], 2000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_budget_too_small_for_one_call_sends_nothing() {
    let server = llm().await;
    let s = three_diverging();
    let out = review_with(&s, &server, &["--budget-tokens", "500"]).await;
    assert_code(&out, 1);
    let review = json(&out);
    assert!(server.received_requests().await.unwrap().is_empty());
    let a = run(&review, "exp/a");
    assert_eq!(a["provider"], "openai→rules");
    assert!(
        a["advice"][0].as_str().unwrap().contains("--budget-tokens"),
        "{a:#}"
    );
    // The rules still decide, so the run still gets its cut.
    assert_eq!(a["changes"][0]["parameter"], "optimizer.lr");
    assert_eq!(review["llm_usage"]["refused"], 3);
}

#[test]
fn a_run_that_has_logged_nothing_yet_is_pending_not_an_error() {
    let s = experiments(&["healthy"]);
    s.copy_example("keras/healthy/config.json", "exp/just_started/config.json");
    s.write("exp/just_started/history.csv", "");
    let out = s.retune(&["review", "exp", "--format", "json"]);
    assert_code(&out, 0);
    let review = json(&out);
    assert_eq!(run(&review, "exp/just_started")["status"], "pending");
    assert_eq!(review["totals"]["pending"], 1);
}

/// The real Keras learning-rate sweep (configs/examples/sweep), copied as `exp/`.
fn sweep() -> Scratch {
    let s = Scratch::new();
    s.copy_example_dir("sweep", "exp");
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn siblings_set_the_diverged_run_apart_in_the_finding_and_the_prompt() {
    let server = llm().await;
    let s = sweep();
    // The stand-in's answer names optimizer.lr, which this config lacks: no repairs, so
    // one call per run sent.
    let out = review_with(&s, &server, &["--max-repairs", "0"]).await;
    assert_code(&out, 1);
    let review = json(&out);
    let diverged = run(&review, "exp/lr_0.5");
    let divergence = &diverged["findings"][0];
    assert_eq!(divergence["id"], "divergence");
    assert!(
        divergence["summary"].as_str().unwrap().ends_with(
            "Sibling runs: divergence here at learning_rate 0.5 while the 4 sibling runs at ≤ 0.01 show no divergence."
        ),
        "{divergence:#}"
    );
    assert_eq!(
        divergence["evidence"]["siblings"]["their_range"],
        json!([0.0001, 0.01])
    );
    for lr in ["0.0001", "0.0003", "0.001"] {
        assert_eq!(run(&review, &format!("exp/lr_{lr}"))["status"], "healthy");
    }
    // At 0.01 the validation loss has hovered around 0.54 for 8 epochs since its best
    // 0.5271 while the training loss keeps falling: a plateau, not a divergence.
    let plateau = run(&review, "exp/lr_0.01");
    assert_eq!(plateau["status"], "warning");
    assert_eq!(plateau["findings"][0]["id"], "plateau");
    // The stand-in's answer is unusable here, so the rules decide, and their cut rests on
    // the siblings too.
    assert_eq!(diverged["provider"], "openai→rules");
    let cut = &diverged["changes"][0];
    assert_eq!(cut["parameter"], "learning_rate");
    assert!(
        cut["rationale"]
            .as_str()
            .unwrap()
            .ends_with("; the 4 sibling runs with learning_rate ≤ 0.01 show no divergence"),
        "{cut:#}"
    );
    // Only the runs needing attention were sent (the diverged one and the plateau), and
    // the diverged run's prompt carries the comparison.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let bodies: Vec<_> = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("Sibling runs: divergence here at learning_rate 0.5"))
            .count(),
        1,
        "{bodies:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_rate_is_shared_and_evenly_spaced() {
    let server = llm().await;
    let s = three_diverging();
    // 600 a minute is one request every 100 ms, whatever the concurrency.
    let out = review_with(&s, &server, &["--llm-rate", "600", "--concurrency", "3"]).await;
    assert_code(&out, 1);
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3);
    let review = json(&out);
    let mut started: Vec<u64> = ["exp/a", "exp/b", "exp/c"]
        .iter()
        .map(|n| run(&review, n)["llm"]["latency_ms"].as_u64().unwrap())
        .collect();
    started.sort();
    // Each run's exchange includes its wait for a slot: the last waited two slots. This
    // asserts the pacing, a lower bound, not a speed.
    assert!(started[2] >= 190, "{started:?}");
}

#[test]
fn runs_are_found_as_each_framework_lays_them_out() {
    // Real files: TensorBoard run folders written by Keras (train/ and validation/),
    // PyTorch, TF2 and Lightning; a Hugging Face trainer_state.json; a Lightning CSV.
    let s = Scratch::new();
    s.copy_example_dir("formats/tensorboard", "team/tensorboard");
    s.copy_example_dir("formats/hf", "team/hf");
    s.copy_example_dir("formats/lightning", "team/lightning_logs");
    let out = s.retune(&["review", "team", "--format", "json"]);
    let review = json(&out);
    let names: Vec<&str> = review["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "team/hf",
            "team/lightning_logs/version_0",
            "team/tensorboard/keras",
            "team/tensorboard/lightning/version_0",
            "team/tensorboard/pytorch",
            "team/tensorboard/tf2",
        ]
    );
    assert_eq!(review["totals"]["error"], 0, "{review:#}");
    let keras = run(&review, "team/tensorboard/keras");
    assert_eq!(keras["source"]["metrics"], "team/tensorboard/keras");
    assert!(keras["epochs"].as_u64().unwrap() > 0);
}

#[test]
fn a_trainers_own_history_beside_the_run_is_read() {
    // Two copies of a run that blew up at epoch 4; the trainer of `a` called retune
    // (history.jsonl beside its files, as the callbacks keep it), restored, and trained
    // on. `b` has no history: its NaN stands.
    let s = Scratch::new();
    let config = r#"{"optimizer": "adam", "learning_rate": 0.3, "batch_size": 32, "epochs": 30, "num_classes": 10}"#;
    let before = "epoch,accuracy,loss,val_accuracy,val_loss\r\n0,0.2,2.0,0.2,2.1\r\n1,0.3,1.5,0.3,1.6\r\n2,0.4,1.2,0.4,1.3\r\n3,0.1,nan,0.1,nan\r\n";
    for run in ["a", "b"] {
        s.write(&format!("exp/{run}/config.json"), config);
        s.write(&format!("exp/{run}/history.csv"), before);
    }
    let out = s.retune(&[
        "suggest",
        "-c",
        "exp/a/config.json",
        "-m",
        "exp/a/history.csv",
        "--in-place",
        "--history",
        "exp/a/history.jsonl",
        "--report-dir",
        "exp/a/reports",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    assert_eq!(json(&out)["actions"], json!(["restore_checkpoint"]));
    let after = format!("{before}4,0.42,1.15,0.41,1.25\r\n5,0.45,1.05,0.44,1.15\r\n");
    for run in ["a", "b"] {
        s.write(&format!("exp/{run}/history.csv"), &after);
    }
    let out = s.retune(&["review", "exp", "--format", "json"]);
    let review = json(&out);
    let ids = |name: &str| common::finding_ids(run(&review, name));
    assert!(
        !ids("exp/a").contains(&"divergence".to_string()),
        "{review:#}"
    );
    assert!(
        ids("exp/b").contains(&"divergence".to_string()),
        "{review:#}"
    );
}
