//! Ready-made bodies for the endpoints people point alerts at: a template each (embedded in the
//! binary, in `presets/`), plus the small Rust part some destinations need — Opsgenie's close URL
//! for a resolved group, DingTalk's signature on each attempt. Opsgenie's `GenieKey` header is
//! the receiver's ordinary authorization, set by the config from `preset_options.api_key_file`.
//!
//! Each template cuts a big batch with an "… and N more" line so the message stays within its
//! destination's documented size limit (cited in each template's header).

use std::time::SystemTime;

use base64::Engine;
use http::Uri;
use minijinja::Environment;

use crate::secret::Secret;

/// A destination amrelay has a ready-made body for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Slack,
    MsTeams,
    Discord,
    GoogleChat,
    PagerDuty,
    Opsgenie,
    Telegram,
    Feishu,
    DingTalk,
    WeCom,
}

/// One option a preset reads from `preset_options`.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec {
    pub name: &'static str,
    pub required: bool,
    /// A secret: given as `NAME_file` (or inline `NAME`), never shown.
    pub secret: bool,
    /// Seen by the template as `options.NAME`; otherwise used by amrelay itself.
    pub in_template: bool,
}

const fn opt(name: &'static str) -> OptionSpec {
    OptionSpec { name, required: false, secret: false, in_template: true }
}

const fn required(name: &'static str) -> OptionSpec {
    OptionSpec { name, required: true, secret: false, in_template: true }
}

