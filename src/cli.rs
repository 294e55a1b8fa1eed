//! The command line: clap derive, doc comments as the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lang::Lang;
use crate::metrics::Format;
use crate::pipeline::{AdvisorOptions, InputOptions, Provider, ReportOn, SuggestOptions};
use crate::review::{MlflowOptions, ReviewOptions};

/// Tunes a deep-learning training run between epochs.
///
/// retune reads a training config (JSON) and the run's metrics, diagnoses the run with
/// deterministic detectors, proposes hyperparameter changes, validates every change
/// against the parameter space and sanity rules, and writes the adjusted config, a
/// Markdown report with a diff, and a line in the run's history.
#[derive(Debug, Parser)]
#[command(name = "retune", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

pub const SUGGEST_AFTER_HELP: &str = "\
LLM endpoint, key and model are read from the flags, then the environment (OPENAI_BASE_URL, \
OPENAI_API_KEY, RETUNE_MODEL, and AZURE_OPENAI_API_VERSION for Azure), then ./retune.toml, then \
retune.toml in the user's config directory (an [llm] table with base_url, api_key, model), first \
found wins. The key is never printed or written anywhere.

Exit codes: 0 done (with or without changes), 2 bad input or usage, 3 LLM unavailable with fallback disabled, 4 an output could not be written.";

pub const EXIT_CODES: &str = "Exit codes: 0 done (with or without changes), 1 `review` only: some runs need attention, 2 bad input or usage, 3 LLM unavailable with fallback disabled (`suggest`, `review`), 4 an output could not be written.";

/// The commands that never ask an LLM (`diagnose`, `prompt`, `schema`, `history`,
/// `revert`, `applied`): 3 is not theirs to return. 4 is, even for those that write no
/// file: stdout itself can fail (a full disk behind a redirect).
pub const EXIT_CODES_NO_LLM: &str = "Exit codes: 0 done, 2 bad input or usage, 4 an output (a file, or stdout) could not be written.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose the run and write an adjusted config, a report and a history line.
    ///
    /// Example: retune suggest --config run/config.json --metrics run/training.log
    #[command(after_help = SUGGEST_AFTER_HELP)]
    Suggest(SuggestArgs),
    /// Diagnose a run from its metrics alone (add --config for the config checks).
    ///
    /// Example: retune diagnose --metrics run/metrics.csv
    #[command(after_help = EXIT_CODES_NO_LLM)]
    Diagnose(DiagnoseArgs),
    /// Print the exact messages `suggest` would send to an LLM, with their size.
    ///
    /// Example: retune prompt --config run/config.json --metrics run/history.csv
    #[command(after_help = EXIT_CODES_NO_LLM)]
    Prompt(PromptArgs),
    /// Print the JSON schema the LLM must answer in (with --config, `parameter` is an
    /// enum of that config's tunable parameters).
    #[command(after_help = EXIT_CODES_NO_LLM)]
    Schema(SchemaArgs),
    /// List a run's adjustments: epoch, parameter, old → new, and what followed.
    ///
    /// Example: retune history reports/history.jsonl --metrics run/history.csv
    #[command(after_help = EXIT_CODES_NO_LLM)]
    History(HistoryArgs),
    /// Write the config back as it was before an adjustment (default: the latest),
    /// atomically, and record the revert in the history.
    ///
    /// Example: retune revert --history reports/history.jsonl --to adj-20261123T003241Z-e0012-1a2b3c
    #[command(after_help = EXIT_CODES_NO_LLM)]
    Revert(RevertArgs),
    /// Record which changes of an adjustment the running job took live (a trainer's
    /// callback calls it after applying a decision); the others count as not applied:
    /// no cooldown, no effect in `history`.
    ///
    /// Example: retune applied --history run/history.jsonl adj-20261123T003241Z-e0012-1a2b3c learning_rate
    #[command(after_help = EXIT_CODES_NO_LLM)]
    Applied(AppliedArgs),
    /// Review many runs at once: every run found under the folders, or every run of an
    /// MLflow experiment; one summary of which are sick, why, and what to change.
    ///
    /// Example: retune review experiments/ --suggest
    #[command(after_help = REVIEW_AFTER_HELP)]
    Review(ReviewArgs),
}

