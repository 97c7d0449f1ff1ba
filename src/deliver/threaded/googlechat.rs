//! Google Chat incoming webhooks (https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/create).
//!
//! A webhook cannot edit its messages, but it can thread: every notification of a group is
//! posted with the group's thread key in the body (`thread.threadKey`: the `threadKey` query
//! parameter is deprecated) and `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`,
//! so the first starts the thread and the others reply in it. `requestId` is the notification's
//! id: Chat answers a repeated request id with the message already created, so a retried post
//! never makes a second message. The thread key is a hash of the groupKey and the id of the
//! group's first notification: stable across retries and restarts (it is remembered), and new
//! when an expired group starts a new conversation.

use bytes::Bytes;
use http::Uri;
use ring::digest::{SHA256, digest};

use super::{Call, add_query, with_query};

pub(super) fn thread_key(group_key: &str, first_id: &str) -> String {
    let hash = digest(&SHA256, format!("{group_key}\n{first_id}").as_bytes());
    hash.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn post(url: &Uri, body: Bytes, thread_key: &str, request_id: &str) -> Call {
    let reply = ("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
    match with_thread(&body, thread_key) {
        Some(body) => {
            let query = add_query(url.query(), &[reply, ("requestId", request_id)]);
            Call::post(with_query(url, Some(&query)), body)
        }
        // A custom body that is not a JSON object: the key goes where Chat still reads it.
        None => {
            let query = add_query(url.query(), &[("threadKey", thread_key), reply, ("requestId", request_id)]);
            Call::post(with_query(url, Some(&query)), body)
        }
    }
}

/// The message with `thread: {threadKey}` set; `None` when the body is not a JSON object.
fn with_thread(body: &[u8], thread_key: &str) -> Option<Bytes> {
    let mut message: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body).ok()?;
    let thread = message.entry("thread").or_insert_with(|| serde_json::json!({}));
    thread.as_object_mut()?.insert("threadKey".into(), thread_key.into());
    serde_json::to_vec(&message).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_carry_the_thread_key_and_request_id_beside_the_webhook_key() {
        let url: Uri = "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t".parse().unwrap();
        let key = thread_key("{}:{alertname=\"Disk\"}", "n1");
        assert_eq!(key.len(), 32);
        assert_eq!(key, thread_key("{}:{alertname=\"Disk\"}", "n1"), "stable");
        assert_ne!(key, thread_key("{}:{alertname=\"Disk\"}", "n2"), "a new conversation, a new thread");
        let call = post(&url, Bytes::from_static(br#"{"text":"hi"}"#), &key, "n1");
        assert_eq!(
            call.url.query().unwrap(),
            "key=k&token=t&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD&requestId=n1"
        );
        let sent: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
        assert_eq!(sent, serde_json::json!({"text": "hi", "thread": {"threadKey": key}}));
        // Not a JSON object: the deprecated query parameter, which Chat still reads.
        let call = post(&url, Bytes::from_static(b"plain"), &key, "n1");
        assert!(call.url.query().unwrap().contains(&format!("threadKey={key}")));
    }
}
