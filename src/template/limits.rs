//! What one render may allocate: no value it makes is larger than [`MAX_VALUE_BYTES`]. Our
//! helpers know (or bound) each size **before** allocating; the wrapped minijinja builtins whose
//! size cannot be known beforehand (`join`, `format`, `tojson`, `string`, `list`, `pprint`) are
//! bounded by fuel and checked right after (builtins.rs `checked`).
//!
//! Fuel and the output limit bound what a template *writes*, not what a helper allocates on the
//! way: `("a" * 100000) | reReplaceAll("a", "x" * 100000)` once asked for 10 GB in one call and
//! the process aborted — a crash loop, since the spooled notification was rendered again after
//! each restart. So:
//!
//! - **Our helpers** (src/template/helpers.rs) refuse an input string over the limit, compute or
//!   bound their result's size before building it, and write through [`Capped`] where a size is
//!   only known while writing (`date`'s strftime, `toJson`).
//! - **minijinja's builtin filters** that can grow a value from small input, or that turn a
//!   list into text, are wrapped (src/template/builtins.rs): the same filter behind the same
//!   checks.
//! - **A list printed is checked before it is printed** ([`ensure_printed`]): a list holds
//!   references, so `[s] * 1000000` or lists of lists of one long string are small in memory and
//!   gigabytes in print. [`text`] converts a helper's argument that way, and [`formatter`]
//!   checks every `{{ value }}`, also where minijinja captures it in memory (`{% set %}` blocks,
//!   macro calls, `{% filter %}`).
//! - **`~`** formats a list operand before minijinja could check it, so each `a ~ b` is
//!   rewritten at load into a filter that checks first (src/template/concat.rs).
//! - **Other operators** (`"x" * n`, `+`) cannot be hooked; minijinja 3 checks a string result's
//!   size against the remaining fuel before allocating it and charges every byte (1 fuel per 64
//!   bytes), so the strings a render makes add up to at most [`FUEL_BYTES`]; a list repeated by
//!   `*` is lazy (references). A value made that way and larger than [`MAX_VALUE_BYTES`] is
//!   refused as soon as it reaches a helper, a filter, `~` or the output. `range` is minijinja's,
//!   capped at 100,000 items.
//!
//! The bound this gives, held by the `alloc_bound` test target (a counting allocator):
//! [`peak_bound`].

use std::borrow::Cow;
use std::fmt;

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Error, ErrorKind, Output, State, Value};

/// The largest string (or list, at [`size_of::<Value>()`] a slot) a render may make: the same
/// as the output limit, so no intermediate value is larger than what could be sent.
pub const MAX_VALUE_BYTES: usize = super::MAX_RENDERED_BYTES;

/// The most items a list made by a helper may hold.
pub const MAX_ITEMS: usize = MAX_VALUE_BYTES / size_of::<Value>();

/// The data minijinja's fuel lets one render make, at 64 bytes a unit of fuel.
pub const FUEL_BYTES: usize = super::FUEL as usize * 64;

/// The error of a value that would be too large; `what` names the helper or filter.
pub fn too_large(what: &str, bytes: usize) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what}: the result would be {bytes} bytes, over the limit of {MAX_VALUE_BYTES} bytes"),
    )
}

/// The error for a result cut off while it was written through [`Capped`]: its full size is not
/// known, only that it passed the limit.
pub fn cut_off(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what}: the result would be over the limit of {MAX_VALUE_BYTES} bytes"),
    )
}

/// Refuses a result of `bytes` before it is built.
pub fn ensure(what: &str, bytes: usize) -> Result<(), Error> {
    if bytes > MAX_VALUE_BYTES { Err(too_large(what, bytes)) } else { Ok(()) }
}

/// Refuses a list of `items` before it is built.
pub fn ensure_items(what: &str, items: usize) -> Result<(), Error> {
    if items > MAX_ITEMS { Err(too_large(what, items.saturating_mul(size_of::<Value>()))) } else { Ok(()) }
}

/// Refuses an input string that is already over the limit (made by an operator).
pub fn input<'a>(what: &str, s: &'a str) -> Result<&'a str, Error> {
    ensure(what, s.len()).map(|()| s)
}

