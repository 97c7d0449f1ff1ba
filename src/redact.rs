//! URLs as amrelay shows them: scheme, host and port, and `***` for a path or query, which often
//! carry a token (Slack's `/services/T…/B…/X…`, a Discord webhook's key). Used by the status
//! API, the console, logs and `check-config`.
//!
//! And text a downstream wrote, as amrelay repeats it: a [`Scrubber`] holds one receiver's
//! secret values and replaces each with `***` wherever it appears, so an error answer that
//! echoes the credentials it was sent reaches no status page, dead letter, log or test answer.

use std::borrow::Cow;

use base64::Engine;
use http::Uri;

/// `https://hooks.slack.com/services/***`: everything after the host is hidden, except a bare
/// `/`, which hides nothing.
pub fn url(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    // The config refuses credentials in URLs; never show them should one get through.
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    match (uri.path(), uri.query()) {
        ("" | "/", None) => format!("{scheme}://{host}/"),
        _ => match shown_segment(uri) {
            Some(first_segment) => format!("{scheme}://{host}/{first_segment}/***"),
            None => format!("{scheme}://{host}/***"),
        },
    }
}

/// The first path segment `url` shows: it names the API (`/services`, `/api`) and is shown when
/// it looks like a word and more follows it; one with digits or punctuation (Telegram's
/// `/bot<TOKEN>`) may be the secret itself. Beyond it, everything is hidden (and scrubbed).
fn shown_segment(uri: &Uri) -> Option<&str> {
    let first_segment = uri.path().trim_start_matches('/').split('/').next().unwrap_or("");
    (looks_like_a_word(first_segment) && uri.path().len() > first_segment.len() + 1).then_some(first_segment)
}

/// A path segment shown as it is: a short run of letters (`services`, `api`, `hooks`).
fn looks_like_a_word(segment: &str) -> bool {
    !segment.is_empty() && segment.len() <= 16 && segment.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Like [`url`], for text that may not parse: what does not parse is hidden entirely.
pub fn url_text(text: &str) -> String {
    match text.parse::<Uri>() {
        Ok(uri) if uri.scheme().is_some() && uri.authority().is_some() => url(&uri),
        _ => "***".into(),
    }
}

/// What a secret is replaced with.
pub const HIDDEN: &str = "***";

/// Secrets shorter than this are not scrubbed: one or two characters cannot be told apart from
/// ordinary text, and replacing them everywhere would garble the answer while hiding nothing.
const MIN_SECRET_LEN: usize = 3;

/// One receiver's secret values, as a downstream might echo them: as sent, percent-encoded
/// (upper- or lowercase hex, form or path style) and base64-encoded.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Longest first, so a whole `Basic …` value goes before a part of it.
    needles: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber").field("secrets", &self.needles.len()).finish()
    }
}

impl Scrubber {
    /// Adds a secret value and its encodings.
    pub fn secret(&mut self, value: &str) -> &mut Self {
        if value.len() < MIN_SECRET_LEN {
            return self;
        }
        let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let base64 = base64::engine::general_purpose::STANDARD.encode(value);
        let mut variants = vec![
            value.to_owned(),
            form,
            percent(value, true),
            percent(value, false),
            base64.clone(),
            base64.trim_end_matches('=').to_owned(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value),
        ];
        // Lowercase hex (`%2f`), as some servers write it.
        variants.push(lower_hex(&variants[2]));
        variants.push(lower_hex(&variants[3]));
        for variant in variants {
            if variant.len() >= MIN_SECRET_LEN && !self.needles.contains(&variant) {
                self.needles.push(variant);
            }
        }
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        self
    }

    /// Adds the parts of a URL that [`url`] hides: everything after the host (but the first
    /// segment it shows), the query, and each path segment and query value that is not a plain
    /// word.
    pub fn url(&mut self, uri: &Uri) -> &mut Self {
        let Some(path_and_query) = uri.path_and_query().map(|p| p.as_str()) else { return self };
        if path_and_query == "/" || path_and_query.is_empty() {
            return self;
        }
        // Exactly what `url` hides: everything after the segment it shows.
        let hidden = match shown_segment(uri) {
            Some(first_segment) => &path_and_query[first_segment.len() + 1..],
            None => path_and_query,
        };
        let mut parts: Vec<String> = vec![hidden.trim_start_matches('/').to_owned()];
        let (path, query) = hidden.split_once('?').unwrap_or((hidden, ""));
        parts.extend(path.split('/').filter(|s| !looks_like_a_word(s)).map(str::to_owned));
        if !query.is_empty() {
            parts.push(query.to_owned());
            for (_, value) in form_urlencoded::parse(query.as_bytes()) {
                if !looks_like_a_word(&value) {
                    parts.push(value.into_owned());
                }
            }
            let values = query.split('&').filter_map(|pair| pair.split_once('=').map(|(_, v)| v));
            for raw in values.filter(|v| !looks_like_a_word(v)) {
                parts.push(raw.to_owned());
            }
        }
        for part in parts {
            self.secret(&part);
        }
        self
    }

