//! Building a notification's [`Tape`] (src/template/view.rs): a strict scanner for the JSON
//! amrelay forwards, and serde_json for whatever the scanner leaves — the same values and the
//! same errors as `serde_json::from_slice::<minijinja::Value>`, which this replaced (issue 28).

use std::fmt;
use std::sync::Arc;

use minijinja::Value;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::view::{Node, Tape, Text};

/// Parses `json` as `serde_json::from_slice::<minijinja::Value>` would (the same errors), into
/// the value of its root. `None`: too large for the tape's 32-bit offsets.
pub(super) fn parse(json: &[u8]) -> Option<Result<Value, serde_json::Error>> {
    let _ = u32::try_from(json.len()).ok()?;
    let doc = std::str::from_utf8(json).ok();
    // The fast path: the strict scanner below; anything it leaves (or refuses) is parsed
    // again by serde_json, which then gives its own value or error.
    let scanned = doc.and_then(|doc| {
        let mut build = Build::new(json);
        let root = Scan { b: json, pos: 0, depth: 0, build: &mut build }.document()?;
        Some((build.tape, root, doc))
    });
    let (mut tape, root, doc) = match scanned {
        Some(done) => done,
        None => {
            let mut build = Build::new(json);
            let mut deserializer = serde_json::Deserializer::from_slice(json);
            let root = match NodeSeed(&mut build).deserialize(&mut deserializer).and_then(|root| {
                deserializer.end()?;
                Ok(root)
            }) {
                Ok(root) => root,
                Err(error) => return Some(Err(error)),
            };
            // Valid UTF-8 once parsed (serde_json checks every string; the rest is ASCII).
            (build.tape, root, doc?)
        }
    };
    tape.doc = doc.into();
    Some(Ok(Arc::new(tape).value(root)))
}

/// The tape under construction; `scratch_*` hold the children of the containers still open.
struct Build<'a> {
    base: &'a [u8],
    tape: Tape,
    scratch_entries: Vec<(Text, u32)>,
    scratch_items: Vec<u32>,
}

impl<'a> Build<'a> {
    fn new(base: &'a [u8]) -> Build<'a> {
        Build { base, tape: Tape::default(), scratch_entries: Vec::new(), scratch_items: Vec::new() }
    }

    fn push(&mut self, node: Node) -> u32 {
        self.tape.nodes.push(node);
        (self.tape.nodes.len() - 1) as u32
    }

    /// A string borrowed from the input (no escapes) by its position, else copied to the arena.
    fn text(&mut self, s: &str, borrowed: bool) -> Text {
        let offset = (s.as_ptr() as usize).wrapping_sub(self.base.as_ptr() as usize);
        if borrowed && offset <= self.base.len() && s.len() <= self.base.len() - offset {
            return Text { start: offset as u32, len: s.len() as u32, arena: false };
        }
        let start = self.tape.arena.len() as u32;
        self.tape.arena.push_str(s);
        Text { start, len: s.len() as u32, arena: true }
    }

    /// Closes the array whose items are `scratch_items[mark..]`.
    fn close_seq(&mut self, mark: usize) -> u32 {
        let start = self.tape.items.len() as u32;
        self.tape.items.extend(self.scratch_items.drain(mark..));
        let len = self.tape.items.len() as u32 - start;
        self.push(Node::Seq { start, len })
    }

    /// Closes the object whose entries are `scratch_entries[mark..]`: sorted by key, the last
    /// value of a repeated key, as a `BTreeMap` keeps them.
    fn close_map(&mut self, mark: usize) -> u32 {
        let Build { base, tape, scratch_entries, .. } = self;
        let (base, arena): (&[u8], &[u8]) = (base, tape.arena.as_bytes());
        // Bytes compare as the strings do (UTF-8 keeps the order of code points).
        let key = |text: Text| {
            let source = if text.arena { arena } else { base };
            &source[text.start as usize..(text.start + text.len) as usize]
        };
        let open = &mut scratch_entries[mark..];
        // Go's encoding/json writes a map's keys sorted: most label sets are already in order.
        if !open.is_sorted_by(|(a, _), (b, _)| key(*a) <= key(*b)) {
            open.sort_by(|(a, _), (b, _)| key(*a).cmp(key(*b)));
        }
        let start = tape.entries.len() as u32;
        for (index, entry) in open.iter().enumerate() {
            let repeated = open.get(index + 1).is_some_and(|next| key(next.0) == key(entry.0));
            if !repeated {
                tape.entries.push(*entry);
            }
        }
        let len = tape.entries.len() as u32 - start;
        scratch_entries.truncate(mark);
        self.push(Node::Map { start, len })
    }
}

/// The fast path over valid UTF-8: JSON's grammar, strictly. A string without escapes is
/// borrowed where it is; a string with escapes and every number are read by serde_json (the same
/// unescaping and float parsing). Refuses (`None`) anything else, and nesting deeper than
/// [`MAX_DEPTH`], so that serde_json decides (serde_json's own limit is 128).
struct Scan<'s, 'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
    build: &'s mut Build<'a>,
}

