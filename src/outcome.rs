//! What one `suggest` produced, end to end: the run as loaded, its diagnosis, the
//! advisor's proposal, validation's decision, the adjusted config text and the files
//! written. The write stage reads it; the commands print it. It sits above the stages
//! because it holds what each of them made.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;

use crate::lang::Lang;
use crate::run::Run;
use crate::types::{Decision, Diagnosis, Proposal};

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
    pub written: Written,
}

/// Where `suggest` writes, decided before anything is read so that the history the
/// advisor reads is the one the new line goes to.
#[derive(Debug, Clone)]
pub struct OutputPaths {
    pub config_out: PathBuf,
    pub report_dir: PathBuf,
    pub history: PathBuf,
}

/// Files the write stage produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Written {
    pub config_out: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub report_json: Option<PathBuf>,
    pub chart: Option<PathBuf>,
    pub history: Option<PathBuf>,
}

/// `run/config.json` → `run/config.retuned.json`.
pub fn default_out(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    config.with_file_name(format!("{stem}.retuned.json"))
}
