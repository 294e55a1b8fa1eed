//! `retune review`: many runs, one summary. Runs come from folders (`discover`), an
//! MLflow experiment on a server, or MLflow's file store (`mlruns/`, read before folder
//! discovery); each is loaded and diagnosed, siblings are compared
//! (`siblings`), and then each is advised and validated exactly as `suggest` does it —
//! the same `conclude` — writing its files only with `--suggest`. Runs are reviewed
//! concurrently on a bounded pool; LLM calls share one budget. One run that cannot be
//! read does not stop the others: it is reported, and the exit code says so.

pub mod discover;
pub mod siblings;
pub mod summary;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rayon::prelude::*;
use serde::Serialize;

use crate::advisor::Advisor;
use crate::advisor::llm::budget::{Budget, Limits, Usage};
use crate::config::ConfigDoc;
use crate::diagnose;
use crate::error::{Error, ExitStatus, Result};
use crate::fsio::DirLock;
use crate::lang::Lang;
use crate::outcome::{OutputPaths, default_out};
use crate::pipeline::{self, AdvisorOptions, Finish, ReportOn, select_advisor};
use crate::run::Run;
use crate::space::Space;
use crate::types::Action;
use crate::types::LlmReport;
use crate::types::{Change, Rejected};
use crate::types::{Diagnosis, Finding, Severity};
use crate::{history, metrics, mlflow};

/// Everything a review needs, built once from the command line.
#[derive(Debug, Clone)]
pub struct ReviewOptions {
    /// Folders to search for runs (empty when the runs come from MLflow).
    pub dirs: Vec<PathBuf>,
    /// File-name globs of a run's config and metrics, instead of the built-in lists.
    pub config_name: Vec<String>,
    pub metrics_name: Vec<String>,
    pub metrics_format: Option<metrics::Format>,
    /// Write each run's adjusted config, report and history line, as `suggest` would.
    pub suggest: bool,
    pub concurrency: Option<u32>,
    pub max_llm_calls: Option<u64>,
    pub budget_tokens: Option<u64>,
    pub llm_rate: Option<u32>,
    pub report_dir: PathBuf,
    pub space: Option<PathBuf>,
    /// Show a progress bar on a terminal's stderr.
    pub progress: bool,
    pub lang: Lang,
    pub mlflow: MlflowOptions,
    pub advisor: AdvisorOptions,
}

/// Where the runs come from when they live on an MLflow tracking server.
#[derive(Debug, Clone, Default)]
pub struct MlflowOptions {
    pub url: Option<String>,
    pub experiment: Option<String>,
    pub filter: Option<String>,
    pub write_back: bool,
}

/// Where a run came from.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Source {
    Folder {
        dir: PathBuf,
        config: Option<PathBuf>,
        metrics: PathBuf,
    },
    Mlflow {
        /// The run's page on the server.
        url: String,
        experiment_id: String,
        run_id: String,
        run_name: String,
        /// `RUNNING`, `FINISHED`, `FAILED` …
        run_status: String,
    },
    /// A run in MLflow's local file store (`mlruns/`).
    Mlruns {
        /// The run's folder, `mlruns/<experiment id>/<run id>`.
        dir: PathBuf,
        experiment_id: String,
        run_id: String,
        run_name: String,
        run_status: String,
    },
}

