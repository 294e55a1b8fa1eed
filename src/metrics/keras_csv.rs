//! Reads Keras `CSVLogger` output: a header `epoch,<metric names sorted>`, one row per
//! epoch counted from 0, `NA` where an epoch lacks a value (validation skipped), CRLF line
//! ends from Python's csv module, `nan`/`inf` as Python prints them. A run resumed with
//! `append=True` may repeat the header mid-file; a repeated header replaces the column
//! names and is not data. Several `fit()` calls appended to one file (no second header;
//! a later call may write fewer cells when it logs no validation) show as the epoch going
//! back: to the first epoch, another run (only the latest is judged, see `RunCounter`);
//! to the middle, a resume whose repeated epochs are skipped. Records stream through one
//! reused `ByteRecord`, from `csv_lines` for plain tables. It also owns the
//! CSV pieces Lightning's reader shares (the row loop `read_rows`, `Columns`, `cell_value`).
//!
//! Text beside the numbers: a column whose first value is not a number holds text (a
//! `model` name, Ray Tune's `trial_id`, `date`, `hostname`, `done`). Such a column is not
//! a metric and is skipped, and a warning names it. One text column is read, though: a
//! phase column (`epoch,phase,loss,acc` with `train` and `val` rows, `set` with `train`
//! and `eval`), whose value says which split a row measured. Its validation rows go to
//! `val_<metric>` series and its test rows to `test_<metric>`, so the train and validation
//! curves come apart as they would from a Keras log; rows of a phase it does not know are
//! left out, and said. A column that gave numbers and then text is an error at that line,
//! as before.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::rc::Rc;

use super::csv_lines;
use super::nonfinite::{is_no_value, parse_number};
use super::text::{self, TextFile};
use super::{Count, MetricsBuilder, RunCounter};
use crate::error::{Error, Result};
use crate::input;

pub fn read(path: &Path, builder: &mut MetricsBuilder) -> Result<()> {
    let mut last_epoch: Option<u32> = None;
    let mut runs = RunCounter::default();
    read_rows(path, builder, |record, cols, builder| {
        let logged = match cols.epoch.and_then(|i| record.get(i)) {
            Some(cell) => match cell_value(path, record, "epoch", cell)? {
                Some(e) if e.is_finite() && e >= 0.0 && e.fract() == 0.0 => {
                    // CSVLogger writes the 0-based epoch index.
                    Some((e.min(f64::from(u32::MAX - 1)) as u32) + 1)
                }
                Some(_) => {
                    return Err(at_record(
                        path,
                        record.position(),
                        format!(
                            "column \"epoch\": {:?} is not an epoch number",
                            String::from_utf8_lossy(cell)
                        ),
                    ));
                }
                None => None,
            },
            None => None,
        };
        let epoch = match logged {
            // One row per epoch: an epoch that does not count up is another run appended
            // to the file (CSVLogger(append=True) writes no second header), or a resume
            // logging epochs again.
            // With a phase column each epoch has a row per phase.
            Some(e) => match runs.see(f64::from(e), cols.phase.is_none(), builder) {
                Count::Replays => return Ok(None),
                Count::Goes | Count::Restarts => e,
            },
            None => last_epoch.unwrap_or(0).saturating_add(1),
        };
        last_epoch = Some(epoch);
        Ok(Some(epoch))
    })
}

