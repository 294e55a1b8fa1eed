//! A run's memory between calls: one JSON line per adjustment in `history.jsonl`. The
//! rules advisor reads it for cooldowns and to avoid undoing its own changes; the report
//! reads it to say what followed each earlier adjustment. Appends hold an exclusive file
//! lock so two `suggest` processes on one run never interleave lines.
//!
//! The history says what was *applied*, not only what was proposed. On disk a line is
//! one of:
//! - an adjustment (as always); one that replaces a config in place is written *before*
//!   the config, with `"state": "pending"` and the config's old text, so the old text is
//!   on disk whatever moment the call is killed at;
//! - a follow-up `{"time", "adjustment_id", "state": "applied"}` that `suggest` writes
//!   once the config is replaced;
//! - a follow-up `{"time", "adjustment_id", "state": "live", "applied": [parameters]}`
//!   from a trainer (`retune applied`) naming the changes it could make to the running
//!   job; the others reached the config only.
//!
//! `read` folds the follow-ups into their adjustments (`settle`): `changes` keeps what was
//! applied, `not_applied` the rest. Whether a change without a follow-up was applied is
//! told by the config the trainer reads: the next recorded change of the parameter found
//! the new value there as its `old`, or, when there is none, the config holds it now.

use std::io::{BufRead, Read, Write};
use std::path::Path;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigDoc;
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

/// Where an adjustment stands, as a line on disk says it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Written before the config was replaced; a later `applied` line, or the config
    /// itself, says whether it was.
    Pending,
    /// Follow-up: the config was replaced.
    Applied,
    /// Follow-up from a trainer: `applied` names the changes the running job took.
    Live,
}

/// One line of the history file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub time: String,
    pub adjustment_id: String,
    /// Last complete epoch in the metrics when the adjustment was made.
    #[serde(default)]
    pub epoch: Option<u32>,
    #[serde(default)]
    pub provider: String,
    #[serde(default)]
    pub config: String,
    #[serde(default)]
    pub config_out: Option<String>,
    /// As written: the changes made to the config. As `read` returns it: the ones
    /// applied (in the config the trainer reads, and taken live when a trainer said).
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
    /// Pending on an adjustment line; `applied` or `live` on a follow-up line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
    /// On a `live` follow-up: the parameters the running job took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Vec<String>>,
    /// Set by `read`, never written: changes proposed but not applied (not in the config
    /// the next call read, or not taken by the running job).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applied: Vec<HistoryChange>,
    /// Set by `read`: the file this line wrote (`config_out`) holds what it wrote, so
    /// `revert` has something to undo, whether or not it was applied.
    #[serde(skip)]
    pub written: bool,
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

/// The longest history line read. A line holds the whole config text before an in-place
/// change (`config_before`, at most `MAX_CONFIG_BYTES`, which JSON's escapes of quotes,
/// backslashes and line breaks can at most double) beside the changes, findings and
/// metrics, which take a few KB; anything longer was not written by retune, and reading
/// it whole could exhaust memory.
pub const MAX_LINE_BYTES: u64 = 2 * crate::config::MAX_CONFIG_BYTES + (1 << 20);

/// How many adjustments, newest first, a decision reads (`read`). What a decision asks
/// of the history is recent: a cooldown lasts `COOLDOWN_EPOCHS`, the prompt shows the
/// last few adjustments, and a change is judged applied by the next one. A trainer that
/// calls `suggest` every epoch of a 1,000-epoch run would otherwise parse its whole
/// history, and measure the effect of every earlier adjustment, on every call (about
/// 2.5 ms per 1,000 lines). 100 adjustments is 50 cooldowns; `retune history` and
/// `retune revert` still read every line (`read_all`).
pub const RECENT_ADJUSTMENTS: usize = 100;

/// Bytes read at a time from the end of a history file.
const TAIL_BLOCK: usize = 64 * 1024;

