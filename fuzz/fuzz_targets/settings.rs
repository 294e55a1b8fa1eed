//! retune.toml, the LLM settings file: any bytes are settings or an input error naming
//! the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retune::fuzzing::scratch_file;

fuzz_target!(|data: &[u8]| {
    let path = scratch_file("retune.toml", data);
    if let Err(e) = retune::settings::resolve(None, None, &|_| None, &[path]) {
        assert_eq!(e.exit_code(), 2, "{e}");
    }
});
