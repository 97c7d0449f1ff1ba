//! Two operators and one function that print a value where minijinja 3.1 checks nothing
//! first, rewritten or replaced so that they check.
//!
//! minijinja formats a list or map operand of `~` straight into a new string (and the left
//! operand of `in` when the right one is a string, and everything `debug()` shows), charging
//! fuel only once it is built. A list holds references, so its printed form can be far larger
//! than its memory: `"" ~ (["x" * 1000] * 1000000)` asked for a gigabyte in one step and the
//! process aborted. No engine hook reaches those operators, so each `a ~ b` of a template is
//! rewritten, once, at load, into `((a) | __amrelay_concat((b)))` — the same text, safe-string
//! and auto-escape rules, after the printed-size check of [`limits::ensure_printed`] — and the
//! left operand of each `in` into `((a) | __amrelay_checked)`; `debug()` is replaced by one
//! that checks what it prints. The rewrite uses minijinja's parser (`unstable_machinery`, hence
//! the exact version in Cargo.toml) and adds characters within lines, never lines, so a
//! run-time error names the same line; compile errors are reported on the source as written.
//! (A chained comparison holding `in`, `a < b in c`, is left as written: minijinja's spans do
//! not delimit its operands.)

use std::borrow::Cow;
use std::collections::HashMap;

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{parse, tokenize};
use minijinja::{AutoEscape, Environment, Error, State, Value};

use super::limits::{self, ensure};

/// The filter `~` becomes.
const FILTER: &str = "__amrelay_concat";

/// The filter around the left operand of `in`: minijinja prints it when the right one is a
/// string (`[s] * 1000000 in "abc"`).
const CHECKED: &str = "__amrelay_checked";

/// Registers the filters the rewritten templates call, and a `debug()` that prints only what
/// fits (minijinja's prints every variable in full).
pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter(FILTER, concat);
    env.add_filter(CHECKED, |value: Value| -> Result<Value, Error> {
        if value.as_object().is_some() {
            limits::text("in", &value)?;
        }
        Ok(value)
    });
    env.add_function("debug", debug);
}

/// minijinja's `debug()`, after the printed-size check of what it prints.
fn debug(state: &State, args: minijinja::value::Rest<Value>) -> Result<String, Error> {
    let style = limits::Style { json: false, indent: 4 };
    if args.is_empty() {
        for name in state.known_variables() {
            if let Some(value) = state.lookup(&name) {
                limits::ensure_printed("debug", &value, style)?;
            }
        }
        return Ok(format!("{state:#?}"));
    }
    for value in args.iter() {
        limits::ensure_printed("debug", value, style)?;
    }
    Ok(minijinja::functions::debug(state, args))
}

/// `left ~ right` with its operands checked first.
fn concat(state: &mut State, left: &Value, right: &Value) -> Result<Value, Error> {
    let mut size = 0usize;
    for value in [left, right] {
        size = size.saturating_add(match value.as_str() {
            Some(s) => s.len(),
            None => limits::text("~", value)?.len(),
        });
    }
    ensure("~", size)?;
    if !matches!(state.auto_escape(), AutoEscape::None) && left.is_safe() != right.is_safe() {
        // minijinja's markup concatenation: the unsafe side is escaped, the result is safe.
        let mut out = String::with_capacity(size);
        for value in [left, right] {
            let escaped = if value.is_safe() { value.clone() } else { minijinja::filters::escape(state, value)? };
            out.push_str(escaped.as_str().unwrap_or_default());
        }
        return Ok(Value::from_safe_string(out));
    }
    let text = format!("{left}{right}");
    Ok(if left.is_safe() && right.is_safe() { Value::from_safe_string(text) } else { Value::from(text) })
}