/// The loop both CSV formats share: blank rows are skipped, the first row and any row
/// repeating the header set the columns, and every metric cell of a data row is pushed at
/// the epoch `epoch_of` reads from that row (an error there stops the read; it may start
/// another run with `MetricsBuilder::restart` before the row's values go in, or say `None`:
/// the row is not an epoch's, and its values are left out). Rows come from the fast road
/// for plain tables (`csv_lines`), and from the csv crate from the first line that road
/// hands over.
pub(super) fn read_rows(
    path: &Path,
    builder: &mut MetricsBuilder,
    mut epoch_of: impl FnMut(&csv::ByteRecord, &Columns, &mut MetricsBuilder) -> Result<Option<u32>>,
) -> Result<()> {
    let mut columns: Option<Columns> = None;
    let mut record = csv::ByteRecord::new();
    let outcome = csv_lines::read(
        path,
        MAX_ROW_BYTES as usize,
        &mut record,
        |position| row_too_long(path, position),
        |record| take_row(path, record, &mut columns, builder, &mut epoch_of),
    )?;
    let csv_lines::Outcome::ResumeAt(offset) = outcome else {
        if let Some(cols) = &columns {
            cols.say_unplaced(builder);
        }
        return Ok(());
    };
    let budget = Rc::new(Cell::new(0u64));
    let mut reader = open_csv(path, offset, Rc::clone(&budget))?;
    loop {
        budget.set(0);
        let next_row = shifted(reader.position(), offset);
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if is_over_budget(&e) => return Err(row_too_long(path, &next_row)),
            Err(e) => return Err(csv_error(path, &e)),
        }
        if offset > 0 {
            let position = record.position().map(|p| shifted(p, offset));
            record.set_position(position);
        }
        take_row(path, &record, &mut columns, builder, &mut epoch_of)?;
    }
    if let Some(cols) = &columns {
        cols.say_unplaced(builder);
    }
    Ok(())
}

/// One record of the row loop (see `read_rows`).
fn take_row(
    path: &Path,
    record: &csv::ByteRecord,
    columns: &mut Option<Columns>,
    builder: &mut MetricsBuilder,
    epoch_of: &mut impl FnMut(&csv::ByteRecord, &Columns, &mut MetricsBuilder) -> Result<Option<u32>>,
) -> Result<()> {
    if is_blank(record) {
        return Ok(());
    }
    if record.len() > MAX_COLUMNS {
        return Err(at_record(
            path,
            record.position(),
            format!(
                "{} columns; retune reads at most {MAX_COLUMNS} (a metrics CSV has one per metric)",
                record.len()
            ),
        ));
    }
    let cols = match columns {
        Some(cols) if !cols.is_header(record) => cols,
        _ => {
            if let Some(old) = columns.take() {
                old.say_unplaced(builder);
            }
            *columns = Some(Columns::from_header(record, builder));
            return Ok(());
        }
    };
    if !cols.scanned {
        cols.scan_first_row(record, builder);
    }
    // Which of the column's series this row's values go to: its own, or (after a phase
    // column) the validation or test one.
    let split = match cols.phase.as_ref() {
        None => Split::Train,
        Some(phase) => match record.get(phase.column).and_then(split_of) {
            Some(split) => split,
            None => {
                cols.unplaced_rows += 1;
                return Ok(());
            }
        },
    };
    let Some(epoch) = epoch_of(record, cols, builder)? else {
        return Ok(());
    };
    for (i, cell) in record.iter().enumerate() {
        let Some(id) = cols.id(split, i) else {
            continue;
        };
        match parse_cell(cell) {
            Ok(Some(value)) => {
                builder.push_id(id, epoch, value);
                cols.numeric[i] = true;
            }
            Ok(None) => {}
            // Text where the column never gave a number: a text column, skipped.
            Err(()) if !cols.numeric[i] => cols.skip_text(i, builder),
            Err(()) => return Err(not_a_number(path, record, &cols.names[i], cell)),
        }
    }
    builder.rows += 1;
    Ok(())
}

/// Which split a row of a file with a phase column measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Val,
    Test,
}

/// Values of a phase column, by split (compared without case).
const TRAIN_PHASES: &[&[u8]] = &[b"train", b"training"];
const VAL_PHASES: &[&[u8]] = &[
    b"val",
    b"valid",
    b"validation",
    b"eval",
    b"evaluation",
    b"dev",
];
const TEST_PHASES: &[&[u8]] = &[b"test", b"testing"];

/// The split a phase cell names, if it names one.
fn split_of(cell: &[u8]) -> Option<Split> {
    let cell = cell.trim_ascii();
    let is = |names: &[&[u8]]| names.iter().any(|n| cell.eq_ignore_ascii_case(n));
    if is(TRAIN_PHASES) {
        Some(Split::Train)
    } else if is(VAL_PHASES) {
        Some(Split::Val)
    } else if is(TEST_PHASES) {
        Some(Split::Test)
    } else {
        None
    }
}

