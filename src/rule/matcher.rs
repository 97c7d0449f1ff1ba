//! Alertmanager's label matchers: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
//!
//! Semantics follow Alertmanager exactly: regexes are fully anchored (`^(?:re)$`), and a missing
//! label is matched as the empty string, so `team=""` selects alerts without a `team` label.
//! One config string may hold several matchers, optionally in braces: `{a="1", b=~"x|y"}`.

use std::fmt;

use regex::Regex;

/// How a matcher compares the label value.
#[derive(Debug, Clone)]
pub enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
}

/// One compiled matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    /// The label's slot in the snapshot's `LabelIndex` (`u32::MAX` until interned).
    pub slot: u32,
}

impl Matcher {
    /// Whether `value` (the empty string for a missing label) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match &self.op {
            MatchOp::Equal(expected) => value == expected,
            MatchOp::NotEqual(expected) => value != expected,
            MatchOp::Regex(re) => re.is_match(value),
            MatchOp::NotRegex(re) => !re.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (op, value) = match &self.op {
            MatchOp::Equal(v) => ("=", v.as_str()),
            MatchOp::NotEqual(v) => ("!=", v.as_str()),
            MatchOp::Regex(re) => ("=~", unanchor(re.as_str())),
            MatchOp::NotRegex(re) => ("!~", unanchor(re.as_str())),
        };
        write!(f, "{}{}{:?}", self.name, op, value)
    }
}

/// The regex crate's syntax errors span several lines (pattern, caret, reason); keep the reason.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().last().unwrap_or(&text);
    last.trim().trim_start_matches("error: ").to_owned()
}

fn anchor(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn unanchor(anchored: &str) -> &str {
    anchored.strip_prefix("^(?:").and_then(|s| s.strip_suffix(")$")).unwrap_or(anchored)
}

/// Parses one config string into one or more matchers.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, String> {
    let mut text = input.trim();
    if let Some(inner) = text.strip_prefix('{') {
        text = inner.strip_suffix('}').ok_or_else(|| format!("matcher {input:?}: missing closing '}}'"))?.trim();
    }
    let mut lexer = Lexer { rest: text, input };
    let mut matchers = Vec::new();
    loop {
        lexer.skip_spaces();
        if lexer.rest.is_empty() {
            break;
        }
        matchers.push(lexer.matcher()?);
        lexer.skip_spaces();
        if lexer.rest.is_empty() {
            break;
        }
        lexer.expect(',')?;
    }
    if matchers.is_empty() {
        return Err(format!("matcher {input:?}: no matcher found"));
    }
    Ok(matchers)
}

struct Lexer<'a> {
    rest: &'a str,
    input: &'a str,
}

impl Lexer<'_> {
    fn error(&self, what: &str) -> String {
        let offset = self.input.len() - self.rest.len();
        format!("matcher {:?}: {what} at offset {offset}", self.input)
    }

    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.rest = self.rest.strip_prefix(c).ok_or_else(|| self.error(&format!("expected '{c}'")))?;
        Ok(())
    }

    fn matcher(&mut self) -> Result<Matcher, String> {
        let name = self.name()?;
        self.skip_spaces();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| self.rest.starts_with(op))
            .ok_or_else(|| self.error("expected one of =, !=, =~, !~"))?;
        self.rest = &self.rest[op.len()..];
        self.skip_spaces();
        let value = self.value()?;
        let op = match op {
            "=" => MatchOp::Equal(value),
            "!=" => MatchOp::NotEqual(value),
            regex_op => {
                let re = Regex::new(&anchor(&value))
                    .map_err(|e| self.error(&format!("invalid regex {value:?}: {}", regex_reason(&e))))?;
                if regex_op == "=~" { MatchOp::Regex(re) } else { MatchOp::NotRegex(re) }
            }
        };
        Ok(Matcher { name, op, slot: u32::MAX })
    }

    fn name(&mut self) -> Result<String, String> {
        if self.rest.starts_with('"') {
            return self.quoted();
        }
        let len =
            self.rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(self.rest.len());
        let name = &self.rest[..len];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self.error("expected a label name"));
        }
        self.rest = &self.rest[len..];
        Ok(name.to_owned())
    }

    fn value(&mut self) -> Result<String, String> {
        if self.rest.starts_with('"') {
            return self.quoted();
        }
        // Unquoted values run to the next comma, as in Alertmanager's classic parser.
        let len = self.rest.find(',').unwrap_or(self.rest.len());
        let value = self.rest[..len].trim_end();
        if value.contains(['"', '{', '}']) {
            return Err(self.error("unquoted value contains a quote or brace"));
        }
        self.rest = &self.rest[len..];
        Ok(value.to_owned())
    }

    fn quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = self.rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, escaped @ ('"' | '\\'))) => out.push(escaped),
                    Some((_, other)) => {
                        // Keep unknown escapes verbatim so regex escapes like `\d` survive.
                        out.push('\\');
                        out.push(other);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.error("unterminated quoted string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Matcher {
        let mut all = parse_matchers(text).unwrap();
        assert_eq!(all.len(), 1, "{text}");
        all.remove(0)
    }

    #[test]
    fn parses_each_operator_quoted_and_unquoted() {
        assert!(one("severity=critical").matches("critical"));
        assert!(one(r#"severity="critical""#).matches("critical"));
        assert!(one(r#"severity!="critical""#).matches("warning"));
        assert!(one(r#"alertname=~"Kube.*""#).matches("KubePodCrash"));
        assert!(!one(r#"alertname!~"Kube.*""#).matches("KubePodCrash"));
    }

    #[test]
    fn regexes_are_fully_anchored() {
        let m = one(r#"alertname=~"Kube""#);
        assert!(m.matches("Kube"));
        assert!(!m.matches("KubeX"));
        assert!(!m.matches("XKube"));
        let alternation = one(r#"a=~"x|y""#);
        assert!(alternation.matches("y"));
        assert!(!alternation.matches("xy"));
    }

    #[test]
    fn missing_label_is_the_empty_string() {
        assert!(one(r#"team="""#).matches(""));
        assert!(one(r#"team!~".+""#).matches(""));
        assert!(!one(r#"team=~".+""#).matches(""));
    }

    #[test]
    fn parses_braced_lists_with_escapes_and_unicode() {
        let all = parse_matchers(r#"{a="1", b=~"x\"y", c!="ünï ✓"}"#).unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[1].matches("x\"y"));
        assert!(all[2].matches("other"));
        assert!(!all[2].matches("ünï ✓"));
        assert_eq!(all[0].to_string(), r#"a="1""#);
    }

    #[test]
    fn keeps_regex_escapes() {
        assert!(one(r#"instance=~"node-\d+""#).matches("node-12"));
    }

    #[test]
    fn rejects_malformed_matchers() {
        for bad in ["", "severity", "=x", r#"a="unterminated"#, "{a=b", "a=~\"(\"", "1a=b", "a=b,,c=d"] {
            assert!(parse_matchers(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