/// How a run stands: its worst finding, or that it could not be reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The metrics file is empty: the run has started and logged no epoch yet. Not an
    /// error, so that a nightly review does not fail on every run that just began.
    Pending,
    Healthy,
    Warning,
    Critical,
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Healthy => "healthy",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Error => "error",
        }
    }

    fn of(findings: &[Finding]) -> Status {
        match findings.iter().map(|f| f.severity).max() {
            Some(Severity::Critical) => Status::Critical,
            Some(Severity::Warning) => Status::Warning,
            _ => Status::Healthy,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub critical: usize,
    pub warning: usize,
    pub info: usize,
}

/// One run's line in the summary: what `suggest --format json` says, plus where the run
/// came from and how it stands.
#[derive(Debug, Serialize)]
pub struct RunReview {
    pub name: String,
    pub source: Source,
    pub status: Status,
    pub counts: Counts,
    pub epochs: u32,
    pub findings: Vec<Finding>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub changes: Vec<Change>,
    pub rejected: Vec<Rejected>,
    pub actions: Vec<Action>,
    pub advice: Vec<String>,
    pub llm: Option<LlmReport>,
    pub adjustment_id: Option<String>,
    /// The run's report and adjusted config (with `--suggest`).
    pub report: Option<PathBuf>,
    pub config_out: Option<PathBuf>,
    /// The report's JSON twin and chart, which write-back uploads beside it.
    #[serde(skip)]
    report_json: Option<PathBuf>,
    #[serde(skip)]
    chart: Option<PathBuf>,
    /// What the metrics readers skipped.
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// The exit code the error would have had on its own.
    #[serde(skip)]
    error_code: Option<ExitStatus>,
    /// Tags and artifacts recorded on the MLflow run (`--write-back`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_back: Option<bool>,
    /// The server's run, kept until it is written back.
    #[serde(skip)]
    mlflow_run: Option<Box<mlflow::MlflowRun>>,
}

/// The review as `--format json` prints it and `review-<time>.json` keeps it.
#[derive(Debug, Serialize)]
pub struct Review {
    pub time: String,
    pub runs: Vec<RunReview>,
    pub totals: Totals,
    /// LLM calls and tokens the review used, when an LLM was configured.
    pub llm_usage: Option<Usage>,
    pub summary_report: Option<PathBuf>,
    pub exit_code: ExitStatus,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub runs: usize,
    pub pending: usize,
    pub healthy: usize,
    pub warning: usize,
    pub critical: usize,
    pub error: usize,
    pub changes: usize,
}

/// A run to review, before it is read.
struct Item {
    name: String,
    source: Source,
    /// Under `<report-dir>/runs/`.
    subdir: PathBuf,
    /// The run as the tracking server gave it, for an MLflow source.
    mlflow: Option<Box<mlflow::MlflowRun>>,
}

/// A run after load and diagnose.
struct Loaded {
    item: Item,
    read: std::result::Result<(Run, Diagnosis), Error>,
}

/// Everything the review needs besides the runs.
struct Context<'a> {
    args: &'a ReviewOptions,
    space: Space,
    advisor: Box<dyn Advisor>,
    finish: Finish,
    progress: indicatif::ProgressBar,
}

