//! Alertmanager's UTF-8 matcher parser (`matcher/parse`, the default since 0.27), ported state
//! for state so that it accepts, rejects and words its errors exactly as Alertmanager does.
//!
//! Grammar: an optional `{`, matchers separated by commas (a trailing comma allowed), the
//! matching `}`. Names and values are either double-quoted Go string literals (`\n`, `\t`,
//! `\"`, `\\`, `\xHH`, `\uHHHH`, `\UHHHHHHHH`, octal; anything else such as `\d` is an error, and
//! so is a result that is not valid UTF-8) or unquoted runs of any character except whitespace
//! and ``{}!=~,\"'` ``. Error positions are `column_start:column_end` in characters.

use super::matcher::{MatchType, Matcher};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Eof,
    OpenBrace,
    CloseBrace,
    Comma,
    Equals,
    NotEquals,
    Matches,
    NotMatches,
    Quoted,
    Unquoted,
}

#[derive(Debug, Clone, Copy, Default)]
struct Position {
    offset_start: usize,
    offset_end: usize,
    column_start: usize,
    column_end: usize,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    value: &'a str,
    at: Position,
}

impl Token<'_> {
    fn eof() -> Self {
        Token { kind: Kind::Eof, value: "", at: Position::default() }
    }

    fn unquote(&self) -> Result<String, ()> {
        if self.kind == Kind::Quoted { go_unquote(self.value) } else { Ok(self.value.to_owned()) }
    }
}

fn is_reserved(c: char) -> bool {
    c.is_whitespace() || "{}!=~,\\\"'`".contains(c)
}

/// The lexer's state, as in Go: `start`/`pos` are byte offsets, `column`/`cols` characters.
#[derive(Clone)]
struct Lexer<'a> {
    input: &'a str,
    err: Option<String>,
    start: usize,
    pos: usize,
    width: usize,
    column: usize,
    cols: usize,
}

impl<'a> Lexer<'a> {
    fn scan(&mut self) -> Result<Token<'a>, String> {
        if let Some(e) = &self.err {
            return Err(e.clone());
        }
        while let Some(c) = self.next() {
            let result = match c {
                '{' => Ok(self.emit(Kind::OpenBrace)),
                '}' => Ok(self.emit(Kind::CloseBrace)),
                ',' => Ok(self.emit(Kind::Comma)),
                '=' | '!' => {
                    self.rewind();
                    self.scan_operator()
                }
                '"' => {
                    self.rewind();
                    self.scan_quoted()
                }
                c if !is_reserved(c) => {
                    self.rewind();
                    Ok(self.scan_unquoted())
                }
                c if c.is_whitespace() => {
                    self.skip();
                    continue;
                }
                _ => {
                    let at = self.position();
                    Err(format!("{}:{}: {}: invalid input", at.column_start, at.column_end, self.slice(at)))
                }
            };
            if let Err(e) = &result {
                self.err = Some(e.clone());
            }
            return result;
        }
        Ok(Token::eof())
    }

    fn slice(&self, at: Position) -> &'a str {
        &self.input[at.offset_start..at.offset_end]
    }

    fn expected(&self, expected: &str) -> String {
        let at = self.position();
        if at.offset_end >= self.input.len() {
            format!("{}:{}: unexpected end of input, expected one of '{expected}'", at.column_start, at.column_end)
        } else {
            format!("{}:{}: {}: expected one of '{expected}'", at.column_start, at.column_end, self.slice(at))
        }
    }

    fn scan_operator(&mut self) -> Result<Token<'a>, String> {
        if self.accept("!") {
            if self.accept("=") {
                return Ok(self.emit(Kind::NotEquals));
            }
            if self.accept("~") {
                return Ok(self.emit(Kind::NotMatches));
            }
            return Err(self.expected("=~"));
        }
        if self.accept("=") {
            if self.accept("~") {
                return Ok(self.emit(Kind::Matches));
            }
            return Ok(self.emit(Kind::Equals));
        }
        Err(self.expected("!="))
    }

    fn scan_quoted(&mut self) -> Result<Token<'a>, String> {
        if !self.accept("\"") {
            return Err(self.expected("\""));
        }
        let mut escaped = false;
        while let Some(c) = self.next() {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                self.rewind();
                break;
            }
        }
        if !self.accept("\"") {
            let at = self.position();
            return Err(format!("{}:{}: {}: missing end \"", at.column_start, at.column_end, self.slice(at)));
        }
        Ok(self.emit(Kind::Quoted))
    }

    fn scan_unquoted(&mut self) -> Token<'a> {
        while let Some(c) = self.next() {
            if is_reserved(c) {
                self.rewind();
                break;
            }
        }
        self.emit(Kind::Unquoted)
    }

    /// The next token without consuming it; a lexing error stays recorded, as in Go.
    fn peek(&mut self) -> Result<Token<'a>, String> {
        let saved = (self.start, self.pos, self.width, self.column, self.cols);
        let result = self.scan();
        (self.start, self.pos, self.width, self.column, self.cols) = saved;
        result
    }

    fn position(&self) -> Position {
        Position { offset_start: self.start, offset_end: self.pos, column_start: self.column, column_end: self.cols }
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.rewind();
                false
            }
        }
    }

    fn emit(&mut self, kind: Kind) -> Token<'a> {
        let token = Token { kind, value: &self.input[self.start..self.pos], at: self.position() };
        self.start = self.pos;
        self.column = self.cols;
        token
    }

    fn next(&mut self) -> Option<char> {
        let Some(c) = self.input[self.pos..].chars().next() else {
            self.width = 0;
            return None;
        };
        self.width = c.len_utf8();
        self.pos += self.width;
        self.cols += 1;
        Some(c)
    }

    fn rewind(&mut self) {
        self.pos -= self.width;
        if self.width > 0 {
            self.cols -= 1;
        }
    }

    fn skip(&mut self) {
        self.start = self.pos;
        self.column = self.cols;
    }
}

