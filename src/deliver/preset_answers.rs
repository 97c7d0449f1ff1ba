//! How the destinations of issue 23's presets say "refused" in their answers, for the verdict
//! table ([`super::verdict`], `Rule::Field`).
//!
//! Rocket.Chat, Pushover and Splunk On-Call (VictorOps) document a verdict in the body:
//! `{"success": false, "error": …}`, `{"status": 0, "errors": […]}` and
//! `{"result": "failure", "message": …}` — in an HTTP 200 as well as in an error answer. Such a
//! refusal is final (a bad token, user key or routing key), never a delivery. Mattermost, Webex,
//! Matrix, ntfy and Gotify answer by status alone (a 429 with `Retry-After`; Matrix's wait is the
//! body's `retry_after_ms`, read by the verdict with the other vendors' body waits).

use serde_json::Value;

use crate::template::Preset;

/// Whether `preset`'s destination writes its verdict in a field of the answer.
pub fn reads_answer(preset: Preset) -> bool {
    matches!(preset, Preset::RocketChat | Preset::Pushover | Preset::VictorOps)
}

/// The vendor's name in a refusal's detail.
pub fn vendor_name(preset: Preset) -> &'static str {
    match preset {
        Preset::RocketChat => "Rocket.Chat",
        Preset::Pushover => "Pushover",
        Preset::VictorOps => "Splunk On-Call",
        other => other.name(),
    }
}

/// The refusal an answer `value` of `preset`'s destination states, as (what it says, the
/// vendor's message); `None` when it states none.
pub fn refused(preset: Preset, value: &Value) -> Option<(String, String)> {
    let (code, message) = match preset {
        Preset::RocketChat if value.get("success") == Some(&Value::Bool(false)) => {
            ("success=false", value.get("error"))
        }
        Preset::Pushover if value.get("status").and_then(Value::as_i64).is_some_and(|s| s != 1) => {
            ("status=0", value.get("errors"))
        }
        Preset::VictorOps if value.get("result").and_then(Value::as_str).is_some_and(|r| r != "success") => {
            ("result=failure", value.get("message"))
        }
        _ => return None,
    };
    Some((code.to_owned(), text(message)))
}

/// A vendor's message (a string, or a list of them) on one line.
fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn says(preset: Preset, answer: Value) -> Option<(String, String)> {
        refused(preset, &answer)
    }

    // The answers as each vendor documents them.
    #[test]
    fn rocketchat_answers_success() {
        assert_eq!(says(Preset::RocketChat, json!({"success": true})), None);
        assert_eq!(
            says(Preset::RocketChat, json!({"success": false, "error": "Invalid integration id"})),
            Some(("success=false".into(), "Invalid integration id".into()))
        );
    }

    #[test]
    fn pushover_answers_status_1() {
        assert_eq!(
            says(Preset::Pushover, json!({"status": 1, "request": "647d2300-702c-4b38-8b2f-d56326ae460b"})),
            None
        );
        let refused =
            json!({"user": "invalid", "errors": ["user identifier is invalid"], "status": 0, "request": "5042853c"});
        assert_eq!(says(Preset::Pushover, refused), Some(("status=0".into(), "user identifier is invalid".into())));
    }

    #[test]
    fn victorops_answers_result_success() {
        assert_eq!(says(Preset::VictorOps, json!({"result": "success", "entity_id": "abc"})), None);
        assert_eq!(
            says(Preset::VictorOps, json!({"result": "failure", "message": "Missing fields: message_type"})),
            Some(("result=failure".into(), "Missing fields: message_type".into()))
        );
    }

    #[test]
    fn status_only_destinations_state_nothing() {
        assert!(!reads_answer(Preset::Mattermost) && !reads_answer(Preset::Matrix));
        assert_eq!(says(Preset::Gotify, json!({"success": false})), None);
    }
}
