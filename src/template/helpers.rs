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
//! `clipBytes(n)`, `fit(line, budget)` (one line per item, cut with "… and N more" within
//! the budget; `line` is a macro, or the name of a line the presets use, written in Rust:
//! `"line"`, `"slack"`, `"teams"`, `"discord"`), `mrkdwn` (Slack's escaping), `sha256`. Nothing here reads a file or the network;
//! time zones come from the tz database compiled into the binary. Every helper computes or
//! bounds its result's size before building it (src/template/limits.rs): a label value cannot
//! make one allocate more than the 8 MiB a value may take.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::SystemTime;

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::limits::{self, Capped, ensure, text};

/// The notification as templates see it: its JSON parsed straight into minijinja values (no
/// `serde_json::Value` in between; this is done once per render).
pub(super) fn parse(notification: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(notification)
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
            match alert.get_attr("status").ok().and_then(|s| s.as_str().map(str::to_owned)).as_deref() {
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
    env.add_filter("fit", fit);
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
    // Widths (`%99999999Y`) are the format's to choose: written through the cap.
    let mut out = Capped::default();
    match write!(out, "{}", ts.to_zoned_datetime(zone).strftime(format)) {
        Ok(()) => Ok(out.text),
        Err(_) if out.over => Err(limits::too_large("date", limits::MAX_VALUE_BYTES + 1)),
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
        Err(_) if text.over => Err(limits::too_large("toJson", limits::MAX_VALUE_BYTES + 1)),
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
    if s.chars().count() <= n {
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

/// Slack's mrkdwn escaping: `&`, `<` and `>` as entities, so a label cannot ping `<!channel>`
/// or forge a link.
pub(super) fn mrkdwn(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn sha256_hex(s: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest.as_ref().iter().fold(String::with_capacity(64), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `items | fit(line, budget, unit="chars", sep="\n")`: `line(item)` for each item, joined,
/// as many as fit in `budget` (characters, or bytes with `unit="bytes"`); the rest are counted
/// in a last line "… and N more". The result never exceeds the budget.
fn fit(state: &mut State, items: Value, line: Value, budget: usize, kwargs: Kwargs) -> Result<String, Error> {
    let unit = kwargs.get::<Option<Value>>("unit")?;
    let unit = unit.as_ref().map(|u| text("fit", u)).transpose()?;
    let unit = match unit.as_deref() {
        None | Some("chars") => Unit::Chars,
        Some("bytes") => Unit::Bytes,
        Some("json") => Unit::Json,
        Some(other) => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("unit must be chars, bytes or json, not {other:?}"),
            ));
        }
    };
    let sep = kwargs.get::<Option<Value>>("sep")?;
    let sep = sep.as_ref().map(|s| text("fit", s)).transpose()?;
    let sep: &str = sep.as_deref().unwrap_or("\n");
    kwargs.assert_all_used()?;
    // A built-in style (`"line"`, `"slack"`, …) is written in Rust: a macro call per alert is
    // most of what a preset would cost otherwise.
    let style = match line.as_str() {
        Some(name) => Some(LineStyle::parse(name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("fit: unknown line style {name:?} (line, slack, teams, discord, or a macro)"),
            )
        })?),
        None => None,
    };
    let measure = |s: &str| unit.measure(s);
    // A list repeated lazily (`[a] * 100000000`) is small until collected: count it first.
    limits::ensure_items("fit", items.len().unwrap_or(0))?;
    let items: Vec<Value> = items.try_iter()?.take(limits::MAX_ITEMS + 1).collect();
    limits::ensure_items("fit", items.len())?;
    let total = items.len();
    let mut out = String::new();
    // What `out` measures, kept as it grows (measuring it again per line would be quadratic).
    let mut used = 0;
    let (sep_size, mut text) = (measure(sep), String::new());
    for (index, item) in items.into_iter().enumerate() {
        match style {
            Some(style) => {
                text.clear();
                style.write(&item, &mut text);
            }
            None => text = limits::text("fit", &line.call(state, &[item])?)?.into_owned(),
        }
        let text = text.trim_end_matches('\n');
        let rest = total - index - 1;
        // Room for this line and, if others follow, the "… and N more" line.
        let reserve = if rest > 0 { sep_size + more_size(unit, rest) } else { 0 };
        let joiner = if out.is_empty() { 0 } else { sep_size };
        let size = measure(text);
        if used + joiner + size + reserve <= budget {
            // The budget is the template's to choose; the bytes are bounded here, before they grow.
            ensure("fit", out.len().saturating_add(sep.len()).saturating_add(text.len()))?;
            if joiner > 0 {
                out.push_str(sep);
            }
            out.push_str(text);
            used += joiner + size;
            continue;
        }
        // This line does not fit whole: cut it if nothing was shown yet, then count the rest.
        let cut_rest = total - index;
        let tail = more(cut_rest);
        if out.is_empty() {
            let room = budget.saturating_sub(measure(sep) + measure(&more(rest.max(1))));
            let shown = match unit {
                Unit::Chars => clip(text, room),
                Unit::Bytes => clip_bytes(text, room).to_owned(),
                // Escaping at most sextuples a byte (a control character as \u00XX).
                Unit::Json => clip_bytes(text, room / 6).to_owned(),
            };
            if !shown.is_empty() {
                out.push_str(&shown);
                if rest > 0 {
                    out.push_str(sep);
                    out.push_str(&more(rest));
                }
                return Ok(out);
            }
        }
        if !out.is_empty() && used + measure(sep) + measure(&tail) <= budget {
            ensure("fit", out.len().saturating_add(sep.len()).saturating_add(tail.len()))?;
            out.push_str(sep);
            used += measure(sep);
        }
        if used + measure(&tail) <= budget {
            ensure("fit", out.len().saturating_add(tail.len()))?;
            out.push_str(&tail);
        }
        return Ok(out);
    }
    Ok(out)
}

/// What a `fit` budget counts: characters, UTF-8 bytes, or bytes once written as a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Chars,
    Bytes,
    Json,
}

impl Unit {
    fn measure(self, s: &str) -> usize {
        match self {
            Unit::Chars => s.chars().count(),
            Unit::Bytes => s.len(),
            Unit::Json => s.len() + s.bytes().map(json_extra).sum::<usize>(),
        }
    }
}

/// Bytes JSON escaping adds to one byte (serde_json's escaping).
fn json_extra(b: u8) -> usize {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
        0x00..=0x1f => 5,
        _ => 0,
    }
}