/// Why an `expect` failed: the end of the input, or an error message to wrap.
enum Expect {
    Eof,
    Err(String),
}

impl Expect {
    fn wrap(self, context: &str) -> String {
        match self {
            Expect::Eof => format!("end of input: {context}"),
            Expect::Err(e) => format!("{e}: {context}"),
        }
    }
}

#[derive(Clone, Copy)]
enum State {
    OpenBrace,
    CloseBrace,
    Matcher,
    EndOfMatcher,
    Comma,
    Eof,
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    has_open_brace: bool,
    matchers: Vec<Matcher>,
}

impl<'a> Parser<'a> {
    fn expect_peek(&mut self, kinds: &[Kind]) -> Result<Token<'a>, Expect> {
        let token = self.lexer.peek().map_err(Expect::Err)?;
        if token.kind == Kind::Eof {
            return Err(Expect::Eof);
        }
        if !kinds.contains(&token.kind) {
            return Err(Expect::Err(format!(
                "{}:{}: unexpected {}",
                token.at.column_start, token.at.column_end, token.value
            )));
        }
        Ok(token)
    }

    fn expect(&mut self, kinds: &[Kind]) -> Result<Token<'a>, Expect> {
        let token = self.expect_peek(kinds)?;
        self.lexer.scan().expect("a peeked token scans again");
        Ok(token)
    }

    fn step(&mut self, state: State) -> Result<Option<State>, String> {
        match state {
            State::OpenBrace => {
                match self.expect_peek(&[Kind::OpenBrace]) {
                    Ok(_) => {
                        self.lexer.scan().expect("a peeked token scans again");
                        self.has_open_brace = true;
                    }
                    Err(Expect::Eof) => return Ok(Some(State::Eof)),
                    Err(Expect::Err(e)) if self.lexer.err.is_some() => return Err(e),
                    Err(Expect::Err(_)) => {}
                }
                match self.expect_peek(&[Kind::CloseBrace]) {
                    Ok(_) | Err(Expect::Eof) => Ok(Some(State::CloseBrace)),
                    Err(Expect::Err(e)) if self.lexer.err.is_some() => Err(e),
                    Err(Expect::Err(_)) => Ok(Some(State::Matcher)),
                }
            }
            State::CloseBrace => {
                let closed = self.expect(&[Kind::CloseBrace]);
                let column = self.lexer.position().column_end;
                match (self.has_open_brace, closed) {
                    (true, Err(e)) => Err(format!("0:{column}: {}", e.wrap("expected close brace"))),
                    (false, Ok(_)) => Err(format!("0:{column}: }}: expected opening brace")),
                    _ => Ok(Some(State::Eof)),
                }
            }
            State::Matcher => {
                let name = self.expect(&[Kind::Quoted, Kind::Unquoted]).map_err(|e| e.wrap("expected label name"))?;
                let name_text = name.unquote().map_err(|()| invalid(&name))?;
                let op = self
                    .expect(&[Kind::Equals, Kind::NotEquals, Kind::Matches, Kind::NotMatches])
                    .map_err(|e| e.wrap("expected an operator such as '=', '!=', '=~' or '!~'"))?;
                let kind = match op.kind {
                    Kind::Equals => MatchType::Equal,
                    Kind::NotEquals => MatchType::NotEqual,
                    Kind::Matches => MatchType::Regex,
                    _ => MatchType::NotRegex,
                };
                let value = self.expect(&[Kind::Unquoted, Kind::Quoted]).map_err(|e| e.wrap("expected label value"))?;
                let value_text = value.unquote().map_err(|()| invalid(&value))?;
                let matcher = Matcher::new(kind, &name_text, &value_text)
                    .map_err(|e| format!("failed to create matcher: {e}"))?;
                self.matchers.push(matcher);
                Ok(Some(State::EndOfMatcher))
            }
            State::EndOfMatcher => match self.expect_peek(&[Kind::Comma, Kind::CloseBrace]) {
                Ok(t) if t.kind == Kind::Comma => Ok(Some(State::Comma)),
                Ok(_) | Err(Expect::Eof) => Ok(Some(State::CloseBrace)),
                Err(e) => Err(e.wrap("expected a comma or close brace")),
            },
            State::Comma => {
                self.expect(&[Kind::Comma]).map_err(|e| e.wrap("expected a comma"))?;
                match self.expect_peek(&[Kind::CloseBrace, Kind::Unquoted, Kind::Quoted]) {
                    Ok(t) if t.kind == Kind::CloseBrace => Ok(Some(State::CloseBrace)),
                    Ok(_) => Ok(Some(State::Matcher)),
                    Err(Expect::Eof) => Ok(Some(State::CloseBrace)),
                    Err(e) => Err(e.wrap("expected a matcher or close brace after comma")),
                }
            }
            State::Eof => {
                let token = self.lexer.scan().map_err(|e| format!("{e}: expected end of input"))?;
                if token.kind != Kind::Eof {
                    return Err(format!(
                        "{}:{}: {}: expected end of input",
                        token.at.column_start, token.at.column_end, token.value
                    ));
                }
                Ok(None)
            }
        }
    }
}

