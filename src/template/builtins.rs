//! minijinja's builtin filters that can make a large value from small input, or that print a
//! list into text, registered again under their own names behind the checks of
//! [`super::limits`]: the same filters, the same arguments, the same results within the limit.
//!
//! minijinja 3 already checks most of them against the remaining fuel before allocating, which
//! bounds a render to [`limits::FUEL_BYTES`]; these wrappers add the per-value limit
//! ([`limits::MAX_VALUE_BYTES`]) and the printed-size check, which fuel does not cover (a
//! string argument given a list is printed before the filter runs).

use minijinja::value::{Kwargs, Rest, StringInput, ValueOrKwargs, from_args};
use minijinja::{AutoEscape, Environment, Error, State, Value, filters, tests};

use super::limits::{self, Style, ensure, ensure_items, ensure_printed, text};

/// Registers the wrappers over the builtins of the same names.
pub(super) fn register(env: &mut Environment<'static>) {
    env.add_filter("upper", upper);
    env.add_filter("lower", lower);
    env.add_filter("capitalize", capitalize);
    env.add_filter("title", title);
    env.add_filter("trim", trim);
    env.add_filter("safe", safe);
    env.add_filter("replace", replace);
    env.add_filter("indent", indent);
    env.add_filter("join", join);
    env.add_filter("split", split);
    env.add_filter("lines", lines);
    env.add_filter("format", format);
    env.add_filter("tojson", tojson);
    env.add_filter("pprint", pprint);
    env.add_filter("string", string);
    env.add_filter("list", list);
    env.add_filter("escape", escape);
    env.add_filter("e", escape);
    env.add_test("startingwith", |v: &Value, other: &Value| -> Result<bool, Error> {
        Ok(tests::is_startingwith(text("startingwith", v)?, text("startingwith", other)?))
    });
    env.add_test("endingwith", |v: &Value, other: &Value| -> Result<bool, Error> {
        Ok(tests::is_endingwith(text("endingwith", v)?, text("endingwith", other)?))
    });
}

/// The argument as minijinja's `StringInput`, once its printed size is known to fit.
fn string_input<'a>(what: &str, state: &State, value: &'a Value) -> Result<StringInput<'a>, Error> {
    text(what, value)?;
    StringInput::new(state, value)
}

/// A builtin's result, refused over the limit (its allocation was bounded by fuel).
fn checked(what: &str, value: Value) -> Result<Value, Error> {
    ensure(what, limits::size_of_value(&value)).map(|()| value)
}

fn upper(state: &State, value: &Value) -> Result<Value, Error> {
    let value = string_input("upper", state, value)?;
    ensure("upper", limits::cased_size(value.as_str()))?;
    Ok(filters::upper(value))
}

fn lower(state: &State, value: &Value) -> Result<Value, Error> {
    let value = string_input("lower", state, value)?;
    ensure("lower", limits::cased_size(value.as_str()))?;
    Ok(filters::lower(value))
}

fn capitalize(state: &State, value: &Value) -> Result<Value, Error> {
    let value = string_input("capitalize", state, value)?;
    ensure("capitalize", limits::cased_size(value.as_str()))?;
    Ok(filters::capitalize(value))
}

fn title(value: &Value) -> Result<String, Error> {
    let value = text("title", value)?;
    ensure("title", limits::cased_size(&value))?;
    Ok(filters::title(value))
}

fn trim(state: &State, value: &Value, chars: Option<&Value>) -> Result<Value, Error> {
    let chars = chars.map(|c| text("trim", c)).transpose()?;
    Ok(filters::trim(string_input("trim", state, value)?, chars))
}

fn safe(value: &Value) -> Result<Value, Error> {
    Ok(filters::safe(text("safe", value)?.into_owned()))
}

/// `replace(from, to, count=None)`, as minijinja's, with the result's size computed first.
fn replace(state: &mut State, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let args = args.into_values();
    let (value, from, to, count, kwargs): (&Value, &Value, &Value, Option<i64>, Kwargs) = from_args(&args)?;
    let count = match count {
        Some(count) => Some(count),
        None => kwargs.get::<Option<i64>>("count")?,
    };
    kwargs.assert_all_used()?;
    let count = count.and_then(|c| usize::try_from(c).ok()).unwrap_or(usize::MAX);
    let (value, from, to) = (
        string_input("replace", state, value)?,
        string_input("replace", state, from)?,
        string_input("replace", state, to)?,
    );
    let safety_aware =
        !matches!(state.auto_escape(), AutoEscape::None) && (value.is_safe() || from.is_safe() || to.is_safe());
    if safety_aware {
        // Escaping the inputs at most sextuples them.
        ensure("replace", value.as_str().len().saturating_add(to.as_str().len()).saturating_mul(6))?;
        let (text, to) = (value.format(state)?.into_owned(), to.format(state)?.into_owned());
        ensure("replace", replaced_size(&text, from.as_str(), &to, count))?;
        return Ok(Value::from_safe_string(text.replacen(from.as_str(), &to, count)));
    }
    let text = value.as_str();
    ensure("replace", replaced_size(text, from.as_str(), to.as_str(), count))?;
    Ok(Value::from(text.replacen(from.as_str(), to.as_str(), count)))
}

/// The size of `text` with at most `count` matches of `from` replaced by `to`.
fn replaced_size(text: &str, from: &str, to: &str, count: usize) -> usize {
    let Some(growth) = to.len().checked_sub(from.len()).filter(|g| *g > 0) else {
        return text.len();
    };
    let matches = if from.is_empty() { text.chars().count() + 1 } else { text.matches(from).count() };
    text.len().saturating_add(matches.min(count).saturating_mul(growth))
}

