//! Where a run's artifacts go: the server's artifact proxy, or, for a server that does
//! not proxy them (`mlflow server --no-serve-artifacts`, `--default-artifact-root s3://…`),
//! the store itself, written through `object_store` as MLflow's own client writes it, with
//! the credentials that client reads from the environment.
//!
//! Artifact URIs as MLflow hands them out (mlflow/store/artifact/artifact_repository_registry.py):
//! - `mlflow-artifacts:/…`, `http(s)://…`: the proxy (`writeback`);
//! - `s3://bucket/path`: S3, credentials from the standard `AWS_…` variables, the endpoint
//!   from `MLFLOW_S3_ENDPOINT_URL` as MLflow's client takes it (MinIO, moto, Ceph), else
//!   `AWS_ENDPOINT_URL`;
//! - `gs://bucket/path`: Google Cloud Storage, credentials from
//!   `GOOGLE_APPLICATION_CREDENTIALS` (a service account file), as MLflow's client reads;
//! - `wasbs://container@account.blob.core.windows.net/path` (MLflow's Azure Blob form) and
//!   `abfss://…`: Azure, the key from `AZURE_STORAGE_ACCESS_KEY` or the
//!   `AZURE_STORAGE_CONNECTION_STRING` MLflow's client takes;
//! - `file:///path` or `/path`: a shared folder, which must be there on this machine.
//!
//! Anything else (`hdfs:`, `sftp:`, `dbfs:` …) is refused before anything is written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as StorePath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use reqwest::Url;

/// A run's artifact folder in a store written directly.
pub(super) struct DirectStore {
    store: Arc<dyn ObjectStore>,
    /// The run's artifact folder inside the store.
    folder: StorePath,
    /// The folder as messages show it: the run's artifact URI.
    pub(super) shown: String,
}

/// How requests to a cloud store are bounded: the tracking server's timeout and retries.
pub(super) struct Limits {
    pub(super) timeout: Duration,
    pub(super) retries: u32,
    pub(super) deadline: Duration,
}

impl DirectStore {
    /// The store for `artifact_uri` when it names one written directly; `Ok(None)` when
    /// it is the proxy's; an error (for a message) when it cannot be written from here.
    pub(super) fn for_uri(
        artifact_uri: &str,
        limits: &Limits,
    ) -> std::result::Result<Option<DirectStore>, String> {
        let uri = artifact_uri.trim();
        if uri.starts_with("mlflow-artifacts:")
            || uri.starts_with("http://")
            || uri.starts_with("https://")
        {
            return Ok(None);
        }
        let shown = uri.to_string();
        if uri.starts_with('/') || uri.starts_with("file:") {
            let path = local_path(uri)?;
            return local_store(&path, shown).map(Some);
        }
        let scheme = uri.split(':').next().unwrap_or_default();
        let set = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let options = client_options(limits);
        let retry = RetryConfig {
            max_retries: limits.retries as usize,
            retry_timeout: limits.deadline,
            ..RetryConfig::default()
        };
        let url = Url::parse(uri).map_err(|e| format!("artifact URI `{uri}`: {e}"))?;
        let (store, folder): (Arc<dyn ObjectStore>, String) = match scheme {
            "s3" | "s3a" => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env();
                let endpoint = set("MLFLOW_S3_ENDPOINT_URL").or_else(|| set("AWS_ENDPOINT_URL"));
                if let Some(endpoint) = &endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                // A local S3 (MinIO, moto) is often plain HTTP; the client options, set
                // whole below, carry the permission.
                let plain = endpoint.is_some_and(|e| e.starts_with("http://"));
                // boto3 falls back to us-east-1 when no region is set; so does S3's API.
                if set("AWS_REGION").is_none() && set("AWS_DEFAULT_REGION").is_none() {
                    builder = builder.with_region("us-east-1");
                }
                let store = builder
                    .with_url(uri)
                    .with_client_options(options.with_allow_http(plain))
                    .with_retry(retry)
                    .build()
                    .map_err(|e| format!("artifact store `{uri}`: {e}"))?;
                (Arc::new(store), url.path().to_string())
            }
            "gs" => {
                let mut builder = object_store::gcp::GoogleCloudStorageBuilder::from_env();
                if let Some(path) = set("GOOGLE_APPLICATION_CREDENTIALS") {
                    builder = builder.with_application_credentials(path);
                }
                let store = builder
                    .with_url(uri)
                    .with_client_options(options)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| format!("artifact store `{uri}`: {e}"))?;
                (Arc::new(store), url.path().to_string())
            }
            "wasbs" | "wasb" | "abfss" | "abfs" => {
                let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env();
                if let Some(key) = set("AZURE_STORAGE_CONNECTION_STRING")
                    .as_deref()
                    .and_then(|s| connection_string_field(s, "AccountKey"))
                {
                    builder = builder.with_access_key(key);
                }
                // MLflow's form: wasbs://<container>@<account>.blob.core.windows.net/<path>
                let container = url.username();
                let account = url
                    .host_str()
                    .and_then(|h| h.split('.').next())
                    .unwrap_or_default();
                if container.is_empty() || account.is_empty() {
                    return Err(format!(
                        "artifact URI `{uri}`: expected `{scheme}://<container>@<account>.blob.core.windows.net/<path>`"
                    ));
                }
                let store = builder
                    .with_account(account)
                    .with_container_name(container)
                    .with_client_options(options)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| format!("artifact store `{uri}`: {e}"))?;
                (Arc::new(store), url.path().to_string())
            }
            _ => {
                return Err(format!(
                    "its artifacts live at `{uri}`, a kind of store retune does not write (it writes MLflow's proxy, s3://, gs://, wasbs:// or abfss://, and a folder); start the server with artifact serving (`mlflow server --serve-artifacts`), or leave out --write-back"
                ));
            }
        };
        let folder = StorePath::from_url_path(folder.trim_start_matches('/'))
            .map_err(|e| format!("artifact URI `{uri}`: {e}"))?;
        Ok(Some(DirectStore {
            store,
            folder,
            shown,
        }))
    }

    /// The location of `retune/<name>` in the run's artifacts.
    pub(super) fn location(&self, dir: &str, name: &str) -> StorePath {
        self.folder.clone().join(dir).join(name)
    }

    pub(super) async fn put(
        &self,
        at: &StorePath,
        bytes: Vec<u8>,
    ) -> std::result::Result<(), String> {
        self.store
            .put(at, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| store_error(&e))
    }

    pub(super) async fn delete(&self, at: &StorePath) -> std::result::Result<(), String> {
        self.store.delete(at).await.map_err(|e| store_error(&e))
    }
}

