//! retune: tunes a deep-learning training run between epochs.
//!
//! The data flows one way (../DESIGN.md), and so do the imports: a module uses only the
//! modules listed above it here, never one below (`scripts/check-layers.py` fails the build
//! when one does).
//!
//! ```text
//! config.json ─┐
//! metrics.*  ──┼─► load ─► diagnose ─► advise ─► validate ─► write
//! space.toml ──┘   Run     Diagnosis   Proposal   Decision   adjusted config, report.md,
//! history    ─────────────────────────────────────────────── report.json, history line
//! ```
//!
//! Each stage is a module with one entry point: `run::load_run`, `diagnose::diagnose`,
//! `Advisor::advise`, `validate::validate`, `report::write`. They hand each other the
//! types in `types` and nothing else. `pipeline::suggest` is the whole flow.

// 1. Foundations: errors and exit codes, language, numbers as text and JSON, reading input
//    files within bounds, writing files, HTTP, where the LLM settings come from.
pub mod error;
pub mod lang;
pub(crate) mod num;
pub mod untrusted;
pub(crate) mod input;
pub(crate) mod fsio;
pub(crate) mod http;
pub mod settings;

// 2. The types the stages hand each other: Finding, Diagnosis, Proposal, Decision …
pub mod types;

// 3. Load: the config, the parameter space, the metrics in every format, the history
//    (and its memory: cooldowns, what diverged since), an MLflow server's runs, and the
//    `Run` that holds them all.
pub(crate) mod config;
pub mod space;
pub mod metrics;
pub mod history;
pub mod run;
pub mod mlflow;

// 4. The stages, in flow order, and what one pass of them produced.
pub mod diagnose;
pub mod advisor;
pub(crate) mod validate;
pub(crate) mod outcome;
pub(crate) mod report;

// 5. The pipeline for one run, and the review of many.
pub(crate) mod pipeline;
pub(crate) mod review;

// 6. The commands and the command line that feeds them.
pub mod cli;
pub mod commands;

// 7. Entry points for the fuzz targets (fuzz/): what they need that is not exported.
#[doc(hidden)]
pub mod fuzzing;