fn more(n: usize) -> String {
    format!("… and {n} more")
}

/// What `more(n)` measures, without building it: "… and " and " more" are ASCII but for `…`
/// (1 character, 3 bytes, no JSON escaping), plus the digits of `n`.
fn more_size(unit: Unit, n: usize) -> usize {
    let digits = n.checked_ilog10().map_or(1, |d| d as usize + 1);
    let fixed = match unit {
        Unit::Chars => "… and  more".chars().count(),
        Unit::Bytes | Unit::Json => "… and  more".len(),
    };
    fixed + digits
}

/// The one-line summaries of an alert the presets use, written in Rust (the same text as the
/// `line` macro of `amrelay/common.j2` and the presets' former per-destination macros):
/// `fit("line", …)`, `fit("slack", …)`, `fit("teams", …)`, `fit("discord", …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineStyle {
    /// `FIRING name [severity]: summary url`
    Plain,
    /// Slack mrkdwn: `:red_circle: *name* `severity` summary <url|source>`
    Slack,
    /// Teams markdown: `🔴 **name** (severity): summary [source](url)`
    Teams,
    /// Discord markdown: `🔴 **name** `severity` summary <url>`
    Discord,
}

impl LineStyle {
    fn parse(name: &str) -> Option<LineStyle> {
        match name {
            "line" => Some(LineStyle::Plain),
            "slack" => Some(LineStyle::Slack),
            "teams" => Some(LineStyle::Teams),
            "discord" => Some(LineStyle::Discord),
            _ => None,
        }
    }

    fn write(self, alert: &Value, out: &mut String) {
        let firing = attr(alert, "status").as_str() == Some("firing");
        let labels = attr(alert, "labels");
        let name = truthy(attr(&labels, "alertname")).unwrap_or_else(|| "(no alertname)".into());
        let name = clip(&name, 100);
        let severity = truthy(attr(&labels, "severity")).map(|s| clip(&s, 30));
        let annotations = attr(alert, "annotations");
        let summary = ["summary", "description", "message"]
            .into_iter()
            .find_map(|key| truthy(attr(&annotations, key)))
            .map(|s| clip(&s, 300));
        let source = truthy(attr(alert, "generatorURL"));
        match self {
            LineStyle::Plain => {
                out.push_str(if firing { "FIRING " } else { "RESOLVED " });
                out.push_str(&name);
                if let Some(severity) = severity {
                    let _ = write!(out, " [{severity}]");
                }
                if let Some(summary) = summary {
                    let _ = write!(out, ": {summary}");
                }
                if let Some(source) = source {
                    let _ = write!(out, " {}", clip(&source, 400));
                }
            }
            LineStyle::Slack => {
                out.push_str(if firing { ":red_circle: *" } else { ":large_green_circle: *" });
                out.push_str(&mrkdwn(&name));
                out.push('*');
                if let Some(severity) = severity {
                    let _ = write!(out, " `{}`", mrkdwn(&severity));
                }
                if let Some(summary) = summary {
                    let _ = write!(out, " {}", mrkdwn(&summary));
                }
                if let Some(source) = source {
                    let _ = write!(out, " <{}|source>", mrkdwn(&clip(&source, 400)).replace('|', "%7C"));
                }
            }
            LineStyle::Teams => {
                out.push_str(if firing { "🔴 **" } else { "🟢 **" });
                out.push_str(&name);
                out.push_str("**");
                if let Some(severity) = severity {
                    let _ = write!(out, " ({severity})");
                }
                if let Some(summary) = summary {
                    let _ = write!(out, ": {summary}");
                }
                if let Some(source) = source {
                    let _ = write!(out, " [source]({})", clip(&source, 400).replace(')', "%29"));
                }
            }
            LineStyle::Discord => {
                out.push_str(if firing { "🔴 **" } else { "🟢 **" });
                out.push_str(&name);
                out.push_str("**");
                if let Some(severity) = severity {
                    let _ = write!(out, " `{}`", severity.replace('`', "'"));
                }
                if let Some(summary) = summary {
                    let _ = write!(out, " {summary}");
                }
                if let Some(source) = source {
                    let _ = write!(out, " <{}>", clip(&source, 300));
                }
            }
        }
    }
}

fn attr(value: &Value, name: &str) -> Value {
    value.get_attr(name).unwrap_or_default()
}

/// The value as templates print it, when it is true in a condition (`x or "default"`).
fn truthy(value: Value) -> Option<String> {
    if !value.is_true() {
        return None;
    }
    Some(match value.as_str() {
        Some(s) => s.to_owned(),
        // A list that would print past the limit is not a line's text.
        None => limits::text("fit", &value).ok()?.into_owned(),
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
