//! retune: tunes a deep-learning training run between epochs.
//!
//! The data flow runs one way (../DESIGN.md):
//!
//! ```text
//! config.json ─┐
//! metrics.*  ──┼─► load ─► diagnose ─► advise ─► validate ─► write
//! space.toml ──┘   Run      Diagnosis  Proposal   Decision   adjusted config, report.md,
//! history    ─────────────────────────────────────────────── report.json, history line
//! ```
//!
//! Each stage is a module with one entry point: `run::load_run`, `diagnose::diagnose`,
//! `Advisor::advise`, `validate::validate`, `report::write`. They share the types above
//! and nothing else. `suggest` below is the whole pipeline.

pub mod advisor;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod fsio;
pub mod history;
pub mod http;
pub mod lang;
pub mod metrics;
pub mod mlflow;
pub mod report;
pub mod review;
pub mod run;
pub mod settings;
pub mod space;
pub mod validate;

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::advisor::{AdviceInput, Advisor, Proposal};
use crate::cli::{Cli, Command, DiagnoseArgs, SuggestArgs};
use crate::diagnose::Diagnosis;
use crate::error::{Error, Result};
use crate::lang::Lang;
use crate::run::{LoadOptions, Run};
use crate::validate::Decision;

/// Runs one command line and returns its exit code. Printing happens here; the stages
/// return data.
pub fn run(cli: Cli) -> Result<u8> {
    let done = match cli.command {
        Command::Review(args) => return review::run(&args, now()?),
        Command::Suggest(args) => {
            let outcome = suggest(&args, now()?)?;
            report::print_suggest(&outcome, args.input.format)
        }
        Command::Diagnose(args) => {
            let (run, diagnosis) = diagnose_only(&args)?;
            report::print_diagnosis(&run, &diagnosis, args.input.format, args.input.lang)
        }
        Command::Prompt(args) => {
            let lang = args.input.lang;
            let run = load(&args.input, Some(args.config.clone()), args.history.clone())?;
            let diagnosis = diagnose::diagnose(&run, lang);
            let templates = advisor::llm::prompt::Templates::load(args.prompts.as_deref())?;
            let messages = templates.messages(&run, &diagnosis, lang)?;
            report::print_prompt(&messages, args.input.format)
        }
        Command::Schema(args) => {
            let parameters: Vec<String> = match &args.config {
                Some(path) => {
                    let config = config::ConfigDoc::load(path)?;
                    let space = space::Space::load(args.space.as_deref())?;
                    space
                        .tunables(&config)
                        .into_iter()
                        .map(|t| t.path)
                        .collect()
                }
                None => Vec::new(),
            };
            report::print_json(&advisor::llm::schema_for(&parameters))
        }
        Command::History(args) => {
            let entries = history::read(&args.history)?;
            let run = match &args.metrics {
                Some(metrics) => Some(load_and_warn(&LoadOptions {
                    metrics: metrics.clone(),
                    metrics_format: args.metrics_format,
                    history: Some(args.history.clone()),
                    ..LoadOptions::default()
                })?),
                None => None,
            };
            report::print_history(&entries, run.as_ref(), args.format, args.lang)
        }
        Command::Revert(args) => {
            let entries = history::read(&args.history)?;
            let plan =
                history::plan_revert(&args.history, &entries, args.to.as_deref(), args.force)?;
            fsio::write_atomic(&plan.file, plan.text.as_bytes())?;
            let time = now()?;
            history::append(
                &args.history,
                &history::HistoryEntry {
                    time: time.to_string(),
                    adjustment_id: format!("rev-{}", time.strftime("%Y%m%dT%H%M%SZ")),
                    epoch: plan.epoch,
                    provider: "revert".into(),
                    config: plan.file.display().to_string(),
                    config_out: Some(plan.file.display().to_string()),
                    changes: plan.restored.clone(),
                    actions: Vec::new(),
                    findings: Vec::new(),
                    metrics: Default::default(),
                    config_before: None,
                    reverts: plan.undone.clone(),
                },
            )?;
            report::print_revert(&plan, args.format)
        }
    };
    done.map(|()| 0)
}

/// Where `suggest` writes, decided before anything is read so that the history the
/// advisor reads is the one the new line goes to.
#[derive(Debug, Clone)]
pub struct OutputPaths {
    pub config_out: PathBuf,
    pub report_dir: PathBuf,
    pub history: PathBuf,
}

