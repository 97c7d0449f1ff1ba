//! The helpers Alertmanager's templates offer, in minijinja style, plus the few presets need.
//!
//! Alertmanager (Go templates)        →  amrelay (minijinja)
//! `.Alerts.Firing` / `.Resolved`    →  `firing` / `resolved` (variables), `alerts | firing`
//! `title`, `join`, `toUpper`, `toLower` → `title`, `join(", ")`, `toUpper`, `toLower`
//! `match "re" s`                     →  `s | match("re")`, `s is match("re")`
//! `reReplaceAll "re" "r" s`          →  `s | reReplaceAll("re", "r")`
//! `safeUrl s`                        →  `s | safeUrl`
//! `since t`, `humanizeDuration d`    →  `t | since` (seconds), `d | humanizeDuration`
//! `t | tz "X" | date "layout"`       →  `t | date("%Y-%m-%d %H:%M", "Europe/Paris")` (strftime)
//! `toJson`                           →  `toJson` (a JSON value, inserted as such)
//!
//! Added for chat messages that must stay within a size limit: `clip(n)` (at most n characters),
//! `clipBytes(n)`, `link(n)` (a URL whole or not at all: a cut link leads elsewhere),
//! `unmention` (a chat's `<users/all>`, `<at …>`, `<@…>` in alert text pings no one), `mrkdwn`
//! (Slack's escaping), `sha256`; `fit` has a file of its own
//! (src/template/fit.rs). Nothing here reads a file or the network;
//! time zones come from the tz database compiled into the binary. Every helper computes or
//! bounds its result's size before building it (src/template/limits.rs): a label value cannot
//! make one allocate more than the 8 MiB a value may take.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::SystemTime;

use minijinja::{Environment, Error, ErrorKind, Value};

use super::limits::{self, Capped, ensure, text};

#[cfg(test)]
thread_local! {
    /// Tests: parse into a minijinja value tree, as before the tape, to compare the two paths.
    pub(super) static VALUE_TREE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The notification as templates see it: its JSON parsed once per render into a flat tape that
/// templates read lazily ([`super::tape`], [`super::view`]), or, past the tape's 4 GiB, into minijinja values.
pub(super) fn parse(notification: &[u8]) -> Result<Value, serde_json::Error> {
    #[cfg(test)]
    if VALUE_TREE.with(std::cell::Cell::get) {
        return serde_json::from_slice(notification);
    }
    super::tape::parse(notification).unwrap_or_else(|| serde_json::from_slice(notification))
}

/// Builds the template context: the notification's fields, `firing`, `resolved` and `options`.
pub(super) fn context(base: Value, options: Value) -> Value {
    let alerts = base.get_attr("alerts").unwrap_or_default();
    let (firing, resolved) = split_by_status(&alerts);
    minijinja::context! { firing => firing, resolved => resolved, options => options, ..base }
}

fn split_by_status(alerts: &Value) -> (Vec<Value>, Vec<Value>) {
    let (mut firing, mut resolved) = (Vec::new(), Vec::new());
    if let Ok(items) = alerts.try_iter() {
        for alert in items {
            let status = alert.get_attr("status").ok();
            match status.as_ref().and_then(Value::as_str) {
                Some("resolved") => resolved.push(alert),
                _ => firing.push(alert),
            }
        }
    }
    (firing, resolved)
}

/// Registers every helper.
pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("firing", |alerts: Value| -> Result<Vec<Value>, Error> { Ok(split_checked(&alerts)?.0) });
    env.add_filter("resolved", |alerts: Value| -> Result<Vec<Value>, Error> { Ok(split_checked(&alerts)?.1) });
    // Arguments are taken as values and turned into text by `limits::text`: minijinja's own
    // conversion would print a list before the helper could check its size.
    env.add_filter("toUpper", |s: &Value| -> Result<String, Error> {
        let s = text("toUpper", s)?;
        ensure("toUpper", limits::cased_size(&s))?;
        Ok(s.to_uppercase())
    });
    env.add_filter("toLower", |s: &Value| -> Result<String, Error> {
        let s = text("toLower", s)?;
        ensure("toLower", limits::cased_size(&s))?;
        Ok(s.to_lowercase())
    });
    env.add_filter("match", |s: &Value, pattern: &Value| -> Result<bool, Error> {
        Ok(regex(&text("match", pattern)?)?.is_match(&text("match", s)?))
    });
    env.add_test("match", |s: &Value, pattern: &Value| -> Result<bool, Error> {
        Ok(regex(&text("match", pattern)?)?.is_match(&text("match", s)?))
    });
    env.add_filter("reReplaceAll", |s: &Value, pattern: &Value, replacement: &Value| {
        let pattern = text("reReplaceAll", pattern)?;
        re_replace_all(&text("reReplaceAll", s)?, &pattern, &text("reReplaceAll", replacement)?)
    });
    env.add_filter("safeUrl", |s: &Value| -> Result<String, Error> { Ok(text("safeUrl", s)?.into_owned()) });
    env.add_filter("since", since);
    env.add_filter("humanizeDuration", |seconds: f64| humanize_duration(seconds));
    env.add_filter("date", date);
    env.add_filter("toJson", to_json);
    env.add_filter("clip", |s: &Value, n: usize| -> Result<String, Error> { Ok(clip(&text("clip", s)?, n)) });
    env.add_filter("clipBytes", |s: &Value, n: usize| -> Result<String, Error> {
        Ok(clip_bytes(&text("clipBytes", s)?, n).to_owned())
    });
    env.add_filter("link", |s: &Value, n: usize| -> Result<String, Error> { Ok(link(&text("link", s)?, n)) });
    env.add_filter("unmention", |s: &Value| -> Result<String, Error> {
        let s = text("unmention", s)?;
        ensure("unmention", s.len().saturating_add(2 * mentions(&s)))?;
        Ok(unmention(&s).into_owned())
    });
    env.add_filter("mrkdwn", |s: &Value| -> Result<String, Error> {
        let s = text("mrkdwn", s)?;
        // `&amp;` is the longest entity: at most five bytes for one.
        let grown = s.bytes().map(|b| match b {
            b'&' => 4,
            b'<' | b'>' => 3,
            _ => 0,
        });
        ensure("mrkdwn", s.len().saturating_add(grown.sum()))?;
        Ok(mrkdwn(&s))
    });
    env.add_filter("sha256", |s: &Value| -> Result<String, Error> { Ok(sha256_hex(&text("sha256", s)?)) });
    env.add_filter("__amrelay_value", value_json);
}

