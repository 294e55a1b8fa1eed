//! Advise: an `Advisor` turns the run and its findings into a `Proposal` (changes with
//! rationale, and actions for the trainer). Advisors only propose; `validate` decides.
//! The `rules` advisor is offline and deterministic; an LLM advisor plugs into the same
//! trait and its answer goes through the same validation.

pub mod llm;
pub mod rules;

use crate::error::Result;
use crate::lang::Lang;
use crate::run::Run;
use crate::types::Diagnosis;
use crate::types::{Decision, Proposal};

/// Validation exactly as the decision will apply it, for an advisor that tries a proposal
/// before it answers (the LLM advisor tells the model what to fix). The pipeline hands it
/// in, so the advise stage never reaches up into the validate stage.
pub type Trial<'a> = &'a (dyn Fn(&Proposal) -> Decision + Sync);

/// What an advisor sees. It never sees the file system.
pub struct AdviceInput<'a> {
    pub run: &'a Run,
    pub diagnosis: &'a Diagnosis,
    pub lang: Lang,
    pub trial: Trial<'a>,
}

/// `Send + Sync` because a review asks one advisor about many runs at once.
pub trait Advisor: Send + Sync {
    fn advise(&self, input: &AdviceInput) -> Result<Proposal>;

    /// Whether it asks an LLM (a review then reports what the calls used).
    fn uses_llm(&self) -> bool {
        false
    }
}
