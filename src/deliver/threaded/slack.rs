//! Slack's Web API with a bot token (https://api.slack.com/methods/chat.postMessage).
//!
//! `url` is `…/api/chat.postMessage`; its answer names the message as `channel` + `ts`. `mode:
//! update` sends `chat.update` (the sibling method) with both; `mode: reply` posts with
//! `thread_ts`. Slack answers HTTP 200 even when it refuses (`{"ok": false, "error": …}`), so
//! each answer is read: `message_not_found` means the message was deleted, `ratelimited` and
//! Slack's own failures are retried, any other error is a refusal that retrying cannot fix.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::super::verdict;
use super::{Call, Failure, Verdict, edit_json, plain_reference, sibling};
use crate::config::thread::ThreadMode;
use crate::redact::Scrubber;

/// `channel ts` of a `chat.postMessage` answer.
pub(super) fn reference(answer: &Value) -> Option<String> {
    let field = |name: &str| answer.get(name).and_then(Value::as_str).filter(|v| plain_reference(v));
    (answer.get("ok") == Some(&Value::Bool(true))).then_some(())?;
    Some(format!("{} {}", field("channel")?, field("ts")?))
}

pub(super) fn follow_up(mode: ThreadMode, url: &http::Uri, body: &Bytes, reference: &str) -> Result<Call, String> {
    let (channel, ts) = reference.split_once(' ').ok_or("a Slack message reference is `channel ts`")?;
    match mode {
        ThreadMode::Update => {
            let body = edit_json(body, |message| {
                message.insert("channel".into(), channel.into());
                message.insert("ts".into(), ts.into());
                // chat.update keeps the message's author; these are chat.postMessage's alone.
                for key in ["username", "icon_emoji", "icon_url"] {
                    message.remove(key);
                }
            })?;
            Ok(Call::post(sibling(url, "chat.update"), body))
        }
        ThreadMode::Reply => {
            let body = edit_json(body, |message| {
                message.insert("channel".into(), channel.into());
                message.insert("thread_ts".into(), ts.into());
            })?;
            Ok(Call::post(url.clone(), body))
        }
    }
}

/// Reads Slack's `ok`/`error` out of a 2xx answer: a deleted message is [`Verdict::Gone`],
/// every other refusal is judged as any Slack answer is ([`crate::deliver::verdict`]).
pub(super) fn verdict(scrubber: &Scrubber, result: Result<(StatusCode, Option<Bytes>), Failure>) -> Verdict {
    if let Ok((_, Some(answer))) = &result
        && let Some(refusal) = verdict::refusal(SLACK, answer)
        && matches!(refusal.code.as_str(), "message_not_found" | "thread_not_found" | "cant_update_message")
    {
        return Verdict::Gone;
    }
    match verdict::judge(SLACK, scrubber, result) {
        Ok((_, answer)) => Verdict::Done(answer),
        Err(failure) => Verdict::Failed(failure),
    }
}

const SLACK: verdict::Rule = verdict::Rule::Ok(verdict::Vendor::Slack);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answered(value: Value) -> Verdict {
        verdict(&Scrubber::default(), Ok((StatusCode::OK, Some(Bytes::from(value.to_string())))))
    }

    // The answers as Slack documents them for chat.postMessage and chat.update.
    #[test]
    fn slacks_answers_are_read() {
        let posted = json!({"ok": true, "channel": "C123ABC456", "ts": "1503435956.000247",
                            "message": {"text": "Here's a message for you", "type": "message"}});
        assert_eq!(reference(&posted).as_deref(), Some("C123ABC456 1503435956.000247"));
        assert_eq!(reference(&json!({"ok": false, "error": "too_many_attachments"})), None);
        assert!(matches!(answered(posted), Verdict::Done(Some(_))));
        assert!(matches!(answered(json!({"ok": false, "error": "message_not_found"})), Verdict::Gone));
        let Verdict::Failed(f) = answered(json!({"ok": false, "error": "channel_not_found"})) else { panic!() };
        assert_eq!(f.kind, crate::deliver::FailureKind::Refused { status: StatusCode::OK, retry: false });
        assert!(!f.is_retryable());
        assert!(f.detail.contains("channel_not_found"));
        let Verdict::Failed(f) = answered(json!({"ok": false, "error": "ratelimited"})) else { panic!() };
        assert!(f.is_retryable());
    }

    #[test]
    fn update_and_reply_name_the_message() {
        let url: http::Uri = "https://slack.com/api/chat.postMessage".parse().unwrap();
        let body = Bytes::from_static(br##"{"text":"t","channel":"#ops","username":"am"}"##);
        let update = follow_up(ThreadMode::Update, &url, &body, "C1 17.5").unwrap();
        assert_eq!(update.url.path(), "/api/chat.update");
        assert_eq!(
            serde_json::from_slice::<Value>(&update.body).unwrap(),
            json!({"text":"t","channel":"C1","ts":"17.5"})
        );
        let reply = follow_up(ThreadMode::Reply, &url, &body, "C1 17.5").unwrap();
        assert_eq!(reply.url.path(), "/api/chat.postMessage");
        let reply: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!((reply["channel"].as_str(), reply["thread_ts"].as_str()), (Some("C1"), Some("17.5")));
    }
}
