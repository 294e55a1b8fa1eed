//! What the diagnose stage produces: findings with their evidence, the checks that could
//! not run, and the numbers a finding quotes with where they came from.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::num::{number_to_json, round_sig};

/// A number and where it came from, so a finding can say "3038 steps per epoch (from the
/// Keras log)".
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Known<T> {
    pub value: T,
    pub source: String,
}

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
    /// What followed each earlier adjustment of the run, one sentence each, oldest first:
    /// measured once beside the findings, read by the prompt and the report alike.
    #[serde(skip)]
    pub effects: Vec<String>,
}

impl Diagnosis {
    pub fn has(&self, id: &str) -> bool {
        self.findings.iter().any(|f| f.id == id)
    }

    pub fn get(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.id == id)
    }
}

/// Evidence as an ordered JSON object: `evidence![ "loss" => 0.69, "epochs" => 3 ]`.
macro_rules! evidence {
    ($($key:expr => $value:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut map = serde_json::Map::new();
        $( map.insert($key.to_string(), $crate::types::to_evidence($value)); )*
        map
    }};
}
pub(crate) use evidence;

/// Evidence values: floats keep non-finite values as strings ("NaN"), the way Python
/// writes them, so nothing is lost in JSON.
pub fn to_evidence<T: Into<EvidenceValue>>(value: T) -> Value {
    match value.into() {
        EvidenceValue::Float(f) => number_to_json(round_sig(f)),
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

impl From<Map<String, Value>> for EvidenceValue {
    fn from(v: Map<String, Value>) -> Self {
        EvidenceValue::Json(Value::Object(v))
    }
}

impl From<Vec<&str>> for EvidenceValue {
    fn from(v: Vec<&str>) -> Self {
        EvidenceValue::Json(Value::from(v))
    }
}

/// `None` is JSON `null`: the key is always there, so readers need not guess.
impl From<Option<f64>> for EvidenceValue {
    fn from(v: Option<f64>) -> Self {
        v.map_or(EvidenceValue::Json(Value::Null), EvidenceValue::Float)
    }
}

impl From<Option<u32>> for EvidenceValue {
    fn from(v: Option<u32>) -> Self {
        EvidenceValue::Json(v.map_or(Value::Null, Value::from))
    }
}

impl From<Option<u64>> for EvidenceValue {
    fn from(v: Option<u64>) -> Self {
        EvidenceValue::Json(v.map_or(Value::Null, Value::from))
    }
}

impl From<Option<String>> for EvidenceValue {
    fn from(v: Option<String>) -> Self {
        EvidenceValue::Json(v.map_or(Value::Null, Value::from))
    }
}
