//! Answers cached on disk by a hash of what determines them (endpoint, model, response
//! format, messages, schema, token limit), so rerunning the same adjustment costs no
//! tokens. The key is not part of the hash and never stored. `--no-cache` skips it;
//! `RETUNE_CACHE_DIR` moves it (tests use that).
//!
//! Replies arrive redacted from the transport; what looks like a key is redacted again
//! on the way in and out (`crate::untrusted::redact`), so an entry an older retune
//! stored with an echoed key does not bring it back.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::transport::{MAX_RESPONSE_BYTES, Reply};
use crate::error::{Error, Result};

/// `reply` with whatever looks like a key taken out of its text.
fn redacted(reply: Reply) -> Reply {
    let clean = |text: &str| crate::untrusted::redact(text, None).into_owned();
    Reply {
        content: clean(&reply.content),
        model: reply.model.as_deref().map(clean),
        ..reply
    }
}

pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    pub fn new(enabled: bool) -> Cache {
        let dir = enabled
            .then(|| {
                std::env::var_os("RETUNE_CACHE_DIR")
                    .map(PathBuf::from)
                    .or_else(|| {
                        directories::ProjectDirs::from("", "", "retune")
                            .map(|d| d.cache_dir().to_path_buf())
                    })
            })
            .flatten()
            .map(|d| d.join("llm"));
        Cache { dir }
    }

    /// Whether answers are read and stored at all.
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    pub fn key(request: &Value, base_url: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(base_url.as_bytes());
        hash.update([0]);
        hash.update(request.to_string().as_bytes());
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A cached reply. A missing entry is a miss; one that cannot be used (not a regular
    /// file, larger than any reply, unreadable, not a reply) is a miss with a warning on
    /// stderr naming it, never an error: the model is asked again and the entry replaced.
    pub fn get(&self, key: &str) -> Option<Reply> {
        let path = self.dir.as_ref()?.join(format!("{key}.json"));
        if !path.exists() {
            return None;
        }
        match read_entry(&path) {
            Ok(reply) => Some(redacted(reply)),
            Err(e) => {
                eprintln!(
                    "warning: {}; the cached answer is ignored and the model asked again",
                    crate::untrusted::printable(&e.to_string())
                );
                None
            }
        }
    }

    /// Stores a reply; a cache that cannot be written is not worth failing the run for.
    pub fn put(&self, key: &str, reply: &Reply) {
        let Some(dir) = &self.dir else { return };
        // Escaped like every JSON file retune writes: a model's controls stay inert in it.
        if let Ok(text) = crate::untrusted::json_string(&redacted(reply.clone())) {
            let _ = crate::fsio::write_atomic(&dir.join(format!("{key}.json")), text.as_bytes());
        }
    }
}

/// The reply stored at `path`, within the input limits: no entry retune writes is larger
/// than the largest body the transport reads (`MAX_RESPONSE_BYTES`), and a named pipe or a
/// device put there must not block or exhaust the run.
fn read_entry(path: &Path) -> Result<Reply> {
    let bytes = crate::input::read_capped(path, WHAT, MAX_RESPONSE_BYTES as u64)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::input(path, format!("is not {WHAT} retune wrote ({e})")))
}

/// What a cache entry is, for the messages.
const WHAT: &str = "an LLM answer cache entry";
