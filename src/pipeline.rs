//! The pipeline: load → diagnose → advise → validate → write, for one run (`suggest`) and
//! for the second half that `review` runs on each of its runs (`conclude`). It takes plain
//! options built once from the command line, never the command line's own types, so a
//! program can drive it as the binary does.

use std::path::PathBuf;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::advisor::llm::{LlmAdvisor, LlmOptions, budget::Budget, transport};
use crate::advisor::{AdviceInput, Advisor, rules::RulesAdvisor};
use crate::error::{Error, Result};
use crate::fsio::{Batch, DirLock, same_file};
use crate::history::{self, Appender, State};
use crate::lang::Lang;
use crate::metrics::Format;
use crate::outcome::{Outcome, OutputPaths, Written, default_out};
pub use crate::run::LoadOptions;
use crate::run::Run;
use crate::types::{Decision, Diagnosis, Proposal};
use crate::{diagnose, report, settings, validate};

/// What the load stage reads, shared by every command that reads a run.
#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    pub metrics: PathBuf,
    pub metrics_format: Option<Format>,
    pub space: Option<PathBuf>,
    pub num_classes: Option<u32>,
    pub lang: Lang,
}

/// Who proposes the changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Provider {
    /// The LLM when one is configured, else the rules.
    #[default]
    Auto,
    /// The offline, deterministic rules advisor.
    Rules,
    /// An OpenAI-compatible LLM.
    Openai,
}

/// When `suggest` writes its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportOn {
    /// Every call writes a report.
    #[default]
    Always,
    /// Only a decision with a change or an action writes one.
    Change,
}

/// How to reach an LLM, as the person asked for it; `select_advisor` resolves it against
/// the environment and the config files.
#[derive(Debug, Clone)]
pub struct AdvisorOptions {
    pub provider: Provider,
    pub base_url: Option<String>,
    pub model: Option<String>,
    pub max_repairs: u32,
    /// Let the rules decide when the LLM gives no usable answer.
    pub fallback: bool,
    /// Seconds for one HTTP response, and for the whole exchange.
    pub timeout: f64,
    pub deadline: f64,
    pub retries: u32,
    pub max_tokens: u32,
    pub cache: bool,
    pub prompts: Option<PathBuf>,
    /// Show a spinner on stderr while the model thinks (a person at a terminal).
    pub spinner: bool,
    /// Ask the LLM about a healthy run too.
    pub ask_always: bool,
}

/// Everything `suggest` needs.
#[derive(Debug, Clone)]
pub struct SuggestOptions {
    /// `None` for a W&B run, whose recorded config stands in (advised, not written).
    pub config: Option<PathBuf>,
    pub input: InputOptions,
    pub out: Option<PathBuf>,
    pub in_place: bool,
    pub report_dir: PathBuf,
    pub history: Option<PathBuf>,
    pub dry_run: bool,
    pub report_on: ReportOn,
    pub advisor: AdvisorOptions,
}

impl SuggestOptions {
    /// Where this `suggest` writes.
    pub fn paths(&self) -> OutputPaths {
        let config_out = match &self.config {
            Some(config) if self.in_place => config.clone(),
            Some(config) => self.out.clone().unwrap_or_else(|| default_out(config)),
            // Never written: only a recorded config goes without a file.
            None => self
                .out
                .clone()
                .unwrap_or_else(|| self.report_dir.join("config.retuned.json")),
        };
        let history = self
            .history
            .clone()
            .unwrap_or_else(|| self.report_dir.join("history.jsonl"));
        OutputPaths {
            config_out,
            report_dir: self.report_dir.clone(),
            history,
        }
    }
}