/// `firing`/`resolved` as filters: a list a template made (`[a] * 1000000` is lazy, and small
/// until collected) is refused past [`limits::MAX_ITEMS`].
fn split_checked(alerts: &Value) -> Result<(Vec<Value>, Vec<Value>), Error> {
    limits::ensure_items("firing/resolved", alerts.len().unwrap_or(0))?;
    Ok(split_by_status(alerts))
}

/// `s | reReplaceAll(pattern, replacement)`: Go's `regexp.ReplaceAllString` (`$1`, `${name}`).
/// The result is built match by match, each expansion bounded before it is written: a short
/// pattern over a long string with a long replacement is refused, not allocated.
fn re_replace_all(s: &str, pattern: &str, replacement: &str) -> Result<String, Error> {
    let re = regex(pattern)?;
    // A group lies within its match, so an expansion is at most the replacement's text plus
    // the match once per `$`.
    let references = memchr::memchr_iter(b'$', replacement.as_bytes()).count();
    let mut out = String::new();
    let mut last = 0;
    for captures in re.captures_iter(s) {
        let whole = captures.get(0).expect("group 0 is the match");
        let expansion = replacement.len().saturating_add(references.saturating_mul(whole.len()));
        ensure("reReplaceAll", out.len().saturating_add(whole.start() - last).saturating_add(expansion))?;
        out.push_str(&s[last..whole.start()]);
        captures.expand(replacement, &mut out);
        last = whole.end();
    }
    ensure("reReplaceAll", out.len().saturating_add(s.len() - last))?;
    out.push_str(&s[last..]);
    Ok(out)
}

thread_local! {
    /// Compiled patterns of `match`/`reReplaceAll`, per thread: templates use a handful of fixed
    /// patterns, and compiling one costs far more than matching it.
    static REGEXES: std::cell::RefCell<std::collections::HashMap<String, regex::Regex>> = Default::default();
}

fn regex(pattern: &str) -> Result<regex::Regex, Error> {
    if let Some(found) = REGEXES.with(|cache| cache.borrow().get(pattern).cloned()) {
        return Ok(found);
    }
    // Bounded compile size: a pattern in a template cannot make the relay allocate without limit.
    let compiled = regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("invalid regular expression: {e}")))?;
    REGEXES.with(|cache| {
        let mut cache = cache.borrow_mut();
        // Bounded: a template that builds patterns from label values cannot grow it forever.
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), compiled.clone());
    });
    Ok(compiled)
}

fn timestamp(value: &Value) -> Result<jiff::Timestamp, Error> {
    if let Some(text) = value.as_str() {
        return text.parse::<jiff::Timestamp>().map_err(|e| {
            Error::new(ErrorKind::InvalidOperation, format!("{:?} is not an RFC 3339 time: {e}", clip(text, 64)))
        });
    }
    let seconds = f64::try_from(value.clone())
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "expected an RFC 3339 time or Unix seconds"))?;
    jiff::Timestamp::from_millisecond((seconds * 1000.0) as i64)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// Seconds from `time` to now, as Alertmanager's `since` (which returns a duration).
