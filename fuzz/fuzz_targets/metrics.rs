//! Every metrics reader, on any bytes. The first byte picks the reader (a forced
//! `--metrics-format`) or format detection under one of the names trainers write; the rest
//! is the file. Any outcome but a panic, an abort, a hang or unbounded memory is fine: bad
//! input must come back as an error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retune::fuzzing::scratch_file;
use retune::metrics::{Format, load_metrics};

const FORCED: [Format; 9] = [
    Format::Snapshot,
    Format::KerasHistory,
    Format::KerasCsv,
    Format::KerasLog,
    Format::LightningCsv,
    Format::HfTrainerState,
    Format::JsonLines,
    Format::Tensorboard,
    Format::Printed,
];

/// Names detection treats differently (`.jsonl`, `trainer_state.json`, event files) and
/// neutral ones.
const NAMES: [&str; 8] = [
    "metrics.csv",
    "history.json",
    "training.log",
    "metrics.jsonl",
    "trainer_state.json",
    "m.txt",
    "events.out.tfevents.1790000000.host.1.0",
    "metrics",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let pick = usize::from(pick) % (FORCED.len() + NAMES.len());
    let (name, format) = match FORCED.get(pick) {
        Some(format) => ("metrics.dat", Some(*format)),
        None => (NAMES[pick - FORCED.len()], None),
    };
    let path = scratch_file(name, body);
    if let Err(e) = load_metrics(&path, format) {
        assert_eq!(e.exit_code(), 2, "{e}");
    }
});
