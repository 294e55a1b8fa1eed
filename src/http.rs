//! What the two HTTP clients (the LLM transport and the MLflow client) do the same way:
//! read `Retry-After`, build a client, and retry a request under one policy.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};

/// A Retry-After longer than this is not waited for: the caller's deadline decides.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);

/// `Retry-After` in seconds (the form rate limiters send), capped at `RETRY_AFTER_MAX`.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0)
        .then(|| Duration::from_secs_f64(seconds).min(RETRY_AFTER_MAX))
}

/// A client builder for requests to `url`. For a plain `http://` server (a local
/// llama.cpp, an MLflow server on the team's network) no certificate store is loaded:
/// loading the system's roots costs about 7 ms, half of `suggest` with a local LLM, and
/// a review pays it per run.
pub fn client_builder(url: &str) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    if url.trim_start().to_ascii_lowercase().starts_with("http://") {
        builder.tls_certs_only(std::iter::empty())
    } else {
        builder
    }
}

/// First retry delay and the cap on any delay, for servers that send no Retry-After.
pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// How both clients retry: exponential backoff with jitter (backon) from `BACKOFF_MIN` to
/// `BACKOFF_MAX`, at most `retries` retries after the first attempt, the server's
/// Retry-After instead of the backoff when it sends one, and no retry whose wait would
/// end at or past `deadline` (counted from the first attempt): a Retry-After longer than
/// what is left of the deadline stops retrying.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub retries: u32,
    pub deadline: Duration,
}

/// What the policy tells an attempt.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// 1 for the first attempt, 2 for the first retry …
    pub number: u32,
    /// When the first attempt started.
    pub started: Instant,
    /// What is left of the deadline (zero when it has passed).
    pub remaining: Duration,
}

/// Why one attempt failed, as far as retrying goes.
#[derive(Debug)]
pub enum Failed<E> {
    /// Worth another attempt (429, 5xx, no answer), after `retry_after` when the server
    /// said how long to wait.
    Transient {
        error: E,
        retry_after: Option<Duration>,
    },
    /// Another attempt would get the same answer.
    Final(E),
}

/// The last attempt's error when the policy stops retrying.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub error: E,
    /// True when the deadline (not the retry count or a final error) stopped it.
    pub at_deadline: bool,
}

impl RetryPolicy {
    pub fn new(retries: u32, deadline: Duration) -> RetryPolicy {
        RetryPolicy { retries, deadline }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(BACKOFF_MIN)
            .with_max_delay(BACKOFF_MAX)
            .with_max_times(self.retries as usize)
            .with_jitter()
    }

