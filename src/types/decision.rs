//! What the validate stage produces: the changes accepted (some clamped), those rejected
//! and why, and the actions the trainer is to take.

use serde::Serialize;
use serde_json::Value;

use super::Action;

/// More changes at once make it impossible to tell which one helped.
pub const MAX_CHANGES: usize = 4;

#[derive(Debug, Clone, Serialize)]
pub struct Clamp {
    pub proposed: Value,
    pub reason: String,
}

/// An accepted change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub parameter: String,
    /// Catalogue name (`learning_rate`) of the parameter at `parameter`.
    pub canonical: String,
    pub old: Value,
    pub new: Value,
    pub rationale: String,
    pub confidence: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clamped: Option<Clamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub parameter: String,
    pub proposed: Value,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Decision {
    pub changes: Vec<Change>,
    pub rejected: Vec<Rejected>,
    pub actions: Vec<Action>,
    /// What validation did on its own account (a derived change, a dropped action).
    pub notes: Vec<String>,
}