impl Preset {
    pub const ALL: [Preset; 10] = [
        Preset::Slack,
        Preset::MsTeams,
        Preset::Discord,
        Preset::GoogleChat,
        Preset::PagerDuty,
        Preset::Opsgenie,
        Preset::Telegram,
        Preset::Feishu,
        Preset::DingTalk,
        Preset::WeCom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Slack => "slack",
            Preset::MsTeams => "msteams",
            Preset::Discord => "discord",
            Preset::GoogleChat => "googlechat",
            Preset::PagerDuty => "pagerduty",
            Preset::Opsgenie => "opsgenie",
            Preset::Telegram => "telegram",
            Preset::Feishu => "feishu",
            Preset::DingTalk => "dingtalk",
            Preset::WeCom => "wecom",
        }
    }

    pub fn parse(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The template's name in a receiver's environment.
    pub fn template_name(self) -> &'static str {
        match self {
            Preset::Slack => "preset slack",
            Preset::MsTeams => "preset msteams",
            Preset::Discord => "preset discord",
            Preset::GoogleChat => "preset googlechat",
            Preset::PagerDuty => "preset pagerduty",
            Preset::Opsgenie => "preset opsgenie",
            Preset::Telegram => "preset telegram",
            Preset::Feishu => "preset feishu",
            Preset::DingTalk => "preset dingtalk",
            Preset::WeCom => "preset wecom",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Preset::Slack => include_str!("presets/slack.j2"),
            Preset::MsTeams => include_str!("presets/msteams.j2"),
            Preset::Discord => include_str!("presets/discord.j2"),
            Preset::GoogleChat => include_str!("presets/googlechat.j2"),
            Preset::PagerDuty => include_str!("presets/pagerduty.j2"),
            Preset::Opsgenie => include_str!("presets/opsgenie.j2"),
            Preset::Telegram => include_str!("presets/telegram.j2"),
            Preset::Feishu => include_str!("presets/feishu.j2"),
            Preset::DingTalk => include_str!("presets/dingtalk.j2"),
            Preset::WeCom => include_str!("presets/wecom.j2"),
        }
    }

    /// The destination's documented sending limit as a token bucket `(per_second, burst)`: the
    /// receiver's `rate_limit` when it sets none. A burst of 1 keeps every window within the
    /// documented count (20 a minute is one every 3 s: never 21 in any 60 s). `None`: no
    /// documented per-destination limit (its 429 is still honoured by the retries).
    pub fn default_rate_limit(self) -> Option<(f64, u32)> {
        match self {
            // https://api.slack.com/docs/rate-limits — incoming webhooks: 1 a second.
            Preset::Slack => Some((1.0, 1)),
            // https://discord.com/developers/docs/topics/rate-limits — a webhook: 5 per 2 s.
            Preset::Discord => Some((2.5, 1)),
            // https://developers.google.com/workspace/chat/limits — 1 write a second per space.
            Preset::GoogleChat => Some((1.0, 1)),
            // https://developer.pagerduty.com/docs/events-api-v2-overview — 120 a minute per key.
            Preset::PagerDuty => Some((2.0, 1)),
            // https://core.telegram.org/bots/faq — 20 messages a minute to one group.
            Preset::Telegram => Some((20.0 / 60.0, 1)),
            // https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot — 100 a minute, 5 a second.
            Preset::Feishu => Some((100.0 / 60.0, 1)),
            // https://open.dingtalk.com/document/orgapp/custom-robot-access — 20 a minute.
            Preset::DingTalk => Some((20.0 / 60.0, 1)),
            // https://developer.work.weixin.qq.com/document/path/91770 — 20 a minute.
            Preset::WeCom => Some((20.0 / 60.0, 1)),
            // No documented per-destination limit: Teams (Workflows) and Opsgenie (per plan).
            // The fallback arm, so that a preset added later compiles; give it its own arm.
            _ => None,
        }
    }

    /// The options it reads.
    pub fn options(self) -> &'static [OptionSpec] {
        const SLACK: &[OptionSpec] = &[
            opt("channel"),
            opt("username"),
            opt("icon_emoji"),
            opt("icon_url"),
            // The Web API's bot token (`chat.postMessage`), sent as `Authorization: Bearer`.
            OptionSpec { name: "token", required: false, secret: true, in_template: false },
        ];
        const DISCORD: &[OptionSpec] = &[opt("username"), opt("avatar_url")];
        const PAGERDUTY: &[OptionSpec] = &[
            OptionSpec { name: "routing_key", required: true, secret: true, in_template: true },
            opt("severity"),
            opt("source"),
            opt("component"),
            opt("group"),
            opt("class"),
        ];
        const OPSGENIE: &[OptionSpec] = &[
            OptionSpec { name: "api_key", required: true, secret: true, in_template: false },
            opt("priority"),
            opt("source"),
            opt("entity"),
        ];
        const TELEGRAM: &[OptionSpec] = &[required("chat_id"), opt("message_thread_id"), opt("disable_notification")];
        // DingTalk's and Feishu's signing secret ("加签" / "签名校验").
        const SIGNED: &[OptionSpec] =
            &[OptionSpec { name: "secret", required: false, secret: true, in_template: false }];
        match self {
            Preset::Slack => SLACK,
            Preset::MsTeams | Preset::GoogleChat | Preset::WeCom => &[],
            Preset::Discord => DISCORD,
            Preset::PagerDuty => PAGERDUTY,
            Preset::Opsgenie => OPSGENIE,
            Preset::Telegram => TELEGRAM,
            Preset::DingTalk | Preset::Feishu => SIGNED,
        }
    }
}

/// Adds the macros every preset imports, as `amrelay/common.j2`.
pub(super) fn register_common(env: &mut Environment<'static>) {
    let source = super::concat::rewrite(include_str!("presets/common.j2")).into_owned();
    env.add_template_owned("amrelay/common.j2", source).expect("the shipped macros compile");
}

/// The Rust part of a receiver's preset.
#[derive(Debug)]
pub(super) struct Runtime {
    pub preset: Preset,
    /// DingTalk's or Feishu's signing secret.
    pub signing: Option<Secret>,
}