/// A string that stops growing at [`MAX_VALUE_BYTES`]: a write past it fails, and `over` says
/// the failure was the limit (not the formatting).
#[derive(Default)]
pub struct Capped {
    pub text: String,
    pub over: bool,
}

impl fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.text.len() + s.len() > MAX_VALUE_BYTES {
            self.over = true;
            return Err(fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // serde_json writes whole UTF-8 sequences, each a valid str.
        let s = std::str::from_utf8(buf).map_err(std::io::Error::other)?;
        fmt::Write::write_str(self, s).map_err(|_| std::io::Error::other("too large"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The most bytes `s` can take once each character is upper- or lower-cased (some grow: `ΐ`
/// upper-cases to three characters).
pub fn cased_size(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let upper: usize = c.to_uppercase().map(char::len_utf8).sum();
            let lower: usize = c.to_lowercase().map(char::len_utf8).sum();
            upper.max(lower)
        })
        .sum()
}

/// Refuses to print `value` (as JSON, or as minijinja prints it) when its text could exceed the
/// limit: a list repeated lazily (`[s] * 1000000`) is small in memory and huge in print.
pub fn ensure_printed(what: &str, value: &Value, style: Style) -> Result<(), Error> {
    let mut size = 0;
    if printed_size(value, style, 1, &mut size) { Ok(()) } else { Err(too_large(what, size)) }
}

/// How a value is printed: JSON (`tojson`) or minijinja's debug form (`string`, `pprint`), with
/// an indent per level.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub json: bool,
    pub indent: usize,
}

/// A bound of a string's size once quoted: an escaped ASCII byte (`\u003c`, `\n`) takes at
/// most 6; a non-ASCII byte 1 in JSON, at most 4 in debug form (`\u{200b}` for 3 bytes).
fn quoted_size(s: &str, style: Style) -> usize {
    s.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'<' | b'>' | b'&' | b'\'' | 0..=0x1f | 0x7f => 6,
            0x80.. if !style.json => 4,
            _ => 1,
        })
        .sum()
}

/// Adds to `size` a bound of `value`'s printed bytes (escaping at most sextuples a byte; each
/// item on its own indented line); `false` as soon as it passes the limit, so the walk is
/// bounded by the limit too.
fn printed_size(value: &Value, style: Style, depth: usize, size: &mut usize) -> bool {
    let indent = style.indent;
    let add = |size: &mut usize, n: usize| {
        *size = size.saturating_add(n);
        *size <= MAX_VALUE_BYTES
    };
    match value.kind() {
        ValueKind::String => add(size, value.as_str().map_or(0, |s| quoted_size(s, style)).saturating_add(2)),
        ValueKind::Seq | ValueKind::Map | ValueKind::Iterable | ValueKind::Plain => {
            let is_map = value.kind() == ValueKind::Map;
            let Ok(items) = value.try_iter() else { return add(size, 64) };
            if !add(size, 2) {
                return false;
            }
            for item in items {
                if !add(size, 4 + indent.saturating_mul(depth)) || !printed_size(&item, style, depth + 1, size) {
                    return false;
                }
                if is_map {
                    let Ok(inner) = value.get_item(&item) else { return add(size, 64) };
                    if !printed_size(&inner, style, depth + 1, size) {
                        return false;
                    }
                }
            }
            true
        }
        _ => add(size, 64),
    }
}

/// What a value takes as a result: a string's bytes, a list's or map's slots.
pub fn size_of_value(value: &Value) -> usize {
    match value.as_str() {
        Some(s) => s.len(),
        None => value.len().unwrap_or(0).saturating_mul(size_of::<Value>()),
    }
}

/// The most a render of a notification of `input` bytes may allocate at its peak:
/// [`FUEL_BYTES`] + 8 × [`MAX_VALUE_BYTES`] + 16 × `input` — the strings fuel pays for, a few
/// values at the limit alive at once (a helper's input and result, the output, its copy), and
/// the notification parsed into values.
pub fn peak_bound(input: usize) -> usize {
    FUEL_BYTES + 8 * MAX_VALUE_BYTES + 16 * input
}

