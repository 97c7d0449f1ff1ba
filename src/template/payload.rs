//! `receivers[].payload`: a YAML mapping whose string leaves (and keys) are templates, rendered
//! into JSON that is valid whatever the labels hold.
//!
//! A leaf is literal text, a text template (its output becomes one JSON string), or one single
//! expression (`'{{ alerts | toJson }}'`, `'{{ truncatedAlerts }}'`), whose value is inserted
//! with its JSON type — Alertmanager 0.32's `payload`, so a user can carry its structure over.

use std::collections::HashSet;
use std::io::Write;

use minijinja::{Environment, Value};

use super::{Bounded, RenderError};

/// A compiled `payload` node.
#[derive(Debug, Clone)]
pub enum PayloadNode {
    Map(Vec<(Leaf, PayloadNode)>),
    Seq(Vec<PayloadNode>),
    Leaf(Leaf),
    /// A number, boolean or null written in the YAML: copied as is.
    Literal(serde_json::Value),
}

/// A string leaf or key.
#[derive(Debug, Clone)]
pub enum Leaf {
    /// No template syntax: the text itself.
    Text(String),
    /// A template (by name) whose output is one JSON string.
    Template(String),
    /// A single expression (by template name) whose value is inserted as JSON.
    Value(String),
}

/// The expression of a leaf that is exactly one `{{ … }}`, without a trailing `| toJson` (the
/// value is inserted as JSON anyway).
pub(super) fn single_expression(source: &str) -> Option<String> {
    let inner = source.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") || inner.contains("{%") || inner.contains("{#") {
        return None;
    }
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner).trim();
    let stripped = ["toJson", "tojson"].iter().find_map(|f| {
        let without = inner.strip_suffix(f)?.trim_end();
        without.strip_suffix('|').map(str::trim_end)
    });
    let expression = stripped.unwrap_or(inner);
    (!expression.is_empty()).then(|| expression.to_owned())
}

impl PayloadNode {
    /// Writes the node as JSON.
    pub(super) fn render(
        &self,
        env: &Environment<'static>,
        context: &Value,
        out: &mut Bounded,
    ) -> Result<(), RenderError> {
        match self {
            PayloadNode::Map(entries) => {
                put(out, b"{")?;
                let mut seen = HashSet::with_capacity(entries.len());
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        put(out, b",")?;
                    }
                    let (key, _) = render_key(env, context, key)?;
                    if !seen.insert(key.clone()) {
                        return Err(duplicate(&key));
                    }
                    put_json_string(out, &key)?;
                    put(out, b":")?;
                    value.render(env, context, out)?;
                }
                put(out, b"}")
            }
            PayloadNode::Seq(items) => {
                put(out, b"[")?;
                for (index, item) in items.iter().enumerate() {
                    if index > 0 {
                        put(out, b",")?;
                    }
                    item.render(env, context, out)?;
                }
                put(out, b"]")
            }
            PayloadNode::Leaf(Leaf::Text(text)) => put_json_string(out, text),
            PayloadNode::Leaf(Leaf::Template(name)) => {
                let text = render_text(env, name, context)?;
                put_json_string(out, &text)
            }
            PayloadNode::Leaf(Leaf::Value(name)) => {
                // The value filter writes JSON text: one valid JSON value.
                let template = env.get_template(name).map_err(|e| RenderError::from_minijinja(&e))?;
                template.render_captured_to(context.clone(), &mut *out).map_err(|e| RenderError::from_minijinja(&e))?;
                Ok(())
            }
            PayloadNode::Literal(value) => {
                let text = serde_json::to_vec(value).map_err(|e| RenderError::Template(e.to_string()))?;
                put(out, &text)
            }
        }
    }
}

fn put(out: &mut Bounded, bytes: &[u8]) -> Result<(), RenderError> {
    out.write_all(bytes).map_err(|_| RenderError::TooLarge)
}

/// Written straight into `out`: escaping can sextuple a string (`\u0001`), so it is never
/// encoded apart first.
fn put_json_string(out: &mut Bounded, text: &str) -> Result<(), RenderError> {
    serde_json::to_writer(&mut *out, text).map_err(|_| RenderError::TooLarge)
}

fn render_text(env: &Environment<'static>, name: &str, context: &Value) -> Result<String, RenderError> {
    let mut text = Bounded { out: Vec::new() };
    let template = env.get_template(name).map_err(|e| RenderError::from_minijinja(&e))?;
    template.render_captured_to(context.clone(), &mut text).map_err(|e| RenderError::from_minijinja(&e))?;
    String::from_utf8(text.out).map_err(|e| RenderError::Template(e.to_string()))
}

/// A key's text, and whether a template made it.
fn render_key(env: &Environment<'static>, context: &Value, key: &Leaf) -> Result<(String, bool), RenderError> {
    match key {
        Leaf::Text(text) => Ok((text.clone(), false)),
        Leaf::Template(name) | Leaf::Value(name) => Ok((render_text(env, name, context)?, true)),
    }
}

/// A templated key that rendered the same as a sibling: JSON with the key twice is read
/// differently by different parsers (the first or the last wins), so neither is sent.
fn duplicate(key: &str) -> RenderError {
    RenderError::Template(format!(
        "payload key {:?} appears twice: a templated key rendered the same as a sibling",
        super::helpers::clip(key, 100)
    ))
}

