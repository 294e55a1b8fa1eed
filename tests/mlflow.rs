//! `retune::mlflow` against MLflow's REST API: first against wiremock stand-ins shaped
//! like MLflow 3's answers (paging, failures, write-back requests), then against a real
//! tracking server (`mlflow server` from PyPI) with runs logged by MLflow's Python client.
//!
//! The real-server test needs a Python that has mlflow installed: set RETUNE_TEST_MLFLOW
//! to it (`.ci/run` does). Without it that test says so and returns.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use retune::diagnose::diagnose;
use retune::lang::Lang;
use retune::mlflow::{Client, Experiment, MlflowRun};
use retune::space::Space;
use retune::types::Severity;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A wiremock server on its own runtime, so the synchronous client can be called from the
/// test's thread.
struct Stand {
    runtime: tokio::runtime::Runtime,
    server: MockServer,
}

impl Stand {
    fn new() -> Stand {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(MockServer::start());
        Stand { runtime, server }
    }

    fn url(&self) -> String {
        self.server.uri()
    }

    fn mount(&self, mock: Mock) -> &Stand {
        self.runtime.block_on(mock.mount(&self.server));
        self
    }

    fn requests(&self) -> Vec<Request> {
        self.runtime
            .block_on(self.server.received_requests())
            .unwrap()
    }

    fn client(&self, retries: u32) -> Client {
        client(
            &self.url(),
            Duration::from_secs(5),
            retries,
            Duration::from_secs(10),
        )
    }
}

fn client(url: &str, timeout: Duration, retries: u32, deadline: Duration) -> Client {
    Client::new(url, timeout, retries, deadline).unwrap()
}

fn ok(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn experiment() -> Experiment {
    Experiment {
        id: "1".into(),
        name: "mnist".into(),
    }
}

/// A run as `runs/search` lists it (latest metric values only).
fn listed_run(id: &str, metrics: &[&str]) -> Value {
    json!({
        "info": {
            "run_uuid": id, "run_id": id, "experiment_id": "1", "run_name": format!("run-{id}"),
            "status": "FINISHED", "artifact_uri": format!("mlflow-artifacts:/1/{id}/artifacts"),
            "lifecycle_stage": "active", "user_id": "root", "start_time": 1, "end_time": 2
        },
        "data": {
            "metrics": metrics.iter().map(|k| json!({"key": k, "value": 0.5, "timestamp": 9, "step": 1})).collect::<Vec<_>>(),
            "params": [
                {"key": "optimizer.lr", "value": "0.01"},
                {"key": "batch_size", "value": "64"},
                {"key": "optimizer.name", "value": "adam"}
            ],
            "tags": [{"key": "mlflow.runName", "value": format!("run-{id}")}]
        },
        "inputs": {}, "outputs": {}
    })
}

fn history(key: &str, steps: std::ops::Range<i64>, value: impl Fn(i64) -> Value) -> Value {
    let metrics: Vec<Value> = steps
        .map(|s| json!({"key": key, "value": value(s), "timestamp": 1000 + s, "step": s}))
        .collect();
    json!({ "metrics": metrics })
}

fn body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

#[test]
fn runs_and_histories_are_read_across_pages() {
    let stand = Stand::new();
    // runs/search: page 1 says there is a page 2
    stand
        .mount(
            Mock::given(method("POST"))
                .and(path("/api/2.0/mlflow/runs/search"))
                .and(body_partial_json(json!({"page_token": "page-2"})))
                .respond_with(ok(json!({"runs": [listed_run("b", &["loss"])]})))
                .with_priority(1),
        )
        .mount(
            Mock::given(method("POST"))
                .and(path("/api/2.0/mlflow/runs/search"))
                .respond_with(ok(json!({
                    "runs": [listed_run("a", &["loss", "val_loss"])],
                    "next_page_token": "page-2"
                })))
                .with_priority(2),
        );
    // run a's loss comes in two pages; the second holds a NaN
    stand
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/metrics/get-history"))
                .and(query_param("run_id", "a"))
                .and(query_param("metric_key", "loss"))
                .and(query_param("page_token", "h2"))
                .respond_with(ok(history("loss", 3..5, |s| {
                    if s == 4 { json!("NaN") } else { json!(0.4) }
                })))
                .with_priority(1),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/metrics/get-history"))
                .and(query_param("run_id", "a"))
                .and(query_param("metric_key", "loss"))
                .respond_with(ok({
                    let mut page = history("loss", 0..3, |s| json!(2.0 - s as f64 * 0.5));
                    page["next_page_token"] = json!("h2");
                    page
                }))
                .with_priority(2),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/metrics/get-history"))
                .and(query_param("metric_key", "val_loss"))
                .respond_with(ok(history("val_loss", 0..5, |s| {
                    json!(2.1 - s as f64 * 0.1)
                }))),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/metrics/get-history"))
                .and(query_param("run_id", "b"))
                // an empty history is answered `{}` by MLflow
                .respond_with(ok(json!({}))),
        );

    let runs = stand
        .client(0)
        .runs(&experiment(), Some("params.batch_size = '64'"))
        .unwrap();
    assert_eq!(runs.len(), 2);
    let a = &runs[0];
    assert_eq!((a.run_id.as_str(), a.run_name.as_str()), ("a", "run-a"));
    assert_eq!(a.artifact_uri, "mlflow-artifacts:/1/a/artifacts");
    let loss = &a.metrics["loss"];
    assert_eq!(
        loss.iter().map(|p| p.step).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert!(loss[4].value.is_nan());
    assert_eq!(a.metrics["val_loss"].len(), 5);
    assert_eq!(runs[1].metrics["loss"], []);

    let requests = stand.requests();
    let searches: Vec<Value> = requests
        .iter()
        .filter(|r| r.url.path().ends_with("runs/search"))
        .map(body)
        .collect();
    assert_eq!(searches.len(), 2);
    assert_eq!(
        searches[0],
        json!({"experiment_ids": ["1"], "filter": "params.batch_size = '64'", "run_view_type": "ACTIVE_ONLY", "max_results": 1000})
    );
    assert_eq!(searches[1]["page_token"], "page-2");
    let histories = requests
        .iter()
        .filter(|r| r.url.path().ends_with("get-history"))
        .count();
    assert_eq!(histories, 4, "two pages of a/loss, a/val_loss, b/loss");
    assert!(
        requests
            .iter()
            .filter(|r| r.url.path().ends_with("get-history"))
            .all(|r| r.url.query().unwrap().contains("max_results=25000"))
    );

    // and the run reads as the pipeline's Run: nested params, epochs from step 0
    let run = a.to_run(&stand.url(), Space::load(None).unwrap()).unwrap();
    let config = run.config.as_ref().unwrap();
    assert_eq!(config.get("optimizer.lr"), Some(&json!(0.01)));
    assert_eq!(config.get("optimizer.name"), Some(&json!("adam")));
    assert_eq!(config.get("batch_size"), Some(&json!(64)));
    assert!(run.tunable("learning_rate").is_some());
    assert_eq!(run.facts.epochs_done, 5);
    assert_eq!(
        run.metrics.path,
        PathBuf::from(format!("{}/#/experiments/1/runs/a", stand.url()))
    );
    let diagnosis = diagnose(&run, Lang::En);
    assert!(
        diagnosis.has(retune::types::FindingId::Divergence),
        "{:?}",
        diagnosis.findings
    );
}

#[test]
fn an_experiment_is_found_by_id_or_name_and_a_missing_one_lists_the_others() {
    let stand = Stand::new();
    let experiment = |id: &str, name: &str| json!({"experiment": {"experiment_id": id, "name": name, "artifact_location": format!("mlflow-artifacts:/{id}"), "lifecycle_stage": "active"}});
    let not_found = ResponseTemplate::new(404).set_body_json(json!({
        "error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Could not find experiment"
    }));
    stand
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get"))
                .and(query_param("experiment_id", "7"))
                .respond_with(ok(experiment("7", "cifar"))),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get"))
                .respond_with(not_found.clone()),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get-by-name"))
                .and(query_param("experiment_name", "2024"))
                .respond_with(ok(experiment("12", "2024"))),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get-by-name"))
                .respond_with(not_found),
        )
        .mount(
            Mock::given(method("POST"))
                .and(path("/api/2.0/mlflow/experiments/search"))
                .respond_with(ok(json!({"experiments": [
                    {"experiment_id": "7", "name": "cifar"},
                    {"experiment_id": "0", "name": "Default"}
                ]}))),
        );
    let client = stand.client(0);
    let by_id = client.experiment("7").unwrap();
    assert_eq!((by_id.id.as_str(), by_id.name.as_str()), ("7", "cifar"));
    // digits that are no experiment's id are a name
    assert_eq!(client.experiment("2024").unwrap().id, "12");
    let e = client.experiment("mnist").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.to_string(),
        format!(
            "{}: no experiment named `mnist` there; experiments there: `cifar`, `Default`",
            stand.url()
        )
    );
}

