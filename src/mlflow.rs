//! An MLflow tracking server as a source of runs and a place for results: experiments
//! and runs are read through MLflow's REST API (`/api/2.0/mlflow/…`), turned into the
//! `Run` the pipeline reads, and, when asked, retune's verdict goes back onto each run as
//! tags and artifacts. This module owns the HTTP side (timeouts, retries, paging, error
//! messages that name the server) and the mapping from MLflow's data model to ours; what
//! to write back and when is `review`'s business.
//!
//! Reading, and the choices made:
//! - Params become the config: a JSON object whose values are numbers, booleans or null
//!   where the text is one (`0.001`, `32`, `True`, `None`, Python's spellings included)
//!   or a JSON array (`[0.9, 0.999]`), and strings otherwise. A dotted name such as
//!   `optimizer.lr` becomes a nested object, so the dotted paths the parameter space
//!   knows resolve. When nesting would collide (a param `optimizer` beside
//!   `optimizer.lr`, or an empty segment as in `a..b`), the dotted name is kept flat and
//!   the metrics' warnings say so: dotted paths do not reach such a key. A run without
//!   params has no config, so the config checks are reported as skipped.
//! - Metric histories become the series, in full (`metrics/get-history`, paged). MLflow's
//!   `step` is read as the epoch wherever it is one. In order: (1) a run that logs an
//!   `epoch` metric (the Hugging Face Trainer's MLflowCallback logs it at every global
//!   step) places every value in the epoch logged at its step, `ceil(epoch)` and at least
//!   1, as for `trainer_state.json`; (2) otherwise a metric whose steps are dense (their
//!   span at most `SPARSE_STEP_FACTOR` times their count, as `mlflow.keras.autolog`,
//!   Lightning autolog and `log_metric(step=epoch)` write them) has its step as the
//!   epoch, counted from 0 when the run's smallest such step is 0 (autolog) and from 1
//!   otherwise; (3) a metric logged many times at one step (`log_metric` without a step)
//!   takes its values in time order as epochs 1, 2, 3 …; (4) a metric with sparse steps
//!   (optimizer steps) is placed, by its timestamps, in the epoch whose epoch-level
//!   values were logged next, and values after the last complete epoch are left out; in
//!   a run with no epoch-level metric at all, each distinct step is one epoch, in order,
//!   and a warning says so. A metric logged once is epoch-level when its step is within
//!   (or one past) the epoch-level steps, or when no metric has a longer history. Values
//!   within one epoch are averaged. System metrics (`system/…`) are not training metrics
//!   and are left out. Names go through the same normalisation as every other format.
//! - MLflow stores infinities as ±`f64::MAX` (its SQL store clamps them); those are read
//!   back as infinities, which is what the trainer logged. NaN comes back as `"NaN"`.
//!
//! Resilience: each request has a timeout; connection failures, timeouts, 429 and 5xx are
//! retried with exponential backoff and jitter (honouring `Retry-After`), all within the
//! deadline, which bounds one API call with its retries (a run's history is many calls).
//! Every call this module makes is idempotent (reads, setting tags to fixed values,
//! putting a file), so a retry cannot double anything. Errors are `Error::Input` (exit 2)
//! whose "path" is the server's URL, with the run id where they are about one run.
//!
//! The API is synchronous: a `Client` drives its own single-threaded tokio runtime, and
//! may be shared by threads (their calls take turns driving it). Called from async code
//! it still works, on a thread of its own, but blocks the calling task meanwhile: from
//! there, call it through `tokio::task::spawn_blocking`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};

use crate::config::ConfigDoc;
use crate::error::{Error, Result};
use crate::metrics::{Format, MetricsBuilder};
use crate::run::Run;
use crate::settings::Secret;
use crate::space::Space;

/// Runs asked for per `runs/search` page: the server's default page size (its cap is
/// 50,000, but a page of 1,000 runs with their params and tags is already megabytes).
const RUNS_PAGE_SIZE: u32 = 1000;
/// Points asked for per `metrics/get-history` page: the most the server returns in one.
const HISTORY_PAGE_SIZE: u32 = 25_000;
/// Metric histories fetched at once: enough to hide the round trips of a remote server,
/// few enough not to look like a flood to one shared by a team.
const HISTORY_CONCURRENCY: usize = 8;
/// Experiment names listed when the one asked for does not exist.
const EXPERIMENTS_LISTED: usize = 20;
/// A metric whose steps span more than this many times their count is logged per
/// optimizer step, not per epoch (epoch steps are consecutive: a span of 1× their count).
const SPARSE_STEP_FACTOR: i64 = 2;
/// First retry delay and the cap on any delay, for servers that send no Retry-After.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Connecting takes at most this long whatever the request timeout: a server that does
/// not accept a connection in 10 s is down, not slow.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(10);
/// Characters of a server's answer quoted in an error message.
const QUOTED_CHARS: usize = 300;

/// Text on one line, cut to `QUOTED_CHARS`.
fn quote_short(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::num::truncate(&one_line, QUOTED_CHARS)
}
/// The server's limits on `runs/log-batch` (mlflow/utils/validation.py): tags per batch,
/// characters in a key and in a value. Checked before anything is written, so a refusal
/// cannot come halfway through a write-back.
pub const MAX_TAGS_PER_BATCH: usize = 100;
pub const MAX_TAG_KEY_CHARS: usize = 250;
pub const MAX_TAG_VALUE_CHARS: usize = 8000;
/// The artifact folder retune's files go to on each run.
pub const ARTIFACT_DIR: &str = "retune";

const API: &str = "api/2.0/mlflow";
const ARTIFACTS_API: &str = "api/2.0/mlflow-artifacts/artifacts";

/// An experiment on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    pub id: String,
    pub name: String,
}

/// One logged value of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricPoint {
    pub step: i64,
    /// Milliseconds since the Unix epoch, as MLflow records it.
    pub timestamp: i64,
    pub value: f64,
}

/// A run as the server holds it: params and tags in the server's order, and the full
/// history of every metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MlflowRun {
    pub run_id: String,
    pub run_name: String,
    pub experiment_id: String,
    /// `RUNNING`, `FINISHED`, `FAILED`, `KILLED` or `SCHEDULED`.
    pub status: String,
    pub artifact_uri: String,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub metrics: BTreeMap<String, Vec<MetricPoint>>,
}

/// A connection to one tracking server.
pub struct Client {
    inner: Arc<Inner>,
    /// Always `Some` until drop, which may have to shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What requests need, shared with the tasks that fetch histories concurrently.
struct Inner {
    /// The server's base URL, with any path prefix, ending in `/`.
    base: Url,
    /// The URL as messages show it (no trailing slash).
    shown: String,
    http: reqwest::Client,
    timeout: Duration,
    retries: u32,
    deadline: Duration,
    auth: Option<Auth>,
}

/// Credentials for a tracking server, read from the environment variables MLflow's own
/// client reads. They are sent in the `Authorization` header (marked sensitive, so it is
/// never in a debug print) and appear in no message, report or file.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `MLFLOW_TRACKING_TOKEN`: a bearer token.
    Token(Secret),
    /// `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`: HTTP basic auth.
    Basic { username: String, password: Secret },
}

impl Auth {
    /// The credentials `env` holds, the token first (as MLflow's client does).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<Auth> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(token) = set("MLFLOW_TRACKING_TOKEN") {
            return Some(Auth::Token(Secret::new(token)));
        }
        Some(Auth::Basic {
            username: set("MLFLOW_TRACKING_USERNAME")?,
            password: Secret::new(set("MLFLOW_TRACKING_PASSWORD")?),
        })
    }
}

