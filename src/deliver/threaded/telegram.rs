//! Telegram's Bot API (https://core.telegram.org/bots/api).
//!
//! `url` is `…/bot<token>/sendMessage`; its answer is `{"ok": true, "result": {"message_id": …}}`.
//! `mode: update` calls `editMessageText` (the sibling method) with `message_id`; `mode: reply`
//! sends with `reply_parameters.message_id` (and `allow_sending_without_reply`, so a deleted
//! first message does not block the group). Telegram refuses an edit of a deleted message with
//! 400 "message to edit not found" (posted anew) and an edit that changes nothing with 400
//! "message is not modified" (already showing it: done).

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::{Call, Failure, FailureKind, Verdict, edit_json, sibling};
use crate::config::thread::ThreadMode;

/// `result.message_id` of a `sendMessage` answer.
pub(super) fn message_id(answer: &Value) -> Option<String> {
    let id = answer.get("result")?.get("message_id")?.as_i64()?;
    Some(id.to_string())
}

pub(super) fn follow_up(mode: ThreadMode, url: &http::Uri, body: &Bytes, reference: &str) -> Result<Call, String> {
    let id: i64 = reference.parse().map_err(|_| "a Telegram message reference is a number")?;
    match mode {
        ThreadMode::Update => {
            let body = edit_json(body, |message| {
                message.insert("message_id".into(), id.into());
                // sendMessage's alone: editMessageText edits in place, silently.
                for key in ["message_thread_id", "disable_notification", "reply_parameters"] {
                    message.remove(key);
                }
            })?;
            Ok(Call::post(sibling(url, "editMessageText"), body))
        }
        ThreadMode::Reply => {
            let body = edit_json(body, |message| {
                message
                    .insert("reply_parameters".into(), json!({"message_id": id, "allow_sending_without_reply": true}));
            })?;
            Ok(Call::post(url.clone(), body))
        }
    }
}

pub(super) fn verdict(result: Result<(StatusCode, Option<Bytes>), Failure>) -> Verdict {
    match result {
        Ok((_, answer)) => Verdict::Done(answer),
        Err(f)
            if f.kind == FailureKind::Status(StatusCode::BAD_REQUEST)
                && f.detail.contains("message is not modified") =>
        {
            Verdict::Done(None)
        }
        Err(f)
            if f.kind == FailureKind::Status(StatusCode::BAD_REQUEST)
                && (f.detail.contains("message to edit not found") || f.detail.contains("MESSAGE_ID_INVALID")) =>
        {
            Verdict::Gone
        }
        Err(f) => Verdict::Failed(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(description: &str) -> Verdict {
        let detail = format!(r#"HTTP 400 Bad Request: {{"ok":false,"error_code":400,"description":"{description}"}}"#);
        verdict(Err(Failure::new(FailureKind::Status(StatusCode::BAD_REQUEST), detail)))
    }

    // The answers as the Bot API documents them (a Message object in `result`).
    #[test]
    fn telegrams_answers_are_read() {
        let sent = json!({"ok": true, "result": {"message_id": 42, "chat": {"id": -1001, "type": "supergroup"}, "date": 1, "text": "x"}});
        assert_eq!(message_id(&sent).as_deref(), Some("42"));
        assert_eq!(
            message_id(&json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"})),
            None
        );
        assert!(matches!(refused("Bad Request: message to edit not found"), Verdict::Gone));
        assert!(matches!(
            refused(
                "Bad Request: message is not modified: specified new message content and reply markup are exactly the same"
            ),
            Verdict::Done(None)
        ));
        assert!(matches!(refused("Bad Request: chat not found"), Verdict::Failed(_)));
    }

    #[test]
    fn update_edits_and_reply_replies() {
        let url: http::Uri = "https://api.telegram.org/bot1:x/sendMessage".parse().unwrap();
        let body =
            Bytes::from_static(br#"{"chat_id":-1001,"text":"t","message_thread_id":7,"disable_notification":true}"#);
        let update = follow_up(ThreadMode::Update, &url, &body, "42").unwrap();
        assert_eq!(update.url.path(), "/bot1:x/editMessageText");
        assert_eq!(
            serde_json::from_slice::<Value>(&update.body).unwrap(),
            json!({"chat_id":-1001,"text":"t","message_id":42})
        );
        let reply = follow_up(ThreadMode::Reply, &url, &body, "42").unwrap();
        assert_eq!(reply.url.path(), "/bot1:x/sendMessage");
        let reply: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(reply["reply_parameters"], json!({"message_id": 42, "allow_sending_without_reply": true}));
        assert!(follow_up(ThreadMode::Update, &url, &body, "x").is_err());
    }
}
