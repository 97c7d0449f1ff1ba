//! Alertmanager's classic matcher parser (`pkg/labels`), the only one before 0.27 and the
//! fallback after it, ported rule for rule: it is tolerant in ways configs in the wild rely on.
//!
//! One leading `{` and one trailing `}` are trimmed, the rest is split at commas outside double
//! quotes, and each piece must read `name op value` with a classic label name. The value may be
//! quoted; inside it `\n`, `\"` and `\\` are escapes and any other backslash is literal — in
//! unquoted values too, so `{foo=bar\n}` means a newline.

use std::sync::LazyLock;

use regex::Regex;

use super::matcher::{MatchType, Matcher};

/// Go's `\s` is ASCII (`[\t\n\f\r ]`); so is this one.
static MATCHER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[\t\n\f\r ]*([a-zA-Z_:][a-zA-Z0-9_:]*)[\t\n\f\r ]*(=~|=|!=|!~)[\t\n\f\r ]*((?s:.*?))[\t\n\f\r ]*$")
        .expect("the classic matcher pattern compiles")
});

/// Zero or more matchers, as Alertmanager's `labels.ParseMatchers` reads them.
pub fn matchers(input: &str) -> Result<Vec<Matcher>, String> {
    let text = input.strip_prefix('{').unwrap_or(input);
    let text = text.strip_suffix('}').unwrap_or(text);
    let (mut inside_quotes, mut escaped) = (false, false);
    let mut token = String::new();
    let mut tokens = Vec::new();
    for c in text.chars() {
        match c {
            ',' if !inside_quotes => {
                tokens.push(std::mem::take(&mut token));
                continue;
            }
            ',' => {}
            '"' => {
                if !escaped {
                    inside_quotes = !inside_quotes;
                } else {
                    escaped = false;
                }
            }
            '\\' => escaped = !escaped,
            _ => escaped = false,
        }
        token.push(c);
    }
    let last = token.trim();
    if !last.is_empty() {
        tokens.push(last.to_owned());
    }
    tokens.iter().map(|t| matcher(t)).collect()
}

/// One matcher, as Alertmanager's `labels.ParseMatcher` reads it.
pub fn matcher(input: &str) -> Result<Matcher, String> {
    let captures = MATCHER.captures(input).ok_or_else(|| format!("bad matcher format: {input}"))?;
    let (name, op, raw) = (&captures[1], &captures[2], &captures[3]);
    let (rest, mut expect_trailing_quote) = match raw.strip_prefix('"') {
        Some(after) => (after, true),
        None => (raw, false),
    };
    let unescaped_quote = || format!("matcher value contains unescaped double quote: {raw}");
    let mut value = String::with_capacity(rest.len());
    let mut escaped = false;
    let last = rest.len().saturating_sub(1);
    for (i, c) in rest.char_indices() {
        if escaped {
            escaped = false;
            match c {
                'n' => value.push('\n'),
                '"' | '\\' => value.push(c),
                _ => {
                    // A spurious escape: the backslash is literal.
                    value.push('\\');
                    value.push(c);
                }
            }
            continue;
        }
        match c {
            '\\' if i < last => escaped = true,
            '\\' => value.push('\\'),
            '"' => {
                if !expect_trailing_quote || i < last {
                    return Err(unescaped_quote());
                }
                expect_trailing_quote = false;
            }
            c => value.push(c),
        }
    }
    if expect_trailing_quote {
        return Err(unescaped_quote());
    }
    let kind = match op {
        "=" => MatchType::Equal,
        "!=" => MatchType::NotEqual,
        "=~" => MatchType::Regex,
        _ => MatchType::NotRegex,
    };
    Matcher::new(kind, name, &value)
}