#[test]
fn a_server_that_is_down_is_named_with_the_attempts_made() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let e = client(&url, Duration::from_secs(2), 2, Duration::from_secs(10))
        .experiment("mnist")
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(e.exit_code(), 2);
    assert!(
        text.starts_with(&format!("{url}: experiment `mnist`: ")),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("(3 attempts in"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_500_is_retried_until_the_server_answers() {
    let stand = Stand::new();
    stand
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get-by-name"))
                .respond_with(ResponseTemplate::new(500).set_body_string("database is locked"))
                .up_to_n_times(2)
                .with_priority(1),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get-by-name"))
                .respond_with(ok(
                    json!({"experiment": {"experiment_id": "3", "name": "mnist"}}),
                ))
                .with_priority(2),
        );
    let found = stand.client(3).experiment("mnist").unwrap();
    assert_eq!(found.id, "3");
    assert_eq!(stand.requests().len(), 3);
}

#[test]
fn a_500_that_never_ends_fails_within_the_deadline_naming_the_url() {
    let stand = Stand::new();
    stand.mount(
        Mock::given(method("POST"))
            .and(path("/api/2.0/mlflow/runs/search"))
            .respond_with(ResponseTemplate::new(500).set_body_json(json!({
                "error_code": "INTERNAL_ERROR", "message": "database is locked"
            }))),
    );
    let deadline = Duration::from_millis(1500);
    let started = Instant::now();
    let e = client(&stand.url(), Duration::from_secs(1), 50, deadline)
        .runs(&experiment(), None)
        .unwrap_err();
    let elapsed = started.elapsed();
    let text = e.to_string();
    assert!(
        elapsed < deadline + Duration::from_millis(500),
        "{elapsed:?}"
    );
    assert!(
        text.starts_with(&format!(
            "{}: runs of experiment `mnist` (id 1): HTTP 500 INTERNAL_ERROR: database is locked (",
            stand.url()
        )),
        "{text}"
    );
    let attempts = stand.requests().len();
    assert!((2..50).contains(&attempts), "{attempts} attempts");
    assert!(text.contains(&format!("({attempts} attempts in")), "{text}");
}

#[test]
fn a_slow_server_times_out() {
    let stand = Stand::new();
    stand.mount(
        Mock::given(method("GET")).respond_with(ok(json!({})).set_delay(Duration::from_secs(5))),
    );
    let started = Instant::now();
    let e = client(
        &stand.url(),
        Duration::from_millis(300),
        1,
        Duration::from_secs(3),
    )
    .experiment("mnist")
    .unwrap_err();
    let text = e.to_string();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(text.starts_with(&stand.url()), "{text}");
    assert!(
        text.contains("no answer within the request timeout of 0.3 s (2 attempts in"),
        "{text}"
    );
}

#[test]
fn an_answer_that_is_not_mlflows_says_so() {
    let stand = Stand::new();
    stand.mount(
        Mock::given(method("GET")).respond_with(ResponseTemplate::new(200).set_body_raw(
            "<!doctype html><html><title>Grafana</title></html>",
            "text/html",
        )),
    );
    let text = stand.client(0).experiment("mnist").unwrap_err().to_string();
    assert!(
        text.starts_with(&format!(
            "{}: experiment `mnist`: not an MLflow tracking server's answer (HTTP 200: text/html: `<!doctype html>",
            stand.url()
        )),
        "{text}"
    );
}

/// A run as `Client::runs` returns it, for the write-back tests.
fn run(artifact_uri: &str) -> MlflowRun {
    MlflowRun {
        run_id: "abc".into(),
        run_name: "r".into(),
        experiment_id: "1".into(),
        status: "FINISHED".into(),
        artifact_uri: artifact_uri.into(),
        params: Vec::new(),
        tags: Vec::new(),
        metrics: Default::default(),
    }
}

fn tags() -> Vec<(String, String)> {
    vec![
        ("retune.status".into(), "attention".into()),
        ("retune.findings".into(), "divergence,overfitting".into()),
    ]
}

fn artifacts() -> Vec<(String, Vec<u8>)> {
    vec![
        ("report.md".into(), b"# retune report\n".to_vec()),
        ("config.retuned.json".into(), b"{\"lr\": 0.05}\n".to_vec()),
    ]
}

#[test]
fn write_back_uploads_the_artifacts_then_sets_every_tag_in_one_call() {
    let stand = Stand::new();
    stand
        .mount(
            Mock::given(method("PUT"))
                .and(path_regex(
                    r"^/api/2\.0/mlflow-artifacts/artifacts/1/abc/artifacts/retune/[^/]+$",
                ))
                .respond_with(ok(json!({}))),
        )
        .mount(
            Mock::given(method("POST"))
                .and(path("/api/2.0/mlflow/runs/log-batch"))
                .respond_with(ok(json!({}))),
        );
    stand
        .client(0)
        .write_back(
            &run("mlflow-artifacts:/1/abc/artifacts"),
            &tags(),
            &artifacts(),
        )
        .unwrap();
    let requests = stand.requests();
    let shape: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.method.to_string(), r.url.path().to_string()))
        .collect();
    assert_eq!(
        shape,
        [
            (
                "PUT".to_string(),
                "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/retune/report.md".to_string()
            ),
            (
                "PUT".to_string(),
                "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/retune/config.retuned.json"
                    .to_string()
            ),
            (
                "POST".to_string(),
                "/api/2.0/mlflow/runs/log-batch".to_string()
            ),
        ]
    );
    assert_eq!(requests[0].body, b"# retune report\n");
    assert_eq!(requests[0].headers["content-type"], "text/markdown");
    assert_eq!(requests[1].headers["content-type"], "application/json");
    assert_eq!(
        body(&requests[2]),
        json!({"run_id": "abc", "tags": [
            {"key": "retune.status", "value": "attention"},
            {"key": "retune.findings", "value": "divergence,overfitting"}
        ]})
    );
}

