//! The notification as templates see it, read lazily: its JSON is parsed once into a flat
//! [`Tape`] (one node per value, no allocation per value), and templates read it through
//! minijinja objects that make a value only when a template asks for it.
//!
//! Why: building a minijinja value tree of the whole notification (a reference-counted map per
//! object, a string per label) was most of a preset's cost per render, although a preset reads a
//! few fields of each alert (issue 28). The views behave exactly as the tree did — the same
//! kinds, the same key order (sorted, as minijinja's maps keep them; the last of a repeated key
//! wins), the same numbers (`u64`, `i64`, `f64` as serde_json reads them), the same errors (the
//! same serde_json parser) — so templates render byte for byte what they rendered before
//! (`pinned.rs` holds them to it).

use std::fmt;
use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A string of the notification: in its text as received (no escapes), or unescaped into the
/// tape's arena.
#[derive(Debug, Clone, Copy)]
struct Text {
    start: u32,
    len: u32,
    arena: bool,
}

/// One JSON value.
#[derive(Debug, Clone, Copy)]
enum Node {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Text),
    /// `entries[start..start + len]`, sorted by key, one entry per key.
    Map { start: u32, len: u32 },
    /// `items[start..start + len]`.
    Seq { start: u32, len: u32 },
}

/// A parsed notification: its text, the strings that had escapes, and its values.
#[derive(Default)]
pub(super) struct Tape {
    doc: Box<str>,
    arena: String,
    nodes: Vec<Node>,
    entries: Vec<(Text, u32)>,
    items: Vec<u32>,
}

impl fmt::Debug for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Alert text is not for logs.
        f.debug_struct("Tape").field("nodes", &self.nodes.len()).finish_non_exhaustive()
    }
}

impl Tape {
    /// Parses `json` as `serde_json::from_slice::<minijinja::Value>` would (the same errors), into
    /// the value of its root. `None`: too large for the tape's 32-bit offsets.
    pub(super) fn parse(json: &[u8]) -> Option<Result<Value, serde_json::Error>> {
        let _ = u32::try_from(json.len()).ok()?;
        let mut builder = Build { base: json, tape: Tape::default(), scratch_entries: Vec::new(), scratch_items: Vec::new() };
        let mut deserializer = serde_json::Deserializer::from_slice(json);
        let root = match NodeSeed(&mut builder).deserialize(&mut deserializer).and_then(|root| {
            deserializer.end()?;
            Ok(root)
        }) {
            Ok(root) => root,
            Err(error) => return Some(Err(error)),
        };
        let mut tape = builder.tape;
        // Valid UTF-8 once parsed (serde_json checks every string; the rest is ASCII).
        tape.doc = std::str::from_utf8(json).ok()?.into();
        Some(Ok(Arc::new(tape).value(root)))
    }

    fn text(&self, text: Text) -> &str {
        let source = if text.arena { &self.arena[..] } else { &self.doc[..] };
        &source[text.start as usize..(text.start + text.len) as usize]
    }

    /// The value of node `index`, as minijinja's deserializer would have made it.
    fn value(self: &Arc<Self>, index: u32) -> Value {
        match self.nodes[index as usize] {
            Node::Null => Value::from(()),
            Node::Bool(b) => Value::from(b),
            Node::U64(n) => Value::from(n),
            Node::I64(n) => Value::from(n),
            Node::F64(n) => Value::from(n),
            Node::Str(text) => Value::from(self.text(text)),
            Node::Map { start, len } => Value::from_object(MapView { tape: self.clone(), start, len }),
            Node::Seq { start, len } => Value::from_object(SeqView { tape: self.clone(), start, len }),
        }
    }
}

/// A JSON object: behaves as minijinja's `BTreeMap<Value, Value>`.
struct MapView {
    tape: Arc<Tape>,
    start: u32,
    len: u32,
}

impl MapView {
    fn entries(&self) -> &[(Text, u32)] {
        &self.tape.entries[self.start as usize..(self.start + self.len) as usize]
    }

    fn find(&self, key: &str) -> Option<Value> {
        let entries = self.entries();
        let at = entries.binary_search_by(|(k, _)| self.tape.text(*k).cmp(key)).ok()?;
        Some(self.tape.value(entries[at].1))
    }
}

impl fmt::Debug for MapView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapView").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Object for MapView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        // Only a string equals a string key (minijinja compares kinds first).
        self.find(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.find(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.mapped_rev_key_value_enumerator(|this| {
            Box::new(
                this.entries().iter().map(|(k, v)| (Value::from(this.tape.text(*k)), this.tape.value(*v))),
            )
        })
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.len as usize)
    }
}

/// A JSON array: behaves as minijinja's `Vec<Value>`.
struct SeqView {
    tape: Arc<Tape>,
    start: u32,
    len: u32,
}

impl fmt::Debug for SeqView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeqView").field("len", &self.len).finish_non_exhaustive()
    }
}

impl Object for SeqView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let index = key.as_usize()?;
        (index < self.len as usize).then(|| self.tape.value(self.tape.items[self.start as usize + index]))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.len as usize)
    }
}

/// The tape under construction; `scratch_*` hold the children of the containers still open.
struct Build<'a> {
    base: &'a [u8],
    tape: Tape,
    scratch_entries: Vec<(Text, u32)>,
    scratch_items: Vec<u32>,
}

impl Build<'_> {
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

    fn key(&self, text: Text) -> &str {
        let source = if text.arena { self.tape.arena.as_bytes() } else { self.base };
        std::str::from_utf8(&source[text.start as usize..(text.start + text.len) as usize]).unwrap_or_default()
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
        let start = build.tape.items.len() as u32;
        build.tape.items.extend(build.scratch_items.drain(mark..));
        let len = build.tape.items.len() as u32 - start;
        Ok(build.push(Node::Seq { start, len }))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
        let build = self.0;
        let mark = build.scratch_entries.len();
        while let Some(key) = map.next_key_seed(KeySeed(&mut *build))? {
            let value = map.next_value_seed(NodeSeed(&mut *build))?;
            build.scratch_entries.push((key, value));
        }
        // As a BTreeMap keeps them: sorted by key, the last value of a repeated key.
        let mut open = build.scratch_entries.split_off(mark);
        open.sort_by(|(a, _), (b, _)| build.key(*a).cmp(build.key(*b)));
        let start = build.tape.entries.len() as u32;
        for (index, entry) in open.iter().enumerate() {
            let repeated = open.get(index + 1).is_some_and(|next| build.key(next.0) == build.key(entry.0));
            if !repeated {
                build.tape.entries.push(*entry);
            }
        }
        let len = build.tape.entries.len() as u32 - start;
        Ok(build.push(Node::Map { start, len }))
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
        (Tape::parse(json.as_bytes()).unwrap().unwrap(), tree)
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
    fn errors_are_serde_jsons() {
        for bad in [r#"{"a": }"#, "[1, 2", r#"{"a": 1} x"#, "\"\\x\"", &("[".repeat(200) + &"]".repeat(200))] {
            let tree = serde_json::from_str::<Value>(bad).unwrap_err().to_string();
            let view = Tape::parse(bad.as_bytes()).unwrap().unwrap_err().to_string();
            assert_eq!(view, tree, "{bad}");
        }
    }
}
