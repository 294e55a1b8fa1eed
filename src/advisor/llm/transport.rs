//! Talking to an OpenAI-compatible endpoint through async-openai. The client's HTTP goes
//! through our own tower service (async-openai's middleware seam) so that we control
//! what a user configures and the report shows: a per-request timeout, retries on 429,
//! 5xx and connection errors under the policy both HTTP clients share
//! (`crate::http::RetryPolicy`: exponential backoff and jitter, `Retry-After` honoured,
//! within the deadline), and a count of attempts. Responses are parsed by us (`create_byot`
//! into `serde_json::Value`), because servers omit or add fields the typed response
//! requires. The key goes into the request headers and nowhere else.
//!
//! The server is untrusted: its body is read up to `MAX_RESPONSE_BYTES` and no further,
//! within the request timeout however slowly it comes, and everything it says (the
//! answer, the model's name, error bodies) is redacted (`crate::untrusted::redact`)
//! before anyone prints, stores or caches it, since a server's 401 body repeats the key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_openai::Client;
use async_openai::config::{AzureConfig, Config, OpenAIConfig};
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use serde_json::{Value, json};

use crate::http::{Failed, RetryPolicy};
use crate::settings::Secret;
use crate::types::Message;

/// The largest response body read. An answer is at most `max_tokens` of text (800 by
/// default, a few KB); a reasoning model's chain of thought adds at most its own token
/// limit (64k tokens, about 256 KB). 4 MiB leaves room for any of them and for servers
/// that add log-probabilities; beyond it the server is not answering our question, and
/// the body is not read (a 20 MB "diagnosis" was once read, printed and stored whole).
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Of an error body (401, 429, 5xx) only this much is read: it only becomes a message,
/// and messages show 300 characters of it.
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Azure OpenAI's REST API version when `AZURE_OPENAI_API_VERSION` is not set.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// The process's one async runtime, started by the first LLM call and shared by every
/// later one: the runs of a review each used to start their own runtime and HTTP client,
/// so nothing of a call's set-up was shared, and 16 concurrent calls overlapped only 10×.
/// A thread of its own drives the runtime's sockets and timers (and the connection tasks
/// the HTTP client spawns) for every call; each call's future runs on the thread that
/// blocks on it (`Runtime::block_on`), woken by that driver. A current-thread runtime so
/// driven needs no worker pool: waiting on a server is no work.
static RUNTIME: LazyLock<std::result::Result<tokio::runtime::Runtime, String>> =
    LazyLock::new(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });

/// The thread that drives `RUNTIME`, started with it.
static DRIVER: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();

/// The shared runtime (see `RUNTIME`), built and driven from first use on; a command that
/// asks no LLM never starts it.
pub fn runtime() -> std::result::Result<&'static tokio::runtime::Runtime, String> {
    let runtime: &'static tokio::runtime::Runtime = RUNTIME.as_ref().map_err(Clone::clone)?;
    DRIVER
        .get_or_init(|| {
            // Only `Runtime::block_on` drives a current-thread runtime's sockets and
            // timers; this one never returns, so the callers' `block_on` need not.
            std::thread::Builder::new()
                .name("retune-llm-io".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .map(drop)
                .map_err(|e| format!("cannot start the thread that drives HTTP: {e}"))
        })
        .clone()?;
    Ok(runtime)
}

/// HTTP clients by what tells them apart (a plain `http://` endpoint loads no certificate
/// store; the timeouts), each built once: a client holds its connection pool and its TLS
/// set-up, which every run of a review then shares.
static CLIENTS: LazyLock<Mutex<HashMap<(bool, Duration), reqwest::Client>>> =
    LazyLock::new(Mutex::default);

