//! Diagnose: deterministic detectors over the metrics and the config. Each emits
//! `Finding`s carrying the numbers they rest on; no LLM is involved, the numbers are
//! facts. One file per detector family; thresholds are named constants beside the
//! detector that uses them, with where they come from (../shared/DETECTORS.md).

mod chance;
mod config_checks;
mod divergence;
mod oscillation;
mod overfitting;
mod trend;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::lang::Lang;
use crate::run::{Known, Run};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One thing a detector saw. `id` is a stable interface (README, "Finding ids").
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: String,
    pub evidence: Map<String, Value>,
}

/// A check that did not run, and why (usually: no config given).
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub check: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Diagnosis {
    /// Most severe first; detectors' order within a severity.
    pub findings: Vec<Finding>,
    pub skipped: Vec<Skipped>,
    /// The number of classes used by the chance-level check and where it came from.
    pub classes: Option<Known<u32>>,
}

impl Diagnosis {
    pub fn has(&self, id: &str) -> bool {
        self.findings.iter().any(|f| f.id == id)
    }

    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }
}

/// Runs every detector on the run.
pub fn diagnose(run: &Run, lang: Lang) -> Diagnosis {
    let mut out = Diagnosis::default();
    divergence::check(run, lang, &mut out);
    chance::check(run, lang, &mut out);
    trend::check(run, lang, &mut out);
    overfitting::check(run, lang, &mut out);
    oscillation::check(run, lang, &mut out);
    config_checks::check(run, lang, &mut out);
    out.findings.sort_by(|a, b| b.severity.cmp(&a.severity));
    out
}

/// Evidence as an ordered JSON object: `evidence![ "loss" => 0.69, "epochs" => 3 ]`.
#[macro_export]
macro_rules! evidence {
    ($($key:expr => $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut map = serde_json::Map::new();
        $( map.insert($key.to_string(), $crate::diagnose::to_evidence($value)); )*
        map
    }};
}

/// Evidence values: floats keep non-finite values as strings ("NaN"), the way Python
/// writes them, so nothing is lost in JSON.
pub fn to_evidence<T: Into<EvidenceValue>>(value: T) -> Value {
    match value.into() {
        EvidenceValue::Float(f) => crate::history::number_to_json(round_sig(f)),
        EvidenceValue::Json(v) => v,
    }
}

pub enum EvidenceValue {
    Float(f64),
    Json(Value),
}

impl From<f64> for EvidenceValue {
    fn from(f: f64) -> Self {
        EvidenceValue::Float(f)
    }
}
macro_rules! evidence_via_json {
    ($($t:ty),*) => {$(
        impl From<$t> for EvidenceValue {
            fn from(v: $t) -> Self { EvidenceValue::Json(Value::from(v)) }
        }
    )*};
}
evidence_via_json!(u32, u64, usize, i64, bool, String, &str, Vec<f64>, Vec<u32>);
impl From<Value> for EvidenceValue {
    fn from(v: Value) -> Self {
        EvidenceValue::Json(v)
    }
}

/// Rounds to 6 significant digits: evidence is for reading, and float noise such as
/// 0.30000000000000004 helps nobody.
pub fn round_sig(value: f64) -> f64 {
    if !value.is_finite() || value == 0.0 {
        return value;
    }
    let digits = 6 - 1 - value.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    let rounded = (value * scale).round() / scale;
    // Going through the decimal text keeps the shortest representation.
    format!("{rounded:.prec$}", prec = digits.max(0) as usize)
        .parse()
        .unwrap_or(rounded)
}

/// A number for a sentence: 4 significant digits, no float noise, `nan`/`inf` spelled out.
pub fn num(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let abs = value.abs();
    if abs != 0.0 && !(1e-4..1e6).contains(&abs) {
        return format!("{value:.3e}")
            .replace(".000e", "e")
            .replace("00e", "e")
            .replace("0e", "e");
    }
    let digits = if abs == 0.0 {
        0
    } else {
        (3 - abs.log10().floor() as i32).max(0) as usize
    };
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_cleanly() {
        assert_eq!(num(0.00019999999999999998), "0.0002");
        assert_eq!(num(0.6935), "0.6935");
        assert_eq!(num(1.692669), "1.693");
        assert_eq!(num(3038.0), "3038");
        assert_eq!(num(f64::NAN), "NaN");
        assert_eq!(num(1e-6), "1e-6");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(round_sig(0.30000000000000004), 0.3);
        assert_eq!(round_sig(1.6926691234), 1.69267);
    }
}
