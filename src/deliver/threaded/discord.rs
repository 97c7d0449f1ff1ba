//! Discord webhooks (https://discord.com/developers/docs/resources/webhook).
//!
//! The first message is posted with `?wait=true`, so Discord answers the created message and
//! its `id`. `mode: update` edits it with `PATCH {webhook}/messages/{id}` (404 Unknown Message
//! when someone deleted it). A webhook cannot reply to a message (it has no
//! `message_reference`), so `mode: reply` posts each later notification as a new message that
//! starts with the first one's jump link, `https://discord.com/channels/{guild}/{channel}/{id}`;
//! the guild is read once from the webhook object (`GET {webhook}`), as messages do not carry it.
//! A query already on the webhook URL (`?thread_id=…` for a forum thread) is kept on every call.

use bytes::Bytes;
use http::{Method, Uri};
use serde_json::Value;

use super::{Call, Target, add_query, edit_json, plain_reference, with_query};
use crate::config::thread::ThreadMode;

/// Discord's limit on `content`.
const MAX_CONTENT_CHARS: usize = 2000;

pub(super) fn post(url: &Uri, body: Bytes) -> Call {
    Call::post(with_query(url, Some(&add_query(url.query(), &[("wait", "true")]))), body)
}

/// The `id` of a Discord message object.
pub(super) fn message_id(answer: &Value) -> Option<String> {
    let id = answer.get("id")?.as_str()?;
    plain_reference(id).then(|| id.to_owned())
}

pub(super) fn follow_up(mode: ThreadMode, url: &Uri, body: &Bytes, reference: &str) -> Result<Call, String> {
    let mut parts = reference.split(' ');
    let id = parts.next().unwrap_or_default();
    match mode {
        ThreadMode::Update => {
            let edit = crate::template::presets::join(url, &format!("/messages/{id}"));
            let query =
                url.query().map(|q| q.split('&').filter(|p| !p.starts_with("wait=")).collect::<Vec<_>>().join("&"));
            Ok(Call { method: Method::PATCH, url: with_query(&edit, query.as_deref()), body: body.clone() })
        }
        ThreadMode::Reply => {
            let link = match (parts.next(), parts.next()) {
                (Some(channel), Some(guild)) => format!("↪ https://discord.com/channels/{guild}/{channel}/{id}"),
                _ => "↪ follow-up to this group's first message".to_owned(),
            };
            let body = edit_json(body, |message| {
                let content = message.get("content").and_then(Value::as_str).unwrap_or_default();
                let text: String = format!("{link}\n{content}").chars().take(MAX_CONTENT_CHARS).collect();
                message.insert("content".into(), Value::String(text));
            })?;
            Ok(post(url, body))
        }
    }
}

/// `mode: reply`: the first message's reference with its channel and guild, for the jump link
/// (`id channel guild`); the id alone when the webhook object cannot be read.
pub(super) async fn with_guild(target: &Target, url: &Uri, id: String) -> String {
    let webhook = with_query(url, None);
    let answer = match target.request(Method::GET, webhook, None, Bytes::new(), None, true).await {
        Ok((_, Some(answer))) => answer,
        Ok((_, None)) => return id,
        Err(failure) => {
            tracing::warn!(error = %failure, "cannot read the Discord webhook's guild; replies will not link the first message");
            return id;
        }
    };
    let Ok(object) = serde_json::from_slice::<Value>(&answer) else { return id };
    let field = |name: &str| object.get(name).and_then(Value::as_str).filter(|v| plain_reference(v)).map(str::to_owned);
    match (field("channel_id"), field("guild_id")) {
        (Some(channel), Some(guild)) => format!("{id} {channel} {guild}"),
        _ => id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_added_and_kept_off_the_edit() {
        let url: Uri = "https://discord.com/api/webhooks/1/tok?thread_id=9".parse().unwrap();
        assert_eq!(
            post(&url, Bytes::new()).url.to_string(),
            "https://discord.com/api/webhooks/1/tok?thread_id=9&wait=true"
        );
        let edit = follow_up(ThreadMode::Update, &url, &Bytes::new(), "77").unwrap();
        assert_eq!(edit.method, Method::PATCH);
        assert_eq!(edit.url.to_string(), "https://discord.com/api/webhooks/1/tok/messages/77?thread_id=9");
    }

    #[test]
    fn message_id_is_read_from_discords_message_object() {
        assert_eq!(message_id(&serde_json::json!({"id":"1189","channel_id":"5"})).as_deref(), Some("1189"));
        assert_eq!(message_id(&serde_json::json!({"id":"../../x"})), None);
    }

    #[test]
    fn a_reply_starts_with_the_first_messages_jump_link() {
        let url: Uri = "https://discord.com/api/webhooks/1/tok".parse().unwrap();
        let body = Bytes::from_static(br#"{"content":"**[RESOLVED] Disk**","allowed_mentions":{"parse":[]}}"#);
        let reply = follow_up(ThreadMode::Reply, &url, &body, "77 55 33").unwrap();
        assert_eq!((reply.method, reply.url.query()), (Method::POST, Some("wait=true")));
        let content: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(content["content"], "↪ https://discord.com/channels/33/55/77\n**[RESOLVED] Disk**");
        let long = Bytes::from(serde_json::json!({"content": "x".repeat(2000)}).to_string());
        let reply = follow_up(ThreadMode::Reply, &url, &long, "77 55 33").unwrap();
        let content: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(content["content"].as_str().unwrap().chars().count(), MAX_CONTENT_CHARS);
    }
}
