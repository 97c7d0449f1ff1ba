//! Alertmanager's label matchers: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
//!
//! Semantics follow Alertmanager exactly: regexes are fully anchored (`^(?:re)$`), and a missing
//! label is matched as the empty string, so `team=""` selects alerts without a `team` label.
//! One config string may hold zero or more matchers, optionally in braces: `{a="1", b=~"x|y"}`.
//!
//! Reading them from text is [`super::parse`]'s job.

use std::fmt;

use regex::Regex;

/// The four operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchType {
    Equal,
    NotEqual,
    Regex,
    NotRegex,
}

impl MatchType {
    fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

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
    /// A matcher as Alertmanager's `labels.NewMatcher` builds it: regexes anchored and compiled.
    pub fn new(kind: MatchType, name: &str, value: &str) -> Result<Matcher, String> {
        let regex = || Regex::new(&anchor(value)).map_err(|e| format!("invalid regex {value:?}: {}", regex_reason(&e)));
        let op = match kind {
            MatchType::Equal => MatchOp::Equal(value.to_owned()),
            MatchType::NotEqual => MatchOp::NotEqual(value.to_owned()),
            MatchType::Regex => MatchOp::Regex(regex()?),
            MatchType::NotRegex => MatchOp::NotRegex(regex()?),
        };
        Ok(Matcher { name: name.to_owned(), op, slot: u32::MAX })
    }

    /// The operator.
    pub fn kind(&self) -> MatchType {
        match self.op {
            MatchOp::Equal(_) => MatchType::Equal,
            MatchOp::NotEqual(_) => MatchType::NotEqual,
            MatchOp::Regex(_) => MatchType::Regex,
            MatchOp::NotRegex(_) => MatchType::NotRegex,
        }
    }

    /// The value as written (a regex without the anchoring).
    pub fn value(&self) -> &str {
        match &self.op {
            MatchOp::Equal(v) | MatchOp::NotEqual(v) => v,
            MatchOp::Regex(re) | MatchOp::NotRegex(re) => unanchor(re.as_str()),
        }
    }

    /// Whether two matchers say the same thing (Alertmanager compares type, name and value).
    pub fn same_as(&self, other: &Matcher) -> bool {
        self.kind() == other.kind() && self.name == other.name && self.value() == other.value()
    }

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

/// As Alertmanager's `Matcher.String()`: a name with reserved characters is quoted, and the
/// value is always quoted, so the text parses back to the same matcher with either parser.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = self.kind().as_str();
        if self.name.chars().any(|c| c.is_whitespace() || "{}!=~,\\\"'`".contains(c)) {
            write!(f, "{:?}{op}{:?}", self.name, self.value())
        } else {
            let escaped = self.value().replace('\\', "\\\\").replace('\n', "\\n").replace('"', "\\\"");
            write!(f, "{}{op}\"{escaped}\"", self.name)
        }
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

#[cfg(test)]
mod tests {
    use super::super::parse::*;
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
    fn empty_lists_mean_no_matchers() {
        for empty in ["", "{}", " "] {
            assert!(parse_matchers(empty).unwrap().is_empty(), "{empty:?}");
        }
    }

    #[test]
    fn display_parses_back_to_the_same_matcher() {
        for text in [r#"a="x\"y\\z""#, "a=~\"b\\n\"", r#""a b"!="🙂""#] {
            let parsed = one(text);
            assert!(one(&parsed.to_string()).same_as(&parsed), "{text} -> {parsed}");
        }
    }

    #[test]
    fn keeps_regex_escapes() {
        assert!(one(r#"instance=~"node-\d+""#).matches("node-12"));
    }

    #[test]
    fn rejects_malformed_matchers() {
        for bad in ["severity", "=x", r#"a="unterminated"#, "a=~\"(\"", "a=b,,c=d", "{a=\"\\d\"}}"] {
            assert!(parse_matchers(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