impl OutputPaths {
    pub fn for_args(args: &SuggestArgs) -> OutputPaths {
        let config_out = if args.in_place {
            args.config.clone()
        } else {
            args.out
                .clone()
                .unwrap_or_else(|| default_out(&args.config))
        };
        let history = args
            .history
            .clone()
            .unwrap_or_else(|| args.report_dir.join("history.jsonl"));
        OutputPaths {
            config_out,
            report_dir: args.report_dir.clone(),
            history,
        }
    }
}

/// `run/config.json` → `run/config.retuned.json`.
pub(crate) fn default_out(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    config.with_file_name(format!("{stem}.retuned.json"))
}

/// Everything one `suggest` produced.
pub struct Outcome {
    pub adjustment_id: String,
    pub time: Timestamp,
    pub lang: Lang,
    pub run: Run,
    pub diagnosis: Diagnosis,
    pub proposal: Proposal,
    pub decision: Decision,
    pub paths: OutputPaths,
    /// The adjusted config text (equal to the input when nothing changed).
    pub new_config: String,
    /// Paths written; empty with --dry-run.
    pub written: report::Written,
}

/// load → diagnose → advise → validate → write.
pub fn suggest(args: &SuggestArgs, time: Timestamp) -> Result<Outcome> {
    let paths = OutputPaths::for_args(args);
    if !args.in_place && same_file(&paths.config_out, &args.config) {
        return Err(Error::Usage(format!(
            "--out {} is the input config; use --in-place to overwrite it",
            paths.config_out.display()
        )));
    }
    let lang = args.input.lang;
    let run = load(
        &args.input,
        Some(args.config.clone()),
        Some(paths.history.clone()),
    )?;
    let diagnosis = diagnose::diagnose(&run, lang);
    let advisor = select_advisor(&args.llm, args.input.format, None)?;
    conclude(
        run,
        diagnosis,
        advisor.as_ref(),
        paths,
        &Finish {
            lang,
            time,
            dry_run: args.dry_run,
            in_place: args.in_place,
            report_on: args.report_on,
        },
    )
}

/// How `conclude` ends: in which language, stamped with which time, and whether it
/// writes.
#[derive(Debug, Clone, Copy)]
pub struct Finish {
    pub lang: Lang,
    pub time: Timestamp,
    pub dry_run: bool,
    pub in_place: bool,
    pub report_on: cli::ReportOn,
}

/// advise → validate → write, for a run already loaded and diagnosed: the second half of
/// `suggest`, which `review` runs for each of its runs.
pub fn conclude(
    run: Run,
    diagnosis: Diagnosis,
    advisor: &dyn Advisor,
    paths: OutputPaths,
    finish: &Finish,
) -> Result<Outcome> {
    let lang = finish.lang;
    let proposal = advisor.advise(&AdviceInput {
        run: &run,
        diagnosis: &diagnosis,
        lang,
    })?;
    let decision = validate::validate(&run, &diagnosis, &proposal, lang);

    let config = run
        .config
        .as_ref()
        .ok_or_else(|| Error::Usage("suggest needs --config".into()))?;
    let changes: Vec<(String, serde_json::Value)> = decision
        .changes
        .iter()
        .map(|c| (c.parameter.clone(), c.new.clone()))
        .collect();
    let new_config = config.with_changes(&changes)?;
    let mut outcome = Outcome {
        adjustment_id: adjustment_id(&finish.time, &config.text, &run),
        time: finish.time,
        lang,
        run,
        diagnosis,
        proposal,
        decision,
        paths,
        new_config,
        written: report::Written::default(),
    };
    if !finish.dry_run {
        let reports = finish.report_on == cli::ReportOn::Always
            || !outcome.decision.changes.is_empty()
            || !outcome.decision.actions.is_empty();
        report::write(&mut outcome, finish.in_place, reports)?;
    }
    Ok(outcome)
}

/// The load stage for any command: the shared input flags plus a config and a history.
fn load(input: &cli::InputArgs, config: Option<PathBuf>, history: Option<PathBuf>) -> Result<Run> {
    load_and_warn(&LoadOptions {
        config,
        metrics: input.metrics.clone(),
        metrics_format: input.metrics_format,
        space: input.space.clone(),
        history,
        num_classes: input.num_classes,
    })
}

