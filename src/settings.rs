//! Where the LLM endpoint, key and model come from: command-line flags, then the
//! environment (`OPENAI_BASE_URL`, `OPENAI_API_KEY`, `RETUNE_MODEL`), then a config file
//! (`./retune.toml`, then `retune.toml` in the user's config directory), first found
//! wins for each value. The key is held in a type whose `Debug` and `Display` never show
//! it, so it cannot leak into output, reports, history, cache files or logs by accident.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::input;

/// Enough for a diagnosis and four changes within the schema's length bounds, with room;
/// llama.cpp's Gemma 3 270M answers in 150–250 tokens.
pub const DEFAULT_MAX_TOKENS: u32 = 800;

/// Largest retune.toml read: it holds one `[llm]` table of three short values, so anything
/// past 64 KiB is not a settings file (and is not read into memory to find out).
const MAX_SETTINGS_BYTES: u64 = 64 * 1024;

/// An API key. Printing it in any form shows `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The key itself, for the one place that sends it: the HTTP request.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The `[llm]` table of retune.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLlm {
    base_url: Option<String>,
    api_key: Option<String>,
    model: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsFile {
    #[serde(default)]
    llm: FileLlm,
}

/// What the user configured, and where each piece came from (for messages and the report;
/// never the key's value).
#[derive(Debug, Clone, Default)]
pub struct LlmSettings {
    pub base_url: Option<String>,
    pub api_key: Option<Secret>,
    pub model: Option<String>,
    /// The config file that supplied something, if any.
    pub file: Option<PathBuf>,
}

impl LlmSettings {
    /// True when an endpoint or a key is configured: `--provider auto` then uses the LLM.
    pub fn configured(&self) -> bool {
        self.base_url.is_some() || self.api_key.is_some()
    }
}

/// The flags' values, the environment and the candidate config files, resolved.
pub fn resolve(
    flag_base_url: Option<&str>,
    flag_model: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    files: &[PathBuf],
) -> Result<LlmSettings> {
    let mut file_values = FileLlm::default();
    let mut file_used = None;
    for path in files {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => {}
        }
        let bytes = input::read_capped(path, "a retune.toml settings file", MAX_SETTINGS_BYTES)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::input(path, "not UTF-8 text; retune.toml is TOML"))?;
        let parsed: SettingsFile =
            toml::from_str(&text).map_err(|e| Error::toml(path, &text, &e))?;
        file_values = parsed.llm;
        file_used = Some(path.clone());
        break;
    }
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let base_url = nonempty(flag_base_url.map(str::to_string))
        .or_else(|| nonempty(env("OPENAI_BASE_URL")))
        .or_else(|| nonempty(file_values.base_url.clone()));
    let api_key = nonempty(env("OPENAI_API_KEY"))
        .or_else(|| nonempty(file_values.api_key.clone()))
        .map(Secret::new);
    let model = nonempty(flag_model.map(str::to_string))
        .or_else(|| nonempty(env("RETUNE_MODEL")))
        .or_else(|| nonempty(file_values.model.clone()));
    let from_file = file_values.base_url.is_some()
        || file_values.api_key.is_some()
        || file_values.model.is_some();
    Ok(LlmSettings {
        base_url,
        api_key,
        model,
        file: file_used.filter(|_| from_file),
    })
}

/// `./retune.toml`, then the user's config directory (`~/.config/retune/retune.toml` on
/// Linux).
pub fn default_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("retune.toml")];
    if let Some(dirs) = directories::ProjectDirs::from("", "", "retune") {
        files.push(dirs.config_dir().join("retune.toml"));
    }
    files
}

/// The process environment, as `resolve` reads it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("retune.toml");
        std::fs::write(
            &file,
            "[llm]\nbase_url = \"http://file/v1\"\nmodel = \"file-model\"\napi_key = \"sk-file\"\n",
        )
        .unwrap();
        let env = env_of(&[
            ("OPENAI_BASE_URL", "http://env/v1"),
            ("RETUNE_MODEL", "env-model"),
        ]);
        let s = resolve(
            Some("http://flag/v1"),
            None,
            &env,
            std::slice::from_ref(&file),
        )
        .unwrap();
        assert_eq!(s.base_url.as_deref(), Some("http://flag/v1"));
        assert_eq!(s.model.as_deref(), Some("env-model"));
        assert_eq!(s.api_key.as_ref().map(Secret::expose), Some("sk-file"));
        assert_eq!(s.file.as_deref(), Some(file.as_path()));
        let s = resolve(None, None, &env_of(&[]), &[file]).unwrap();
        assert_eq!(s.base_url.as_deref(), Some("http://file/v1"));
        assert!(s.configured());
        let s = resolve(None, None, &env_of(&[]), &[dir.path().join("missing.toml")]).unwrap();
        assert!(!s.configured());
    }

    #[test]
    fn the_key_never_prints() {
        let s = Secret::new("sk-live-123");
        assert_eq!(format!("{s} {s:?}"), "[redacted] [redacted]");
        let settings = LlmSettings {
            api_key: Some(s),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("sk-live"));
    }

    #[test]
    fn a_broken_file_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("retune.toml");
        std::fs::write(&file, "[llm]\nbase_url = http://x\n").unwrap();
        let err = resolve(None, None, &env_of(&[]), &[file])
            .unwrap_err()
            .to_string();
        assert!(err.contains("retune.toml:2:"), "{err}");
    }

    #[test]
    fn a_settings_file_that_is_not_a_small_regular_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("retune.toml");
        std::fs::write(
            &file,
            format!("[llm]\nmodel = \"{}\"\n", "m".repeat(70_000)),
        )
        .unwrap();
        let err = resolve(None, None, &env_of(&[]), &[file])
            .unwrap_err()
            .to_string();
        assert!(err.contains("retune reads at most 64 KiB"), "{err}");
        // /dev/zero never ends: refused before a byte is read
        let err = resolve(None, None, &env_of(&[]), &["/dev/zero".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/dev/zero: is a character device"), "{err}");
        // a missing file is still no file
        let missing = dir.path().join("missing.toml");
        assert!(resolve(None, None, &env_of(&[]), &[missing]).is_ok());
    }
}