pub const REVIEW_AFTER_HELP: &str = "\
Finding runs: each folder under DIR (recursively; hidden folders, symlinked folders such as \
W&B's latest-run, node_modules, __pycache__, venv, site-packages and the report folder are \
skipped) whose files include a metrics file is a run, and its subfolders are not searched \
further. Metrics file names, first match wins: metrics.csv, history.csv, training.csv, \
log.csv, metrics.jsonl, log.jsonl, trainer_state.json, history.json, training.log, train.log, \
events.out.tfevents.*, run-*.wandb (a W&B run folder), metrics.json \
(or train/ and validation/ subfolders holding TensorBoard event files: the folder is read as \
one TensorBoard run). Config file names, first match wins: config.json, train_config.json, \
training_config.json, hparams.json, params.json, *config*.json (never *.retuned.json or a \
metrics file). A W&B run's config is the one it recorded: its changes are advice, nothing is \
written for it. A run without a config is diagnosed from its metrics alone; one whose metrics \
file is empty is `pending`. Of Hugging Face checkpoint-N folders without a trainer_state.json \
above them, only the latest is a run.

Runs whose configs have the same keys are siblings: when a run has a finding its siblings do \
not, and one tunable value sets it apart from all of them (lr 0.5 where they have at most \
0.01), the finding and the LLM prompt say so. Healthy runs are never sent to the LLM.

Exit codes: 0 every run healthy or pending, 1 some runs need attention (a warning or \
critical finding), 2 bad input or usage, or a run that could not be read (the others are \
still reviewed), 3 LLM unavailable with --no-fallback, 4 an output could not be written.";

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The run's history file (JSON Lines written by `suggest`).
    #[arg(value_name = "HISTORY")]
    pub history: PathBuf,

    /// The run's metrics now, to say what followed the latest adjustment too.
    #[arg(long, short = 'm', value_name = "FILE")]
    pub metrics: Option<PathBuf>,

    /// Read the metrics as this format instead of detecting it.
    #[arg(long, value_name = "FORMAT")]
    pub metrics_format: Option<Format>,

    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    #[arg(long, value_enum, default_value_t = Lang::En)]
    pub lang: Lang,
}

#[derive(Debug, Args)]
pub struct RevertArgs {
    /// The run's history file.
    #[arg(long, value_name = "FILE")]
    pub history: PathBuf,

    /// The adjustment to undo, with every later one on the same config [default: the latest]
    #[arg(long, value_name = "ID")]
    pub to: Option<String>,

    /// Revert even if a value was changed by hand since the adjustment.
    #[arg(long)]
    pub force: bool,

    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

#[derive(Debug, Args)]
pub struct AppliedArgs {
    /// The run's history file.
    #[arg(long, value_name = "FILE")]
    pub history: PathBuf,

    /// The adjustment the job applied.
    #[arg(value_name = "ID")]
    pub adjustment: String,

    /// The parameters (config keys, as in the adjustment's changes) the job took; none
    /// means it took none.
    #[arg(value_name = "PARAMETER")]
    pub parameter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Metrics file: Keras CSVLogger CSV, history JSON or console log, Lightning
    /// metrics.csv, HF trainer_state.json, JSON Lines, a JSON snapshot, a TensorBoard
    /// event file or log folder, or a W&B run (its .wandb file or run folder). The format is
    /// detected from the name and content.
    #[arg(long, short = 'm', value_name = "FILE")]
    pub metrics: PathBuf,

    /// Read the metrics as this format instead of detecting it.
    #[arg(long, value_name = "FORMAT")]
    pub metrics_format: Option<Format>,

    /// Parameter space that extends or overrides the built-in configs/space.toml.
    #[arg(long, value_name = "FILE")]
    pub space: Option<PathBuf>,

    /// Number of classes, when neither the config nor the metrics say (used by the
    /// chance-level check).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(2..))]
    pub num_classes: Option<u32>,

    /// What to print on stdout: a summary for people, or one JSON object for programs.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Language of the report, summaries and rationales.
    #[arg(long, value_enum, default_value_t = Lang::En)]
    pub lang: Lang,
}

#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// Training config: a JSON object. It is never modified unless --in-place. Not needed
    /// for a W&B run (--metrics wandb/latest-run): its recorded config is read, and the
    /// changes are advised, not written.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub input: InputArgs,

    /// Where to write the adjusted config [default: <config>.retuned.json beside the config]
    #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "in_place")]
    pub out: Option<PathBuf>,

    /// Write the adjusted config over the input config (atomically; the previous text is
    /// kept in the history).
    #[arg(long)]
    pub in_place: bool,

    /// Directory for the Markdown report, its JSON twin and the chart.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub report_dir: PathBuf,

    /// The run's history (JSON Lines), read for cooldowns and appended to
    /// [default: <report-dir>/history.jsonl]
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Decide and print, but write nothing (no config, report or history line).
    #[arg(long)]
    pub dry_run: bool,