const MAX_DEPTH: usize = 100;

impl Scan<'_, '_> {
    fn document(mut self) -> Option<u32> {
        let root = self.value()?;
        self.ws();
        (self.pos == self.b.len()).then_some(root)
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Option<u32> {
        self.ws();
        match *self.b.get(self.pos)? {
            b'{' => self.map(),
            b'[' => self.seq(),
            b'"' => {
                let text = self.string()?;
                Some(self.build.push(Node::Str(text)))
            }
            b't' => self.literal(b"true", Node::Bool(true)),
            b'f' => self.literal(b"false", Node::Bool(false)),
            b'n' => self.literal(b"null", Node::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], node: Node) -> Option<u32> {
        self.b[self.pos..].starts_with(word).then(|| {
            self.pos += word.len();
            self.build.push(node)
        })
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.b.get(self.pos) {
            self.pos += 1;
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&self.b[start..self.pos]);
        let node = NodeSeed(&mut *self.build).deserialize(&mut deserializer).ok()?;
        deserializer.end().ok()?;
        Some(node)
    }

    /// A string at `pos` (its opening quote).
    fn string(&mut self) -> Option<Text> {
        let start = self.pos + 1;
        // Most strings are short: one loop finds the end and checks for control characters.
        let end = start + self.b[start..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
        match self.b[end] {
            b'"' => {
                self.pos = end + 1;
                return Some(Text { start: start as u32, len: (end - start) as u32, arena: false });
            }
            b'\\' => {}
            _ => return None,
        }
        // Escapes: find the closing quote, and let serde_json unescape the string.
        let mut at = end;
        loop {
            match self.b.get(at)? {
                b'\\' => at += 2,
                b'"' => break,
                _ => at = at + 1 + memchr::memchr2(b'"', b'\\', self.b.get(at + 1..)?)?,
            }
        }
        let mut deserializer = serde_json::Deserializer::from_slice(&self.b[self.pos..=at]);
        let text = KeySeed(&mut *self.build).deserialize(&mut deserializer).ok()?;
        deserializer.end().ok()?;
        self.pos = at + 1;
        Some(text)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.pos += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// After a value in a container: `,` (another follows) or the closing byte.
    fn next(&mut self, close: u8) -> Option<bool> {
        self.ws();
        let byte = *self.b.get(self.pos)?;
        self.pos += 1;
        match byte {
            b',' => Some(true),
            _ if byte == close => Some(false),
            _ => None,
        }
    }

    fn seq(&mut self) -> Option<u32> {
        self.enter()?;
        let mark = self.build.scratch_items.len();
        self.ws();
        if self.b.get(self.pos) == Some(&b']') {
            self.pos += 1;
        } else {
            loop {
                let item = self.value()?;
                self.build.scratch_items.push(item);
                if !self.next(b']')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(self.build.close_seq(mark))
    }

    fn map(&mut self) -> Option<u32> {
        self.enter()?;
        let mark = self.build.scratch_entries.len();
        self.ws();
        if self.b.get(self.pos) == Some(&b'}') {
            self.pos += 1;
        } else {
            loop {
                self.ws();
                if self.b.get(self.pos) != Some(&b'"') {
                    return None;
                }
                let key = self.string()?;
                self.ws();
                if self.b.get(self.pos) != Some(&b':') {
                    return None;
                }
                self.pos += 1;
                let value = self.value()?;
                self.build.scratch_entries.push((key, value));
                if !self.next(b'}')? {
                    break;
                }
            }
        }
        self.depth -= 1;
        Some(self.build.close_map(mark))
    }
}

/// Parses one value into the tape; its node's index.
struct NodeSeed<'b, 'a>(&'b mut Build<'a>);

impl<'de, 'b, 'a: 'de> DeserializeSeed<'de> for NodeSeed<'b, 'a> {
    type Value = u32;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<u32, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'b, 'a: 'de> Visitor<'de> for NodeSeed<'b, 'a> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // minijinja's own wording: the same message if it were ever shown.
        f.write_str("any MiniJinja compatible value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<u32, E> {
        Ok(self.0.push(Node::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u32, E> {
        Ok(self.0.push(Node::I64(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u32, E> {
        Ok(self.0.push(Node::U64(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u32, E> {
        Ok(self.0.push(Node::F64(v)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<u32, E> {
        let text = self.0.text(v, true);
        Ok(self.0.push(Node::Str(text)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u32, E> {
        let text = self.0.text(v, false);
        Ok(self.0.push(Node::Str(text)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
        Ok(self.0.push(Node::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<u32, E> {
        Ok(self.0.push(Node::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u32, A::Error> {
        let build = self.0;
        let mark = build.scratch_items.len();
        while let Some(item) = seq.next_element_seed(NodeSeed(&mut *build))? {
            build.scratch_items.push(item);
        }
        Ok(build.close_seq(mark))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
        let build = self.0;
        let mark = build.scratch_entries.len();
        while let Some(key) = map.next_key_seed(KeySeed(&mut *build))? {
            let value = map.next_value_seed(NodeSeed(&mut *build))?;
            build.scratch_entries.push((key, value));
        }
        Ok(build.close_map(mark))
    }
}

/// Parses an object's key.
struct KeySeed<'b, 'a>(&'b mut Build<'a>);

impl<'de, 'b, 'a: 'de> DeserializeSeed<'de> for KeySeed<'b, 'a> {
    type Value = Text;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Text, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'b, 'a: 'de> Visitor<'de> for KeySeed<'b, 'a> {
    type Value = Text;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text, E> {
        Ok(self.0.text(v, true))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
        Ok(self.0.text(v, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(json: &str) -> (Value, Value) {
        let tree: Value = serde_json::from_str(json).unwrap();
        (parse(json.as_bytes()).unwrap().unwrap(), tree)
    }

    #[test]
    fn views_print_and_serialize_as_the_value_tree() {
        let json = r#"{"b": [1, -2, 3.5, true, null, "x\"y", {"z": "é\u00e9", "a": []}], "a": {"k": "v", "k": "w"}, "c": 18446744073709551615}"#;
        let (view, tree) = both(json);
        assert_eq!(format!("{view:?}"), format!("{tree:?}"));
        assert_eq!(view.to_string(), tree.to_string());
        assert_eq!(serde_json::to_string(&view).unwrap(), serde_json::to_string(&tree).unwrap());
        assert_eq!(view, tree);
        assert_eq!(view.get_attr("a").unwrap().get_attr("k").unwrap().as_str(), Some("w"), "the last one wins");
    }

    #[test]
    fn the_scanner_reads_what_serde_json_reads() {
        let deep = format!("{}1{}", "[".repeat(110), "]".repeat(110));
        for json in [
            r#" { "\u0061" : 1 , "a" : [ ] , "b\"" : "\ud83d\udd25\n\/" , "c" : -0 , "d" : 1e300 } "#,
            r#"[18446744073709551615, 18446744073709551616, -9223372036854775809, 1.5E-3, 0.1, 2e2, true, false, null]"#,
            "{\"x\":\t{\"y\":\r\n[\"\u{e9}\u{1f525}\", {}]}}",
            "\"top\"",
            &deep,
        ] {
            let (view, tree) = both(json);
            assert_eq!(format!("{view:?}"), format!("{tree:?}"), "{json}");
            assert_eq!(serde_json::to_string(&view).unwrap(), serde_json::to_string(&tree).unwrap(), "{json}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 128, failure_persistence: None, ..Default::default() })]

        // Regression: the views show any JSON as the value tree does (compact or indented).
        #[test]
        fn views_show_any_json_as_the_value_tree(json in any_json(), pretty in proptest::bool::ANY) {
            let text = if pretty { serde_json::to_string_pretty(&json) } else { serde_json::to_string(&json) }.unwrap();
            let (view, tree) = both(&text);
            proptest::prop_assert_eq!(format!("{view:?}"), format!("{tree:?}"));
            proptest::prop_assert_eq!(serde_json::to_string(&view).unwrap(), serde_json::to_string(&tree).unwrap());
        }
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value as Json;
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<u64>().prop_map(Json::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Json::from),
            ".{0,12}".prop_map(Json::from),
            "[\"\\\n\t\u{0}-\u{1f}<>&é🔥]{0,6}".prop_map(Json::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Json::from),
                prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn errors_are_serde_jsons() {
        for bad in [
            r#"{"a": }"#,
            "[1, 2",
            r#"{"a": 1} x"#,
            "\"\\x\"",
            &("[".repeat(200) + &"]".repeat(200)),
            "[1,]",
            r#"{"a":1,}"#,
            "[01]",
            "[-]",
            "[tru]",
            "[true1]",
            "\"a\u{1}b\"",
            r#""\ud800""#,
            "",
            "  ",
            "[1 2]",
            "[1e400]",
            r#"{"a" 1}"#,
            r#"{1: 2}"#,
        ] {
            let tree = serde_json::from_str::<Value>(bad).unwrap_err().to_string();
            let view = parse(bad.as_bytes()).unwrap().unwrap_err().to_string();
            assert_eq!(view, tree, "{bad}");
        }
    }
}
