//! Alertmanager's label matchers: `name=value`, `name!=value`, `name=~regex`, `name!~regex`.
//!
//! Semantics follow Alertmanager exactly: regexes are fully anchored (`^(?:re)$`), and a missing
//! label is matched as the empty string, so `team=""` selects alerts without a `team` label.
//! One config string may hold zero or more matchers, optionally in braces: `{a="1", b=~"x|y"}`.
//!
//! Parsing follows Alertmanager's default mode since 0.27 (`matcher/compat`'s fallback parser):
//! the input goes through both the UTF-8 parser ([`super::parse_utf8`]) and the classic one
//! ([`super::parse_classic`]). When only the UTF-8 parser accepts it, its result is used; when
//! only the classic parser accepts it, the classic result is used with a warning; when both
//! accept it but read it differently, Alertmanager keeps the classic reading, with a warning,
//! and so do we.

use std::fmt;

use regex::Regex;

use super::{parse_classic, parse_utf8};

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

/// Which of Alertmanager's parsers reads matchers (its `--enable-feature` flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ParserMode {
    /// Alertmanager's default since 0.27: UTF-8 parser, classic fallback with a warning.
    #[default]
    Fallback,
    /// `utf8-strict-mode`: the UTF-8 parser only.
    Utf8Strict,
    /// `classic-mode`: the classic parser only.
    Classic,
}

/// Matchers read from one string, with the warning Alertmanager would log for it.
#[derive(Debug)]
pub struct Parsed {
    pub matchers: Vec<Matcher>,
    /// Set when the input relies on the classic parser: it is not valid for the UTF-8 parser,
    /// or the two parsers read it differently (the classic reading is kept).
    pub warning: Option<String>,
}

/// Parses one config string into zero or more matchers, as Alertmanager's default mode does;
/// any fallback warning is dropped (config loading uses [`parse_matchers_in`] to report it).
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, String> {
    parse_matchers_in(ParserMode::Fallback, input).map(|parsed| parsed.matchers)
}

/// Parses one config string into zero or more matchers with the given parser.
pub fn parse_matchers_in(mode: ParserMode, input: &str) -> Result<Parsed, String> {
    match mode {
        ParserMode::Utf8Strict => Ok(Parsed { matchers: parse_utf8::matchers(input)?, warning: None }),
        ParserMode::Classic => Ok(Parsed { matchers: parse_classic::matchers(input)?, warning: None }),
        ParserMode::Fallback => reconcile(parse_utf8::matchers(input), parse_classic::matchers(input)),
    }
}

/// One matcher, as Alertmanager's `compat.Matcher` reads it (braces are an error there, and the
/// classic parser reads the whole input as one matcher: `a=b,c=d` is `a` equal to `b,c=d`).
pub fn parse_matcher_in(mode: ParserMode, input: &str) -> Result<Parsed, String> {
    if mode != ParserMode::Classic && (input.starts_with('{') || input.ends_with('}')) {
        return Err(format!("unexpected open or close brace: {input}"));
    }
    let utf8 = || {
        parse_utf8::matchers(input).and_then(|matchers| match matchers.len() {
            1 => Ok(matchers),
            0 => Err("no matchers".to_owned()),
            n => Err(format!("expected 1 matcher, found {n}")),
        })
    };
    let classic = || parse_classic::matcher(input).map(|m| vec![m]);
    match mode {
        ParserMode::Utf8Strict => Ok(Parsed { matchers: utf8()?, warning: None }),
        ParserMode::Classic => Ok(Parsed { matchers: classic()?, warning: None }),
        ParserMode::Fallback => reconcile(utf8(), classic()),
    }
}

/// `matcher/compat`'s fallback: which parser's reading counts, and the warning to give.
fn reconcile(utf8: Result<Vec<Matcher>, String>, classic: Result<Vec<Matcher>, String>) -> Result<Parsed, String> {
    match (utf8, classic) {
        (Err(_), Err(classic_error)) => Err(classic_error),
        (Err(utf8_error), Ok(matchers)) => {
            let warning = format!(
                "only Alertmanager's classic matcher parser accepts this ({utf8_error}); read as {}: \
                 double-quote values and regexes and escape backslashes to make it valid for both",
                suggestion(&matchers)
            );
            Ok(Parsed { matchers, warning: Some(warning) })
        }
        (Ok(utf8), Ok(classic))
            if utf8.len() != classic.len() || utf8.iter().zip(&classic).any(|(a, b)| !a.same_as(b)) =>
        {
            let warning = format!(
                "Alertmanager's matcher parsers disagree on this input: the UTF-8 parser reads {}, the classic \
                 parser {}; the classic reading is used, as Alertmanager does",
                suggestion(&utf8),
                suggestion(&classic)
            );
            Ok(Parsed { matchers: classic, warning: Some(warning) })
        }
        (Ok(matchers), _) => Ok(Parsed { matchers, warning: None }),
    }
}

fn suggestion(matchers: &[Matcher]) -> String {
    let all: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    format!("{{{}}}", all.join(","))
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
