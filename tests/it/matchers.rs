//! Alertmanager's own matcher parser test tables, as facts about amrelay's parsers.
//!
//! Ported from prometheus/alertmanager (commit 68fb2d5): `matcher/parse/parse_test.go`
//! (the UTF-8 parser, errors word for word), `pkg/labels/parse_test.go` (the classic parser),
//! `matcher/compat/parse_test.go` (the fallback, Alertmanager's default mode since 0.27). The
//! one deliberate gap: a regex syntax error is worded by Rust's regex crate, not Go's.

use amrelay::rule::{MatchType, Matcher, ParserMode, parse_matcher_in, parse_matchers, parse_matchers_in};

enum Want {
    /// The matchers, each as (operator, name, value).
    M(&'static [(&'static str, &'static str, &'static str)]),
    /// The exact error.
    E(&'static str),
    /// An error whose wording is Go's own (regex syntax errors).
    AnyError,
}
use Want::{AnyError, E, M};

fn described(m: &Matcher) -> (&'static str, String, String) {
    let op = match m.kind() {
        MatchType::Equal => "=",
        MatchType::NotEqual => "!=",
        MatchType::Regex => "=~",
        MatchType::NotRegex => "!~",
    };
    (op, m.name.clone(), m.value().to_owned())
}

fn check(table: &str, input: &str, got: Result<Vec<Matcher>, String>, want: &Want) {
    match (got, want) {
        (Ok(got), M(want)) => {
            let got: Vec<_> = got.iter().map(described).collect();
            let want: Vec<_> = want.iter().map(|(op, n, v)| (*op, n.to_string(), v.to_string())).collect();
            assert_eq!(got, want, "{table}: {input:?}");
        }
        (Err(got), E(want)) => assert_eq!(got, *want, "{table}: {input:?}"),
        (Err(_), AnyError) => {}
        (got, _) => panic!("{table}: {input:?}: got {:?}", got.map(|m| m.iter().map(described).collect::<Vec<_>>())),
    }
}

