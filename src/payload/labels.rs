//! Borrowed strings and label sets decoded straight from the request body.
//!
//! Label names and values borrow from the body when they contain no JSON escapes, which is the
//! common case, so decoding a batch allocates little beyond the vectors that hold the labels.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, Visitor};

use crate::rule::{LabelIndex, Labels};

/// A string borrowed from the input when possible.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// Labels or annotations of one alert, sorted by name with duplicates resolved (last wins, as
/// Go's JSON decoder does), so lookups can binary-search and common pairs can be merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSet<'a> {
    pairs: Vec<(Str<'a>, Str<'a>)>,
    /// For each slot of a `LabelIndex`: the position of that label in `pairs`, `NONE`, or
    /// `BY_NAME` for a position too large to store (then the lookup goes by name, never wrongly
    /// "absent": an absent label satisfies `NotIn`/`!=`, so misreading one lets alerts through).
    slots: Slots,
}

const NONE: u32 = u32::MAX;
const BY_NAME: u32 = u32::MAX - 1;

/// Slots kept inline: rules usually name a handful of labels, and a box per alert was one
/// allocation in four of a decode.
const INLINE_SLOTS: usize = 8;

/// The slot positions of a set: inline up to [`INLINE_SLOTS`], boxed beyond.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slots {
    Inline { len: u8, slots: [u32; INLINE_SLOTS] },
    Boxed(Box<[u32]>),
}

impl Default for Slots {
    fn default() -> Self {
        Slots::Inline { len: 0, slots: [NONE; INLINE_SLOTS] }
    }
}

impl Slots {
    fn collect(positions: impl ExactSizeIterator<Item = u32>) -> Self {
        let len = positions.len();
        if len > INLINE_SLOTS {
            return Slots::Boxed(positions.collect());
        }
        let mut slots = [NONE; INLINE_SLOTS];
        for (slot, position) in slots.iter_mut().zip(positions) {
            *slot = position;
        }
        Slots::Inline { len: len as u8, slots }
    }

    #[inline]
    fn get(&self, slot: usize) -> Option<&u32> {
        match self {
            Slots::Inline { len, slots } => slots[..usize::from(*len)].get(slot),
            Slots::Boxed(slots) => slots.get(slot),
        }
    }
}

impl<'a> LabelSet<'a> {
    /// Builds a set from pairs in any order.
    pub fn from_pairs(mut pairs: Vec<(Str<'a>, Str<'a>)>) -> Self {
        // Alertmanager (Go) writes map keys sorted, so the sort is usually skipped. A stable sort
        // keeps equal names in input order; keeping the last of each run gives last-wins semantics.
        if !pairs.is_sorted_by(|a, b| a.0 <= b.0) {
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
        }
        let mut deduped: Vec<(Str<'a>, Str<'a>)> = Vec::with_capacity(pairs.len());
        for pair in pairs {
            match deduped.last_mut() {
                Some(last) if last.0 == pair.0 => *last = pair,
                _ => deduped.push(pair),
            }
        }
        LabelSet { pairs: deduped, slots: Slots::default() }
    }

    /// Resolves the names of `index` once, so that rules read labels by slot.
    pub fn index(&mut self, index: &LabelIndex) {
        let pairs = &self.pairs;
        self.slots =
            Slots::collect(index.names().iter().map(
                |name| match pairs.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
                    Ok(position) => u32::try_from(position).ok().filter(|&p| p < BY_NAME).unwrap_or(BY_NAME),
                    Err(_) => NONE,
                },
            ));
    }

    /// The pairs, sorted by name.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The raw value of a label, including an empty one.
    pub fn value(&self, name: &str) -> Option<&str> {
        let found = self.pairs.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok()?;
        Some(self.pairs[found].1.as_str())
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

impl Labels for LabelSet<'_> {
    #[inline]
    fn get(&self, name: &str) -> Option<&str> {
        self.value(name).filter(|v| !v.is_empty())
    }

    #[inline]
    fn get_slot(&self, slot: u32, name: &str) -> Option<&str> {
        match self.slots.get(slot as usize) {
            Some(&NONE) => None,
            Some(&BY_NAME) | None => self.get(name),
            Some(&position) => Some(self.pairs[position as usize].1.as_str()).filter(|v| !v.is_empty()),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LabelSet<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        SetSeed { capacity: 8 }.deserialize(deserializer)
    }
}

/// A [`LabelSet`] read with room for `capacity` pairs first (serde_json does not tell how many
/// there are): the decoder expects more labels than annotations, and a vector grown from 8 to
/// 16 for 10 labels was one allocation in five of a decode.
pub(super) struct SetSeed {
    pub capacity: usize,
}

impl<'de> DeserializeSeed<'de> for SetSeed {
    type Value = LabelSet<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        struct SetVisitor {
            capacity: usize,
        }
        impl<'de> Visitor<'de> for SetVisitor {
            type Value = LabelSet<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(self.capacity.min(MAX_CAPACITY));
                while let Some(pair) = map.next_entry::<Str<'de>, Str<'de>>()? {
                    pairs.push(pair);
                }
                // Alertmanager (Go) writes map keys sorted: then one comparison per pair both
                // checks the order and finds repeated names, and the vector is kept as it is.
                if !pairs.is_sorted_by(|a: &(Str, Str), b| a.0 < b.0) {
                    pairs.sort_by(|a: &(Str, Str), b| a.0.cmp(&b.0));
                    // A repeated name is refused rather than resolved: JSON parsers disagree on
                    // which value wins, and a downstream must not see another label than amrelay
                    // matched.
                    if let Some(pair) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
                        return Err(de::Error::custom(format_args!("duplicate label name {:?}", pair[0].0.as_str())));
                    }
                }
                Ok(LabelSet { pairs, slots: Slots::default() })
            }
        }
        deserializer.deserialize_map(SetVisitor { capacity: self.capacity })
    }
}