pub fn run(args: &ReviewOptions, time: Timestamp) -> Result<Review> {
    // Flags and files that are wrong fail before a tracking server is read in full.
    let at_once = concurrency(args);
    let budget = Arc::new(Budget::new(Limits {
        max_calls: args.max_llm_calls,
        max_tokens: args.budget_tokens,
        per_minute: args.llm_rate.and_then(std::num::NonZeroU32::new),
        at_once: std::num::NonZeroUsize::new(at_once),
    }));
    let advisor = select_advisor(&args.advisor, Some(budget.clone()))?;
    let uses_llm = advisor.uses_llm();
    let space = Space::load(args.space.as_deref())?;
    let (items, server) = match &args.mlflow.url {
        Some(url) => match local_store_uri(url) {
            Some(store) => (
                mlruns_items(args, &store?, args.mlflow.experiment.as_deref())?,
                None,
            ),
            None => {
                let (items, client) = mlflow_items(args, url)?;
                (items, Some(client))
            }
        },
        None => {
            // An MLflow file store among the folders is read as one, before discovery
            // (whose rule, a folder with a metrics file, does not fit its layout).
            let (stores, dirs): (Vec<_>, Vec<_>) = args
                .dirs
                .iter()
                .map(|d| (d, mlflow::LocalStore::detect(d)))
                .partition(|(_, store)| store.is_some());
            let mut items = Vec::new();
            for store in stores.into_iter().filter_map(|(_, s)| s) {
                items.extend(mlruns_items(args, &store, None)?);
            }
            if !dirs.is_empty() || items.is_empty() {
                let rest = ReviewOptions {
                    dirs: dirs.into_iter().map(|(d, _)| d.clone()).collect(),
                    ..args.clone()
                };
                items.extend(folder_items(&rest)?);
            }
            (items, None)
        }
    };
    let context = Context {
        args,
        space,
        advisor,
        finish: Finish {
            lang: args.lang,
            time,
            // Writing back needs the reports and adjusted configs it uploads.
            dry_run: !(args.suggest || args.mlflow.write_back),
            in_place: false,
            // A review's per-run report is what its summary links and write-back uploads.
            report_on: ReportOn::Always,
        },
        progress: progress_bar(args.progress, items.len()),
    };
    // With an LLM, `at_once` runs talk to it (the budget's slots) while as many more build
    // their prompts, so that a freed slot goes at once to a run that is ready.
    let threads = if uses_llm { at_once * 2 } else { at_once };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("review-{i}"))
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))?;

    context.progress.set_message("reading");
    let mut loaded: Vec<Loaded> = pool.install(|| {
        items
            .into_par_iter()
            .map(|item| {
                let read = load(&context, &item);
                context.progress.inc(1);
                Loaded { item, read }
            })
            .collect()
    });
    compare_siblings(&mut loaded, args.lang);

    context.progress.set_position(0);
    context.progress.set_message("advising");
    let mut runs: Vec<RunReview> = pool.install(|| {
        loaded
            .into_par_iter()
            // One run at a time per thread, each thread taking the next run as soon as it
            // is free: a thread must not hold a batch of runs whose LLM waits it would then
            // wait one after another while other threads sit idle.
            .with_max_len(1)
            .map(|l| {
                let review = conclude(&context, l);
                context.progress.inc(1);
                review
            })
            .collect()
    });
    let mut written_back = Ok(());
    if let (Some(client), true) = (&server, args.mlflow.write_back) {
        context.progress.set_position(0);
        context.progress.set_message("writing");
        written_back = write_back(client, &mut runs, &context.progress);
    }
    context.progress.finish_and_clear();

    let mut review = Review {
        time: time.to_string(),
        totals: totals(&runs),
        exit_code: exit_code(&runs),
        runs,
        llm_usage: uses_llm.then(|| budget.usage()),
        summary_report: None,
    };
    if let Err(err) = &written_back {
        eprintln!("error: {}", crate::untrusted::printable(&err.to_string()));
        review.exit_code = err.exit_status();
    }
    let written = summary::write(&mut review, &args.report_dir, &time, args.lang);
    if let Err(err) = &written {
        eprintln!("error: {}", crate::untrusted::printable(&err.to_string()));
        review.exit_code = review.exit_code.max(ExitStatus::WriteFailed);
    }
    Ok(review)
}

/// Where retune's trainer callbacks keep a run's history, in the run's folder.
const TRAINER_HISTORY: &str = "history.jsonl";

fn folder_items(args: &ReviewOptions) -> Result<Vec<Item>> {
    let names = discover::Names::new(&args.config_name, &args.metrics_name)?;
    let found = discover::discover(&args.dirs, &names, std::slice::from_ref(&args.report_dir))?;
    if found.is_empty() {
        let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(Error::Usage(format!(
            "no runs found under {} (a run is a folder with a metrics file such as metrics.csv, history.csv, trainer_state.json or training.log; --metrics-name names others)",
            dirs.join(", ")
        )));
    }
    Ok(found
        .into_iter()
        .map(|f| Item {
            subdir: discover::report_subdir(&f.name),
            name: f.name,
            source: Source::Folder {
                dir: f.dir,
                config: f.config,
                metrics: f.metrics,
            },
            mlflow: None,
        })
        .collect())
}

/// Timeouts for the tracking server: its answers are small, but a busy server on a
/// shared machine may take a while; the retries fit in the deadline.
const MLFLOW_TIMEOUT: Duration = Duration::from_secs(30);
const MLFLOW_RETRIES: u32 = 3;
const MLFLOW_DEADLINE: Duration = Duration::from_secs(120);