/// load → diagnose → advise → validate → write.
pub fn suggest(options: &SuggestOptions, time: Timestamp) -> Result<Outcome> {
    let paths = options.paths();
    if let Some(config) = &options.config
        && !options.in_place
        && same_file(&paths.config_out, config)
    {
        return Err(Error::Usage(format!(
            "--out {} is the input config; use --in-place to overwrite it",
            paths.config_out.display()
        )));
    }
    let mut inputs = vec![("--metrics", options.input.metrics.clone())];
    if let Some(config) = &options.config {
        inputs.push(("--config", config.clone()));
    }
    if let Some(space) = &options.input.space {
        inputs.push(("--space", space.clone()));
    }
    let mut outputs = vec![("the history", paths.history.clone())];
    if !options.in_place {
        outputs.push(("--out", paths.config_out.clone()));
    }
    refuse_inputs_as_outputs(&outputs, &inputs)?;
    // Concurrent calls on one config read, decide and write one after another, so the
    // second sees the first's change and its cooldown.
    // Without a config (a W&B run's recorded one stands in) nothing is written.
    let _lock = match &options.config {
        Some(config) if !options.dry_run => Some(DirLock::acquire(&crate::fsio::resolve(config))?),
        _ => None,
    };
    let lang = options.input.lang;
    let needs_config = || {
        Error::Usage(
            "suggest needs --config (the training config, JSON); only a W&B run brings a recorded config of its own".into(),
        )
    };
    if options.config.is_none() {
        let format = (options.input.metrics_format)
            .or_else(|| crate::metrics::detect(&options.input.metrics).ok());
        if format != Some(Format::Wandb) {
            return Err(needs_config());
        }
    }
    let run = load(
        &options.input,
        options.config.clone(),
        Some(paths.history.clone()),
    )?;
    if run.config.is_none() {
        return Err(needs_config());
    }
    let diagnosis = diagnose::diagnose(&run, lang);
    let advisor = select_advisor(&options.advisor, None)?;
    conclude(
        run,
        diagnosis,
        advisor.as_ref(),
        paths,
        &Finish {
            lang,
            time,
            dry_run: options.dry_run,
            in_place: options.in_place,
            report_on: options.report_on,
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
    pub report_on: ReportOn,
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
    let trial = |proposal: &Proposal| validate::validate(&run, &diagnosis, proposal, lang);
    let mut proposal = advisor.advise(&AdviceInput {
        run: &run,
        diagnosis: &diagnosis,
        lang,
        trial: &trial,
    })?;
    let mut decision = validate::validate(&run, &diagnosis, &proposal, lang);
    let recorded = run.config_recorded;
    if recorded {
        advise_instead(&run, &mut proposal, &mut decision, lang);
    }

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
        written: Written::default(),
    };
    if !finish.dry_run && !recorded {
        let reports = finish.report_on == ReportOn::Always
            || !outcome.decision.changes.is_empty()
            || !outcome.decision.actions.is_empty();
        write(&mut outcome, finish.in_place, reports)?;
    }
    Ok(outcome)
}

/// An output that is one of the inputs (by any name: symbolic or hard link) is refused
/// before anything is read or written: `--out` naming the metrics file would replace the
/// run's log with a config.
fn refuse_inputs_as_outputs(outputs: &[(&str, PathBuf)], inputs: &[(&str, PathBuf)]) -> Result<()> {
    for (what, output) in outputs {
        for (input_flag, input) in inputs {
            if same_file(output, input) {
                return Err(Error::Usage(format!(
                    "{what} {} is the {input_flag} file {}: no output may overwrite an input",
                    output.display(),
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

/// Writes the adjusted config, the chart and reports, and the history line: all of them
/// or none. Every file is first written beside its target and flushed; then, for a
/// config replaced in place, the history line with the old text is appended as `pending`
/// and flushed *before* the config is renamed over, and an `applied` line follows, so a
/// kill at any moment leaves the old text on disk and `read` can tell from the config
/// whether the change happened. Any failure before the end puts back the files already
/// renamed; a pending line left behind is then settled as not applied.
fn write(outcome: &mut Outcome, in_place: bool, reports: bool) -> Result<()> {
    let reports = report::render(outcome, reports)?;
    let config = outcome
        .run
        .config
        .as_ref()
        .ok_or_else(|| Error::Usage("suggest needs --config".into()))?;
    let unchanged = outcome.new_config == config.text;
    let replaces = in_place && !unchanged;
    let kept = (!in_place && unchanged)
        .then(|| unapplied_suggestion_in(outcome))
        .flatten();
    let mut files = Vec::new();
    if !(in_place && unchanged) && kept.is_none() {
        files.push((
            outcome.paths.config_out.clone(),
            outcome.new_config.clone().into_bytes(),
        ));
    }
    files.extend(reports);

    let mut inputs = vec![
        ("--config", config.path.clone()),
        ("--metrics", outcome.run.metrics.path.clone()),
    ];
    if in_place {
        inputs.remove(0);
    }
    let mut outputs: Vec<(&str, PathBuf)> = files
        .iter()
        .map(|(path, _)| ("the output", path.clone()))
        .collect();
    outputs.push(("the history", outcome.paths.history.clone()));
    refuse_inputs_as_outputs(&outputs, &inputs)?;

    if let Some(id) = kept {
        let lang = outcome.lang;
        let path = outcome.paths.config_out.display();
        outcome.decision.notes.push(crate::lang::say!(
            lang,
            "{path} still holds suggestion {id}, which is not in the config yet; a no-change answer leaves it as it is",
            "{path} 仍是尚未应用到配置的建议 {id}；本次无改动，保留该文件"
        ));
    }
    // What a killed call left in the folders this one writes to, before adding ours.
    crate::fsio::clean_stale_temporaries(parent_dir(&crate::fsio::resolve(
        &outcome.paths.config_out,
    )));
    crate::fsio::clean_stale_temporaries(&outcome.paths.report_dir);
    let entry = report::history_entry(outcome, replaces);
    // The history first: a history that cannot be opened (a dangling link) fails the
    // call before any folder or temporary file is made.
    let mut history = Appender::open(&outcome.paths.history)?;
    let mut batch = match Batch::stage(&files) {
        Ok(batch) => batch,
        Err(e) => {
            history.discard_if_created();
            return Err(e);
        }
    };
    if replaces {
        let pending = history::HistoryEntry {
            state: Some(State::Pending),
            ..entry
        };
        if let Err(e) = history.append(&pending) {
            history.discard_if_created();
            return Err(e);
        }
        batch.commit()?;
        let applied = history::follow_up(
            &outcome.adjustment_id,
            outcome.time.to_string(),
            State::Applied,
            None,
        );
        if let Err(e) = history.append(&applied) {
            batch.rollback();
            return Err(e);
        }
    } else {
        if let Err(e) = batch.commit() {
            history.discard_if_created();
            return Err(e);
        }
        if let Err(e) = history.append(&entry) {
            batch.rollback();
            history.discard_if_created();
            return Err(e);
        }
    }
    Ok(())
}

fn parent_dir(path: &std::path::Path) -> &std::path::Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    }
}

/// The id of the adjustment whose suggestion `--out` holds when it is not in the config
/// yet: a no-change answer must not write the unchanged config over it.
fn unapplied_suggestion_in(outcome: &Outcome) -> Option<String> {
    let out = &outcome.paths.config_out;
    let text = std::fs::read_to_string(out).ok()?;
    if text == outcome.new_config {
        return None;
    }
    let latest = outcome.run.history.iter().rev().find(|e| {
        e.reverts.is_empty()
            && (!e.changes.is_empty() || !e.not_applied.is_empty())
            && e.config_out
                .as_deref()
                .is_some_and(|p| same_file(std::path::Path::new(p), out))
    })?;
    latest
        .changes
        .is_empty()
        .then(|| latest.adjustment_id.clone())
}

/// A recorded config (a W&B run's) is not the file the trainer reads: the validated
/// changes become advice, led by a line that says so, and nothing is written.
fn advise_instead(run: &Run, proposal: &mut Proposal, decision: &mut Decision, lang: Lang) {
    let source = run
        .config
        .as_ref()
        .map(|c| c.path.display().to_string())
        .unwrap_or_default();
    let mut advice = vec![crate::lang::say!(
        lang,
        "W&B run: its config is the one W&B recorded ({source}), not a file the trainer reads, so retune writes no config and gives its changes as advice",
        "W&B 运行：其配置是 W&B 记录的（{source}），训练脚本并不读取它，因此 retune 不写配置文件，改为以建议给出变更"
    )];
    for c in decision.changes.drain(..) {
        advice.push(crate::lang::say!(
            lang,
            "set {} to {} (now {}) where the training script sets it: {}",
            "在训练脚本设置 {} 的地方改为 {}（当前 {}）：{}",
            c.parameter,
            crate::num::value_text(&c.new),
            crate::num::value_text(&c.old),
            c.rationale
        ));
    }
    advice.append(&mut proposal.advice);
    proposal.advice = advice;
}

/// The load stage for any command: the input options plus a config and a history.
pub fn load(
    input: &InputOptions,
    config: Option<PathBuf>,
    history: Option<PathBuf>,
) -> Result<Run> {
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
pub fn load_and_warn(options: &LoadOptions) -> Result<Run> {
    let run = crate::run::load_run(options)?;
    for warning in &run.metrics.warnings {
        eprintln!("warning: {}", crate::untrusted::printable(warning));
    }
    Ok(run)
}

/// load → diagnose, for `retune diagnose`.
pub fn diagnose_only(input: &InputOptions, config: Option<PathBuf>) -> Result<(Run, Diagnosis)> {
    let run = load(input, config, None)?;
    let diagnosis = diagnose::diagnose(&run, input.lang);
    Ok((run, diagnosis))
}

/// The advisor the options, environment and config files ask for; `budget` is shared by
/// the runs of one review.
pub fn select_advisor(
    options: &AdvisorOptions,
    budget: Option<std::sync::Arc<Budget>>,
) -> Result<Box<dyn Advisor>> {
    if options.provider == Provider::Rules {
        return Ok(Box::new(RulesAdvisor));
    }
    let settings = settings::resolve(
        options.base_url.as_deref(),
        options.model.as_deref(),
        &settings::process_env,
        &settings::default_files(),
    )?;
    if !settings.configured() {
        return match options.provider {
            Provider::Openai => Err(Error::Usage(
                "--provider openai needs an endpoint or a key: --base-url URL, OPENAI_BASE_URL, OPENAI_API_KEY, or an [llm] table in retune.toml".into(),
            )),
            _ => Ok(Box::new(RulesAdvisor)),
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
                timeout: seconds("timeout", options.timeout)?,
                retries: options.retries,
                deadline: seconds("deadline", options.deadline)?,
            },
            max_repairs: options.max_repairs,
            max_tokens: options.max_tokens,
            fallback: options.fallback,
            cache: options.cache,
            prompts: options.prompts.clone(),
            spinner: options.spinner && budget.is_none(),
            ask_always: options.ask_always,
            budget,
        },
    }))
}

/// Digits the epoch is zero-padded to in an adjustment id, so that ids (and the report
/// files named after them) sort in the order they were written: by time to the second,
/// then by epoch, which tells apart the several epochs a fast trainer finishes within one
/// second. Four digits cover the runs retune sees (the longest in tests/real has a few
/// hundred epochs); past 9999 epochs in one second the order within that second is by
/// text, and the id is still unique.
const ID_EPOCH_DIGITS: usize = 4;

/// `adj-20261123T003241Z-e0012-1a2b3c`: sortable by time, then by the epoch it was made
/// at, and distinct for distinct inputs. Ids written before the epoch was in them
/// (`adj-20261123T003241Z-1a2b3c`) stay what they were: an id is only ever compared whole,
/// never parsed.
fn adjustment_id(time: &Timestamp, config_text: &str, run: &Run) -> String {
    let mut hash = Sha256::new();
    hash.update(config_text.as_bytes());
    hash.update(run.metrics.path.to_string_lossy().as_bytes());
    hash.update(run.facts.epochs_done.to_le_bytes());
    hash.update(time.as_nanosecond().to_le_bytes());
    let digest = hash.finalize();
    let short: String = digest[..3].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "adj-{}-e{:0width$}-{short}",
        time.strftime("%Y%m%dT%H%M%SZ"),
        run.facts.epochs_done,
        width = ID_EPOCH_DIGITS
    )
}