/// What a decision needs of a history file: its latest `RECENT_ADJUSTMENTS` adjustments
/// and the follow-ups after them, read from the end of the file backwards and settled
/// (see the module's comment); a missing file is an empty history (the first call of a
/// run).
pub fn read(path: &Path) -> Result<Vec<HistoryEntry>> {
    Ok(settle(read_recent_lines(path, RECENT_ADJUSTMENTS)?))
}

/// Every adjustment of a history file, settled: for `retune history` and `revert`.
pub fn read_all(path: &Path) -> Result<Vec<HistoryEntry>> {
    Ok(settle(read_lines(path)?))
}

/// Opens a history file; `None` when there is none yet.
fn open(path: &Path) -> Result<Option<std::fs::File>> {
    if matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    crate::input::open_regular(path, "a retune history (history.jsonl)").map(Some)
}

/// One line of the file as an entry; `number` counts from 1.
fn parse_line(path: &Path, number: u64, line: &[u8]) -> Result<HistoryEntry> {
    serde_json::from_slice(line).map_err(|e| {
        Error::at(
            path,
            number,
            Some(e.column() as u64),
            format!("not a retune history line: {e}"),
        )
    })
}

fn too_long(path: &Path, number: u64) -> Error {
    Error::at(
        path,
        number,
        None,
        format!(
            "the line is longer than {}, the most a retune history line holds (MAX_LINE_BYTES); this is not a history retune wrote",
            crate::input::size_text(MAX_LINE_BYTES)
        ),
    )
}

fn blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The lines of a history file as written, follow-ups included.
pub fn read_lines(path: &Path) -> Result<Vec<HistoryEntry>> {
    let Some(file) = open(path)? else {
        return Ok(Vec::new());
    };
    let mut reader = std::io::BufReader::new(file);
    let mut entries = Vec::new();
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::read(path, &e))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if line.len() as u64 > MAX_LINE_BYTES {
            return Err(too_long(path, number));
        }
        if !blank(&line) {
            entries.push(parse_line(path, number, &line)?);
        }
    }
    Ok(entries)
}

/// The last lines of a history file, in file order, back to its `adjustments`-th
/// adjustment from the end (follow-ups after it included): read backwards a block at a
/// time, so the cost is that of the lines kept, not of the file.
fn read_recent_lines(path: &Path, adjustments: usize) -> Result<Vec<HistoryEntry>> {
    use std::io::{Seek, SeekFrom};
    let Some(mut file) = open(path)? else {
        return Ok(Vec::new());
    };
    let len = file.metadata().map_err(|e| Error::read(path, &e))?.len();
    let mut kept: Vec<HistoryEntry> = Vec::new();
    let mut found = 0;
    // Bytes before `start` are unread; `tail` holds those from `start` to the end of the
    // line being cut.
    let mut start = len;
    let mut tail: Vec<u8> = Vec::new();
    // Lines are counted from the end while reading (the empty one after a final newline
    // is 1); their numbers from the start are only needed for a message, and then counted.
    let mut from_end = 0u64;
    let mut failure = None;
    'read: while start > 0 {
        // At least as much again as the line being cut, so a long line is read in a few
        // steps rather than copied once per block.
        let step = (start as usize).min(TAIL_BLOCK.max(tail.len()));
        start -= step as u64;
        let mut block = vec![0; step];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut block))
            .map_err(|e| Error::read(path, &e))?;
        block.extend_from_slice(&tail);
        tail = block;
        // Every line with a newline before it is whole.
        while let Some(newline) = tail.iter().rposition(|&b| b == b'\n') {
            let line = tail.split_off(newline + 1);
            tail.pop();
            from_end += 1;
            failure = take_line(&line, &mut kept, &mut found);
            if failure.is_some() || found >= adjustments {
                break 'read;
            }
        }
        if tail.len() as u64 > MAX_LINE_BYTES {
            from_end += 1;
            failure = Some(Failure::TooLong);
            break;
        }
    }
    if start == 0 && failure.is_none() && found < adjustments && !tail.is_empty() {
        // The first line of the file.
        from_end += 1;
        failure = take_line(&tail, &mut kept, &mut found);
    }
    if let Some(failure) = failure {
        let number = number_from_start(path, from_end)?;
        return Err(match failure {
            Failure::TooLong => too_long(path, number),
            Failure::NotJson(line) => match parse_line(path, number, &line) {
                Err(e) => e,
                Ok(_) => Error::at(path, number, None, "not a retune history line"),
            },
        });
    }
    kept.reverse();
    Ok(kept)
}

