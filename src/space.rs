//! The parameter space: which config keys are hyperparameters retune may change, their
//! types, bounds and largest step. Everything else in a config is frozen. The catalogue
//! is `configs/space.toml`, built into the binary; `--space FILE` extends or overrides it.

use std::path::Path;
use std::sync::{LazyLock, OnceLock};

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigDoc;
use crate::error::{Error, Result};

const DEFAULT_SPACE: &str = include_str!("../configs/space.toml");

/// The largest `--space` file read. It is read whole; the built-in catalogue of every
/// parameter retune knows is 7 KB, so 1 MiB holds a hundred times that and is still no
/// burden to read, while `/dev/zero` or a mistaken log file is refused at once.
pub const MAX_SPACE_BYTES: u64 = 1024 * 1024;

/// The built-in catalogue, parsed once per process and only by a command that needs it:
/// a review's runs share it, and `history` or `revert` never pay for it.
static BUILTIN: LazyLock<std::result::Result<Vec<ParamSpec>, String>> = LazyLock::new(|| {
    parse(Path::new("configs/space.toml (built in)"), DEFAULT_SPACE).map_err(|e| e.to_string())
});

/// The built-in catalogue as a space, its globs compiled as lookups need them, once.
static BUILTIN_SPACE: LazyLock<std::result::Result<Space, String>> = LazyLock::new(|| {
    let specs = BUILTIN.as_ref().map_err(Clone::clone)?;
    Space::build(specs.clone()).map_err(|e| e.to_string())
});

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

/// A key pattern for matching against the tail of a dotted path, one glob a segment.
#[derive(Debug, Clone)]
struct KeyPattern {
    segments: Vec<Segment>,
}

/// One segment of a key pattern. Most are plain names (`learning_rate`), compared as
/// ASCII without case, and the rest use only `*` (`*_dropout`, `*sched*`), matched piece
/// by piece; any other glob syntax goes to the segment's glob, compiled on first use.
/// Compiling the catalogue's hundred-odd globs into regexes up front cost every `suggest`
/// about as much as everything else it does at start-up; merely parsing them into globs
/// was still a quarter of a `suggest --dry-run`'s instructions, and compiling them for a
/// config key in another script (`"划痕": 1.0` among class weights) seven tenths.
#[derive(Debug, Clone)]
enum Segment {
    /// The literal text between the `*`s (one piece for a plain name), when the segment
    /// is ASCII with no other glob syntax and no `/`.
    Pieces(Vec<String>),
    /// A segment with other glob syntax, parsed when the space is loaded (so a malformed
    /// one in a `--space` file is an error there) and compiled on first use.
    Glob {
        glob: Glob,
        matcher: OnceLock<GlobMatcher>,
    },
}

impl Segment {
    fn new(text: &str) -> std::result::Result<Self, globset::Error> {
        let simple = text.is_ascii()
            && !text.contains("**")
            && !text.contains(['?', '[', ']', '{', '}', '\\', '/']);
        if simple {
            return Ok(Segment::Pieces(
                text.split('*').map(str::to_string).collect(),
            ));
        }
        Ok(Segment::Glob {
            glob: GlobBuilder::new(text)
                .case_insensitive(true)
                .literal_separator(true)
                .build()?,
            matcher: OnceLock::new(),
        })
    }

    fn is_match(&self, segment: &str) -> bool {
        match self {
            Segment::Pieces(pieces) => star_match(pieces, segment),
            Segment::Glob { glob, matcher } => matcher
                .get_or_init(|| glob.compile_matcher())
                .is_match(segment),
        }
    }
}

/// Whether `text` is `pieces` joined by runs of anything but `/`, ASCII case aside. One
/// piece is a plain name; with more, the first is a prefix, the last a suffix, and each
/// one between is taken at its leftmost place after the one before (leftmost leaves the
/// most room for the rest, so it finds a match when there is one). Compared as bytes, as
/// the compiled glob does: its case-insensitive match is ASCII's (no non-ASCII character
/// matches an ASCII letter; a test checks it), so a non-ASCII character of `text` can
/// only fall in a run between pieces.
fn star_match(pieces: &[String], text: &str) -> bool {
    let text = text.as_bytes();
    let (first, last) = match pieces {
        [only] => return text.eq_ignore_ascii_case(only.as_bytes()),
        [first, .., last] => (first.as_bytes(), last.as_bytes()),
        [] => return text.is_empty(),
    };
    if text.len() < first.len() + last.len()
        || !text[..first.len()].eq_ignore_ascii_case(first)
        || !text[text.len() - last.len()..].eq_ignore_ascii_case(last)
        || text.contains(&b'/')
    {
        return false;
    }
    let lower = text.to_ascii_lowercase();
    let mut at = first.len();
    let end = text.len() - last.len();
    for piece in &pieces[1..pieces.len() - 1] {
        let piece = piece.to_ascii_lowercase();
        match memchr::memmem::find(&lower[at..end], piece.as_bytes()) {
            Some(i) => at += i + piece.len(),
            None => return false,
        }
    }
    true
}

