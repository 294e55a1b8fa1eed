//! The command line: clap derive, doc comments as the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::lang::Lang;
use crate::metrics::Format;

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

pub const EXIT_CODES: &str = "Exit codes: 0 done (with or without changes), 1 an output could not be written, 2 bad input or usage, 3 LLM unavailable with fallback disabled.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose the run and write an adjusted config, a report and a history line.
    ///
    /// Example: retune suggest --config run/config.json --metrics run/training.log
    #[command(after_help = EXIT_CODES)]
    Suggest(SuggestArgs),
    /// Diagnose a run from its metrics alone (add --config for the config checks).
    ///
    /// Example: retune diagnose --metrics run/metrics.csv
    #[command(after_help = EXIT_CODES)]
    Diagnose(DiagnoseArgs),
}

#[derive(Debug, Args)]
pub struct InputArgs {
    /// Metrics file: Keras CSVLogger CSV, history JSON or console log, Lightning
    /// metrics.csv, HF trainer_state.json, JSON Lines, or a JSON snapshot. The format is
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
    /// Training config: a JSON object. It is never modified unless --in-place.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: PathBuf,

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

    /// Who proposes the changes. `auto` picks the best advisor available; today that is
    /// the offline `rules` advisor.
    #[arg(long, value_enum, default_value_t = Provider::Auto)]
    pub provider: Provider,

    /// Decide and print, but write nothing (no config, report or history line).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Training config (JSON object); enables the config checks and class count.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub input: InputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    /// The best advisor available.
    Auto,
    /// The offline, deterministic rules advisor.
    Rules,
}