/// Why a line read backwards could not be kept; its number is counted afterwards.
enum Failure {
    TooLong,
    NotJson(Vec<u8>),
}

/// Parses one line read backwards into `kept`, counting adjustments.
fn take_line(line: &[u8], kept: &mut Vec<HistoryEntry>, found: &mut usize) -> Option<Failure> {
    if line.len() as u64 > MAX_LINE_BYTES {
        return Some(Failure::TooLong);
    }
    if blank(line) {
        return None;
    }
    match serde_json::from_slice::<HistoryEntry>(line) {
        Ok(entry) => {
            if !is_follow_up(&entry) {
                *found += 1;
            }
            kept.push(entry);
            None
        }
        Err(_) => Some(Failure::NotJson(line.to_vec())),
    }
}

/// The number from the start of the line that is `from_end`-th from the end, counting
/// the (possibly empty) text after the last newline as the last line.
fn number_from_start(path: &Path, from_end: u64) -> Result<u64> {
    let Some(file) = open(path)? else {
        return Ok(from_end);
    };
    let mut reader = std::io::BufReader::new(file);
    let mut newlines = 0u64;
    loop {
        let buf = reader.fill_buf().map_err(|e| Error::read(path, &e))?;
        if buf.is_empty() {
            break;
        }
        newlines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        let n = buf.len();
        reader.consume(n);
    }
    Ok((newlines + 2).saturating_sub(from_end).max(1))
}

fn is_follow_up(e: &HistoryEntry) -> bool {
    matches!(e.state, Some(State::Applied | State::Live))
}

/// Two recorded values are the same value (numbers to a relative 1e-9, as a config
/// written and read back may differ in the last digit).
pub fn same_value(now: Option<&Value>, recorded: &Value) -> bool {
    match (now.and_then(Value::as_f64), recorded.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1e-300),
        _ => now == Some(recorded),
    }
}

