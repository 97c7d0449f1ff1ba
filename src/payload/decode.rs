//! Decoding Alertmanager's webhook body (version "4") in one pass, without copying what we pass on.
//!
//! The top-level object and the `alerts` array are walked by a small cursor that handles only
//! structure (`{ } [ ] , :` and white space); every value in between is parsed exactly once by
//! serde_json, which also validates it. Each alert is parsed for the three fields routing needs —
//! `status`, `labels`, `annotations` — and kept as the exact JSON text received, so it is passed
//! on byte for byte. Top-level fields amrelay does not know (`notification_reason`,
//! `routeLabels`, …) are kept as raw JSON too, so a newer Alertmanager's additions reach the
//! downstream untouched.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::alert::{Alert, AlertFields, StatusText, smuggled};
use super::depth::{Nesting, nesting_exceeds};
use super::labels::Str;
use crate::rule::LabelIndex;

/// The fields of a version "4" notification, as Alertmanager spells them.
const TOP_LEVEL_FIELDS: [&str; 10] = [
    "receiver",
    "status",
    "alerts",
    "groupLabels",
    "commonLabels",
    "commonAnnotations",
    "externalURL",
    "version",
    "groupKey",
    "truncatedAlerts",
];

/// Who sent a notification: the two webhook payloads amrelay takes share one shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Alertmanager's webhook, `version: "4"`.
    Alertmanager,
    /// Grafana alerting's webhook contact point, `version: "1"`: Alertmanager's fields plus
    /// `orgId`, `state`, `title`, `message` at the top and `dashboardURL`, `panelURL`,
    /// `silenceURL`, `values`, `valueString`, `imageURL` per alert, all kept.
    Grafana,
}

impl Source {
    /// The `version` its payload carries.
    pub fn version(self) -> &'static str {
        match self {
            Source::Alertmanager => "4",
            Source::Grafana => "1",
        }
    }
}

/// A decoded webhook notification, borrowing from the request body.
#[derive(Debug)]
pub struct Notification<'a> {
    /// Whose payload it is (its `version`).
    pub source: Source,
    pub receiver: Option<&'a RawValue>,
    pub group_labels: Option<&'a RawValue>,
    pub external_url: Option<&'a RawValue>,
    pub group_key: Str<'a>,
    pub truncated_alerts: u64,
    pub alerts: Vec<Alert<'a>>,
    /// Top-level fields amrelay does not interpret, in the order received.
    pub extras: Vec<(Str<'a>, &'a RawValue)>,
}

/// Why a body is not an acceptable Alertmanager notification.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not valid UTF-8")]
    NotUtf8,
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("alerts[{index}]: {message}")]
    Alert { index: usize, message: String },
    #[error(
        "unsupported webhook version {0:?}: amrelay accepts Alertmanager's version \"4\" and Grafana alerting's \"1\""
    )]
    Version(String),
    #[error("missing field `version`: not an Alertmanager webhook payload")]
    MissingVersion,
    #[error("missing field `alerts`: not an Alertmanager webhook payload")]
    MissingAlerts,
    /// Arrays and objects nest deeper than the limit given to [`decode_within`].
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
}

/// Decodes and checks a request body, however deep it nests (what was accepted once is read
/// again this way: history, mutes, explanations).
pub fn decode(body: &[u8]) -> Result<Notification<'_>, DecodeError> {
    decode_with(body, &LabelIndex::default())
}

/// Decodes a body and resolves the label names of `index` in every alert, for fast rules.
pub fn decode_with<'a>(body: &'a [u8], index: &LabelIndex) -> Result<Notification<'a>, DecodeError> {
    decode_within(body, index, usize::MAX)
}

