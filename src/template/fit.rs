//! `items | fit(line, budget, unit="chars", sep="\n", unmention=false)`: one line per item, as many as fit in a
//! size budget, the rest counted in "… and N more" — how the presets stay within each chat
//! API's limit. `line` is a macro, or one of the lines the presets use, written in Rust
//! ([`LineStyle`]): a macro call per alert is most of what a preset would cost otherwise.
//!
//! The budget is the template's to choose, so the bytes are bounded apart from it: a long
//! `sep` with a huge budget is refused at the value limit of src/template/limits.rs.

use std::borrow::Cow;
use std::fmt::Write as _;

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::helpers::{clip, clip_bytes, link, mrkdwn, push_mrkdwn, unmention};
use super::limits::{self, ensure, text};
use super::view::{Field, MapRef};

/// Registers `fit`.
pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("fit", fit);
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
    // `unmention=true`: each line's mentions are taken apart before it is measured.
    let unmentioned = kwargs.get::<Option<bool>>("unmention")?.unwrap_or(false);
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
        if unmentioned && let std::borrow::Cow::Owned(plain) = unmention(&text) {
            text = plain;
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
    /// Slack mrkdwn: `:red_circle: *name* `severity` summary <url|source>` (and `<url|dashboard>`
    /// for a Grafana alert with a panel or dashboard, as every style links it)
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
        let fields = Fields { alert, view: MapRef::of(alert) };
        let firing = match fields.view.map(|v| v.get("status")) {
            Some(Field::Str(status)) => status == "firing",
            Some(Field::Missing) => false,
            _ => attr(alert, "status").as_str() == Some("firing"),
        };
        let name = fields.text(Some("labels"), "alertname").unwrap_or(Cow::Borrowed("(no alertname)"));
        let name = clip(&name, 100);
        let severity = fields.text(Some("labels"), "severity").map(|s| clip(&s, 30));
        let summary = ["summary", "description", "message"]
            .into_iter()
            .find_map(|key| fields.text(Some("annotations"), key))
            .map(|s| clip(&s, 300));
        // A link is whole or its origin, never cut (see `helpers::link`): 300 characters on
        // Discord, 400 elsewhere.
        let budget = if self == LineStyle::Discord { 300 } else { 400 };
        let within = |url: Cow<str>| Some(link(&url, budget)).filter(|l| !l.is_empty());
        let source = fields.text(None, "generatorURL").and_then(within);
        // Grafana's alerts name their panel or dashboard: linked after the source.
        let dashboard = fields.text(None, "panelURL").or_else(|| fields.text(None, "dashboardURL")).and_then(within);
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
                    let _ = write!(out, " {source}");
                }
                if let Some(dashboard) = dashboard {
                    let _ = write!(out, " dashboard: {dashboard}");
                }
            }
            LineStyle::Slack => {
                out.push_str(if firing { ":red_circle: *" } else { ":large_green_circle: *" });
                push_mrkdwn(out, &name);
                out.push('*');
                if let Some(severity) = severity {
                    out.push_str(" `");
                    push_mrkdwn(out, &severity);
                    out.push('`');
                }
                if let Some(summary) = summary {
                    out.push(' ');
                    push_mrkdwn(out, &summary);
                }
                if let Some(source) = source {
                    let _ = write!(out, " <{}|source>", mrkdwn(&source).replace('|', "%7C"));
                }
                if let Some(dashboard) = dashboard {
                    let _ = write!(out, " <{}|dashboard>", mrkdwn(&dashboard).replace('|', "%7C"));
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
                    let _ = write!(out, " [source]({})", source.replace(')', "%29"));
                }
                if let Some(dashboard) = dashboard {
                    let _ = write!(out, " [dashboard]({})", dashboard.replace(')', "%29"));
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
                    let _ = write!(out, " <{source}>");
                }
                if let Some(dashboard) = dashboard {
                    let _ = write!(out, " <{dashboard}>");
                }
            }
        }
    }
}

/// An alert's fields as a line reads them: in place when the alert is a view of the
/// notification (a string field makes no value), else through minijinja values — the same text
/// either way.
struct Fields<'v> {
    alert: &'v Value,
    view: Option<MapRef<'v>>,
}

impl<'v> Fields<'v> {
    /// `alert.object.key` (or `alert.key`) as text, when it is true in a condition.
    fn text(&self, object: Option<&str>, key: &str) -> Option<Cow<'v, str>> {
        if let Some(view) = self.view {
            let inner = match object.map(|o| view.get(o)) {
                None => Some(view),
                Some(Field::Map(inner)) => Some(inner),
                Some(Field::Missing) => return None,
                Some(Field::Str(_) | Field::Other) => None,
            };
            match inner.map(|i| i.get(key)) {
                Some(Field::Str(s)) => return (!s.is_empty()).then_some(Cow::Borrowed(s)),
                Some(Field::Missing) => return None,
                _ => {}
            }
        }
        let parent = match object {
            Some(o) => attr(self.alert, o),
            None => self.alert.clone(),
        };
        truthy(attr(&parent, key)).map(Cow::Owned)
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
