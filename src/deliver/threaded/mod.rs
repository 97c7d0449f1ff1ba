//! One attempt of a receiver with `thread:`: a group's later notifications update its first
//! message (`mode: update`) or reply under it (`mode: reply`); the first one is posted and its
//! reference remembered (see [`super::thread_memory`]).
//!
//! The flow is the same for every destination; what differs — the request that posts, the one
//! that follows up, where the answer names the message, what "that message is gone" looks like —
//! lives in one file per destination. A follow-up whose message was deleted (`Gone`) posts the
//! notification anew and remembers the new message.

mod discord;
mod googlechat;
mod matrix;
mod slack;
mod telegram;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, Uri};

use super::{Downstream, Failure, FailureKind, Outbound, Target};
use crate::config::thread::{ThreadApi, ThreadMode, ThreadSpec};
use crate::metrics as m;
use crate::spool::GroupHash;

/// One request to the destination.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Call {
    method: Method,
    url: Uri,
    body: Bytes,
}

impl Call {
    fn post(url: Uri, body: Bytes) -> Call {
        Call { method: Method::POST, url, body }
    }
}

/// What a destination made of a request.
enum Verdict {
    /// Taken; the answer's body when it was read.
    Done(Option<Bytes>),
    /// The message followed up on no longer exists.
    Gone,
    Failed(Failure),
}

/// Sends `body` as a notification of its group: an update of, or a reply to, the group's
/// message, or the group's first message. Says what was done: `posted`, `reposted` (its
/// message was gone), `updated` or `replied`.
pub(super) async fn send(
    downstream: &Downstream,
    target: &Target,
    spec: ThreadSpec,
    url: Uri,
    content_type: Option<HeaderValue>,
    body: Bytes,
    item: &Outbound,
) -> Result<(StatusCode, &'static str), Failure> {
    let (name, spool) = (&downstream.name, &downstream.spool);
    // The group is known by its groupKey's hash (see `super::thread_memory`), computed once per attempt.
    let group = crate::spool::group_hash(&item.group_key);
    let existing = downstream.threads.get(name, spool, &group, spec.expire).await;
    let mut outcome = "posted";
    if let Some(entry) = existing {
        let call = follow_up(spec, &url, &body, &entry.message_id, item).map_err(|e| unsendable(name, e))?;
        match exchange(target, spec.api, call, content_type.clone(), item).await {
            (status, Verdict::Done(_)) => {
                let done = if spec.mode == ThreadMode::Update { "updated" } else { "replied" };
                count(name, done);
                remember(downstream, spec, group, &item.group_key, entry.message_id).await;
                return Ok((status, done));
            }
            (_, Verdict::Gone) => {
                tracing::info!(receiver = %name, group_key = %item.group_key, "the group's message is gone; posting a new one");
                outcome = "reposted";
            }
            (_, Verdict::Failed(failure)) => {
                count(name, "failed");
                return Err(failure);
            }
        }
    }
    let (call, known) = first_post(spec, &url, &body, item);
    let (status, answer) = match exchange(target, spec.api, call, content_type, item).await {
        (status, Verdict::Done(answer)) => (status, answer),
        (_, Verdict::Gone) => {
            count(name, "failed");
            return Err(Failure::new(
                FailureKind::Status(StatusCode::NOT_FOUND),
                "the destination answered that the conversation does not exist",
            ));
        }
        (_, Verdict::Failed(failure)) => {
            count(name, "failed");
            return Err(failure);
        }
    };
    let reference = match known {
        Some(known) => Some(known),
        None => match answer.as_deref().and_then(|a| reference(spec.api, a)) {
            Some(id) if spec.api == ThreadApi::Discord && spec.mode == ThreadMode::Reply => {
                Some(discord::with_guild(target, &url, id).await)
            }
            found => found,
        },
    };
    match reference {
        Some(id) => {
            count(name, outcome);
            remember(downstream, spec, group, &item.group_key, id).await;
        }
        None => {
            count(name, "unreferenced");
            tracing::warn!(receiver = %name, group_key = %item.group_key,
                "the destination's answer names no message; the group's next notification posts a new one");
        }
    }
    Ok((status, outcome))
}

