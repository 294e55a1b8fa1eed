//! The parameter space: which config keys are hyperparameters retune may change, their
//! types, bounds and largest step. Everything else in a config is frozen. The catalogue
//! is `configs/space.toml`, built into the binary; `--space FILE` extends or overrides it.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigDoc;
use crate::error::{Error, Result};

const DEFAULT_SPACE: &str = include_str!("../configs/space.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    Float,
    Int,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    Log,
    Linear,
}

/// One catalogue entry, as written in space.toml.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: String,
    pub keys: Vec<String>,
    #[serde(rename = "type")]
    pub kind: ParamType,
    pub min: f64,
    pub max: f64,
    pub scale: Scale,
    #[serde(default)]
    pub max_factor: Option<f64>,
    #[serde(default)]
    pub max_step: Option<f64>,
    #[serde(default = "yes")]
    pub between_epochs: bool,
    /// A decay rate near 1 (EMA decay, Adam betas, momentum), whose meaning is the
    /// horizon 1/(1 − value): 0.9999 → 0.999 is a tenfold change, not a 0.09% one.
    #[serde(default)]
    pub decay: bool,
    #[serde(default)]
    pub description: String,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpaceFile {
    #[serde(default)]
    param: Vec<ParamSpec>,
}

/// A key pattern compiled for matching against the tail of a dotted path.
#[derive(Debug, Clone)]
struct KeyPattern {
    segments: Vec<GlobMatcher>,
}

impl KeyPattern {
    fn new(key: &str) -> std::result::Result<Self, globset::Error> {
        let segments = key
            .split('.')
            .map(|s| {
                GlobBuilder::new(s)
                    .case_insensitive(true)
                    .literal_separator(true)
                    .build()
                    .map(|g| g.compile_matcher())
            })
            .collect::<std::result::Result<_, _>>()?;
        Ok(KeyPattern { segments })
    }

    fn matches(&self, path: &[&str]) -> bool {
        path.len() >= self.segments.len()
            && path[path.len() - self.segments.len()..]
                .iter()
                .zip(&self.segments)
                .all(|(segment, glob)| glob.is_match(segment))
    }
}

#[derive(Debug, Clone)]
pub struct Space {
    /// Shared: every run of a review holds the space, and a clone of the compiled key
    /// patterns costs about 100 KB.
    entries: std::sync::Arc<[(ParamSpec, Vec<KeyPattern>)]>,
}

/// A config value retune may change.
#[derive(Debug, Clone, Serialize)]
pub struct Tunable {
    pub path: String,
    pub value: f64,
    /// The value as the config has it (integer or float).
    pub raw: Value,
    pub spec: ParamSpec,
}

impl Space {
    /// The built-in catalogue, extended or overridden by `user` when given.
    pub fn load(user: Option<&Path>) -> Result<Space> {
        let builtin = parse(Path::new("configs/space.toml (built in)"), DEFAULT_SPACE)?;
        let Some(path) = user else {
            return Space::build(builtin);
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::read(path, &e))?;
        let extra = parse(path, &text)?;
        let mut entries: Vec<ParamSpec> = Vec::new();
        let mut replaced = builtin;
        for spec in extra {
            match replaced.iter_mut().find(|b| b.name == spec.name) {
                Some(slot) => *slot = spec,
                None => entries.push(spec),
            }
        }
        entries.extend(replaced);
        Space::build(entries)
    }

