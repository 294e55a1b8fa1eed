//! The commands: each takes its parsed arguments, runs the pipeline or a part of it, and
//! prints the result. The stages return data; printing happens here and in `print`.

pub mod print;

use jiff::Timestamp;

use crate::cli::{Cli, Command, OutputFormat};
use crate::error::{Error, ExitStatus, Result};
use crate::history;
use crate::pipeline::{self, LoadOptions};
use crate::{advisor, config, diagnose, fsio, review, space};

/// Runs one command line and says how it ended.
pub fn run(cli: Cli) -> Result<ExitStatus> {
    let done = match cli.command {
        Command::Review(args) => {
            let format = args.format;
            let lang = args.lang;
            let review = review::run(&args.options(), now()?)?;
            match format {
                OutputFormat::Json => print::print_json(&review)?,
                OutputFormat::Text => print::emit(&review::summary::table(&review, lang))?,
            }
            return Ok(review.exit_code);
        }
        Command::Suggest(args) => {
            let outcome = pipeline::suggest(&args.options(), now()?)?;
            print::print_suggest(&outcome, args.input.format)
        }
        Command::Diagnose(args) => {
            let (run, diagnosis) =
                pipeline::diagnose_only(&args.input.options(), args.config.clone())?;
            print::print_diagnosis(&run, &diagnosis, args.input.format, args.input.lang)
        }
        Command::Prompt(args) => {
            let input = args.input.options();
            let run = pipeline::load(&input, Some(args.config.clone()), args.history.clone())?;
            let diagnosis = diagnose::diagnose(&run, input.lang);
            let templates = advisor::llm::prompt::Templates::load(args.prompts.as_deref())?;
            let messages = templates.messages(&run, &diagnosis)?;
            print::print_prompt(&messages, args.input.format)
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
            print::print_json(&advisor::llm::schema_for(&parameters))
        }
        Command::History(args) => {
            let entries = history::read_all(&args.history)?;
            let run = match &args.metrics {
                Some(metrics) => Some(pipeline::load_and_warn(&LoadOptions {
                    metrics: metrics.clone(),
                    metrics_format: args.metrics_format,
                    history: Some(args.history.clone()),
                    ..LoadOptions::default()
                })?),
                None => None,
            };
            print::print_history(&entries, run.as_ref(), args.format, args.lang)
        }
        Command::Revert(args) => {
            let entries = history::read_all(&args.history)?;
            let plan =
                history::plan_revert(&args.history, &entries, args.to.as_deref(), args.force)?;
            // The same lock `suggest --in-place` holds: a revert is not undone by a call
            // that read the config just before it.
            let _lock = fsio::DirLock::acquire(&fsio::resolve(&plan.file))?;
            let mut batch =
                fsio::Batch::stage(&[(plan.file.clone(), plan.text.clone().into_bytes())])?;
            let mut log = history::Appender::open(&args.history)?;
            batch.commit()?;
            let time = now()?;
            let line = history::HistoryEntry {
                time: time.to_string(),
                adjustment_id: format!("rev-{}", time.strftime("%Y%m%dT%H%M%SZ")),
                epoch: plan.epoch,
                provider: "revert".into(),
                config: plan.file.display().to_string(),
                config_out: Some(plan.file.display().to_string()),
                changes: plan.restored.clone(),
                reverts: plan.undone.clone(),
                state: None,
                ..history::follow_up("", String::new(), history::State::Applied, None)
            };
            if let Err(e) = log.append(&line) {
                // The config goes back to what it held, so the history stays true.
                batch.rollback();
                return Err(e);
            }
            print::print_revert(&plan, args.format)
        }
        Command::Applied(args) => {
            let _lock = fsio::DirLock::acquire(&fsio::resolve(&args.history))?;
            let lines = history::read_lines(&args.history)?;
            let Some(adjustment) = lines.iter().rev().find(|e| {
                e.adjustment_id == args.adjustment
                    && e.state != Some(history::State::Live)
                    && e.state != Some(history::State::Applied)
            }) else {
                return Err(Error::input(
                    &args.history,
                    format!("no adjustment `{}` in this history", args.adjustment),
                ));
            };
            for p in &args.parameter {
                if !adjustment.changes.iter().any(|c| &c.parameter == p) {
                    let made: Vec<&str> = adjustment
                        .changes
                        .iter()
                        .map(|c| c.parameter.as_str())
                        .collect();
                    return Err(Error::input(
                        &args.history,
                        format!(
                            "adjustment `{}` did not change `{p}`; it changed: {}",
                            args.adjustment,
                            if made.is_empty() {
                                "nothing".to_string()
                            } else {
                                made.join(", ")
                            }
                        ),
                    ));
                }
            }
            let time = now()?;
            history::append(
                &args.history,
                &history::follow_up(
                    &args.adjustment,
                    time.to_string(),
                    history::State::Live,
                    Some(args.parameter.clone()),
                ),
            )?;
            let missed: Vec<&str> = adjustment
                .changes
                .iter()
                .map(|c| c.parameter.as_str())
                .filter(|p| !args.parameter.iter().any(|a| a == p))
                .collect();
            let list = |names: Vec<&str>| {
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            };
            print::emit(&format!(
                "{}: applied live: {}; not applied: {}\n",
                args.adjustment,
                list(args.parameter.iter().map(String::as_str).collect()),
                list(missed)
            ))
        }
    };
    done.map(|()| ExitStatus::Success)
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
