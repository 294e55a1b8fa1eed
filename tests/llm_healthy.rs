//! No LLM call on a healthy run, for `suggest` and `review` alike, unless `--ask-always`:
//! through the real binary against a stand-in OpenAI-compatible server (wiremock) that
//! counts the requests it gets.

mod common;

use common::{Scratch, assert_code, json};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const HEALTHY_SKIP: &str = "no LLM call: the run is healthy";

/// A server that agrees with whatever the rules propose.
async fn agreeing() -> MockServer {
    let server = MockServer::start().await;
    let answer = json!({
        "verdict": "agree",
        "diagnosis": "The run trains as it should.",
        "changes": [],
        "dropped": null,
        "expected_effect": null,
        "risk": null,
        "alternatives": null
    });
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1790000000,
            "model": "gemma-3-270m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": answer.to_string()}}],
            "usage": {"prompt_tokens": 1400, "completion_tokens": 60, "total_tokens": 1460}
        })))
        .mount(&server)
        .await;
    server
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

/// `suggest --provider openai` on a copy of `example` (its config and `metrics`).
async fn suggest(
    server: &MockServer,
    example: &str,
    metrics: &str,
    extra: &[&str],
) -> (Scratch, Value) {
    let s = Scratch::new();
    s.copy_example(&format!("{example}/config.json"), "config.json");
    s.copy_example(&format!("{example}/{metrics}"), metrics);
    let base = format!("{}/v1", server.uri());
    let mut command = s.command();
    command
        .args(["suggest", "-c", "config.json", "-m", metrics])
        .args(["--format", "json", "--provider", "openai", "--no-cache"])
        .args(["--base-url", &base])
        .args(extra);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_code(&out, 0);
    (s, json(&out))
}

fn severities(d: &Value) -> Vec<String> {
    d["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["severity"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn suggest_on_a_healthy_run_makes_no_request_and_says_why() {
    let server = agreeing().await;
    let (s, d) = suggest(&server, "keras/healthy", "history.csv", &[]).await;
    assert_eq!(requests(&server).await, 0, "{d:#}");
    assert!(
        severities(&d).iter().all(|s| s == "info"),
        "the example is healthy: {d:#}"
    );
    assert_eq!(d["provider"], "rules");
    assert_eq!(d["llm"], Value::Null);
    assert_eq!(d["changes"], json!([]));
    assert!(
        d["advice"][0].as_str().unwrap().starts_with(HEALTHY_SKIP),
        "{d:#}"
    );
    let report = s.read(d["report"].as_str().unwrap());
    assert!(report.contains(HEALTHY_SKIP), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_always_asks_about_a_healthy_run() {
    let server = agreeing().await;
    let (_s, d) = suggest(&server, "keras/healthy", "history.csv", &["--ask-always"]).await;
    assert_eq!(requests(&server).await, 1, "{d:#}");
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["llm"]["answers"], 1);
    assert_eq!(d["llm"]["review"]["verdict"], "agree");
    assert!(
        d["advice"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| !a.as_str().unwrap().contains(HEALTHY_SKIP)),
        "{d:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_something_wrong_is_still_asked_about() {
    let server = agreeing().await;
    let (_s, d) = suggest(&server, "keras/diverging", "history.csv", &[]).await;
    assert_eq!(requests(&server).await, 1, "{d:#}");
    assert_eq!(d["provider"], "openai");
}

/// An `info` finding alone is not something wrong: the healthy run with a `momentum` that
/// Adam does not read (a `conflicting_settings` note) makes no call.
#[tokio::test(flavor = "multi_thread")]
async fn an_info_finding_alone_makes_no_call() {
    let server = agreeing().await;
    let s = Scratch::new();
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(common::example("keras/healthy/config.json")).unwrap(),
    )
    .unwrap();
    config["momentum"] = json!(0.9);
    s.write("config.json", config.to_string());
    s.copy_example("keras/healthy/history.csv", "history.csv");
    let base = format!("{}/v1", server.uri());
    let mut command = s.command();
    command
        .args(["suggest", "-c", "config.json", "-m", "history.csv"])
        .args(["--format", "json", "--provider", "openai", "--no-cache"])
        .args(["--base-url", &base]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_code(&out, 0);
    let d = json(&out);
    assert_eq!(d["findings"][0]["id"], "conflicting_settings", "{d:#}");
    assert_eq!(severities(&d), vec!["info"], "{d:#}");
    assert_eq!(requests(&server).await, 0, "{d:#}");
    assert_eq!(d["provider"], "rules");
    assert!(
        d["advice"][0].as_str().unwrap().starts_with(HEALTHY_SKIP),
        "{d:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn review_sends_only_the_run_that_needs_attention_unless_ask_always() {
    let s = Scratch::new();
    for name in ["healthy", "diverging"] {
        for file in ["config.json", "history.csv"] {
            s.copy_example(
                &format!("keras/{name}/{file}"),
                &format!("exp/{name}/{file}"),
            );
        }
    }
    for (extra, calls) in [(&[][..], 1), (&["--ask-always"][..], 2)] {
        let server = agreeing().await;
        let base = format!("{}/v1", server.uri());
        let mut command = s.command();
        command
            .args(["review", "exp", "--format", "json", "--no-cache"])
            .args(["--provider", "openai", "--base-url", &base])
            .args(extra);
        let out = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert_code(&out, 1);
        let review = json(&out);
        assert_eq!(requests(&server).await, calls, "{extra:?}: {review:#}");
        let runs = review["runs"].as_array().unwrap();
        let healthy = runs.iter().find(|r| r["name"] == "exp/healthy").unwrap();
        let diverging = runs.iter().find(|r| r["name"] == "exp/diverging").unwrap();
        assert_eq!(diverging["provider"], "openai");
        if calls == 1 {
            assert_eq!(healthy["provider"], "rules", "{healthy:#}");
            assert!(
                healthy["advice"][0]
                    .as_str()
                    .unwrap()
                    .starts_with(HEALTHY_SKIP),
                "{healthy:#}"
            );
        } else {
            assert_eq!(healthy["provider"], "openai", "{healthy:#}");
        }
    }
}
