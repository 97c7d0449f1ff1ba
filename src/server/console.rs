//! The operator console (`GET /`) and route testing over HTTP (`POST /api/v1/route-test`).
//!
//! The console is one self-contained page embedded in the binary (`console.html`: HTML, CSS and
//! a little JavaScript; no CDN, no build step). It only reads and calls the documented JSON
//! endpoints — `/api/v1/status`, `/api/v1/deadletters`, the test-message, replay, route-test and
//! receivers endpoints — so whatever it shows, a script can get the same way. Receivers of the
//! config file stay read-only: enabling or disabling one is a config change, and the status API
//! points at the line of the file to edit ([`enabled_line`]). Receivers kept in the console file
//! are edited with the page's form, through `super::receivers_api`.

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::json;

use super::body::{check_content_type, read_body_charged};
use super::response::{ApiError, HttpResponse, json, text};
use crate::payload::decode_with;
use crate::snapshot::Snapshot;

const PAGE: &str = include_str!("console.html");

/// `GET /`: the console page.
pub fn page() -> HttpResponse {
    let mut response = text(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The page may load nothing from elsewhere, run only its own script, and may not be framed.
    headers.insert("content-security-policy", super::browser::console_policy(PAGE));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// `POST /api/v1/route-test`: which receiver would get which alert of a v4 payload, and why the
/// others would not. The body is checked and decoded exactly as `/webhook` does it (size,
/// content type, [`decode_with`] the snapshot's label index), but nothing is queued, delivered
/// or counted. The body is charged to the process byte budget while it is explained, as a
/// webhook's is.
pub async fn route_test(
    snapshot: &Snapshot,
    budget: &std::sync::Arc<crate::memory::Budget>,
    request: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    check_content_type(&request)?;
    let (body, _charge) = read_body_charged(request, snapshot.server.max_request_bytes, budget).await?;
    // The same limits as /webhook: the explanation grows with alerts × receivers.
    super::limits::check_body(&body, &snapshot.server.inbound.limits)?;
    let notification = decode_with(&body, &snapshot.label_index).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    super::limits::check_batch(&notification, &snapshot.server.inbound.limits)?;
    let explanation = crate::explain::explain(snapshot.receivers.iter().map(|r| &r.config), &notification);
    Ok(json(StatusCode::OK, &json!({"status": "success", "data": explanation})))
}

/// The text of the config file, if it is still the one the snapshot was loaded from (a file
/// changed since then, or unreadable, gives no line numbers rather than wrong ones).
pub fn loaded_config_text(snapshot: &Snapshot) -> Option<String> {
    let text = std::fs::read_to_string(&snapshot.source).ok()?;
    (crate::fingerprint::fnv1a(text.as_bytes()) == snapshot.hash).then_some(text)
}

/// Where a receiver's `enabled:` is set in the config file, and the line that flips it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnabledLine {
    /// 1-based line number: of the `enabled:` line, or, when there is none, of the line to add
    /// it after (the receiver's `name:`).
    pub line: usize,
    /// Whether `change_to` is a new line to insert after `line` rather than a replacement.
    pub insert: bool,
    /// The line as it is now.
    pub current: String,
    /// The line that gives the opposite setting, with the same indentation.
    pub change_to: String,
}

/// Finds the `enabled:` line of receiver `name` in block-style YAML (the form the shipped
/// configs use); `None` for other layouts, where the page only names the key.
pub fn enabled_line(text: &str, name: &str, enabled: bool) -> Option<EnabledLine> {
    let lines: Vec<&str> = text.lines().collect();
    let (name_at, column) = lines.iter().enumerate().find_map(|(i, line)| {
        let (column, rest) = key_at(line, "name:")?;
        (unquote(strip_comment(rest).trim()) == name).then_some((i, column))
    })?;
    // The item starts at the line with its `- ` just left of the keys' column.
    let dash = column.checked_sub(2)?;
    let start = (0..=name_at).rev().find(|&i| lines[i].get(dash..column) == Some("- "))?;
    let end = (start + 1..lines.len())
        .find(|&i| {
            let line = lines[i];
            let indent = line.len() - line.trim_start().len();
            !line.trim().is_empty() && !line.trim_start().starts_with('#') && indent < column
        })
        .unwrap_or(lines.len());
    let flipped = format!("{}enabled: {}", " ".repeat(column), !enabled);
    match (start..end).find(|&i| key_at(lines[i], "enabled:").is_some_and(|(c, _)| c == column)) {
        Some(i) => {
            let current = lines[i].to_owned();
            let change_to = format!("{}{}", &current[..column], flipped.trim_start());
            Some(EnabledLine { line: i + 1, insert: false, current, change_to })
        }
        None => Some(EnabledLine {
            line: name_at + 1,
            insert: true,
            current: lines[name_at].to_owned(),
            change_to: flipped,
        }),
    }
}

/// The column of `key` on this line (after any `- `) and what follows it.
fn key_at<'l>(line: &'l str, key: &str) -> Option<(usize, &'l str)> {
    let trimmed = line.trim_start();
    let item = trimmed.strip_prefix("- ").map(str::trim_start).unwrap_or(trimmed);
    let column = line.len() - item.len();
    item.strip_prefix(key).map(|rest| (column, rest))
}

fn strip_comment(value: &str) -> &str {
    value.find(" #").map_or(value, |at| &value[..at])
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "receivers:
  - name: ops   # the chat
    url: http://a/
    enabled: true
    conditions:
      - {label: severity, operator: In, values: [critical]}
  # a comment between items
  - url: http://b/
    name: \"quiet\"
";

    #[test]
    fn finds_the_enabled_line_of_a_receiver() {
        let found = enabled_line(YAML, "ops", true).unwrap();
        assert_eq!(
            found,
            EnabledLine {
                line: 4,
                insert: false,
                current: "    enabled: true".into(),
                change_to: "    enabled: false".into(),
            }
        );
    }

    #[test]
    fn without_one_says_where_to_add_it() {
        let found = enabled_line(YAML, "quiet", true).unwrap();
        assert_eq!((found.line, found.insert, found.change_to.as_str()), (9, true, "    enabled: false"));
    }

    #[test]
    fn unknown_layouts_give_no_line() {
        assert_eq!(enabled_line(YAML, "missing", true), None);
        assert_eq!(enabled_line("receivers: [{name: ops, url: 'http://a/'}]", "ops", true), None);
    }
}
