//! One silence: Alertmanager's v2 shape (`matchers`, `startsAt`, `endsAt`, `createdBy`,
//! `comment`), plus `receivers` to limit it to some receivers (none: all of them).
//!
//! Matchers are read in Alertmanager's matcher syntax (`alertname="Disk", team=~"db|infra"`, a
//! string or a list of strings) or its JSON form (`[{name, value, isRegex, isEqual}]`), and
//! written back in the JSON form, which both read.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::payload::LabelSet;
use crate::rule::{MatchType, Matcher};

/// A silence's state at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Active,
    Expired,
}

impl State {
    pub const ALL: [State; 3] = [State::Active, State::Pending, State::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Expired => "expired",
        }
    }
}

/// A validated silence.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    /// Receivers it applies to; empty: every receiver.
    pub receivers: Vec<String>,
}

/// What a client posts, and what the silences file holds (with `id` and `updatedAt`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Posted {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Value,
    #[serde(default)]
    pub starts_at: Option<String>,
    pub ends_at: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
    #[serde(default)]
    pub receivers: Option<Vec<String>>,
}

impl Silence {
    /// Its state at `now`: pending before `startsAt`, expired from `endsAt` on.
    pub fn state(&self, now: Timestamp) -> State {
        if now < self.starts_at {
            State::Pending
        } else if now < self.ends_at {
            State::Active
        } else {
            State::Expired
        }
    }

    /// Whether it applies to `receiver`'s notifications.
    pub fn covers(&self, receiver: &str) -> bool {
        self.receivers.is_empty() || self.receivers.iter().any(|r| r == receiver)
    }

    /// Whether every matcher holds for these labels (a missing label reads as "").
    pub fn matches(&self, labels: &LabelSet<'_>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels.value(&m.name).unwrap_or("")))
    }

    /// Validates a posted silence, as Alertmanager's API does: at least one matcher that does not
    /// match the empty string, an end after the start, `createdBy` and `comment` given. `now`
    /// is the default start; a start in the past becomes `now`.
    pub fn from_posted(posted: Posted, now: Timestamp) -> Result<Silence, String> {
        let matchers = matchers_from(&posted.matchers)?;
        if matchers.is_empty() {
            return Err("at least one matcher is required".into());
        }
        if matchers.iter().all(|m| m.matches("")) {
            return Err("at least one matcher must not match the empty string".into());
        }
        let time = |field: &str, text: &str| -> Result<Timestamp, String> {
            text.parse().map_err(|e| format!("{field} {text:?} is not an RFC 3339 time: {e}"))
        };
        let starts_at = match posted.starts_at.as_deref() {
            Some(text) => time("startsAt", text)?.max(now),
            None => now,
        };
        let ends_at = time("endsAt", &posted.ends_at)?;
        if ends_at <= starts_at {
            return Err("endsAt must be after startsAt (and in the future)".into());
        }
        if posted.created_by.trim().is_empty() {
            return Err("createdBy is required".into());
        }
        if posted.comment.trim().is_empty() {
            return Err("comment is required".into());
        }
        Ok(Silence {
            id: posted.id.unwrap_or_default(),
            matchers,
            starts_at,
            ends_at,
            updated_at: now,
            created_by: posted.created_by,
            comment: posted.comment,
            receivers: posted.receivers.unwrap_or_default(),
        })
    }

    /// A silence as the file holds it, without the checks a new one gets (its times are past).
    pub fn from_stored(stored: Posted) -> Result<Silence, String> {
        let time = |text: &str| text.parse::<Timestamp>().map_err(|e| format!("{text:?}: {e}"));
        Ok(Silence {
            id: stored.id.filter(|id| !id.is_empty()).ok_or("a silence without an id")?,
            matchers: matchers_from(&stored.matchers)?,
            starts_at: time(stored.starts_at.as_deref().unwrap_or_default())?,
            ends_at: time(&stored.ends_at)?,
            updated_at: time(stored.updated_at.as_deref().unwrap_or_default())?,
            created_by: stored.created_by,
            comment: stored.comment,
            receivers: stored.receivers.unwrap_or_default(),
        })
    }

    /// Alertmanager's `GettableSilence`, with `receivers`; `state` only for the API (`None`: as
    /// the file holds it).
    pub fn to_json(&self, now: Option<Timestamp>) -> Value {
        let matchers: Vec<Value> = self
            .matchers
            .iter()
            .map(|m| {
                let kind = m.kind();
                json!({
                    "name": m.name,
                    "value": m.value(),
                    "isRegex": matches!(kind, MatchType::Regex | MatchType::NotRegex),
                    "isEqual": matches!(kind, MatchType::Equal | MatchType::Regex),
                })
            })
            .collect();
        let mut out = json!({
            "id": self.id,
            "matchers": matchers,
            "startsAt": self.starts_at.to_string(),
            "endsAt": self.ends_at.to_string(),
            "updatedAt": self.updated_at.to_string(),
            "createdBy": self.created_by,
            "comment": self.comment,
            "receivers": self.receivers,
        });
        if let Some(now) = now {
            out["status"] = json!({ "state": self.state(now).as_str() });
        }
        out
    }
}

