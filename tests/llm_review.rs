//! The LLM reviews the rules advisor's proposal, against a stand-in OpenAI-compatible
//! server (wiremock), through the real binary: what each verdict makes of the rules'
//! changes, what the decision and the report say the model did, and when a repair round
//! is spent. The run is the real diverging Keras example, where the rules cut
//! `optimizer.lr` 0.42 → 0.042 and restore the best checkpoint.

mod common;

use common::{Scratch, assert_code, json};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1790000000,
        "model": "gemma-3-270m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 1400, "completion_tokens": 80, "total_tokens": 1480}
    })
}

fn ok(answer: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(completion(&answer.to_string()))
}

/// An answer with `verdict`, `changes` and `dropped`.
fn review(verdict: &str, changes: Value, dropped: Value) -> Value {
    json!({
        "verdict": verdict,
        "diagnosis": "The loss rose from 1.42 at epoch 2 to 14.09 at epoch 10: the rate is too high.",
        "changes": changes,
        "dropped": dropped,
        "expected_effect": null,
        "risk": null,
        "alternatives": null
    })
}

/// Responds with each template in turn, then the last one forever.
struct Sequence(Vec<ResponseTemplate>, std::sync::atomic::AtomicUsize);

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0[i.min(self.0.len() - 1)].clone()
    }
}

/// A server answering each request with the next of `answers`, expecting exactly
/// `calls` requests (checked when it drops).
async fn server(answers: Vec<Value>, calls: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(Sequence(
            answers.iter().map(ok).collect(),
            std::sync::atomic::AtomicUsize::new(0),
        ))
        .expect(calls)
        .mount(&server)
        .await;
    server
}

/// `suggest` on a fresh copy of the diverging run against `server`; the scratch dir,
/// the decision and the Markdown report.
async fn decide(server: &MockServer, extra: &[&str]) -> (Scratch, Value, String) {
    let s = Scratch::new();
    s.copy_example("keras/diverging/config.json", "config.json");
    s.copy_example("keras/diverging/history.csv", "history.csv");
    let base = format!("{}/v1", server.uri());
    let mut command = s.command();
    command
        .args(["suggest", "-c", "config.json", "-m", "history.csv"])
        .args([
            "--format",
            "json",
            "--provider",
            "openai",
            "--base-url",
            &base,
        ])
        .args(extra);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert_code(&out, 0);
    let d = json(&out);
    let report = s.read(d["report"].as_str().expect("a report was written"));
    (s, d, report)
}