#[test]
fn a_failed_write_back_leaves_nothing_behind() {
    let stand = Stand::new();
    stand
        .mount(Mock::given(method("PUT")).respond_with(ok(json!({}))))
        .mount(Mock::given(method("DELETE")).respond_with(ok(json!({}))))
        .mount(
            Mock::given(method("POST"))
                .and(path("/api/2.0/mlflow/runs/log-batch"))
                .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                    "error_code": "INVALID_STATE",
                    "message": "The run abc must be in the 'active' state."
                }))),
        );
    let e = stand
        .client(0)
        .write_back(
            &run("mlflow-artifacts:/1/abc/artifacts"),
            &tags(),
            &artifacts(),
        )
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: run abc: write-back failed, nothing was recorded: setting tags: HTTP 400 INVALID_STATE: The run abc must be in the 'active' state. (the 2 artifact(s) uploaded before were deleted again)",
            stand.url()
        )
    );
    let deleted: Vec<String> = stand
        .requests()
        .iter()
        .filter(|r| r.method.as_str() == "DELETE")
        .map(|r| r.url.path().to_string())
        .collect();
    assert_eq!(
        deleted,
        [
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/retune/report.md",
            "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/retune/config.retuned.json"
        ]
    );
}

#[test]
fn write_back_refuses_before_sending_anything() {
    let stand = Stand::new();
    let client = stand.client(0);
    // a server without artifact proxying hands out a shared folder this machine lacks
    let e = client
        .write_back(&run("/srv/mlruns/1/abc/artifacts"), &tags(), &artifacts())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("{}: run abc: ", stand.url())), "{e}");
    assert!(
        e.contains(
            "go to `/srv/mlruns/1/abc/artifacts`, and `/srv/mlruns` is not a folder on this machine"
        ),
        "{e}"
    );
    // or a kind of store retune does not write
    let e = client
        .write_back(
            &run("hdfs://nn:8020/mlruns/1/abc/artifacts"),
            &tags(),
            &artifacts(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("a kind of store retune does not write"), "{e}");
    // a tag value MLflow would refuse, or a file name that leaves retune/
    let long = vec![("retune.findings".to_string(), "x".repeat(8001))];
    assert!(
        client
            .write_back(
                &run("mlflow-artifacts:/1/abc/artifacts"),
                &long,
                &artifacts()
            )
            .is_err()
    );
    let escape = vec![("../../x.md".to_string(), Vec::new())];
    assert!(
        client
            .write_back(&run("mlflow-artifacts:/1/abc/artifacts"), &tags(), &escape)
            .is_err()
    );
    assert!(stand.requests().is_empty());
}

#[test]
fn write_back_to_a_shared_folder_puts_the_files_there_then_the_tags() {
    let stand = Stand::new();
    stand.mount(
        Mock::given(method("POST"))
            .and(path("/api/2.0/mlflow/runs/log-batch"))
            .respond_with(ok(json!({}))),
    );
    let shared = tempfile::tempdir().unwrap();
    let folder = shared.path().join("1/abc/artifacts");
    stand
        .client(0)
        .write_back(
            &run(&format!("file://{}", folder.display())),
            &tags(),
            &artifacts(),
        )
        .unwrap();
    assert_eq!(
        std::fs::read(folder.join("retune/report.md")).unwrap(),
        b"# retune report\n"
    );
    assert!(folder.join("retune/config.retuned.json").is_file());
    let requests = stand.requests();
    assert_eq!(requests.len(), 1, "only the tags go to the server");
    assert_eq!(body(&requests[0])["tags"][0]["key"], "retune.status");

    // tags refused: the files go again, so the run has neither
    let refusing = Stand::new();
    refusing.mount(
        Mock::given(method("POST"))
            .and(path("/api/2.0/mlflow/runs/log-batch"))
            .respond_with(ResponseTemplate::new(403).set_body_json(json!({
                "error_code": "PERMISSION_DENIED", "message": "Permission denied"
            }))),
    );
    let other = shared.path().join("1/def/artifacts");
    let e = refusing
        .client(0)
        .write_back(&run(&other.display().to_string()), &tags(), &artifacts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("setting tags: HTTP 403 PERMISSION_DENIED"),
        "{e}"
    );
    assert!(
        e.contains("the 2 artifact(s) uploaded before were deleted again"),
        "{e}"
    );
    assert!(!other.join("retune/report.md").exists());
}

