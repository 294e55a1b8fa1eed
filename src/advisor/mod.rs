//! Advise: an `Advisor` turns the run and its findings into a `Proposal` (changes with
//! rationale, and actions for the trainer). Advisors only propose; `validate` decides.
//! The `rules` advisor is offline and deterministic; an LLM advisor plugs into the same
//! trait and its answer goes through the same validation.

pub mod llm;
pub mod rules;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::diagnose::Diagnosis;
use crate::error::Result;
use crate::lang::Lang;
use crate::run::Run;

/// What the trainer should do besides loading the new config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Go back to the best checkpoint, then apply the changes (diverged after a sane epoch).
    RestoreCheckpoint,
    /// Reinitialise the weights: no checkpoint is sane (diverged from the first epoch).
    Restart,
    /// Stop training: more epochs will not help (overfitting with nothing left to tune).
    StopEarly,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RestoreCheckpoint => "restore_checkpoint",
            Action::Restart => "restart",
            Action::StopEarly => "stop_early",
        }
    }
}

/// One proposed change. `parameter` is a dotted config path; `new_value` is whatever the
/// advisor said (validation checks type, bounds and step).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProposedChange {
    pub parameter: String,
    pub new_value: Value,
    pub rationale: String,
    pub confidence: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// Which advisor answered (`rules`, `openai`, or `openai→rules` after a fallback).
    pub provider: String,
    pub model: Option<String>,
    /// One paragraph: what the advisor thinks is going on.
    pub diagnosis: String,
    pub changes: Vec<ProposedChange>,
    pub actions: Vec<Action>,
    /// Advice that is not a config change (check the data; add a weight-decay key).
    pub advice: Vec<String>,
    /// Suggestions of an advisor that were not used (an LLM's last answer before the
    /// fallback), with why; they are listed with the rejected changes.
    pub discarded: Vec<crate::validate::Rejected>,
    /// How the LLM exchange went, when an LLM was asked.
    pub llm: Option<llm::LlmReport>,
}

/// What an advisor sees. It never sees the file system.
pub struct AdviceInput<'a> {
    pub run: &'a Run,
    pub diagnosis: &'a Diagnosis,
    pub lang: Lang,
}

/// `Send + Sync` because a review asks one advisor about many runs at once.
pub trait Advisor: Send + Sync {
    fn advise(&self, input: &AdviceInput) -> Result<Proposal>;

    /// Whether it asks an LLM (a review then reports what the calls used).
    fn uses_llm(&self) -> bool {
        false
    }
}