    /// When to write the report (Markdown, JSON twin, chart): every time, or only when the
    /// decision changes the config or asks for an action. A trainer calling every epoch
    /// gets three files an epoch with `always`. The history line is always written.
    #[arg(long, value_enum, default_value_t = ReportOn::Always)]
    pub report_on: ReportOn,

    #[command(flatten)]
    pub llm: LlmArgs,
}

/// How to reach an LLM. Endpoint, key and model come from these flags, then the
/// environment (OPENAI_BASE_URL, OPENAI_API_KEY, RETUNE_MODEL), then a config file
/// (./retune.toml, then retune.toml in the user's config directory, with an [llm] table
/// of base_url, api_key, model). The key is read only from the environment or the file.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "LLM")]
pub struct LlmArgs {
    /// Who proposes the changes: `auto` uses the LLM when an endpoint or key is
    /// configured and the offline rules otherwise; `rules` never calls an LLM; `openai`
    /// requires one (any OpenAI-compatible server: OpenAI, Azure OpenAI, Ollama, vLLM,
    /// llama.cpp, DeepSeek).
    #[arg(long, value_enum, default_value_t = Provider::Auto)]
    pub provider: Provider,

    /// OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 [env: OPENAI_BASE_URL]
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Model name (for Azure, the deployment) [env: RETUNE_MODEL] [default: gpt-4o-mini]
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// Times an unusable answer goes back to the model with the reasons.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub max_repairs: u32,

    /// Fail with exit code 3 instead of letting the rules advisor decide when the LLM
    /// gives no usable answer.
    #[arg(long)]
    pub no_fallback: bool,

    /// Ask the LLM about a healthy run too (no warning or critical finding and nothing the
    /// rules would change); without it the rules decide such a run and no call is made.
    #[arg(long)]
    pub ask_always: bool,

    /// Seconds to wait for one HTTP response.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    pub timeout: f64,

    /// Retries of one request on 429, 5xx and connection errors (exponential backoff
    /// with jitter, or the server's Retry-After).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retries: u32,

    /// Seconds the whole LLM exchange (retries and repairs included) may take.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub deadline: f64,

    /// Largest answer, in tokens.
    #[arg(long, value_name = "N", default_value_t = crate::settings::DEFAULT_MAX_TOKENS)]
    pub max_tokens: u32,

    /// Do not read or write the answer cache (kept in the user's cache directory, or
    /// RETUNE_CACHE_DIR).
    #[arg(long)]
    pub no_cache: bool,

    /// Folder with prompt templates (system.j2, user.j2, repair.j2) replacing the
    /// built-in ones.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PromptArgs {
    /// Training config (JSON object).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,

    #[command(flatten)]
    pub input: InputArgs,

    /// The run's history, for the earlier adjustments the prompt describes.
    #[arg(long, value_name = "FILE")]
    pub history: Option<PathBuf>,

    /// Folder with prompt templates replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub prompts: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Training config: makes `parameter` an enum of its tunable parameters.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Parameter space that extends or overrides the built-in one.
    #[arg(long, value_name = "FILE")]
    pub space: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Training config (JSON object); enables the config checks and class count.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Folders to search for runs.
    #[arg(value_name = "DIR", required_unless_present = "mlflow")]
    pub dirs: Vec<PathBuf>,

    /// File name (a glob such as `*.json`) that counts as a run's config, instead of
    /// the built-in list; repeat for several, first match wins.
    #[arg(long, value_name = "GLOB")]
    pub config_name: Vec<String>,

    /// File name (a glob) that counts as a run's metrics, instead of the built-in list;
    /// repeat for several, first match wins.
    #[arg(long, value_name = "GLOB")]
    pub metrics_name: Vec<String>,

    /// Read the runs' metrics as this format instead of detecting it.
    #[arg(long, value_name = "FORMAT")]
    pub metrics_format: Option<Format>,

    /// Also write each run's adjusted config, report and history line, as `suggest`
    /// would (config beside the run's config, report and history under
    /// <report-dir>/runs/<run>/). Without it, the changes are proposed and nothing but the
    /// summary is written.
    #[arg(long)]
    pub suggest: bool,

    /// Runs reviewed at once [default: the number of cores]. With an LLM, N runs wait on
    /// it at once while as many more build their prompts; LLM waits overlap, so such a
    /// review gains from more than the cores.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Option<u32>,

    /// Most model calls the whole review may make (a repair is a call); runs after that
    /// are advised by the rules, and say why.
    #[arg(long, value_name = "N")]
    pub max_llm_calls: Option<u64>,