/// Why a request got no usable answer.
#[derive(Debug)]
enum Failure {
    /// The server answered with an error (after retries when the error was transient).
    Status {
        status: u16,
        /// MLflow's `error_code` (`RESOURCE_DOES_NOT_EXIST` …) when the body is MLflow's.
        code: Option<String>,
        message: String,
        attempts: u32,
        elapsed: Duration,
    },
    /// The answer is not MLflow's JSON API: an HTML page, a proxy's error, another service.
    NotMlflow { status: u16, detail: String },
    /// No answer at all: connection refused, timeouts, a broken connection.
    Unreachable {
        detail: String,
        attempts: u32,
        elapsed: Duration,
    },
}

impl Failure {
    fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { status: 404, .. })
            || matches!(self, Failure::Status { code: Some(c), .. } if c == "RESOURCE_DOES_NOT_EXIST")
    }

    fn describe(&self) -> String {
        let tries = |attempts: u32, elapsed: &Duration| {
            if attempts > 1 {
                format!(" ({attempts} attempts in {:.1} s)", elapsed.as_secs_f64())
            } else {
                String::new()
            }
        };
        match self {
            Failure::Status {
                status,
                code,
                message,
                attempts,
                elapsed,
            } => {
                let code = code.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
                let hint = match status {
                    401 | 403 => {
                        " (the server wants credentials: set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
                    }
                    _ => "",
                };
                format!(
                    "HTTP {status}{code}: {message}{hint}{}",
                    tries(*attempts, elapsed)
                )
            }
            Failure::NotMlflow { status, detail } => format!(
                "not an MLflow tracking server's answer (HTTP {status}: {detail}); is this the server's URL, with its --static-prefix if it has one?"
            ),
            Failure::Unreachable {
                detail,
                attempts,
                elapsed,
            } => format!("{detail}{}", tries(*attempts, elapsed)),
        }
    }
}

/// One request, rebuilt for each attempt.
struct Request {
    method: Method,
    url: Url,
    body: Option<(Vec<u8>, &'static str)>,
}

impl Client {
    /// A client for the server at `url` (`http://127.0.0.1:5000`; a trailing slash, a
    /// path prefix, a pasted UI address `…/#/experiments/1` or API path are tolerated).
    /// `timeout` bounds each request, `retries` counts retries after the first attempt,
    /// and `deadline` bounds one API call with all its retries.
    pub fn new(url: &str, timeout: Duration, retries: u32, deadline: Duration) -> Result<Client> {
        Client::with_auth(url, timeout, retries, deadline, None)
    }

    /// As `new`, sending `auth` with every request (a server behind MLflow's basic-auth
    /// app, or a managed server that takes a token).
    pub fn with_auth(
        url: &str,
        timeout: Duration,
        retries: u32,
        deadline: Duration,
        auth: Option<Auth>,
    ) -> Result<Client> {
        let (base, shown) = normalise_url(url)?;
        if timeout.is_zero() || deadline.is_zero() {
            return Err(Error::Usage(
                "the MLflow request timeout and deadline must be positive".into(),
            ));
        }
        let unusable = |what: &str, e: &dyn std::fmt::Display| {
            Error::input(Path::new(&shown), format!("cannot set up {what}: {e}"))
        };
        let http = crate::http::client_builder(base.as_str())
            .timeout(timeout)
            .connect_timeout(timeout.min(CONNECT_TIMEOUT_MAX))
            .user_agent(concat!("retune/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| unusable("HTTP", &e))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| unusable("the async runtime", &e))?;
        Ok(Client {
            inner: Arc::new(Inner {
                base,
                shown,
                http,
                timeout,
                retries,
                deadline,
                auth,
            }),
            runtime: Some(runtime),
        })
    }

    /// The server's URL as messages and reports show it.
    pub fn url(&self) -> &str {
        &self.inner.shown
    }

    /// The experiment named `name_or_id`, or the one with that id when the string is all
    /// digits and such an experiment exists (a name made of digits still works).
    pub fn experiment(&self, name_or_id: &str) -> Result<Experiment> {
        let wanted = name_or_id.trim();
        if wanted.is_empty() {
            return Err(Error::Usage("--experiment needs a name or an id".into()));
        }
        let inner = self.inner.clone();
        self.block_on(async move {
            if wanted.bytes().all(|b| b.is_ascii_digit()) {
                let mut url = inner.api("experiments/get");
                url.query_pairs_mut().append_pair("experiment_id", wanted);
                match inner.send(Request::get(url)).await {
                    Ok(body) => return inner.experiment_from(&body, wanted),
                    Err(f) if f.is_not_found() => {}
                    Err(f) => return Err(inner.error(&format!("experiment id {wanted}"), &f)),
                }
            }
            let mut url = inner.api("experiments/get-by-name");
            url.query_pairs_mut().append_pair("experiment_name", wanted);
            match inner.send(Request::get(url)).await {
                Ok(body) => inner.experiment_from(&body, wanted),
                Err(f) if f.is_not_found() => {
                    let listed = inner.experiment_names().await;
                    Err(Error::input(
                        Path::new(&inner.shown),
                        format!("no experiment named `{wanted}` there; {listed}"),
                    ))
                }
                Err(f) => Err(inner.error(&format!("experiment `{wanted}`"), &f)),
            }
        })
    }

    /// Every active run of the experiment (with an MLflow filter string if given), each
    /// with its params, tags and the full history of every metric.
    pub fn runs(&self, experiment: &Experiment, filter: Option<&str>) -> Result<Vec<MlflowRun>> {
        let inner = self.inner.clone();
        let experiment = experiment.clone();
        let filter = filter.unwrap_or("").trim().to_string();
        self.block_on(async move {
            let (mut runs, keys) = inner.search_runs(&experiment, &filter).await?;
            let mut jobs = keys.into_iter();
            let mut set = tokio::task::JoinSet::new();
            let spawn = |set: &mut tokio::task::JoinSet<_>,
                         (index, run_id, key): (usize, String, String)| {
                let inner = inner.clone();
                set.spawn(async move {
                    let history = inner.history(&run_id, &key).await;
                    (index, key, history)
                });
            };
            for job in jobs.by_ref().take(HISTORY_CONCURRENCY) {
                spawn(&mut set, job);
            }
            while let Some(done) = set.join_next().await {
                let (index, key, history) = done.map_err(|e| {
                    Error::input(
                        Path::new(&inner.shown),
                        format!("a metric history fetch failed: {e}"),
                    )
                })?;
                runs[index].metrics.insert(key, history?);
                if let Some(job) = jobs.next() {
                    spawn(&mut set, job);
                }
            }
            Ok(runs)
        })
    }

    /// Records retune's result on one run: the artifacts go under `retune/` in the run's
    /// artifacts first, then every tag in one `runs/log-batch` call, so a run has either
    /// all the tags or none. Tags and file names are checked against the server's limits
    /// before anything is sent; a run whose artifacts are not served through the server's
    /// artifact proxy is refused before anything is written; artifacts already uploaded
    /// when a later step fails are deleted again.
    pub fn write_back(
        &self,
        run: &MlflowRun,
        tags: &[(String, String)],
        artifacts: &[(String, Vec<u8>)],
    ) -> Result<()> {
        let run_error = |message: String| {
            Error::input(
                Path::new(&self.inner.shown),
                format!("run {}: {message}", run.run_id),
            )
        };
        check_tags(tags).map_err(run_error)?;
        check_artifact_names(artifacts).map_err(run_error)?;
        if tags.is_empty() && artifacts.is_empty() {
            return Ok(());
        }
        let folder = if artifacts.is_empty() {
            None
        } else {
            Some(
                self.inner
                    .artifact_folder(&run.artifact_uri)
                    .map_err(run_error)?,
            )
        };
        let inner = self.inner.clone();
        let run_id = run.run_id.clone();
        let tags = tags.to_vec();
        let artifacts = artifacts.to_vec();
        self.block_on(async move {
            let mut uploaded: Vec<Url> = Vec::new();
            let mut failure = None;
            if let Some(folder) = &folder {
                for (name, bytes) in &artifacts {
                    let mut url = folder.clone();
                    if let Ok(mut segments) = url.path_segments_mut() {
                        segments.pop_if_empty().push(ARTIFACT_DIR).push(name);
                    }
                    let request = Request {
                        method: Method::PUT,
                        url: url.clone(),
                        body: Some((bytes.clone(), content_type(name))),
                    };
                    match inner.send(request).await {
                        Ok(_) => uploaded.push(url),
                        Err(f) => {
                            failure = Some(format!(
                                "uploading artifact {ARTIFACT_DIR}/{name}: {}",
                                f.describe()
                            ));
                            break;
                        }
                    }
                }
            }
            if failure.is_none() && !tags.is_empty() {
                let tags: Vec<Value> = tags
                    .iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect();
                let body = json!({"run_id": run_id, "tags": tags});
                if let Err(f) = inner
                    .send(Request::post(inner.api("runs/log-batch"), &body))
                    .await
                {
                    failure = Some(format!("setting tags: {}", f.describe()));
                }
            }
            let Some(failure) = failure else {
                return Ok(());
            };
            let undone = inner.delete_all(&uploaded).await;
            Err(Error::input(
                Path::new(&inner.shown),
                format!("run {run_id}: write-back failed, nothing was recorded: {failure}{undone}"),
            ))
        })
    }

    /// Runs `future` on the client's runtime. A caller inside a tokio runtime (an async
    /// task, a `spawn_blocking` thread) cannot block on another runtime from its own
    /// thread (tokio panics), so there the future runs on a scoped thread of its own.
    fn block_on<T: Send>(
        &self,
        future: impl std::future::Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        // `runtime` is only taken in `drop`.
        let Some(runtime) = &self.runtime else {
            return Err(Error::Usage("mlflow::Client used after drop".into()));
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future);
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; hand it off.
        if let Some(runtime) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                drop(runtime);
            }
        }
    }
}

impl Request {
    fn get(url: Url) -> Request {
        Request {
            method: Method::GET,
            url,
            body: None,
        }
    }

