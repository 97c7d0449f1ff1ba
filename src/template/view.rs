//! The notification as templates see it, read lazily: its JSON is parsed once into a flat
//! [`Tape`] (one node per value, no allocation per value; built in tape.rs), and templates read
//! it through minijinja objects that make a value only when a template asks for it.
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

/// A string of the notification: in its text as received (no escapes), or unescaped into the
/// tape's arena.
#[derive(Debug, Clone, Copy)]
pub(super) struct Text {
    pub start: u32,
    pub len: u32,
    pub arena: bool,
}

/// One JSON value.
#[derive(Debug, Clone, Copy)]
pub(super) enum Node {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Text),
    /// `entries[start..start + len]`, sorted by key, one entry per key.
    Map {
        start: u32,
        len: u32,
    },
    /// `items[start..start + len]`.
    Seq {
        start: u32,
        len: u32,
    },
}

/// A parsed notification: its text, the strings that had escapes, and its values.
#[derive(Default)]
pub(super) struct Tape {
    pub doc: Box<str>,
    pub arena: String,
    pub nodes: Vec<Node>,
    pub entries: Vec<(Text, u32)>,
    pub items: Vec<u32>,
}

impl fmt::Debug for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Alert text is not for logs.
        f.debug_struct("Tape").field("nodes", &self.nodes.len()).finish_non_exhaustive()
    }
}

impl Tape {
    fn text(&self, text: Text) -> &str {
        let source = if text.arena { &self.arena[..] } else { &self.doc[..] };
        &source[text.start as usize..(text.start + text.len) as usize]
    }

    /// The value of node `index`, as minijinja's deserializer would have made it.
    pub(super) fn value(self: &Arc<Self>, index: u32) -> Value {
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
            Box::new(this.entries().iter().map(|(k, v)| (Value::from(this.tape.text(*k)), this.tape.value(*v))))
        })
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.len as usize)
    }
}

/// An object of the notification read in place, for Rust code that reads many alerts' fields
/// (`fit`'s lines): no value is made for a field that is a string.
#[derive(Clone, Copy)]
pub(super) struct MapRef<'v> {
    tape: &'v Tape,
    start: u32,
    len: u32,
}

/// A field as [`MapRef::get`] finds it.
pub(super) enum Field<'v> {
    Missing,
    Str(&'v str),
    Map(MapRef<'v>),
    /// A number, boolean, null or array: read it as a value.
    Other,
}

impl<'v> MapRef<'v> {
    /// The object `value` is, when it is a view of a notification.
    pub(super) fn of(value: &'v Value) -> Option<MapRef<'v>> {
        let view = value.downcast_object_ref::<MapView>()?;
        Some(MapRef { tape: &view.tape, start: view.start, len: view.len })
    }

    pub(super) fn get(self, key: &str) -> Field<'v> {
        let entries = &self.tape.entries[self.start as usize..(self.start + self.len) as usize];
        let Ok(at) = entries.binary_search_by(|(k, _)| self.tape.text(*k).cmp(key)) else { return Field::Missing };
        match self.tape.nodes[entries[at].1 as usize] {
            Node::Str(text) => Field::Str(self.tape.text(text)),
            Node::Map { start, len } => Field::Map(MapRef { tape: self.tape, start, len }),
            _ => Field::Other,
        }
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
