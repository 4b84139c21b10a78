//! Fuzzes statement analysis: any text must yield facts, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if !s.contains('\0') {
            let facts = portcullis::sql::analyze(s, Default::default());
            assert!(!facts.is_empty());
        }
    }
});