/// Every run of the experiment, read in full before anything is reviewed.
fn mlflow_items(args: &ReviewOptions, url: &str) -> Result<(Vec<Item>, mlflow::Client)> {
    let experiment_arg = args
        .mlflow
        .experiment
        .as_deref()
        .ok_or_else(|| Error::Usage("--mlflow needs --experiment NAME|ID".into()))?;
    let auth = mlflow::Auth::from_env(&crate::settings::process_env);
    let client =
        mlflow::Client::with_auth(url, MLFLOW_TIMEOUT, MLFLOW_RETRIES, MLFLOW_DEADLINE, auth)?;
    let experiment = client.experiment(experiment_arg)?;
    let runs = client.runs(&experiment, args.mlflow.filter.as_deref())?;
    if runs.is_empty() {
        return Err(Error::Usage(format!(
            "{}: experiment `{}` has no runs{}",
            client.url(),
            experiment.name,
            args.mlflow
                .filter
                .as_deref()
                .map(|f| format!(" matching `{f}`"))
                .unwrap_or_default()
        )));
    }
    // Run names repeat in MLflow (they are labels); the id settles a tie.
    let names = mlflow::local::run_names(runs.iter().map(|r| {
        (
            experiment.name.as_str(),
            r.run_name.as_str(),
            r.run_id.as_str(),
        )
    }));
    let items = runs
        .into_iter()
        .zip(names)
        .map(|(r, name)| Item {
            subdir: PathBuf::from("mlflow")
                .join(discover::report_subdir(&experiment.name))
                .join(discover::report_subdir(&r.run_id)),
            source: Source::Mlflow {
                url: r.location(client.url()),
                experiment_id: r.experiment_id.clone(),
                run_id: r.run_id.clone(),
                run_name: r.run_name.clone(),
                run_status: r.status.clone(),
            },
            name,
            mlflow: Some(Box::new(r)),
        })
        .collect();
    Ok((items, client))
}

/// The file store a `--mlflow` value names, if it names one: a `file:` URI as MLflow's
/// client takes it, or a plain path (which MLflow's client also takes) to a folder.
fn local_store_uri(url: &str) -> Option<Result<mlflow::LocalStore>> {
    if let Some(store) = mlflow::LocalStore::from_uri(url) {
        return Some(store);
    }
    let path = std::path::Path::new(url.trim());
    let web = url.contains("://");
    (!web && path.is_dir()).then(|| mlflow::LocalStore::open(path))
}

/// Every active run of a file store's active experiments (or of the one asked for),
/// named as runs on a server are. Only the `meta.yaml` files are read here; a run whose
/// `meta.yaml` cannot be read is listed, and its review says why.
fn mlruns_items(
    args: &ReviewOptions,
    store: &mlflow::LocalStore,
    experiment: Option<&str>,
) -> Result<Vec<Item>> {
    let shown = store.shown();
    if args.mlflow.write_back {
        return Err(Error::Usage(format!(
            "{shown}: --write-back records results on a tracking server; a file store is only read (MLflow's client writes it, and two writers without locks would corrupt it). Leave out --write-back (the reports are under --report-dir), or serve the store with `mlflow server --backend-store-uri {shown}` and review that"
        )));
    }
    if let Some(filter) = &args.mlflow.filter {
        return Err(Error::Usage(format!(
            "{shown}: --filter `{filter}` is MLflow's search syntax, which a tracking server evaluates; a file store is read whole. Leave out --filter, or serve the store with `mlflow server --backend-store-uri {shown}`"
        )));
    }
    let experiments = match experiment {
        Some(wanted) => vec![store.experiment(wanted)?],
        None => store.experiments()?,
    };
    let mut listed = Vec::new();
    for experiment in &experiments {
        for run in store.runs(experiment)? {
            let folder = run
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (run_id, run_name, run_status) = match run.meta {
                Ok(None) => continue,
                Ok(Some(meta)) => (meta.run_id, meta.run_name, meta.status),
                Err(_) => (folder, String::new(), String::new()),
            };
            listed.push((experiment, run.dir, run_id, run_name, run_status));
        }
    }
    if listed.is_empty() {
        return Err(Error::Usage(match experiment {
            Some(_) => format!(
                "{shown}: experiment `{}` has no active runs",
                experiments[0].name
            ),
            None => format!("{shown}: the MLflow file store has no active runs"),
        }));
    }
    let names = mlflow::local::run_names(
        listed
            .iter()
            .map(|(e, _, id, name, _)| (e.name.as_str(), name.as_str(), id.as_str())),
    );
    Ok(listed
        .into_iter()
        .zip(names)
        .map(
            |((experiment, dir, run_id, run_name, run_status), name)| Item {
                subdir: PathBuf::from("mlflow")
                    .join(discover::report_subdir(&experiment.name))
                    .join(discover::report_subdir(&run_id)),
                source: Source::Mlruns {
                    dir,
                    experiment_id: experiment.id.clone(),
                    run_id,
                    run_name,
                    run_status,
                },
                name,
                mlflow: None,
            },
        )
        .collect())
}

