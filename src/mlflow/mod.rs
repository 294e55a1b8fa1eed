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
//! retried under the policy both HTTP clients share (`crate::http::RetryPolicy`:
//! exponential backoff and jitter, honouring `Retry-After`), all within the deadline,
//! which bounds one API call with its retries (a run's history is many calls).
//! Every call this module makes is idempotent (reads, setting tags to fixed values,
//! putting a file), so a retry cannot double anything. Errors are `Error::Input` (exit 2)
//! whose "path" is the server's URL, with the run id where they are about one run.
//!
//! The API is synchronous: a `Client` drives its own single-threaded tokio runtime, and
//! may be shared by threads (their calls take turns driving it). Called from async code
//! it still works, on a thread of its own, but blocks the calling task meanwhile: from
//! there, call it through `tokio::task::spawn_blocking`.
//!
//! A local file store (`mlruns/`) is read into the same `MlflowRun` (`local`), so the
//! rules above hold for it too.
//!
//! The files: `client` (the REST client: connection, credentials, one request with its
//! retries, paging, errors), `runs` (experiments, runs and metric histories read from the
//! server), `local` (the same from a file store), `params` (params → config), `epochs` (metric histories placed in epochs) and
//! `writeback` (artifacts and tags written back). The reading side does not use the
//! write-back side.

mod artifacts;
mod client;
mod epochs;
pub mod local;
mod params;
mod runs;
mod writeback;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::config::ConfigDoc;
use crate::error::{Error, Result};
use crate::metrics::{Format, MetricsBuilder};
use crate::run::Run;
use crate::space::Space;

pub use client::{Auth, Client};
pub use local::LocalStore;
pub use writeback::{ARTIFACT_DIR, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS_PER_BATCH};

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
        self.to_run_at(PathBuf::from(self.location(client_url)), space)
    }

    /// As `to_run`, named by `path` (a file store's run folder).
    pub fn to_run_at(&self, path: PathBuf, space: Space) -> Result<Run> {
        let mut builder = MetricsBuilder::new();
        let (root, flat) = params::params_config(&self.params);
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
        let (series, warnings) = epochs::epoch_series(&self.metrics);
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(super) fn points(steps: &[(i64, i64, f64)]) -> Vec<MetricPoint> {
        steps
            .iter()
            .map(|&(step, timestamp, value)| MetricPoint {
                step,
                timestamp,
                value,
            })
            .collect()
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
