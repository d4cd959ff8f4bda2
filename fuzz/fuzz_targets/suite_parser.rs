//! Any text given to the suite loader yields a suite or a positioned error, never a panic or a hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = stackcheck::suite::load_str(Path::new("fuzz/suite.yaml"), text);
    }
});