/// [`decode_with`], refusing a body whose arrays and objects nest deeper than `max_depth` (the
/// top-level object counts 1) with [`DecodeError::TooDeep`], in the same pass.
///
/// A body refused for any reason that also nests too deep is refused as `TooDeep`, whatever
/// came first: exactly what a separate pre-check would answer. The reference scan runs only on
/// that (refused) path.
pub fn decode_within<'a>(
    body: &'a [u8],
    index: &LabelIndex,
    max_depth: usize,
) -> Result<Notification<'a>, DecodeError> {
    decode_body(body, index, max_depth).map_err(|error| match error {
        // No body nests deeper than it is long.
        DecodeError::TooDeep(_) => error,
        _ if max_depth < body.len() && nesting_exceeds(body, max_depth) => DecodeError::TooDeep(max_depth),
        _ => error,
    })
}

fn decode_body<'a>(body: &'a [u8], index: &LabelIndex, max_depth: usize) -> Result<Notification<'a>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    let mut cursor = Cursor { text, pos: 0, max_depth };
    let mut top = TopLevel::default();
    cursor.object(|cursor, key| top.field(cursor, key, index))?;
    cursor.skip_ws();
    if cursor.pos != text.len() {
        return Err(cursor.error("trailing characters after the JSON object"));
    }
    let source = match top.version.as_ref().map(Str::as_str) {
        Some("4") => Source::Alertmanager,
        Some("1") => Source::Grafana,
        Some(other) => return Err(DecodeError::Version(other.to_owned())),
        None => return Err(DecodeError::MissingVersion),
    };
    Ok(Notification {
        source,
        receiver: top.receiver,
        group_labels: top.group_labels,
        external_url: top.external_url,
        group_key: top.group_key.unwrap_or_default(),
        truncated_alerts: top.truncated_alerts.unwrap_or(0),
        alerts: top.alerts.ok_or(DecodeError::MissingAlerts)?,
        extras: top.extras,
    })
}

/// The top-level fields, as they are found.
#[derive(Default)]
struct TopLevel<'a> {
    receiver: Option<&'a RawValue>,
    group_labels: Option<&'a RawValue>,
    external_url: Option<&'a RawValue>,
    version: Option<Str<'a>>,
    group_key: Option<Str<'a>>,
    truncated_alerts: Option<u64>,
    alerts: Option<Vec<Alert<'a>>>,
    status_seen: bool,
    common_labels_seen: bool,
    common_annotations_seen: bool,
    extras: Vec<(Str<'a>, &'a RawValue)>,
}

