//! What a destination made of a request, read from its answer as the destination's API documents
//! it: the one place that both delivery (with or without `thread:`) and every test message (the
//! console's button, `send-test`, `receiver-test`) ask.
//!
//! Several chat APIs answer HTTP 200 when they refuse: DingTalk and WeCom with `errcode ≠ 0`,
//! Feishu with `code ≠ 0` (older bots: `StatusCode`), Slack's Web API and Telegram with
//! `ok: false`. Counting those as delivered loses the alert while the metrics say it arrived, so
//! each preset's answer is judged by its own rule ([`rule`]); a destination without one is judged
//! by its HTTP status alone. A refusal becomes a [`Failure`] of kind
//! [`FailureKind::Refused`]: a rate limit (DingTalk 130101, WeCom 45009, Feishu 11232, Slack
//! `ratelimited`) and the vendor's "busy, try again" are retried after the vendor's wait, anything
//! else is final and dead-lettered at once, with the vendor's own words (scrubbed of the
//! receiver's secrets) in the detail. A 429's wait is read from `Retry-After`, else from the body
//! (Discord's `retry_after`, Telegram's `parameters.retry_after`).

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::failure::{Failure, FailureKind};
use crate::redact::Scrubber;
use crate::template::Preset;

/// How long a vendor's message is kept in a failure's detail.
const MESSAGE_CHARS: usize = 200;

/// How one destination says "refused" in its answer's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// The HTTP status alone (Discord, Teams, Google Chat, PagerDuty, Opsgenie, plain webhooks).
    Status,
    /// A numeric code that is 0 on success, and its message: DingTalk and WeCom's
    /// `errcode`/`errmsg`, Feishu's `code`/`msg` (or the older `StatusCode`/`StatusMessage`).
    Code(Vendor),
    /// `ok: true` on success, the error's name or description beside it: Slack's Web API
    /// (`error`), Telegram (`description`).
    Ok(Vendor),
}