/// Text columns named in the warning; the rest are counted.
const TEXT_COLUMNS_NAMED: usize = 6;

/// A phase column and the series its validation and test rows go to.
#[derive(Debug)]
pub(super) struct PhaseColumn {
    column: usize,
    name: String,
    val_ids: Vec<Option<usize>>,
    test_ids: Vec<Option<usize>>,
}

fn row_too_long(path: &Path, position: &csv::Position) -> Error {
    at_record(
        path,
        Some(position),
        format!(
            "a row longer than {}; not a CSV log (a row of metrics is a few hundred bytes)",
            input::size_text(MAX_ROW_BYTES)
        ),
    )
}

/// A position of the csv crate's reader started `offset` bytes into the file, as a
/// position in the file (only the byte offset is used, to find the line).
fn shifted(position: &csv::Position, offset: u64) -> csv::Position {
    let mut p = position.clone();
    p.set_byte(position.byte() + offset);
    p
}

/// Longest row read, header included. A row is one epoch's values (or the header's names),
/// a few hundred bytes; a row past 1 MiB is a file without line breaks (`/dev/zero`, a
/// binary file read as CSV) or one field run wild, and the csv reader would hold all of it.
const MAX_ROW_BYTES: u64 = 1024 * 1024;
/// Most columns read. Each column is a series with its own bounded storage (a few KiB), so
/// the count bounds the memory of a read; a metrics CSV has one column per metric, and the
/// widest we know (per-class metrics of a thousand-class model, train and val) stays under
/// half of this.
pub(super) const MAX_COLUMNS: usize = 4096;
/// The csv reader's own buffer: it reads this far ahead of the row it parses, so a row's
/// bytes are counted with up to this much of the next.
const CSV_BUFFER_BYTES: u64 = 8 * 1024;

/// A CSV reader over the file from byte `offset` (a line's first byte), reading through
/// `RowBudget`. Rows may be shorter or longer than the header (a resumed run that logs
/// another metric): missing cells are no value, extra cells are ignored.
fn open_csv(path: &Path, offset: u64, budget: Rc<Cell<u64>>) -> Result<csv::Reader<RowBudget>> {
    let file = if offset == 0 {
        text::open(path)?
    } else {
        // Only a file without a byte order mark is read in part by the fast road.
        let mut file = input::open_regular(path, "a metrics file")?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::read(path, &e))?;
        TextFile::Plain(file)
    };
    Ok(csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(CSV_BUFFER_BYTES as usize)
        .from_reader(RowBudget {
            inner: file,
            used: budget,
        }))
}

/// Counts the bytes handed to the csv reader since the row loop last reset `used` (before
/// each row), and fails once a row has taken more than `MAX_ROW_BYTES`: the csv reader
/// grows its record to whatever a row holds, so the bound has to come from below it.
struct RowBudget {
    inner: TextFile,
    used: Rc<Cell<u64>>,
}

impl Read for RowBudget {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.used.get() > MAX_ROW_BYTES + CSV_BUFFER_BYTES {
            return Err(input::exceeded("row budget"));
        }
        let n = self.inner.read(buf)?;
        self.used.set(self.used.get() + n as u64);
        Ok(n)
    }
}

fn is_over_budget(err: &csv::Error) -> bool {
    matches!(err.kind(), csv::ErrorKind::Io(io)
        if io.get_ref().is_some_and(|e| e.is::<input::Exceeded>()))
}

/// The header's column names and where the epoch (and, for Lightning, the step) is.
#[derive(Debug)]
pub(super) struct Columns {
    pub names: Vec<String>,
    /// The builder's series handle for each metric column (`None` for epoch and step).
    pub ids: Vec<Option<usize>>,
    pub epoch: Option<usize>,
    pub step: Option<usize>,
    /// Columns of a test stage (`test_loss`, `test/acc`), which Lightning logs once after
    /// fitting.
    pub tests: Vec<usize>,
    /// Whether each column has given a number: text in one that has not is a text
    /// column, text in one that has is an error.
    numeric: Vec<bool>,
    /// The first data row under this header has been looked at for text columns.
    scanned: bool,
    /// The column saying which split each row measured, when there is one.
    pub phase: Option<PhaseColumn>,
    /// Text columns skipped, in file order.
    text: Vec<String>,
    /// Rows whose phase is none of train, validation and test, left out.
    unplaced_rows: u64,
}

