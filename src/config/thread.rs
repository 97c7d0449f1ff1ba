//! `receivers[].thread:` — one chat message per alert group, updated in place or replied to.
//!
//! Checked against the receiver's preset: only a destination whose API hands back a message
//! reference can thread. This version threads Discord webhooks (`mode: update`); the others say
//! why they cannot, by name, in `check-config`.

use std::time::Duration;

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

/// A receiver's validated `thread:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadSpec {
    pub mode: ThreadMode,
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

/// Checks `thread:` against the receiver's preset; `None` with an issue added when it cannot work.
pub(super) fn check(
    issues: &mut Issues,
    field: &str,
    raw: &Spanned<RawThread>,
    preset: Option<Preset>,
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
    if let Some(mode) = mode
        && let Err(why) = supported(preset, mode)
    {
        issues.add(Some(at), field.clone(), why);
    }
    (issues.len() == before).then_some(ThreadSpec { mode: mode?, expire, max_groups })
}

/// Whether the preset's destination can thread in `mode`, and why not.
pub fn supported(preset: Option<Preset>, mode: ThreadMode) -> Result<(), String> {
    match (preset, mode) {
        (Some(Preset::Discord), ThreadMode::Update) => Ok(()),
        (Some(Preset::Discord), ThreadMode::Reply) => Err(
            "Discord webhooks cannot reply to a message (a webhook message has no message_reference): use mode: update"
                .into(),
        ),
        (Some(Preset::Slack), _) => Err("Slack incoming webhooks return no message reference, so they cannot \
             update or thread: threading needs Slack's Web API, not yet supported"
            .into()),
        (Some(p @ (Preset::Telegram | Preset::GoogleChat)), _) => {
            Err(format!("threading with the {} preset is not supported yet (only discord)", p.name()))
        }
        (Some(p), _) => Err(format!("the {} preset's destination has no message to update or reply to", p.name())),
        (None, _) => Err("needs a preset whose destination can thread (discord)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discord_updates_and_slack_webhooks_cannot_thread() {
        assert!(supported(Some(Preset::Discord), ThreadMode::Update).is_ok());
        assert!(supported(Some(Preset::Discord), ThreadMode::Reply).unwrap_err().contains("use mode: update"));
        assert!(supported(Some(Preset::Slack), ThreadMode::Update).unwrap_err().contains("incoming webhooks"));
        assert!(supported(None, ThreadMode::Update).is_err());
    }
}