    fn post(url: Url, body: &Value) -> Request {
        Request {
            method: Method::POST,
            url,
            body: Some((body.to_string().into_bytes(), "application/json")),
        }
    }
}

impl Inner {
    /// `<base>/api/2.0/mlflow/<endpoint>`.
    fn api(&self, endpoint: &str) -> Url {
        self.join(&format!("{API}/{endpoint}"))
    }

    fn join(&self, relative: &str) -> Url {
        // The base ends in `/` and `relative` is one of our constants, so joining keeps
        // the base's path prefix and cannot fail; the fallback keeps the types simple.
        self.base
            .join(relative)
            .unwrap_or_else(|_| self.base.clone())
    }

    /// The page token to ask for next, or `None` on the last page. A token handed out
    /// twice would page forever: that is not a server to trust.
    fn next_page(
        &self,
        context: &str,
        page: &Value,
        seen: &mut HashSet<String>,
    ) -> Result<Option<String>> {
        match page["next_page_token"].as_str().filter(|t| !t.is_empty()) {
            Some(next) if !seen.insert(next.to_string()) => Err(self.error(
                context,
                &Failure::NotMlflow {
                    status: 200,
                    detail: "the server handed out the same page token twice".into(),
                },
            )),
            next => Ok(next.map(str::to_string)),
        }
    }

    fn error(&self, context: &str, failure: &Failure) -> Error {
        Error::input(
            Path::new(&self.shown),
            format!("{context}: {}", failure.describe()),
        )
    }

