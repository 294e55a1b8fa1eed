//! The types the stages hand each other, and nothing else: a stage reads the types of the
//! stages before it from here, never from the stage itself, so the data flows one way.
//!
//! - `finding`: what diagnose finds (`Finding`, `Severity`, `Skipped`, `Diagnosis`);
//! - `proposal`: what an advisor proposes (`Action`, `ProposedChange`, `Proposal`);
//! - `decision`: what validate decides (`Change`, `Clamp`, `Rejected`, `Decision`).

mod decision;
mod finding;
mod proposal;

pub use decision::*;
pub use finding::*;
pub use proposal::*;
