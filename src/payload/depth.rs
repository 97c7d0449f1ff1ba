//! A pre-check of JSON nesting, run before the decoder so that a hostile body (`[[[[…`) is
//! refused in one linear pass, whatever the decoder's own recursion limits.

/// Whether arrays and objects in `body` nest deeper than `max` (the top-level object counts 1).
/// Brackets inside strings are ignored; invalid JSON is left for the decoder to refuse.
///
/// Most of a payload's bytes are inside strings; those are skipped with `memchr` (SIMD) from one
/// quote or backslash to the next, so the check costs a small fraction of decoding.
pub fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut at = 0;
    while at < body.len() {
        match body[at] {
            b'"' => {
                // Find the closing quote, stepping over escaped characters.
                at += 1;
                loop {
                    // A backslash may be the last byte: past the end there is no closing quote.
                    let rest = body.get(at..).unwrap_or_default();
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(offset) if body[at + offset] == b'\\' => at += offset + 2,
                        Some(offset) => {
                            at += offset;
                            break;
                        }
                        None => return false,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::nesting_exceeds;

    #[test]
    fn counts_only_structural_brackets() {
        assert!(!nesting_exceeds(br#"{"alerts":[{"labels":{}}]}"#, 4));
        assert!(nesting_exceeds(br#"{"alerts":[{"labels":{"a":[]}}]}"#, 4));
        assert!(!nesting_exceeds(br#"{"a":"[[[[[\"[[[["}"#, 1));
        assert!(nesting_exceeds(&[b'['; 100], 99));
        assert!(!nesting_exceeds(b"]]]]{}", 1));
        assert!(!nesting_exceeds(br#"{"a":"\\"}"#, 1), "an escaped backslash ends before the quote");
        assert!(!nesting_exceeds(br#"{"a":"\"[[["}"#, 1), "an escaped quote does not end the string");
        assert!(nesting_exceeds(br#"{"a":"\\","b":[1]}"#, 1), "the string ends after an escaped backslash");
        assert!(!nesting_exceeds(br#"{"unterminated"#, 1));
    }

    /// Regression (found by fuzz/payload_decode): a body ending in a backslash inside a string
    /// made the skip step past the end of the slice and panic.
    #[test]
    fn a_trailing_backslash_in_a_string_does_not_panic() {
        assert!(!nesting_exceeds(br#"{"a":""#, 4));
        assert!(!nesting_exceeds(b"\"\\", 4));
    }
}