fn since(time: Value) -> Result<f64, Error> {
    let then = timestamp(&time)?;
    let now = jiff::Timestamp::try_from(SystemTime::now()).unwrap_or(then);
    Ok(now.duration_since(then).as_secs_f64())
}

/// Prometheus' `humanizeDuration`: `1d 2h 3m 4s`, `1.5s`, `250ms`.
pub(super) fn humanize_duration(seconds: f64) -> String {
    if !seconds.is_finite() {
        return format!("{seconds}");
    }
    if seconds.abs() < 1.0 {
        if seconds == 0.0 {
            return "0s".into();
        }
        let milliseconds = seconds * 1000.0;
        return if milliseconds.abs() >= 1.0 {
            format!("{}ms", round4(milliseconds))
        } else {
            format!("{}us", round4(milliseconds * 1000.0))
        };
    }
    let sign = if seconds < 0.0 { "-" } else { "" };
    let total = seconds.abs();
    let whole = total as u64;
    let (days, hours, minutes) = (whole / 86_400, whole / 3_600 % 24, whole / 60 % 60);
    let secs = total - (whole - whole % 60) as f64;
    let mut out = String::from(sign);
    if days > 0 {
        let _ = write!(out, "{days}d ");
    }
    if days > 0 || hours > 0 {
        let _ = write!(out, "{hours}h ");
    }
    if days > 0 || hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m ");
        let _ = write!(out, "{}s", secs as u64);
    } else {
        let _ = write!(out, "{}s", round4(secs));
    }
    out
}

/// Four significant digits without trailing zeros, as Go's `%.4g`.
fn round4(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let precision = (3 - value.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{value:.precision$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_owned() } else { text }
}

static TZDB: LazyLock<jiff::tz::TimeZoneDatabase> = LazyLock::new(jiff::tz::TimeZoneDatabase::bundled);

/// `date(format="%Y-%m-%d %H:%M:%S %Z", tz="UTC")`: strftime in a time zone from the bundled
/// database.
fn date(time: Value, format: Option<Value>, tz: Option<Value>) -> Result<String, Error> {
    let ts = timestamp(&time)?;
    let tz = tz.as_ref().map(|tz| text("date", tz)).transpose()?;
    let zone = match tz.as_deref() {
        None | Some("UTC") | Some("") => jiff::tz::TimeZone::UTC,
        Some(name) => TZDB
            .get(name)
            .map_err(|_| Error::new(ErrorKind::InvalidOperation, format!("unknown time zone {name:?}")))?,
    };
    let format = format.as_ref().map(|f| text("date", f)).transpose()?;
    let format = format.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S %Z");
    // jiff caps each width at 255, but the format's length is the template's: written through
    // the cap.
    let mut out = Capped::default();
    match write!(out, "{}", ts.to_zoned_datetime(zone).strftime(format)) {
        Ok(()) => Ok(out.text),
        Err(_) if out.over => Err(limits::cut_off("date")),
        Err(_) => Err(Error::new(ErrorKind::InvalidOperation, format!("invalid date format {format:?}"))),
    }
}

/// `toJson`: the value as JSON text, marked safe so that a JSON body inserts it as a value
/// rather than a string of JSON.
fn to_json(value: Value) -> Result<Value, Error> {
    // Written through the cap: a list repeated lazily (`[s] * 1000000`) is small until printed.
    let mut text = Capped::default();
    match serde_json::to_writer(&mut text, &value) {
        Ok(()) => Ok(Value::from_safe_string(text.text)),
        Err(_) if text.over => Err(limits::cut_off("toJson")),
        Err(e) => Err(Error::new(ErrorKind::BadSerialization, e.to_string())),
    }
}

/// The internal filter of single-expression `payload` leaves: the value as JSON, a missing
/// value as `""`.
fn value_json(value: Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Ok(Value::from_safe_string("\"\"".into()));
    }
    to_json(value)
}

/// At most `n` characters; a cut string ends with `…` (counted in the `n`).
pub(super) fn clip(s: &str, n: usize) -> String {
    // A string of at most n bytes has at most n characters: not counted.
    if s.len() <= n || s.chars().count() <= n {
        return s.to_owned();
    }
    if n == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(n - 1).collect();
    out.push('…');
    out
}