/// `matcher/parse/parse_test.go` `TestMatchers`.
const UTF8_MATCHERS: &[(&str, Want)] = &[
    ("", M(&[])),
    ("{}", M(&[])),
    ("{foo=bar}", M(&[("=", "foo", "bar")])),
    ("{foo=bar,}", M(&[("=", "foo", "bar")])),
    ("{foo!=bar}", M(&[("!=", "foo", "bar")])),
    ("{foo=~[a-z]+}", M(&[("=~", "foo", "[a-z]+")])),
    ("{foo!~[a-z]+}", M(&[("!~", "foo", "[a-z]+")])),
    ("{foo=🙂}", M(&[("=", "foo", "🙂")])),
    ("{foo=🙂bar}", M(&[("=", "foo", "🙂bar")])),
    ("foo=bar", M(&[("=", "foo", "bar")])),
    ("foo=bar,", M(&[("=", "foo", "bar")])),
    ("foo!=bar", M(&[("!=", "foo", "bar")])),
    ("foo=~[a-z]+", M(&[("=~", "foo", "[a-z]+")])),
    ("foo!~[a-z]+", M(&[("!~", "foo", "[a-z]+")])),
    (r#"{"foo"="bar"}"#, M(&[("=", "foo", "bar")])),
    (r#"{"foo"="bar",}"#, M(&[("=", "foo", "bar")])),
    (r#"{"foo"!="bar"}"#, M(&[("!=", "foo", "bar")])),
    (r#"{"foo"=~"[a-z]+"}"#, M(&[("=~", "foo", "[a-z]+")])),
    (r#"{"foo"=~"\\d+"}"#, M(&[("=~", "foo", r"\d+")])),
    (r#"{"foo"!~"[a-z]+"}"#, M(&[("!~", "foo", "[a-z]+")])),
    (r#"{"foo"="🙂"}"#, M(&[("=", "foo", "🙂")])),
    (r#"{"foo"="\xf0\x9f\x99\x82"}"#, M(&[("=", "foo", "🙂")])),
    (r#"{"foo"="\U0001f642"}"#, M(&[("=", "foo", "🙂")])),
    (r#"{"foo"="🙂bar"}"#, M(&[("=", "foo", "🙂bar")])),
    (r#"{"foo"="bar\n"}"#, M(&[("=", "foo", "bar\n")])),
    (r#"{"foo"="bar\t"}"#, M(&[("=", "foo", "bar\t")])),
    (r#"{"foo"="\"bar\""}"#, M(&[("=", "foo", "\"bar\"")])),
    (r#"{"foo"="bar\\"}"#, M(&[("=", "foo", "bar\\")])),
    (r#""foo"="bar""#, M(&[("=", "foo", "bar")])),
    (r#""foo"="bar","#, M(&[("=", "foo", "bar")])),
    ("{foo=bar,bar!=baz}", M(&[("=", "foo", "bar"), ("!=", "bar", "baz")])),
    (r#"{foo="bar",bar!="baz"}"#, M(&[("=", "foo", "bar"), ("!=", "bar", "baz")])),
    ("foo=bar,bar!=baz", M(&[("=", "foo", "bar"), ("!=", "bar", "baz")])),
    (r#"foo="bar",bar!="baz""#, M(&[("=", "foo", "bar"), ("!=", "bar", "baz")])),
    (",", E("0:1: unexpected ,: expected label name")),
    ("{,}", E("1:2: unexpected ,: expected label name")),
    ("{", E("0:1: end of input: expected close brace")),
    ("}", E("0:1: }: expected opening brace")),
    ("foo=bar}", E("0:8: }: expected opening brace")),
    ("{foo=bar", E("0:8: end of input: expected close brace")),
    (r#"{foo=:"bar"}"#, E(r#"6:11: unexpected "bar": expected a comma or close brace"#)),
    (r#"{foo="bar\w"}"#, E(r#"5:12: "bar\w": invalid input"#)),
    (r#"{"foo"=~"\d+"}"#, E(r#"8:13: "\d+": invalid input"#)),
    (r"{foo=bar\n}", E(r"8:9: \: invalid input: expected a comma or close brace")),
    (r#"{"foo"="\xf0\x9f"}"#, E(r#"7:17: "\xf0\x9f": invalid input"#)),
];

/// `matcher/parse/parse_test.go` `TestMatcher` (exactly one matcher).
const UTF8_MATCHER: &[(&str, Want)] = &[
    ("{foo=bar}", M(&[("=", "foo", "bar")])),
    ("{foo=bar,}", M(&[("=", "foo", "bar")])),
    ("{foo!=bar}", M(&[("!=", "foo", "bar")])),
    ("{foo=~[a-z]+}", M(&[("=~", "foo", "[a-z]+")])),
    ("{foo=🙂}", M(&[("=", "foo", "🙂")])),
    (r#"{"foo"="\xf0\x9f\x99\x82"}"#, M(&[("=", "foo", "🙂")])),
    (r#"{"foo"="\U0001f642"}"#, M(&[("=", "foo", "🙂")])),
    ("foo=bar,", M(&[("=", "foo", "bar")])),
    (r#""foo"="bar","#, M(&[("=", "foo", "bar")])),
    ("", E("no matchers")),
    ("{}", E("no matchers")),
    ("foo=bar,bar=baz", E("expected 1 matcher, found 2")),
    (r#"foo="\xf0\x9f""#, E(r#"4:14: "\xf0\x9f": invalid input"#)),
];

/// `pkg/labels/parse_test.go` `TestMatchers`.
const CLASSIC_MATCHERS: &[(&str, Want)] = &[
    ("{}", M(&[])),
    (",", E("bad matcher format: ")),
    ("{,}", E("bad matcher format: ")),
    ("{foo='}", M(&[("=", "foo", "'")])),
    ("{foo=`}", M(&[("=", "foo", "`")])),
    (r#"{foo=\"}"#, M(&[("=", "foo", "\"")])),
    ("{foo=bar}", M(&[("=", "foo", "bar")])),
    (r#"{foo="bar"}"#, M(&[("=", "foo", "bar")])),
    ("{foo=~bar.*}", M(&[("=~", "foo", "bar.*")])),
    (r#"{foo=~"bar.*"}"#, M(&[("=~", "foo", "bar.*")])),
    ("{foo!=bar}", M(&[("!=", "foo", "bar")])),
    (r#"{foo!="bar"}"#, M(&[("!=", "foo", "bar")])),
    ("{foo!~bar.*}", M(&[("!~", "foo", "bar.*")])),
    (r#"{foo!~"bar.*"}"#, M(&[("!~", "foo", "bar.*")])),
    (r#"{foo="bar", baz!="quux"}"#, M(&[("=", "foo", "bar"), ("!=", "baz", "quux")])),
    (r#"{foo="bar", baz!~"quux.*"}"#, M(&[("=", "foo", "bar"), ("!~", "baz", "quux.*")])),
    (
        r#"{foo="bar",baz!~".*quux", derp="wat"}"#,
        M(&[("=", "foo", "bar"), ("!~", "baz", ".*quux"), ("=", "derp", "wat")]),
    ),
    (r#"{foo="bar", baz!="quux", derp="wat"}"#, M(&[("=", "foo", "bar"), ("!=", "baz", "quux"), ("=", "derp", "wat")])),
    (
        r#"{foo="bar", baz!~".*quux.*", derp="wat"}"#,
        M(&[("=", "foo", "bar"), ("!~", "baz", ".*quux.*"), ("=", "derp", "wat")]),
    ),
    (r#"{foo="bar", instance=~"some-api.*"}"#, M(&[("=", "foo", "bar"), ("=~", "instance", "some-api.*")])),
    (r#"{foo=""}"#, M(&[("=", "foo", "")])),
    (r#"{foo="bar,quux", job="job1"}"#, M(&[("=", "foo", "bar,quux"), ("=", "job", "job1")])),
    (r#"{foo = "bar", dings != "bums", }"#, M(&[("=", "foo", "bar"), ("!=", "dings", "bums")])),
    ("foo=bar,dings!=bums", M(&[("=", "foo", "bar"), ("!=", "dings", "bums")])),
    (
        r#"{quote="She said: \"Hi, ladies! That's gender-neutral…\""}"#,
        M(&[("=", "quote", r#"She said: "Hi, ladies! That's gender-neutral…""#)]),
    ),
    (r#"statuscode=~"5..""#, M(&[("=~", "statuscode", "5..")])),
    ("tricky=~~~", M(&[("=~", "tricky", "~~")])),
    (r#"trickier==\\=\=\""#, M(&[("=", "trickier", r#"=\=\=""#)])),
    (
        r#"contains_quote != "\"" , contains_comma !~ "foo,bar" , "#,
        M(&[("!=", "contains_quote", "\""), ("!~", "contains_comma", "foo,bar")]),
    ),
    ("{foo=bar}}", M(&[("=", "foo", "bar}")])),
    ("{foo=bar}},}", M(&[("=", "foo", "bar}}")])),
    ("{foo=,bar=}}", M(&[("=", "foo", ""), ("=", "bar", "}")])),
    (r"{foo=bar\t}", M(&[("=", "foo", r"bar\t")])),
    (r"{foo=bar\n}", M(&[("=", "foo", "bar\n")])),
    (r"{foo=bar\}", M(&[("=", "foo", r"bar\")])),
    (r"{foo=bar\\}", M(&[("=", "foo", r"bar\")])),
    (r#"{foo=bar\"}"#, M(&[("=", "foo", "bar\"")])),
    ("job=", M(&[("=", "job", "")])),
    (r#"job="value"#, E(r#"matcher value contains unescaped double quote: "value"#)),
    (r#"job=value""#, E(r#"matcher value contains unescaped double quote: value""#)),
    (r#"trickier==\\=\=\"""#, E(r#"matcher value contains unescaped double quote: =\\=\=\"""#)),
    (r#"contains_unescaped_quote = foo"bar"#, E(r#"matcher value contains unescaped double quote: foo"bar"#)),
    (r#"{invalid-name = "valid label"}"#, E(r#"bad matcher format: invalid-name = "valid label""#)),
    (r#"{foo=~"invalid[regexp"}"#, AnyError),
    (r#""{foo=\"bar"}"#, E(r#"bad matcher format: "{foo=\"bar""#)),
    (r#""foo=\"bar""#, E(r#"bad matcher format: "foo=\"bar""#)),
    (r#""foo=\"bar\"""#, E(r#"bad matcher format: "foo=\"bar\"""#)),
    (r#""foo=\"bar\""#, E(r#"bad matcher format: "foo=\"bar\""#)),
    (r#""{foo=\"bar\"}""#, E(r#"bad matcher format: "{foo=\"bar\"}""#)),
    (r#""foo="bar"""#, E(r#"bad matcher format: "foo="bar"""#)),
    ("{{foo=", E("bad matcher format: {foo=")),
    ("{foo=", M(&[("=", "foo", "")])),
    ("{foo=}b", M(&[("=", "foo", "}b")])),
];

/// `matcher/compat/parse_test.go` `TestFallbackMatchersParser`.
const FALLBACK_MATCHERS: &[(&str, Want)] = &[
    ("{foo=bar,bar=baz}", M(&[("=", "foo", "bar"), ("=", "bar", "baz")])),
    ("{foo!bar}", E("bad matcher format: foo!bar")),
    ("{foo🙂=bar,bar=baz🙂}", M(&[("=", "foo🙂", "bar"), ("=", "bar", "baz🙂")])),
    (r"{foo=!bar,bar=$baz\n}", M(&[("=", "foo", "!bar"), ("=", "bar", "$baz\n")])),
    // Disagreement: the classic parser does not know `\x` escapes, and its reading wins.
    (r#"{foo="\xf0\x9f\x99\x82"}"#, M(&[("=", "foo", r"\xf0\x9f\x99\x82")])),
];

/// `matcher/compat/parse_test.go` `TestFallbackMatcherParser` (exactly one matcher).
const FALLBACK_MATCHER: &[(&str, Want)] = &[
    ("foo=bar", M(&[("=", "foo", "bar")])),
    ("foo!bar", E("bad matcher format: foo!bar")),
    ("foo🙂=bar", M(&[("=", "foo🙂", "bar")])),
    (r"foo=!bar\n", M(&[("=", "foo", "!bar\n")])),
    (r#"foo="\xf0\x9f\x99\x82""#, M(&[("=", "foo", r"\xf0\x9f\x99\x82")])),
];

#[test]
fn utf8_parser_follows_alertmanagers_table() {
    for (input, want) in UTF8_MATCHERS {
        check("utf8", input, parse_matchers_in(ParserMode::Utf8Strict, input).map(|p| p.matchers), want);
    }
    for (input, want) in UTF8_MATCHER {
        check(
            "utf8 one",
            input,
            parse_matcher_in(ParserMode::Utf8Strict, input.trim_matches(['{', '}'])).map(|p| p.matchers),
            want,
        );
    }
}

#[test]
fn classic_parser_follows_alertmanagers_table() {
    for (input, want) in CLASSIC_MATCHERS {
        check("classic", input, parse_matchers_in(ParserMode::Classic, input).map(|p| p.matchers), want);
    }
}

#[test]
fn default_mode_follows_alertmanagers_fallback_table() {
    for (input, want) in FALLBACK_MATCHERS {
        check("fallback", input, parse_matchers(input), want);
    }
    for (input, want) in FALLBACK_MATCHER {
        check("fallback one", input, parse_matcher_in(ParserMode::Fallback, input).map(|p| p.matchers), want);
    }
    // Braces are not part of a single matcher in the UTF-8 and fallback modes.
    let braces = parse_matcher_in(ParserMode::Fallback, "{foo=bar}").unwrap_err();
    assert_eq!(braces, "unexpected open or close brace: {foo=bar}");
}

/// Regression: unquoted escapes, stray braces and `{}` used to be kept as written or rejected.
#[test]
fn default_mode_reads_the_issues_cases_as_alertmanager_does() {
    let cases: &[(&str, Want, bool)] = &[
        (r"{foo=bar\n}", M(&[("=", "foo", "bar\n")]), true),
        (r"{foo=bar\\}", M(&[("=", "foo", r"bar\")]), true),
        ("{foo=bar}}", M(&[("=", "foo", "bar}")]), true),
        ("{foo=}", M(&[("=", "foo", "")]), true),
        ("{foo=", M(&[("=", "foo", "")]), true),
        ("{}", M(&[]), false),
        ("", M(&[]), false),
        // Quoted names only the UTF-8 parser reads: its escapes apply.
        (r#"{"foo"="\xf0\x9f\x99\x82"}"#, M(&[("=", "foo", "🙂")]), false),
        (r#"{"foo"="\U0001f642"}"#, M(&[("=", "foo", "🙂")]), false),
        // Both parsers accept, and read differently: the classic reading wins, with a warning.
        (r#"foo="\U0001f642""#, M(&[("=", "foo", r"\U0001f642")]), true),
        // Only the classic parser accepts `\d` in a quoted value: it is kept for the regex.
        (r#"foo=~"\d+""#, M(&[("=~", "foo", r"\d+")]), true),
        // What both reject.
        (r#"{"foo"=~"\d+"}"#, AnyError, false),
        (r#"{"foo"="\xff"}"#, AnyError, false),
        ("foo", AnyError, false),
    ];
    for (input, want, warns) in cases {
        let parsed = parse_matchers_in(ParserMode::Fallback, input);
        let warning = parsed.as_ref().ok().and_then(|p| p.warning.clone());
        assert_eq!(warning.is_some(), *warns, "{input:?}: warning {warning:?}");
        check("issue", input, parsed.map(|p| p.matchers), want);
    }
}

/// A matcher config that relies on the classic fallback loads, matches as Alertmanager would,
/// and `check-config` and the reload log say so.
#[test]
fn config_warns_when_a_matcher_relies_on_the_classic_parser() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("amrelay.yml");
    std::fs::write(
        &path,
        "receivers:\n  - name: r\n    url: http://127.0.0.1:9/\n    matchers: ['{foo=bar\\n}', 'severity=\"critical\"']\n",
    )
    .unwrap();
    let config = amrelay::config::load(&path, &amrelay::config::Environment::default()).expect("the config is valid");
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    let warning = &config.warnings[0];
    assert_eq!(warning.field, "receivers[0].matchers[0]");
    assert!(warning.message.contains("classic matcher parser"), "{}", warning.message);
    assert!(warning.message.contains(r#"{foo="bar\n"}"#), "{}", warning.message);
}
