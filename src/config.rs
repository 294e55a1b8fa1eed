//! The training config as the user wrote it. We keep the original text and edit it in
//! place: a changed value is spliced over the exact bytes of the old one, so key order,
//! indentation, escapes and every untouched number stay byte for byte as they were.
//! Values are addressed by dotted paths (`optimizer.lr`, `betas.1` for array items).

use std::path::{Path, PathBuf};

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::input;
use crate::num::kind_of;

/// Largest config read. A config is read whole, then parsed into a tree several times its
/// size, so it needs a bound: the biggest training configs we know (a Hugging Face
/// `TrainingArguments` dump, a DeepSpeed config, Lightning's resolved config) are tens of
/// kilobytes, and 4 MiB leaves a hundredfold room while keeping the parsed tree in the tens
/// of megabytes. `/dev/zero` or a 2 GB file given by mistake is refused before it is read.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// A loaded config: its text, and the same text parsed (key order kept).
#[derive(Debug, Clone)]
pub struct ConfigDoc {
    pub path: PathBuf,
    pub text: String,
    pub root: Map<String, Value>,
}

impl ConfigDoc {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = input::read_capped(path, "a training config", MAX_CONFIG_BYTES)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::input(path, "not UTF-8 text; a training config is JSON"))?;
        Self::parse(path, text)
    }

    pub fn parse(path: &Path, text: String) -> Result<Self> {
        // A UTF-8 BOM (Windows editors write one) is not JSON; skip it rather than fail.
        let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if body.trim().is_empty() {
            return Err(Error::input(path, "empty file; expected a JSON object"));
        }
        let value: Value = serde_json::from_str(body).map_err(|e| Error::json(path, &e))?;
        let Value::Object(root) = value else {
            return Err(Error::input(
                path,
                format!(
                    "the config must be a JSON object, found {}",
                    kind_of(&value)
                ),
            ));
        };
        Ok(ConfigDoc {
            path: path.to_path_buf(),
            text,
            root,
        })
    }

    /// The value at a dotted path, if the config has it.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut node = None::<&Value>;
        let mut map = Some(&self.root);
        let mut array: Option<&Vec<Value>> = None;
        for segment in segments(path) {
            node = match (map, array) {
                (Some(m), _) => m.get(segment),
                (None, Some(a)) => segment.parse::<usize>().ok().and_then(|i| a.get(i)),
                (None, None) => None,
            };
            let current = node?;
            map = current.as_object();
            array = current.as_array();
        }
        node
    }

    /// Every scalar leaf as (dotted path, value), in the order of the file.
    pub fn leaves(&self) -> Vec<(String, &Value)> {
        let mut out = Vec::new();
        for (key, value) in &self.root {
            collect_leaves(key.clone(), value, &mut out);
        }
        out
    }

    /// The text with the values at `changes` replaced and nothing else touched.
    /// Paths must exist (validation guarantees it); a missing one is an error, never an
    /// added key.
    pub fn with_changes(&self, changes: &[(String, Value)]) -> Result<String> {
        let mut spans = Vec::with_capacity(changes.len());
        for (path, value) in changes {
            let (start, end) = self.span_of(path).ok_or_else(|| {
                Error::input(&self.path, format!("no value at `{path}` to change"))
            })?;
            let rendered = serde_json::to_string(value)
                .map_err(|e| Error::input(&self.path, format!("cannot write `{path}`: {e}")))?;
            spans.push((start, end, rendered));
        }
        spans.sort_by_key(|s| std::cmp::Reverse(s.0));
        let mut text = self.text.clone();
        for (start, end, rendered) in spans {
            text.replace_range(start..end, &rendered);
        }
        Ok(text)
    }

    /// Byte range of the value at `path` in `self.text`.
    fn span_of(&self, path: &str) -> Option<(usize, usize)> {
        let base = self.text.as_ptr() as usize;
        let mut raw: &str = self.text.strip_prefix('\u{feff}').unwrap_or(&self.text);
        for segment in segments(path) {
            // Borrowed RawValues are slices of `self.text`, so their pointers give offsets.
            raw = if raw.trim_start().starts_with('[') {
                let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
                items.get(segment.parse::<usize>().ok()?)?.get()
            } else {
                let fields: Vec<(String, &RawValue)> =
                    serde_json::from_str::<MapEntries>(raw).ok()?.0;
                // JSON allows a key twice; serde_json keeps the last, and so do we.
                fields.iter().rev().find(|(k, _)| k == segment)?.1.get()
            };
        }
        let start = raw.as_ptr() as usize - base;
        Some((start, start + raw.len()))
    }
}

/// Object members in file order with their raw (unparsed, borrowed) values.
struct MapEntries<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for MapEntries<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = MapEntries<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = access.next_entry::<String, &'de RawValue>()? {
                    entries.push(entry);
                }
                Ok(MapEntries(entries))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('.')
}