fn shared_client(
    base_url: &str,
    timeout: Duration,
) -> std::result::Result<reqwest::Client, String> {
    let plain = base_url
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("http://");
    let mut clients = CLIENTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = clients.get(&(plain, timeout)) {
        return Ok(client.clone());
    }
    let client = crate::http::client_builder(base_url)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("cannot set up HTTP: {e}"))?;
    clients.insert((plain, timeout), client.clone());
    Ok(client)
}

/// Where to send requests. `base_url` is normalised (ends in `/v1` for OpenAI-style
/// servers, no trailing slash).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base_url: String,
    pub model: String,
    pub key: Option<Secret>,
    /// Azure OpenAI: the deployment is the model, and the API version is a query.
    pub azure_api_version: Option<String>,
}

impl Endpoint {
    /// What a user typed, made into what async-openai concatenates paths onto:
    /// `http://127.0.0.1:8080` → `http://127.0.0.1:8080/v1`; a pasted
    /// `…/v1/chat/completions` loses its path; Azure resource URLs keep theirs.
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<Secret>,
        azure_version: Option<String>,
    ) -> Endpoint {
        let mut base = base_url.trim().trim_end_matches('/').to_string();
        if let Some(stripped) = base.strip_suffix("/chat/completions") {
            base = stripped.to_string();
        }
        let azure =
            base.contains(".openai.azure.com") || base.contains(".cognitiveservices.azure.com");
        if azure {
            if let Some(i) = base.find("/openai") {
                base.truncate(i);
            }
        } else if !base.ends_with("/v1") && url_path_is_empty(&base) {
            base.push_str("/v1");
        }
        Endpoint {
            base_url: base,
            model: model.to_string(),
            key,
            azure_api_version: azure
                .then(|| azure_version.unwrap_or_else(|| AZURE_DEFAULT_API_VERSION.into())),
        }
    }
}

fn url_path_is_empty(url: &str) -> bool {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    !after_scheme.contains('/')
}

/// Timeouts and retries, all configurable from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Resilience {
    pub timeout: Duration,
    pub retries: u32,
    pub deadline: Duration,
}

/// How the answer's format is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `response_format: json_schema` (strict): the server constrains the answer.
    JsonSchema,
    /// `response_format: json_object`, for servers that refuse json_schema.
    JsonObject,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::JsonSchema => "json_schema",
            Mode::JsonObject => "json_object",
        }
    }
}

/// One answer.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Reply {
    pub content: String,
    pub model: Option<String>,
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// Why a call produced no answer.
#[derive(Debug, Clone)]
pub enum CallError {
    /// The server refused the request as malformed (400/422): perhaps the response format.
    Refused { status: u16, message: String },
    /// Anything else, after retries: the message says what and where.
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Refused { status, message } => write!(f, "HTTP {status}: {message}"),
            CallError::Failed(message) => f.write_str(message),
        }
    }
}

/// What the HTTP layer saw, shared with the caller: attempts made and the last status.
#[derive(Debug, Default)]
struct Observed {
    attempts: AtomicU32,
    last: Mutex<Option<(u16, String)>>,
}

pub struct Transport {
    client: Client<Box<dyn Config>>,
    endpoint: Endpoint,
    observed: Arc<Observed>,
}