    /// Sends `request` until it gets an answer, retrying transient failures with backoff
    /// within the deadline. The answer must be a JSON object (MLflow's API answers `{}`
    /// when there is nothing to say).
    async fn send(&self, request: Request) -> std::result::Result<Value, Failure> {
        let started = Instant::now();
        let end = started + self.deadline;
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(BACKOFF_MIN)
            .with_max_delay(BACKOFF_MAX)
            .with_max_times(self.retries as usize)
            .with_jitter()
            .build();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let remaining = end.saturating_duration_since(Instant::now());
            let mut builder = self
                .http
                .request(request.method.clone(), request.url.clone())
                .timeout(self.timeout.min(remaining));
            builder = match &self.auth {
                Some(Auth::Token(token)) => builder.bearer_auth(token.expose()),
                Some(Auth::Basic { username, password }) => {
                    builder.basic_auth(username, Some(password.expose()))
                }
                None => builder,
            };
            if let Some((body, content_type)) = &request.body {
                builder = builder
                    .header(CONTENT_TYPE, *content_type)
                    .body(body.clone());
            }
            let (retry_after, failure) = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(body) if status.is_success() => {
                            return parse_object(status, &headers, &body);
                        }
                        Ok(body) => {
                            let failure =
                                error_answer(status, &headers, &body, attempts, started.elapsed());
                            if !(status == StatusCode::TOO_MANY_REQUESTS
                                || status.is_server_error())
                            {
                                return Err(failure);
                            }
                            (crate::http::retry_after(&headers), failure)
                        }
                        Err(e) => (None, self.unreachable(&e, attempts, started)),
                    }
                }
                Err(e) => (None, self.unreachable(&e, attempts, started)),
            };
            let Some(backoff) = delays.next() else {
                return Err(failure);
            };
            let wait = retry_after.unwrap_or(backoff);
            if Instant::now() + wait >= end {
                return Err(match failure {
                    Failure::Unreachable {
                        detail,
                        attempts,
                        elapsed,
                    } => Failure::Unreachable {
                        detail: format!(
                            "{detail}; gave up at the deadline of {} s",
                            self.deadline.as_secs_f64()
                        ),
                        attempts,
                        elapsed,
                    },
                    other => other,
                });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// A failure to get any answer, in plain words.
    fn unreachable(&self, err: &reqwest::Error, attempts: u32, started: Instant) -> Failure {
        let detail = if err.is_timeout() {
            format!(
                "no answer within the request timeout of {} s",
                self.timeout.as_secs_f64()
            )
        } else if err.is_connect() {
            let refused = source_chain(err).any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
            });
            if refused {
                "could not connect (connection refused): is the MLflow server running, and is the URL right?".to_string()
            } else {
                format!(
                    "could not connect ({}): is the MLflow server running, and is the URL right?",
                    innermost(err)
                )
            }
        } else {
            format!("the connection failed: {}", innermost(err))
        };
        Failure::Unreachable {
            detail,
            attempts,
            elapsed: started.elapsed(),
        }
    }

    fn experiment_from(&self, body: &Value, wanted: &str) -> Result<Experiment> {
        let e = &body["experiment"];
        let (Some(id), Some(name)) = (e["experiment_id"].as_str(), e["name"].as_str()) else {
            return Err(self.error(
                &format!("experiment `{wanted}`"),
                &Failure::NotMlflow {
                    status: 200,
                    detail: format!("no experiment in `{}`", quote_short(&body.to_string())),
                },
            ));
        };
        if e["lifecycle_stage"].as_str() == Some("deleted") {
            return Err(Error::input(
                Path::new(&self.shown),
                format!("experiment `{name}` (id {id}) is deleted; restore it or name another"),
            ));
        }
        Ok(Experiment {
            id: id.to_string(),
            name: name.to_string(),
        })
    }

    /// "experiments there: a, b, c" for a message, or why they could not be listed.
    async fn experiment_names(&self) -> String {
        let body = json!({"max_results": EXPERIMENTS_LISTED + 1, "view_type": "ACTIVE_ONLY"});
        match self
            .send(Request::post(self.api("experiments/search"), &body))
            .await
        {
            Ok(body) => {
                let names: Vec<String> = body["experiments"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| e["name"].as_str())
                            .map(|n| format!("`{n}`"))
                            .collect()
                    })
                    .unwrap_or_default();
                match names.len() {
                    0 => "the server has no experiments".to_string(),
                    n if n > EXPERIMENTS_LISTED => format!(
                        "experiments there include: {} …",
                        names[..EXPERIMENTS_LISTED].join(", ")
                    ),
                    _ => format!("experiments there: {}", names.join(", ")),
                }
            }
            Err(f) => format!(
                "the experiments there could not be listed ({})",
                f.describe()
            ),
        }
    }

    /// Every page of `runs/search`, and the (run index, run id, metric key) of each
    /// history to fetch.
    async fn search_runs(
        &self,
        experiment: &Experiment,
        filter: &str,
    ) -> Result<(Vec<MlflowRun>, Vec<(usize, String, String)>)> {
        let context = format!(
            "runs of experiment `{}` (id {})",
            experiment.name, experiment.id
        );
        let mut runs = Vec::new();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        loop {
            let mut body = json!({
                "experiment_ids": [experiment.id],
                "filter": filter,
                "run_view_type": "ACTIVE_ONLY",
                "max_results": RUNS_PAGE_SIZE,
            });
            if let Some(t) = &token {
                body["page_token"] = Value::from(t.as_str());
            }
            let page = match self
                .send(Request::post(self.api("runs/search"), &body))
                .await
            {
                Ok(page) => page,
                Err(f @ Failure::Status { status: 400, .. }) if !filter.is_empty() => {
                    return Err(
                        self.error(&format!("{context}: the filter `{filter}` was refused"), &f)
                    );
                }
                Err(f) => return Err(self.error(&context, &f)),
            };
            for raw in page["runs"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let run = self.run_from(raw, &context)?;
                for metric in raw["data"]["metrics"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if let Some(key) = metric["key"].as_str() {
                        keys.push((runs.len(), run.run_id.clone(), key.to_string()));
                    }
                }
                runs.push(run);
            }
            match self.next_page(&context, &page, &mut seen_tokens)? {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok((runs, keys))
    }

    fn run_from(&self, raw: &Value, context: &str) -> Result<MlflowRun> {
        let info = &raw["info"];
        let data = &raw["data"];
        let Some(run_id) = info["run_id"]
            .as_str()
            .or_else(|| info["run_uuid"].as_str())
        else {
            return Err(self.error(
                context,
                &Failure::NotMlflow {
                    status: 200,
                    detail: format!(
                        "a run without a run_id: `{}`",
                        quote_short(&raw.to_string())
                    ),
                },
            ));
        };
        let pairs = |list: &Value| -> Vec<(String, String)> {
            list.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|p| {
                            Some((
                                p["key"].as_str()?.to_string(),
                                p["value"].as_str().unwrap_or("").to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let tags = pairs(&data["tags"]);
        let run_name = info["run_name"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                tags.iter()
                    .find(|(k, _)| k == "mlflow.runName")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_default();
        let text = |field: &str| info[field].as_str().unwrap_or("").to_string();
        Ok(MlflowRun {
            run_id: run_id.to_string(),
            run_name,
            experiment_id: text("experiment_id"),
            status: text("status"),
            artifact_uri: text("artifact_uri"),
            params: pairs(&data["params"]),
            tags,
            metrics: BTreeMap::new(),
        })
    }

    /// Every point of one metric of one run, following page tokens.
    async fn history(&self, run_id: &str, key: &str) -> Result<Vec<MetricPoint>> {
        let context = format!("run {run_id}: history of metric `{key}`");
        let mut points = Vec::new();
        let mut token: Option<String> = None;
        let mut seen_tokens = HashSet::new();
        loop {
            let mut url = self.api("metrics/get-history");
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("run_id", run_id)
                    .append_pair("metric_key", key)
                    .append_pair("max_results", &HISTORY_PAGE_SIZE.to_string());
                if let Some(t) = &token {
                    query.append_pair("page_token", t);
                }
            }
            let page = self
                .send(Request::get(url))
                .await
                .map_err(|f| self.error(&context, &f))?;
            for raw in page["metrics"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let point = metric_point(raw).ok_or_else(|| {
                    self.error(
                        &context,
                        &Failure::NotMlflow {
                            status: 200,
                            detail: format!(
                                "a metric value that is not a number: `{}`",
                                quote_short(&raw.to_string())
                            ),
                        },
                    )
                })?;
                points.push(point);
            }
            match self.next_page(&context, &page, &mut seen_tokens)? {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        Ok(points)
    }

    /// The URL of a run's artifact folder on the server's artifact proxy, resolved as
    /// MLflow's own client does (mlflow/store/artifact/mlflow_artifacts_repo.py):
    /// `mlflow-artifacts:/1/<run>/artifacts` → `<base>/api/2.0/mlflow-artifacts/artifacts/1/<run>/artifacts`,
    /// another host when the URI names one; `http(s)://…` artifact roots are used as they
    /// are. Anything else (a local path, `s3://` …) is storage the server does not proxy,
    /// which REST cannot write to.
    fn artifact_folder(&self, artifact_uri: &str) -> std::result::Result<Url, String> {
        let uri = artifact_uri.trim();
        let refuse = || {
            format!(
                "its artifacts live at `{uri}`, which the server does not proxy, so retune cannot upload them through REST; start the server with artifact serving (`mlflow server --serve-artifacts --artifacts-destination …`, the default since MLflow 2.0) and log new runs, or leave out --write-back"
            )
        };
        let folder = if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            let (host, path) = match rest.strip_prefix("//") {
                Some(after) => match after.find('/') {
                    Some(i) => (Some(&after[..i]), &after[i..]),
                    None => (Some(after), ""),
                },
                None => (None, rest),
            };
            let mut url = self.join(&format!("{ARTIFACTS_API}/"));
            if let Some(host) = host.filter(|h| !h.is_empty()) {
                url = Url::parse(&format!("{}://{host}{}", self.base.scheme(), url.path()))
                    .map_err(|_| refuse())?;
            }
            if let Ok(mut segments) = url.path_segments_mut() {
                segments.pop_if_empty();
                for segment in path.split('/').filter(|s| !s.is_empty()) {
                    segments.push(segment);
                }
            }
            url
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            Url::parse(uri).map_err(|_| refuse())?
        } else {
            return Err(refuse());
        };
        Ok(folder)
    }

    /// Deletes artifacts uploaded by a write-back that then failed; says how that went.
    async fn delete_all(&self, uploaded: &[Url]) -> String {
        if uploaded.is_empty() {
            return String::new();
        }
        let mut left = Vec::new();
        for url in uploaded {
            let request = Request {
                method: Method::DELETE,
                url: url.clone(),
                body: None,
            };
            if self.send(request).await.is_err() {
                left.push(
                    url.path()
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        if left.is_empty() {
            format!(
                " (the {} artifact(s) uploaded before were deleted again)",
                uploaded.len()
            )
        } else {
            format!(
                " (artifacts uploaded before that could not be deleted again: {})",
                left.join(", ")
            )
        }
    }
}

impl MlflowRun {
    /// Where the run is, as reports name a source: the address of the run in MLflow's UI.
    pub fn location(&self, client_url: &str) -> String {
        format!(
            "{}/#/experiments/{}/runs/{}",
            client_url.trim_end_matches('/'),
            self.experiment_id,
            self.run_id
        )
    }

    /// The run as retune's pipeline reads it: params as the config, metric histories as
    /// the series (the rules in the module comment), named by the run's UI address.
    pub fn to_run(&self, client_url: &str, space: Space) -> Result<Run> {
        let path = PathBuf::from(self.location(client_url));
        let mut builder = MetricsBuilder::new();
        let (root, flat) = params_config(&self.params);
        for key in flat {
            builder.warnings.push(format!(
                "param `{key}` is kept under its dotted name because a shorter param collides with it; dotted paths do not reach it"
            ));
        }
        let config = if root.is_empty() {
            None
        } else {
            let text = serde_json::to_string_pretty(&Value::Object(root))
                .map_err(|e| Error::input(&path, format!("cannot render the params: {e}")))?;
            Some(ConfigDoc::parse(&path, text)?)
        };
        let (series, warnings) = epoch_series(&self.metrics);
        builder.warnings.extend(warnings);
        for (name, points) in series {
            for (epoch, value) in points {
                builder.push(name, epoch, value);
                builder.rows += 1;
            }
        }
        let metrics = builder.finish(&path, Format::Mlflow)?;
        Ok(Run::new(config, metrics, space, Vec::new(), None))
    }
}

/// The base URL ending in `/` (so relative joins keep a path prefix) and the URL as shown.
fn normalise_url(url: &str) -> Result<(Url, String)> {
    let mut text = url.trim().to_string();
    if let Some(i) = text.find('#') {
        text.truncate(i);
    }
    if let Some(i) = text.find('?') {
        text.truncate(i);
    }
    let mut text = text.trim_end_matches('/').to_string();
    for suffix in ["/api/2.0/mlflow", "/ajax-api/2.0/mlflow"] {
        if let Some(stripped) = text.strip_suffix(suffix) {
            text = stripped.to_string();
        }
    }
    if !(text.starts_with("http://") || text.starts_with("https://")) {
        return Err(Error::Usage(format!(
            "--mlflow `{}`: the tracking server's URL starts with http:// or https:// (for example http://127.0.0.1:5000)",
            url.trim()
        )));
    }
    let base = Url::parse(&format!("{text}/"))
        .map_err(|e| Error::Usage(format!("--mlflow `{}`: not a URL ({e})", url.trim())))?;
    if base.host_str().is_none_or(str::is_empty) {
        return Err(Error::Usage(format!("--mlflow `{}`: no host", url.trim())));
    }
    Ok((base, text))
}

/// A successful answer's body as a JSON object, or why it is not MLflow's.
fn parse_object(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> std::result::Result<Value, Failure> {
    // An artifact upload is answered with an empty 200 (MLflow 3), other calls with `{}`.
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(Failure::NotMlflow {
            status: status.as_u16(),
            detail: describe_body(headers, body),
        }),
    }
}

/// An error answer: MLflow's `{"error_code", "message"}` when it is one.
fn error_answer(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    attempts: u32,
    elapsed: Duration,
) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v["error_code"].as_str())
        .map(str::to_string);
    let message = parsed
        .as_ref()
        .and_then(|v| v["message"].as_str())
        .map(quote_short);
    match (code, message) {
        (code, Some(message)) => Failure::Status {
            status: status.as_u16(),
            code,
            message,
            attempts,
            elapsed,
        },
        // A 404 page that is not MLflow's: the URL does not lead to its API.
        (None, None) if status == StatusCode::NOT_FOUND => Failure::NotMlflow {
            status: status.as_u16(),
            detail: describe_body(headers, body),
        },
        (code, None) => Failure::Status {
            status: status.as_u16(),
            code,
            message: describe_body(headers, body),
            attempts,
            elapsed,
        },
    }
}

/// A body for a message: its type and its first characters on one line.
fn describe_body(headers: &HeaderMap, body: &[u8]) -> String {
    let kind = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
        .unwrap_or_else(|| "no content type".into());
    let text = String::from_utf8_lossy(body);
    if text.trim().is_empty() {
        format!("{kind}, empty")
    } else {
        format!("{kind}: `{}`", quote_short(&text))
    }
}

fn source_chain(err: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(err), |e| e.source())
}

/// The deepest cause of an error: "Connection reset by peer" rather than "error sending
/// request".
fn innermost(err: &reqwest::Error) -> String {
    source_chain(err)
        .last()
        .map(|e| e.to_string())
        .unwrap_or_else(|| err.to_string())
}

/// One `{key, value, timestamp, step}` of a history. Protobuf's JSON writes NaN and the
/// infinities as strings and may write int64 fields as strings; an absent field is its
/// default (0), as protobuf omits defaults.
fn metric_point(raw: &Value) -> Option<MetricPoint> {
    let int = |v: &Value| -> Option<i64> {
        match v {
            Value::Null => Some(0),
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let value = match &raw["value"] {
        Value::Null => 0.0,
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => match s.trim() {
            "NaN" | "nan" => f64::NAN,
            "Infinity" | "inf" => f64::INFINITY,
            "-Infinity" | "-inf" => f64::NEG_INFINITY,
            other => other.parse().ok()?,
        },
        _ => return None,
    };
    // MLflow's SQL store clamps infinities to ±f64::MAX; no loss is ever really 1.8e308.
    let value = if value == f64::MAX {
        f64::INFINITY
    } else if value == f64::MIN {
        f64::NEG_INFINITY
    } else {
        value
    };
    Some(MetricPoint {
        step: int(&raw["step"])?,
        timestamp: int(&raw["timestamp"])?,
        value,
    })
}

/// A param's text as a config value: numbers, booleans and null (JSON's and Python's
/// spellings) and JSON arrays are parsed; everything else stays the string it is.
fn param_value(text: &str) -> Value {
    match text.trim() {
        "True" | "true" => return Value::Bool(true),
        "False" | "false" => return Value::Bool(false),
        "None" | "null" => return Value::Null,
        _ => {}
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Number(_) | Value::Array(_))) => value,
        _ => Value::String(text.to_string()),
    }
}

/// The params as a config object (dotted names nested where they can be; the rules in the
/// module comment), and the dotted names kept flat.
fn params_config(params: &[(String, String)]) -> (Map<String, Value>, Vec<String>) {
    let names: HashSet<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    let mut root = Map::new();
    let mut flat = Vec::new();
    for (key, text) in params {
        let value = param_value(text);
        let segments: Vec<&str> = key.split('.').collect();
        let nestable = segments.len() > 1
            && segments.iter().all(|s| !s.is_empty())
            && (1..segments.len()).all(|n| !names.contains(segments[..n].join(".").as_str()));
        if !nestable {
            if segments.len() > 1 {
                flat.push(key.clone());
            }
            root.insert(key.clone(), value);
            continue;
        }
        if !insert_nested(&mut root, &segments, value.clone()) {
            flat.push(key.clone());
            root.insert(key.clone(), value);
        }
    }
    (root, flat)
}

/// Puts `value` at `segments` under `root`, creating objects; false when a non-object is
/// in the way (the name check before makes that unreachable, but a config must not lose
/// a param if it were not).
fn insert_nested(root: &mut Map<String, Value>, segments: &[&str], value: Value) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        let child = node
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match child {
            Value::Object(map) => node = map,
            _ => return false,
        }
    }
    if node.contains_key(*last) {
        return false;
    }
    node.insert(last.to_string(), value);
    true
}

/// One metric's name and its values as (1-based epoch, value), in epoch order.
type Placed<'a> = (&'a str, Vec<(u32, f64)>);

/// Each metric's values placed in epochs (the rules in the module comment), with warnings
/// about what was read around.
fn epoch_series(metrics: &BTreeMap<String, Vec<MetricPoint>>) -> (Vec<Placed<'_>>, Vec<String>) {
    let mut warnings = Vec::new();
    let training: Vec<(&str, Vec<MetricPoint>)> = metrics
        .iter()
        .filter(|(name, points)| {
            !points.is_empty() && name.as_str() != "epoch" && !name.starts_with("system/")
        })
        .map(|(name, points)| {
            let mut points = points.clone();
            points.sort_by_key(|p| (p.step, p.timestamp));
            (name.as_str(), points)
        })
        .collect();

    if let Some(logged) = metrics.get("epoch").filter(|p| !p.is_empty()) {
        let mut at_step: BTreeMap<i64, u32> = BTreeMap::new();
        for p in logged {
            let epoch = epoch_from_fraction(p.value);
            let slot = at_step.entry(p.step).or_insert(epoch);
            *slot = (*slot).max(epoch);
        }
        let first = at_step.values().next().copied().unwrap_or(1);
        let series = training
            .into_iter()
            .map(|(name, points)| {
                let placed = points
                    .iter()
                    .map(|p| {
                        let epoch = at_step
                            .range(..=p.step)
                            .next_back()
                            .map_or(first, |(_, e)| *e);
                        (epoch, p.value)
                    })
                    .collect();
                (name, sorted(placed))
            })
            .collect();
        return (series, warnings);
    }

    let kinds = step_kinds(&training);
    let dense_min = training
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| **k == StepKind::Dense)
        .filter_map(|((_, p), _)| p.first().map(|p| p.step))
        .min();
    let offset = if dense_min == Some(0) { 1 } else { 0 };
    let step_epoch =
        |step: i64| -> u32 { u32::try_from((step + offset).max(1)).unwrap_or(u32::MAX) };

    // When each epoch's epoch-level values were logged: its end, for placing step-level
    // values by time.
    let mut epoch_ends: BTreeMap<u32, i64> = BTreeMap::new();
    for ((_, points), kind) in training.iter().zip(&kinds) {
        if *kind == StepKind::Dense {
            for p in points {
                let end = epoch_ends.entry(step_epoch(p.step)).or_insert(p.timestamp);
                *end = (*end).max(p.timestamp);
            }
        }
    }
    let sparse_steps: Vec<i64> = {
        let mut steps: Vec<i64> = training
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k == StepKind::Sparse)
            .flat_map(|((_, p), _)| p.iter().map(|p| p.step))
            .collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    };
    if epoch_ends.is_empty() && !sparse_steps.is_empty() {
        let names: Vec<String> = training
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k == StepKind::Sparse)
            .map(|((n, _), _)| format!("`{n}`"))
            .collect();
        let shown: Vec<String> = sparse_steps.iter().take(3).map(i64::to_string).collect();
        warnings.push(format!(
            "{} logged at steps {} …, too far apart to be epochs; each logged step is read as one epoch",
            names.join(", "),
            shown.join(", ")
        ));
    }

    let mut series = Vec::with_capacity(training.len());
    for ((name, points), kind) in training.iter().zip(&kinds) {
        let placed: Vec<(u32, f64)> = match kind {
            StepKind::Dense => points
                .iter()
                .map(|p| (step_epoch(p.step), p.value))
                .collect(),
            StepKind::Unstepped => {
                let mut by_time = points.clone();
                by_time.sort_by_key(|p| p.timestamp);
                by_time
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (u32::try_from(i + 1).unwrap_or(u32::MAX), p.value))
                    .collect()
            }
            StepKind::Sparse if epoch_ends.is_empty() => points
                .iter()
                .map(|p| {
                    let rank = sparse_steps.partition_point(|s| *s < p.step) + 1;
                    (u32::try_from(rank).unwrap_or(u32::MAX), p.value)
                })
                .collect(),
            StepKind::Sparse => {
                let mut placed = Vec::with_capacity(points.len());
                let mut after_last = 0usize;
                for p in points {
                    match epoch_ends.iter().find(|(_, end)| **end >= p.timestamp) {
                        Some((epoch, _)) => placed.push((*epoch, p.value)),
                        None => after_last += 1,
                    }
                }
                if after_last > 0 {
                    warnings.push(format!(
                        "`{name}`: {after_last} value(s) logged after the last complete epoch are left out"
                    ));
                }
                placed
            }
        };
        series.push((*name, sorted(placed)));
    }
    (series, warnings)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// Consecutive steps: the step is the epoch.
    Dense,
    /// Several values, all at one step: logged without a step.
    Unstepped,
    /// Steps far apart: optimizer steps.
    Sparse,
}