fn collect_leaves<'a>(path: String, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                collect_leaves(format!("{path}.{key}"), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                collect_leaves(format!("{path}.{i}"), child, out);
            }
        }
        _ => out.push((path, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::number_like;

    fn doc(text: &str) -> ConfigDoc {
        ConfigDoc::parse(Path::new("c.json"), text.to_string()).unwrap()
    }

    #[test]
    fn splices_only_the_changed_value() {
        let text = "{\n    \"b\": 1e-06,\n    \"optimizer\": {\"lr\": 0.001, \"betas\": [0.9, 0.999]},\n    \"a\": \"x\\u00e9\"\n}\n";
        let d = doc(text);
        let out = d
            .with_changes(&[
                (
                    "optimizer.lr".into(),
                    number_like(0.0002, &Value::from(0.001)),
                ),
                ("optimizer.betas.1".into(), Value::from(0.99)),
            ])
            .unwrap();
        assert_eq!(
            out,
            "{\n    \"b\": 1e-06,\n    \"optimizer\": {\"lr\": 0.0002, \"betas\": [0.9, 0.99]},\n    \"a\": \"x\\u00e9\"\n}\n"
        );
    }

    #[test]
    fn integers_stay_integers_and_floats_are_shortest() {
        assert_eq!(number_like(16.0, &Value::from(32)).to_string(), "16");
        assert_eq!(
            number_like(0.001 / 5.0, &Value::from(0.001)).to_string(),
            "0.0002"
        );
        assert_eq!(number_like(2.0, &Value::from(1.0)).to_string(), "2.0");
        assert_eq!(
            number_like(0.003 * 10.0, &Value::from(0.1)).to_string(),
            "0.03"
        );
        assert_eq!(number_like(0.1 * 3.0, &Value::from(0.1)).to_string(), "0.3");
        assert_eq!(
            number_like(1e-7 / 3.0, &Value::from(0.1)).to_string(),
            "3.33333333333e-8"
        );
    }

    #[test]
    fn paths_reach_nested_keys_and_array_items() {
        let d = doc(r#"{"optimizer": {"lr": 0.1, "betas": [0.9, 0.999]}, "epochs": 3}"#);
        assert_eq!(d.get("optimizer.lr"), Some(&Value::from(0.1)));
        assert_eq!(d.get("optimizer.betas.1"), Some(&Value::from(0.999)));
        assert_eq!(d.get("optimizer.momentum"), None);
        let paths: Vec<_> = d.leaves().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "optimizer.lr",
                "optimizer.betas.0",
                "optimizer.betas.1",
                "epochs"
            ]
        );
    }

    #[test]
    fn duplicate_keys_resolve_to_the_last_as_serde_json_does() {
        let d = doc(r#"{"lr": 0.1, "lr": 0.5}"#);
        assert_eq!(d.get("lr"), Some(&Value::from(0.5)));
        let out = d.with_changes(&[("lr".into(), Value::from(0.05))]).unwrap();
        assert_eq!(out, r#"{"lr": 0.1, "lr": 0.05}"#);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let err = ConfigDoc::parse(Path::new("run.json"), "{\n  \"a\": ,\n}".into()).unwrap_err();
        assert_eq!(err.to_string(), "run.json:2:8: expected value");
        let err = ConfigDoc::parse(Path::new("run.json"), "[1]".into()).unwrap_err();
        assert!(
            err.to_string()
                .contains("must be a JSON object, found an array")
        );
    }

    #[test]
    fn a_missing_path_is_an_error_not_an_added_key() {
        let d = doc(r#"{"lr": 0.1}"#);
        assert!(
            d.with_changes(&[("momentum".into(), Value::from(0.9))])
                .is_err()
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::num::number_like;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the numbers and whichever are changed, the output parses to the input
        /// with exactly those values replaced, and every other byte stays.
        #[test]
        fn splicing_changes_only_the_changed_values(
            values in proptest::collection::vec(-1e6f64..1e6, 1..8),
            ints in proptest::collection::vec(0i64..100_000, 1..4),
            pick in proptest::collection::vec(any::<bool>(), 8),
            replacement in 1e-9f64..1e3,
            indent in 0usize..5,
        ) {
            let pad = " ".repeat(indent);
            let mut text = String::from("{\n");
            let mut paths = Vec::new();
            for (i, v) in values.iter().enumerate() {
                text.push_str(&format!("{pad}\"f{i}\": {},\n", serde_json::to_string(v).unwrap()));
                paths.push(format!("f{i}"));
            }
            text.push_str(&format!("{pad}\"nested\": {{\"ints\": {}}},\n", serde_json::to_string(&ints).unwrap()));
            for i in 0..ints.len() {
                paths.push(format!("nested.ints.{i}"));
            }
            text.push_str(&format!("{pad}\"name\": \"run \\\"7\\\" é\"\n}}\n"));
            let d = ConfigDoc::parse(Path::new("c.json"), text.clone()).unwrap();
            let changes: Vec<(String, Value)> = paths
                .iter()
                .zip(pick.iter().cycle())
                .filter(|(_, p)| **p)
                .map(|(path, _)| {
                    let like = d.get(path).unwrap().clone();
                    (path.clone(), number_like(replacement, &like))
                })
                .collect();
            let out = d.with_changes(&changes).unwrap();
            let mut expected: Value = serde_json::from_str(&text).unwrap();
            for (path, v) in &changes {
                let pointer = format!("/{}", path.replace('.', "/"));
                *expected.pointer_mut(&pointer).unwrap() = v.clone();
            }
            let got: Value = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(got, expected);
            // Lines without a change are untouched, byte for byte.
            let changed_leaf = |line: &str| changes.iter().any(|(p, _)| {
                let leaf = p.rsplit('.').next().unwrap();
                line.contains(&format!("\"{leaf}\"")) || (p.starts_with("nested") && line.contains("\"nested\""))
            });
            for (a, b) in text.lines().zip(out.lines()) {
                if !changed_leaf(a) {
                    prop_assert_eq!(a, b);
                }
            }
        }
    }
}
