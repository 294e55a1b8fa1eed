//! A run's memory between calls: one JSON line per adjustment in `history.jsonl`. The
//! rules advisor reads it for cooldowns and to avoid undoing its own changes; the report
//! reads it to say what followed each earlier adjustment. Appends hold an exclusive file
//! lock so two `suggest` processes on one run never interleave lines.

use std::io::{BufRead, Write};
use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::num::number_from_json;
use crate::types::Action;
use crate::types::Diagnosis;

/// One changed value, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryChange {
    pub parameter: String,
    #[serde(default)]
    pub canonical: String,
    pub old: Value,
    pub new: Value,
}

/// One line of the history file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub time: String,
    pub adjustment_id: String,
    /// Last complete epoch in the metrics when the adjustment was made.
    pub epoch: Option<u32>,
    pub provider: String,
    pub config: String,
    #[serde(default)]
    pub config_out: Option<String>,
    #[serde(default)]
    pub changes: Vec<HistoryChange>,
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub findings: Vec<String>,
    /// Last-epoch value of each canonical series; non-finite values as strings ("NaN").
    #[serde(default)]
    pub metrics: IndexMap<String, Value>,
    /// The whole config text before the change, kept when the config was edited in place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_before: Option<String>,
    /// For a `retune revert` line: the adjustments it undid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reverts: Vec<String>,
}

impl HistoryEntry {
    /// A recorded metric as a number (non-finite strings read back as NaN/inf).
    pub fn metric(&self, name: &str) -> Option<f64> {
        number_from_json(self.metrics.get(name)?)
    }
}

/// A divergence overrides a cooldown, but only one seen in epochs after the change: the
/// same log read twice is no new evidence, and cutting twice for it would compound.
pub fn diverged_since(diagnosis: &Diagnosis, change_epoch: u32) -> bool {
    diagnosis
        .get(crate::types::FindingId::Divergence)
        .and_then(|f| f.evidence.get("epoch"))
        .and_then(serde_json::Value::as_u64)
        .is_some_and(|epoch| epoch > u64::from(change_epoch))
}

/// The epoch of the latest change to `path` if it is still within the cooldown at epoch
/// `now` (the run's last complete epoch).
pub fn in_cooldown(entries: &[HistoryEntry], path: &str, now: u32) -> Option<u32> {
    last_change(entries, path)
        .and_then(|(entry, _)| entry.epoch)
        .filter(|&epoch| now < epoch + COOLDOWN_EPOCHS)
}

/// Epochs a changed parameter is left alone, so its effect can show before it moves
/// again (a between-epoch loop otherwise flip-flops). Divergence overrides it.
pub const COOLDOWN_EPOCHS: u32 = 2;

/// The latest epoch the trainer rolled back from: a history line whose decision asked to
/// restore a checkpoint or restart. Epochs up to it are not what the run's weights came
/// from.
pub fn rolled_back_through(entries: &[HistoryEntry]) -> Option<u32> {
    entries
        .iter()
        .filter(|e| {
            e.actions
                .iter()
                .any(|a| matches!(a, Action::RestoreCheckpoint | Action::Restart))
        })
        .filter_map(|e| e.epoch)
        .max()
}

/// The latest recorded change to `parameter`, with the history line it is on.
pub fn last_change<'a>(
    entries: &'a [HistoryEntry],
    parameter: &str,
) -> Option<(&'a HistoryEntry, &'a HistoryChange)> {
    entries.iter().rev().find_map(|e| {
        e.changes
            .iter()
            .find(|c| c.parameter == parameter)
            .map(|c| (e, c))
    })
}

/// Reads a history file; a missing file is an empty history (the first call of a run).
pub fn read(path: &Path) -> Result<Vec<HistoryEntry>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::read(path, &e)),
    };
    let mut entries = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::read(path, &e))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: HistoryEntry = serde_json::from_str(&line).map_err(|e| {
            Error::at(
                path,
                i as u64 + 1,
                Some(e.column() as u64),
                format!("not a retune history line: {e}"),
            )
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Appends one entry under an exclusive lock, as a single write of a whole line.
pub fn append(path: &Path, entry: &HistoryEntry) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
    }
    let mut line =
        serde_json::to_string(entry).map_err(|e| Error::write(path, std::io::Error::other(e)))?;
    line.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    file.lock().map_err(|e| Error::write(path, e))?;
    let result = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_data());
    // The lock is released when `file` drops, after the data is on disk.
    result.map_err(|e| Error::write(path, e))
}