/// How each metric's steps (sorted) read. A metric logged once says nothing by itself:
/// it is per epoch when its step falls within (or just after) the steps of the run's
/// per-epoch metrics, or when no metric has a longer history; else it is one more value
/// at an optimizer step.
fn step_kinds(training: &[(&str, Vec<MetricPoint>)]) -> Vec<StepKind> {
    let kinds: Vec<Option<StepKind>> = training.iter().map(|(_, p)| step_kind(p)).collect();
    let dense_steps = training
        .iter()
        .zip(&kinds)
        .filter(|(_, k)| **k == Some(StepKind::Dense))
        .flat_map(|((_, p), _)| p.iter().map(|p| p.step));
    let range = dense_steps.fold(None, |r: Option<(i64, i64)>, s| {
        Some(r.map_or((s, s), |(lo, hi)| (lo.min(s), hi.max(s))))
    });
    let any_sparse = kinds.contains(&Some(StepKind::Sparse));
    training
        .iter()
        .zip(kinds)
        .map(|((_, points), kind)| {
            kind.unwrap_or_else(|| {
                let step = points.first().map_or(0, |p| p.step);
                match range {
                    Some((lo, hi)) if (lo..=hi.saturating_add(1)).contains(&step) => {
                        StepKind::Dense
                    }
                    Some(_) => StepKind::Sparse,
                    None if any_sparse => StepKind::Sparse,
                    None => StepKind::Dense,
                }
            })
        })
        .collect()
}