/// Records each reviewed run's result on the server: its report, chart, JSON and adjusted
/// config as artifacts, then the tags in one call (see `mlflow::Client::write_back`). Stops
/// at the first failure: the server is then likely down, and every run written so far
/// has all of its tags and files.
fn write_back(
    client: &mlflow::Client,
    runs: &mut [RunReview],
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    for review in runs.iter_mut() {
        // Only a run read from the server holds one.
        let Some(run) = review.mlflow_run.take() else {
            continue;
        };
        review.written_back = Some(false);
        // The report shows its chart by the chart's own file name, so it keeps it.
        let chart_name = review
            .chart
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let files = [
            (
                "config.retuned.json".to_string(),
                review.config_out.as_ref(),
            ),
            ("report.md".to_string(), review.report.as_ref()),
            ("report.json".to_string(), review.report_json.as_ref()),
            (chart_name.unwrap_or_default(), review.chart.as_ref()),
        ];
        let mut artifacts = Vec::new();
        for (name, path) in files {
            if let Some(path) = path {
                let bytes = std::fs::read(path).map_err(|e| Error::read(path, &e))?;
                artifacts.push((name, bytes));
            }
        }
        let tags = summary::tags(review);
        client.write_back(&run, &tags, &artifacts)?;
        review.written_back = Some(true);
        progress.inc(1);
    }
    Ok(())
}

fn concurrency(args: &ReviewOptions) -> usize {
    args.concurrency.map(|n| n as usize).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// A bar on a terminal's stderr; nothing when a program reads the output (`progress` is
/// false) or when stderr is not a terminal.
fn progress_bar(progress: bool, len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg:9} [{bar:30}] {pos}/{len} runs ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn run_paths(context: &Context, item: &Item) -> OutputPaths {
    let report_dir = context.args.report_dir.join("runs").join(&item.subdir);
    let config_out = match &item.source {
        Source::Folder {
            config: Some(config),
            ..
        } => default_out(config),
        Source::Folder { dir, .. } => dir.join("config.retuned.json"),
        Source::Mlflow { .. } | Source::Mlruns { .. } => report_dir.join("config.retuned.json"),
    };
    OutputPaths {
        config_out,
        history: report_dir.join("history.jsonl"),
        report_dir,
    }
}

fn load(context: &Context, item: &Item) -> std::result::Result<(Run, Diagnosis), Error> {
    let paths = run_paths(context, item);
    let run = match &item.source {
        Source::Folder {
            dir,
            config,
            metrics,
        } => {
            let config = config.as_deref().map(ConfigDoc::load).transpose()?;
            let mut metrics = metrics::load_metrics(metrics, context.args.metrics_format)?;
            let history = folder_history(&paths, dir, &mut metrics.warnings)?;
            Run::new(config, metrics, context.space.clone(), history, None)
        }
        Source::Mlflow { url, .. } => {
            let server = item
                .mlflow
                .as_deref()
                .ok_or_else(|| Error::Usage(format!("{url}: the run's data was not read")))?;
            let base = context.args.mlflow.url.as_deref().unwrap_or_default();
            let mut run = server.to_run(base, context.space.clone())?;
            run.history = history::read(&paths.history)?;
            run
        }
        Source::Mlruns { dir, .. } => {
            // Read again in full here, on the pool: the listing read only the meta.yaml.
            let meta = mlflow::local::read_run_meta(dir)?.ok_or_else(|| {
                Error::input(dir, "the run was deleted while the review was reading it")
            })?;
            let mut run = meta.read()?.to_run_at(dir.clone(), context.space.clone())?;
            run.history = history::read(&paths.history)?;
            run
        }
    };
    let diagnosis = diagnose::diagnose(&run, context.args.lang);
    Ok((run, diagnosis))
}

/// A folder run's history: the review's own for the run, and the one retune's trainer
/// callbacks keep beside the run's files, whose restores and cuts are part of the run (a
/// blow-up it rolled back from is not judged again, a cut it made is cooling down).
fn folder_history(
    paths: &OutputPaths,
    dir: &std::path::Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<history::HistoryEntry>> {
    let mut history = history::read(&paths.history)?;
    let trainers = dir.join(TRAINER_HISTORY);
    if trainers.is_file() {
        match history::read(&trainers) {
            Ok(entries) => history.extend(entries),
            Err(e) => warnings.push(format!("{e} (not read as the run's retune history)")),
        }
        history.sort_by(|a, b| a.time.cmp(&b.time));
    }
    Ok(history)
}

/// The lock a run's writes hold (`--suggest`, `--write-back`): the one `suggest` takes on
/// the config's folder, so a review and a `suggest --in-place` of one run, or two reviews,
/// read, decide and write one after another. A run without a config file of its own (an
/// MLflow run) writes only under its report folder, which is locked instead.
fn lock_run(item: &Item, paths: &OutputPaths) -> Result<DirLock> {
    match &item.source {
        Source::Folder {
            config: Some(config),
            ..
        } => DirLock::acquire(&crate::fsio::resolve(config)),
        _ => {
            std::fs::create_dir_all(&paths.report_dir)
                .map_err(|e| Error::write(&paths.report_dir, e))?;
            DirLock::acquire(&paths.report_dir.join("config.retuned.json"))
        }
    }
}

/// The run as it is now that its lock is held. The load pass read it without the lock,
/// so another writer may have changed its history or config since: then it is read and
/// diagnosed again (without the sibling comparison, which needs every run), and the
/// decision sees the other's change and cooldown.
fn under_lock(
    context: &Context,
    item: &Item,
    paths: &OutputPaths,
    run: Run,
    diagnosis: Diagnosis,
) -> Result<(Run, Diagnosis)> {
    let history_now = match &item.source {
        Source::Folder { dir, .. } => folder_history(paths, dir, &mut Vec::new())?,
        _ => history::read(&paths.history)?,
    };
    let config_now = match (&item.source, &run.config) {
        (
            Source::Folder {
                config: Some(_), ..
            },
            Some(config),
        ) => Some(ConfigDoc::load(&config.path)?.text),
        _ => None,
    };
    let config_same = config_now
        .as_ref()
        .is_none_or(|now| run.config.as_ref().is_some_and(|c| &c.text == now));
    if config_same && same_history(&history_now, &run.history) {
        return Ok((run, diagnosis));
    }
    load(context, item)
}

fn same_history(a: &[history::HistoryEntry], b: &[history::HistoryEntry]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.adjustment_id == y.adjustment_id
                && x.time == y.time
                && x.written == y.written
                && x.changes == y.changes
                && x.not_applied == y.not_applied
        })
}