/// A recorded adjustment for tests: made by the rules at `epoch` on `c.json`, each change
/// `(parameter, canonical, old, new)`, each metric as `number_to_json` records it.
#[cfg(test)]
pub fn entry(
    epoch: Option<u32>,
    changes: &[(&str, &str, f64, f64)],
    findings: &[&str],
    metrics: &[(&str, f64)],
) -> HistoryEntry {
    HistoryEntry {
        time: "2026-01-01T00:00:00Z".into(),
        adjustment_id: "adj-1".into(),
        epoch,
        provider: "rules".into(),
        config: "c.json".into(),
        config_out: None,
        changes: changes
            .iter()
            .map(|&(parameter, canonical, old, new)| HistoryChange {
                parameter: parameter.into(),
                canonical: canonical.into(),
                old: Value::from(old),
                new: Value::from(new),
            })
            .collect(),
        actions: vec![],
        findings: findings.iter().map(|f| f.to_string()).collect(),
        metrics: metrics
            .iter()
            .map(|&(name, value)| (name.to_string(), crate::num::number_to_json(value)))
            .collect(),
        config_before: None,
        reverts: vec![],
    }
}

/// What `retune revert` will do: which file, the text to write, and the adjustments it
/// undoes (newest first).
#[derive(Debug, Clone)]
pub struct RevertPlan {
    pub file: std::path::PathBuf,
    pub text: String,
    pub undone: Vec<String>,
    /// Values put back, newest adjustment first: (parameter, canonical, from, to).
    pub restored: Vec<HistoryChange>,
    pub epoch: Option<u32>,
}

