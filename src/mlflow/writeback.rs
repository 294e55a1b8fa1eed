//! Write-back: retune's result recorded on a run, as artifacts under `retune/` and tags in
//! one batch, checked against the server's limits first and undone when it fails halfway.

use std::collections::HashSet;
use std::path::Path;

use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::MlflowRun;
use super::artifacts::{DirectStore, Limits};
use super::client::{Client, Inner, Request};
use crate::error::{Error, Result};

/// The server's limits on `runs/log-batch` (mlflow/utils/validation.py): tags per batch,
/// characters in a key and in a value. Checked before anything is written, so a refusal
/// cannot come halfway through a write-back.
pub const MAX_TAGS_PER_BATCH: usize = 100;
pub const MAX_TAG_KEY_CHARS: usize = 250;
pub const MAX_TAG_VALUE_CHARS: usize = 8000;
/// The artifact folder retune's files go to on each run.
pub const ARTIFACT_DIR: &str = "retune";

const ARTIFACTS_API: &str = "api/2.0/mlflow-artifacts/artifacts";

impl Client {
    /// Records retune's result on one run: the artifacts go under `retune/` in the run's
    /// artifacts first, then every tag in one `runs/log-batch` call, so a run has either
    /// all the tags or none. Tags and file names are checked against the server's limits
    /// before anything is sent. Artifacts go through the server's artifact proxy, or,
    /// when the server hands out the store itself (`s3://`, `gs://`, `wasbs://`, a shared
    /// folder), straight to that store as MLflow's client would (`artifacts`); a store
    /// that cannot be written from here is refused before anything is written, and
    /// artifacts already uploaded when a later step fails are deleted again.
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
        let target = if artifacts.is_empty() {
            None
        } else {
            Some(
                self.inner
                    .artifact_target(&run.artifact_uri)
                    .map_err(run_error)?,
            )
        };
        let inner = self.inner.clone();
        let run_id = run.run_id.clone();
        let tags = tags.to_vec();
        let artifacts = artifacts.to_vec();
        self.block_on(async move {
            let mut uploaded: Vec<Url> = Vec::new();
            let mut stored = Vec::new();
            let mut failure = None;
            match &target {
                None => {}
                Some(Target::Proxy(folder)) => {
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
                Some(Target::Direct(store)) => {
                    for (name, bytes) in &artifacts {
                        let at = store.location(ARTIFACT_DIR, name);
                        match store.put(&at, bytes.clone()).await {
                            Ok(()) => stored.push((name.as_str(), at)),
                            Err(e) => {
                                failure = Some(format!(
                                    "uploading artifact {ARTIFACT_DIR}/{name} to `{}`: {e}",
                                    store.shown
                                ));
                                break;
                            }
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
            let undone = match &target {
                Some(Target::Direct(store)) => delete_stored(store, &stored).await,
                _ => inner.delete_all(&uploaded).await,
            };
            Err(Error::input(
                Path::new(&inner.shown),
                format!("run {run_id}: write-back failed, nothing was recorded: {failure}{undone}"),
            ))
        })
    }
}

/// Where a run's artifacts are written.
enum Target {
    /// The run's folder on the server's artifact proxy.
    Proxy(Url),
    /// The store the server hands out, written directly.
    Direct(DirectStore),
}

/// Deletes artifacts a failed write-back put in a store directly; says how that went.
async fn delete_stored(store: &DirectStore, stored: &[(&str, object_store::path::Path)]) -> String {
    if stored.is_empty() {
        return String::new();
    }
    let mut left = Vec::new();
    for (name, at) in stored {
        if store.delete(at).await.is_err() {
            left.push(*name);
        }
    }
    if left.is_empty() {
        format!(
            " (the {} artifact(s) uploaded before were deleted again)",
            stored.len()
        )
    } else {
        format!(
            " (artifacts uploaded before that could not be deleted again: {})",
            left.join(", ")
        )
    }
}

impl Inner {
    /// Where a run's artifacts go: the proxy, or the store the server hands out.
    fn artifact_target(&self, artifact_uri: &str) -> std::result::Result<Target, String> {
        let limits = Limits {
            timeout: self.timeout,
            retries: self.retry.retries,
            deadline: self.retry.deadline,
        };
        match DirectStore::for_uri(artifact_uri, &limits)? {
            Some(store) => Ok(Target::Direct(store)),
            None => self.artifact_folder(artifact_uri).map(Target::Proxy),
        }
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
    use std::time::Duration;

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
}
