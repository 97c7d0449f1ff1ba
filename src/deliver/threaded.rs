//! One attempt of a receiver with `thread:`: the group's message is updated in place, or posted
//! (and remembered) when the group has none yet.
//!
//! Discord (`mode: update`): the first notification of a group is posted with `?wait=true`, so
//! Discord answers the created message; its `id` is remembered. Later ones are sent as
//! `PATCH {webhook}/messages/{id}`. A message deleted in the channel answers 404 (Unknown
//! Message): the notification is posted anew and the new message remembered.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri};

use super::{Downstream, Failure, FailureKind, Outbound, Target};
use crate::config::thread::ThreadSpec;
use crate::metrics as m;

/// Sends `body` as the group's message: an update of it, or a new one.
pub(super) async fn send(
    downstream: &Downstream,
    target: &Target,
    spec: ThreadSpec,
    url: Uri,
    content_type: Option<HeaderValue>,
    body: Bytes,
    item: &Outbound,
) -> Result<StatusCode, Failure> {
    let (name, spool) = (&downstream.name, &downstream.spool);
    let existing = downstream.threads.get(name, spool, &item.group_key, spec.expire).await;
    let mut outcome = "posted";
    if let Some(entry) = existing {
        let edit = crate::template::presets::join(&url, &format!("/messages/{}", entry.message_id));
        let edit = with_query(&edit, url.query());
        match target.request(Method::PATCH, edit, content_type.clone(), body.clone(), Some(&item.id), false).await {
            Ok((status, _)) => {
                count(name, "updated");
                remember(downstream, spec, &item.group_key, entry.message_id).await;
                return Ok(status);
            }
            Err(failure) if failure.kind == FailureKind::Status(StatusCode::NOT_FOUND) => {
                tracing::info!(receiver = %name, group_key = %item.group_key, "the group's message is gone; posting a new one");
                outcome = "reposted";
            }
            Err(failure) => {
                count(name, "failed");
                return Err(failure);
            }
        }
    }
    let post = with_query(&url, Some(&append_query(url.query(), "wait=true")));
    let (status, answer) = match target.request(Method::POST, post, content_type, body, Some(&item.id), true).await {
        Ok(answered) => answered,
        Err(failure) => {
            count(name, "failed");
            return Err(failure);
        }
    };
    match answer.as_deref().and_then(message_id) {
        Some(id) => {
            count(name, outcome);
            remember(downstream, spec, &item.group_key, id).await;
        }
        None => {
            count(name, "unreferenced");
            tracing::warn!(receiver = %name, group_key = %item.group_key,
                "the destination's answer names no message; the group's next notification posts a new one");
        }
    }
    Ok(status)
}

async fn remember(downstream: &Downstream, spec: ThreadSpec, group_key: &Arc<str>, id: String) {
    let (name, spool) = (&downstream.name, &downstream.spool);
    if let Err(e) = downstream.threads.remember(name, spool, group_key, id, spec.max_groups, spec.expire).await {
        tracing::error!(receiver = %name, group_key = %group_key, error = %e,
            "cannot persist the group's message; after a restart its next notification posts a new one");
    }
    metrics::gauge!(m::THREADS, "receiver" => name.to_string()).set(downstream.threads.len() as f64);
}

fn count(receiver: &str, outcome: &'static str) {
    metrics::counter!(m::THREAD_UPDATES, "receiver" => receiver.to_owned(), "outcome" => outcome).increment(1);
}

/// The message id of a Discord message object (`{"id": "…", …}`).
fn message_id(answer: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let id = value.get("id")?.as_str()?;
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| id.to_owned())
}

fn append_query(query: Option<&str>, pair: &str) -> String {
    match query.filter(|q| !q.is_empty()) {
        Some(q) => {
            let kept: Vec<&str> = q.split('&').filter(|p| !p.starts_with("wait=")).collect();
            if kept.is_empty() { pair.to_owned() } else { format!("{}&{pair}", kept.join("&")) }
        }
        None => pair.to_owned(),
    }
}

/// `url` with its query replaced by `query`.
fn with_query(url: &Uri, query: Option<&str>) -> Uri {
    let path = url.path();
    let path_and_query = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = url.clone().into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return url.clone(),
    }
    Uri::from_parts(parts).unwrap_or_else(|_| url.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_is_added_to_the_webhook_query() {
        let url: Uri = "https://discord.com/api/webhooks/1/tok?thread_id=9".parse().unwrap();
        let post = with_query(&url, Some(&append_query(url.query(), "wait=true")));
        assert_eq!(post.to_string(), "https://discord.com/api/webhooks/1/tok?thread_id=9&wait=true");
        let edit = crate::template::presets::join(&url, "/messages/77");
        assert_eq!(
            with_query(&edit, url.query()).to_string(),
            "https://discord.com/api/webhooks/1/tok/messages/77?thread_id=9"
        );
    }

    #[test]
    fn message_id_is_read_from_discords_message_object() {
        assert_eq!(message_id(br#"{"id":"1189","channel_id":"5","content":"x"}"#).as_deref(), Some("1189"));
        assert_eq!(message_id(br#"{"id":"../../x"}"#), None);
        assert_eq!(message_id(b"not json"), None);
    }
}
