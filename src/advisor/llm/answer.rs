//! Reading what the model said. The answer is untrusted: it may be JSON, JSON wrapped in
//! prose or a code fence, or nonsense. We find the JSON object, read the fields we need
//! leniently (numbers written as strings are numbers), and report every structural
//! problem as a reason the model can act on in a repair round. Values are not judged
//! here: `validate` does that for every advisor alike.
//!
//! Sizes are judged here, since servers do not all honour the schema's bounds: text
//! fields are cut to the schema's lengths, and names and values far longer than any
//! real one are reasons, so no model can put megabytes into the terminal or a report.

use serde_json::Value;

use crate::types::ProposedChange;

/// The rationale of the example answer in prompts/system.j2.
const PLACEHOLDER_RATIONALE: &str = "why, citing the run's numbers";

/// Longest diagnosis kept (characters): the schema's `maxLength` for it, enforced on the
/// answer received as well as sent.
pub const MAX_DIAGNOSIS_CHARS: usize = super::schema::MAX_DIAGNOSIS_CHARS as usize;
/// Longest rationale, expected effect or risk kept (characters): the schema's
/// `maxLength` for them.
pub const MAX_TEXT_CHARS: usize = super::schema::MAX_TEXT_CHARS as usize;
/// Longest parameter name read. The schema lists the names (an enum); real dotted paths
/// are a few dozen characters, and validation quotes an unknown name back.
pub const MAX_PARAMETER_CHARS: usize = 200;
/// Longest `new_value` written as a string ("5e-4", "0.0003"): a number needs no more.
pub const MAX_VALUE_CHARS: usize = 40;
/// Most changes read. The schema allows `types::MAX_CHANGES` (4) and validation keeps
/// the most confident of a few more; a list this long is not an answer to the question
/// (each extra would be listed as rejected).
pub const MAX_CHANGES_READ: usize = 16;

/// The parts of an answer we use.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub diagnosis: String,
    pub changes: Vec<ProposedChange>,
    pub extras: Vec<(String, String)>,
}

/// The answer, or the reasons it cannot be used.
pub fn parse(text: &str) -> Result<Parsed, Vec<String>> {
    let Some(object) = find_object(text) else {
        return Err(vec![if text.trim().is_empty() {
            "the answer was empty".to_string()
        } else {
            format!(
                "no JSON object found in the answer (it began: {:?})",
                text.chars().take(80).collect::<String>()
            )
        }]);
    };
    let mut reasons = Vec::new();
    let diagnosis = match object.get("diagnosis") {
        Some(Value::String(s)) => bounded(s, MAX_DIAGNOSIS_CHARS),
        _ => {
            reasons.push("\"diagnosis\" must be a string".to_string());
            String::new()
        }
    };
    let mut changes = Vec::new();
    match object.get("changes") {
        Some(Value::Array(items)) if items.len() > MAX_CHANGES_READ => reasons.push(format!(
            "\"changes\" has {} items: give at most {}",
            items.len(),
            crate::types::MAX_CHANGES
        )),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match change(item) {
                    Ok(c) => changes.push(c),
                    Err(why) => reasons.push(format!("changes[{i}]: {why}")),
                }
            }
        }
        Some(Value::Null) | None => reasons
            .push("\"changes\" is missing: give a list (empty if nothing should change)".into()),
        Some(_) => reasons.push("\"changes\" must be a list".into()),
    }
    let extras = ["expected_effect", "risk"]
        .iter()
        .filter_map(|k| {
            object
                .get(*k)
                .and_then(Value::as_str)
                .map(|v| (k.to_string(), bounded(v, MAX_TEXT_CHARS)))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if reasons.is_empty() {
        Ok(Parsed {
            diagnosis,
            changes,
            extras,
        })
    } else {
        Err(reasons)
    }
}

fn change(item: &Value) -> Result<ProposedChange, String> {
    let Some(obj) = item.as_object() else {
        return Err("each change must be an object".into());
    };
    let parameter = obj
        .get("parameter")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("\"parameter\" must be a parameter path from the list")?;
    if parameter.chars().count() > MAX_PARAMETER_CHARS {
        return Err(format!(
            "\"parameter\" is {} characters long: it must be a parameter path from the list",
            parameter.chars().count()
        ));
    }
    let new_value = match obj.get("new_value") {
        Some(Value::String(s)) if s.chars().count() > MAX_VALUE_CHARS => {
            return Err(format!("{parameter}: \"new_value\" must be a number"));
        }
        Some(v @ (Value::Number(_) | Value::String(_))) => v.clone(),
        _ => return Err(format!("{parameter}: \"new_value\" must be a number")),
    };
    let rationale = bounded(
        obj.get("rationale")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        MAX_TEXT_CHARS,
    );
    // A weak model copies the example in the system prompt instead of giving a reason:
    // that is no reason, and validation rejects a change without one, listing it.
    let rationale = if rationale.eq_ignore_ascii_case(PLACEHOLDER_RATIONALE) {
        String::new()
    } else {
        rationale
    };
    let confidence = match obj.get("confidence") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .map(|v| if v > 1.0 { v / 100.0 } else { v })
            .unwrap_or(0.0),
        _ => 0.5,
    };
    Ok(ProposedChange {
        parameter: parameter.to_string(),
        new_value,
        rationale,
        confidence,
    })
}

/// `text` trimmed and cut to `max` characters (the last one an ellipsis when cut).
fn bounded(text: &str, max: usize) -> String {
    crate::num::truncate(text.trim(), max)
}

