//! Google Chat incoming webhooks (https://developers.google.com/workspace/chat/api/reference/rest/v1/spaces.messages/create).
//!
//! A webhook cannot edit its messages, but it can thread: every notification of a group is
//! posted with the group's `threadKey` and `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD`,
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
    let query = add_query(
        url.query(),
        &[
            ("threadKey", thread_key),
            ("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"),
            ("requestId", request_id),
        ],
    );
    Call::post(with_query(url, Some(&query)), body)
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
        let call = post(&url, Bytes::new(), &key, "n1");
        assert_eq!(
            call.url.query().unwrap(),
            format!(
                "key=k&token=t&threadKey={key}&messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD&requestId=n1"
            )
        );
    }
}