/// The user's `payload` merged over a preset's body: objects merge key by key, anything else
/// replaces what the preset put there. A key written in the config may replace a preset's field
/// (that is what the merge is for); a **templated** key may only add one: a label value must not
/// be able to choose the preset's `channel`, `routing_key` or `chat_id`.
pub(super) fn merge_over(
    env: &Environment<'static>,
    context: &Value,
    base: &[u8],
    overlay: &PayloadNode,
) -> Result<Vec<u8>, RenderError> {
    // What the overlay may still add: the output limit less the preset's body (the exact size is
    // checked once the merged body is written).
    let mut budget = super::MAX_RENDERED_BYTES.saturating_sub(base.len());
    let mut base: serde_json::Value =
        serde_json::from_slice(base).map_err(|e| RenderError::NotJson(format!("preset body: {e}")))?;
    merge_node(env, context, &mut base, overlay, &mut budget)?;
    let out = serde_json::to_vec(&base).map_err(|e| RenderError::Template(e.to_string()))?;
    if out.len() > super::MAX_RENDERED_BYTES {
        return Err(RenderError::TooLarge);
    }
    Ok(out)
}

fn merge_node(
    env: &Environment<'static>,
    context: &Value,
    base: &mut serde_json::Value,
    node: &PayloadNode,
    budget: &mut usize,
) -> Result<(), RenderError> {
    let (serde_json::Value::Object(fields), PayloadNode::Map(entries)) = (&mut *base, node) else {
        *base = render_json(env, context, node, budget)?;
        return Ok(());
    };
    let mut seen = HashSet::with_capacity(entries.len());
    for (key, value) in entries {
        let (name, templated) = render_key(env, context, key)?;
        if !seen.insert(name.clone()) {
            return Err(duplicate(&name));
        }
        match fields.get_mut(&name) {
            Some(_) if templated => {
                return Err(RenderError::Template(format!(
                    "templated payload key {:?} would replace the preset's own field of that name; \
                     only a key written in the config may",
                    super::helpers::clip(&name, 100)
                )));
            }
            Some(existing) => merge_node(env, context, existing, value, budget)?,
            None => {
                let rendered = render_json(env, context, value, budget)?;
                fields.insert(name, rendered);
            }
        }
    }
    Ok(())
}

/// One overlay value as JSON, its bytes taken from `budget`.
fn render_json(
    env: &Environment<'static>,
    context: &Value,
    node: &PayloadNode,
    budget: &mut usize,
) -> Result<serde_json::Value, RenderError> {
    let mut rendered = Bounded { out: Vec::new() };
    node.render(env, context, &mut rendered)?;
    *budget = budget.checked_sub(rendered.out.len()).ok_or(RenderError::TooLarge)?;
    serde_json::from_slice(&rendered.out).map_err(|e| RenderError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_single_expressions() {
        assert_eq!(single_expression("{{ alerts | toJson }}").as_deref(), Some("alerts"));
        assert_eq!(single_expression(" {{- truncatedAlerts -}} ").as_deref(), Some("truncatedAlerts"));
        assert_eq!(single_expression("{{ a }} and {{ b }}"), None);
        assert_eq!(single_expression("x {{ a }}"), None);
        assert_eq!(single_expression("{{ alerts|tojson }}").as_deref(), Some("alerts"));
    }

    fn overlay(yaml: &[(&str, &str)]) -> (Environment<'static>, PayloadNode) {
        let mut builder = super::super::Builder::new();
        let entries = yaml
            .iter()
            .map(|(k, v)| {
                let key = builder.leaf(".k", k, true).unwrap();
                (key, PayloadNode::Leaf(builder.leaf(".v", v, false).unwrap()))
            })
            .collect();
        let spec = super::super::Spec {
            body: None,
            payload: None,
            preset: None,
            options: Vec::new(),
            content_type: http::HeaderValue::from_static("application/json"),
            signing: None,
        };
        (builder.finish(spec).env, PayloadNode::Map(entries))
    }

    fn context(label: &str) -> Value {
        minijinja::context! { commonLabels => minijinja::context! { team => label, other => "x" } }
    }

    #[test]
    fn merges_objects_key_by_key() {
        let (env, node) = overlay(&[("a", "{{ commonLabels.team }}"), ("e", "new")]);
        let base = br#"{"a": {"b": 1}, "d": [1]}"#;
        let merged = merge_over(&env, &context("t"), base, &node).unwrap();
        let merged: serde_json::Value = serde_json::from_slice(&merged).unwrap();
        assert_eq!(merged, serde_json::json!({"a": "t", "d": [1], "e": "new"}), "a written key replaces");
    }

    /// Regression: a label value could pick a preset's field through a templated key.
    #[test]
    fn a_templated_key_cannot_replace_a_presets_field() {
        let (env, node) = overlay(&[("{{ commonLabels.team }}", "#attacker")]);
        let base = br##"{"channel": "#ops", "text": "hi"}"##;
        let error = merge_over(&env, &context("channel"), base, &node).unwrap_err();
        assert!(error.to_string().contains("\"channel\"") && error.to_string().contains("preset"), "{error}");
        // The same key adding a field the preset does not have is fine.
        let merged = merge_over(&env, &context("team_tag"), base, &node).unwrap();
        assert!(String::from_utf8(merged).unwrap().contains(r##""team_tag":"#attacker""##));
    }

    /// Regression: a templated key equal to its sibling made JSON with the key twice.
    #[test]
    fn a_templated_key_equal_to_a_sibling_is_a_render_error() {
        let (env, node) = overlay(&[("other", "1"), ("{{ commonLabels.team }}", "2")]);
        let mut out = Bounded { out: Vec::new() };
        let error = node.render(&env, &context("other"), &mut out).unwrap_err();
        assert!(error.to_string().contains("appears twice"), "{error}");
        let error = merge_over(&env, &context("other"), b"{}", &node).unwrap_err();
        assert!(error.to_string().contains("appears twice"), "{error}");
        let mut out = Bounded { out: Vec::new() };
        node.render(&env, &context("team"), &mut out).unwrap();
        assert_eq!(out.out, br#"{"other":"1","team":"2"}"#);
    }
}