/// `source` with every `~` (and left operand of `in`) rewritten; the source itself when it has none (or, which the
/// compile check before this rules out, does not parse).
pub(super) fn rewrite(source: &str) -> Cow<'_, str> {
    if !source.contains('~') && !source.contains("in") {
        return Cow::Borrowed(source);
    }
    let Ok(ast) = parse(source, "<rewrite>", Default::default()) else {
        return Cow::Borrowed(source);
    };
    let mut found = Vec::new();
    stmt(&ast, &mut found);
    let token_ends: HashMap<usize, usize> = tokenize(source, false, Default::default())
        .map_while(Result::ok)
        .map(|(_, span)| (span.start_offset as usize, span.end_offset as usize))
        .collect();
    let mut nodes: Vec<Node> = found.into_iter().filter_map(|f| f.locate(source, &token_ends)).collect();
    if nodes.is_empty() {
        return Cow::Borrowed(source);
    }
    // Outermost first; a check before a `~` of the same range, so that it wraps it.
    nodes.sort_by_key(|n| (n.start, std::cmp::Reverse(n.end), n.tilde.is_some()));
    Cow::Owned(splice(source, &nodes, 0, source.len()))
}

/// An operator the walk finds, by the spans of its expression and of its operands.
#[derive(Debug, Clone, Copy)]
struct Found {
    concat: bool,
    start: usize,
    left_end: usize,
    right_start: usize,
    end: usize,
}

/// One `a ~ b` in the source: its byte range and where its `~` is; or (`tilde` = `None`) the
/// left operand of an `in`, to wrap in the check.
#[derive(Debug, Clone, Copy)]
struct Node {
    start: usize,
    tilde: Option<usize>,
    end: usize,
}

impl Found {
    /// Where the operator is, found in the text between the operands; `None` when it is not
    /// where the spans say (never seen: a safety net that leaves the text as written).
    fn locate(mut self, source: &str, token_ends: &HashMap<usize, usize>) -> Option<Node> {
        if !self.concat {
            // minijinja's span of a comparison starts at the token before it (`{{`, `if`,
            // `(`, `and`…): the needle starts after that token.
            self.start = *token_ends.get(&self.start)?;
            self.start += source.get(self.start..)?.len() - source[self.start..].trim_start().len();
        }
        let between = source.get(self.left_end..self.right_start)?;
        if self.start > self.left_end || self.end < self.right_start || self.end > source.len() {
            return None;
        }
        if self.concat {
            let tilde = self.left_end + between.find('~')?;
            return Some(Node { start: self.start, tilde: Some(tilde), end: self.end });
        }
        let keyword = keyword(between, "not").or_else(|| keyword(between, "in"))?;
        let end = source[..self.left_end + keyword].trim_end().len().max(self.start);
        Some(Node { start: self.start, tilde: None, end })
    }
}

/// Where `word` stands alone in `text`.
fn keyword(text: &str, word: &str) -> Option<usize> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word)
        .map(|(at, _)| at)
        .find(|&at| !text[..at].ends_with(is_word) && !text[at + word.len()..].starts_with(is_word))
}

/// The text of `start..end` with the outermost nodes inside it rewritten (their operands in
/// turn).
fn splice(source: &str, nodes: &[Node], start: usize, end: usize) -> String {
    let mut out = String::with_capacity(end - start + 32);
    let mut at = start;
    for (index, node) in nodes.iter().enumerate() {
        if node.start < at || node.end > end {
            continue; // inside one already rewritten, or outside this range
        }
        // What this node holds comes after it in the order (outermost first).
        let inner = &nodes[index + 1..];
        out.push_str(&source[at..node.start]);
        out.push_str("((");
        match node.tilde {
            Some(tilde) => {
                out.push_str(&splice(source, inner, node.start, tilde));
                out.push_str(") | ");
                out.push_str(FILTER);
                out.push_str("((");
                out.push_str(&splice(source, inner, tilde + 1, node.end));
                out.push_str(")))");
            }
            None => {
                out.push_str(&splice(source, inner, node.start, node.end));
                out.push_str(") | ");
                out.push_str(CHECKED);
                out.push(')');
            }
        }
        at = node.end;
    }
    out.push_str(&source[at..end]);
    out
}

