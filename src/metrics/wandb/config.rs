//! A W&B run's config: what `wandb.init(config=…)` and later `wandb.config.update(…)`
//! recorded in the `.wandb` file (the run record's config items, then each config record's
//! updates and removals, in file order), or a synced run's `files/config.yaml`, where each
//! value sits under `value:`. `_wandb` is W&B's own bookkeeping, not the trainer's config,
//! and is left out.

use std::path::Path;

use serde_json::{Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

use super::proto::{ConfigRecord, Item};
use crate::config::ConfigDoc;
use crate::error::{Error, Result};

/// W&B's own key in every run's config (versions, telemetry), never the trainer's.
const WANDB_KEY: &str = "_wandb";

/// Where a synced run keeps its config, relative to the run folder.
pub(super) const CONFIG_YAML: &str = "files/config.yaml";

/// The config as the records build it up.
#[derive(Debug, Default)]
pub(super) struct RecordedConfig {
    root: Map<String, Value>,
}

impl RecordedConfig {
    pub(super) fn apply(&mut self, record: &ConfigRecord) {
        for item in &record.update {
            let value = serde_json::from_str(&item.value_json)
                .unwrap_or_else(|_| Value::String(item.value_json.clone()));
            self.set(item, Some(value));
        }
        for item in &record.remove {
            self.set(item, None);
        }
    }

    /// Sets (or with `None` removes) the value at the item's key path.
    fn set(&mut self, item: &Item, value: Option<Value>) {
        let path = item.path();
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        if path.first() == Some(&WANDB_KEY) || last.is_empty() {
            return;
        }
        let mut map = &mut self.root;
        for part in parents {
            let entry = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                if value.is_none() {
                    return;
                }
                *entry = Value::Object(Map::new());
            }
            let Value::Object(inner) = entry else {
                return;
            };
            map = inner;
        }
        match value {
            Some(v) => {
                map.insert(last.to_string(), v);
            }
            None => {
                map.shift_remove(*last);
            }
        }
    }

    /// The config as a document the config checks read, named by the file it came from;
    /// `None` when the run recorded no config.
    pub(super) fn into_doc(self, path: &Path) -> Result<Option<ConfigDoc>> {
        doc(path, self.root)
    }
}

fn doc(path: &Path, root: Map<String, Value>) -> Result<Option<ConfigDoc>> {
    if root.is_empty() {
        return Ok(None);
    }
    let text = serde_json::to_string_pretty(&Value::Object(root))
        .map_err(|e| Error::input(path, format!("config: {e}")))?;
    ConfigDoc::parse(path, text).map(Some)
}

/// A synced run's `files/config.yaml`: `key: {value: …, desc: …}` per config key.
pub(super) fn read_yaml(path: &Path) -> Result<Option<ConfigDoc>> {
    let bytes = std::fs::read(path).map_err(|e| Error::read(path, &e))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::input(path, "not UTF-8 text; a W&B config.yaml is YAML"))?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| {
        let m = e.marker();
        Error::at(
            path,
            m.line() as u64,
            Some(m.col() as u64 + 1),
            e.info().to_string(),
        )
    })?;
    let root = match docs.into_iter().next() {
        None | Some(Yaml::Null) => Map::new(),
        Some(Yaml::Hash(hash)) => {
            let mut root = Map::new();
            for (key, entry) in hash {
                let Some(key) = key_text(&key) else { continue };
                if key == WANDB_KEY {
                    continue;
                }
                let value = match entry {
                    Yaml::Hash(mut fields) => fields
                        .remove(&Yaml::String("value".into()))
                        .unwrap_or(Yaml::Hash(fields)),
                    other => other,
                };
                root.insert(key, to_json(value));
            }
            root
        }
        Some(_) => {
            return Err(Error::input(
                path,
                "a W&B config.yaml maps each config key to `value:`; this one is not a mapping",
            ));
        }
    };
    doc(path, root)
}

fn key_text(key: &Yaml) -> Option<String> {
    match key {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// YAML as JSON. A float JSON cannot hold (`.nan`, `.inf`) is kept as its text.
fn to_json(value: Yaml) -> Value {
    match value {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(text), Value::Number),
        Yaml::Integer(i) => Value::from(i),
        Yaml::String(s) => Value::String(s),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Yaml::Hash(hash) => Value::Object(
            hash.into_iter()
                .filter_map(|(k, v)| Some((key_text(&k)?, to_json(v))))
                .collect(),
        ),
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &[&str], json: &str) -> Item {
        Item {
            key: if path.len() == 1 {
                path[0].into()
            } else {
                String::new()
            },
            nested_key: if path.len() > 1 {
                path.iter().map(|p| p.to_string()).collect()
            } else {
                Vec::new()
            },
            value_json: json.into(),
        }
    }

    #[test]
    fn updates_and_removals_build_the_config_in_order() {
        let mut c = RecordedConfig::default();
        c.apply(&ConfigRecord {
            update: vec![
                item(&["_wandb"], "{}"),
                item(&["learning_rate"], "0.5"),
                item(&["optimizer"], r#"{"name": "adam", "beta1": 0.9}"#),
                item(&["dropout"], "0.1"),
            ],
            remove: vec![],
        });
        c.apply(&ConfigRecord {
            update: vec![
                item(&["optimizer", "beta1"], "0.95"),
                item(&["note"], "not json"),
            ],
            remove: vec![item(&["dropout"], "")],
        });
        let doc = c.into_doc(Path::new("run-x.wandb")).unwrap().unwrap();
        assert_eq!(
            serde_json::Value::Object(doc.root.clone()),
            serde_json::json!({
                "learning_rate": 0.5,
                "optimizer": {"name": "adam", "beta1": 0.95},
                "note": "not json"
            })
        );
        assert_eq!(doc.path, Path::new("run-x.wandb"));
        let empty = RecordedConfig::default();
        assert!(empty.into_doc(Path::new("x")).unwrap().is_none());
    }

    #[test]
    fn config_yaml_values_under_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "_wandb:\n  value:\n    cli_version: 0.31.0\nlearning_rate:\n  desc: null\n  value: 0.05\nbatch_size:\n  value: 64\noptimizer:\n  value:\n    name: sgd\n    momentum: 0.9\nlayers:\n  value: [64, 32]\n",
        )
        .unwrap();
        let doc = read_yaml(&path).unwrap().unwrap();
        assert_eq!(
            serde_json::Value::Object(doc.root),
            serde_json::json!({
                "learning_rate": 0.05,
                "batch_size": 64,
                "optimizer": {"name": "sgd", "momentum": 0.9},
                "layers": [64, 32]
            })
        );
        std::fs::write(&path, "learning_rate:\n  value: [0.1\n").unwrap();
        let e = read_yaml(&path).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("config.yaml:"), "{e}");
        std::fs::write(&path, "- 1\n- 2\n").unwrap();
        let e = read_yaml(&path).unwrap_err().to_string();
        assert!(e.contains("not a mapping"), "{e}");
    }
}
