//! What the advise stage produces: proposed changes with their rationale, actions for the
//! trainer, advice, and how an LLM exchange went. An advisor only proposes; validate
//! decides.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Rejected;

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
    pub discarded: Vec<Rejected>,
    /// How the LLM exchange went, when an LLM was asked.
    pub llm: Option<LlmReport>,
}

/// The LLM's verdict on the rules advisor's proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The rules' changes stand as they are.
    Agree,
    /// The rules' changes with some values changed, some added, some dropped.
    Amend,
    /// The model's own changes instead of the rules'.
    Replace,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Agree => "agree",
            Verdict::Amend => "amend",
            Verdict::Replace => "replace",
        }
    }
}

/// What the model did with one change, relative to the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reviewed {
    /// The rules' change, kept.
    Agreed,
    /// The rules' parameter, with another value.
    Amended,
    /// A change the rules did not propose.
    Added,
    /// The rules' change, left out.
    Dropped,
}

/// One change as the rules and the model saw it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReviewItem {
    pub parameter: String,
    pub what: Reviewed,
    /// The value in the config now (absent for a parameter that is not tunable).
    pub old: Option<Value>,
    /// What the rules proposed (absent for an added change).
    pub rules: Option<Value>,
    /// What the model proposed (absent for a dropped change).
    pub model: Option<Value>,
    /// The model's reason for a dropped change, when it gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The model's review of the rules' proposal: its verdict and, change by change, what it
/// did. Validation then decides every value, as for any proposal.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Review {
    pub verdict: Verdict,
    pub items: Vec<ReviewItem>,
}

/// How the exchange went: what the report and the JSON show.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LlmReport {
    pub endpoint: String,
    pub model: String,
    /// `json_schema`, or `json_object` after the server refused the schema.
    pub response_format: &'static str,
    /// Model answers read (the first and each repair).
    pub answers: u32,
    pub repairs: u32,
    /// HTTP requests made, retries included.
    pub http_attempts: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency_ms: u64,
    /// Every answer came from the cache: no request was sent.
    pub cached: bool,
    pub first_answer_parsed: bool,
    pub first_answer_valid: bool,
    /// The first answer's verdict on the rules' proposal, when it parsed.
    pub first_verdict: Option<Verdict>,
    /// What the model did with the rules advisor's proposal, when its answer was used.
    pub review: Option<Review>,
    /// Why the rules advisor decided instead, when it did.
    pub fallback: Option<String>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}
