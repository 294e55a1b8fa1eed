//! The LLM advisor against a local OpenAI-compatible stand-in server (wiremock), through
//! the real binary: protocol, failures, and an untrusted model's dangerous answers.

mod common;

use std::time::{Duration, Instant};

use common::{Scratch, assert_code, json, stderr, stdout};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const KEY: &str = "sk-test-9f8e7d6c5b4a-secret";

/// A chat-completion response as llama.cpp's server sends it, with `content` as given.
fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1790000000,
        "model": "gemma-3-270m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 812, "completion_tokens": 96, "total_tokens": 908}
    })
}

fn answer(changes: Value) -> String {
    json!({"diagnosis": "The loss became NaN at epoch 11 after rising since epoch 3.", "changes": changes}).to_string()
}

fn ok(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(content))
}

/// A run copied into a scratch dir: the real diverging Keras example.
fn diverging() -> Scratch {
    let s = Scratch::new();
    s.copy_example("keras/diverging/config.json", "config.json");
    s.copy_example("keras/diverging/history.csv", "history.csv");
    s
}

/// `retune suggest` against the server, off the async runtime (the binary blocks).
async fn suggest(s: &Scratch, server: &MockServer, extra: &[&str]) -> std::process::Output {
    let base = format!("{}/v1", server.uri());
    let mut args: Vec<String> = [
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--format",
        "json",
        "--base-url",
        &base,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut command = s.command();
    command.env("OPENAI_API_KEY", KEY).args(&args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// `suggest` on a fresh copy of the diverging run, expected to succeed; the scratch dir
/// and the decision.
async fn decide(server: &MockServer, extra: &[&str]) -> (Scratch, Value) {
    let s = diverging();
    let out = suggest(&s, server, extra).await;
    assert_code(&out, 0);
    let d = json(&out);
    (s, d)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_answer_is_applied_and_its_cost_reported() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_string_contains("\"json_schema\""))
        .respond_with(ok(&answer(json!([{"parameter": "optimizer.lr", "new_value": 0.042, "rationale": "loss rose every epoch from 1.42 at epoch 2 to 14.09 at epoch 10; cut 10×", "confidence": 0.8}]))))
        .expect(1)
        .mount(&server)
        .await;
    let (s, d) = decide(&server, &[]).await;
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["changes"][0]["parameter"], "optimizer.lr");
    assert_eq!(d["changes"][0]["new"], json!(0.042));
    let llm = &d["llm"];
    assert_eq!(
        (llm["answers"].as_u64(), llm["http_attempts"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (
            llm["prompt_tokens"].as_u64(),
            llm["completion_tokens"].as_u64()
        ),
        (Some(812), Some(96))
    );
    assert_eq!(llm["response_format"], "json_schema");
    assert!(s.read("config.retuned.json").contains("\"lr\": 0.042"));
    let report = s.read(d["report"].as_str().unwrap());
    assert!(
        report.contains("812 prompt + 96 completion tokens"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dangerous_values_are_rejected_and_nothing_dangerous_is_written() {
    let server = MockServer::start().await;
    let dangerous = answer(json!([
        {"parameter": "output_dir", "new_value": "/", "rationale": "r", "confidence": 0.9},
        {"parameter": "optimizer.lr", "new_value": 100, "rationale": "r", "confidence": 0.9},
        {"parameter": "batch_size", "new_value": 0, "rationale": "r", "confidence": 0.9},
        {"parameter": "weight_decay_typo", "new_value": 0.1, "rationale": "r", "confidence": 0.9},
        {"parameter": "dropout", "new_value": 1.5, "rationale": "r", "confidence": 0.9},
        {"parameter": "epochs", "new_value": 1e9, "rationale": "r", "confidence": 0.9}
    ]));
    // The model repeats itself through its repair, as weak models do.
    Mock::given(method("POST"))
        .respond_with(ok(&dangerous))
        .expect(2)
        .mount(&server)
        .await;
    let s = diverging();
    let before = s.read("config.json");
    let out = suggest(&s, &server, &[]).await;
    assert_code(&out, 0);
    let d = json(&out);
    assert_eq!(d["provider"], "openai→rules");
    assert_eq!(d["llm"]["repairs"], 1);
    assert!(
        d["llm"]["fallback"]
            .as_str()
            .unwrap()
            .contains("none usable")
    );
    let rejected: Vec<(String, String)> = d["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["parameter"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |p: &str| {
        rejected
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{p} not rejected: {rejected:?}"))
    };
    assert!(reason("output_dir").contains("frozen"));
    assert!(reason("optimizer.lr").contains("outside the bounds"));
    assert!(reason("batch_size").contains("outside the bounds"));
    assert!(reason("weight_decay_typo").contains("unknown"));
    assert!(reason("dropout").contains("outside the bounds"));
    assert!(reason("epochs").contains("outside the bounds"));
    // What was written is the rules advisor's change, and only that.
    let after = s.read("config.retuned.json");
    assert_eq!(d["changes"].as_array().unwrap().len(), 1);
    assert!(
        after.contains("\"lr\": 0.042")
            && after.contains("\"batch_size\": 64")
            && after.contains("\"epochs\": 12")
    );
    assert_eq!(before.lines().count(), after.lines().count());
    let report = s.read(d["report"].as_str().unwrap());
    assert!(report.contains("LLM suggestion not used"), "{report}");
    assert!(report.contains("the rules advisor decided"), "{report}");
}

/// Responds with each template in turn, then the last one forever.
struct Sequence(Vec<ResponseTemplate>, std::sync::atomic::AtomicUsize);

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0[i.min(self.0.len() - 1)].clone()
    }
}

fn sequence(templates: Vec<ResponseTemplate>) -> Sequence {
    Sequence(templates, std::sync::atomic::AtomicUsize::new(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_json_answer_is_repaired_with_the_reasons() {
    let server = MockServer::start().await;
    let good = answer(
        json!([{"parameter": "optimizer.lr", "new_value": "0.042", "rationale": "NaN at epoch 11", "confidence": 0.7}]),
    );
    Mock::given(method("POST"))
        .respond_with(sequence(vec![
            ok("The learning rate is too high, lower it."),
            ok(&good),
        ]))
        .expect(2)
        .mount(&server)
        .await;
    let (_s, d) = decide(&server, &[]).await;
    assert_eq!(d["provider"], "openai");
    assert_eq!(
        (d["llm"]["answers"].as_u64(), d["llm"]["repairs"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(d["llm"]["first_answer_parsed"], false);
    // The second request carried the first answer and the reason it failed.
    let requests = server.received_requests().await.unwrap();
    let second = String::from_utf8_lossy(&requests[1].body);
    assert!(second.contains("no JSON object found"), "{second}");
    assert!(second.contains("The learning rate is too high"));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_then_succeed() {
    let server = MockServer::start().await;
    let good = answer(json!([]));
    Mock::given(method("POST"))
        .respond_with(sequence(vec![
            ResponseTemplate::new(500).set_body_string("upstream overloaded"),
            ResponseTemplate::new(503),
            ok(&good),
        ]))
        .expect(3)
        .mount(&server)
        .await;
    let (_s, d) = decide(&server, &["--retries", "3"]).await;
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["llm"]["http_attempts"], 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_retried_after_retry_after() {
    let server = MockServer::start().await;
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "param": null, "code": null}}));
    Mock::given(method("POST"))
        .respond_with(sequence(vec![limited, ok(&answer(json!([])))]))
        .expect(2)
        .mount(&server)
        .await;
    let s = diverging();
    let started = Instant::now();
    let out = suggest(&s, &server, &[]).await;
    assert_code(&out, 0);
    // Waited at least what the server asked for (a lower bound, not a speed limit).
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(json(&out)["llm"]["http_attempts"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_server_hits_the_timeout_and_the_rules_decide() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok(&answer(json!([]))).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let (s, d) = decide(&server, &["--timeout", "0.5", "--retries", "1"]).await;
    assert_eq!(d["provider"], "openai→rules");
    assert!(
        d["llm"]["fallback"].as_str().unwrap().contains("timeout"),
        "{d:#}"
    );
    assert_eq!(d["llm"]["http_attempts"], 2);
    assert_eq!(d["actions"], json!(["restore_checkpoint"]));

    // And with falling back disabled: exit 3 and a message that says what happened.
    let out = suggest(
        &s,
        &server,
        &["--timeout", "0.5", "--retries", "0", "--no-fallback"],
    )
    .await;
    assert_code(&out, 3);
    assert!(
        stderr(&out).contains("LLM unavailable") && stderr(&out).contains("--no-fallback"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn json_schema_refused_then_json_object_is_used() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("\"json_schema\""))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {"code": 400, "message": "response_format type json_schema is not supported", "type": "invalid_request_error"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_string_contains("\"json_object\""))
        .respond_with(ok(&format!(
            "Here you go:\n```json\n{}\n```",
            answer(json!([]))
        )))
        .expect(1)
        .mount(&server)
        .await;
    let (_s, d) = decide(&server, &[]).await;
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["llm"]["response_format"], "json_object");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rerun_is_answered_from_the_cache() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok(&answer(json!([]))))
        .expect(2)
        .mount(&server)
        .await;
    let s = diverging();
    let first = json(&suggest(&s, &server, &["--dry-run"]).await);
    assert_eq!(first["llm"]["cached"], false);
    let second = json(&suggest(&s, &server, &["--dry-run"]).await);
    assert_eq!(second["llm"]["cached"], true);
    assert_eq!(second["llm"]["http_attempts"], 0);
    let third = json(&suggest(&s, &server, &["--dry-run", "--no-cache"]).await);
    assert_eq!(third["llm"]["cached"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_appears_in_no_output_and_no_file() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sequence(vec![
            ok("not json at all"),
            ResponseTemplate::new(500).set_body_string("boom"),
            ok(&answer(json!([{"parameter": "optimizer.lr", "new_value": 0.1, "rationale": "lower", "confidence": 0.5}]))),
        ]))
        .mount(&server)
        .await;
    let s = diverging();
    let mut outputs = Vec::new();
    for extra in [
        &[][..],
        &["--format", "text"],
        &["--no-fallback", "--retries", "0"],
    ] {
        let out = suggest(&s, &server, extra).await;
        outputs.push(format!("{}{}", stdout(&out), stderr(&out)));
    }
    for text in &outputs {
        assert!(
            !text.contains(KEY) && !text.contains("9f8e7d6c5b4a"),
            "{text}"
        );
    }
    let mut read = 0;
    for file in s.files() {
        let bytes = std::fs::read(s.path(&file)).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("9f8e7d6c5b4a"),
            "the key is in {file}"
        );
        read += 1;
    }
    assert!(
        read >= 6,
        "reports, history and cache files were checked: {:?}",
        s.files()
    );
    assert!(
        s.files().iter().any(|f| f.starts_with(".cache/")),
        "the cache was written: {:?}",
        s.files()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_uses_the_llm_only_when_one_is_configured() {
    let s = diverging();
    // Configured through a retune.toml in the working directory.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ok(&answer(json!([]))))
        .expect(1)
        .mount(&server)
        .await;
    s.write(
        "retune.toml",
        format!(
            "[llm]\nbase_url = \"{}\"\nmodel = \"gemma\"\n",
            server.uri()
        ),
    );
    let mut command = s.command();
    command.args([
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--format",
        "json",
        "--dry-run",
    ]);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_code(&out, 0);
    let d = json(&out);
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["llm"]["model"], "gemma");
    assert_eq!(d["llm"]["endpoint"], format!("{}/v1", server.uri()));

    // Nothing configured: rules, and --provider openai is a usage error.
    let plain = Scratch::new();
    plain.copy_example("keras/diverging/config.json", "config.json");
    plain.copy_example("keras/diverging/history.csv", "history.csv");
    let out = plain.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--format",
        "json",
        "--dry-run",
    ]);
    assert_eq!(json(&out)["provider"], "rules");
    let out = plain.retune(&[
        "suggest",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--provider",
        "openai",
    ]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("--provider openai needs an endpoint"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn prompt_prints_the_exact_messages_and_their_size() {
    let s = diverging();
    let out = s.retune(&[
        "prompt",
        "-c",
        "config.json",
        "-m",
        "history.csv",
        "--format",
        "json",
    ]);
    assert_code(&out, 0);
    let p = json(&out);
    let messages = p["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[1]["role"], "user");
    let chars: usize = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap().chars().count())
        .sum();
    assert_eq!(p["characters"], chars);
    assert_eq!(p["estimated_tokens"], chars.div_ceil(4));
    assert!(
        messages[1]["content"]
            .as_str()
            .unwrap()
            .contains("\"parameter\":\"optimizer.lr\"")
    );
    let text = stdout(&s.retune(&["prompt", "-c", "config.json", "-m", "history.csv"]));
    assert!(
        text.contains("--- system (") && text.contains(&format!("{chars} characters")),
        "{text}"
    );
}

#[test]
fn schema_lists_the_configs_tunable_parameters() {
    let s = diverging();
    let out = s.retune(&["schema", "--config", "config.json"]);
    assert_code(&out, 0);
    let schema = json(&out);
    let parameters = &schema["properties"]["changes"]["items"]["properties"]["parameter"]["enum"];
    assert_eq!(
        parameters,
        &json!([
            "optimizer.lr",
            "optimizer.momentum",
            "batch_size",
            "epochs",
            "dropout"
        ])
    );
    let generic = json(&s.retune(&["schema"]));
    assert!(
        generic["properties"]["changes"]["items"]["properties"]["parameter"]
            .get("enum")
            .is_none()
    );
}