/// The request that posts a group's first message, and the reference when it is known before
/// the answer (Google Chat's thread key).
fn first_post(spec: ThreadSpec, url: &Uri, body: &Bytes, item: &Outbound) -> (Call, Option<String>) {
    match spec.api {
        ThreadApi::Discord => (discord::post(url, body.clone()), None),
        ThreadApi::Slack | ThreadApi::Telegram => (Call::post(url.clone(), body.clone()), None),
        ThreadApi::Matrix => (matrix::put(url, body.clone(), &item.id), None),
        ThreadApi::GoogleChat => {
            let key = googlechat::thread_key(&item.group_key, &item.id);
            (googlechat::post(url, body.clone(), &key, &item.id), Some(key))
        }
    }
}

/// The request that updates, or replies to, the group's message `reference`.
fn follow_up(spec: ThreadSpec, url: &Uri, body: &Bytes, reference: &str, item: &Outbound) -> Result<Call, String> {
    match spec.api {
        ThreadApi::Discord => discord::follow_up(spec.mode, url, body, reference),
        ThreadApi::Slack => slack::follow_up(spec.mode, url, body, reference),
        ThreadApi::Telegram => telegram::follow_up(spec.mode, url, body, reference),
        ThreadApi::Matrix => matrix::follow_up(spec.mode, url, body, reference, &item.id),
        // A reply is a post with the group's thread key (`mode: reply` is the only one allowed).
        ThreadApi::GoogleChat => Ok(googlechat::post(url, body.clone(), reference, &item.id)),
    }
}

/// The message reference a destination's answer to a first post names.
fn reference(api: ThreadApi, answer: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    match api {
        ThreadApi::Discord => discord::message_id(&value),
        ThreadApi::Slack => slack::reference(&value),
        ThreadApi::Telegram => telegram::message_id(&value),
        ThreadApi::Matrix => matrix::event_id(&value),
        ThreadApi::GoogleChat => None,
    }
}

async fn exchange(
    target: &Target,
    api: ThreadApi,
    call: Call,
    content_type: Option<HeaderValue>,
    item: &Outbound,
) -> (StatusCode, Verdict) {
    let result = target.request(call.method, call.url, content_type, call.body, Some(&item.id), true).await;
    let status = result.as_ref().map_or(StatusCode::OK, |(status, _)| *status);
    let verdict = match api {
        ThreadApi::Discord | ThreadApi::GoogleChat => match result {
            Ok((_, answer)) => Verdict::Done(answer),
            Err(f) if f.kind == FailureKind::Status(StatusCode::NOT_FOUND) => Verdict::Gone,
            Err(f) => Verdict::Failed(f),
        },
        ThreadApi::Slack => slack::verdict(&target.scrubber, result),
        ThreadApi::Telegram => telegram::verdict(result),
        ThreadApi::Matrix => matrix::verdict(result),
    };
    // What is not about the group's message is judged as every attempt is: the vendor's wait
    // and whether retrying may help.
    let rule = super::verdict::rule(target.template.as_ref().and_then(|t| t.preset()));
    let verdict = match verdict {
        Verdict::Failed(failure) => Verdict::Failed(super::verdict::judge_failure(rule, failure)),
        other => other,
    };
    (status, verdict)
}

/// A rendered body that is not the JSON object the destination's API needs.
fn unsendable(receiver: &str, why: String) -> Failure {
    count(receiver, "failed");
    Failure::new(FailureKind::Other, why)
}

async fn remember(downstream: &Downstream, spec: ThreadSpec, group: GroupHash, group_key: &str, id: String) {
    let (name, spool) = (&downstream.name, &downstream.spool);
    if let Err(e) = downstream.threads.remember(name, spool, group, group_key, id, spec.max_groups, spec.expire).await {
        tracing::error!(receiver = %name, group_key = %group_key, error = %e,
            "cannot persist the group's message; after a restart its next notification posts a new one");
    }
    metrics::gauge!(m::THREADS, "receiver" => name.to_string()).set(downstream.threads.len() as f64);
}

