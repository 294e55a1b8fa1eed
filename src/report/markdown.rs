//! (being written)

use crate::Outcome;

pub fn render(outcome: &Outcome, _chart_href: Option<&str>) -> String {
    format!("# retune report {}\n", outcome.adjustment_id)
}