    /// Whether there is anything to scrub.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret (and each of `extra`, a credential obtained at run time such as
    /// an OAuth2 token) replaced by [`HIDDEN`].
    pub fn scrub<'t>(&self, text: &'t str, extra: &[&str]) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        let mut more = Scrubber::default();
        for value in extra {
            more.secret(value);
        }
        for needle in more.needles.iter().chain(&self.needles) {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), HIDDEN));
            }
        }
        out
    }
}

/// Percent-encodes every byte but letters and digits (`all`), or but RFC 3986's unreserved ones.
fn percent(value: &str, all: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &byte in value.as_bytes() {
        let keep = byte.is_ascii_alphanumeric() || (!all && matches!(byte, b'-' | b'.' | b'_' | b'~'));
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `%2F` → `%2f`, leaving the rest as it is.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut left = 0;
    for c in encoded.chars() {
        if c == '%' {
            left = 2;
            out.push(c);
        } else if left > 0 {
            left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_secrets_as_sent_percent_encoded_and_base64() {
        let mut scrubber = Scrubber::default();
        scrubber.secret("s3cr/et token").secret("pw");
        let encoded = base64::engine::general_purpose::STANDARD.encode("s3cr/et token");
        for echoed in [
            "s3cr/et token",
            "s3cr%2Fet+token",
            "s3cr%2Fet%20token",
            "s3cr%2fet%20token",
            "s3cr%2Fet%20token",
            encoded.as_str(),
        ] {
            let text = format!("got {echoed}!");
            assert_eq!(scrubber.scrub(&text, &[]), "got ***!", "{echoed}");
        }
        // Too short to tell from text: left alone.
        assert_eq!(scrubber.scrub("pw", &[]), "pw");
        assert_eq!(scrubber.scrub("token=t0k3n-x", &["t0k3n-x"]), "token=***");
        assert!(!format!("{scrubber:?}").contains("s3cr"));
    }

    #[test]
    fn scrubs_what_the_url_hides() {
        let mut scrubber = Scrubber::default();
        scrubber.url(&"https://hooks.slack.com/services/T000/B000/XXXX?token=s3cret&x=plain".parse().unwrap());
        let text = "no route for /services/T000/B000/XXXX?token=s3cret&x=plain (B000, s3cret)";
        assert_eq!(scrubber.scrub(text, &[]), "no route for /services/*** (***, ***)");
        // A bare host hides nothing, so there is nothing to scrub.
        let mut bare = Scrubber::default();
        bare.url(&"http://127.0.0.1:9000/".parse().unwrap());
        assert!(bare.is_empty());
    }

    #[test]
    fn hides_what_follows_the_host() {
        for (given, shown) in [
            ("https://hooks.slack.com/services/T000/B000/XXXX", "https://hooks.slack.com/services/***"),
            ("https://discord.com/api/webhooks/1/abc", "https://discord.com/api/***"),
            ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/***"),
            ("http://127.0.0.1:9000/hook?token=s3cret", "http://127.0.0.1:9000/***"),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/"),
            ("http://127.0.0.1:9000/?token=s3cret", "http://127.0.0.1:9000/***"),
            ("https://user:pw@example.com/x", "https://example.com/***"),
            // Telegram's token is the first segment.
            ("https://api.telegram.org/bot123456:AAF-s3cret/sendMessage", "https://api.telegram.org/***"),
            ("https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t", "https://chat.googleapis.com/***"),
            ("https://example.com/abcdefghijklmnopqrstuvwxyz/x", "https://example.com/***"),
        ] {
            assert_eq!(url_text(given), shown, "{given}");
        }
        assert_eq!(url_text("not a url"), "***");
    }
}