/// At most `n` bytes, cut at a character boundary.
pub(super) fn clip_bytes(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A URL for a link within `n` characters: whole when it fits, else its origin
/// (`scheme://host:port/`, the Prometheus or Alertmanager it came from) when that fits, else
/// nothing. Never clipped: a cut link opens a different page, or none, with no sign of it.
pub(super) fn link(url: &str, n: usize) -> String {
    if url.len() <= n || url.chars().count() <= n {
        return url.to_owned();
    }
    let origin = url.split_once("://").and_then(|(scheme, rest)| {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        (plain(scheme) && !host.is_empty()).then(|| format!("{scheme}://{host}/"))
    });
    origin.filter(|o| o.chars().count() <= n).unwrap_or_default()
}

/// Alert text with the mention syntax chats expand taken apart: the `<` that opens Google Chat's
/// `<users/all>`, Feishu's `<at user_id="all">`, WeCom's `<@userid>` (and Slack's `<!channel>`)
/// becomes `‹` — one character, shown alike, expanded by none. A label cannot page a room.
pub(super) fn unmention(s: &str) -> std::borrow::Cow<'_, str> {
    if mentions(s) == 0 {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for (i, c) in s.char_indices() {
        if c == '<' && opens_mention(&s[i + 1..]) {
            out.push('‹');
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// How many `<` of `s` open a mention (each grows by 2 bytes in [`unmention`]).
fn mentions(s: &str) -> usize {
    s.match_indices('<').filter(|(i, _)| opens_mention(&s[i + 1..])).count()
}

/// Whether the text after a `<` is a mention's: `users/`, `at`, `@`, `!` (any case).
fn opens_mention(rest: &str) -> bool {
    let b = rest.as_bytes();
    let starts = |p: &[u8]| b.len() >= p.len() && b[..p.len()].eq_ignore_ascii_case(p);
    starts(b"users/") || starts(b"at") || starts(b"@") || starts(b"!")
}

/// Slack's mrkdwn escaping: `&`, `<` and `>` as entities, so a label cannot ping `<!channel>`
/// or forge a link.
pub(super) fn mrkdwn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_mrkdwn(&mut out, s);
    out
}

/// [`mrkdwn`] written onto `out`, the text between entities copied in runs.
pub(super) fn push_mrkdwn(out: &mut String, s: &str) {
    let mut last = 0;
    for at in memchr::memchr3_iter(b'&', b'<', b'>', s.as_bytes()) {
        out.push_str(&s[last..at]);
        out.push_str(match s.as_bytes()[at] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            _ => "&gt;",
        });
        last = at + 1;
    }
    out.push_str(&s[last..]);
}

pub(super) fn sha256_hex(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest.as_ref().iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Whether a name is used as a filter (`| name`) or a test (`is name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Filter,
    Test,
}

/// The filters and tests a template uses, with their byte offsets: inside `{{ }}` and `{% %}`,
/// outside string literals.
pub(super) fn filter_and_test_names(source: &str) -> Vec<(usize, Kind, &str)> {
    let mut found = Vec::new();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        let close = match &bytes[i..i + 2] {
            b"{{" => "}}",
            b"{%" => "%}",
            b"{#" => {
                // A comment: nothing in it is code.
                i = source[i..].find("#}").map_or(bytes.len(), |e| i + e + 2);
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        if close == "%}" && is_raw_start(&source[i + 2..]) {
            // `{% raw %}` … `{% endraw %}`: text, not code.
            i = source[i..].find("endraw").map_or(bytes.len(), |e| i + e + 6);
            continue;
        }
        let start = i + 2;
        let mut j = start;
        let mut quote: Option<u8> = None;
        let mut after_is = false;
        while j < bytes.len() {
            let c = bytes[j];
            if let Some(q) = quote {
                if c == b'\\' {
                    j += 2;
                    continue;
                }
                if c == q {
                    quote = None;
                }
                j += 1;
                continue;
            }
            if source[j..].starts_with(close) {
                break;
            }
            match c {
                b'"' | b'\'' => quote = Some(c),
                b'|' => {
                    let (offset, word) = word_after(source, j + 1);
                    if !word.is_empty() {
                        found.push((offset, Kind::Filter, word));
                    }
                }
                _ if c.is_ascii_alphabetic() && (j == 0 || !is_word(bytes[j - 1])) => {
                    let (_, word) = word_after(source, j);
                    if after_is && word != "not" {
                        found.push((j, Kind::Test, word));
                        after_is = false;
                    } else if word == "is" {
                        after_is = true;
                    } else if word != "not" {
                        after_is = false;
                    }
                    j += word.len();
                    continue;
                }
                _ => {}
            }
            j += 1;
        }
        i = j + 2;
    }
    found
}

fn is_raw_start(after_open: &str) -> bool {
    let tag = after_open.trim_start_matches(['-', '+']).trim_start();
    tag.starts_with("raw") && tag[3..].trim_start().trim_start_matches(['-', '+']).starts_with("%}")
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn word_after(source: &str, from: usize) -> (usize, &str) {
    let rest = &source[from..];
    let skipped = rest.len() - rest.trim_start().len();
    let start = from + skipped;
    let end =
        source[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(source.len(), |e| start + e);
    (start, &source[start..end])
}
