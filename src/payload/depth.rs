//! JSON nesting: `server.limits.max_json_depth` is enforced by the decoder in its one pass over
//! the body ([`Nesting`] measures the values it skips); [`nesting_exceeds`] is the reference
//! scan, run only when a body is refused anyway, to tell "too deep" from "invalid" exactly as a
//! separate pre-check would (a hostile `[[[[…` is refused as too deep, whatever else is wrong).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// A skipped value, and how many levels of arrays and objects it opens (0 for a scalar, 1 for
/// `{}` or `["a"]`). Validated as serde's `IgnoredAny` would, without recursion beyond
/// serde_json's own limit (128).
pub(super) struct Nesting(pub usize);

impl Nesting {
    pub(super) fn of_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<usize, A::Error> {
        let mut deepest = 0;
        while let Some(Nesting(inner)) = seq.next_element()? {
            deepest = deepest.max(inner);
        }
        Ok(deepest + 1)
    }

    pub(super) fn of_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<usize, A::Error> {
        let mut deepest = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            deepest = deepest.max(map.next_value::<Nesting>()?.0);
        }
        Ok(deepest + 1)
    }
}

impl<'de> Deserialize<'de> for Nesting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NestingVisitor;
        impl<'de> Visitor<'de> for NestingVisitor {
            type Value = Nesting;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Nesting, E> {
                Ok(Nesting(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Nesting, E> {
                Ok(Nesting(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Nesting, E> {
                Ok(Nesting(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Nesting, E> {
                Ok(Nesting(0))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Nesting, E> {
                Ok(Nesting(0))
            }
            fn visit_unit<E>(self) -> Result<Nesting, E> {
                Ok(Nesting(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Nesting, A::Error> {
                Nesting::of_seq(seq).map(Nesting)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Nesting, A::Error> {
                Nesting::of_map(map).map(Nesting)
            }
        }
        deserializer.deserialize_any(NestingVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::{Nesting, nesting_exceeds};

    #[test]
    fn nesting_measures_skipped_values() {
        for (json, levels) in [("1", 0), (r#""[[""#, 0), ("[]", 1), (r#"{"a":[1,{"b":[]}],"c":{}}"#, 4)] {
            assert_eq!(serde_json::from_str::<Nesting>(json).unwrap().0, levels, "{json}");
        }
    }

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