/// The matchers of a posted silence: a string in matcher syntax, a list of such strings, or
/// Alertmanager's JSON objects.
fn matchers_from(value: &Value) -> Result<Vec<Matcher>, String> {
    match value {
        Value::String(text) => crate::rule::parse_matchers(text).map_err(|e| format!("matchers: {e}")),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(text) => {
                        out.extend(crate::rule::parse_matchers(text).map_err(|e| format!("matchers: {e}"))?)
                    }
                    Value::Object(_) => out.push(json_matcher(item)?),
                    _ => return Err("matchers: each must be a string or {name, value, isRegex, isEqual}".into()),
                }
            }
            Ok(out)
        }
        _ => Err("matchers: a string or a list is required".into()),
    }
}

/// `{name, value, isRegex, isEqual}` (`isEqual` defaults to true, as in Alertmanager).
fn json_matcher(item: &Value) -> Result<Matcher, String> {
    let text = |key: &str| item.get(key).and_then(Value::as_str);
    let flag = |key: &str, default: bool| item.get(key).and_then(Value::as_bool).unwrap_or(default);
    let name = text("name").filter(|n| !n.is_empty()).ok_or("matchers: a matcher needs a name")?;
    let value = text("value").ok_or_else(|| format!("matchers: {name} needs a value"))?;
    let kind = match (flag("isRegex", false), flag("isEqual", true)) {
        (false, true) => MatchType::Equal,
        (false, false) => MatchType::NotEqual,
        (true, true) => MatchType::Regex,
        (true, false) => MatchType::NotRegex,
    };
    Matcher::new(kind, name, value).map_err(|e| format!("matchers: {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posted(matchers: Value, ends_at: &str) -> Posted {
        serde_json::from_value(
            json!({"matchers": matchers, "endsAt": ends_at, "createdBy": "ops", "comment": "maintenance"}),
        )
        .unwrap()
    }

    fn now() -> Timestamp {
        "2026-12-07T20:00:00Z".parse().unwrap()
    }

    #[test]
    fn both_matcher_forms_read_the_same_and_round_trip() {
        let text = Silence::from_posted(
            posted(json!("alertname=\"Disk\", team=~\"db|infra\""), "2026-12-07T21:00:00Z"),
            now(),
        )
        .unwrap();
        let objects = json!([
            {"name": "alertname", "value": "Disk", "isRegex": false},
            {"name": "team", "value": "db|infra", "isRegex": true, "isEqual": true}
        ]);
        let json_form = Silence::from_posted(posted(objects, "2026-12-07T21:00:00Z"), now()).unwrap();
        assert_eq!(text.to_json(None)["matchers"], json_form.to_json(None)["matchers"]);
        let mut stored = text.to_json(None);
        stored["id"] = json!("x");
        let back = Silence::from_stored(serde_json::from_value(stored).unwrap()).unwrap();
        assert_eq!(back.to_json(Some(now()))["status"]["state"], "active");
        assert!(back.matchers.iter().zip(&text.matchers).all(|(a, b)| a.same_as(b)));
    }

    #[test]
    fn alertmanagers_checks_apply() {
        let error = |m: Value, end: &str| Silence::from_posted(posted(m, end), now()).unwrap_err();
        assert!(error(json!("team=~\".*\""), "2026-12-07T21:00:00Z").contains("empty string"));
        assert!(error(json!([]), "2026-12-07T21:00:00Z").contains("at least one matcher"));
        assert!(error(json!("a=\"b\""), "2026-12-07T19:00:00Z").contains("after startsAt"));
        assert!(error(json!("a=\"b\""), "tomorrow").contains("RFC 3339"));
    }

    #[test]
    fn states_follow_the_clock() {
        let mut s = Silence::from_posted(posted(json!("a=\"b\""), "2026-12-07T21:00:00Z"), now()).unwrap();
        s.starts_at = "2026-12-07T20:30:00Z".parse().unwrap();
        assert_eq!(s.state(now()), State::Pending);
        assert_eq!(s.state("2026-12-07T20:30:00Z".parse().unwrap()), State::Active);
        assert_eq!(s.state("2026-12-07T21:00:00Z".parse().unwrap()), State::Expired);
    }
}