/// (parameter, what) of each item of the decision's review.
fn items(d: &Value) -> Vec<(String, String)> {
    d["llm"]["review"]["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no review: {d:#}"))
        .iter()
        .map(|i| {
            (
                i["parameter"].as_str().unwrap().to_string(),
                i["what"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// (parameter, new value) of the decision's accepted changes.
fn accepted(d: &Value) -> Vec<(String, Value)> {
    d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["parameter"].as_str().unwrap().to_string(),
                c["new"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agreeing_model_gets_the_rules_proposal_in_one_call() {
    let server = server(vec![review("agree", json!([]), Value::Null)], 1).await;
    let (s, d, report) = decide(&server, &[]).await;
    assert_eq!(d["provider"], "openai");
    assert_eq!(accepted(&d), vec![("optimizer.lr".into(), json!(0.042))]);
    assert_eq!(d["actions"], json!(["restore_checkpoint"]));
    let llm = &d["llm"];
    assert_eq!(
        (llm["answers"].as_u64(), llm["repairs"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(llm["first_verdict"], "agree");
    assert_eq!(llm["first_answer_valid"], true);
    assert_eq!(llm["review"]["verdict"], "agree");
    assert_eq!(items(&d), pairs(&[("optimizer.lr", "agreed")]));
    assert_eq!(
        d["review_summary"],
        "the model agreed with the rules: optimizer.lr 0.42 → 0.042"
    );
    assert!(
        report.contains(
            "- **Review:** the model agreed with the rules: `optimizer.lr` 0.42 → 0.042\n"
        ),
        "{report}"
    );
    assert!(s.read("config.retuned.json").contains("\"lr\": 0.042"));

    // The request carried the rules' proposal as data, in the answer's shape, and the
    // system prompt no longer holds an example value to copy.
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let system = body["messages"][0]["content"].as_str().unwrap();
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        !system.contains("0.0005") && !system.contains("0.7"),
        "{system}"
    );
    let proposal = user
        .split("The rules advisor's proposal for the next epoch (JSON):\n")
        .nth(1)
        .and_then(|rest| rest.split("\n</data>").next())
        .unwrap_or_else(|| panic!("no proposal in the prompt:\n{user}"));
    let proposal: Value = serde_json::from_str(proposal).unwrap();
    assert_eq!(proposal["changes"][0]["parameter"], "optimizer.lr");
    assert_eq!(proposal["changes"][0]["new_value"], json!(0.042));
    assert!(
        proposal["changes"][0]["rationale"]
            .as_str()
            .unwrap()
            .contains("14.09")
    );
    assert_eq!(proposal["actions"], json!(["restore_checkpoint"]));
    // And the schema asks for the verdict next to the changes.
    let schema = &body["response_format"]["json_schema"]["schema"];
    assert_eq!(
        schema["properties"]["verdict"]["enum"],
        json!(["agree", "amend", "replace"])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn agreeing_ignores_whatever_the_change_list_holds_and_spends_no_repair() {
    // A weak model says agree and still fills the list with nonsense (the old prompt's
    // example value on an integer): agreeing is taken at its word, nothing to repair.
    let answer = review(
        "agree",
        json!([{"parameter": "epochs", "new_value": 0.0005, "rationale": "", "confidence": 1.5}]),
        Value::Null,
    );
    let server = server(vec![answer], 1).await;
    let (_s, d, _report) = decide(&server, &[]).await;
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["llm"]["repairs"], 0);
    assert_eq!(accepted(&d), vec![("optimizer.lr".into(), json!(0.042))]);
    assert_eq!(d["rejected"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_amendment_changes_a_value_adds_one_and_the_report_says_from_what_to_what() {
    let answer = review(
        "amend",
        json!([
            {"parameter": "optimizer.lr", "new_value": 0.1, "rationale": "loss was 1.42 at epoch 2 before it rose; a 4x cut is enough", "confidence": 0.6},
            {"parameter": "optimizer.momentum", "new_value": 0.8, "rationale": "momentum 0.9 amplified the rise from epoch 3 to 10", "confidence": 0.5}
        ]),
        Value::Null,
    );
    let server = server(vec![answer], 1).await;
    let (_s, d, report) = decide(&server, &[]).await;
    assert_eq!(d["provider"], "openai");
    assert_eq!(d["llm"]["first_verdict"], "amend");
    assert_eq!(d["llm"]["repairs"], 0);
    assert_eq!(
        items(&d),
        pairs(&[("optimizer.lr", "amended"), ("optimizer.momentum", "added")])
    );
    let lr = &d["llm"]["review"]["items"][0];
    assert_eq!(
        (&lr["old"], &lr["rules"], &lr["model"]),
        (&json!(0.42), &json!(0.042), &json!(0.1))
    );
    // Validation decides every value: what it accepted is what the summary names.
    let changes = accepted(&d);
    assert!(
        changes.contains(&("optimizer.momentum".into(), json!(0.8))),
        "{d:#}"
    );
    let lr_new = changes
        .iter()
        .find(|(p, _)| p == "optimizer.lr")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{d:#}"));
    let summary = d["review_summary"].as_str().unwrap();
    assert!(
        summary.starts_with(
            "the model amended the rules' proposal: optimizer.lr 0.42 → 0.1 instead of 0.042"
        ),
        "{summary}"
    );
    if lr_new != json!(0.1) {
        assert!(
            summary.contains(&format!("clamped it to {lr_new}")),
            "{summary}"
        );
    }
    assert!(
        summary.contains("added optimizer.momentum 0.9 → 0.8"),
        "{summary}"
    );
    assert!(
        report.contains("- **Review:** the model amended the rules' proposal: `optimizer.lr` 0.42 → 0.1 instead of 0.042"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_amendment_can_drop_a_rules_change_with_its_reason() {
    let answer = review(
        "amend",
        json!([{"parameter": "batch_size", "new_value": 128, "rationale": "the loss is noisy from epoch 3 on", "confidence": 0.5}]),
        json!([{"parameter": "optimizer.lr", "reason": "the batch change alone lowers the step noise"}]),
    );
    let server = server(vec![answer], 1).await;
    let (_s, d, report) = decide(&server, &[]).await;
    assert_eq!(
        items(&d),
        pairs(&[("optimizer.lr", "dropped"), ("batch_size", "added")])
    );
    assert_eq!(
        d["llm"]["review"]["items"][0]["reason"],
        "the batch change alone lowers the step noise"
    );
    let summary = d["review_summary"].as_str().unwrap();
    assert!(
        summary.contains(
            "dropped optimizer.lr 0.42 → 0.042 (the batch change alone lowers the step noise)"
        ),
        "{summary}"
    );
    assert!(
        report.contains("dropped `optimizer.lr` 0.42 → 0.042 (the batch change"),
        "{report}"
    );
    // The rules' actions stand whatever the model says.
    assert_eq!(d["actions"], json!(["restore_checkpoint"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replacement_drops_every_rules_change_it_does_not_make() {
    let answer = review(
        "replace",
        json!([{"parameter": "optimizer.momentum", "new_value": 0.5, "rationale": "momentum 0.9 carried the rise from 1.42 to 14.09", "confidence": 0.4}]),
        Value::Null,
    );
    let server = server(vec![answer], 1).await;
    let (s, d, _report) = decide(&server, &[]).await;
    assert_eq!(d["llm"]["review"]["verdict"], "replace");
    assert_eq!(
        items(&d),
        pairs(&[("optimizer.lr", "dropped"), ("optimizer.momentum", "added")])
    );
    let summary = d["review_summary"].as_str().unwrap();
    assert!(
        summary.starts_with("the model replaced the rules' proposal: dropped optimizer.lr 0.42 → 0.042 (no reason given)"),
        "{summary}"
    );
    // What reaches the file is what validation accepted of the model's proposal.
    let written = s.read("config.retuned.json");
    for (parameter, value) in accepted(&d) {
        let key = parameter.rsplit('.').next().unwrap();
        assert!(
            written.contains(&format!("\"{key}\": {value}")),
            "{written}"
        );
    }
    assert!(
        !accepted(&d).iter().any(|(p, _)| p == "optimizer.lr"),
        "{d:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_amendment_is_repaired_once_with_the_reasons() {
    let bad = review(
        "amend",
        json!([{"parameter": "optimizer.lr", "new_value": 100, "rationale": "go faster", "confidence": 0.9}]),
        Value::Null,
    );
    let server = server(vec![bad, review("agree", json!([]), Value::Null)], 2).await;
    let (_s, d, report) = decide(&server, &[]).await;
    assert_eq!(d["provider"], "openai");
    let llm = &d["llm"];
    assert_eq!(
        (llm["answers"].as_u64(), llm["repairs"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(llm["first_answer_parsed"], true);
    assert_eq!(llm["first_answer_valid"], false);
    assert_eq!(llm["first_verdict"], "amend");
    assert_eq!(llm["review"]["verdict"], "agree");
    assert_eq!(accepted(&d), vec![("optimizer.lr".into(), json!(0.042))]);
    assert!(
        report.contains("**Review:** the model agreed with the rules"),
        "{report}"
    );
    // The repair carried the model's answer and why its value was rejected.
    let requests = server.received_requests().await.unwrap();
    let second = String::from_utf8_lossy(&requests[1].body);
    assert!(
        second.contains("optimizer.lr = 100: ") && second.contains("outside the bounds"),
        "{second}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verdict_that_is_not_one_of_the_three_is_repaired() {
    let odd = review("maybe", json!([]), Value::Null);
    let server = server(vec![odd, review("agree", json!([]), Value::Null)], 2).await;
    let (_s, d, _report) = decide(&server, &[]).await;
    assert_eq!(d["llm"]["first_answer_parsed"], false);
    assert_eq!(d["llm"]["review"]["verdict"], "agree");
    let requests = server.received_requests().await.unwrap();
    let body: Value = serde_json::from_slice(&requests[1].body).unwrap();
    let last = body["messages"].as_array().unwrap().last().unwrap()["content"].clone();
    assert!(
        last.as_str()
            .unwrap()
            .contains(r#"\"verdict\" must be \"agree\""#),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn still_invalid_after_one_repair_the_rules_decide() {
    let bad = review(
        "replace",
        json!([{"parameter": "epochs", "new_value": 0.0005, "rationale": "why", "confidence": 0.7}]),
        Value::Null,
    );
    let server = server(vec![bad], 2).await;
    let (_s, d, report) = decide(&server, &["--max-repairs", "1"]).await;
    assert_eq!(d["provider"], "openai→rules");
    assert_eq!(d["llm"]["repairs"], 1);
    assert!(
        d["llm"]["review"].is_null() && d["review_summary"].is_null(),
        "{d:#}"
    );
    assert_eq!(accepted(&d), vec![("optimizer.lr".into(), json!(0.042))]);
    let discarded = &d["rejected"][0];
    assert_eq!(discarded["parameter"], "epochs");
    assert!(
        discarded["reason"]
            .as_str()
            .unwrap()
            .starts_with("LLM suggestion not used")
    );
    assert!(!report.contains("**Review:**"), "{report}");
    assert!(report.contains("the rules advisor decided"), "{report}");
}