    /// Runs `attempt` until it succeeds, fails for good, or the policy stops retrying.
    pub async fn run<T, E, F, Fut>(&self, mut attempt: F) -> Result<T, GaveUp<E>>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<T, Failed<E>>>,
    {
        let started = Instant::now();
        let end = started + self.deadline;
        // Atomics rather than cells, so that the future stays `Send`.
        let number = AtomicU32::new(0);
        let at_deadline = AtomicBool::new(false);
        let result = (|| {
            attempt(Attempt {
                number: number.fetch_add(1, Ordering::Relaxed) + 1,
                started,
                remaining: end.saturating_duration_since(Instant::now()),
            })
        })
        .retry(self.backoff())
        .when(|failed: &Failed<E>| matches!(failed, Failed::Transient { .. }))
        .adjust(|failed: &Failed<E>, backoff: Option<Duration>| {
            // No backoff left means the retries are used up, Retry-After or not.
            let backoff = backoff?;
            let wait = match failed {
                Failed::Transient { retry_after, .. } => retry_after.unwrap_or(backoff),
                Failed::Final(_) => return None,
            };
            if Instant::now() + wait >= end {
                at_deadline.store(true, Ordering::Relaxed);
                return None;
            }
            Some(wait)
        })
        .await;
        result.map_err(|failed| GaveUp {
            error: match failed {
                Failed::Transient { error, .. } | Failed::Final(error) => error,
            },
            at_deadline: at_deadline.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    /// Runs `policy` over attempts that fail with `failures` in turn and then succeed
    /// with the attempt's number; the attempts made, and how long it all took.
    fn run_over(
        policy: RetryPolicy,
        failures: Vec<Failed<&'static str>>,
    ) -> (Result<u32, GaveUp<&'static str>>, u32, Duration) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let failures = std::cell::RefCell::new(failures.into_iter());
        let made = std::cell::Cell::new(0);
        let started = Instant::now();
        let result = runtime.block_on(policy.run(|attempt| {
            made.set(made.get() + 1);
            assert_eq!(attempt.number, made.get());
            assert!(attempt.remaining <= policy.deadline);
            let next = failures.borrow_mut().next();
            async move {
                match next {
                    Some(failed) => Err(failed),
                    None => Ok(attempt.number),
                }
            }
        }));
        (result, made.get(), started.elapsed())
    }

    fn after(seconds: f64) -> Failed<&'static str> {
        Failed::Transient {
            error: "429",
            retry_after: Some(Duration::from_secs_f64(seconds)),
        }
    }

    #[test]
    fn retry_after_is_honoured_and_attempts_counted() {
        let policy = RetryPolicy::new(3, Duration::from_secs(30));
        // A Retry-After of 0.3 s replaces a first backoff of at most 0.4 s (0.2 s + jitter).
        let (result, attempts, elapsed) = run_over(policy, vec![after(0.3), after(0.0)]);
        assert_eq!((result.unwrap(), attempts), (3, 3));
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        // Retries used up: the last error after the first attempt and 3 retries.
        let (result, attempts, _) =
            run_over(policy, vec![after(0.0), after(0.0), after(0.0), after(0.0)]);
        let gave_up = result.unwrap_err();
        assert_eq!((gave_up.error, attempts), ("429", 4));
        assert!(!gave_up.at_deadline);
        // A final error is not retried.
        let (result, attempts, _) = run_over(policy, vec![Failed::Final("400")]);
        assert_eq!((result.unwrap_err().error, attempts), ("400", 1));
        // No retries at all: one attempt.
        let (result, attempts, _) = run_over(
            RetryPolicy::new(0, Duration::from_secs(30)),
            vec![after(0.0)],
        );
        assert_eq!((result.unwrap_err().error, attempts), ("429", 1));
    }

    #[test]
    fn the_deadline_stops_a_retry_that_would_end_past_it() {
        let policy = RetryPolicy::new(5, Duration::from_secs(2));
        // A Retry-After longer than the deadline: not waited for, no second attempt.
        let (result, attempts, elapsed) = run_over(policy, vec![after(10.0)]);
        let gave_up = result.unwrap_err();
        assert_eq!((gave_up.error, attempts), ("429", 1));
        assert!(gave_up.at_deadline);
        assert!(
            elapsed < Duration::from_secs(1),
            "did not wait: {elapsed:?}"
        );
        // One that fits is waited for.
        let (result, attempts, _) = run_over(policy, vec![after(0.1)]);
        assert_eq!((result.unwrap(), attempts), (2, 2));
        // Without a Retry-After the backoff is waited for, within the deadline.
        let transient = || Failed::Transient {
            error: "503",
            retry_after: None,
        };
        let (result, attempts, _) = run_over(policy, vec![transient()]);
        assert_eq!((result.unwrap(), attempts), (2, 2));
    }

    #[test]
    fn seconds_are_read_and_capped() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, HeaderValue::from_str(v).unwrap());
            retry_after(&h)
        };
        assert_eq!(with("2"), Some(Duration::from_secs(2)));
        assert_eq!(with(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(with("3600"), Some(RETRY_AFTER_MAX));
        // The HTTP-date form is not waited for: backoff decides.
        assert_eq!(with("Wed, 21 Oct 2026 07:28:00 GMT"), None);
        assert_eq!(with("-1"), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn clients_build_for_plain_and_tls_endpoints() {
        for url in [
            "http://127.0.0.1:8080/v1",
            "HTTP://host",
            "https://api.openai.com/v1",
        ] {
            assert!(client_builder(url).build().is_ok(), "{url}");
        }
    }
}