impl Transport {
    pub fn new(endpoint: Endpoint, resilience: Resilience) -> Result<Transport, String> {
        let key = endpoint
            .key
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        // async-openai turns the key into a header value and panics on characters a
        // header cannot hold; refuse them here with a message instead.
        if !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err("the API key holds characters that cannot go into an HTTP header (spaces, newlines or non-ASCII); check OPENAI_API_KEY".into());
        }
        let config: Box<dyn Config> = match &endpoint.azure_api_version {
            Some(version) => Box::new(
                AzureConfig::new()
                    .with_api_base(&endpoint.base_url)
                    .with_api_key(key)
                    .with_deployment_id(&endpoint.model)
                    .with_api_version(version),
            ),
            None => Box::new(
                OpenAIConfig::new()
                    .with_api_base(&endpoint.base_url)
                    .with_api_key(key),
            ),
        };
        let http = shared_client(&endpoint.base_url, resilience.timeout)?;
        let observed = Arc::new(Observed::default());
        let policy = RetryPolicy::new(resilience.retries, resilience.deadline);
        let service = {
            let (http, observed) = (http.clone(), observed.clone());
            tower::service_fn(move |factory: HttpRequestFactory| {
                send_with_retries(http.clone(), factory, policy, observed.clone())
            })
        };
        Ok(Transport {
            // `Client::build` with the shared client, not `Client::with_config`: that one
            // builds a reqwest client of its own (loading the system's certificate store,
            // about 7 ms) on every call, only to build requests with it.
            client: Client::build(http, config).with_http_service(service),
            endpoint,
            observed,
        })
    }

    /// HTTP attempts made so far (first tries and retries).
    pub fn attempts(&self) -> u32 {
        self.observed.attempts.load(Ordering::Relaxed)
    }

    /// One chat completion of `request` (a `request_body`). Errors are already retried
    /// where retrying makes sense.
    pub async fn complete(&self, request: Value) -> Result<Reply, CallError> {
        let result: Result<Value, OpenAIError> = self.client.chat().create_byot(request).await;
        let last = self.observed.last.lock().map(|l| l.clone()).unwrap_or(None);
        let base = &self.endpoint.base_url;
        match result {
            Ok(body) => match parse_reply(&body) {
                Some(reply) => Ok(Reply {
                    content: self.redact(&reply.content),
                    model: reply.model.map(|m| self.shown(&m)),
                    ..reply
                }),
                None => Err(CallError::Failed(format!(
                    "{base} answered without a message: {}",
                    self.shown(&crate::num::truncate(&body.to_string(), 300))
                ))),
            },
            Err(err) => match last {
                Some((status @ (400 | 422), body)) => Err(CallError::Refused {
                    status,
                    message: self.shown(&crate::num::truncate(&body, 300)),
                }),
                Some((status, body)) if status >= 400 => Err(CallError::Failed(format!(
                    "{base} answered HTTP {status}: {}",
                    self.shown(&crate::num::truncate(&body, 300))
                ))),
                _ => Err(CallError::Failed(format!(
                    "{base}: {}",
                    self.shown(&describe(&err))
                ))),
            },
        }
    }

    /// What the server said, with the key and anything like a key taken out.
    fn redact(&self, text: &str) -> String {
        let key = self.endpoint.key.as_ref().map(Secret::expose);
        crate::untrusted::redact(text, key).into_owned()
    }

    /// What the server said as part of a message: redacted, and with terminal controls
    /// made visible, since messages reach stderr through paths that print them as they
    /// are.
    fn shown(&self, text: &str) -> String {
        crate::untrusted::printable(&self.redact(text)).into_owned()
    }
}

