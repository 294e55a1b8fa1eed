//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz), for what the crate does not
//! export: the config loader and its in-place splice. Not an API: hidden from the docs and
//! free to change with the targets.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

use crate::config::ConfigDoc;

/// Leaves rewritten per input: the check is quadratic in them, and an input with more says
/// nothing the first ones do not.
const MAX_LEAVES_CHECKED: usize = 64;

/// `bytes` written to a file named `name` in a scratch folder of this process (the readers
/// take paths; the folder is reused, one file per name).
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("retune-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder for the fuzz inputs");
        dir
    });
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("scratch file for a fuzz input");
    path
}

/// Loads `path` as a training config; when it loads, rewrites each addressable value (up to
/// `MAX_LEAVES_CHECKED`) in place and checks that the result loads, holds the new value
/// there and every other value as it was. Panics when not, which is what a fuzzer finds.
pub fn config_round_trip(path: &Path) {
    let doc = match ConfigDoc::load(path) {
        Ok(doc) => doc,
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            return;
        }
    };
    let leaves: Vec<(String, Value)> = doc
        .leaves()
        .into_iter()
        .take(MAX_LEAVES_CHECKED)
        .map(|(p, v)| (p, v.clone()))
        .collect();
    let marker = Value::from(0.000123);
    for (target, value) in &leaves {
        // A key holding a dot is not addressable by a dotted path: the path names another
        // value (or none), and retune never proposes it.
        if doc.get(target) != Some(value) {
            continue;
        }
        let text = doc
            .with_changes(&[(target.clone(), marker.clone())])
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let changed = ConfigDoc::parse(path, text.clone())
            .unwrap_or_else(|e| panic!("{target}: the spliced text does not load: {e}\n{text}"));
        assert_eq!(changed.get(target), Some(&marker), "{target}\n{text}");
        for (other, before) in &leaves {
            if other != target && doc.get(other) == Some(before) {
                assert_eq!(
                    changed.get(other),
                    Some(before),
                    "{other} changed when {target} was rewritten\n{text}"
                );
            }
        }
    }
}