/// A destination whose answers are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Vendor {
    DingTalk,
    WeCom,
    Feishu,
    Slack,
    Telegram,
}

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::DingTalk => "DingTalk",
            Vendor::WeCom => "WeCom",
            Vendor::Feishu => "Feishu",
            Vendor::Slack => "Slack",
            Vendor::Telegram => "Telegram",
        }
    }

    /// The wait a rate-limit code asks for (as each vendor documents its limit), or `None` when
    /// the code is not a rate limit.
    fn rate_limited(self, code: &str) -> Option<Duration> {
        match (self, code) {
            // "more than 20 a minute: throttled for 10 minutes".
            (Vendor::DingTalk, "130101") => Some(Duration::from_secs(600)),
            // "api freq out of limit": 20 a minute per robot.
            (Vendor::WeCom, "45009") => Some(Duration::from_secs(60)),
            // "frequency limited": 100 a minute, 5 a second per bot.
            (Vendor::Feishu, "11232") => Some(Duration::from_secs(60)),
            // Slack's Web API names no wait in the body; its limit is about one a second.
            (Vendor::Slack, "ratelimited") => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// Whether the code is the vendor's own trouble ("system busy", an internal error): retried.
    fn busy(self, code: &str) -> bool {
        match self {
            Vendor::DingTalk | Vendor::WeCom => code == "-1",
            Vendor::Slack => {
                matches!(code, "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout")
            }
            Vendor::Feishu | Vendor::Telegram => false,
        }
    }
}

/// The rule a receiver's preset answers by. Presets without a body verdict (and every receiver
/// without a preset) are judged by status: the fallback arm.
pub(super) fn rule(preset: Option<Preset>) -> Rule {
    match preset {
        Some(Preset::DingTalk) => Rule::Code(Vendor::DingTalk),
        Some(Preset::WeCom) => Rule::Code(Vendor::WeCom),
        Some(Preset::Feishu) => Rule::Code(Vendor::Feishu),
        Some(Preset::Slack) => Rule::Ok(Vendor::Slack),
        Some(Preset::Telegram) => Rule::Ok(Vendor::Telegram),
        _ => Rule::Status,
    }
}

impl Rule {
    /// Whether a 2xx answer's body must be read to know the outcome.
    pub(super) fn reads_body(self) -> bool {
        self != Rule::Status
    }
}

/// The outcome of one request: `result` (the status and, when read, the 2xx answer's body; or
/// the failure with its scrubbed error body) judged by `rule`. `scrubber` holds the receiver's
/// secrets, which a vendor's message may echo.
pub(super) fn judge(
    rule: Rule,
    scrubber: &Scrubber,
    result: Result<(StatusCode, Option<Bytes>), Failure>,
) -> Result<(StatusCode, Option<Bytes>), Failure> {
    match result {
        Ok((status, Some(body))) => match refusal(rule, &body) {
            Some(refusal) => Err(refusal.failure(status, scrubber)),
            None => Ok((status, Some(body))),
        },
        Ok(taken) => Ok(taken),
        Err(failure) => Err(judge_failure(rule, failure)),
    }
}

/// A failed request judged by `rule`: a vendor's code in an error answer's body (Feishu answers
/// its rate limit with HTTP 400 and `code: 11232`) decides retrying; a 429's wait is read from the
/// body when no `Retry-After` named one.
pub(super) fn judge_failure(rule: Rule, mut failure: Failure) -> Failure {
    let FailureKind::Status(status) = failure.kind else { return failure };
    let Some(value) = failure.answer.as_deref().and_then(|a| serde_json::from_slice::<Value>(a).ok()) else {
        return failure;
    };
    if status == StatusCode::TOO_MANY_REQUESTS && failure.retry_after.is_none() {
        failure.retry_after = body_retry_after(&value);
    }
    if let Some(refusal) = read(rule, &value) {
        let retry_after = failure.retry_after.or(refusal.wait);
        // Already scrubbed: an error answer's body is, before it is kept.
        let refused = refusal.failure(status, &Scrubber::default());
        failure = Failure { retry_after, ..refused };
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            failure.kind = FailureKind::Refused { status, retry: true };
        }
    }
    failure
}

/// `retry_after` (seconds, fractional) at the top of the body (Discord) or in `parameters`
/// (Telegram).
fn body_retry_after(value: &Value) -> Option<Duration> {
    let seconds = value
        .get("retry_after")
        .or_else(|| value.get("parameters").and_then(|p| p.get("retry_after")))
        .and_then(Value::as_f64)?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)))
}

/// What a vendor refused, as its body says.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Refusal {
    vendor: Vendor,
    /// The code or error name (`310000`, `channel_not_found`).
    pub code: String,
    message: String,
    /// The vendor's wait, for a rate limit.
    wait: Option<Duration>,
    retry: bool,
}

impl Refusal {
    fn failure(self, status: StatusCode, scrubber: &Scrubber) -> Failure {
        let what = match self.vendor {
            Vendor::DingTalk | Vendor::WeCom => "errcode ",
            Vendor::Feishu => "code ",
            Vendor::Slack | Vendor::Telegram => "",
        };
        let message = if self.message.is_empty() || self.message == self.code {
            String::new()
        } else {
            format!(" {}", self.message)
        };
        let http = if status.is_success() { String::new() } else { format!(" (HTTP {})", status.as_u16()) };
        let detail = if self.vendor == Vendor::Telegram && !message.is_empty() {
            // Telegram's `error_code` repeats the HTTP status; its description says it all.
            format!("{} refused{http}:{message}", self.vendor.name())
        } else {
            format!("{} refused{http}: {what}{}{message}", self.vendor.name(), self.code)
        };
        let mut failure =
            Failure::new(FailureKind::Refused { status, retry: self.retry }, scrubber.scrub(&detail, &[]));
        failure.retry_after = self.wait;
        failure
    }
}