/// Whether a refusal is about the requested answer format (so json_object may succeed),
/// judged from the server's message: llama.cpp says "JSON schema conversion failed",
/// OpenAI-style servers name `response_format`; a context overflow names neither.
pub fn about_the_format(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "response_format",
        "json_schema",
        "json schema",
        "schema",
        "grammar",
        "structured output",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// The request as JSON: the OpenAI chat-completions shape every compatible server reads.
pub fn request_body(
    model: &str,
    messages: &[Message],
    mode: Mode,
    schema: &Value,
    max_tokens: u32,
) -> Value {
    let response_format = match mode {
        Mode::JsonSchema => json!({
            "type": "json_schema",
            "json_schema": {"name": "retune_adjustment", "schema": schema, "strict": true},
        }),
        Mode::JsonObject => json!({"type": "json_object"}),
    };
    json!({
        "model": model,
        "messages": messages,
        "response_format": response_format,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": false,
    })
}

/// The answer's text and usage, from whatever fields the server sent.
fn parse_reply(body: &Value) -> Option<Reply> {
    let message = &body.get("choices")?.get(0)?["message"];
    let content = match &message["content"] {
        Value::String(s) => s.clone(),
        // Some servers put structured output in a parsed field or an array of parts.
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => message["parsed"]
            .as_object()
            .map(|o| Value::Object(o.clone()).to_string())?,
    };
    let usage = &body["usage"];
    Some(Reply {
        content,
        model: body["model"].as_str().map(str::to_string),
        prompt_tokens: usage["prompt_tokens"].as_u64(),
        completion_tokens: usage["completion_tokens"].as_u64(),
    })
}

/// Sends one request, retrying 429, 5xx, timeouts and connection failures under the
/// shared policy (`crate::http::RetryPolicy`: exponential backoff and jitter, or the
/// server's Retry-After, within the deadline).
async fn send_with_retries(
    http: reqwest::Client,
    factory: HttpRequestFactory,
    policy: RetryPolicy,
    observed: Arc<Observed>,
) -> Result<reqwest::Response, OpenAIError> {
    let outcome = policy
        .run(|_| {
            let (http, factory, observed) = (&http, &factory, &observed);
            async move {
                observed.attempts.fetch_add(1, Ordering::Relaxed);
                let request = factory.build().await.map_err(|e| Failed::Final(Err(e)))?;
                let transient_error = |err: reqwest::Error| {
                    if err.is_timeout() || err.is_connect() || err.is_request() || err.is_body() {
                        record(observed, 0, &err.to_string());
                        Failed::Transient {
                            error: Err(OpenAIError::Reqwest(err)),
                            retry_after: None,
                        }
                    } else {
                        Failed::Final(Err(OpenAIError::Reqwest(err)))
                    }
                };
                let response = http.execute(request).await.map_err(transient_error)?;
                let status = response.status();
                let transient = status.as_u16() == 429 || status.is_server_error();
                let retry_after = crate::http::retry_after(response.headers());
                let headers = response.headers().clone();
                // Every body is read here, within the request timeout and the size limit,
                // and handed to async-openai as an equal response.
                let limit = if status.is_success() {
                    MAX_RESPONSE_BYTES
                } else {
                    MAX_ERROR_BODY_BYTES
                };
                // An answer declared too large is not read at all.
                let declared = response.content_length().unwrap_or(0);
                if status.is_success() && declared > MAX_RESPONSE_BYTES as u64 {
                    record(observed, status.as_u16(), "");
                    return Err(Failed::Final(Err(OpenAIError::Boxed(Box::new(TooLarge)))));
                }
                let body = match read_capped(response, limit)
                    .await
                    .map_err(transient_error)?
                {
                    Capped::Whole(body) => body,
                    // The beginning of an error body is message enough.
                    Capped::Cut(body) if !status.is_success() => body,
                    Capped::Cut(_) => {
                        record(observed, status.as_u16(), "");
                        return Err(Failed::Final(Err(OpenAIError::Boxed(Box::new(TooLarge)))));
                    }
                };
                let text = if status.is_success() {
                    String::new()
                } else {
                    String::from_utf8_lossy(&body).into_owned()
                };
                record(observed, status.as_u16(), &text);
                let response = rebuild(status, headers, body);
                if transient {
                    Err(Failed::Transient {
                        error: Ok(response),
                        retry_after,
                    })
                } else {
                    Ok(response)
                }
            }
        })
        .await;
    // The last answer (a 429 or 5xx response async-openai reads as an error) or error.
    outcome.or_else(|gave_up| gave_up.error)
}

fn record(observed: &Observed, status: u16, body: &str) {
    if let Ok(mut last) = observed.last.lock() {
        *last = Some((status, body.to_string()));
    }
}

/// A body read up to a limit.
enum Capped {
    Whole(Vec<u8>),
    /// The first `limit` bytes; the rest was not read.
    Cut(Vec<u8>),
}

/// Reads `response`'s body up to `limit` bytes, chunk by chunk, so a huge body costs
/// `limit` and not its size.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Capped, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            body.extend_from_slice(&chunk[..limit - body.len()]);
            return Ok(Capped::Cut(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(body))
}

/// A success whose body passed `MAX_RESPONSE_BYTES`.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the answer was larger than {} MiB, the most retune reads (MAX_RESPONSE_BYTES), and was not read",
            MAX_RESPONSE_BYTES >> 20
        )
    }
}