/// The first JSON object in `text`: the whole text, else the first `{` from which a
/// complete object parses (answers in code fences or after a sentence).
pub(crate) fn find_object(text: &str) -> Option<serde_json::Map<String, Value>> {
    if let Ok(Value::Object(map)) = serde_json::from_str(text.trim()) {
        return Some(map);
    }
    text.char_indices()
        .filter(|(_, c)| *c == '{')
        .find_map(|(i, _)| {
            let mut stream = serde_json::Deserializer::from_str(&text[i..]).into_iter::<Value>();
            match stream.next() {
                Some(Ok(Value::Object(map))) => Some(map),
                _ => None,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_fenced_and_prose_wrapped_json() {
        let body = r#"{"diagnosis": "d", "changes": [{"parameter": "lr", "new_value": "5e-4", "rationale": "r", "confidence": "80%"}]}"#;
        for text in [
            body.to_string(),
            format!("```json\n{body}\n```"),
            format!("Sure! Here it is: {body} Hope that helps."),
        ] {
            let p = parse(&text).unwrap();
            assert_eq!(p.changes[0].parameter, "lr");
            assert_eq!(p.changes[0].new_value, Value::from("5e-4"));
            assert_eq!(p.changes[0].confidence, 0.8);
        }
    }

    #[test]
    fn only_the_required_fields_are_needed() {
        let p = parse(r#"{"diagnosis": "healthy", "changes": []}"#).unwrap();
        assert!(p.changes.is_empty());
        let p = parse(r#"{"diagnosis": "x", "changes": [], "expected_effect": null, "risk": "low", "alternatives": null}"#).unwrap();
        assert_eq!(p.extras, vec![("risk".to_string(), "low".to_string())]);
    }

    #[test]
    fn problems_become_reasons_the_model_can_fix() {
        let reasons = parse("I think the learning rate is too high.").unwrap_err();
        assert!(reasons[0].contains("no JSON object"));
        let reasons =
            parse(r#"{"diagnosis": 3, "changes": [{"parameter": "lr"}, 5]}"#).unwrap_err();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        // The example's placeholder is not a reason: it is dropped, for validation to reject.
        let copied = r#"{"diagnosis": "d", "changes": [{"parameter": "lr", "new_value": 0.1, "rationale": "why, citing the run's numbers", "confidence": 0.7}]}"#;
        assert_eq!(parse(copied).unwrap().changes[0].rationale, "");
        // Cut off mid-string, as max_tokens does.
        assert!(parse(r#"{"diagnosis": "the loss is at ln 5 and the mod"#).is_err());
    }

    #[test]
    fn text_is_cut_to_the_schemas_lengths_and_huge_names_are_refused() {
        let long = "x".repeat(5_000_000);
        let answer = serde_json::json!({
            "diagnosis": long,
            "changes": [{"parameter": "lr", "new_value": 0.1, "rationale": long, "confidence": 0.5}],
            "risk": long,
        });
        let p = parse(&answer.to_string()).unwrap();
        assert_eq!(p.diagnosis.chars().count(), MAX_DIAGNOSIS_CHARS);
        assert!(p.diagnosis.ends_with('…'));
        assert_eq!(p.changes[0].rationale.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(p.extras[0].1.chars().count(), MAX_TEXT_CHARS);
        // Within the limits nothing is cut.
        let fits = "é".repeat(MAX_DIAGNOSIS_CHARS);
        let p = parse(&serde_json::json!({"diagnosis": fits, "changes": []}).to_string()).unwrap();
        assert_eq!(p.diagnosis, fits);

        let named = |parameter: &str, value: Value| {
            serde_json::json!({"diagnosis": "d", "changes": [{"parameter": parameter, "new_value": value, "rationale": "r", "confidence": 0.5}]}).to_string()
        };
        let reasons = parse(&named(&long, Value::from(0.1))).unwrap_err();
        assert!(reasons[0].contains("5000000 characters"), "{reasons:?}");
        assert!(reasons[0].len() < 200, "the name is not quoted back");
        let reasons = parse(&named("lr", Value::from(long.as_str()))).unwrap_err();
        assert_eq!(
            reasons,
            vec!["changes[0]: lr: \"new_value\" must be a number"]
        );
        let many: Vec<Value> = (0..1000)
            .map(|_| serde_json::json!({"parameter": "lr", "new_value": 0.1, "rationale": "r", "confidence": 0.5}))
            .collect();
        let reasons =
            parse(&serde_json::json!({"diagnosis": "d", "changes": many}).to_string()).unwrap_err();
        assert_eq!(reasons, vec!["\"changes\" has 1000 items: give at most 4"]);
    }

    #[test]
    fn limits_match_the_schema_sent() {
        let schema = crate::advisor::llm::schema::answer_schema(&[]);
        let props = &schema["properties"];
        assert_eq!(props["diagnosis"]["maxLength"], MAX_DIAGNOSIS_CHARS);
        for key in ["expected_effect", "risk"] {
            assert_eq!(props[key]["maxLength"], MAX_TEXT_CHARS, "{key}");
        }
        assert_eq!(
            props["changes"]["items"]["properties"]["rationale"]["maxLength"],
            MAX_TEXT_CHARS
        );
        assert!(props["changes"]["maxItems"].as_u64().unwrap() <= MAX_CHANGES_READ as u64);
    }
}
