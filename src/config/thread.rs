//! `receivers[].thread:` — one chat message per alert group, updated in place or replied to.
//!
//! Checked against the receiver's preset and URL: only a destination whose API hands back a
//! message reference (or, for Google Chat, takes a thread key) can thread. The others say why
//! they cannot, by name, in `check-config`.

use std::time::Duration;

use http::Uri;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::duration::PromDuration;
use super::issues::Issues;
use crate::template::Preset;

/// What a later notification of a group does with the group's first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadMode {
    /// Edit the group's message to show the current state.
    Update,
    /// Post a reply under the group's message.
    Reply,
}

impl ThreadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadMode::Update => "update",
            ThreadMode::Reply => "reply",
        }
    }
}

/// The API a threaded receiver speaks, from its preset and URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadApi {
    /// A Discord webhook (`POST ?wait=true`, `PATCH …/messages/{id}`).
    Discord,
    /// Slack's Web API (`chat.postMessage`, `chat.update`, `thread_ts`) with a bot token.
    Slack,
    /// Telegram's Bot API (`sendMessage`, `editMessageText`, `reply_parameters`).
    Telegram,
    /// A Google Chat incoming webhook (`threadKey`, `requestId`).
    GoogleChat,
    /// Matrix's client-server API (`PUT …/send/m.room.message/{txnId}`, `m.replace`, `m.thread`).
    Matrix,
}

/// A receiver's validated `thread:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadSpec {
    pub mode: ThreadMode,
    pub api: ThreadApi,
    /// A group's message is forgotten this long after it was last posted or updated.
    pub expire: Duration,
    /// At most this many groups remembered; past it the least recently used is forgotten.
    pub max_groups: usize,
}

pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(7 * 24 * 3600);
pub const DEFAULT_MAX_GROUPS: usize = 100_000;

/// `thread:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThread {
    pub mode: String,
    #[serde(default)]
    pub expire: Option<PromDuration>,
    #[serde(default)]
    pub max_groups: Option<usize>,
}

/// Checks `thread:` against the receiver's preset and URL; `None` with an issue added when it
/// cannot work.
pub(super) fn check(
    issues: &mut Issues,
    field: &str,
    raw: &Spanned<RawThread>,
    preset: Option<Preset>,
    url: Option<&Uri>,
) -> Option<ThreadSpec> {
    let (at, value) = (&raw.referenced, &raw.value);
    let field = format!("{field}.thread");
    let before = issues.len();
    let mode = match value.mode.as_str() {
        "update" => Some(ThreadMode::Update),
        "reply" => Some(ThreadMode::Reply),
        other => {
            issues.add(Some(at), format!("{field}.mode"), format!("unknown mode {other:?}: use update or reply"));
            None
        }
    };
    let expire = value.expire.map_or(DEFAULT_EXPIRE, |d| d.0);
    if expire.is_zero() {
        issues.add(Some(at), format!("{field}.expire"), "must be greater than 0");
    }
    let max_groups = value.max_groups.unwrap_or(DEFAULT_MAX_GROUPS);
    if max_groups == 0 {
        issues.add(Some(at), format!("{field}.max_groups"), "must be at least 1");
    }
    let mut destination = None;
    if let Some(mode) = mode {
        match supported(preset, mode, url.map_or("", Uri::path)) {
            Ok(found) => destination = Some(found),
            Err(why) => issues.add(Some(at), field.clone(), why),
        }
    }
    (issues.len() == before).then_some(ThreadSpec { mode: mode?, api: destination?, expire, max_groups })
}

