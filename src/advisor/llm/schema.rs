//! The answer the model must give, as Rust types, and the JSON schema generated from them
//! with schemars for `response_format`. The schema is made strict the way OpenAI wants
//! (every property required, optional ones nullable, no additional properties), with
//! subschemas inlined (llama.cpp's grammar conversion skips `$ref`), `parameter` an enum
//! of the run's tunable parameters, and length bounds on lists and strings, which
//! llama.cpp does honour and which keep a weak model from repeating itself until
//! `max_tokens` cuts the JSON off mid-word (seed 003's failure).

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::types::MAX_CHANGES;
use crate::types::Verdict;

/// Longest diagnosis the model may write (characters).
pub const MAX_DIAGNOSIS_CHARS: u64 = 400;
/// Longest rationale, reason, expected effect, risk or alternative (characters).
pub const MAX_TEXT_CHARS: u64 = 200;
/// Alternatives the model may list.
pub const MAX_ALTERNATIVES: u64 = 2;
// Gemma 3 270M fills strings and lists up to their bounds: with 600/300, three
// alternatives and an unbounded `dropped` its review of a one-change proposal ran past the
// default `--max-tokens` of 800 and was cut off mid-string (llama-server, 2026-12-02).
// With these bounds a review of one or two proposed changes fits in 800 even when every
// field is full.

/// The model's answer: its review of the rules advisor's proposal. Only `verdict`,
/// `diagnosis` and `changes` must hold something; the other fields may be null.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[allow(dead_code)] // Read through serde_json::Value by the lenient parser; this type is the schema.
pub struct Answer {
    /// agree: the rules' changes stand; amend: the rules' changes with the listed ones
    /// changed or added and the `dropped` ones left out; replace: only the listed changes.
    pub verdict: VerdictAnswer,
    /// One paragraph: what is happening in this run, citing its numbers.
    pub diagnosis: String,
    /// With amend or replace, the changes to make now; with agree, ignored.
    pub changes: Vec<ChangeAnswer>,
    /// The rules' changes left out, each with why.
    pub dropped: Option<Vec<DroppedAnswer>>,
    /// What the metrics should do after these changes.
    pub expected_effect: Option<String>,
    /// What could go wrong.
    pub risk: Option<String>,
    /// Other options considered.
    pub alternatives: Option<Vec<String>>,
}

/// `Verdict` as the schema spells it (schemars needs its own derive).
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum VerdictAnswer {
    Agree,
    Amend,
    Replace,
}

