//! A pre-check of JSON nesting, run before the decoder so that a hostile body (`[[[[…`) is
//! refused in one linear pass, whatever the decoder's own recursion limits.

/// Whether arrays and objects in `body` nest deeper than `max` (the top-level object counts 1).
/// Brackets inside strings are ignored; invalid JSON is left for the decoder to refuse.
pub fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in body {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
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
    }
}
