//! Decoding Alertmanager's webhook body (version "4") without copying what we pass on.
//!
//! Each alert is kept as the exact JSON text received (`&RawValue`) and parsed a second time only
//! for the three fields routing needs: `status`, `labels`, `annotations`. Top-level fields amrelay
//! does not know (`notification_reason`, `routeLabels`, …) are kept as raw JSON too, so a newer
//! Alertmanager's additions reach the downstream untouched.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::labels::{LabelSet, Str};

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

/// One alert: its raw JSON plus the fields routing looks at.
#[derive(Debug)]
pub struct Alert<'a> {
    pub raw: &'a RawValue,
    pub status: Status,
    pub labels: LabelSet<'a>,
    pub annotations: LabelSet<'a>,
}

#[derive(Deserialize)]
struct AlertFields<'a> {
    status: Status,
    #[serde(borrow)]
    labels: LabelSet<'a>,
    #[serde(borrow, default)]
    annotations: LabelSet<'a>,
}

/// A decoded webhook notification, borrowing from the request body.
#[derive(Debug)]
pub struct Notification<'a> {
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
    Json(#[from] serde_json::Error),
    #[error("alerts[{index}]: {source}")]
    Alert { index: usize, source: serde_json::Error },
    #[error("unsupported webhook version {0:?}: amrelay accepts Alertmanager's version \"4\"")]
    Version(String),
    #[error("missing field `version`: not an Alertmanager webhook payload")]
    MissingVersion,
    #[error("missing field `alerts`: not an Alertmanager webhook payload")]
    MissingAlerts,
}

/// Decodes and checks a request body.
pub fn decode(body: &[u8]) -> Result<Notification<'_>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|_| DecodeError::NotUtf8)?;
    let top: TopLevel = serde_json::from_str(text)?;
    match top.version.as_ref().map(Str::as_str) {
        Some("4") => {}
        Some(other) => return Err(DecodeError::Version(other.to_owned())),
        None => return Err(DecodeError::MissingVersion),
    }
    let raw_alerts = top.alerts.ok_or(DecodeError::MissingAlerts)?;
    let mut alerts = Vec::with_capacity(raw_alerts.len());
    for (index, raw) in raw_alerts.into_iter().enumerate() {
        let fields: AlertFields =
            serde_json::from_str(raw.get()).map_err(|source| DecodeError::Alert { index, source })?;
        alerts.push(Alert { raw, status: fields.status, labels: fields.labels, annotations: fields.annotations });
    }
    Ok(Notification {
        receiver: top.receiver,
        group_labels: top.group_labels,
        external_url: top.external_url,
        group_key: top.group_key.unwrap_or_default(),
        truncated_alerts: top.truncated_alerts.unwrap_or(0),
        alerts,
        extras: top.extras,
    })
}

/// The top-level object, before the alerts are looked into.
#[derive(Default)]
struct TopLevel<'a> {
    receiver: Option<&'a RawValue>,
    group_labels: Option<&'a RawValue>,
    external_url: Option<&'a RawValue>,
    version: Option<Str<'a>>,
    group_key: Option<Str<'a>>,
    truncated_alerts: Option<u64>,
    alerts: Option<Vec<&'a RawValue>>,
    extras: Vec<(Str<'a>, &'a RawValue)>,
}

/// A raw value that must be a JSON string (checked by its first byte: RawValue is valid JSON).
fn raw_string<'de, A: MapAccess<'de>>(map: &mut A, field: &str) -> Result<&'de RawValue, A::Error> {
    raw_of_kind(map, field, b'"', "a string")
}

fn raw_of_kind<'de, A: MapAccess<'de>>(
    map: &mut A,
    field: &str,
    first: u8,
    kind: &str,
) -> Result<&'de RawValue, A::Error> {
    let raw: &'de RawValue = map.next_value()?;
    if raw.get().as_bytes().first() != Some(&first) {
        return Err(de::Error::custom(format_args!("field `{field}` must be {kind}")));
    }
    Ok(raw)
}

fn set_once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(field));
    }
    Ok(())
}

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an Alertmanager webhook object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut top = TopLevel::default();
                let (mut status_seen, mut common_labels_seen, mut common_annotations_seen) = (false, false, false);
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str() {
                        "receiver" => {
                            let v = raw_string(&mut map, "receiver")?;
                            set_once(&mut top.receiver, "receiver", v)?;
                        }
                        "groupLabels" => {
                            let v = raw_of_kind(&mut map, "groupLabels", b'{', "an object")?;
                            set_once(&mut top.group_labels, "groupLabels", v)?;
                        }
                        "externalURL" => {
                            let v = raw_string(&mut map, "externalURL")?;
                            set_once(&mut top.external_url, "externalURL", v)?;
                        }
                        "version" => {
                            let v = map.next_value()?;
                            set_once(&mut top.version, "version", v)?;
                        }
                        "groupKey" => {
                            let v = map.next_value()?;
                            set_once(&mut top.group_key, "groupKey", v)?;
                        }
                        "truncatedAlerts" => {
                            let v = map.next_value()?;
                            set_once(&mut top.truncated_alerts, "truncatedAlerts", v)?;
                        }
                        "alerts" => {
                            let v = map.next_value()?;
                            set_once(&mut top.alerts, "alerts", v)?;
                        }
                        // Recomputed per receiver; only their shape is checked.
                        "status" => {
                            once(&mut status_seen, "status")?;
                            map.next_value::<Status>()?;
                        }
                        "commonLabels" => {
                            once(&mut common_labels_seen, "commonLabels")?;
                            map.next_value::<IgnoredAny>()?;
                        }
                        "commonAnnotations" => {
                            once(&mut common_annotations_seen, "commonAnnotations")?;
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            if top.extras.iter().any(|(k, _)| *k == key) {
                                return Err(de::Error::custom(format_args!("duplicate field `{}`", key.as_str())));
                            }
                            let v = map.next_value()?;
                            top.extras.push((key, v));
                        }
                    }
                }
                Ok(top)
            }
        }
        deserializer.deserialize_map(TopVisitor)
    }
}

fn once<E: de::Error>(seen: &mut bool, field: &'static str) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::duplicate_field(field));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../tests/fixtures/am-payload-multi.json");

    #[test]
    fn decodes_a_real_alertmanager_payload() {
        let n = decode(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(n.alerts.len(), 3);
        assert_eq!(n.group_key.as_str(), r#"{}:{alertname="PodCrashLooping"}"#);
        assert_eq!(n.alerts[2].labels.value("severity"), Some("critical"));
        assert_eq!(n.alerts[0].status, Status::Firing);
        assert!(n.alerts[0].raw.get().contains("37d2e3dc81583c37"));
        assert!(n.extras.is_empty());
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
        ];
        for (body, expected) in cases {
            let error = decode(body).unwrap_err().to_string();
            assert!(error.contains(expected), "{:?}: {error}", String::from_utf8_lossy(body));
        }
    }
}