/// Whether the preset's destination, at a URL with `path`, can thread in `mode`, and why not.
pub fn supported(preset: Option<Preset>, mode: ThreadMode, path: &str) -> Result<ThreadApi, String> {
    let method = path.rsplit('/').next().unwrap_or("");
    match (preset, mode) {
        (Some(Preset::Discord), _) => Ok(ThreadApi::Discord),
        (Some(Preset::Slack), _) if method == "chat.postMessage" => Ok(ThreadApi::Slack),
        (Some(Preset::Slack), _) => Err("Slack incoming webhooks answer `ok` with no message reference, so they \
             cannot update or thread: use Slack's Web API, url https://slack.com/api/chat.postMessage with \
             preset_options.token_file and preset_options.channel"
            .into()),
        (Some(Preset::Telegram), _) if method == "sendMessage" => Ok(ThreadApi::Telegram),
        (Some(Preset::Telegram), _) => {
            Err("the telegram preset threads through the Bot API's sendMessage: the url must end in /sendMessage"
                .into())
        }
        (Some(Preset::GoogleChat), ThreadMode::Reply) => Ok(ThreadApi::GoogleChat),
        (Some(Preset::GoogleChat), ThreadMode::Update) => Err("a Google Chat incoming webhook cannot edit its \
             messages (that needs a Chat app's credentials): use mode: reply, which keeps a group in one thread"
            .into()),
        (Some(Preset::Matrix), _) if path.ends_with("/send/m.room.message") => Ok(ThreadApi::Matrix),
        (Some(Preset::Matrix), _) => Err("the matrix preset threads through the client-server API: the url must end \
             in /rooms/{roomId}/send/m.room.message"
            .into()),
        (Some(p @ (Preset::PagerDuty | Preset::Opsgenie)), _) => Err(format!(
            "the {} preset needs no thread: its {} already ties a group's notifications to one incident",
            p.name(),
            if p == Preset::PagerDuty { "dedup_key" } else { "alias" }
        )),
        (Some(p), _) => Err(format!("the {} preset's destination has no message to update or reply to", p.name())),
        (None, _) => {
            Err("needs a preset whose destination can thread (discord, slack, telegram, googlechat, matrix)".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_destination_threads_where_its_api_allows() {
        use ThreadMode::{Reply, Update};
        let discord = "/api/webhooks/1/t";
        assert_eq!(supported(Some(Preset::Discord), Update, discord), Ok(ThreadApi::Discord));
        assert_eq!(supported(Some(Preset::Discord), Reply, discord), Ok(ThreadApi::Discord));
        assert_eq!(supported(Some(Preset::Slack), Update, "/api/chat.postMessage"), Ok(ThreadApi::Slack));
        assert_eq!(supported(Some(Preset::Slack), Reply, "/api/chat.postMessage"), Ok(ThreadApi::Slack));
        let webhook = supported(Some(Preset::Slack), Update, "/services/T0/B0/x").unwrap_err();
        assert!(webhook.contains("incoming webhooks"), "{webhook}");
        assert_eq!(supported(Some(Preset::Telegram), Update, "/bot1:x/sendMessage"), Ok(ThreadApi::Telegram));
        assert!(supported(Some(Preset::Telegram), Reply, "/bot1:x/sendPhoto").is_err());
        assert_eq!(supported(Some(Preset::GoogleChat), Reply, "/v1/spaces/S/messages"), Ok(ThreadApi::GoogleChat));
        assert!(supported(Some(Preset::GoogleChat), Update, "/v1/spaces/S/messages").unwrap_err().contains("reply"));
        assert!(supported(Some(Preset::PagerDuty), Update, "/v2/enqueue").unwrap_err().contains("dedup_key"));
        let matrix = "/_matrix/client/v3/rooms/!r:example.org/send/m.room.message";
        assert_eq!(supported(Some(Preset::Matrix), Update, matrix), Ok(ThreadApi::Matrix));
        assert_eq!(supported(Some(Preset::Matrix), Reply, matrix), Ok(ThreadApi::Matrix));
        assert!(
            supported(Some(Preset::Matrix), Reply, "/_matrix/client/v3/rooms/!r:x")
                .unwrap_err()
                .contains("m.room.message")
        );
        assert!(supported(None, Update, "/").is_err());
    }
}
