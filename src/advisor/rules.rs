//! (being written)

use super::{AdviceInput, Advisor, Proposal};
use crate::error::Result;

pub struct RulesAdvisor;

impl Advisor for RulesAdvisor {
    fn advise(&self, _input: &AdviceInput) -> Result<Proposal> {
        Ok(Proposal {
            provider: "rules".into(),
            model: None,
            diagnosis: String::new(),
            changes: vec![],
            actions: vec![],
            advice: vec![],
        })
    }
}