/// A helper's argument as text: a string as is, anything else printed only once its printed
/// size is known to be within the limit.
pub fn text<'a>(what: &str, value: &'a Value) -> Result<Cow<'a, str>, Error> {
    match value.as_str() {
        Some(s) => input(what, s).map(Cow::Borrowed),
        None => {
            ensure_printed(what, value, Style { json: false, indent: 0 })?;
            Ok(Cow::Owned(value.to_string()))
        }
    }
}

/// The formatter of every `{{ value }}`: minijinja's, after the printed-size check. Uncaptured
/// output is also bounded by the writer; captured output (`{% set %}`…, macros) is charged to
/// the fuel only after each value is written, so each value is checked first.
pub fn formatter(out: &mut Output<'_>, state: &mut State, value: &Value) -> Result<(), Error> {
    // A string is copied as it is (its size was paid for in fuel when it was made).
    if value.as_object().is_some() {
        let json = !matches!(state.auto_escape(), AutoEscape::None);
        ensure_printed("print", value, Style { json, indent: 0 })?;
    }
    minijinja::escape_formatter(out, state, value)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::super::{Builder, RenderError, Reveal, Spec};

    /// Renders `source` as a text body against one alert whose label `evil` is `label`.
    fn render(source: &str, label: &str) -> Result<Vec<u8>, RenderError> {
        let mut builder = Builder::new();
        let name = builder.body(source, false).expect("compiles");
        let renderer = builder.finish(Spec {
            body: Some(name),
            payload: None,
            preset: None,
            options: Vec::new(),
            content_type: HeaderValue::from_static("text/plain"),
            signing: None,
        });
        let notification = serde_json::json!({
            "status": "firing", "receiver": "r", "version": "4", "groupKey": "{}", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": {"alertname": "A", "evil": label}, "annotations": {}}],
            "groupLabels": {}, "commonLabels": {"evil": label}, "commonAnnotations": {}, "externalURL": "",
        });
        renderer.render(notification.to_string().as_bytes(), Reveal::Send).map(|r| r.body.to_vec())
    }

    fn refused(source: &str) -> String {
        match render(source, "x") {
            Err(RenderError::Template(message)) => message,
            other => panic!("{source}: expected a render error, got {:?}", other.map(|b| b.len())),
        }
    }

    /// Regression: the security review's first bomb asked for 10 GB in one call and aborted.
    #[test]
    fn re_replace_all_bomb_is_a_render_error() {
        let message = refused(r#"{{ ("a" * 100000) | reReplaceAll("a", "x" * 100000) }}"#);
        assert!(message.contains("reReplaceAll") && message.contains("over the limit"), "{message}");
        // Group references are bounded too: `$0` a hundred thousand times.
        refused(r#"{{ ("a" * 100000) | reReplaceAll("a+", "$0" * 50000) }}"#);
        assert_eq!(render(r#"{{ "a-b" | reReplaceAll("(\w)", "<$1>") }}"#, "x").unwrap(), b"<a>-<b>");
    }

    /// Regression: the second bomb, `fit` with a long separator and a budget that allows all.
    #[test]
    fn fit_with_a_long_separator_is_a_render_error() {
        let message = refused(r#"{{ range(10000) | fit("line", 10**15, sep="x" * 100000) }}"#);
        assert!(message.contains("fit") && message.contains("over the limit"), "{message}");
        let message = refused(r#"{{ ([1] * 100000000) | fit("line", 10) }}"#);
        assert!(message.contains("fit"), "{message}");
    }

    /// A list is small in memory and huge in print: every way of printing one is checked first.
    #[test]
    fn printing_a_lazily_repeated_list_is_refused_before_it_is_printed() {
        let list = r#"(["x" * 1000] * 1000000)"#;
        for filter in ["toJson", "tojson", "string", "pprint", "join", "toUpper", "upper", "title", "trim", "safe"] {
            let message = refused(&format!("{{{{ {list} | {filter} }}}}"));
            assert!(message.contains("over the limit"), "{filter}: {message}");
        }
        for source in [
            format!("{{% set x %}}{{{{ {list} }}}}{{% endset %}}{{{{ x | length }}}}"),
            format!("{{% macro m() %}}{{{{ {list} }}}}{{% endmacro %}}{{{{ m() | length }}}}"),
            format!(r#"{{{{ "%s" | format({list}) }}}}"#),
            format!(r#"{{{{ {list} | reReplaceAll("x", "y") }}}}"#),
            format!(r#"{{{{ "a" | reReplaceAll("a", {list}) }}}}"#),
            format!("{{{{ {list} is startingwith \"[\" }}}}"),
            format!("{{{{ {list} | date }}}}"),
        ] {
            let message = refused(&source);
            assert!(message.contains("over the limit") || message.contains("RFC 3339"), "{source}: {message}");
        }
    }

    /// Builtin filters that grow a value from small input are refused at the limit, not after.
    #[test]
    fn growing_builtins_are_refused_at_the_value_limit() {
        for source in [
            r#"{{ ("a" * 100000) | replace("a", "x" * 1000) }}"#,
            r#"{{ ("\n" * 100000) | indent(1000) }}"#,
            r#"{{ range(10000) | join("x" * 10000) }}"#,
            r#"{{ ("ΐ" * 3000000) | toUpper }}"#,
            r#"{{ ("ΐ" * 3000000) | upper }}"#,
            r#"{{ ("&" * 2000000) | mrkdwn }}"#,
            r#"{{ ("\n" * 8000000) | lines | length }}"#,
            r#"{{ (" a" * 4000000) | split | length }}"#,
            r#"{{ ("a" * 1000000) | list | length }}"#,
            r#"{{ [{"a": {"b": ["x" * 1000] * 1000000}}] | join(attribute="a.b") }}"#,
        ] {
            match render(source, "x") {
                Err(RenderError::Template(message)) => {
                    assert!(message.contains("over the limit"), "{source}: {message}")
                }
                Err(RenderError::OutOfFuel) => {}
                other => panic!("{source}: {:?}", other.map(|b| b.len())),
            }
        }
        // Within the limit, the wrapped builtins behave as minijinja's.
        assert_eq!(render(r#"{{ "aaa" | replace("a", "b", 2) }}"#, "x").unwrap(), b"bba");
        assert_eq!(render(r#"{{ "a\nb" | indent(2, true) }}"#, "x").unwrap(), b"  a\n  b");
        assert_eq!(render(r#"{{ ["a", 1] | join(",") }}|{{ "%s-%d" | format("a", 2) }}"#, "x").unwrap(), b"a,1|a-2");
        assert_eq!(
            render(r#"{{ [{"a": {"b": "x"}}, {"a": {"b": "y"}}] | join("+", attribute="a.b") }}"#, "x").unwrap(),
            b"x+y"
        );
        assert_eq!(render(r#"{{ {"a": [1, "<"]} | tojson }}"#, "x").unwrap(), br#"{"a": [1, "\u003c"]}"#);
        assert_eq!(
            render(r#"{{ "  Ab cd " | trim | title }} {{ "x y" | split | list | length }}"#, "x").unwrap(),
            b"Ab Cd 2"
        );
    }

    /// Regression: a template that explodes only on a label value passed validation; it is
    /// a render error now, and the same template renders a small value.
    #[test]
    fn a_template_that_explodes_on_a_label_value_is_a_render_error() {
        let source = r#"{{ commonLabels.evil | reReplaceAll("a", "x" * 100000) }}"#;
        assert_eq!(render(source, "b").unwrap(), b"b");
        let message = match render(source, &"a".repeat(100_000)) {
            Err(RenderError::Template(message)) => message,
            other => panic!("{:?}", other.map(|b| b.len())),
        };
        assert!(message.contains("reReplaceAll"), "{message}");
    }

    /// `date`'s format is the template's: jiff caps each width at 255, but a long format (here
    /// 2.5 MB asking for 10 MB) writes through the cap and is refused, not allocated.
    #[test]
    fn date_formats_are_bounded() {
        match render(r#"{{ 0 | date("%255Y" * 500000) }}"#, "x") {
            Err(RenderError::Template(e)) => {
                let message = e.to_string();
                assert!(message.contains("date") && message.contains("over the limit"), "{message}");
            }
            other => panic!("{:?}", other.map(|b| b.len())),
        }
    }
}
