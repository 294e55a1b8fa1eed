//! Reading: an experiment by name or id, its runs (every page), and the full history of
//! every metric of each, fetched a few at a time.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::{Value, json};

use super::client::{Client, Failure, Inner, Request, quote_short};
use super::{Experiment, MetricPoint, MlflowRun};
use crate::error::{Error, Result};

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

impl Client {
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
}

impl Inner {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