impl std::error::Error for TooLarge {}

/// A response with a body we already read, for async-openai to read again.
fn rebuild(
    status: reqwest::StatusCode,
    mut headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
) -> reqwest::Response {
    // The body may have been cut, and is no longer encoded for transfer.
    headers.remove(reqwest::header::CONTENT_LENGTH);
    headers.remove(reqwest::header::TRANSFER_ENCODING);
    let mut builder = http::Response::builder().status(status);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder
        .body(body)
        .map(reqwest::Response::from)
        .unwrap_or_else(|_| reqwest::Response::from(http::Response::new(Vec::new())))
}

/// An error for a person: timeouts and refused connections in plain words.
fn describe(err: &OpenAIError) -> String {
    match err {
        OpenAIError::Reqwest(e) if e.is_timeout() => {
            "no answer before the request timeout (--timeout)".into()
        }
        OpenAIError::Reqwest(e) if e.is_connect() => {
            "could not connect (is the server running, and the URL right?)".into()
        }
        OpenAIError::Boxed(e) if e.is::<TooLarge>() => e.to_string(),
        OpenAIError::JSONDeserialize(e, body) => {
            format!(
                "answer is not JSON ({e}): {}",
                crate::num::truncate(body, 200)
            )
        }
        other => crate::num::truncate(&other.to_string(), 300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_normalised() {
        let e = |u: &str| Endpoint::new(u, "m", None, None);
        assert_eq!(
            e("http://127.0.0.1:8080").base_url,
            "http://127.0.0.1:8080/v1"
        );
        assert_eq!(
            e("http://127.0.0.1:8080/v1/").base_url,
            "http://127.0.0.1:8080/v1"
        );
        assert_eq!(
            e("http://localhost:11434/v1/chat/completions").base_url,
            "http://localhost:11434/v1"
        );
        assert_eq!(
            e("https://api.deepseek.com").base_url,
            "https://api.deepseek.com/v1"
        );
        assert_eq!(
            e("https://proxy.example/openai/v1").base_url,
            "https://proxy.example/openai/v1"
        );
        let azure = e("https://res.openai.azure.com/openai/deployments/gpt4o/");
        assert_eq!(azure.base_url, "https://res.openai.azure.com");
        assert_eq!(
            azure.azure_api_version.as_deref(),
            Some(AZURE_DEFAULT_API_VERSION)
        );
    }

    #[test]
    fn replies_are_read_leniently() {
        let minimal = json!({"choices": [{"message": {"content": "{\"a\":1}"}}]});
        assert_eq!(parse_reply(&minimal).unwrap().content, "{\"a\":1}");
        let parts = json!({"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "x"}]}}], "usage": {"prompt_tokens": 5, "completion_tokens": 7}});
        let r = parse_reply(&parts).unwrap();
        assert_eq!(
            (r.content.as_str(), r.prompt_tokens, r.completion_tokens),
            ("x", Some(5), Some(7))
        );
        assert!(parse_reply(&json!({"error": "x"})).is_none());
    }

    #[test]
    fn only_format_refusals_switch_the_format() {
        let fixture = |name: &str| {
            std::fs::read_to_string(format!(
                "{}/tests/fixtures/llm/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        assert!(about_the_format(&fixture("llama_400_invalid_schema.json")));
        assert!(!about_the_format(&fixture(
            "llama_400_context_exceeded.json"
        )));
        assert!(about_the_format(
            "response_format type json_schema is not supported"
        ));
    }
}
