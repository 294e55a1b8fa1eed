//! The REST client: the connection to one tracking server, its credentials, one request
//! with its retries, paging, and errors that name the server.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::http::{Attempt, Failed, RetryPolicy};
use crate::settings::Secret;

/// Connecting takes at most this long whatever the request timeout: a server that does
/// not accept a connection in 10 s is down, not slow.
pub(super) const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(10);
/// Characters of a server's answer quoted in an error message.
const QUOTED_CHARS: usize = 300;

/// Text on one line, cut to `QUOTED_CHARS`.
pub(super) fn quote_short(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::num::truncate(&one_line, QUOTED_CHARS)
}

const API: &str = "api/2.0/mlflow";

/// A connection to one tracking server.
pub struct Client {
    pub(super) inner: Arc<Inner>,
    /// Always `Some` until drop, which may have to shut it down without blocking.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What requests need, shared with the tasks that fetch histories concurrently.
pub(super) struct Inner {
    /// The server's base URL, with any path prefix, ending in `/`.
    pub(super) base: Url,
    /// The URL as messages show it (no trailing slash).
    pub(super) shown: String,
    pub(super) http: reqwest::Client,
    pub(super) timeout: Duration,
    /// Retries and the deadline of one API call.
    pub(super) retry: RetryPolicy,
    pub(super) auth: Option<Auth>,
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
pub(super) enum Failure {
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
    pub(super) fn is_not_found(&self) -> bool {
        matches!(self, Failure::Status { status: 404, .. })
            || matches!(self, Failure::Status { code: Some(c), .. } if c == "RESOURCE_DOES_NOT_EXIST")
    }

    pub(super) fn describe(&self) -> String {
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
                    401 => {
                        " (the server wants credentials, or refused the ones given: set MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)"
                    }
                    403 => {
                        " (the credentials were accepted but do not allow this: MLflow's basic-auth gives users READ unless an admin or the experiment's owner grants EDIT)"
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
pub(super) struct Request {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) body: Option<(Vec<u8>, &'static str)>,
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
                retry: RetryPolicy::new(retries, deadline),
                auth,
            }),
            runtime: Some(runtime),
        })
    }

    /// The server's URL as messages and reports show it.
    pub fn url(&self) -> &str {
        &self.inner.shown
    }

    /// Runs `future` on the client's runtime. A caller inside a tokio runtime (an async
    /// task, a `spawn_blocking` thread) cannot block on another runtime from its own
    /// thread (tokio panics), so there the future runs on a scoped thread of its own.
    pub(super) fn block_on<T: Send>(
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
    pub(super) fn get(url: Url) -> Request {
        Request {
            method: Method::GET,
            url,
            body: None,
        }
    }

    pub(super) fn post(url: Url, body: &Value) -> Request {
        Request {
            method: Method::POST,
            url,
            body: Some((body.to_string().into_bytes(), "application/json")),
        }
    }
}

impl Inner {
    /// `<base>/api/2.0/mlflow/<endpoint>`.
    pub(super) fn api(&self, endpoint: &str) -> Url {
        self.join(&format!("{API}/{endpoint}"))
    }

    pub(super) fn join(&self, relative: &str) -> Url {
        // The base ends in `/` and `relative` is one of our constants, so joining keeps
        // the base's path prefix and cannot fail; the fallback keeps the types simple.
        self.base
            .join(relative)
            .unwrap_or_else(|_| self.base.clone())
    }

    /// The page token to ask for next, or `None` on the last page. A token handed out
    /// twice would page forever: that is not a server to trust.
    pub(super) fn next_page(
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

    pub(super) fn error(&self, context: &str, failure: &Failure) -> Error {
        Error::input(
            Path::new(&self.shown),
            format!("{context}: {}", failure.describe()),
        )
    }

    /// Sends `request` until it gets an answer, retrying transient failures with backoff
    /// within the deadline. The answer must be a JSON object (MLflow's API answers `{}`
    /// when there is nothing to say).
    pub(super) async fn send(&self, request: Request) -> std::result::Result<Value, Failure> {
        let outcome = self
            .retry
            .run(|attempt| self.attempt(&request, attempt))
            .await;
        outcome.map_err(|gave_up| match gave_up.error {
            Failure::Unreachable {
                detail,
                attempts,
                elapsed,
            } if gave_up.at_deadline => Failure::Unreachable {
                detail: format!(
                    "{detail}; gave up at the deadline of {} s",
                    self.retry.deadline.as_secs_f64()
                ),
                attempts,
                elapsed,
            },
            other => other,
        })
    }

    /// One attempt at `request`, its timeout cut to what is left of the deadline; 429,
    /// 5xx and no answer at all are worth another.
    async fn attempt(
        &self,
        request: &Request,
        attempt: Attempt,
    ) -> std::result::Result<Value, Failed<Failure>> {
        let Attempt {
            number: attempts,
            started,
            remaining,
        } = attempt;
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
        let unreachable = |e: &reqwest::Error| Failed::Transient {
            error: self.unreachable(e, attempts, started),
            retry_after: None,
        };
        let response = builder.send().await.map_err(|e| unreachable(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| unreachable(&e))?;
        if status.is_success() {
            return parse_object(status, &headers, &body).map_err(Failed::Final);
        }
        let failure = error_answer(status, &headers, &body, attempts, started.elapsed());
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(Failed::Transient {
                error: failure,
                retry_after: crate::http::retry_after(&headers),
            })
        } else {
            Err(Failed::Final(failure))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