fn compare_siblings(loaded: &mut [Loaded], lang: Lang) {
    let notes = {
        let members: Vec<siblings::Member> = loaded
            .iter()
            .filter_map(|l| {
                let (run, diagnosis) = l.read.as_ref().ok()?;
                Some(siblings::Member {
                    name: &l.item.name,
                    run,
                    diagnosis,
                })
            })
            .collect();
        siblings::compare(&members, lang)
    };
    let mut diagnoses: Vec<&mut Diagnosis> = loaded
        .iter_mut()
        .filter_map(|l| l.read.as_mut().ok().map(|(_, d)| d))
        .collect();
    siblings::apply(notes, &mut diagnoses);
}

/// advise → validate (→ write with `--suggest`) for one run, as `suggest` does it.
fn conclude(context: &Context, loaded: Loaded) -> RunReview {
    let Loaded { item, read } = loaded;
    let paths = run_paths(context, &item);
    // Held until this run's files and history line are written.
    let mut _lock = None;
    let read = match read {
        Ok((run, diagnosis)) if !context.finish.dry_run && run.config.is_some() => {
            lock_run(&item, &paths).and_then(|lock| {
                _lock = Some(lock);
                under_lock(context, &item, &paths, run, diagnosis)
            })
        }
        other => other,
    };
    let (run, diagnosis) = match read {
        Ok(read) => read,
        Err(_) if not_started(&item) => {
            let mut review = blank(item, Status::Pending);
            review.advice.push(crate::lang::say!(
                context.args.lang,
                "the metrics file is empty: no epoch logged yet",
                "指标文件为空：尚未记录任何轮次"
            ));
            return review;
        }
        Err(err) => return failed(item, &err),
    };
    let mut review = RunReview {
        status: Status::of(&diagnosis.findings),
        counts: counts(&diagnosis.findings),
        epochs: run.facts.epochs_done,
        findings: diagnosis.findings.clone(),
        warnings: run.metrics.warnings.clone(),
        ..blank(item, Status::Healthy)
    };
    if run.config.is_none() {
        review.advice.push(crate::lang::say!(
            context.args.lang,
            "no config beside the metrics: diagnosed from the metrics alone, no changes proposed",
            "指标旁没有配置文件：仅根据指标诊断，不提出变更"
        ));
        return review;
    }
    // A healthy run gets no LLM call: the advisor decides that, for `suggest` alike.
    let advisor = context.advisor.as_ref();
    match pipeline::conclude(run, diagnosis, advisor, paths, &context.finish) {
        Ok(outcome) => {
            review.provider = Some(outcome.proposal.provider);
            review.model = outcome.proposal.model;
            review.changes = outcome.decision.changes;
            review.rejected = outcome.decision.rejected;
            review.rejected.extend(outcome.proposal.discarded);
            review.actions = outcome.decision.actions;
            review.advice = outcome.proposal.advice;
            review.llm = outcome.proposal.llm;
            review.adjustment_id = Some(outcome.adjustment_id);
            review.report = outcome.written.report;
            review.config_out = outcome.written.config_out;
            review.report_json = outcome.written.report_json;
            review.chart = outcome.written.chart;
            review
        }
        Err(err) => {
            review.status = Status::Error;
            review.error_code = Some(err.exit_status());
            review.error = Some(err.to_string());
            review
        }
    }
}