/// How one metric's steps (sorted) read; `None` for a single value.
fn step_kind(points: &[MetricPoint]) -> Option<StepKind> {
    let (first, last) = match points {
        [] | [_] => return None,
        [first, .., last] => (first, last),
    };
    if first.step == last.step {
        return Some(StepKind::Unstepped);
    }
    let mut distinct = points.iter().map(|p| p.step).collect::<Vec<_>>();
    distinct.dedup();
    let span = i128::from(last.step) - i128::from(first.step) + 1;
    Some(
        if first.step >= 0 && span <= i128::from(SPARSE_STEP_FACTOR) * distinct.len() as i128 {
            StepKind::Dense
        } else {
            StepKind::Sparse
        },
    )
}

/// The epoch a fractional epoch count falls in (1.0 is the end of epoch 1, 1.5 is in
/// epoch 2), at least 1.
fn epoch_from_fraction(value: f64) -> u32 {
    if value.is_finite() && value > 1.0 {
        // `as` saturates, so a huge value cannot wrap.
        value.ceil() as u32
    } else {
        1
    }
}

/// Values in epoch order, values of one epoch in the order they came.
fn sorted(mut placed: Vec<(u32, f64)>) -> Vec<(u32, f64)> {
    placed.sort_by_key(|(epoch, _)| *epoch);
    placed
}