    /// Most tokens (prompt and answer) the whole review may spend. Each call reserves its
    /// worst case first (estimated prompt + --max-tokens), so the budget is never overrun.
    #[arg(long, value_name = "N")]
    pub budget_tokens: Option<u64>,

    /// Most LLM requests a minute, shared by all runs, evenly spaced.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub llm_rate: Option<u32>,

    /// Directory for the summary report (review-<time>.md and .json) and, with --suggest,
    /// the runs' reports under runs/.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub report_dir: PathBuf,

    /// Parameter space that extends or overrides the built-in configs/space.toml.
    #[arg(long, value_name = "FILE")]
    pub space: Option<PathBuf>,

    /// What to print on stdout: a table for people, or one JSON object for programs.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Language of the reports, summaries and rationales.
    #[arg(long, value_enum, default_value_t = Lang::En)]
    pub lang: Lang,

    #[command(flatten)]
    pub mlflow: MlflowArgs,

    #[command(flatten)]
    pub llm: LlmArgs,
}

/// Where the runs come from when they live on an MLflow tracking server.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "MLflow")]
pub struct MlflowArgs {
    /// MLflow tracking server to read runs from instead of folders, e.g.
    /// http://127.0.0.1:5000: params are the config, metric histories the metrics.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "dirs",
        requires = "experiment"
    )]
    pub mlflow: Option<String>,

    /// The experiment, by name or id.
    #[arg(long, value_name = "NAME|ID", requires = "mlflow")]
    pub experiment: Option<String>,

    /// MLflow search filter, e.g. "attributes.status = 'FINISHED'".
    #[arg(long, value_name = "EXPR", requires = "mlflow")]
    pub filter: Option<String>,

    /// Record the result on each run (implies --suggest): the report and adjusted config
    /// as artifacts under retune/, then six tags in one call, each every time (empty when
    /// it does not apply): retune.status, retune.findings, retune.proposed,
    /// retune.provider, retune.adjustment_id and retune.error. Nothing is written to the
    /// server without it.
    #[arg(long, requires = "mlflow")]
    pub write_back: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

// The command line turns into the pipeline's plain options here, once, the way ripgrep
// turns its low-level arguments into `HiArgs`: nothing below this module sees clap.

impl InputArgs {
    pub fn options(&self) -> InputOptions {
        InputOptions {
            metrics: self.metrics.clone(),
            metrics_format: self.metrics_format,
            space: self.space.clone(),
            num_classes: self.num_classes,
            lang: self.lang,
        }
    }
}

impl LlmArgs {
    /// `spinner`: a person is watching stderr (text output).
    pub fn options(&self, spinner: bool) -> AdvisorOptions {
        AdvisorOptions {
            provider: self.provider,
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            max_repairs: self.max_repairs,
            fallback: !self.no_fallback,
            ask_always: self.ask_always,
            timeout: self.timeout,
            deadline: self.deadline,
            retries: self.retries,
            max_tokens: self.max_tokens,
            cache: !self.no_cache,
            prompts: self.prompts.clone(),
            spinner,
        }
    }
}

impl SuggestArgs {
    pub fn options(&self) -> SuggestOptions {
        SuggestOptions {
            config: self.config.clone(),
            input: self.input.options(),
            out: self.out.clone(),
            in_place: self.in_place,
            report_dir: self.report_dir.clone(),
            history: self.history.clone(),
            dry_run: self.dry_run,
            report_on: self.report_on,
            advisor: self.llm.options(self.input.format == OutputFormat::Text),
        }
    }
}

impl ReviewArgs {
    pub fn options(&self) -> ReviewOptions {
        ReviewOptions {
            dirs: self.dirs.clone(),
            config_name: self.config_name.clone(),
            metrics_name: self.metrics_name.clone(),
            metrics_format: self.metrics_format,
            suggest: self.suggest,
            concurrency: self.concurrency,
            max_llm_calls: self.max_llm_calls,
            budget_tokens: self.budget_tokens,
            llm_rate: self.llm_rate,
            report_dir: self.report_dir.clone(),
            space: self.space.clone(),
            progress: self.format == OutputFormat::Text,
            lang: self.lang,
            mlflow: MlflowOptions {
                url: self.mlflow.mlflow.clone(),
                experiment: self.mlflow.experiment.clone(),
                filter: self.mlflow.filter.clone(),
                write_back: self.mlflow.write_back,
            },
            advisor: self.llm.options(self.format == OutputFormat::Text),
        }
    }
}
