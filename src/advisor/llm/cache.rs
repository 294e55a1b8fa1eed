//! Answers cached on disk by a hash of what determines them (endpoint, model, response
//! format, messages, schema, token limit), so rerunning the same adjustment costs no
//! tokens. The key is not part of the hash and never stored. `--no-cache` skips it;
//! `RETUNE_CACHE_DIR` moves it (tests use that).

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::transport::Reply;

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

    pub fn key(request: &Value, base_url: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(base_url.as_bytes());
        hash.update([0]);
        hash.update(request.to_string().as_bytes());
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A cached reply; a missing or unreadable entry is a miss, never an error.
    pub fn get(&self, key: &str) -> Option<Reply> {
        let path = self.dir.as_ref()?.join(format!("{key}.json"));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Stores a reply; a cache that cannot be written is not worth failing the run for.
    pub fn put(&self, key: &str, reply: &Reply) {
        let Some(dir) = &self.dir else { return };
        if let Ok(text) = serde_json::to_vec(reply) {
            let _ = crate::fsio::write_atomic(&dir.join(format!("{key}.json")), &text);
        }
    }
}
