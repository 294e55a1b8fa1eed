//! Params as the config: values typed where the text is one, dotted names nested (the
//! rules in the module comment of `mlflow`).

use std::collections::HashSet;

use serde_json::{Map, Value};

/// A param's text as a config value: numbers, booleans and null (JSON's and Python's
/// spellings) and JSON arrays are parsed; everything else stays the string it is.
fn param_value(text: &str) -> Value {
    match text.trim() {
        "True" | "true" => return Value::Bool(true),
        "False" | "false" => return Value::Bool(false),
        "None" | "null" => return Value::Null,
        _ => {}
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value @ (Value::Number(_) | Value::Array(_))) => value,
        _ => Value::String(text.to_string()),
    }
}

/// The params as a config object (dotted names nested where they can be; the rules in the
/// module comment), and the dotted names kept flat.
pub(super) fn params_config(params: &[(String, String)]) -> (Map<String, Value>, Vec<String>) {
    let names: HashSet<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    let mut root = Map::new();
    let mut flat = Vec::new();
    for (key, text) in params {
        let value = param_value(text);
        let segments: Vec<&str> = key.split('.').collect();
        let nestable = segments.len() > 1
            && segments.iter().all(|s| !s.is_empty())
            && (1..segments.len()).all(|n| !names.contains(segments[..n].join(".").as_str()));
        if !nestable {
            if segments.len() > 1 {
                flat.push(key.clone());
            }
            root.insert(key.clone(), value);
            continue;
        }
        if !insert_nested(&mut root, &segments, value.clone()) {
            flat.push(key.clone());
            root.insert(key.clone(), value);
        }
    }
    (root, flat)
}

/// Puts `value` at `segments` under `root`, creating objects; false when a non-object is
/// in the way (the name check before makes that unreachable, but a config must not lose
/// a param if it were not).
fn insert_nested(root: &mut Map<String, Value>, segments: &[&str], value: Value) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = root;
    for segment in parents {
        let child = node
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match child {
            Value::Object(map) => node = map,
            _ => return false,
        }
    }
    if node.contains_key(*last) {
        return false;
    }
    node.insert(last.to_string(), value);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDoc;
    use serde_json::json;
    use std::path::Path;

    #[test]
    fn param_values_are_typed_where_the_text_is_a_value() {
        let cases = [
            ("0.001", json!(0.001)),
            ("1e-05", json!(1e-05)),
            ("32", json!(32)),
            ("-3", json!(-3)),
            ("True", json!(true)),
            ("false", json!(false)),
            ("None", Value::Null),
            ("[0.9, 0.999]", json!([0.9, 0.999])),
            ("adam", json!("adam")),
            ("['a', 'b']", json!("['a', 'b']")),
            ("{\"a\": 1}", json!("{\"a\": 1}")),
            ("\"quoted\"", json!("\"quoted\"")),
            ("nan", json!("nan")),
            ("1e400", json!("1e400")),
            ("007", json!("007")),
            ("", json!("")),
        ];
        for (text, want) in cases {
            assert_eq!(param_value(text), want, "{text:?}");
        }
    }

    #[test]
    fn dotted_params_nest_unless_they_collide() {
        let params: Vec<(String, String)> = [
            ("optimizer.lr", "0.01"),
            ("optimizer.betas", "[0.9, 0.999]"),
            ("batch_size", "64"),
            ("model", "resnet"),
            ("model.depth", "50"),
            ("a..b", "1"),
            ("sched.warmup.steps", "100"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (root, flat) = params_config(&params);
        assert_eq!(
            Value::Object(root.clone()),
            json!({
                "optimizer": {"lr": 0.01, "betas": [0.9, 0.999]},
                "batch_size": 64,
                "model": "resnet",
                "model.depth": 50,
                "a..b": 1,
                "sched": {"warmup": {"steps": 100}}
            })
        );
        assert_eq!(flat, ["model.depth", "a..b"]);
        // the nested paths resolve the way the rest of retune addresses a config
        let doc = ConfigDoc::parse(
            Path::new("c"),
            serde_json::to_string_pretty(&Value::Object(root)).unwrap(),
        )
        .unwrap();
        assert_eq!(doc.get("optimizer.lr"), Some(&json!(0.01)));
        assert_eq!(doc.get("optimizer.betas.1"), Some(&json!(0.999)));
        assert_eq!(doc.get("sched.warmup.steps"), Some(&json!(100)));
    }
}