impl Columns {
    pub fn from_header(record: &csv::ByteRecord, builder: &mut MetricsBuilder) -> Columns {
        let names: Vec<String> = record
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_string())
            .collect();
        let find = |want: &str| names.iter().position(|n| n.eq_ignore_ascii_case(want));
        let (epoch, step) = (find("epoch"), find("step"));
        let ids = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                (Some(i) != epoch && Some(i) != step && !name.is_empty())
                    .then(|| builder.series_id(name))
            })
            .collect();
        let tests = names
            .iter()
            .enumerate()
            .filter(|(_, name)| is_test_name(name))
            .map(|(i, _)| i)
            .collect();
        Columns {
            epoch,
            step,
            ids,
            numeric: vec![false; names.len()],
            names,
            tests,
            scanned: false,
            phase: None,
            text: Vec::new(),
            unplaced_rows: 0,
        }
    }

    /// The series handle of column `i` for a row of `split`.
    fn id(&self, split: Split, i: usize) -> Option<usize> {
        let ids = match (split, &self.phase) {
            (Split::Val, Some(phase)) => &phase.val_ids,
            (Split::Test, Some(phase)) => &phase.test_ids,
            _ => &self.ids,
        };
        ids.get(i).copied().flatten()
    }

    /// The first data row says which metric columns hold text, and whether one of them
    /// is a phase column: found before the row's values go in, so its own values land in
    /// the right split.
    fn scan_first_row(&mut self, record: &csv::ByteRecord, builder: &mut MetricsBuilder) {
        self.scanned = true;
        for (i, cell) in record.iter().enumerate() {
            if self.ids.get(i).copied().flatten().is_none() || parse_cell(cell).is_ok() {
                continue;
            }
            if self.phase.is_none() && split_of(cell).is_some() {
                self.ids[i] = None;
                self.phase = Some(self.phase_column(i, builder));
            } else {
                self.skip_text(i, builder);
            }
        }
    }

    /// Column `i` as the phase column: each metric column gets a `val_` and a `test_`
    /// series beside its own (`train_loss` → `val_loss`).
    fn phase_column(&self, column: usize, builder: &mut MetricsBuilder) -> PhaseColumn {
        let mut split_ids = |prefix: &str| -> Vec<Option<usize>> {
            self.names
                .iter()
                .zip(&self.ids)
                .map(|(name, id)| {
                    id.map(|_| {
                        let bare = ["train_", "training_", "train/"]
                            .iter()
                            .find_map(|p| name.strip_prefix(p))
                            .unwrap_or(name);
                        builder.series_id(&format!("{prefix}{bare}"))
                    })
                })
                .collect()
        };
        let val_ids = split_ids("val_");
        let test_ids = split_ids("test_");
        let name = self.names[column].clone();
        builder.warnings.push(format!(
            "column `{}` names each row's phase: its validation rows are read as `val_*` series, its test rows as `test_*`",
            crate::num::truncate(&name, 40)
        ));
        PhaseColumn {
            column,
            name,
            val_ids,
            test_ids,
        }
    }

    /// Column `i` holds text: it is not a metric, and is skipped from here on.
    fn skip_text(&mut self, i: usize, builder: &mut MetricsBuilder) {
        self.ids[i] = None;
        if let Some(phase) = &mut self.phase {
            phase.val_ids[i] = None;
            phase.test_ids[i] = None;
        }
        let name = &self.names[i];
        if self.text.contains(name) {
            return;
        }
        self.text.push(name.clone());
        let named: Vec<String> = self
            .text
            .iter()
            .take(TEXT_COLUMNS_NAMED)
            .map(|n| format!("`{}`", crate::num::truncate(n, 40)))
            .collect();
        let more = match self.text.len().saturating_sub(TEXT_COLUMNS_NAMED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let note = format!(
            "text {} {}{more} skipped: not metrics",
            if self.text.len() == 1 {
                "column"
            } else {
                "columns"
            },
            named.join(", ")
        );
        // One warning for the file's text columns, kept up to date.
        match builder
            .warnings
            .iter_mut()
            .find(|w| w.starts_with("text column"))
        {
            Some(w) => *w = note,
            None => builder.warnings.push(note),
        }
    }

    /// The warning for rows left out because their phase is none the reader knows.
    fn say_unplaced(&self, builder: &mut MetricsBuilder) {
        let (Some(phase), n @ 1..) = (&self.phase, self.unplaced_rows) else {
            return;
        };
        builder.warnings.push(format!(
            "{n} {} whose `{}` is neither train, validation nor test left out",
            if n == 1 { "row" } else { "rows" },
            crate::num::truncate(&phase.name, 40)
        ));
    }

    /// A row repeating the header (appended runs): its epoch cell (or first cell) holds
    /// that column's name rather than a number.
    pub fn is_header(&self, record: &csv::ByteRecord) -> bool {
        let i = self.epoch.unwrap_or(0);
        match (record.get(i), self.names.get(i)) {
            (Some(cell), Some(name)) => {
                // Most rows: a data cell whose first byte, a letter or digit (so not
                // trimmed away), already differs from the name's first byte.
                if let (Some(c), Some(n)) = (cell.first(), name.as_bytes().first())
                    && c.is_ascii_alphanumeric()
                    && !c.eq_ignore_ascii_case(n)
                {
                    return false;
                }
                let cell = String::from_utf8_lossy(cell);
                cell.trim().eq_ignore_ascii_case(name) && parse_number(&cell).is_none()
            }
            _ => false,
        }
    }
}