/// Folds the follow-up lines into their adjustments and splits each adjustment's changes
/// into applied (`changes`) and not (`not_applied`).
pub fn settle(lines: Vec<HistoryEntry>) -> Vec<HistoryEntry> {
    let (follow_ups, mut entries): (Vec<HistoryEntry>, Vec<HistoryEntry>) =
        lines.into_iter().partition(is_follow_up);
    let confirmed: std::collections::HashSet<&str> = follow_ups
        .iter()
        .filter(|f| f.state == Some(State::Applied))
        .map(|f| f.adjustment_id.as_str())
        .collect();
    // The latest word of the trainer on each adjustment.
    let live: std::collections::HashMap<&str, Vec<String>> = follow_ups
        .iter()
        .filter(|f| f.state == Some(State::Live))
        .map(|f| {
            (
                f.adjustment_id.as_str(),
                f.applied.clone().unwrap_or_default(),
            )
        })
        .collect();
    let mut configs: std::collections::HashMap<String, Option<ConfigDoc>> = Default::default();
    // Whether every change of a line reached the config the trainer reads: the next
    // recorded change of its parameter found the new value as its old one, or, with
    // none, the config holds it now. Judged newest first, keeping for each parameter the
    // old value the nearest later change found, so a long history is read in one pass.
    let mut next_old: std::collections::HashMap<String, Value> = Default::default();
    let mut judged: Vec<(bool, bool)> = vec![(true, true); entries.len()];
    for (i, e) in entries.iter().enumerate().rev() {
        if e.changes.is_empty() || !e.reverts.is_empty() {
            for c in &e.changes {
                next_old.insert(c.parameter.clone(), c.old.clone());
            }
            continue;
        }
        let mut reached = || {
            let config = configs
                .entry(e.config.clone())
                .or_insert_with(|| ConfigDoc::load(Path::new(&e.config)).ok());
            e.changes.iter().all(|c| {
                match (next_old.get(&c.parameter), config.as_ref()) {
                    (Some(later), _) => same_value(Some(later), &c.new),
                    (None, Some(doc)) => same_value(doc.get(&c.parameter), &c.new),
                    // The config cannot be read here (moved, or the path was relative to
                    // another folder): keep the line as it was written.
                    (None, None) => true,
                }
            })
        };
        let in_place = e.config_out.as_deref().is_none_or(|out| out == e.config);
        judged[i] = if in_place {
            // A line from before pending lines existed was written after its config; a
            // pending one without its follow-up only if the config says so.
            let written =
                e.state.is_none() || confirmed.contains(e.adjustment_id.as_str()) || reached();
            (written, written)
        } else {
            // Written after the separate output; applied once the config has it.
            (true, reached())
        };
        for c in &e.changes {
            next_old.insert(c.parameter.clone(), c.old.clone());
        }
    }
    for (e, (written, applied)) in entries.iter_mut().zip(judged) {
        e.written = written;
        if !applied {
            e.not_applied = std::mem::take(&mut e.changes);
        } else if let Some(taken) = live.get(e.adjustment_id.as_str()) {
            let (took, not): (Vec<_>, Vec<_>) = std::mem::take(&mut e.changes)
                .into_iter()
                .partition(|c| taken.contains(&c.parameter));
            e.changes = took;
            e.not_applied = not;
        }
    }
    entries
}

/// An open, locked history file that lines are appended to, one whole line a write,
/// each on disk before the call returns. The lock is held until it drops, so the lines
/// of one call (pending, then applied) are not interleaved with another's.
pub struct Appender {
    path: std::path::PathBuf,
    file: std::fs::File,
    /// The file did not exist before: removing it undoes everything this call wrote.
    pub created: bool,
}

