//! What the two HTTP clients (the LLM transport and the MLflow client) read the same way.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

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