/// Plans undoing adjustment `to` (default: the latest) and every later one on the same
/// file. The config's text before `to` comes from the history when it was kept (an
/// in-place edit), else by splicing the recorded old values back into the file as it is
/// now, after checking that nobody changed those values since (`force` skips the check).
pub fn plan_revert(
    history_path: &Path,
    entries: &[HistoryEntry],
    to: Option<&str>,
    force: bool,
) -> Result<RevertPlan> {
    let applied: Vec<&HistoryEntry> = entries
        .iter()
        .filter(|e| !e.changes.is_empty() && e.reverts.is_empty())
        .collect();
    let undone_ids: Vec<&str> = entries
        .iter()
        .flat_map(|e| e.reverts.iter().map(String::as_str))
        .collect();
    let live: Vec<&HistoryEntry> = applied
        .into_iter()
        .filter(|e| !undone_ids.contains(&e.adjustment_id.as_str()))
        .collect();
    let index = match to {
        Some(id) => live.iter().position(|e| e.adjustment_id == id).ok_or_else(|| {
            let known: Vec<&str> = live.iter().rev().take(5).map(|e| e.adjustment_id.as_str()).collect();
            Error::input(
                history_path,
                format!(
                    "no adjustment `{id}` that changed the config and is not already reverted; the latest are: {}",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            )
        })?,
        None => live
            .len()
            .checked_sub(1)
            .ok_or_else(|| Error::input(history_path, "no adjustment that changed the config to revert"))?,
    };
    let target = live[index];
    let file = std::path::PathBuf::from(
        target
            .config_out
            .clone()
            .unwrap_or_else(|| target.config.clone()),
    );
    let same_file =
        |e: &&&HistoryEntry| e.config_out.as_deref().unwrap_or(&e.config) == file.to_string_lossy();
    let undo: Vec<&HistoryEntry> = live[index..]
        .iter()
        .filter(same_file)
        .rev()
        .copied()
        .collect();
    let restored: Vec<HistoryChange> = undo
        .iter()
        .flat_map(|e| {
            e.changes.iter().map(|c| HistoryChange {
                old: c.new.clone(),
                new: c.old.clone(),
                ..c.clone()
            })
        })
        .collect();
    let text = match &target.config_before {
        Some(before) => before.clone(),
        None => {
            let doc = crate::config::ConfigDoc::load(&file)?;
            if !force {
                let mut checked: Vec<&str> = Vec::new();
                for e in &undo {
                    // Only the newest change of each parameter says what it holds now.
                    for c in &e.changes {
                        if checked.contains(&c.parameter.as_str()) {
                            continue;
                        }
                        checked.push(&c.parameter);
                        let now = doc.get(&c.parameter);
                        let same = match (now.and_then(Value::as_f64), c.new.as_f64()) {
                            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1e-300),
                            _ => now == Some(&c.new),
                        };
                        if !same {
                            return Err(Error::input(
                                &file,
                                format!(
                                    "`{}` is {} now, but adjustment {} set it to {}: it was changed since, and reverting would overwrite that; use --force to revert anyway",
                                    c.parameter,
                                    now.map_or("missing".to_string(), |v| v.to_string()),
                                    e.adjustment_id,
                                    c.new
                                ),
                            ));
                        }
                    }
                }
            }
            // Oldest values win: undo newest first, so each path ends at the value it had
            // before `to`.
            let mut values: Vec<(String, Value)> = Vec::new();
            for c in &restored {
                match values.iter_mut().find(|(p, _)| *p == c.parameter) {
                    Some(slot) => slot.1 = c.new.clone(),
                    None => values.push((c.parameter.clone(), c.new.clone())),
                }
            }
            doc.with_changes(&values)?
        }
    };
    Ok(RevertPlan {
        file,
        text,
        undone: undo.iter().map(|e| e.adjustment_id.clone()).collect(),
        restored,
        epoch: entries.iter().filter_map(|e| e.epoch).max(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_with_id(id: &str) -> HistoryEntry {
        HistoryEntry {
            adjustment_id: id.into(),
            ..entry(
                Some(2),
                &[("lr", "learning_rate", 0.3, 0.03)],
                &["divergence"],
                &[("loss", f64::NAN)],
            )
        }
    }

    #[test]
    fn round_trips_and_keeps_nan_as_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/history.jsonl");
        assert!(read(&path).unwrap().is_empty());
        append(&path, &entry_with_id("a")).unwrap();
        append(&path, &entry_with_id("b")).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].adjustment_id, "b");
        assert!(back[0].metric("loss").unwrap().is_nan());
    }

    #[test]
    fn a_corrupt_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::fs::write(&path, "{\"time\": 1}\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("history.jsonl:1:"), "{err}");
    }

    #[test]
    fn revert_undoes_an_adjustment_and_every_later_one_on_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.json");
        std::fs::write(&config, "{\"lr\": 0.01, \"dropout\": 0.2, \"seed\": 1}\n").unwrap();
        let at = |id: &str, epoch, changes: &[(&str, &str, f64, f64)]| HistoryEntry {
            adjustment_id: id.into(),
            config_out: Some(config.display().to_string()),
            ..entry(Some(epoch), changes, &[], &[])
        };
        let entries = vec![
            at("a", 2, &[("lr", "learning_rate", 0.3, 0.03)]),
            at(
                "b",
                5,
                &[
                    ("lr", "learning_rate", 0.03, 0.01),
                    ("dropout", "dropout", 0.1, 0.2),
                ],
            ),
        ];
        let h = dir.path().join("h.jsonl");
        let latest = plan_revert(&h, &entries, None, false).unwrap();
        assert_eq!(latest.undone, ["b"]);
        assert_eq!(
            latest.text,
            "{\"lr\": 0.03, \"dropout\": 0.1, \"seed\": 1}\n"
        );
        let both = plan_revert(&h, &entries, Some("a"), false).unwrap();
        assert_eq!(both.undone, ["b", "a"]);
        assert_eq!(both.text, "{\"lr\": 0.3, \"dropout\": 0.1, \"seed\": 1}\n");
        // Once reverted, an adjustment is not offered again.
        std::fs::write(&config, &latest.text).unwrap();
        let mut after = entries.clone();
        after.push(HistoryEntry {
            reverts: vec!["b".into()],
            ..at("rev", 5, &[("lr", "learning_rate", 0.01, 0.03)])
        });
        assert_eq!(plan_revert(&h, &after, None, false).unwrap().undone, ["a"]);
    }
}