impl Appender {
    pub fn open(path: &Path) -> Result<Appender> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::write(dir, e))?;
        }
        let created = !path.exists();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::write(path, e))?;
        file.lock().map_err(|e| Error::write(path, e))?;
        if created {
            crate::fsio::sync_dir(&crate::fsio::resolve(path));
        }
        Ok(Appender {
            path: path.to_path_buf(),
            file,
            created,
        })
    }

    pub fn append(&mut self, entry: &HistoryEntry) -> Result<()> {
        // A follow-up is written with its own four fields only, not an adjustment's
        // empty ones.
        let line = if is_follow_up(entry) {
            let mut fields = serde_json::json!({
                "time": entry.time,
                "adjustment_id": entry.adjustment_id,
                "state": entry.state,
            });
            if let Some(applied) = &entry.applied {
                fields["applied"] = serde_json::json!(applied);
            }
            crate::untrusted::json_string(&fields)
        } else {
            crate::untrusted::json_string(entry)
        };
        let mut line = line.map_err(|e| Error::write(&self.path, std::io::Error::other(e)))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::write(&self.path, e))
    }

    /// Removes the file if this call created it and wrote nothing that must stay.
    pub fn discard_if_created(self) {
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Appends one entry under an exclusive lock, as a single write of a whole line.
pub fn append(path: &Path, entry: &HistoryEntry) -> Result<()> {
    Appender::open(path)?.append(entry)
}

/// A follow-up line for adjustment `id`: `state` applied (the config was replaced), or
/// live with the parameters the running job took.
pub fn follow_up(
    id: &str,
    time: String,
    state: State,
    applied: Option<Vec<String>>,
) -> HistoryEntry {
    HistoryEntry {
        time,
        adjustment_id: id.to_string(),
        epoch: None,
        provider: String::new(),
        config: String::new(),
        config_out: None,
        changes: Vec::new(),
        actions: Vec::new(),
        findings: Vec::new(),
        metrics: IndexMap::new(),
        config_before: None,
        reverts: Vec::new(),
        state: Some(state),
        applied,
        not_applied: Vec::new(),
        written: true,
    }
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
        state: None,
        applied: None,
        not_applied: vec![],
        written: true,
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
    // What the config file got, whether or not the running job took all of it: revert
    // puts the file back.
    let applied: Vec<&HistoryEntry> = entries
        .iter()
        .filter(|e| e.written && e.reverts.is_empty())
        .filter(|e| !e.changes.is_empty() || !e.not_applied.is_empty())
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
            e.changes
                .iter()
                .chain(&e.not_applied)
                .map(|c| HistoryChange {
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
                    for c in e.changes.iter().chain(&e.not_applied) {
                        if checked.contains(&c.parameter.as_str()) {
                            continue;
                        }
                        checked.push(&c.parameter);
                        let now = doc.get(&c.parameter);
                        if !same_value(now, &c.new) {
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

    /// An adjustment of `lr` 0.3 → 0.03 on `config` (in place unless `out` differs).
    fn change_line(id: &str, config: &Path, out: &Path, state: Option<State>) -> HistoryEntry {
        HistoryEntry {
            adjustment_id: id.into(),
            config: config.display().to_string(),
            config_out: Some(out.display().to_string()),
            state,
            ..entry(Some(3), &[("lr", "learning_rate", 0.3, 0.03)], &[], &[])
        }
    }

    #[test]
    fn a_pending_line_is_applied_exactly_when_the_config_holds_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.json");
        let pending = || vec![change_line("a", &config, &config, Some(State::Pending))];
        std::fs::write(&config, r#"{"lr": 0.3}"#).unwrap();
        let settled = settle(pending());
        assert!(settled[0].changes.is_empty() && !settled[0].written);
        assert_eq!(settled[0].not_applied.len(), 1);
        std::fs::write(&config, r#"{"lr": 0.03}"#).unwrap();
        let settled = settle(pending());
        assert_eq!(settled[0].changes.len(), 1);
        assert!(settled[0].written);
        // Confirmed, it counts whatever the config says now (a hand edit since).
        std::fs::write(&config, r#"{"lr": 0.5}"#).unwrap();
        let mut lines = pending();
        lines.push(follow_up("a", "t".into(), State::Applied, None));
        let settled = settle(lines);
        assert_eq!(settled.len(), 1);
        assert_eq!(settled[0].changes.len(), 1);
    }

    #[test]
    fn a_separate_output_counts_once_the_next_call_found_its_value() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.json");
        let out = dir.path().join("c.retuned.json");
        std::fs::write(&config, r#"{"lr": 0.03}"#).unwrap();
        // The next call read 0.3: the first suggestion was not applied, though the
        // config holds 0.03 now (the second one was).
        let second = HistoryEntry {
            changes: vec![HistoryChange {
                parameter: "lr".into(),
                canonical: "learning_rate".into(),
                old: Value::from(0.3),
                new: Value::from(0.03),
            }],
            ..change_line("b", &config, &out, None)
        };
        let settled = settle(vec![change_line("a", &config, &out, None), second]);
        assert!(settled[0].changes.is_empty() && settled[0].written);
        assert_eq!(settled[1].changes.len(), 1);
    }

    #[test]
    fn a_live_record_keeps_only_what_the_job_took() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("c.json");
        let mut line = change_line("a", &config, &config, None);
        line.changes.push(HistoryChange {
            parameter: "momentum".into(),
            canonical: "momentum".into(),
            old: Value::from(0.0),
            new: Value::from(0.9),
        });
        let settled = settle(vec![
            line,
            follow_up("a", "t".into(), State::Live, Some(vec!["lr".into()])),
        ]);
        assert_eq!(settled[0].changes[0].parameter, "lr");
        assert_eq!(settled[0].not_applied[0].parameter, "momentum");
        // Not applied live, yet in the file: revert still undoes it.
        assert!(settled[0].written);
    }

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

    /// `n` adjustments `a0`… at epochs 0…, each followed by its `applied` line.
    fn long_history(path: &Path, n: usize) {
        let mut text = String::new();
        for i in 0..n {
            let mut e = entry_with_id(&format!("a{i}"));
            e.epoch = Some(i as u32);
            e.state = Some(State::Pending);
            e.config_out = Some(e.config.clone());
            text.push_str(&serde_json::to_string(&e).unwrap());
            text.push('\n');
            if i % 7 == 3 {
                // Blank lines are skipped wherever they are.
                text.push_str("  \n");
            }
            let f = follow_up(&format!("a{i}"), "t".into(), State::Applied, None);
            text.push_str(&serde_json::to_string(&f).unwrap());
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_decision_reads_the_latest_adjustments_as_the_whole_file_has_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        for n in [0, 1, 5, RECENT_ADJUSTMENTS, RECENT_ADJUSTMENTS + 1, 1000] {
            long_history(&path, n);
            let all = read_all(&path).unwrap();
            let recent = read(&path).unwrap();
            assert_eq!(all.len(), n);
            assert_eq!(recent.len(), n.min(RECENT_ADJUSTMENTS), "{n}");
            let tail = &all[n - recent.len()..];
            for (a, r) in tail.iter().zip(&recent) {
                assert_eq!(a.adjustment_id, r.adjustment_id);
                assert_eq!(a.changes, r.changes, "{}", a.adjustment_id);
                assert_eq!(a.written, r.written);
            }
        }
        // Without a final newline, and with lines longer than a block.
        let big = HistoryEntry {
            config_before: Some("x".repeat(3 * TAIL_BLOCK)),
            ..entry_with_id("big")
        };
        let mut text = serde_json::to_string(&big).unwrap();
        text.push('\n');
        text.push_str(&serde_json::to_string(&entry_with_id("last")).unwrap());
        std::fs::write(&path, &text).unwrap();
        let recent = read(&path).unwrap();
        let ids: Vec<&str> = recent.iter().map(|e| e.adjustment_id.as_str()).collect();
        assert_eq!(ids, ["big", "last"]);
        assert_eq!(
            recent[0].config_before.as_ref().unwrap().len(),
            3 * TAIL_BLOCK
        );
    }

    #[test]
    fn a_corrupt_line_read_from_the_end_is_named_by_its_number_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        long_history(&path, 10);
        let lines = read_all(&path).unwrap().len();
        assert_eq!(lines, 10);
        let mut text = std::fs::read_to_string(&path).unwrap();
        let total = text.lines().count();
        text.push_str("{\"time\": oops}\n");
        std::fs::write(&path, &text).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("history.jsonl:{}:", total + 1)),
            "{err}"
        );
        assert_eq!(read(&path).unwrap_err().exit_code(), 2);
        // The same line without its newline, and again read whole.
        std::fs::write(&path, text.trim_end()).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("history.jsonl:{}:", total + 1)),
            "{err}"
        );
        let err = read_all(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("history.jsonl:{}:", total + 1)),
            "{err}"
        );
    }

    #[test]
    fn a_line_past_the_limit_is_refused_by_name_and_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let first = serde_json::to_string(&entry_with_id("a")).unwrap();
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(file, "{first}").unwrap();
        // A second line of MAX_LINE_BYTES + 1 zero bytes and no newline: each reader
        // stops just past the limit.
        file.set_len(first.len() as u64 + 1 + MAX_LINE_BYTES + 1)
            .unwrap();
        drop(file);
        for err in [read(&path).unwrap_err(), read_all(&path).unwrap_err()] {
            assert_eq!(err.exit_code(), 2);
            let text = err.to_string();
            assert!(
                text.contains("history.jsonl:2:") && text.contains("MAX_LINE_BYTES"),
                "{text}"
            );
        }
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
