//! Reading matchers from config text, as Alertmanager's default mode since 0.27 does
//! (`matcher/compat`'s fallback parser): the input goes through both the UTF-8 parser
//! ([`super::parse_utf8`]) and the classic one ([`super::parse_classic`]). When only the UTF-8
//! parser accepts it, its result is used; when only the classic parser accepts it, the classic
//! result is used with a warning; when both accept it but read it differently, Alertmanager keeps
//! the classic reading, with a warning, and so do we.

use super::matcher::Matcher;
use super::{parse_classic, parse_utf8};

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
