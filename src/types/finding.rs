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

/// A finding's id: a stable interface (README, "Finding ids"), written as the snake_case
/// string it serialises to. Typed, so that a detector and a rule cannot disagree on a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingId {
    Divergence,
    ChanceLevel,
    NotLearning,
    ValAtChance,
    Plateau,
    SlowConvergence,
    Overfitting,
    Oscillation,
    LossSpike,
    GradNormSpike,
    GradNormRising,
    DegenerateLoss,
    AccuracyPinned,
    MetricOutOfRange,
    WarmupUnfinished,
    WarmupExceedsTraining,
    EmaHorizonTooLong,
    EffectiveBatchTooLarge,
    LearningRateExtreme,
    DropoutTooHigh,
    ClassImbalance,
    ConflictingSettings,
}

impl FindingId {
    pub const ALL: [FindingId; 22] = [
        FindingId::Divergence,
        FindingId::ChanceLevel,
        FindingId::NotLearning,
        FindingId::ValAtChance,
        FindingId::Plateau,
        FindingId::SlowConvergence,
        FindingId::Overfitting,
        FindingId::Oscillation,
        FindingId::LossSpike,
        FindingId::GradNormSpike,
        FindingId::GradNormRising,
        FindingId::DegenerateLoss,
        FindingId::AccuracyPinned,
        FindingId::MetricOutOfRange,
        FindingId::WarmupUnfinished,
        FindingId::WarmupExceedsTraining,
        FindingId::EmaHorizonTooLong,
        FindingId::EffectiveBatchTooLarge,
        FindingId::LearningRateExtreme,
        FindingId::DropoutTooHigh,
        FindingId::ClassImbalance,
        FindingId::ConflictingSettings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingId::Divergence => "divergence",
            FindingId::ChanceLevel => "chance_level",
            FindingId::NotLearning => "not_learning",
            FindingId::ValAtChance => "val_at_chance",
            FindingId::Plateau => "plateau",
            FindingId::SlowConvergence => "slow_convergence",
            FindingId::Overfitting => "overfitting",
            FindingId::Oscillation => "oscillation",
            FindingId::LossSpike => "loss_spike",
            FindingId::GradNormSpike => "grad_norm_spike",
            FindingId::GradNormRising => "grad_norm_rising",
            FindingId::DegenerateLoss => "degenerate_loss",
            FindingId::AccuracyPinned => "accuracy_pinned",
            FindingId::MetricOutOfRange => "metric_out_of_range",
            FindingId::WarmupUnfinished => "warmup_unfinished",
            FindingId::WarmupExceedsTraining => "warmup_exceeds_training",
            FindingId::EmaHorizonTooLong => "ema_horizon_too_long",
            FindingId::EffectiveBatchTooLarge => "effective_batch_too_large",
            FindingId::LearningRateExtreme => "learning_rate_extreme",
            FindingId::DropoutTooHigh => "dropout_too_high",
            FindingId::ClassImbalance => "class_imbalance",
            FindingId::ConflictingSettings => "conflicting_settings",
        }
    }

    /// The id a history line or another program wrote, if retune knows it.
    pub fn parse(text: &str) -> Option<FindingId> {
        FindingId::ALL.into_iter().find(|id| id.as_str() == text)
    }
}

impl std::fmt::Display for FindingId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing a detector saw. `id` is a stable interface (README, "Finding ids").
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub id: FindingId,
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
    pub fn has(&self, id: FindingId) -> bool {
        self.findings.iter().any(|f| f.id == id)
    }

    pub fn get(&self, id: FindingId) -> Option<&Finding> {
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