/// A run whose metrics file exists and is empty (Keras' CSVLogger opens its file when
/// training begins and writes the first row after the first epoch).
fn not_started(item: &Item) -> bool {
    match &item.source {
        Source::Folder { metrics, .. } => {
            std::fs::metadata(metrics).is_ok_and(|m| m.is_file() && m.len() == 0)
        }
        Source::Mlflow { .. } => item
            .mlflow
            .as_ref()
            .is_some_and(|r| r.metrics.values().all(|points| points.is_empty())),
        Source::Mlruns { dir, .. } => mlflow::local::read_run_meta(dir)
            .ok()
            .flatten()
            .is_some_and(|r| r.no_metrics_yet()),
    }
}

fn failed(item: Item, err: &Error) -> RunReview {
    RunReview {
        error: Some(err.to_string()),
        error_code: Some(err.exit_status()),
        ..blank(item, Status::Error)
    }
}

/// A run's line with nothing read.
fn blank(item: Item, status: Status) -> RunReview {
    RunReview {
        name: item.name,
        source: item.source,
        status,
        counts: Counts::default(),
        epochs: 0,
        findings: Vec::new(),
        provider: None,
        model: None,
        changes: Vec::new(),
        rejected: Vec::new(),
        actions: Vec::new(),
        advice: Vec::new(),
        llm: None,
        adjustment_id: None,
        report: None,
        config_out: None,
        report_json: None,
        chart: None,
        warnings: Vec::new(),
        error: None,
        error_code: None,
        written_back: None,
        mlflow_run: item.mlflow,
    }
}

fn counts(findings: &[Finding]) -> Counts {
    let mut c = Counts::default();
    for f in findings {
        match f.severity {
            Severity::Critical => c.critical += 1,
            Severity::Warning => c.warning += 1,
            Severity::Info => c.info += 1,
        }
    }
    c
}

fn totals(runs: &[RunReview]) -> Totals {
    let mut t = Totals {
        runs: runs.len(),
        ..Totals::default()
    };
    for r in runs {
        match r.status {
            Status::Pending => t.pending += 1,
            Status::Healthy => t.healthy += 1,
            Status::Warning => t.warning += 1,
            Status::Critical => t.critical += 1,
            Status::Error => t.error += 1,
        }
        t.changes += r.changes.len();
    }
    t
}

/// Bad input first (2), then an LLM that was required and failed (3), then a failed
/// write (4), then runs that need attention (1).
fn exit_code(runs: &[RunReview]) -> ExitStatus {
    let errors: Vec<ExitStatus> = runs.iter().filter_map(|r| r.error_code).collect();
    for status in [
        ExitStatus::BadInput,
        ExitStatus::LlmUnavailable,
        ExitStatus::WriteFailed,
    ] {
        if errors.contains(&status) {
            return status;
        }
    }
    if runs
        .iter()
        .any(|r| matches!(r.status, Status::Warning | Status::Critical))
    {
        ExitStatus::Attention
    } else {
        ExitStatus::Success
    }
}