fn stmts(list: &[Stmt<'_>], nodes: &mut Vec<Found>) {
    list.iter().for_each(|s| stmt(s, nodes));
}

fn stmt(s: &Stmt<'_>, nodes: &mut Vec<Found>) {
    match s {
        Stmt::Template(t) => stmts(&t.children, nodes),
        Stmt::EmitExpr(e) => expr(&e.expr, nodes),
        Stmt::ForLoop(f) => {
            expr(&f.iter, nodes);
            f.filter_expr.iter().for_each(|e| expr(e, nodes));
            stmts(&f.body, nodes);
            stmts(&f.else_body, nodes);
        }
        Stmt::IfCond(i) => {
            expr(&i.expr, nodes);
            stmts(&i.true_body, nodes);
            stmts(&i.false_body, nodes);
        }
        Stmt::WithBlock(w) => {
            w.assignments.iter().for_each(|(_, e)| expr(e, nodes));
            stmts(&w.body, nodes);
        }
        Stmt::Set(s) => expr(&s.expr, nodes),
        Stmt::SetBlock(s) => {
            s.filter.iter().for_each(|e| expr(e, nodes));
            stmts(&s.body, nodes);
        }
        Stmt::AutoEscape(a) => stmts(&a.body, nodes),
        Stmt::FilterBlock(f) => {
            expr(&f.filter, nodes);
            stmts(&f.body, nodes);
        }
        Stmt::Block(b) => stmts(&b.body, nodes),
        Stmt::Macro(m) => {
            m.defaults.iter().for_each(|e| expr(e, nodes));
            stmts(&m.body, nodes);
        }
        Stmt::CallBlock(c) => {
            expr(&c.call.expr, nodes);
            args(&c.call.args, nodes);
            c.macro_decl.defaults.iter().for_each(|e| expr(e, nodes));
            stmts(&c.macro_decl.body, nodes);
        }
        Stmt::Do(d) => {
            expr(&d.call.expr, nodes);
            args(&d.call.args, nodes);
        }
        // Names of other templates, raw text: no `~` to check there.
        _ => {}
    }
}

fn args(list: &[CallArg<'_>], nodes: &mut Vec<Found>) {
    for arg in list {
        match arg {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => expr(e, nodes),
        }
    }
}

fn expr(e: &Expr<'_>, nodes: &mut Vec<Found>) {
    match e {
        Expr::Var(_) | Expr::Const(_) => {}
        Expr::Slice(s) => {
            expr(&s.expr, nodes);
            [&s.start, &s.stop, &s.step].into_iter().flatten().for_each(|e| expr(e, nodes));
        }
        Expr::UnaryOp(u) => expr(&u.expr, nodes),
        Expr::BinOp(b) => {
            expr(&b.left, nodes);
            expr(&b.right, nodes);
            let (span, left, right) = (b.span(), b.left.span(), b.right.span());
            if matches!(b.op, BinOpKind::Concat | BinOpKind::In) {
                // `a ~ b`; `a in b` and `a not in b`, whose needle is what comes before the
                // keyword.
                nodes.push(Found {
                    concat: matches!(b.op, BinOpKind::Concat),
                    start: span.start_offset as usize,
                    left_end: left.end_offset as usize,
                    right_start: right.start_offset as usize,
                    end: span.end_offset as usize,
                });
            }
        }
        Expr::Compare(c) => {
            // A chain (`a < b in c`): its operands' spans are not reliable enough to rewrite.
            expr(&c.expr, nodes);
            c.ops.iter().for_each(|op| expr(&op.expr, nodes));
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr, nodes);
            expr(&i.true_expr, nodes);
            i.false_expr.iter().for_each(|e| expr(e, nodes));
        }
        Expr::Filter(f) => {
            f.expr.iter().for_each(|e| expr(e, nodes));
            args(&f.args, nodes);
        }
        Expr::Test(t) => {
            expr(&t.expr, nodes);
            args(&t.args, nodes);
        }
        Expr::GetAttr(g) => expr(&g.expr, nodes),
        Expr::GetItem(g) => {
            expr(&g.expr, nodes);
            expr(&g.subscript_expr, nodes);
        }
        Expr::Call(c) => {
            expr(&c.expr, nodes);
            args(&c.args, nodes);
        }
        Expr::List(l) => l.items.iter().for_each(|e| expr(e, nodes)),
        Expr::Tuple(t) => t.items.iter().for_each(|e| expr(e, nodes)),
        Expr::Map(m) => m.keys.iter().chain(&m.values).for_each(|e| expr(e, nodes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tilde_becomes_the_filter_and_nothing_else_moves() {
        assert_eq!(rewrite("{{ a ~ b }}"), "{{ ((a ) | __amrelay_concat(( b))) }}");
        assert_eq!(
            rewrite("{{ (a ~ 'x~y') | upper }}\n{{ a ~ b ~ c }}"),
            "{{ (((a ) | __amrelay_concat(( 'x~y')))) | upper }}\n{{ ((((a ) | __amrelay_concat(( b))) ) | __amrelay_concat(( c))) }}"
        );
        assert_eq!(rewrite("no tilde {{ a }}"), "no tilde {{ a }}");
        assert_eq!(
            rewrite("{{ 'x' ~ a in b }}"),
            "{{ (((('x' ) | __amrelay_concat(( a)))) | __amrelay_checked) in b }}"
        );
        assert_eq!(rewrite("{% raw %}{{ a ~ b }}{% endraw %}"), "{% raw %}{{ a ~ b }}{% endraw %}");
    }

    /// The rewritten templates render what minijinja renders, in text and in JSON auto-escaping.
    #[test]
    fn the_rewrite_renders_what_minijinja_renders() {
        let sources = [
            "{{ 'a' ~ 1 ~ none ~ missing ~ [1, 'b'] ~ {'k': true} }}",
            "{% set x = 'v' %}{% macro m(p='d' ~ x) %}{{ p ~ '!' }}{% endmacro %}{{ m() ~ m('q' ~ x) }}",
            "{% for i in range(3) if ('n' ~ i) != 'n1' %}{{ i ~ ',' }}{% endfor %}{{ ('a' ~ 'b') is startingwith 'a' }}",
            "{{ ('<' | safe) ~ '<' }} {{ '\"' ~ 'x' }} {{ ((\"x\" * 3) ~ 'y')[1:] }}",
            "{{ 'a' in 'cat' ~ 'x' }} {{ 1 in [1] }} {{ 'z' not in ['a'] }} {{ 0 < 1 in [true] }} {{ debug(1) }}",
            "{% if 'a' in 'abc' and not 'z' in 'abc' %}y{% endif %}{{ ('a' | upper) in 'ABC' }}{{ dict(k=('a'~'b') in ['ab']) }}",
            "{%- set ns = namespace(v='') %}{% for x in ['a', 'b'] if x ~ '' in 'ab' %}{% set ns.v = ns.v ~ x %}{% endfor %}{{ ns.v }}",
            "{{ range(3) | map('string') | select('in', ['1']) | list }}{{ (1 ~ 2) ~ (3 ~ (4 ~ 5)) }}",
        ];
        for json in [false, true] {
            let mut plain = Environment::new();
            let mut ours = Environment::new();
            register(&mut ours);
            for env in [&mut plain, &mut ours] {
                env.set_auto_escape_callback(move |_| if json { AutoEscape::Json } else { AutoEscape::None });
            }
            for source in sources {
                let want = plain.render_str(source, ()).unwrap();
                let got = ours.render_str(&rewrite(source), ()).unwrap();
                assert_eq!(got, want, "{source} (json: {json})");
            }
        }
    }

    /// Regression: `~` printed a lazily repeated list into a gigabyte before any check.
    #[test]
    fn a_huge_list_printed_by_tilde_is_refused_before_it_is_printed() {
        let mut env = Environment::new();
        env.set_fuel(Some(super::super::FUEL));
        register(&mut env);
        for source in [
            r#"{{ ("" ~ (["x" * 1000] * 1000000)) | length }}"#,
            r#"{{ (["x" * 1000] * 1000000) in "abc" }}"#,
            r#"{{ (["x" * 1000] * 1000000) not in "abc" }}"#,
            r#"{% set l = ["x" * 1000] * 1000000 %}{{ debug() | length }}"#,
            r#"{{ debug(["x" * 1000] * 1000000) | length }}"#,
        ] {
            let error = env.render_str(&rewrite(source), ()).unwrap_err();
            assert!(error.to_string().contains("over the limit"), "{source}: {error}");
        }
    }
}
