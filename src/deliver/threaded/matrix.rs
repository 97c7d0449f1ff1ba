//! Matrix's client-server API: an `m.room.message` event sent with
//! `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
//! (https://spec.matrix.org/v1.11/client-server-api/#put_matrixclientv3roomsroomidsendeventtypetxnid).
//!
//! The receiver's URL ends in `…/send/m.room.message`; the transaction id appended to it is the
//! notification's id, the same on every retry and after a restart, so a homeserver that took an
//! attempt whose answer was lost answers the retry with the same event instead of posting twice.
//! Its answer is `{"event_id": "$…"}`. With `thread:`, `mode: update` sends an edit
//! (`m.relates_to.rel_type: m.replace`, the new text in `m.new_content`) and `mode: reply` a
//! message in the thread of the group's first one (`rel_type: m.thread`, with `m.in_reply_to`
//! for clients without threads); each follow-up has its own transaction id (`{id}.edit`,
//! `{id}.reply`), stable across its retries. A homeserver does not check the event an edit
//! points at, so Matrix has no "gone" answer. Rate limiting is `429 M_LIMIT_EXCEEDED` with
//! the wait in `retry_after_ms` (and, on newer homeservers, `Retry-After`).

use bytes::Bytes;
use http::{Method, Uri};
use serde_json::{Value, json};

use super::{Call, Failure, Verdict, edit_json};
use crate::config::thread::ThreadMode;

/// The request that sends `body` with transaction id `txn`.
pub(super) fn put(url: &Uri, body: Bytes, txn: &str) -> Call {
    Call { method: Method::PUT, url: crate::template::presets::transaction_url(url, txn), body }
}

/// The `event_id` of a send answer.
pub(super) fn event_id(answer: &Value) -> Option<String> {
    let id = answer.get("event_id")?.as_str()?;
    let plain = id.starts_with('$')
        && id.len() <= 255
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"$:+/=-_.".contains(&b));
    plain.then(|| id.to_owned())
}

/// The edit (`update`) or threaded reply (`reply`) to the group's first event `reference`.
pub(super) fn follow_up(mode: ThreadMode, url: &Uri, body: &Bytes, reference: &str, id: &str) -> Result<Call, String> {
    match mode {
        ThreadMode::Update => {
            let body = edit_json(body, |event| {
                let new_content = Value::Object(event.clone());
                let text = event.get("body").and_then(Value::as_str).unwrap_or_default();
                // Clients without edits show the fallback, marked as an edit by convention.
                event.insert("body".into(), Value::String(format!("* {text}")));
                event.insert("m.new_content".into(), new_content);
                event.insert("m.relates_to".into(), json!({"rel_type": "m.replace", "event_id": reference}));
            })?;
            Ok(put(url, body, &format!("{id}.edit")))
        }
        ThreadMode::Reply => {
            let body = edit_json(body, |event| {
                event.insert(
                    "m.relates_to".into(),
                    json!({
                        "rel_type": "m.thread",
                        "event_id": reference,
                        "is_falling_back": true,
                        "m.in_reply_to": {"event_id": reference},
                    }),
                );
            })?;
            Ok(put(url, body, &format!("{id}.reply")))
        }
    }
}

/// What an answer means: a 2xx took the event; a failure is judged as every attempt's is (a
/// `429`'s wait from `retry_after_ms`, see [`super::super::verdict`]).
pub(super) fn verdict(result: Result<(http::StatusCode, Option<Bytes>), Failure>) -> Verdict {
    match result {
        Ok((_, answer)) => Verdict::Done(answer),
        Err(failure) => Verdict::Failed(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::FailureKind;
    use http::StatusCode;
    use std::time::Duration;

    fn url() -> Uri {
        "https://matrix.example.org/_matrix/client/v3/rooms/!abc:example.org/send/m.room.message".parse().unwrap()
    }

    #[test]
    fn the_event_is_put_with_its_transaction_id() {
        let call = put(&url(), Bytes::from_static(b"{}"), "n1");
        assert_eq!(call.method, Method::PUT);
        assert!(call.url.path().ends_with("/send/m.room.message/n1"));
    }

    // The answer as the spec documents it.
    #[test]
    fn the_event_id_is_read_from_the_answer() {
        assert_eq!(
            event_id(&json!({"event_id": "$YUwRidLecu:example.com"})).as_deref(),
            Some("$YUwRidLecu:example.com")
        );
        assert_eq!(event_id(&json!({"event_id": "no-dollar"})), None);
        assert_eq!(event_id(&json!({"event_id": "$a\"b"})), None);
    }

    #[test]
    fn an_update_is_an_m_replace_edit_and_a_reply_a_thread_message() {
        let body = Bytes::from_static(br#"{"msgtype":"m.text","body":"[FIRING:1] x","m.mentions":{}}"#);
        let edit = follow_up(ThreadMode::Update, &url(), &body, "$first", "n2").unwrap();
        assert!(edit.url.path().ends_with("/n2.edit"));
        let edit: Value = serde_json::from_slice(&edit.body).unwrap();
        assert_eq!(edit["body"], "* [FIRING:1] x");
        assert_eq!(edit["m.new_content"]["body"], "[FIRING:1] x");
        assert_eq!(edit["m.relates_to"], json!({"rel_type": "m.replace", "event_id": "$first"}));
        let reply = follow_up(ThreadMode::Reply, &url(), &body, "$first", "n2").unwrap();
        assert!(reply.url.path().ends_with("/n2.reply"));
        let reply: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(reply["m.relates_to"]["rel_type"], "m.thread");
        assert_eq!(reply["m.relates_to"]["m.in_reply_to"]["event_id"], "$first");
    }

    // The spec's example of a rate-limited answer: its wait is the body's `retry_after_ms`.
    #[test]
    fn a_rate_limit_waits_retry_after_ms() {
        let body = r#"{"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2000}"#;
        let mut failure = Failure::new(FailureKind::Status(StatusCode::TOO_MANY_REQUESTS), "HTTP 429");
        failure.answer = Some(Bytes::from_static(body.as_bytes()));
        let rule = crate::deliver::verdict::rule(Some(crate::template::Preset::Matrix));
        let failure = crate::deliver::verdict::judge_failure(rule, failure);
        assert_eq!(failure.retry_after, Some(Duration::from_millis(2000)));
        assert!(failure.is_retryable());
    }
}
