//! The training config loader, and the splice that edits it: any bytes load or fail with
//! an input error, and every value of a config that loads can be rewritten in place into a
//! config that still loads with that value changed and nothing else.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retune::fuzzing::{config_round_trip, scratch_file};

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("config.json", data);
    config_round_trip(&path);
});
