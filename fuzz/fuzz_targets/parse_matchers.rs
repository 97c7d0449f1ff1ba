//! The matcher parser must turn any string into matchers or an error, and its matchers must
//! evaluate any label value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(matchers) = amrelay::rule::parse_matchers(text) {
        for matcher in &matchers {
            let _ = matcher.to_string();
            let _ = matcher.matches(text);
            let _ = matcher.matches("");
        }
    }
});
