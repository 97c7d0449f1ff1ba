//! URLs as amrelay shows them: scheme, host and port, and `***` for a path or query, which often
//! carry a token (Slack's `/services/T…/B…/X…`, a Discord webhook's key). Used by the status
//! API, the console, logs and `check-config`.

use http::Uri;

/// `https://hooks.slack.com/services/***`: everything after the host is hidden, except a bare
/// `/`, which hides nothing.
pub fn url(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
    // The config refuses credentials in URLs; never show them should one get through.
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let first_segment = uri.path().trim_start_matches('/').split('/').next().unwrap_or("");
    match (uri.path(), uri.query()) {
        ("" | "/", None) => format!("{scheme}://{host}/"),
        // The first path segment names the API (`/services`, `/api`) and is shown when it looks
        // like a word; one with digits or punctuation (Telegram's `/bot<TOKEN>`) may be the
        // secret itself. Beyond it, everything is hidden.
        _ if looks_like_a_word(first_segment) && uri.path().len() > first_segment.len() + 1 => {
            format!("{scheme}://{host}/{first_segment}/***")
        }
        _ => format!("{scheme}://{host}/***"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