/// The server's rules for tag names and sizes (mlflow/utils/validation.py), checked here
/// so the one `log-batch` call cannot be refused after the artifacts went up.
fn check_tags(tags: &[(String, String)]) -> std::result::Result<(), String> {
    if tags.len() > MAX_TAGS_PER_BATCH {
        return Err(format!(
            "{} tags, more than the {MAX_TAGS_PER_BATCH} MLflow takes in one call",
            tags.len()
        ));
    }
    let mut seen = HashSet::new();
    for (key, value) in tags {
        let allowed = |c: char| c.is_alphanumeric() || "_-./ :".contains(c);
        let normal = !key.is_empty()
            && !key.starts_with('/')
            && !key.ends_with('/')
            && key
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..");
        if !key.chars().all(allowed) || !normal {
            return Err(format!(
                "tag `{key}`: MLflow takes names of letters, digits, `_ - . / :` and spaces that are normalised paths"
            ));
        }
        if key.chars().count() > MAX_TAG_KEY_CHARS {
            return Err(format!(
                "tag `{key}` is longer than {MAX_TAG_KEY_CHARS} characters"
            ));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(format!(
                "tag `{key}`: value of {} characters, more than MLflow's {MAX_TAG_VALUE_CHARS}",
                value.chars().count()
            ));
        }
        if !seen.insert(key.as_str()) {
            return Err(format!("tag `{key}` given twice"));
        }
    }
    Ok(())
}

