//! What the destinations of issue 23's presets say in their answers, beyond the status.
//!
//! Rocket.Chat, Pushover and Splunk On-Call (VictorOps) document a verdict in the body:
//! `{"success": false, "error": …}`, `{"status": 0, "errors": […]}` and
//! `{"result": "failure", "message": …}`. A 2xx answer saying so is a failure — final, as the
//! request itself was refused (a bad token, user key or routing key), never a delivery. Matrix
//! writes its rate limit's wait in the body (`retry_after_ms`). Mattermost, Webex, ntfy and
//! Gotify answer by status alone (a 429 with `Retry-After` where they rate limit).

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::failure::{Failure, FailureKind};
use crate::template::Preset;

/// Whether a 2xx answer of `preset`'s destination must be read to know that it was taken.
pub fn reads_answer(preset: Preset) -> bool {
    matches!(preset, Preset::RocketChat | Preset::Pushover | Preset::VictorOps)
}

/// The verdict of a 2xx answer `answer` of `preset`'s destination: `Ok`, or the refusal it
/// reports (a 400-kind failure, not retried, with the vendor's message).
pub fn check(preset: Preset, answer: Option<&[u8]>) -> Result<(), Failure> {
    let Some(value) = answer.and_then(|a| serde_json::from_slice::<Value>(a).ok()) else {
        return Ok(());
    };
    let refusal = match preset {
        Preset::RocketChat if value.get("success") == Some(&Value::Bool(false)) => {
            Some(("Rocket.Chat answered success=false", text(value.get("error"))))
        }
        Preset::Pushover if value.get("status").and_then(Value::as_i64).is_some_and(|s| s != 1) => {
            Some(("Pushover answered status 0", text(value.get("errors"))))
        }
        Preset::VictorOps if value.get("result").and_then(Value::as_str).is_some_and(|r| r != "success") => {
            Some(("Splunk On-Call answered result=failure", text(value.get("message"))))
        }
        _ => None,
    };
    match refusal {
        None => Ok(()),
        Some((what, message)) => Err(Failure::new(
            FailureKind::Status(StatusCode::BAD_REQUEST),
            if message.is_empty() { what.to_owned() } else { format!("{what}: {message}") },
        )),
    }
}

/// A failed attempt of `preset`'s destination, with what its body adds: Matrix's
/// `retry_after_ms` as the wait before the next attempt.
pub fn refine(preset: Option<Preset>, failure: Failure) -> Failure {
    match preset {
        Some(Preset::Matrix) if failure.retry_after.is_none() && matches!(failure.kind, FailureKind::Status(_)) => {
            let retry_after = retry_after_ms(&failure.detail).map(Duration::from_millis);
            Failure { retry_after, ..failure }
        }
        _ => failure,
    }
}

/// The number after `"retry_after_ms":` in an error answer's text (its body, in the detail).
fn retry_after_ms(detail: &str) -> Option<u64> {
    let (_, rest) = detail.split_once("\"retry_after_ms\"")?;
    let digits: String = rest.trim_start_matches([':', ' ']).chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A vendor's message (a string, or a list of them) on one line, at most 200 characters.
fn text(value: Option<&Value>) -> String {
    let joined = match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "),
        _ => String::new(),
    };
    joined.chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(preset: Preset, answer: &str) -> Result<(), String> {
        check(preset, Some(answer.as_bytes())).map_err(|f| {
            assert!(!f.is_retryable(), "a refusal in the body is final");
            f.detail
        })
    }

    // The answers as each vendor documents them.
    #[test]
    fn rocketchat_answers_success() {
        assert_eq!(checked(Preset::RocketChat, r#"{"success":true}"#), Ok(()));
        let refused = checked(Preset::RocketChat, r#"{"success":false,"error":"Invalid integration id"}"#);
        assert_eq!(refused.unwrap_err(), "Rocket.Chat answered success=false: Invalid integration id");
    }

    #[test]
    fn pushover_answers_status_1() {
        assert_eq!(
            checked(Preset::Pushover, r#"{"status":1,"request":"647d2300-702c-4b38-8b2f-d56326ae460b"}"#),
            Ok(())
        );
        let refused = checked(
            Preset::Pushover,
            r#"{"user":"invalid","errors":["user identifier is invalid"],"status":0,"request":"5042853c"}"#,
        );
        assert_eq!(refused.unwrap_err(), "Pushover answered status 0: user identifier is invalid");
    }

    #[test]
    fn victorops_answers_result_success() {
        assert_eq!(checked(Preset::VictorOps, r#"{"result":"success","entity_id":"abc"}"#), Ok(()));
        let refused = checked(Preset::VictorOps, r#"{"result":"failure","message":"Missing fields: message_type"}"#);
        assert_eq!(refused.unwrap_err(), "Splunk On-Call answered result=failure: Missing fields: message_type");
    }

    #[test]
    fn status_only_destinations_and_odd_bodies_are_taken() {
        assert_eq!(checked(Preset::Mattermost, "ok"), Ok(()));
        assert_eq!(checked(Preset::Gotify, r#"{"success":false}"#), Ok(()));
        assert_eq!(checked(Preset::Pushover, "not json"), Ok(()));
        assert!(check(Preset::VictorOps, None).is_ok());
    }
}