fn count(receiver: &str, outcome: &'static str) {
    metrics::counter!(m::THREAD_UPDATES, "receiver" => receiver.to_owned(), "outcome" => outcome).increment(1);
}

/// A message reference part: short, and nothing that could escape a URL path or a JSON string.
fn plain_reference(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= 64
        && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The rendered body as a JSON object, changed by `edit`.
fn edit_json(
    body: &Bytes,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Result<Bytes, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the rendered body is not JSON ({e}): cannot thread it"))?;
    let object = value.as_object_mut().ok_or("the rendered body is not a JSON object: cannot thread it")?;
    edit(object);
    Ok(Bytes::from(serde_json::to_vec(&value).expect("a JSON value serializes")))
}

/// `url` with its last path segment replaced: Slack's `chat.postMessage` → `chat.update`,
/// Telegram's `sendMessage` → `editMessageText`. The query is kept.
fn sibling(url: &Uri, method: &str) -> Uri {
    let path = url.path();
    let base = path.rsplit_once('/').map_or("", |(base, _)| base);
    let path_and_query = match url.query() {
        Some(q) => format!("{base}/{method}?{q}"),
        None => format!("{base}/{method}"),
    };
    with_path_and_query(url, &path_and_query)
}

/// `url` with its query replaced by `query`.
fn with_query(url: &Uri, query: Option<&str>) -> Uri {
    let path = url.path();
    match query.filter(|q| !q.is_empty()) {
        Some(q) => with_path_and_query(url, &format!("{path}?{q}")),
        None => with_path_and_query(url, path),
    }
}

fn with_path_and_query(url: &Uri, path_and_query: &str) -> Uri {
    let mut parts = url.clone().into_parts();
    match path_and_query.parse() {
        Ok(pq) => parts.path_and_query = Some(pq),
        Err(_) => return url.clone(),
    }
    Uri::from_parts(parts).unwrap_or_else(|_| url.clone())
}

/// `query` with `pairs` added, replacing any pair of the same name.
fn add_query(query: Option<&str>, pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !pairs.iter().any(|(n, _)| *n == name) {
            out.append_pair(&name, &value);
        }
    }
    for (name, value) in pairs {
        out.append_pair(name, value);
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_methods_keep_the_base_and_query() {
        let slack: Uri = "https://slack.com/api/chat.postMessage".parse().unwrap();
        assert_eq!(sibling(&slack, "chat.update").to_string(), "https://slack.com/api/chat.update");
        let telegram: Uri = "https://api.telegram.org/bot1:x/sendMessage?a=1".parse().unwrap();
        assert_eq!(
            sibling(&telegram, "editMessageText").to_string(),
            "https://api.telegram.org/bot1:x/editMessageText?a=1"
        );
    }

    #[test]
    fn query_pairs_are_added_once_and_encoded() {
        assert_eq!(add_query(Some("key=k&wait=false"), &[("wait", "true")]), "key=k&wait=true");
        assert_eq!(add_query(None, &[("threadKey", "a b")]), "threadKey=a+b");
    }

    #[test]
    fn bodies_that_are_not_json_objects_cannot_thread() {
        assert!(edit_json(&Bytes::from_static(b"plain"), |_| {}).is_err());
        assert!(edit_json(&Bytes::from_static(b"[1]"), |_| {}).is_err());
        let edited = edit_json(&Bytes::from_static(br#"{"a":1}"#), |m| {
            m.insert("b".into(), 2.into());
        });
        assert_eq!(edited.unwrap(), Bytes::from_static(br#"{"a":1,"b":2}"#));
    }

    #[test]
    fn references_are_plain() {
        assert!(plain_reference("1503435956.000247"));
        assert!(!plain_reference("../x"));
        assert!(!plain_reference(""));
    }
}
