//! Answers cached on disk by a hash of what determines them (endpoint, model, response
//! format, messages, schema, token limit), so rerunning the same adjustment costs no
//! tokens. The key is not part of the hash and never stored. `--no-cache` skips it;
//! `RETUNE_CACHE_DIR` moves it (tests use that).
//!
//! Replies arrive redacted from the transport; what looks like a key is redacted again
//! on the way in and out (`crate::untrusted::redact`), so an entry an older retune
//! stored with an echoed key does not bring it back.

use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::transport::{MAX_RESPONSE_BYTES, Reply};

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

    pub fn key(request: &Value, base_url: &str) -> String {
        let mut hash = Sha256::new();
        hash.update(base_url.as_bytes());
        hash.update([0]);
        hash.update(request.to_string().as_bytes());
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A cached reply; a missing, unreadable or oversized entry is a miss, never an error.
    pub fn get(&self, key: &str) -> Option<Reply> {
        let path = self.dir.as_ref()?.join(format!("{key}.json"));
        // No entry we write is larger than the largest body the transport reads.
        let file = std::fs::File::open(path).ok()?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_RESPONSE_BYTES as u64 + 1),
            &mut bytes,
        )
        .ok()?;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return None;
        }
        serde_json::from_slice(&bytes).ok().map(redacted)
    }

    /// Stores a reply; a cache that cannot be written is not worth failing the run for.
    pub fn put(&self, key: &str, reply: &Reply) {
        let Some(dir) = &self.dir else { return };
        if let Ok(text) = serde_json::to_vec(&redacted(reply.clone())) {
            let _ = crate::fsio::write_atomic(&dir.join(format!("{key}.json")), &text);
        }
    }
}