#[test]
fn the_client_works_from_async_code_and_blocking_threads_too() {
    let stand = Stand::new();
    stand.mount(
        Mock::given(method("GET"))
            .and(path("/api/2.0/mlflow/experiments/get-by-name"))
            .respond_with(ok(
                json!({"experiment": {"experiment_id": "3", "name": "mnist"}}),
            )),
    );
    let client = std::sync::Arc::new(stand.client(0));
    let found = stand
        .runtime
        .block_on(async { client.experiment("mnist") })
        .unwrap();
    assert_eq!(found.id, "3");
    let shared = client.clone();
    let found = stand
        .runtime
        .block_on(async { tokio::task::spawn_blocking(move || shared.experiment("mnist")).await })
        .unwrap()
        .unwrap();
    assert_eq!(found.id, "3");
    // threads share one client
    std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| client.experiment("mnist").unwrap().id))
            .collect();
        for call in calls {
            assert_eq!(call.join().unwrap(), "3");
        }
    });
    // and dropping it inside a runtime does not panic
    let client = std::sync::Arc::into_inner(client).unwrap();
    stand.runtime.block_on(async move { drop(client) });
}

/// `retune review --mlflow` as a scheduler runs it, against a stand-in: one diverged run.
fn review_stand(log_batch: ResponseTemplate) -> Stand {
    let stand = Stand::new();
    stand
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get-by-name"))
                .respond_with(ok(
                    json!({"experiment": {"experiment_id": "1", "name": "mnist",
                    "artifact_location": "mlflow-artifacts:/1", "lifecycle_stage": "active"}}),
                )),
        )
        .mount(
            Mock::given(method("POST"))
                .and(path("/api/2.0/mlflow/runs/search"))
                .respond_with(ok(json!({"runs": [listed_run("a", &["loss"])]}))),
        )
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/metrics/get-history"))
                .respond_with(ok(history("loss", 0..8, |s| match s {
                    7 => json!("NaN"),
                    _ => json!([2.3, 1.9, 2.6, 9.8, 410.0, 3.2e4, 9.9e6][s as usize]),
                }))),
        )
        .mount(Mock::given(method("PUT")).respond_with(ok(json!({}))))
        .mount(Mock::given(method("DELETE")).respond_with(ok(json!({}))))
        .mount(
            Mock::given(method("POST"))
                .and(path("/api/2.0/mlflow/runs/log-batch"))
                .respond_with(log_batch),
        );
    stand
}

fn review_cli(url: &str, work: &Path, extra: &[&str]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("retune")
        .unwrap()
        .current_dir(work)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("XDG_CONFIG_HOME", work.join(".xdg"))
        .args([
            "review",
            "--mlflow",
            url,
            "--experiment",
            "mnist",
            "--format",
            "json",
        ])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn review_writes_back_only_when_asked_and_a_failed_write_back_is_an_error() {
    let stand = review_stand(ResponseTemplate::new(500));
    let work = tempfile::tempdir().unwrap();
    let out = review_cli(&stand.url(), work.path(), &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["runs"][0]["name"], "mnist/run-a");
    assert_eq!(review["runs"][0]["findings"][0]["id"], "divergence");
    let writes = |stand: &Stand| {
        stand
            .requests()
            .iter()
            .filter(|r| r.method.as_str() != "GET" && !r.url.path().ends_with("runs/search"))
            .count()
    };
    assert_eq!(writes(&stand), 0, "nothing is sent without --write-back");

    let out = review_cli(&stand.url(), work.path(), &["--write-back"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: run a: write-back failed, nothing was recorded",
            stand.url()
        )),
        "{stderr}"
    );
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["runs"][0]["written_back"], false);
    assert_eq!(review["exit_code"], 2);
}

#[test]
fn review_of_a_server_that_is_down_names_it_and_writes_nothing() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let work = tempfile::tempdir().unwrap();
    let out = review_cli(&url, work.path(), &["--write-back"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {url}: experiment `mnist`: could not connect"
        )),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[test]
fn credentials_from_the_environment_are_sent_and_never_shown() {
    use retune::mlflow::Auth;
    use wiremock::matchers::header;
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert!(Auth::from_env(&env(&[])).is_none());
    assert!(Auth::from_env(&env(&[("MLFLOW_TRACKING_USERNAME", "ann")])).is_none());
    let both = Auth::from_env(&env(&[
        ("MLFLOW_TRACKING_TOKEN", "tok-5e1f"),
        ("MLFLOW_TRACKING_USERNAME", "ann"),
        ("MLFLOW_TRACKING_PASSWORD", "pw"),
    ]))
    .unwrap();
    assert!(
        matches!(both, Auth::Token(_)),
        "the token wins, as in MLflow's client"
    );
    assert!(!format!("{both:?}").contains("tok-5e1f"));

    let stand = Stand::new();
    stand
        .mount(
            Mock::given(method("GET"))
                .and(path("/api/2.0/mlflow/experiments/get-by-name"))
                .and(header("authorization", "Basic YW5uOnB3"))
                .respond_with(ok(
                    json!({"experiment": {"experiment_id": "1", "name": "mnist"}}),
                )),
        )
        .mount(
            Mock::given(method("GET")).respond_with(ResponseTemplate::new(401).set_body_json(
                json!({"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."}),
            )),
        );
    let basic = Auth::from_env(&env(&[
        ("MLFLOW_TRACKING_USERNAME", "ann"),
        ("MLFLOW_TRACKING_PASSWORD", "pw"),
    ]));
    let with = |auth| {
        Client::with_auth(
            &stand.url(),
            Duration::from_secs(5),
            0,
            Duration::from_secs(10),
            auth,
        )
        .unwrap()
    };
    assert_eq!(with(basic).experiment("mnist").unwrap().id, "1");
    let refused = with(Auth::from_env(&env(&[(
        "MLFLOW_TRACKING_TOKEN",
        "tok-5e1f",
    )])))
    .experiment("mnist")
    .unwrap_err()
    .to_string();
    assert!(refused.contains("HTTP 401 UNAUTHENTICATED"), "{refused}");
    assert!(refused.contains("set MLFLOW_TRACKING_TOKEN"), "{refused}");
    assert!(!refused.contains("tok-5e1f"), "{refused}");
    let sent = stand.requests();
    assert_eq!(
        sent.last().unwrap().headers["authorization"],
        "Bearer tok-5e1f"
    );
}

