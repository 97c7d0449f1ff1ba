//! The `~` operator, rewritten into a checked filter before a template is compiled.
//!
//! minijinja 3.1 formats a list or map operand of `~` straight into a new string, and charges
//! fuel only once it is built. A list holds references, so its printed form can be far larger
//! than its memory: `"" ~ (["x" * 1000] * 1000000)` asked for a gigabyte in one step and the
//! process aborted. No engine hook reaches that operator, so each `a ~ b` of a template is
//! rewritten, once, at load, into `((a) | __amrelay_concat((b)))`: the same result — the same
//! text, safe-string and auto-escape rules — after the printed-size check of
//! [`limits::ensure_printed`]. The rewrite adds characters within lines, never lines, so a
//! run-time error names the same line; compile errors are reported on the source as written.

use std::borrow::Cow;

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::parse;
use minijinja::{AutoEscape, Environment, Error, State, Value};

use super::limits::{self, ensure};

/// The filter `~` becomes.
const FILTER: &str = "__amrelay_concat";

/// Registers the filter the rewritten templates call.
pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter(FILTER, concat);
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

/// `source` with every `~` rewritten; the source itself when it has none (or, which the
/// compile check before this rules out, does not parse).
pub(super) fn rewrite(source: &str) -> Cow<'_, str> {
    if !source.contains('~') {
        return Cow::Borrowed(source);
    }
    let Ok(ast) = parse(source, "<rewrite>", Default::default()) else {
        return Cow::Borrowed(source);
    };
    let mut nodes = Vec::new();
    stmt(&ast, &mut nodes);
    // A node whose `~` is not where its spans say is left as written (never seen: a safety net).
    nodes.retain_mut(|node| {
        let between = source.get(node.tilde..node.right.max(node.tilde)).unwrap_or("");
        match between.find('~') {
            Some(at) if node.start <= node.tilde && node.right <= node.end && node.end <= source.len() => {
                node.tilde += at;
                true
            }
            _ => false,
        }
    });
    if nodes.is_empty() {
        return Cow::Borrowed(source);
    }
    nodes.sort_by_key(|n| (n.start, std::cmp::Reverse(n.end)));
    Cow::Owned(splice(source, &nodes, 0, source.len()))
}

/// One `a ~ b` in the source: its byte range and where its `~` is.
#[derive(Debug, Clone, Copy)]
struct Node {
    start: usize,
    tilde: usize,
    end: usize,
    /// Where the right operand starts (only while the `~` is looked for).
    right: usize,
}

/// The text of `start..end` with the outermost nodes inside it rewritten (their operands in
/// turn).
fn splice(source: &str, nodes: &[Node], start: usize, end: usize) -> String {
    let mut out = String::with_capacity(end - start + 32);
    let mut at = start;
    for node in nodes {
        if node.start < at || node.end > end {
            continue; // inside one already rewritten, or outside this range
        }
        out.push_str(&source[at..node.start]);
        out.push_str("((");
        out.push_str(&splice(source, nodes, node.start, node.tilde));
        out.push_str(") | ");
        out.push_str(FILTER);
        out.push_str("((");
        out.push_str(&splice(source, nodes, node.tilde + 1, node.end));
        out.push_str(")))");
        at = node.end;
    }
    out.push_str(&source[at..end]);
    out
}

fn stmts(list: &[Stmt<'_>], nodes: &mut Vec<Node>) {
    list.iter().for_each(|s| stmt(s, nodes));
}

fn stmt(s: &Stmt<'_>, nodes: &mut Vec<Node>) {
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

fn args(list: &[CallArg<'_>], nodes: &mut Vec<Node>) {
    for arg in list {
        match arg {
            CallArg::Pos(e) | CallArg::Kwarg(_, e) | CallArg::PosSplat(e) | CallArg::KwargSplat(e) => expr(e, nodes),
        }
    }
}

fn expr(e: &Expr<'_>, nodes: &mut Vec<Node>) {
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
            if matches!(b.op, BinOpKind::Concat) {
                let (span, left, right) = (b.span(), b.left.span(), b.right.span());
                // The `~` itself is found between the operands once the source is at hand.
                nodes.push(Node {
                    start: span.start_offset as usize,
                    tilde: left.end_offset as usize,
                    end: span.end_offset as usize,
                    right: right.start_offset as usize,
                });
            }
        }
        Expr::Compare(c) => {
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
        let source = r#"{{ ("" ~ (["x" * 1000] * 1000000)) | length }}"#;
        let error = env.render_str(&rewrite(source), ()).unwrap_err();
        assert!(error.to_string().contains("over the limit"), "{error}");
    }
}
