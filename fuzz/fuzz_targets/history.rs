//! The history reader (`retune::history::read`): any bytes are a history or an input
//! error naming the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retune::fuzzing::scratch_file;

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("history.jsonl", data);
    if let Err(e) = retune::history::read(&path) {
        assert_eq!(e.exit_code(), 2, "{e}");
    }
});