/// `test_loss`, `test/acc`, `Test-F1`: a test stage's metric.
fn is_test_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() > 5
        && bytes[..4].eq_ignore_ascii_case(b"test")
        && matches!(bytes[4], b'_' | b'/' | b'-' | b'.' | b' ')
}

fn is_blank(record: &csv::ByteRecord) -> bool {
    record.iter().all(|c| c.iter().all(u8::is_ascii_whitespace))
}

/// A metric cell: `Some(value)` (nan and inf included), `None` for no value (empty, `NA`,
/// a list CSVLogger wrote for a multi-valued metric), or an error naming the line and
/// column for anything else. `record` is where the cell's row starts, for that line.
pub(super) fn cell_value(
    path: &Path,
    record: &csv::ByteRecord,
    column: &str,
    cell: &[u8],
) -> Result<Option<f64>> {
    parse_cell(cell).map_err(|()| not_a_number(path, record, column, cell))
}

/// `cell_value` without the error's words: `Err(())` for a cell that is not a number.
fn parse_cell(cell: &[u8]) -> std::result::Result<Option<f64>, ()> {
    // Fast path for the common cell, a plain number: parsed from the bytes, with no UTF-8
    // check, allocation or trimming (this loop is most of the cost of a big log).
    if cell
        .first()
        .is_some_and(|b| b.is_ascii_digit() || *b == b'-')
        && let Ok(v) = fast_float2::parse::<f64, _>(cell)
    {
        return Ok(Some(v));
    }
    let text = String::from_utf8_lossy(cell);
    let text = text.trim();
    if is_no_value(text) || text.starts_with('[') {
        return Ok(None);
    }
    parse_number(text).map(Some).ok_or(())
}

/// The error for a cell of `column` that is not a number, at its line.
fn not_a_number(path: &Path, record: &csv::ByteRecord, column: &str, cell: &[u8]) -> Error {
    let text = String::from_utf8_lossy(cell);
    at_record(
        path,
        record.position(),
        format!("column \"{column}\": {:?} is not a number", text.trim()),
    )
}