// --- a real tracking server -----------------------------------------------------------------

/// `mlflow server` on a loopback port, in its own process group so that its workers go
/// with it; killed on drop, also when the test panics.
struct MlflowServer {
    child: Child,
    url: String,
    log: PathBuf,
}

impl MlflowServer {
    /// A server with a SQLite store and artifacts served through it, MLflow's default.
    fn start(python: &str, dir: &Path) -> MlflowServer {
        let store = format!("sqlite:///{}", dir.join("mlflow.db").display());
        let artifacts = dir.join("artifacts").display().to_string();
        MlflowServer::start_with(
            python,
            dir,
            &[
                "--backend-store-uri",
                &store,
                "--artifacts-destination",
                &artifacts,
            ],
            &[],
        )
    }

    /// A server started with `args` (its stores, its app) and `env` added.
    fn start_with(python: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> MlflowServer {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let log = dir.join("server.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(python)
            .args([
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--workers",
                "1",
            ])
            .args(["--port", &port.to_string()])
            .args(args)
            .current_dir(dir)
            .envs(quiet_mlflow())
            .envs(env.iter().copied())
            // GenAI job runners: six more processes, and a folder in /dev/shm left behind
            // by a killed server
            .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{python} -m mlflow server: {e}"));
        MlflowServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    /// Waits for `/health` to answer OK.
    fn wait_healthy(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        let address = self.url.trim_start_matches("http://").to_string();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "mlflow server exited ({status}):\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if health(&address) {
                return started.elapsed();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "mlflow server not healthy after {limit:?}:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops a child started with `process_group(0)` and everything it started.
fn stop_group(child: &mut Child) {
    // The group's id is the child's pid (`process_group(0)`); only its processes get the
    // signals.
    let group = format!("-{}", child.id());
    let signal = |name: &str| {
        let _ = Command::new("kill")
            .args([name, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    signal("-TERM");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Workers may outlive the parent by a moment, or the parent may not have stopped.
    signal("-KILL");
    let _ = child.wait();
}

/// MLflow's client and server phone home unless told not to; here there is no network,
/// and the attempt costs seconds.
fn quiet_mlflow() -> [(&'static str, &'static str); 2] {
    [
        ("MLFLOW_DISABLE_TELEMETRY", "true"),
        ("DO_NOT_TRACK", "true"),
    ]
}

/// `GET /health` answered `OK`, over a plain socket (the library's client is what is
/// under test).
fn health(address: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200") && answer.trim_end().ends_with("OK")
}

/// Runs tests/python/mlflow_log_runs.py in `dir` (outside this repository, whose git
/// state MLflow would otherwise spend seconds recording) and parses the JSON it prints.
fn python_script(python: &str, dir: &Path, args: &[&str]) -> Value {
    python_script_env(python, dir, args, &[])
}

/// As `python_script`, with `env` added (credentials, a file store's permission, S3).
fn python_script_env(python: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/mlflow_log_runs.py");
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .current_dir(dir)
        .envs(quiet_mlflow())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn against_a_real_mlflow_server() {
    let python = match std::env::var("RETUNE_TEST_MLFLOW") {
        Ok(p) if !p.trim().is_empty() => p,
        _ => {
            eprintln!(
                "RETUNE_TEST_MLFLOW is not set: point it at a Python with mlflow installed (see .ci/run)"
            );
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = MlflowServer::start(&python, dir.path());
    let startup = server.wait_healthy(Duration::from_secs(180));
    eprintln!("mlflow server healthy after {:.1} s", startup.as_secs_f64());
    let url = server.url.clone();

    let logged = Instant::now();
    let ids = python_script(&python, dir.path(), &["log", &url, "retune-test"]);
    eprintln!(
        "three runs logged in {:.1} s",
        logged.elapsed().as_secs_f64()
    );

    let client = client(&url, Duration::from_secs(10), 2, Duration::from_secs(30));
    let experiment = client.experiment("retune-test").unwrap();
    assert_eq!(client.experiment(&experiment.id).unwrap(), experiment);
    let missing = client.experiment("no-such").unwrap_err().to_string();
    assert_eq!(
        missing,
        format!(
            "{url}: no experiment named `no-such` there; experiments there: `retune-test`, `Default`"
        )
    );
    let bad_filter = client
        .runs(&experiment, Some("params.optimizer = = 'sgd'"))
        .unwrap_err()
        .to_string();
    assert!(
        bad_filter.contains(
            "the filter `params.optimizer = = 'sgd'` was refused: HTTP 400 INVALID_PARAMETER_VALUE"
        ),
        "{bad_filter}"
    );

    let runs = client.runs(&experiment, None).unwrap();
    assert_eq!(runs.len(), 3);
    let by_name = |name: &str| -> &MlflowRun {
        let run = runs.iter().find(|r| r.run_name == name).unwrap();
        assert_eq!(run.run_id, ids[name].as_str().unwrap());
        run
    };
    let epochs = [("healthy", 10), ("diverged", 7), ("overfitting", 12)];
    for (name, n) in epochs {
        let run = by_name(name);
        for key in ["loss", "val_loss", "accuracy", "val_accuracy"] {
            let steps: Vec<i64> = run.metrics[key].iter().map(|p| p.step).collect();
            assert_eq!(steps, (0..n).collect::<Vec<_>>(), "{name}/{key}");
        }
        assert!(
            run.artifact_uri.starts_with("mlflow-artifacts:/"),
            "{}",
            run.artifact_uri
        );
    }
    let diverged = by_name("diverged");
    assert_eq!(diverged.status, "FAILED");
    let loss = &diverged.metrics["loss"];
    assert_eq!(
        loss[5].value,
        f64::INFINITY,
        "MLflow's clamped infinity reads back as one"
    );
    assert!(loss[6].value.is_nan());
    let sgd = client
        .runs(&experiment, Some("params.optimizer = 'sgd'"))
        .unwrap();
    assert_eq!(sgd.len(), 1);
    assert_eq!(sgd[0].run_id, diverged.run_id);

    for (name, _) in epochs {
        let run = by_name(name);
        let read = run
            .to_run(client.url(), Space::load(None).unwrap())
            .unwrap();
        assert_eq!(read.tunable("learning_rate").unwrap().path, "learning_rate");
        let diagnosis = diagnose(&read, Lang::En);
        let serious: Vec<&str> = diagnosis
            .findings
            .iter()
            .filter(|f| f.severity >= Severity::Warning)
            .map(|f| f.id.as_str())
            .collect();
        eprintln!(
            "{name}: findings {:?}",
            diagnosis
                .findings
                .iter()
                .map(|f| (f.id, f.severity))
                .collect::<Vec<_>>()
        );
        match name {
            "healthy" => assert!(serious.is_empty(), "healthy: {serious:?}"),
            "diverged" => assert!(serious.contains(&"divergence"), "diverged: {serious:?}"),
            _ => assert!(serious.contains(&"overfitting"), "overfitting: {serious:?}"),
        }

        let findings: Vec<&str> = diagnosis.findings.iter().map(|f| f.id.as_str()).collect();
        let status = if serious.is_empty() {
            "healthy"
        } else {
            "attention"
        };
        let tags = vec![
            ("retune.status".to_string(), status.to_string()),
            ("retune.findings".to_string(), findings.join(",")),
        ];
        let report = format!("# retune: {name}\n\n{}\n", findings.join(", "));
        let config = read.config.as_ref().unwrap().text.clone();
        client
            .write_back(
                run,
                &tags,
                &[
                    ("report.md".into(), report.clone().into_bytes()),
                    ("config.json".into(), config.clone().into_bytes()),
                ],
            )
            .unwrap();
        let back = python_script(&python, dir.path(), &["read-back", &url, &run.run_id]);
        assert_eq!(
            back["tags"],
            json!({"retune.status": status, "retune.findings": findings.join(",")}),
            "{name}"
        );
        assert_eq!(back["artifacts"]["retune/report.md"], report, "{name}");
        assert_eq!(back["artifacts"]["retune/config.json"], config, "{name}");
    }

    // The whole job a nightly scheduler runs: `retune review` on the experiment, writing
    // the result back. Its tags replace the ones the library test set above.
    let work = tempfile::tempdir().unwrap();
    let out = assert_cmd::Command::cargo_bin("retune")
        .unwrap()
        .current_dir(work.path())
        .env("SOURCE_DATE_EPOCH", "1790000000")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("XDG_CONFIG_HOME", work.path().join(".xdg"))
        .args(["review", "--mlflow", &url, "--experiment", "retune-test"])
        .args(["--write-back", "--format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    let line = |name: &str| -> &Value {
        review["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == format!("retune-test/{name}"))
            .unwrap_or_else(|| panic!("{name}: {review:#}"))
    };
    assert_eq!(line("healthy")["status"], "healthy");
    assert_eq!(line("overfitting")["status"], "warning");
    let diverged = line("diverged");
    assert_eq!(diverged["status"], "critical");
    assert_eq!(diverged["source"]["kind"], "mlflow");
    assert_eq!(diverged["source"]["run_status"], "FAILED");
    assert_eq!(diverged["findings"][0]["id"], "divergence");
    let cut = &diverged["changes"][0];
    assert_eq!(cut["parameter"], "learning_rate");
    for name in ["healthy", "diverged", "overfitting"] {
        assert_eq!(line(name)["written_back"], true, "{name}");
    }

    let back = python_script(
        &python,
        dir.path(),
        &["read-back", &url, &diverged_id(&ids)],
    );
    assert_eq!(back["tags"]["retune.status"], "critical");
    assert!(
        back["tags"]["retune.findings"]
            .as_str()
            .unwrap()
            .starts_with("divergence"),
        "{back:#}"
    );
    assert_eq!(back["tags"]["retune.provider"], "rules");
    // Every key is sent, empty where it does not apply, so an old review's does not linger.
    assert_eq!(back["tags"]["retune.error"], "");
    let report = back["artifacts"]["retune/report.md"].as_str().unwrap();
    assert!(report.contains("learning_rate"), "{report}");
    let adjusted: Value = serde_json::from_str(
        back["artifacts"]["retune/config.retuned.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(adjusted["learning_rate"], cut["new"]);
    assert!(back["artifacts"]["retune/report.json"].is_string());

    // Without --write-back nothing is sent: the tags stay as the review above left them.
    let out = assert_cmd::Command::cargo_bin("retune")
        .unwrap()
        .current_dir(work.path())
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env("XDG_CONFIG_HOME", work.path().join(".xdg"))
        .args(["review", "--mlflow", &url, "--experiment", "retune-test"])
        .args(["--filter", "params.optimizer = 'adam'", "--format", "json"])
        .output()
        .unwrap();
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["totals"]["runs"], 2, "{review:#}");
    let back = python_script(
        &python,
        dir.path(),
        &["read-back", &url, &diverged_id(&ids)],
    );
    assert_eq!(back["tags"]["retune.status"], "critical");
    drop(server);
}

fn diverged_id(ids: &Value) -> String {
    ids["diverged"].as_str().unwrap().to_string()
}

// --- a file store, servers that do not proxy artifacts, and basic-auth, all real -------------

/// The Python with mlflow (and moto, Flask-WTF) that `.ci/run` points RETUNE_TEST_MLFLOW at.
fn real_python() -> Option<String> {
    match std::env::var("RETUNE_TEST_MLFLOW") {
        Ok(p) if !p.trim().is_empty() => Some(p),
        _ => {
            eprintln!(
                "RETUNE_TEST_MLFLOW is not set: point it at a Python with mlflow installed (see .ci/run)"
            );
            None
        }
    }
}

/// `retune review ARGS --format json` in `work`, with `env` added.
fn review_in(work: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("retune")
        .unwrap()
        .current_dir(work)
        .env("SOURCE_DATE_EPOCH", "1790000000")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MLFLOW_TRACKING_USERNAME")
        .env_remove("MLFLOW_TRACKING_PASSWORD")
        .env_remove("MLFLOW_TRACKING_TOKEN")
        .env("XDG_CONFIG_HOME", work.join(".xdg"))
        .arg("review")
        .args(args)
        .args(["--format", "json"])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// What a review says of each run, the parts that depend on the data and not on where it
/// was read from: name → (status, epochs, finding ids, changed parameters).
fn verdicts(review: &Value) -> std::collections::BTreeMap<String, Value> {
    review["runs"]
        .as_array()
        .unwrap_or_else(|| panic!("{review:#}"))
        .iter()
        .map(|r| {
            let ids: Vec<&Value> = r["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| &f["id"])
                .collect();
            let changes: Vec<&Value> = r["changes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| &c["parameter"])
                .collect();
            (
                r["name"].as_str().unwrap().to_string(),
                json!([r["status"], r["epochs"], ids, changes]),
            )
        })
        .collect()
}

#[test]
fn a_file_store_written_by_mlflows_client_reads_as_its_server_reads_it() {
    let Some(python) = real_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mlruns");
    let file_store = [("MLFLOW_ALLOW_FILE_STORE", "true")];
    let uri = format!("file:{}", store.display());
    let ids = python_script_env(
        &python,
        dir.path(),
        &["log", &uri, "retune-test"],
        &file_store,
    );

    let work = dir.path();
    let by_folder = review_in(work, &["mlruns"], &[]);
    assert_eq!(
        by_folder.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&by_folder.stderr)
    );
    let by_folder: Value = serde_json::from_slice(&by_folder.stdout).unwrap();
    let by_uri = review_in(
        work,
        &["--mlflow", "file:./mlruns", "--experiment", "retune-test"],
        &[],
    );
    let by_uri: Value = serde_json::from_slice(&by_uri.stdout).unwrap();
    let local = verdicts(&by_folder);
    assert_eq!(local, verdicts(&by_uri));
    assert_eq!(
        local.keys().collect::<Vec<_>>(),
        [
            "retune-test/diverged",
            "retune-test/healthy",
            "retune-test/overfitting"
        ],
        "the deleted run is left out"
    );
    assert_eq!(local["retune-test/healthy"][0], "healthy");
    assert_eq!(local["retune-test/diverged"][0], "critical");
    assert_eq!(local["retune-test/diverged"][1], 7);
    assert_eq!(local["retune-test/diverged"][3], json!(["learning_rate"]));
    assert_eq!(local["retune-test/overfitting"][0], "warning");
    let diverged = by_folder["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"]["run_id"] == ids["diverged"])
        .unwrap();
    assert_eq!(diverged["source"]["kind"], "mlruns");
    assert_eq!(diverged["source"]["run_status"], "FAILED");

    // The same store served by `mlflow server`: the REST path says the same of every run.
    let backend = format!("file:{}", store.display());
    let artifacts = dir.path().join("served-artifacts").display().to_string();
    let mut server = MlflowServer::start_with(
        &python,
        dir.path(),
        &[
            "--backend-store-uri",
            &backend,
            "--artifacts-destination",
            &artifacts,
        ],
        &file_store,
    );
    server.wait_healthy(Duration::from_secs(180));
    let served = review_in(
        work,
        &["--mlflow", &server.url, "--experiment", "retune-test"],
        &[],
    );
    assert_eq!(
        served.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    let served: Value = serde_json::from_slice(&served.stdout).unwrap();
    assert_eq!(verdicts(&served), local);
}

/// moto's S3 server on a loopback port, in its own process group; stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(python: &str, dir: &Path) -> Moto {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new(python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{python} -m moto.server: {e}"));
        let address = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "moto not listening: {}",
                std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Moto {
            child,
            endpoint: format!("http://{address}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop_group(&mut self.child);
    }
}

#[test]
fn write_back_where_the_server_does_not_proxy_artifacts() {
    let Some(python) = real_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&python, dir.path());
    let s3 = [
        ("MLFLOW_S3_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ];
    python_script_env(
        &python,
        dir.path(),
        &["make-bucket", &moto.endpoint, "team-artifacts"],
        &s3,
    );
    // The team's server: no artifact proxy, a shared folder as the default artifact root;
    // one experiment keeps its artifacts on S3 instead.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let store = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
    let root = shared.display().to_string();
    let mut server = MlflowServer::start_with(
        &python,
        dir.path(),
        &[
            "--backend-store-uri",
            &store,
            "--no-serve-artifacts",
            "--default-artifact-root",
            &root,
        ],
        &[],
    );
    server.wait_healthy(Duration::from_secs(180));
    let url = server.url.clone();
    let in_folder = python_script(&python, dir.path(), &["log", &url, "in-folder"]);
    let on_s3 = python_script_env(
        &python,
        dir.path(),
        &["log", &url, "on-s3", "s3://team-artifacts/mlflow"],
        &s3,
    );
    let work = tempfile::tempdir().unwrap();

    // A shared folder: the files land in each run's folder, the tags on the server.
    let out = review_in(
        work.path(),
        &[
            "--mlflow",
            &url,
            "--experiment",
            "in-folder",
            "--write-back",
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = python_script(
        &python,
        dir.path(),
        &["read-back", &url, &diverged_id(&in_folder)],
    );
    assert_eq!(back["tags"]["retune.status"], "critical", "{back:#}");
    assert!(
        back["artifacts"]["retune/report.md"]
            .as_str()
            .unwrap()
            .contains("learning_rate")
    );
    let on_disk = format!(
        "{}/artifacts/retune/config.retuned.json",
        diverged_id(&in_folder)
    );
    let found: Vec<PathBuf> = walk_files(&shared)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(&on_disk))
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");

    // S3 that cannot be reached: a clear error naming the store, and no tag on any run.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let unreachable = [
        ("MLFLOW_S3_ENDPOINT_URL", closed.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let out = review_in(
        work.path(),
        &["--mlflow", &url, "--experiment", "on-s3", "--write-back"],
        &unreachable,
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{url}: run ")), "{stderr}");
    assert!(
        stderr.contains("write-back failed, nothing was recorded: uploading artifact retune/"),
        "{stderr}"
    );
    assert!(
        stderr.contains("to `s3://team-artifacts/mlflow/"),
        "{stderr}"
    );
    for name in ["healthy", "diverged", "overfitting"] {
        let id = on_s3[name].as_str().unwrap();
        let back = python_script_env(&python, dir.path(), &["read-back", &url, id], &s3);
        assert_eq!(back["tags"], json!({}), "{name}: {back:#}");
        assert_eq!(back["artifacts"], json!({}), "{name}: {back:#}");
    }

    // S3 reached (moto, with the standard AWS variables and MLflow's endpoint variable):
    // MLflow's own client then finds the files where it would have put them. A report
    // folder of its own: the failed review above kept its proposals in its runs' local
    // history, which a second review there would read as already made.
    let fresh = tempfile::tempdir().unwrap();
    let out = review_in(
        fresh.path(),
        &["--mlflow", &url, "--experiment", "on-s3", "--write-back"],
        &s3,
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let review: Value = serde_json::from_slice(&out.stdout).unwrap();
    for run in review["runs"].as_array().unwrap() {
        assert_eq!(run["written_back"], true, "{run:#}");
    }
    let back = python_script_env(
        &python,
        dir.path(),
        &["read-back", &url, &diverged_id(&on_s3)],
        &s3,
    );
    assert_eq!(back["tags"]["retune.status"], "critical", "{back:#}");
    let adjusted: Value = serde_json::from_str(
        back["artifacts"]["retune/config.retuned.json"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let line = review["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "on-s3/diverged")
        .unwrap();
    assert_eq!(adjusted["learning_rate"], line["changes"][0]["new"]);
    assert!(back["artifacts"]["retune/report.json"].is_string());
    drop(server);
    drop(moto);
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.path().is_dir() {
            out.extend(walk_files(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn basic_auth_on_a_real_server_reads_writes_and_refuses_by_user() {
    let Some(python) = real_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    const ADMIN_PW: &str = "adm-5c1e-pass-9041";
    const READER_PW: &str = "rdr-90af-pass-3318";
    const WRONG_PW: &str = "wrong-77d2-pass-5507";
    let config = dir.path().join("auth.ini");
    std::fs::write(
        &config,
        format!(
            "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{}\nadmin_username = admin\nadmin_password = {ADMIN_PW}\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
            dir.path().join("auth.db").display()
        ),
    )
    .unwrap();
    let store = format!("sqlite:///{}", dir.path().join("mlflow.db").display());
    let artifacts = dir.path().join("artifacts").display().to_string();
    let config_text = config.display().to_string();
    let mut server = MlflowServer::start_with(
        &python,
        dir.path(),
        &[
            "--app-name",
            "basic-auth",
            "--backend-store-uri",
            &store,
            "--artifacts-destination",
            &artifacts,
        ],
        &[
            ("MLFLOW_AUTH_CONFIG_PATH", config_text.as_str()),
            ("MLFLOW_FLASK_SERVER_SECRET_KEY", "retune-test-only"),
        ],
    );
    server.wait_healthy(Duration::from_secs(180));
    let url = server.url.clone();
    let admin = [
        ("MLFLOW_TRACKING_USERNAME", "admin"),
        ("MLFLOW_TRACKING_PASSWORD", ADMIN_PW),
    ];
    let reader = [
        ("MLFLOW_TRACKING_USERNAME", "reader"),
        ("MLFLOW_TRACKING_PASSWORD", READER_PW),
    ];
    let wrong = [
        ("MLFLOW_TRACKING_USERNAME", "admin"),
        ("MLFLOW_TRACKING_PASSWORD", WRONG_PW),
    ];
    python_script_env(
        &python,
        dir.path(),
        &["add-user", &url, "reader", READER_PW],
        &admin,
    );
    let ids = python_script_env(&python, dir.path(), &["log", &url, "retune-test"], &admin);
    let work = tempfile::tempdir().unwrap();
    let args = ["--mlflow", url.as_str(), "--experiment", "retune-test"];
    let with_write = [&args[..], &["--write-back"]].concat();
    // No secret in what retune prints or writes.
    let no_secret = |out: &std::process::Output, work: &Path| {
        let mut texts = vec![
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ];
        texts.extend(
            walk_files(work)
                .iter()
                .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()),
        );
        for text in texts {
            for secret in [ADMIN_PW, READER_PW, WRONG_PW] {
                assert!(!text.contains(secret), "a password was shown: {text}");
            }
        }
    };
    let untouched = || {
        for name in ["healthy", "diverged", "overfitting"] {
            let back = python_script_env(
                &python,
                dir.path(),
                &["read-back", &url, ids[name].as_str().unwrap()],
                &admin,
            );
            assert_eq!(back["tags"], json!({}), "{name}: {back:#}");
            assert_eq!(back["artifacts"], json!({}), "{name}: {back:#}");
        }
    };

    // No credentials, or a wrong password: refused at the first call, naming the server.
    for env in [&[][..], &wrong[..]] {
        let out = review_in(work.path(), &with_write, env);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!("error: {url}: experiment `retune-test`: HTTP 401")),
            "{stderr}"
        );
        assert!(stderr.contains("refused the ones given"), "{stderr}");
        no_secret(&out, work.path());
    }
    untouched();

    // A user with READ: the review reads, and its write-back is refused with nothing written.
    let out = review_in(work.path(), &args, &reader);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_secret(&out, work.path());
    let out = review_in(work.path(), &with_write, &reader);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{url}: run ")), "{stderr}");
    assert!(
        stderr.contains("write-back failed, nothing was recorded"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 403"), "{stderr}");
    assert!(stderr.contains("do not allow this"), "{stderr}");
    no_secret(&out, work.path());
    untouched();

    // The admin writes back (in a report folder of its own: the refused write-back above
    // kept its proposals in the runs' local history, which would read as already made).
    let work = tempfile::tempdir().unwrap();
    let out = review_in(work.path(), &with_write, &admin);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    no_secret(&out, work.path());
    let back = python_script_env(
        &python,
        dir.path(),
        &["read-back", &url, &diverged_id(&ids)],
        &admin,
    );
    assert_eq!(back["tags"]["retune.status"], "critical", "{back:#}");
    assert!(back["artifacts"]["retune/report.md"].is_string());
    drop(server);
}
