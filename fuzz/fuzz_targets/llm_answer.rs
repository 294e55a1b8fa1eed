//! The LLM answer parser: the model's text is untrusted, so any text parses or comes back
//! as reasons for a repair round, and the reasons stay short enough to send back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retune::advisor::llm::answer::parse;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse(&text);
});