impl Runtime {
    /// Opsgenie: a resolved group closes the alert by its alias, at
    /// `{url}/{alias}/close?identifierType=alias`; the suffix to add to the receiver's URL. A
    /// resolved notification that was truncated (`truncatedAlerts` > 0) may have cut alerts that
    /// still fire: it only adds a note (`{url}/{alias}/notes?identifierType=alias`), no false close.
    pub fn url_suffix(&self, data: &minijinja::Value) -> Option<String> {
        let field = |name: &str| data.get_attr(name).ok().and_then(|v| v.as_str().map(str::to_owned));
        if self.preset != Preset::Opsgenie || field("status").as_deref() != Some("resolved") {
            return None;
        }
        let truncated = data.get_attr("truncatedAlerts").ok().is_some_and(|v| v.is_true());
        let action = if truncated { "notes" } else { "close" };
        let group_key = field("groupKey").unwrap_or_default();
        Some(format!("/{}/{action}?identifierType=alias", super::helpers::sha256_hex(&group_key)))
    }

    /// DingTalk: `timestamp` (ms) and `sign` = base64(HMAC-SHA256(secret, timestamp + "\n" +
    /// secret)), added to the URL of every attempt (DingTalk refuses a signature older than an
    /// hour, so a retry signs again).
    pub fn attempt_url(&self, url: &Uri, now: SystemTime) -> Uri {
        match (&self.preset, &self.signing) {
            (Preset::DingTalk, Some(secret)) => dingtalk_signed(url, secret, now),
            _ => url.clone(),
        }
    }

    /// Feishu: `timestamp` (seconds, as a string) and `sign` = base64(HMAC-SHA256 keyed with
    /// `timestamp + "\n" + secret`, over nothing), set in the JSON body of every attempt (Feishu
    /// refuses a signature older than an hour). A body that is not a JSON object is sent as it is.
    pub fn attempt_body(&self, body: &bytes::Bytes, now: SystemTime) -> bytes::Bytes {
        let (Preset::Feishu, Some(secret)) = (&self.preset, &self.signing) else { return body.clone() };
        let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice::<serde_json::Value>(body) else {
            return body.clone();
        };
        let timestamp = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        object.insert("timestamp".into(), timestamp.to_string().into());
        object.insert("sign".into(), feishu_sign(secret.expose(), timestamp).into());
        bytes::Bytes::from(serde_json::to_vec(&object).expect("a JSON object serializes"))
    }
}

/// Feishu's signature of a timestamp (seconds): the HMAC-SHA256 key is `timestamp + "\n" +
/// secret` and the message is empty, as Feishu documents it
/// (https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot).
pub fn feishu_sign(secret: &str, timestamp_s: u64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, format!("{timestamp_s}\n{secret}").as_bytes());
    let tag = ring::hmac::sign(&key, b"");
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// The receiver's URL with a path suffix (and its query) appended:
/// `https://api.opsgenie.com/v2/alerts` + `/{alias}/close?identifierType=alias`.
pub fn join(base: &Uri, suffix: &str) -> Uri {
    let joined = format!(
        "{}://{}{}{}",
        base.scheme_str().unwrap_or("https"),
        base.authority().map_or("", |a| a.as_str()),
        base.path().trim_end_matches('/'),
        suffix
    );
    joined.parse().unwrap_or_else(|_| base.clone())
}

fn dingtalk_signed(url: &Uri, secret: &Secret, now: SystemTime) -> Uri {
    let timestamp = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis();
    let sign = dingtalk_sign(secret.expose(), timestamp);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("timestamp", &timestamp.to_string())
        .append_pair("sign", &sign)
        .finish();
    let path_and_query = match url.query() {
        Some(existing) => {
            // Drop a previous attempt's signature, keep the rest (DingTalk's access_token).
            let kept: Vec<&str> =
                existing.split('&').filter(|p| !p.starts_with("timestamp=") && !p.starts_with("sign=")).collect();
            if kept.is_empty() {
                format!("{}?{query}", url.path())
            } else {
                format!("{}?{}&{query}", url.path(), kept.join("&"))
            }
        }
        None => format!("{}?{query}", url.path()),
    };
    let text = format!(
        "{}://{}{path_and_query}",
        url.scheme_str().unwrap_or("https"),
        url.authority().map_or("", |a| a.as_str())
    );
    text.parse().unwrap_or_else(|_| url.clone())
}

/// DingTalk's signature of a timestamp (ms), base64 (not yet URL-encoded).
pub fn dingtalk_sign(secret: &str, timestamp_ms: u128) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}