impl<'a> TopLevel<'a> {
    fn field(&mut self, cursor: &mut Cursor<'a>, key: Str<'a>, index: &LabelIndex) -> Result<(), DecodeError> {
        let duplicate = || DecodeError::Json(format!("duplicate field `{}`", key.as_str()));
        match key.as_str() {
            "receiver" => set_once(&mut self.receiver, cursor.raw_of_kind("receiver", b'"', "a string")?, duplicate),
            "groupLabels" => {
                let raw = cursor.raw_of_kind("groupLabels", b'{', "an object")?;
                set_once(&mut self.group_labels, cursor.within(raw)?, duplicate)
            }
            "externalURL" => {
                set_once(&mut self.external_url, cursor.raw_of_kind("externalURL", b'"', "a string")?, duplicate)
            }
            "version" => set_once(&mut self.version, cursor.value()?, duplicate),
            "groupKey" => set_once(&mut self.group_key, cursor.value()?, duplicate),
            "truncatedAlerts" => set_once(&mut self.truncated_alerts, cursor.value()?, duplicate),
            "alerts" => {
                let alerts = cursor.alerts(index)?;
                set_once(&mut self.alerts, alerts, duplicate)
            }
            // Recomputed per receiver; only their shape is checked.
            "status" => {
                once(&mut self.status_seen, duplicate)?;
                cursor.value::<StatusText>().map(drop)
            }
            "commonLabels" => {
                once(&mut self.common_labels_seen, duplicate)?;
                cursor.skipped()
            }
            "commonAnnotations" => {
                once(&mut self.common_annotations_seen, duplicate)?;
                cursor.skipped()
            }
            other => {
                if let Some(known) = smuggled(other, &TOP_LEVEL_FIELDS) {
                    return Err(DecodeError::Json(format!(
                        "field `{other}` differs from `{known}` only by case: refused, as Go decoders would read \
                         it as `{known}`"
                    )));
                }
                if self.extras.iter().any(|(k, _)| *k == key) {
                    return Err(duplicate());
                }
                let value = cursor.value()?;
                self.extras.push((key, cursor.within(value)?));
                Ok(())
            }
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, duplicate: impl Fn() -> DecodeError) -> Result<(), DecodeError> {
    if slot.replace(value).is_some() {
        return Err(duplicate());
    }
    Ok(())
}

fn once(seen: &mut bool, duplicate: impl Fn() -> DecodeError) -> Result<(), DecodeError> {
    if std::mem::replace(seen, true) {
        return Err(duplicate());
    }
    Ok(())
}

/// The most alerts reserved from the estimate after the first one; more grow the vector.
const MAX_RESERVED_ALERTS: usize = 256;

/// A position in the body; values are handed to serde_json, structure is walked here.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    /// `max_json_depth`: the top-level object is 1 deep, `alerts` 2, an alert 3, its labels 4.
    max_depth: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && matches!(bytes[self.pos], b' ' | b'\n' | b'\r' | b'\t') {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Line and column (1-based) of the current position, for error messages.
    /// Counted in bytes, as serde_json counts them, so that any offset is valid (an offset from
    /// an error may fall inside a multi-byte character).
    fn position(&self, pos: usize) -> (usize, usize) {
        let before = &self.text.as_bytes()[..pos.min(self.text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rposition(|&b| b == b'\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
        (line, column)
    }

    fn error(&self, what: &str) -> DecodeError {
        let (line, column) = self.position(self.pos);
        DecodeError::Json(format!("{what} at line {line} column {column}"))
    }

    fn expect(&mut self, byte: u8, what: &str) -> Result<(), DecodeError> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else if self.peek().is_none() {
            Err(self.error("EOF while parsing"))
        } else {
            Err(self.error(&format!("expected {what}")))
        }
    }

    /// Parses one JSON value at the cursor with serde_json and moves past it.
    fn value<T: Deserialize<'a>>(&mut self) -> Result<T, DecodeError> {
        self.value_with(DecodeError::Json)
    }

    fn value_with<T: Deserialize<'a>>(&mut self, wrap: impl Fn(String) -> DecodeError) -> Result<T, DecodeError> {
        self.skip_ws();
        let start = self.pos;
        let rest: &'a str = &self.text[start..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<T>();
        match stream.next() {
            Some(Ok(value)) => {
                self.pos = start + stream.byte_offset();
                Ok(value)
            }
            Some(Err(e)) => {
                // serde_json counts from where this value began: report the body's position.
                let message = e.to_string();
                let message = message.rfind(" at line ").map_or(message.as_str(), |at| &message[..at]);
                let offset = start + line_column_to_offset(rest, e.line(), e.column());
                let (line, column) = self.position(offset);
                Err(wrap(format!("{message} at line {line} column {column}")))
            }
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    /// Whether a value opening `levels` levels, found `at` levels deep, stays within the limit.
    fn fits(&self, at: usize, levels: usize) -> Result<(), DecodeError> {
        match at.checked_add(levels) {
            Some(depth) if depth <= self.max_depth => Ok(()),
            _ => Err(DecodeError::TooDeep(self.max_depth)),
        }
    }

    /// A top-level value skipped, its nesting checked (it sits 1 deep).
    fn skipped(&mut self) -> Result<(), DecodeError> {
        let Nesting(levels) = self.value()?;
        self.fits(1, levels)
    }

    /// A top-level value kept as raw JSON, its nesting checked. Raw values are usually short:
    /// one that is shorter than the room left cannot nest too deep and is not scanned.
    fn within(&self, raw: &'a RawValue) -> Result<&'a RawValue, DecodeError> {
        let room = self.max_depth.saturating_sub(1);
        if raw.get().len() > room && nesting_exceeds(raw.get().as_bytes(), room) {
            return Err(DecodeError::TooDeep(self.max_depth));
        }
        Ok(raw)
    }

    /// A raw value whose JSON text must start with `first` (a string, an object…).
    fn raw_of_kind(&mut self, field: &str, first: u8, kind: &str) -> Result<&'a RawValue, DecodeError> {
        self.skip_ws();
        let at = self.pos;
        let raw: &'a RawValue = self.value()?;
        if raw.get().as_bytes().first() != Some(&first) {
            self.pos = at;
            return Err(self.error(&format!("field `{field}` must be {kind}")));
        }
        Ok(raw)
    }

    /// Walks an object, calling `field` with each key; the callback consumes the value.
    fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, Str<'a>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        self.expect(b'{', "an Alertmanager webhook object")?;
        self.fits(0, 1)?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.error(if self.peek().is_none() {
                    "EOF while parsing an object"
                } else {
                    "key must be a string"
                }));
            }
            let key: Str<'a> = self.value()?;
            self.expect(b':', "`:`")?;
            field(self, key)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                None => return Err(self.error("EOF while parsing an object")),
                Some(_) => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// The `alerts` array: each alert parsed once, its text kept as received.
    fn alerts(&mut self, index: &LabelIndex) -> Result<Vec<Alert<'a>>, DecodeError> {
        self.expect(b'[', "`[`: field `alerts` must be an array")?;
        self.fits(1, 1)?;
        let mut alerts = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(alerts);
        }
        loop {
            self.skip_ws();
            let start = self.pos;
            let position = alerts.len();
            let mut fields: AlertFields<'a> =
                self.value_with(|message| DecodeError::Alert { index: position, message })?;
            self.fits(2, 1 + fields.nesting)?;
            fields.labels.index(index);
            let raw = &self.text[start..self.pos];
            if alerts.is_empty() {
                // Alerts of a batch are alike: the rest of the body holds about this many more
                // (bounded, so that a tiny first alert before a large field reserves little).
                let rest = (self.text.len() - self.pos) / raw.len().max(1);
                alerts.reserve_exact(1 + rest.min(MAX_RESERVED_ALERTS));
            }
            let AlertFields { status, labels, annotations, fingerprint, .. } = fields;
            alerts.push(Alert { raw, status, labels, annotations, fingerprint });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(alerts);
                }
                None => return Err(self.error("EOF while parsing a list")),
                Some(_) => return Err(self.error("expected `,` or `]`")),
            }
        }
    }
}