/// Artifact names are plain file names: they go into `retune/` and nowhere else.
fn check_artifact_names(artifacts: &[(String, Vec<u8>)]) -> std::result::Result<(), String> {
    let mut seen = HashSet::new();
    for (name, _) in artifacts {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !plain {
            return Err(format!(
                "artifact name `{name}`: a plain file name of letters, digits, `. _ -` is expected"
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(format!("artifact `{name}` given twice"));
        }
    }
    Ok(())
}

/// The content type MLflow's own client would send for a file name.
fn content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".json") {
        "application/json"
    } else if lower.ends_with(".md") {
        "text/markdown"
    } else if lower.ends_with(".txt") || lower.ends_with(".log") {
        "text/plain"
    } else if lower.ends_with(".svg") {
        "image/svg+xml"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(steps: &[(i64, i64, f64)]) -> Vec<MetricPoint> {
        steps
            .iter()
            .map(|&(step, timestamp, value)| MetricPoint {
                step,
                timestamp,
                value,
            })
            .collect()
    }

    /// Each metric's (epoch, value) pairs.
    type Epochs = BTreeMap<String, Vec<(u32, f64)>>;

    fn placed(metrics: &[(&str, Vec<MetricPoint>)]) -> (Epochs, Vec<String>) {
        let map: BTreeMap<String, Vec<MetricPoint>> = metrics
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let (series, warnings) = epoch_series(&map);
        (
            series
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            warnings,
        )
    }

    #[test]
    fn param_values_are_typed_where_the_text_is_a_value() {
        let cases = [
            ("0.001", json!(0.001)),
            ("1e-05", json!(1e-05)),
            ("32", json!(32)),
            ("-3", json!(-3)),
            ("True", json!(true)),
            ("false", json!(false)),
            ("None", Value::Null),
            ("[0.9, 0.999]", json!([0.9, 0.999])),
            ("adam", json!("adam")),
            ("['a', 'b']", json!("['a', 'b']")),
            ("{\"a\": 1}", json!("{\"a\": 1}")),
            ("\"quoted\"", json!("\"quoted\"")),
            ("nan", json!("nan")),
            ("1e400", json!("1e400")),
            ("007", json!("007")),
            ("", json!("")),
        ];
        for (text, want) in cases {
            assert_eq!(param_value(text), want, "{text:?}");
        }
    }

    #[test]
    fn dotted_params_nest_unless_they_collide() {
        let params: Vec<(String, String)> = [
            ("optimizer.lr", "0.01"),
            ("optimizer.betas", "[0.9, 0.999]"),
            ("batch_size", "64"),
            ("model", "resnet"),
            ("model.depth", "50"),
            ("a..b", "1"),
            ("sched.warmup.steps", "100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (root, flat) = params_config(&params);
        assert_eq!(
            Value::Object(root.clone()),
            json!({
                "optimizer": {"lr": 0.01, "betas": [0.9, 0.999]},
                "batch_size": 64,
                "model": "resnet",
                "model.depth": 50,
                "a..b": 1,
                "sched": {"warmup": {"steps": 100}}
            })
        );
        assert_eq!(flat, ["model.depth", "a..b"]);
        // the nested paths resolve the way the rest of retune addresses a config
        let doc = ConfigDoc::parse(
            Path::new("c"),
            serde_json::to_string_pretty(&Value::Object(root)).unwrap(),
        )
        .unwrap();
        assert_eq!(doc.get("optimizer.lr"), Some(&json!(0.01)));
        assert_eq!(doc.get("optimizer.betas.1"), Some(&json!(0.999)));
        assert_eq!(doc.get("sched.warmup.steps"), Some(&json!(100)));
    }

    #[test]
    fn autolog_steps_count_from_zero_and_explicit_epochs_from_one() {
        // mlflow.keras.autolog: step = epoch index from 0
        let (s, w) = placed(&[
            ("loss", points(&[(0, 10, 1.0), (1, 20, 0.5), (2, 30, 0.25)])),
            (
                "val_loss",
                points(&[(0, 11, 1.1), (1, 21, 0.6), (2, 31, 0.4)]),
            ),
        ]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (3, 0.25)]);
        assert_eq!(s["val_loss"], [(1, 1.1), (2, 0.6), (3, 0.4)]);
        assert!(w.is_empty());
        // log_metric(step=epoch) with epochs from 1, one epoch missing
        let (s, _) = placed(&[("loss", points(&[(1, 1, 1.0), (2, 2, 0.5), (4, 4, 0.2)]))]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (4, 0.2)]);
    }

    #[test]
    fn values_without_steps_are_consecutive_epochs_in_time_order() {
        let (s, _) = placed(&[("loss", points(&[(0, 30, 0.3), (0, 10, 1.0), (0, 20, 0.5)]))]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (3, 0.3)]);
    }

    #[test]
    fn an_epoch_metric_places_values_logged_at_global_steps() {
        // the HF Trainer's MLflowCallback: step = global step, `epoch` logged beside
        let (s, _) = placed(&[
            (
                "epoch",
                points(&[(50, 1, 0.5), (100, 2, 1.0), (150, 3, 1.5), (200, 4, 2.0)]),
            ),
            (
                "loss",
                points(&[(50, 1, 2.0), (100, 2, 1.0), (150, 3, 0.8), (200, 4, 0.6)]),
            ),
            ("eval_loss", points(&[(100, 2, 1.2), (200, 4, 0.9)])),
            ("system/cpu_utilization_percentage", points(&[(0, 1, 50.0)])),
        ]);
        assert_eq!(s["loss"], [(1, 2.0), (1, 1.0), (2, 0.8), (2, 0.6)]);
        assert_eq!(s["eval_loss"], [(1, 1.2), (2, 0.9)]);
        assert!(!s.contains_key("epoch"));
        assert!(!s.contains_key("system/cpu_utilization_percentage"));
    }

    #[test]
    fn step_level_values_go_to_the_epoch_they_were_logged_in() {
        // Lightning autolog with log_every_n_step: epoch metrics at step = epoch from 0,
        // step metrics at the global step, placed by time
        let (s, w) = placed(&[
            ("train_loss_epoch", points(&[(0, 100, 1.0), (1, 200, 0.5)])),
            (
                "train_loss_step",
                points(&[(10, 50, 1.2), (20, 90, 0.9), (30, 150, 0.6), (40, 250, 0.4)]),
            ),
        ]);
        assert_eq!(s["train_loss_epoch"], [(1, 1.0), (2, 0.5)]);
        assert_eq!(s["train_loss_step"], [(1, 1.2), (1, 0.9), (2, 0.6)]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("1 value(s) logged after the last complete epoch"),
            "{w:?}"
        );
        // with no epoch-level metric at all, each step is one epoch, and that is said
        let (s, w) = placed(&[
            (
                "loss",
                points(&[(100, 1, 1.0), (200, 2, 0.5), (300, 3, 0.4)]),
            ),
            ("val_loss", points(&[(200, 2, 0.7)])),
        ]);
        assert_eq!(s["loss"], [(1, 1.0), (2, 0.5), (3, 0.4)]);
        assert_eq!(s["val_loss"], [(2, 0.7)]);
        assert!(w[0].contains("too far apart to be epochs"), "{w:?}");
    }

    #[test]
    fn metric_points_read_protobuf_json() {
        let p = metric_point(&json!({"key": "loss", "value": "NaN", "timestamp": 5, "step": 2}))
            .unwrap();
        assert!(p.value.is_nan());
        assert_eq!((p.step, p.timestamp), (2, 5));
        let p =
            metric_point(&json!({"value": 1.7976931348623157e308, "timestamp": "7", "step": "1"}))
                .unwrap();
        assert_eq!((p.value, p.step, p.timestamp), (f64::INFINITY, 1, 7));
        let p = metric_point(&json!({"value": "-Infinity"})).unwrap();
        assert_eq!((p.value, p.step), (f64::NEG_INFINITY, 0));
        assert!(metric_point(&json!({"value": "high"})).is_none());
        assert!(metric_point(&json!({"value": [1]})).is_none());
    }

    #[test]
    fn urls_are_normalised_and_checked() {
        let base = |u: &str| normalise_url(u).map(|(b, s)| (b.to_string(), s));
        for (given, want) in [
            ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
            ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
            ("  http://h:5000/#/experiments/1 ", "http://h:5000"),
            ("https://h/mlflow/", "https://h/mlflow"),
            ("http://h:5000/api/2.0/mlflow/", "http://h:5000"),
        ] {
            let (url, shown) = base(given).unwrap();
            assert_eq!(shown, want, "{given}");
            assert_eq!(url, format!("{want}/"), "{given}");
        }
        for bad in ["localhost:5000", "127.0.0.1:5000", "ftp://h", "http://"] {
            let e = base(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn artifact_uris_resolve_as_mlflows_client_does() {
        let client = Client::new(
            "http://127.0.0.1:5000/prefix",
            Duration::from_secs(1),
            0,
            Duration::from_secs(1),
        )
        .unwrap();
        let folder = |uri: &str| client.inner.artifact_folder(uri).map(|u| u.to_string());
        assert_eq!(
            folder("mlflow-artifacts:/1/abc/artifacts").unwrap(),
            "http://127.0.0.1:5000/prefix/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        assert_eq!(
            folder("mlflow-artifacts://other:6000/1/abc/artifacts").unwrap(),
            "http://other:6000/prefix/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        assert_eq!(
            folder("https://store/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts").unwrap(),
            "https://store/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts"
        );
        for local in [
            "/srv/mlruns/1/abc/artifacts",
            "file:///srv/mlruns/1",
            "s3://b/1/abc",
        ] {
            let e = folder(local).unwrap_err();
            assert!(e.contains("does not proxy"), "{e}");
            assert!(e.contains(local), "{e}");
        }
    }

    #[test]
    fn tags_and_names_are_checked_against_the_servers_rules() {
        let tag = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(check_tags(&tag("retune.status", "sick")).is_ok());
        assert!(check_tags(&tag("retune/findings: x", "a,b")).is_ok());
        for bad in ["", "/abs", "a/../b", "a//b", "tag!", "a/"] {
            assert!(check_tags(&tag(bad, "v")).is_err(), "{bad:?}");
        }
        let long = "x".repeat(MAX_TAG_VALUE_CHARS + 1);
        assert!(check_tags(&tag("k", &long)).unwrap_err().contains("8000"));
        let many: Vec<(String, String)> = (0..=MAX_TAGS_PER_BATCH)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        assert!(check_tags(&many).is_err());
        let twice = [tag("k", "1"), tag("k", "2")].concat();
        assert!(check_tags(&twice).unwrap_err().contains("twice"));
        let file = |n: &str| vec![(n.to_string(), Vec::new())];
        assert!(check_artifact_names(&file("report.md")).is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "r é.md"] {
            assert!(check_artifact_names(&file(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn to_run_reads_params_and_metrics_with_a_source_name() {
        let run = MlflowRun {
            run_id: "abc".into(),
            run_name: "r".into(),
            experiment_id: "3".into(),
            status: "FINISHED".into(),
            artifact_uri: "mlflow-artifacts:/3/abc/artifacts".into(),
            params: vec![
                ("learning_rate".into(), "0.5".into()),
                ("batch_size".into(), "64".into()),
            ],
            tags: Vec::new(),
            metrics: [
                (
                    "loss".to_string(),
                    points(&[(0, 1, 2.0), (1, 2, f64::NAN), (2, 3, f64::INFINITY)]),
                ),
                (
                    "acc".to_string(),
                    points(&[(0, 1, 0.1), (1, 2, 0.1), (2, 3, 0.1)]),
                ),
            ]
            .into_iter()
            .collect(),
        };
        let r = run
            .to_run("http://h:5000/", Space::load(None).unwrap())
            .unwrap();
        let source = "http://h:5000/#/experiments/3/runs/abc";
        assert_eq!(r.metrics.path, PathBuf::from(source));
        assert_eq!(r.metrics.format, Format::Mlflow);
        assert_eq!(r.metrics.rows, 6);
        let loss = r.metrics.get(crate::metrics::Canonical::Loss).unwrap();
        assert_eq!(loss.len(), 3);
        assert_eq!(loss.first_nonfinite().unwrap().epoch, 2);
        assert_eq!(
            r.metrics
                .get(crate::metrics::Canonical::Accuracy)
                .unwrap()
                .original,
            "acc"
        );
        let config = r.config.as_ref().unwrap();
        assert_eq!(config.path, PathBuf::from(source));
        assert_eq!(config.get("learning_rate"), Some(&json!(0.5)));
        assert!(r.tunable("learning_rate").is_some());
        assert_eq!(r.facts.epochs_done, 3);
        // a run that logged nothing is an error naming it
        let empty = MlflowRun {
            metrics: BTreeMap::new(),
            params: Vec::new(),
            ..run
        };
        let e = empty
            .to_run("http://h:5000", Space::load(None).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(source), "{e}");
        assert!(e.contains("no metric values found"), "{e}");
    }
}