/// The most pairs a set reserves before it has read any.
const MAX_CAPACITY: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_refuses_repeated_names_and_borrows() {
        let repeated = serde_json::from_str::<LabelSet>(r#"{"b":"2","a":"1","b":"3"}"#).unwrap_err();
        assert!(repeated.to_string().contains(r#"duplicate label name "b""#), "{repeated}");
        let set: LabelSet = serde_json::from_str(r#"{"b":"3","a":"1","c":""}"#).unwrap();
        assert_eq!(set.pairs().collect::<Vec<_>>(), vec![("a", "1"), ("b", "3"), ("c", "")]);
        assert!(matches!(set.pairs[0].0.0, Cow::Borrowed(_)));
        assert_eq!(set.value("c"), Some(""));
        assert_eq!(set.get("c"), None, "empty counts as absent");
    }

    /// More pairs than the room reserved first are all kept (the vector grows).
    #[test]
    fn sets_larger_than_their_first_room_are_whole() {
        let json =
            format!("{{{}}}", (0..40).rev().map(|i| format!(r#""l{i:02}":"{i}""#)).collect::<Vec<_>>().join(","));
        let mut de = serde_json::Deserializer::from_str(&json);
        let set = SetSeed { capacity: 4 }.deserialize(&mut de).unwrap();
        assert_eq!(set.len(), 40);
        assert_eq!(set.pairs().next(), Some(("l00", "0")));
        assert_eq!(set.value("l39"), Some("39"));
    }

    #[test]
    fn unescapes_when_needed() {
        let set: LabelSet = serde_json::from_str(r#"{"msg":"a\"b\u00e9"}"#).unwrap();
        assert_eq!(set.get("msg"), Some("a\"bé"));
    }

    #[test]
    fn slots_answer_like_names() {
        let mut index = LabelIndex::default();
        let (a, c, missing) = (index.intern("a"), index.intern("c"), index.intern("zz"));
        let mut set: LabelSet = serde_json::from_str(r#"{"c":"","a":"1"}"#).unwrap();
        assert_eq!(set.get_slot(a, "a"), Some("1"), "not indexed yet: by name");
        set.index(&index);
        assert_eq!(set.get_slot(a, "a"), Some("1"));
        assert_eq!(set.get_slot(c, "c"), None, "empty counts as absent");
        assert_eq!(set.get_slot(missing, "zz"), None);
    }

    /// More names than fit inline are boxed, and still answer like names.
    #[test]
    fn slots_beyond_the_inline_ones_answer_like_names() {
        let mut index = LabelIndex::default();
        let slots: Vec<u32> = (0..INLINE_SLOTS + 3).map(|i| index.intern(&format!("n{i:02}"))).collect();
        let mut set: LabelSet = serde_json::from_str(r#"{"n00":"a","n09":"b","n10":""}"#).unwrap();
        set.index(&index);
        assert!(matches!(set.slots, Slots::Boxed(_)));
        let found: Vec<_> = slots.iter().map(|&slot| set.get_slot(slot, &format!("n{slot:02}"))).collect();
        let expected: Vec<_> =
            (0..INLINE_SLOTS + 3).map(|i| [(0, "a"), (9, "b")].iter().find(|p| p.0 == i).map(|p| p.1)).collect();
        assert_eq!(found, expected);
    }

    /// Regression: slots were `u16`, so a label at position 65,535 or beyond read as absent and
    /// `severity NotIn [critical]` let a critical alert through.
    #[test]
    fn a_label_beyond_position_65535_is_found_by_slot() {
        let mut index = LabelIndex::default();
        let severity = index.intern("severity");
        let mut pairs: Vec<_> =
            (0..70_000).map(|i| (Str(format!("a{i:05}").into()), Str(Cow::Borrowed("x")))).collect();
        pairs.push((Str(Cow::Borrowed("severity")), Str(Cow::Borrowed("critical"))));
        let mut set = LabelSet::from_pairs(pairs);
        set.index(&index);
        assert_eq!(set.get_slot(severity, "severity"), Some("critical"));
    }

    #[test]
    fn rejects_non_string_values() {
        for bad in [r#"{"a":null}"#, r#"{"a":1}"#, r#"{"a":{}}"#, r#"[]"#] {
            assert!(serde_json::from_str::<LabelSet>(bad).is_err(), "{bad}");
        }
    }
}
