//! Fuzzes statement analysis: any text must yield facts, never a panic;
//! its literal template (`sql::normalize`) must stand only for texts the
//! parser reads the same way (a facts-cache hit of a variant equals a
//! fresh analysis of it); redacting secrets never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::sql::{analyze, normalize, redact_secrets, FactsCache, ParseSettings};

/// Literal values substituted into a template's placeholders (`\s`, `\i`,
/// `\f`): a plain one, and ones full of comment, quote and statement
/// delimiters.
const VARIANTS: [(&str, &str, &str); 3] = [
    ("'zz'", "7", "7.5"),
    ("'*/*/;select 1;/*'", "2147483647", "1e-5"),
    ("' -- ''\n$$'", "0", "99999999999"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if s.contains('\0') {
        return;
    }
    let d = ParseSettings::default();
    let facts = analyze(s, d);
    assert!(!facts.is_empty());
    let _ = redact_secrets(s, d, None);
    let Some(key) = normalize(s) else {
        return;
    };
    for (string, int, float) in VARIANTS {
        let v = key
            .replace("\\s", string)
            .replace("\\i", int)
            .replace("\\f", float);
        // `\s` copied from a quoted identifier or a comment is not a
        // placeholder: such variants have another key.
        if normalize(&v).as_ref() != Some(&key) {
            continue;
        }
        let mut cache = FactsCache::default();
        cache.analyze(s, d);
        assert_eq!(cache.analyze(&v, d), analyze(&v, d), "{s:?} / {v:?}");
    }
});