impl From<VerdictAnswer> for Verdict {
    fn from(v: VerdictAnswer) -> Verdict {
        match v {
            VerdictAnswer::Agree => Verdict::Agree,
            VerdictAnswer::Amend => Verdict::Amend,
            VerdictAnswer::Replace => Verdict::Replace,
        }
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[allow(dead_code)]
pub struct DroppedAnswer {
    /// A parameter of the rules' proposal.
    pub parameter: String,
    /// Why it should not change now.
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[allow(dead_code)]
pub struct ChangeAnswer {
    /// A tunable parameter's dotted path, exactly as listed.
    pub parameter: String,
    /// The new value: a number within the parameter's bounds and largest step.
    pub new_value: f64,
    /// Why, citing this run's numbers.
    pub rationale: String,
    /// From 0 to 1.
    pub confidence: f64,
}

/// The strict schema for a run whose tunable parameters are `parameters` (dotted paths).
/// With no parameters (no config), `parameter` is a plain string.
pub fn answer_schema(parameters: &[String]) -> Value {
    answer_schema_for(parameters, None)
}

/// The schema for reviewing a proposal that changes `proposed`: only those can be
/// dropped, each once at most (a small model otherwise lists the same drop until the list
/// is full).
pub fn answer_schema_for(parameters: &[String], proposed: Option<&[String]>) -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Answer>().to_value();
    make_strict(&mut schema);
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    let props = &mut schema["properties"];
    props["diagnosis"]["maxLength"] = json!(MAX_DIAGNOSIS_CHARS);
    props["changes"]["maxItems"] = json!(MAX_CHANGES);
    for key in ["expected_effect", "risk"] {
        props[key]["maxLength"] = json!(MAX_TEXT_CHARS);
    }
    props["alternatives"]["maxItems"] = json!(MAX_ALTERNATIVES);
    props["alternatives"]["items"]["maxLength"] = json!(MAX_TEXT_CHARS);
    props["dropped"]["maxItems"] = json!(proposed.map_or(MAX_CHANGES, <[String]>::len));
    let item = &mut props["dropped"]["items"]["properties"];
    item["reason"]["maxLength"] = json!(MAX_TEXT_CHARS);
    match proposed {
        Some(proposed) if !proposed.is_empty() => item["parameter"]["enum"] = json!(proposed),
        _ if !parameters.is_empty() => item["parameter"]["enum"] = json!(parameters),
        _ => {}
    }
    let item = &mut props["changes"]["items"]["properties"];
    item["rationale"]["maxLength"] = json!(MAX_TEXT_CHARS);
    if !parameters.is_empty() {
        item["parameter"]["enum"] = json!(parameters);
    }
    schema
}

/// OpenAI strict mode: every object lists all its properties as required and allows no
/// others. schemars already writes `Option<T>` as a type union with null.
fn make_strict(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("type") == Some(&json!("object"))
                && let Some(Value::Object(props)) = map.get("properties")
            {
                let names: Vec<Value> = props.keys().map(|k| json!(k)).collect();
                map.insert("required".into(), Value::Array(names));
                map.insert("additionalProperties".into(), json!(false));
            }
            // Formats such as "double" mean nothing to a grammar and some servers reject them.
            if map.get("format").is_some_and(|f| f == "double") {
                map.remove("format");
            }
            for child in map.values_mut() {
                make_strict(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(make_strict),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_inlined_and_bounded() {
        let s = answer_schema(&["optimizer.lr".into(), "batch_size".into()]);
        let text = s.to_string();
        assert!(!text.contains("$ref") && !text.contains("$defs"), "{text}");
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(
            s["required"],
            json!([
                "verdict",
                "diagnosis",
                "changes",
                "dropped",
                "expected_effect",
                "risk",
                "alternatives"
            ])
        );
        let item = &s["properties"]["changes"]["items"];
        assert_eq!(item["additionalProperties"], json!(false));
        assert_eq!(
            item["required"],
            json!(["parameter", "new_value", "rationale", "confidence"])
        );
        assert_eq!(
            item["properties"]["parameter"]["enum"],
            json!(["optimizer.lr", "batch_size"])
        );
        assert_eq!(s["properties"]["changes"]["maxItems"], json!(MAX_CHANGES));
        assert_eq!(
            s["properties"]["verdict"]["enum"],
            json!(["agree", "amend", "replace"])
        );
        let dropped = &s["properties"]["dropped"];
        assert_eq!(dropped["maxItems"], json!(MAX_CHANGES));
        assert_eq!(
            dropped["items"]["properties"]["parameter"]["enum"],
            json!(["optimizer.lr", "batch_size"])
        );
        // Reviewing a proposal: only its parameters can be dropped, once each.
        let review = answer_schema_for(
            &["optimizer.lr".into(), "batch_size".into()],
            Some(&["optimizer.lr".into()]),
        );
        let dropped = &review["properties"]["dropped"];
        assert_eq!(dropped["maxItems"], json!(1));
        assert_eq!(
            dropped["items"]["properties"]["parameter"]["enum"],
            json!(["optimizer.lr"])
        );
        // Optional fields are nullable, so an answer with only the required ones is valid.
        assert!(
            s["properties"]["risk"]["type"]
                .as_array()
                .unwrap()
                .contains(&json!("null"))
        );
    }
}