/// The byte offset in `text` of serde_json's 1-based line and column.
fn line_column_to_offset(text: &str, line: usize, column: usize) -> usize {
    let line_start =
        if line <= 1 { 0 } else { text.match_indices('\n').nth(line - 2).map_or(text.len(), |(at, _)| at + 1) };
    (line_start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Status;

    const EXAMPLE: &str = include_str!("../../tests/fixtures/am-payload-multi.json");

    #[test]
    fn decodes_a_real_alertmanager_payload() {
        let n = decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(n.alerts.len(), 3);
        assert_eq!(n.group_key.as_str(), r#"{}:{alertname="PodCrashLooping"}"#);
        assert_eq!(n.alerts[2].labels.value("severity"), Some("critical"));
        assert_eq!(n.alerts[0].status, Status::Firing);
        assert!(n.alerts[0].raw.contains("37d2e3dc81583c37"));
        assert!(n.alerts[0].raw.starts_with('{') && n.alerts[0].raw.ends_with('}'));
        assert!(n.extras.is_empty());
    }

    #[test]
    fn error_positions_are_those_of_the_body() {
        let body =
            "{\n  \"version\": \"4\",\n  \"alerts\": [\n    {\"status\": \"firing\", \"labels\": {\"a\": 1}}\n  ]\n}";
        let error = decode(body.as_bytes()).unwrap_err().to_string();
        assert!(error.starts_with("alerts[0]: invalid type: integer `1`"), "{error}");
        assert!(error.ends_with("at line 4 column 42"), "{error}");
    }

    /// Regression (found by fuzz/payload_decode): an error position inside a multi-byte
    /// character made the position computation slice a `str` off a char boundary and panic.
    #[test]
    fn error_positions_inside_multi_byte_characters_do_not_panic() {
        for body in ["{\"version\":\"4\",\"alerts\":[{\"status\":\"ʄʄ", "{\"ʄ\":1 ʄ", "{\"alerts\":[ʄ]}"] {
            assert!(decode(body.as_bytes()).is_err(), "{body}");
        }
        let crash =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz-crash-multibyte-position.json"));
        assert!(decode(&crash.unwrap()).is_err());
    }

    #[test]
    fn tolerates_white_space_everywhere() {
        let body = " {\t\"version\" : \"4\" ,\r\n \"alerts\" : [ {\"status\":\"resolved\",\"labels\":{}} , {\"status\":\"firing\",\"labels\":{\"a\":\"b\"}} ] } \n";
        let n = decode(body.as_bytes()).unwrap();
        assert_eq!(n.alerts.len(), 2);
        assert_eq!(n.alerts[1].raw, r#"{"status":"firing","labels":{"a":"b"}}"#);
    }

    /// The nesting limit is checked by the decoder at every level it walks or skips.
    #[test]
    fn refuses_what_nests_deeper_than_the_limit() {
        let index = LabelIndex::default();
        let depth_of = |body: &str| {
            (1..12).find(|&max| decode_within(body.as_bytes(), &index, max).is_ok()).expect("decodes at some depth")
        };
        let alert = |extra: &str| format!(r#"{{"version":"4","alerts":[{{"status":"firing","labels":{{}}{extra}}}]}}"#);
        assert_eq!(depth_of(r#"{"version":"4","alerts":[]}"#), 2);
        assert_eq!(depth_of(&alert("")), 4);
        assert_eq!(depth_of(&alert(r#","x":[[{"y":[]}]]"#)), 7);
        assert_eq!(depth_of(&alert(r#","fingerprint":{"a":[[]]}"#)), 6);
        assert_eq!(depth_of(r#"{"version":"4","alerts":[],"commonLabels":{"a":[[[]]]}}"#), 5);
        assert_eq!(depth_of(r#"{"version":"4","alerts":[],"groupLabels":{"a":[[[[]]]]}}"#), 6);
        assert_eq!(depth_of(r#"{"version":"4","alerts":[],"x":"[[[[[[[[[[[[[[","y":[[]]}"#), 3);
        let error = decode_within(alert("").as_bytes(), &index, 3).unwrap_err();
        assert!(matches!(error, DecodeError::TooDeep(3)), "{error}");
    }

    /// A body both invalid and too deep is refused as too deep, whichever problem comes first.
    #[test]
    fn too_deep_comes_before_other_errors() {
        let index = LabelIndex::default();
        let deep = "[".repeat(40);
        let not_utf8 = [b"\xff".as_slice(), deep.as_bytes()].concat();
        for body in [not_utf8, format!(r#"{{"version":5,"x":{deep}"#).into_bytes(), format!("[{deep}").into_bytes()] {
            let error = decode_within(&body, &index, 32).unwrap_err();
            assert!(matches!(error, DecodeError::TooDeep(32)), "{error}");
            assert!(!matches!(decode(&body), Err(DecodeError::TooDeep(_))), "unlimited");
        }
    }

    /// Only a string is a status: serde's enum derive also took `{"firing": null}`.
    #[test]
    fn a_status_is_a_string() {
        let body = r#"{"version":"4","alerts":[{"status":{"firing":null},"labels":{}}]}"#;
        assert!(decode(body.as_bytes()).unwrap_err().to_string().contains("alerts[0]"));
        let body = r#"{"version":"4","status":{"resolved":null},"alerts":[]}"#;
        assert!(decode(body.as_bytes()).is_err());
        let body = r#"{"version":"4","alerts":[{"status":"fir\u0069ng","labels":{}}]}"#;
        assert_eq!(decode(body.as_bytes()).unwrap().alerts[0].status, Status::Firing);
    }

    #[test]
    fn keeps_unknown_top_level_fields() {
        let body = r#"{"version":"4","alerts":[],"notification_reason":"x","routeLabels":{"a":"b"}}"#;
        let n = decode(body.as_bytes()).unwrap();
        let keys: Vec<_> = n.extras.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        assert_eq!(keys, vec![("notification_reason", r#""x""#), ("routeLabels", r#"{"a":"b"}"#)]);
    }

    #[test]
    fn rejects_what_alertmanager_never_sends() {
        let cases = [
            (&b"\xff"[..], "UTF-8"),
            (b"{", "invalid JSON"),
            (br#"{"alerts":[]}"#, "version"),
            (br#"{"version":"3","alerts":[]}"#, "unsupported webhook version \"3\""),
            (br#"{"version":"4"}"#, "alerts"),
            (br#"{"version":"4","alerts":[{"status":"firing","labels":{"a":null}}]}"#, "alerts[0]"),
            (br#"{"version":"4","alerts":[{"status":"burning","labels":{}}]}"#, "alerts[0]"),
            (br#"{"version":"4","alerts":[],"receiver":1}"#, "receiver"),
            (br#"{"version":"4","version":"4","alerts":[]}"#, "duplicate"),
            (br#"{"version":"4","alerts":[],"x":1,"x":2}"#, "duplicate"),
            (br#"{"version":"4","alerts":[],"truncatedAlerts":-1}"#, "invalid JSON"),
            (br#"[]"#, "invalid JSON"),
            (br#"{"version":"4","alerts":[]} x"#, "trailing characters"),
            (br#"{"version":"4","alerts":[{"status":"firing","labels":{}},]}"#, "alerts[1]"),
            (br#"{"version":"4","alerts":{}}"#, "must be an array"),
            (br#"{"version":"4","alerts":[],}"#, "key must be a string"),
            (br#"{"version":"4" "alerts":[]}"#, "expected `,` or `}`"),
            (br#"{"version":"4","alerts":["#, "EOF"),
            (br#"{"version":"4","alerts":[],"Alerts":[]}"#, "`Alerts` differs from `alerts` only by case"),
            (br#"{"version":"4","alerts":[],"GROUPKEY":"x"}"#, "differs from `groupKey`"),
            ("{\"version\":\"4\",\"alerts\":[],\"\u{17f}tatus\":\"firing\"}".as_bytes(), "differs from `status`"),
            (br#"{"version":"4","alerts":[{"status":"firing","labels":{},"Labels":{}}]}"#, "alerts[0]: field `Labels`"),
            (br#"{"version":"4","alerts":[{"status":"firing","labels":{},"STATUS":"resolved"}]}"#, "`STATUS`"),
            (br#"{"version":"4","alerts":[{"status":"firing","labels":{},"fingerPrint":"1"}]}"#, "`fingerprint`"),
            (br#"{"version":"4","alerts":[{"status":"firing","labels":{},"labels":{}}]}"#, "duplicate field"),
            (br#"{"version":"4","alerts":[{"labels":{}}]}"#, "missing field `status`"),
            (br#""#, "EOF"),
        ];
        for (body, expected) in cases {
            let error = decode(body).unwrap_err().to_string();
            assert!(error.contains(expected), "{:?}: {error}", String::from_utf8_lossy(body));
        }
    }
}