/// `indent(width=4, first=false, blank=false)`, as minijinja's, with the result's size first.
fn indent(state: &State, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    let values = args.into_values();
    let (value, width, first, blank, kwargs): (&Value, Option<usize>, Option<bool>, Option<bool>, Kwargs) =
        from_args(&values)?;
    let width = match width {
        Some(width) => width,
        None => kwargs.get::<Option<usize>>("width")?.unwrap_or(4),
    };
    let value = string_input("indent", state, value)?;
    let lines = memchr::memchr_iter(b'\n', value.as_str().as_bytes()).count() + 1;
    ensure("indent", width.saturating_mul(lines).saturating_add(value.as_str().len()))?;
    filters::indent(value, Some(width), first, blank, kwargs)
}

/// `join(joiner="", attribute=None)`, as minijinja's, refused when the joined text could
/// exceed the limit (counted item by item, so a lazily repeated list stops early).
fn join(
    state: &mut State,
    value: &Value,
    joiner: Option<&Value>,
    attribute: Option<&str>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let joiner = joiner.map(|j| string_input("join", state, j)).transpose()?;
    let sep = joiner.as_ref().map_or(0, |j| j.as_str().len());
    let path = attribute.map(str::to_owned).or_else(|| kwargs.peek::<Option<String>>("attribute").ok().flatten());
    if let Ok(items) = value.try_iter() {
        let mut size = 0usize;
        for (index, item) in items.enumerate() {
            ensure_items("join", index)?;
            let item = match &path {
                Some(path) => attribute_of(item, path),
                None => item,
            };
            size = size.saturating_add(if index > 0 { sep } else { 0 });
            size = size.saturating_add(match item.as_str() {
                Some(s) => s.len(),
                None => printed(&item)?,
            });
            ensure("join", size)?;
        }
    }
    checked("join", filters::join(state, value, joiner, attribute, kwargs)?)
}

/// `item.a.b` (or `item.a.0`) for `attribute="a.b"`, as minijinja's `join` looks it up.
fn attribute_of(item: Value, path: &str) -> Value {
    path.split('.').fold(item, |value, part| match part.parse::<i64>() {
        Ok(index) => value.get_item(&Value::from(index)).unwrap_or_default(),
        Err(_) => value.get_attr(part).unwrap_or_default(),
    })
}

/// A bound of what `value` prints, refused over the limit.
fn printed(value: &Value) -> Result<usize, Error> {
    ensure_printed("join", value, Style { json: false, indent: 0 })?;
    Ok(value.to_string().len())
}

/// `split(sep=None, maxsplits=None)`: the pieces are counted before the list is made.
fn split(value: &Value, sep: Option<&Value>, maxsplits: Option<i64>) -> Result<Value, Error> {
    let string = text("split", value)?;
    let sep = sep.map(|s| text("split", s)).transpose()?;
    let pieces = match sep.as_deref() {
        Some("") | None => string.len() / 2 + 1,
        Some(sep) => string.matches(sep).count() + 1,
    };
    ensure_items("split", pieces)?;
    // A string is passed as it is, so that a safe one gives safe pieces, as minijinja's does.
    let value = if value.as_str().is_some() { value.clone() } else { Value::from(string.as_ref()) };
    filters::split(&value, sep.map(|s| s.as_ref().into()), maxsplits)
}

/// `lines`: the lines are counted before the list is made.
fn lines(value: &Value) -> Result<Value, Error> {
    let string = text("lines", value)?;
    ensure_items("lines", memchr::memchr_iter(b'\n', string.as_bytes()).count() + 1)?;
    filters::lines(value)
}

fn format(state: &mut State, format: &Value, args: Rest<ValueOrKwargs>) -> Result<Value, Error> {
    // Widths (`%99999999s`) are checked against the fuel before formatting; lists printed by
    // `%s` are checked here.
    limits::input("format", format.as_str().unwrap_or(""))?;
    let mut size = 0usize;
    for arg in args.iter() {
        size = size.saturating_add(text("format", arg)?.len());
        ensure("format", size)?;
    }
    checked("format", filters::format(state, format, args)?)
}

fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let width = match &indent {
        Some(v) => v.as_usize().unwrap_or(2),
        None => kwargs.peek::<Option<usize>>("indent").ok().flatten().unwrap_or(2),
    };
    ensure_printed("tojson", value, Style { json: true, indent: width })?;
    checked("tojson", filters::tojson(value, indent, kwargs)?)
}

fn pprint(value: &Value) -> Result<String, Error> {
    ensure_printed("pprint", value, Style { json: false, indent: 4 })?;
    let text = filters::pprint(value);
    ensure("pprint", text.len()).map(|()| text)
}

fn string(state: &State, value: &Value) -> Result<Value, Error> {
    ensure_printed("string", value, Style { json: false, indent: 0 })?;
    checked("string", filters::string(state, value)?)
}

fn list(state: &State, value: Value) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        ensure_items("list", s.len())?;
    } else if let Some(n) = value.len() {
        ensure_items("list", n)?;
    }
    checked("list", filters::list(state, value)?)
}

fn escape(state: &mut State, value: &Value) -> Result<Value, Error> {
    // Escaping at most sextuples a character (`\u00XX`, `&quot;`).
    let size = match value.as_str() {
        Some(s) => s.len(),
        None => text("escape", value)?.len(),
    };
    ensure("escape", size.saturating_mul(6))?;
    filters::escape(state, value)
}