/// The refusal a body states under `rule`, if any; a body that is not JSON states none.
pub(super) fn refusal(rule: Rule, body: &[u8]) -> Option<Refusal> {
    if rule == Rule::Status {
        return None;
    }
    read(rule, &serde_json::from_slice(body).ok()?)
}

fn read(rule: Rule, value: &Value) -> Option<Refusal> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or("");
    let (vendor, code, message) = match rule {
        Rule::Status => return None,
        Rule::Code(vendor) => {
            let (code, message) = match value.get("errcode").or_else(|| value.get("code")) {
                Some(code) => (code, if vendor == Vendor::Feishu { text("msg") } else { text("errmsg") }),
                None => (value.get("StatusCode")?, text("StatusMessage")),
            };
            let code = code.as_i64().map(|c| c.to_string()).or_else(|| code.as_str().map(str::to_owned))?;
            if code == "0" {
                return None;
            }
            (vendor, code, message)
        }
        Rule::Ok(vendor) => {
            if value.get("ok") != Some(&Value::Bool(false)) {
                return None;
            }
            match vendor {
                Vendor::Telegram => {
                    let code = value.get("error_code").and_then(Value::as_i64).map_or("?".into(), |c| c.to_string());
                    (vendor, code, text("description"))
                }
                _ => (vendor, text("error").to_owned(), ""),
            }
        }
    };
    let code: String = code.chars().filter(|c| c.is_ascii_graphic()).take(100).collect();
    let code = if code.is_empty() { "unknown".to_owned() } else { code };
    let message: String = message.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MESSAGE_CHARS).collect();
    let wait = vendor.rate_limited(&code);
    let retry = wait.is_some() || vendor.busy(&code) || (vendor == Vendor::Telegram && code == "429");
    Some(Refusal { vendor, code, message: message.trim().to_owned(), wait, retry })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answered(rule: Rule, body: Value) -> Result<(StatusCode, Option<Bytes>), Failure> {
        judge(rule, &Scrubber::default(), Ok((StatusCode::OK, Some(Bytes::from(body.to_string())))))
    }

    fn refused(rule: Rule, body: Value) -> Failure {
        answered(rule, body).expect_err("refused")
    }

    // The answers as DingTalk, WeCom and Feishu document them: HTTP 200 with the verdict inside.
    #[test]
    fn code_vendors_refuse_in_a_200() {
        let dingtalk = Rule::Code(Vendor::DingTalk);
        assert!(answered(dingtalk, json!({"errcode": 0, "errmsg": "ok"})).is_ok());
        let f = refused(dingtalk, json!({"errcode": 310000, "errmsg": "keywords not in content"}));
        assert_eq!(f.detail, "DingTalk refused: errcode 310000 keywords not in content");
        assert!(!f.is_retryable(), "final: dead-lettered at once");
        assert_eq!(f.kind, FailureKind::Refused { status: StatusCode::OK, retry: false });
        let f = refused(dingtalk, json!({"errcode": 130101, "errmsg": "send too fast"}));
        assert!(f.is_retryable());
        assert_eq!(f.retry_after, Some(Duration::from_secs(600)));

        let wecom = Rule::Code(Vendor::WeCom);
        assert!(answered(wecom, json!({"errcode": 0, "errmsg": "ok"})).is_ok());
        assert_eq!(
            refused(wecom, json!({"errcode": 45009, "errmsg": "api freq out of limit"})).retry_after,
            Some(Duration::from_secs(60))
        );
        assert!(refused(wecom, json!({"errcode": -1, "errmsg": "system busy"})).is_retryable());
        assert!(!refused(wecom, json!({"errcode": 93000, "errmsg": "invalid webhook url"})).is_retryable());

        let feishu = Rule::Code(Vendor::Feishu);
        assert!(answered(feishu, json!({"code": 0, "msg": "success", "data": {}})).is_ok());
        assert!(answered(feishu, json!({"StatusCode": 0, "StatusMessage": "success"})).is_ok());
        let f = refused(
            feishu,
            json!({"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}),
        );
        assert!(f.detail.starts_with("Feishu refused: code 19021 sign match fail"), "{}", f.detail);
        assert!(!refused(feishu, json!({"StatusCode": 19024, "StatusMessage": "Key Words Not Found"})).is_retryable());
        assert!(refused(feishu, json!({"code": 11232, "msg": "frequency limited"})).is_retryable());
        // A body that is not JSON, or has no code, states no refusal.
        assert!(judge(feishu, &Scrubber::default(), Ok((StatusCode::OK, Some(Bytes::from_static(b"ok"))))).is_ok());
    }

    #[test]
    fn ok_vendors_and_the_status_fallback() {
        let slack = Rule::Ok(Vendor::Slack);
        assert!(answered(slack, json!({"ok": true})).is_ok());
        let f = refused(slack, json!({"ok": false, "error": "channel_not_found"}));
        assert_eq!(f.detail, "Slack refused: channel_not_found");
        assert!(!f.is_retryable());
        assert!(refused(slack, json!({"ok": false, "error": "ratelimited"})).is_retryable());
        assert!(refused(slack, json!({"ok": false, "error": "internal_error"})).is_retryable());
        assert!(answered(Rule::Status, json!({"errcode": 1})).is_ok(), "by status: the body is not read");
        assert_eq!(rule(Some(Preset::Discord)), Rule::Status);
        assert_eq!(rule(None), Rule::Status);
    }

    fn error_answer(status: u16, retry_after: Option<Duration>, body: Value) -> Failure {
        let status = StatusCode::from_u16(status).unwrap();
        let mut failure = Failure::from_status(status, retry_after, body.to_string());
        failure.answer = Some(Bytes::from(body.to_string()));
        failure
    }

    // Telegram's wait is in the body (`parameters.retry_after`), Discord's in the header and the body.
    #[test]
    fn waits_of_a_429_are_read_from_the_body() {
        let telegram = judge_failure(
            Rule::Ok(Vendor::Telegram),
            error_answer(
                429,
                None,
                json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}),
            ),
        );
        assert_eq!(telegram.retry_after, Some(Duration::from_secs(3)));
        assert!(telegram.is_retryable());
        assert_eq!(telegram.detail, "Telegram refused (HTTP 429): Too Many Requests: retry after 3");
        let discord = judge_failure(
            Rule::Status,
            error_answer(
                429,
                None,
                json!({"message": "You are being rate limited.", "retry_after": 0.5, "global": false}),
            ),
        );
        assert_eq!(discord.retry_after, Some(Duration::from_millis(500)));
        let header_wins =
            judge_failure(Rule::Status, error_answer(429, Some(Duration::from_secs(2)), json!({"retry_after": 9})));
        assert_eq!(header_wins.retry_after, Some(Duration::from_secs(2)));
        // Feishu answers its rate limit with HTTP 400 and code 11232: retried, not dead-lettered.
        let feishu = judge_failure(
            Rule::Code(Vendor::Feishu),
            error_answer(400, None, json!({"code": 11232, "msg": "frequency limited"})),
        );
        assert!(feishu.is_retryable());
        assert_eq!(feishu.detail, "Feishu refused (HTTP 400): code 11232 frequency limited");
        let chat_not_found = judge_failure(
            Rule::Ok(Vendor::Telegram),
            error_answer(
                400,
                None,
                json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
            ),
        );
        assert!(!chat_not_found.is_retryable());
    }

    #[test]
    fn a_vendors_message_is_scrubbed_of_the_receivers_secrets() {
        let mut scrubber = Scrubber::default();
        scrubber.secret("s3cr3t-t0ken-value");
        let body = json!({"errcode": 300001, "errmsg": "token s3cr3t-t0ken-value is not exist"});
        let f =
            judge(Rule::Code(Vendor::DingTalk), &scrubber, Ok((StatusCode::OK, Some(Bytes::from(body.to_string())))))
                .unwrap_err();
        assert!(!f.detail.contains("s3cr3t-t0ken-value"), "{}", f.detail);
    }
}