/// An object_store error on one line, its innermost cause last (a refused connection
/// says so, rather than only "error sending request").
fn store_error(e: &object_store::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn client_options(limits: &Limits) -> ClientOptions {
    ClientOptions::new()
        .with_timeout(limits.timeout)
        .with_connect_timeout(limits.timeout.min(super::client::CONNECT_TIMEOUT_MAX))
        .with_user_agent(reqwest::header::HeaderValue::from_static(concat!(
            "retune/",
            env!("CARGO_PKG_VERSION")
        )))
}

/// `Key=value;…` fields of an Azure connection string.
fn connection_string_field(text: &str, field: &str) -> Option<String> {
    text.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == field).then(|| v.trim().to_string())
    })
}

/// The folder a `file:` URI or a plain path names.
fn local_path(uri: &str) -> std::result::Result<PathBuf, String> {
    if uri.starts_with('/') {
        return Ok(PathBuf::from(uri));
    }
    Url::parse(uri)
        .ok()
        .filter(|u| matches!(u.host_str(), None | Some("") | Some("localhost")))
        .and_then(|u| u.to_file_path().ok())
        .ok_or_else(|| format!("artifact URI `{uri}` is not a folder on this machine"))
}

/// A shared folder. The run's own folder may not exist yet (MLflow's client creates it
/// with the first artifact), but the artifact root above the experiment's and the run's
/// folders must: if it is not there, this machine does not see the folder the server
/// hands out, and writing would put the files where nobody looks.
fn local_store(path: &Path, shown: String) -> std::result::Result<DirectStore, String> {
    // `<root>/<experiment id>/<run id>/artifacts`, MLflow's layout under an artifact root
    let root = if path.ends_with("artifacts") {
        path.ancestors().nth(3)
    } else {
        path.parent()
    };
    match root {
        Some(root) if root.is_dir() => {}
        _ => {
            let root = root.unwrap_or(path).display();
            return Err(format!(
                "its artifacts go to `{shown}`, and `{root}` is not a folder on this machine; mount the shared path the server hands out (or run retune where it is), or leave out --write-back"
            ));
        }
    }
    let folder = StorePath::from_absolute_path(path)
        .map_err(|e| format!("artifact folder `{shown}`: {e}"))?;
    Ok(DirectStore {
        store: Arc::new(object_store::local::LocalFileSystem::new()),
        folder,
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            timeout: Duration::from_secs(1),
            retries: 0,
            deadline: Duration::from_secs(1),
        }
    }

    #[test]
    fn artifact_uris_pick_the_store_mlflows_client_would_write() {
        let l = limits();
        for proxied in ["mlflow-artifacts:/1/a/artifacts", "https://h/api/2.0/x"] {
            assert!(DirectStore::for_uri(proxied, &l).unwrap().is_none());
        }
        let s3 = DirectStore::for_uri("s3://bucket/root/1/abc/artifacts", &l)
            .unwrap()
            .unwrap();
        assert_eq!(
            s3.location("retune", "report.md").as_ref(),
            "root/1/abc/artifacts/retune/report.md"
        );
        let gs = DirectStore::for_uri("gs://bucket/1/abc/artifacts", &l);
        assert!(gs.is_ok(), "{:?}", gs.err());
        let az = DirectStore::for_uri("wasbs://box@acct.blob.core.windows.net/p/1/a/artifacts", &l)
            .unwrap()
            .unwrap();
        assert_eq!(
            az.location("retune", "x").as_ref(),
            "p/1/a/artifacts/retune/x"
        );
        let e = DirectStore::for_uri("wasbs://acct.blob.core.windows.net/p", &l)
            .err()
            .unwrap();
        assert!(e.contains("<container>@<account>"), "{e}");
        let e = DirectStore::for_uri("hdfs://nn/x", &l).err().unwrap();
        assert!(e.contains("does not write"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("art");
        std::fs::create_dir(&root).unwrap();
        let run = root.join("1/abc/artifacts");
        for uri in [
            run.display().to_string(),
            format!("file://{}", run.display()),
        ] {
            let local = DirectStore::for_uri(&uri, &l).unwrap().unwrap();
            assert_eq!(local.shown, uri);
        }
        let e = DirectStore::for_uri("/no/such/root/1/abc/artifacts", &l)
            .err()
            .unwrap();
        assert!(
            e.contains("`/no/such/root` is not a folder on this machine"),
            "{e}"
        );
        assert_eq!(
            connection_string_field(
                "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k==;",
                "AccountKey"
            ),
            Some("k==".into())
        );
    }
}