/// An input error at a record's line (`file:line`). The csv crate counts a CRLF line end
/// when it reads the next record, so its line number is one short for every record after
/// the first; the byte offset is exact, so the line is counted from it (once, on the way
/// to an error).
pub(super) fn at_record(
    path: &Path,
    position: Option<&csv::Position>,
    message: impl Into<String>,
) -> Error {
    let Some(position) = position else {
        return Error::input(path, message);
    };
    let line = line_at(path, position.byte()).unwrap_or(position.line());
    Error::at(path, line, None, message)
}

/// The 1-based line of the first record byte at or after `offset`: line ends right at the
/// offset belong to the record before.
fn line_at(path: &Path, offset: u64) -> Option<u64> {
    let reader = BufReader::new(File::open(path).ok()?);
    let mut line = 1;
    for (i, byte) in reader.bytes().enumerate() {
        let byte = byte.ok()?;
        if i as u64 >= offset && byte != b'\r' && byte != b'\n' {
            break;
        }
        if byte == b'\n' {
            line += 1;
        }
    }
    Some(line)
}

fn csv_error(path: &Path, err: &csv::Error) -> Error {
    match err.kind() {
        csv::ErrorKind::Io(io) => input::read_error(path, io),
        _ => at_record(path, err.position(), err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::metrics::testing::{ScratchFile, example, values};
    use crate::metrics::{Canonical, Format, load_metrics};

    const SCRATCH: ScratchFile = ScratchFile {
        name: "log.csv",
        format: Format::KerasCsv,
    };

    #[test]
    fn reads_the_csvlogger_example_with_na_cells() {
        let m = load_metrics(
            &example("configs/examples/formats/keras_csvlogger.csv"),
            None,
        )
        .unwrap();
        assert_eq!(m.format, Format::KerasCsv);
        assert_eq!(m.rows, 7);
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss.len(), 7);
        assert_eq!(loss[0], (1, 1.5523507595062256));
        assert_eq!(loss[6], (7, 0.6012371182441711));
        // validation ran on epochs 1, 3, 5 and 7 only (validation_freq): NA elsewhere
        let val = values(&m, Canonical::ValAccuracy);
        assert_eq!(
            val.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1, 3, 5, 7]
        );
        assert_eq!(m.get(Canonical::Lr).unwrap().original, "lr");
    }

    #[test]
    fn nan_and_inf_cells_are_values() {
        let m = SCRATCH.load("epoch,loss,val_loss\r\n0,0.69,0.70\r\n1,nan,inf\r\n2,NaN,-inf\r\n");
        let loss = values(&m, Canonical::Loss);
        assert_eq!(loss[0], (1, 0.69));
        assert!(loss[1].1.is_nan() && loss[2].1.is_nan());
        let val = values(&m, Canonical::ValLoss);
        assert_eq!(val[1], (2, f64::INFINITY));
        assert_eq!(val[2], (3, f64::NEG_INFINITY));
        assert_eq!(
            m.get(Canonical::Loss)
                .unwrap()
                .first_nonfinite()
                .unwrap()
                .epoch,
            2
        );
    }

    #[test]
    fn a_repeated_header_from_a_resumed_run_is_skipped() {
        let m = SCRATCH.load(
            "epoch,accuracy,loss\r\n0,0.5,0.7\r\n1,0.6,0.6\r\nepoch,accuracy,loss,lr\r\n2,0.7,0.5,0.001\r\n",
        );
        assert_eq!(m.rows, 3);
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 0.7), (2, 0.6), (3, 0.5)]
        );
        assert_eq!(values(&m, Canonical::Lr), vec![(3, 0.001)]);
    }

    #[test]
    fn broken_inputs_are_errors_that_name_the_place() {
        let e = load_metrics(&example("tests/fixtures/bad_cell.csv"), None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.ends_with("bad_cell.csv:4: column \"val_loss\": \"0.71O3\" is not a number"),
            "{text}"
        );
        let e = load_metrics(&example("tests/fixtures/header_only.csv"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no metric values found (read as Keras CSVLogger CSV)"),
            "{e}"
        );
        let e = load_metrics(&example("tests/fixtures/empty.csv"), Some(Format::KerasCsv))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no metric values found"), "{e}");
        let e = load_metrics(
            &example("tests/fixtures/garbage.bin"),
            Some(Format::KerasCsv),
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn streams_a_million_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.csv");
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        write!(out, "epoch,accuracy,loss,val_accuracy,val_loss\r\n").unwrap();
        for e in 0..1_000_000u32 {
            let loss = 1.0 / f64::from(e + 1);
            write!(out, "{e},0.5,{loss},NA,{loss}\r\n").unwrap();
        }
        out.flush().unwrap();
        drop(out);
        let m = load_metrics(&path, None).unwrap();
        assert_eq!(m.rows, 1_000_000);
        let loss = m.get(Canonical::Loss).unwrap();
        assert_eq!(loss.len(), 1_000_000);
        assert_eq!(loss.last().unwrap().epoch, 1_000_000);
        assert_eq!(loss.last().unwrap().value, 1e-6);
        assert!(m.get(Canonical::ValAccuracy).is_none());
        assert_eq!(m.last_epoch(), Some(1_000_000));
    }

    #[test]
    fn runs_appended_without_a_header_are_runs_and_the_latest_is_judged() {
        // CSVLogger(append=True) over four fit() calls, as the Food-11 log: one header,
        // the epoch restarting at 0, the loss jumping up where a run starts.
        let m = SCRATCH.load(
            "epoch,acc,loss,val_acc,val_loss\n\
             0,0.82,0.52,0.73,0.91\n1,0.86,0.39,0.77,0.72\n2,0.87,0.38,0.75,0.77\n\
             0,0.88,2.29,0.78,1.81\n1,0.88,1.22,0.73,1.57\n\
             0,0.79,1.33,0.77,1.30\n1,0.81,1.10,0.79,1.14\n2,0.83,0.96,0.82,0.95\n",
        );
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 1.33), (2, 1.10), (3, 0.96)]
        );
        assert_eq!(m.rows, 8);
        let p = m.phases.as_ref().unwrap();
        assert_eq!((p.count, p.latest, p.earlier_rows), (3, (1, 3), 5));
        assert_eq!(p.earlier, vec![(1, 3), (1, 2)]);
        assert_eq!(
            m.warnings,
            vec![
                "2 earlier fit() calls in this file (the epoch counter started over); judging the latest (epochs 1\u{2013}3)"
            ]
        );
    }

    #[test]
    fn an_aborted_epoch_then_a_rerun_judges_the_rerun() {
        let m = SCRATCH.load(
            "epoch,acc,loss,val_acc,val_loss\r\n0,0.71,0.88,0.50,1.53\r\n\
             0,0.70,0.87,0.54,1.41\r\n1,0.81,0.56,0.70,0.89\r\n2,0.84,0.46,0.77,0.74\r\n",
        );
        assert_eq!(
            values(&m, Canonical::ValLoss),
            vec![(1, 1.41), (2, 0.89), (3, 0.74)]
        );
        let p = m.phases.as_ref().unwrap();
        assert_eq!(
            (p.count, p.latest, p.earlier.clone()),
            (2, (1, 3), vec![(1, 1)])
        );
    }

    #[test]
    fn a_later_run_that_drops_validation_has_no_validation_series() {
        // CSVLogger writes the later run's sorted keys under the first run's header:
        // `epoch,acc,loss` cells, the val columns missing.
        let m = SCRATCH.load(
            "epoch,acc,loss,val_acc,val_loss\n0,0.5,0.7,0.4,0.8\n1,0.6,0.6,0.5,0.7\n0,0.55,0.65\n1,0.65,0.55\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.65), (2, 0.55)]);
        assert!(m.get(Canonical::ValLoss).is_none());
        assert_eq!(m.phases.as_ref().unwrap().count, 2);
    }

    #[test]
    fn a_resume_that_logs_epochs_again_keeps_the_first_logging() {
        let m = SCRATCH.load("epoch,loss\n0,0.9\n1,0.8\n2,0.7\n3,0.6\n2,0.71\n3,0.61\n4,0.5\n");
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6), (5, 0.5)]
        );
        assert!(m.phases.is_none());
        assert!(
            m.warnings[0].starts_with("2 rows logged again"),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn a_phase_column_splits_rows_into_train_and_validation() {
        let m = SCRATCH.load(
            "epoch,phase,loss,acc\n0,train,0.90,0.50\n0,val,1.00,0.40\n\
             1,train,0.80,0.60\n1,val,0.95,0.45\n2,train,0.70,0.70\n2,val,,0.47\n",
        );
        assert_eq!(
            values(&m, Canonical::Loss),
            vec![(1, 0.9), (2, 0.8), (3, 0.7)]
        );
        // a blank cell is no value, as in any row
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 1.0), (2, 0.95)]);
        assert_eq!(
            values(&m, Canonical::ValAccuracy),
            vec![(1, 0.4), (2, 0.45), (3, 0.47)]
        );
        assert!(m.phases.is_none(), "{:?}", m.phases);
        assert_eq!(m.rows, 6);
        assert_eq!(
            m.warnings,
            vec![
                "column `phase` names each row's phase: its validation rows are read as `val_*` series, its test rows as `test_*`"
            ]
        );
    }

    #[test]
    fn a_phase_column_first_with_eval_rows_and_an_epoch_mean_loss() {
        // as a PyTorch loop writes it: `set,epoch,mean_running_loss,…` with train/eval
        let m = SCRATCH.load(
            "set,epoch,mean_running_loss,mae\ntrain,0,9.0,3.0\neval,0,8.0,2.9\n\
             train,1,7.0,2.5\neval,1,7.5,2.7\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 9.0), (2, 7.0)]);
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 8.0), (2, 7.5)]);
        let mae: Vec<_> = m
            .series
            .iter()
            .map(|s| s.original.as_str())
            .filter(|n| n.ends_with("mae"))
            .collect();
        assert_eq!(mae, vec!["mae", "val_mae"]);
    }

    #[test]
    fn rows_of_an_unknown_phase_are_left_out_and_said() {
        let m =
            SCRATCH.load("epoch,phase,loss\n0,train,0.9\n0,warmup,0.5\n0,test,0.7\n1,train,0.8\n");
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.9), (2, 0.8)]);
        assert!(m.series.iter().any(|s| s.original == "test_loss"));
        assert_eq!(
            m.warnings[1],
            "1 row whose `phase` is neither train, validation nor test left out"
        );
    }

    #[test]
    fn text_columns_are_skipped_and_named() {
        // Ray Tune's progress.csv: text beside the numbers, and no epoch column
        let m = SCRATCH.load(
            "loss,val_loss,trial_id,date,done,training_iteration,hostname,node_ip\n\
             0.9,1.0,ab_00000,2024-05-01_10-00-00,False,1,box,10.0.0.1\n\
             0.8,0.9,ab_00000,2024-05-01_10-00-09,True,2,box,10.0.0.1\n",
        );
        assert_eq!(values(&m, Canonical::Loss), vec![(1, 0.9), (2, 0.8)]);
        assert_eq!(values(&m, Canonical::ValLoss), vec![(1, 1.0), (2, 0.9)]);
        assert_eq!(
            m.warnings,
            vec![
                "text columns `trial_id`, `date`, `done`, `hostname`, `node_ip` skipped: not metrics"
            ]
        );
        // a column that gave numbers and then text is still an error at its line
        let e = SCRATCH
            .error("epoch,loss,model\n0,0.9,cnn\n1,fast,cnn\n")
            .to_string();
        assert!(
            e.ends_with("log.csv:3: column \"loss\": \"fast\" is not a number"),
            "{e}"
        );
    }

    #[test]
    fn a_bad_epoch_cell_names_its_line() {
        let e = SCRATCH.error("epoch,loss\n0,0.9\ntwo,0.8\n").to_string();
        assert!(
            e.ends_with("log.csv:3: column \"epoch\": \"two\" is not a number"),
            "{e}"
        );
        let e = SCRATCH.error("epoch,loss\n0,0.9\n1.5,0.8\n").to_string();
        assert!(
            e.ends_with("log.csv:3: column \"epoch\": \"1.5\" is not an epoch number"),
            "{e}"
        );
    }
}