fn invalid(token: &Token<'_>) -> String {
    format!("{}:{}: {}: invalid input", token.at.column_start, token.at.column_end, token.value)
}

/// Zero or more matchers, as Alertmanager's `parse.Matchers` reads them.
pub fn matchers(input: &str) -> Result<Vec<Matcher>, String> {
    let lexer = Lexer { input, err: None, start: 0, pos: 0, width: 0, column: 0, cols: 0 };
    let mut parser = Parser { lexer, has_open_brace: false, matchers: Vec::new() };
    let mut state = State::OpenBrace;
    while let Some(next) = parser.step(state)? {
        state = next;
    }
    Ok(parser.matchers)
}

/// Go's `strconv.Unquote` for a double-quoted literal, then the UTF-8 check `parse` adds.
fn go_unquote(quoted: &str) -> Result<String, ()> {
    let inner = quoted.strip_prefix('"').and_then(|s| s.strip_suffix('"')).ok_or(())?;
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => return Err(()),
            '\\' => {
                let escape = chars.next().ok_or(())?;
                let mut hex = |digits: usize| -> Result<u32, ()> {
                    let mut value = 0u32;
                    for _ in 0..digits {
                        value = value * 16 + chars.next().and_then(|d| d.to_digit(16)).ok_or(())?;
                    }
                    Ok(value)
                };
                match escape {
                    'a' => out.push(0x07),
                    'b' => out.push(0x08),
                    'f' => out.push(0x0c),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(0x0b),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => out.push(hex(2)? as u8),
                    'u' | 'U' => {
                        let code = hex(if escape == 'u' { 4 } else { 8 })?;
                        let c = char::from_u32(code).ok_or(())?;
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    '0'..='7' => {
                        let mut value = escape.to_digit(8).unwrap_or(0);
                        for _ in 0..2 {
                            value = value * 8 + chars.next().and_then(|d| d.to_digit(8)).ok_or(())?;
                        }
                        out.push(u8::try_from(value).map_err(|_| ())?);
                    }
                    _ => return Err(()),
                }
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquotes_as_go_does() {
        assert_eq!(go_unquote(r#""\xf0\x9f\x99\x82""#), Ok("🙂".into()));
        assert_eq!(go_unquote(r#""\U0001f642\u00e9\101""#), Ok("🙂éA".into()));
        assert_eq!(go_unquote(r#""\d""#), Err(()));
        assert_eq!(go_unquote(r#""\'""#), Err(()));
        assert_eq!(go_unquote(r#""\xf0\x9f""#), Err(()));
        assert_eq!(go_unquote(r#""\ud800""#), Err(()));
        assert_eq!(go_unquote("\"a\nb\""), Err(()));
    }
}