impl KeyPattern {
    fn new(key: &str) -> std::result::Result<Self, globset::Error> {
        let segments = key
            .split('.')
            .map(Segment::new)
            .collect::<std::result::Result<_, _>>()?;
        Ok(KeyPattern { segments })
    }

    fn matches(&self, path: &[&str]) -> bool {
        path.len() >= self.segments.len()
            && path[path.len() - self.segments.len()..]
                .iter()
                .zip(&self.segments)
                .all(|(segment, pattern)| pattern.is_match(segment))
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
        let builtin_error = |e: &String| Error::Usage(format!("the built-in parameter space: {e}"));
        let Some(path) = user else {
            return BUILTIN_SPACE
                .as_ref()
                .map(Clone::clone)
                .map_err(builtin_error);
        };
        let builtin = BUILTIN.as_ref().map_err(builtin_error)?.clone();
        let bytes = crate::input::read_capped(path, "a parameter space (TOML)", MAX_SPACE_BYTES)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::input(path, format!("is not UTF-8 text: {e}")))?;
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
    fn plain_names_match_exactly_as_their_compiled_globs_do() {
        let keys = [
            "learning_rate",
            "betas",
            "eps",
            "*_dropout",
            "dropout_*",
            "*sched*",
            "reduce_lr*",
            "a*b*c",
            "*",
            "lr",
        ];
        // ASCII in other cases, and non-ASCII letters that Unicode folds onto ASCII ones
        // (the long s and the Kelvin sign), which the compiled glob does not.
        let paths = [
            "learning_rate",
            "LEARNING_RATE",
            "Learning_Rate",
            "learning-rate",
            "betas",
            "eps",
            "ep\u{17F}",
            "EPS",
            "hidden_dropout",
            "lr_scheduler",
            "\u{212A}",
            "lr",
            "l",
            "",
            "é",
            "Hidden_DROPOUT",
            "x/y_dropout",
            "_dropout",
            "dropout_",
            "dropout_rate",
            "lr_scheduler",
            "SCHED",
            "schedule/x",
            "reduce_lr_on_plateau",
            "abc",
            "aXbYc",
            "acb",
            "abcbc",
            "ab",
            "a/b/c",
            // Keys in other scripts (class weights named in Chinese), and letters Unicode
            // folds onto ASCII ones inside names.
            "划痕",
            "学习率",
            "hidden_学_dropout",
            "dropout_率",
            "é_dropout",
            "\u{17F}ched",
            "lr_\u{17F}cheduler",
            "\u{212A}_dropout",
            "learning_rate\u{17F}",
            "a学b学c",
            "a学/c",
            "\u{17F}\u{17F}",
        ];
        for key in keys {
            let segment = Segment::new(key).unwrap();
            let glob = GlobBuilder::new(key)
                .case_insensitive(true)
                .literal_separator(true)
                .build()
                .unwrap()
                .compile_matcher();
            for path in paths {
                assert_eq!(
                    segment.is_match(path),
                    glob.is_match(path),
                    "{key} vs {path}"
                );
            }
        }
    }

    #[test]
    fn no_character_beyond_ascii_matches_an_ascii_letter() {
        // What `star_match` relies on: the compiled case-insensitive globs fold ASCII
        // case only (not, say, the long s onto s or the Kelvin sign onto k).
        let letter = GlobBuilder::new("[a-z]")
            .case_insensitive(true)
            .build()
            .unwrap()
            .compile_matcher();
        let folding: Vec<char> = (0x80..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| letter.is_match(c.to_string()))
            .collect();
        assert_eq!(folding, Vec::<char>::new());
    }

    #[test]
    fn a_space_file_is_read_within_its_limit_and_only_if_regular() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("space.toml");
        let mut text = String::from("# padding\n");
        while (text.len() as u64) <= MAX_SPACE_BYTES {
            text.push_str("# a comment line that only takes room in the file, nothing more\n");
        }
        std::fs::write(&big, &text).unwrap();
        let err = Space::load(Some(&big)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let message = err.to_string();
        assert!(
            message.contains("space.toml") && message.contains("at most 1 MiB"),
            "{message}"
        );
        let err = Space::load(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        #[cfg(unix)]
        {
            let err = Space::load(Some(Path::new("/dev/zero")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("/dev/zero: is a character device"), "{err}");
        }
        std::fs::write(&big, b"\xff\xfe[[param]]").unwrap();
        let err = Space::load(Some(&big)).unwrap_err().to_string();
        assert!(err.contains("not UTF-8"), "{err}");
    }

    #[test]
    fn a_malformed_key_glob_is_refused_when_the_space_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("space.toml");
        std::fs::write(
            &path,
            "[[param]]\nname = \"x\"\nkeys = [\"opt.x[ab\"]\ntype = \"float\"\nmin = 0.0\nmax = 1.0\nscale = \"linear\"\nmax_step = 0.1\n",
        )
        .unwrap();
        let err = Space::load(Some(&path)).unwrap_err().to_string();
        assert!(err.contains("space entry `x`"), "{err}");
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