    fn build(specs: Vec<ParamSpec>) -> Result<Space> {
        let mut entries = Vec::with_capacity(specs.len());
        for spec in specs {
            let patterns = spec
                .keys
                .iter()
                .map(|k| KeyPattern::new(k))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| Error::Usage(format!("space entry `{}`: {e}", spec.name)))?;
            entries.push((spec, patterns));
        }
        Ok(Space {
            entries: entries.into(),
        })
    }

    /// The entry a dotted config path belongs to, if any.
    pub fn lookup(&self, path: &str) -> Option<&ParamSpec> {
        let segments: Vec<&str> = path.split('.').collect();
        self.entries
            .iter()
            .find(|(_, patterns)| patterns.iter().any(|p| p.matches(&segments)))
            .map(|(spec, _)| spec)
    }

    pub fn spec(&self, name: &str) -> Option<&ParamSpec> {
        self.entries.iter().map(|(s, _)| s).find(|s| s.name == name)
    }

    /// The config's tunable values, in file order. Only numbers are tunable: a boolean
    /// switch or a string is configuration, not a hyperparameter value.
    pub fn tunables(&self, config: &ConfigDoc) -> Vec<Tunable> {
        config
            .leaves()
            .into_iter()
            .filter_map(|(path, value)| {
                let number = value.as_f64()?;
                let spec = self.lookup(&path)?;
                // A key with a dot in its name (`{"optimizer.lr": 0.1}`) reads as a path
                // that leads nowhere, so it could not be changed: it is not tunable.
                config.get(&path)?;
                Some(Tunable {
                    path,
                    value: number,
                    raw: value.clone(),
                    spec: spec.clone(),
                })
            })
            .collect()
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<ParamSpec>> {
    let file: SpaceFile = toml::from_str(text).map_err(|e| Error::toml(path, text, &e))?;
    for spec in &file.param {
        let problem = if spec.min > spec.max {
            Some("min is above max")
        } else if spec.keys.is_empty() {
            Some("no keys")
        } else if spec.scale == Scale::Log && spec.max_factor.is_none_or(|f| f <= 1.0) {
            Some("a log-scale entry needs max_factor > 1")
        } else if spec.scale == Scale::Linear && spec.max_step.is_none_or(|s| s <= 0.0) {
            Some("a linear-scale entry needs max_step > 0")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::input(
                path,
                format!("entry `{}`: {problem}", spec.name),
            ));
        }
    }
    Ok(file.param)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> Space {
        Space::load(None).unwrap()
    }

    #[test]
    fn a_key_with_a_dot_in_its_name_is_not_tunable() {
        let config = ConfigDoc::parse(
            Path::new("c.json"),
            r#"{"optimizer.lr": 0.1, "optimizer": {"momentum": 0.9}}"#.into(),
        )
        .unwrap();
        let paths: Vec<String> = space()
            .tunables(&config)
            .into_iter()
            .map(|t| t.path)
            .collect();
        assert_eq!(paths, ["optimizer.momentum"]);
    }

    #[test]
    fn the_builtin_catalogue_parses_and_matches_framework_names() {
        let s = space();
        let cases = [
            ("learning_rate", "learning_rate"),
            ("optimizer.lr", "learning_rate"),
            ("per_device_train_batch_size", "batch_size"),
            ("hidden_dropout_prob", "dropout"),
            ("attention_probs_dropout_prob", "dropout"),
            ("optimizer.betas.1", "adam_beta2"),
            ("lr_scheduler.factor", "scheduler_factor"),
            ("lr_scheduler.patience", "scheduler_patience"),
            ("early_stopping_patience", "early_stopping_patience"),
            ("model_ema_decay", "ema_decay"),
            ("num_train_epochs", "epochs"),
            ("min_lr", "min_lr"),
            ("Learning_Rate", "learning_rate"),
        ];
        for (path, want) in cases {
            assert_eq!(
                s.lookup(path).map(|e| e.name.as_str()),
                Some(want),
                "{path}"
            );
        }
        for frozen in [
            "seed",
            "data_dir",
            "num_classes",
            "hidden_size",
            "model_name",
            "step",
        ] {
            assert!(s.lookup(frozen).is_none(), "{frozen}");
        }
    }

    #[test]
    fn only_numbers_are_tunable() {
        let cfg = ConfigDoc::parse(
            Path::new("c.json"),
            r#"{"lr": 0.1, "dropout": "0.1", "warmup_enabled": true, "seed": 1}"#.into(),
        )
        .unwrap();
        let t = space().tunables(&cfg);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].path, "lr");
    }

    #[test]
    fn a_user_file_overrides_and_extends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("space.toml");
        std::fs::write(
            &path,
            r#"
[[param]]
name = "learning_rate"
keys = ["lr"]
type = "float"
min = 1e-6
max = 0.01
scale = "log"
max_factor = 2.0

[[param]]
name = "focal_gamma"
keys = ["focal_gamma"]
type = "float"
min = 0.0
max = 5.0
scale = "linear"
max_step = 1.0
"#,
        )
        .unwrap();
        let s = Space::load(Some(&path)).unwrap();
        assert_eq!(s.spec("learning_rate").unwrap().max, 0.01);
        assert_eq!(s.lookup("focal_gamma").unwrap().name, "focal_gamma");
        assert!(
            s.lookup("learning_rate").is_none(),
            "override replaced the keys"
        );
    }

    #[test]
    fn a_broken_user_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("space.toml");
        std::fs::write(
            &path,
            "[[param]]\nname = \"x\"\nkeys = [\"x\"]\ntype = \"complex\"\n",
        )
        .unwrap();
        let err = Space::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("space.toml:4:"), "{err}");
    }
}