/// Loads, and tells the person on stderr what the readers skipped (a corrupt TensorBoard
/// record, a series left out); stdout stays the result alone.
fn load_and_warn(options: &LoadOptions) -> Result<Run> {
    let run = run::load_run(options)?;
    for warning in &run.metrics.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(run)
}

/// load → diagnose, for `retune diagnose`.
pub fn diagnose_only(args: &DiagnoseArgs) -> Result<(Run, Diagnosis)> {
    let run = load(&args.input, args.config.clone(), None)?;
    let diagnosis = diagnose::diagnose(&run, args.input.lang);
    Ok((run, diagnosis))
}

/// The advisor the flags, environment and config files ask for; `budget` is shared by
/// the runs of one review.
pub fn select_advisor(
    args: &cli::LlmArgs,
    format: cli::OutputFormat,
    budget: Option<std::sync::Arc<advisor::llm::budget::Budget>>,
) -> Result<Box<dyn Advisor>> {
    use advisor::llm::{LlmAdvisor, LlmOptions, transport};
    if args.provider == cli::Provider::Rules {
        return Ok(Box::new(advisor::rules::RulesAdvisor));
    }
    let settings = settings::resolve(
        args.base_url.as_deref(),
        args.model.as_deref(),
        &settings::process_env,
        &settings::default_files(),
    )?;
    if !settings.configured() {
        return match args.provider {
            cli::Provider::Openai => Err(Error::Usage(
                "--provider openai needs an endpoint or a key: --base-url URL, OPENAI_BASE_URL, OPENAI_API_KEY, or an [llm] table in retune.toml".into(),
            )),
            _ => Ok(Box::new(advisor::rules::RulesAdvisor)),
        };
    }
    let seconds = |name: &str, value: f64| {
        (value.is_finite() && value > 0.0)
            .then(|| std::time::Duration::from_secs_f64(value))
            .ok_or_else(|| Error::Usage(format!("--{name} must be a positive number of seconds")))
    };
    let base_url = settings
        .base_url
        .clone()
        .unwrap_or_else(|| "https://api.openai.com/v1".to_string());
    let model = settings
        .model
        .clone()
        .unwrap_or_else(|| "gpt-4o-mini".to_string());
    Ok(Box::new(LlmAdvisor {
        options: LlmOptions {
            endpoint: transport::Endpoint::new(
                &base_url,
                &model,
                settings.api_key.clone(),
                std::env::var("AZURE_OPENAI_API_VERSION").ok(),
            ),
            resilience: transport::Resilience {
                timeout: seconds("timeout", args.timeout)?,
                retries: args.retries,
                deadline: seconds("deadline", args.deadline)?,
            },
            max_repairs: args.max_repairs,
            max_tokens: args.max_tokens,
            fallback: !args.no_fallback,
            cache: !args.no_cache,
            prompts: args.prompts.clone(),
            spinner: format == cli::OutputFormat::Text && budget.is_none(),
            budget,
        },
    }))
}

/// The current time, or `SOURCE_DATE_EPOCH` (seconds) when set, so that reports can be
/// reproduced byte for byte.
fn now() -> Result<Timestamp> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|secs| Timestamp::from_second(secs).ok())
            .ok_or_else(|| {
                Error::Usage(format!("SOURCE_DATE_EPOCH={s} is not a number of seconds"))
            }),
        Err(_) => Ok(Timestamp::now()),
    }
}

/// `adj-20261123T003241Z-1a2b3c`: sortable by time, distinct for distinct inputs.
fn adjustment_id(time: &Timestamp, config_text: &str, run: &Run) -> String {
    let mut hash = Sha256::new();
    hash.update(config_text.as_bytes());
    hash.update(run.metrics.path.to_string_lossy().as_bytes());
    hash.update(run.facts.epochs_done.to_le_bytes());
    hash.update(time.as_nanosecond().to_le_bytes());
    let digest = hash.finalize();
    let short: String = digest[..3].iter().map(|b| format!("{b:02x}")).collect();
    format!("adj-{}-{short}", time.strftime("%Y%m%dT%H%M%SZ"))
}

/// One file or folder by two names (canonical paths), else the same path as given.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}
