//! One alert of a notification: the fields routing (and history) reads, parsed by serde_json
//! straight from the body, and how deep the alert nests, so that the decoder enforces
//! `max_json_depth` in the same pass.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::depth::Nesting;
use super::labels::{LabelSet, SetSeed, Str};

/// Whether an alert (or a notification) is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// A status as the decoder reads it: only a JSON string. (serde's derive for an enum also takes
/// `{"firing": null}`, which no Alertmanager sends and a Go downstream would refuse; reading a
/// string is also cheaper.)
pub(super) struct StatusText(pub Status);

impl<'de> Deserialize<'de> for StatusText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StatusVisitor;
        impl Visitor<'_> for StatusVisitor {
            type Value = StatusText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`firing` or `resolved`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "firing" => Ok(StatusText(Status::Firing)),
                    "resolved" => Ok(StatusText(Status::Resolved)),
                    // The same words as serde's derive used to answer.
                    other => Err(E::unknown_variant(other, &["firing", "resolved"])),
                }
            }
        }
        deserializer.deserialize_str(StatusVisitor)
    }
}

/// One alert: its JSON text as received plus the fields routing looks at.
#[derive(Debug)]
pub struct Alert<'a> {
    pub raw: &'a str,
    pub status: Status,
    pub labels: LabelSet<'a>,
    pub annotations: LabelSet<'a>,
    /// Alertmanager's `fingerprint`, for the history record (`None` when absent or not a string:
    /// routing never reads it, so it refuses nothing).
    pub fingerprint: Option<Str<'a>>,
}

/// The fields of an alert routing (and history) reads; the others are only checked for smuggled
/// spellings and skipped.
pub(super) struct AlertFields<'a> {
    pub status: Status,
    pub labels: LabelSet<'a>,
    pub annotations: LabelSet<'a>,
    pub fingerprint: Option<Str<'a>>,
    /// How many levels the deepest field value opens (1 for `labels`): the alert object is
    /// itself 3 deep in the body, so the decoder refuses the body when `3 + nesting` is over
    /// `max_json_depth`.
    pub nesting: usize,
}

/// Room reserved for an alert's labels and annotations before they are read: a kube-prometheus
/// alert carries 10 to 20 labels, and a summary, a description and a runbook URL.
const LABELS_CAPACITY: usize = 16;
const ANNOTATIONS_CAPACITY: usize = 4;

/// The fields of one alert, as Alertmanager spells them.
const ALERT_FIELDS: [&str; 7] =
    ["status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"];

/// The known field that `key` spells differently, as Go's `encoding/json` would match it: ASCII
/// case folded, plus the two non-ASCII letters whose simple case folding reaches an ASCII one
/// (`ſ` → `s`, the Kelvin sign `K` → `k`). Such a key is refused: amrelay would pass it on
/// untouched beside the field it filtered, and a Go downstream would read either.
pub(super) fn smuggled<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let folded = |c: char| match c {
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c.to_ascii_lowercase(),
    };
    known
        .iter()
        .copied()
        .find(|name| *name != key && key.chars().map(folded).eq(name.chars().map(|c| c.to_ascii_lowercase())))
}

impl<'de: 'a, 'a> Deserialize<'de> for AlertFields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = AlertFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an alert object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut status, mut labels, mut annotations, mut fingerprint) = (None, None, None, None);
                let mut nesting = 0;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    let duplicate = || A::Error::custom(format_args!("duplicate field `{}`", key.as_str()));
                    match key.as_str() {
                        "status" if status.is_some() => return Err(duplicate()),
                        "status" => status = Some(map.next_value::<StatusText>()?.0),
                        "labels" if labels.is_some() => return Err(duplicate()),
                        "labels" => {
                            labels = Some(map.next_value_seed(SetSeed { capacity: LABELS_CAPACITY })?);
                            nesting = nesting.max(1);
                        }
                        "annotations" if annotations.is_some() => return Err(duplicate()),
                        "annotations" => {
                            annotations = Some(map.next_value_seed(SetSeed { capacity: ANNOTATIONS_CAPACITY })?);
                            nesting = nesting.max(1);
                        }
                        "fingerprint" => {
                            let value = map.next_value::<IfString<'de>>()?;
                            nesting = nesting.max(value.nesting);
                            fingerprint = value.text;
                        }
                        other => {
                            if let Some(known) = smuggled(other, &ALERT_FIELDS) {
                                return Err(A::Error::custom(format_args!(
                                    "field `{other}` differs from `{known}` only by case: refused, as Go decoders \
                                     would read it as `{known}`"
                                )));
                            }
                            nesting = nesting.max(map.next_value::<Nesting>()?.0);
                        }
                    }
                }
                Ok(AlertFields {
                    status: status.ok_or_else(|| A::Error::missing_field("status"))?,
                    labels: labels.ok_or_else(|| A::Error::missing_field("labels"))?,
                    annotations: annotations.unwrap_or_default(),
                    fingerprint,
                    nesting,
                })
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// A value kept when it is a string and skipped otherwise: what a field nothing depends on is
/// read as, so that an odd value there refuses nothing (but its nesting still counts).
struct IfString<'a> {
    text: Option<Str<'a>>,
    nesting: usize,
}

impl<'de: 'a, 'a> Deserialize<'de> for IfString<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IfStringVisitor;
        impl<'de> Visitor<'de> for IfStringVisitor {
            type Value = IfString<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(IfString { text: Some(Str(Cow::Borrowed(v))), nesting: 0 })
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(IfString { text: Some(Str(Cow::Owned(v.to_owned()))), nesting: 0 })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(IfString { text: None, nesting: 0 })
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(IfString { text: None, nesting: 0 })
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(IfString { text: None, nesting: 0 })
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(IfString { text: None, nesting: 0 })
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(IfString { text: None, nesting: 0 })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                let nesting = Nesting::of_seq(seq)?;
                Ok(IfString { text: None, nesting })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let nesting = Nesting::of_map(map)?;
                Ok(IfString { text: None, nesting })
            }
        }
        deserializer.deserialize_any(IfStringVisitor)
    }
}
