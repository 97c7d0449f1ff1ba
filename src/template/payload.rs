//! `receivers[].payload`: a YAML mapping whose string leaves (and keys) are templates, rendered
//! into JSON that is valid whatever the labels hold.
//!
//! A leaf is literal text, a text template (its output becomes one JSON string), or one single
//! expression (`'{{ alerts | toJson }}'`, `'{{ truncatedAlerts }}'`), whose value is inserted
//! with its JSON type — Alertmanager 0.32's `payload`, so a user can carry its structure over.

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
                for (index, (key, value)) in entries.iter().enumerate() {
                    if index > 0 {
                        put(out, b",")?;
                    }
                    let key = match key {
                        Leaf::Text(text) => text.clone(),
                        Leaf::Template(name) | Leaf::Value(name) => render_text(env, name, context)?,
                    };
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

fn put_json_string(out: &mut Bounded, text: &str) -> Result<(), RenderError> {
    let encoded = serde_json::to_vec(text).map_err(|e| RenderError::Template(e.to_string()))?;
    put(out, &encoded)
}

fn render_text(env: &Environment<'static>, name: &str, context: &Value) -> Result<String, RenderError> {
    let mut text = Bounded { out: Vec::new() };
    let template = env.get_template(name).map_err(|e| RenderError::from_minijinja(&e))?;
    template.render_captured_to(context.clone(), &mut text).map_err(|e| RenderError::from_minijinja(&e))?;
    String::from_utf8(text.out).map_err(|e| RenderError::Template(e.to_string()))
}

/// The user's `payload` merged over a preset's body: objects merge key by key, anything else
/// replaces what the preset put there.
pub(super) fn merge_over(
    env: &Environment<'static>,
    context: &Value,
    base: &[u8],
    overlay: &PayloadNode,
) -> Result<Vec<u8>, RenderError> {
    let mut base: serde_json::Value =
        serde_json::from_slice(base).map_err(|e| RenderError::NotJson(format!("preset body: {e}")))?;
    let mut rendered = Bounded { out: Vec::new() };
    overlay.render(env, context, &mut rendered)?;
    let overlay: serde_json::Value =
        serde_json::from_slice(&rendered.out).map_err(|e| RenderError::NotJson(e.to_string()))?;
    merge(&mut base, overlay);
    let out = serde_json::to_vec(&base).map_err(|e| RenderError::Template(e.to_string()))?;
    if out.len() > super::MAX_RENDERED_BYTES {
        return Err(RenderError::TooLarge);
    }
    Ok(out)
}

fn merge(base: &mut serde_json::Value, overlay: serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(base), serde_json::Value::Object(overlay)) => {
            for (key, value) in overlay {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
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

    #[test]
    fn merges_objects_key_by_key() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut base, serde_json::json!({"a": {"c": 3}, "d": "x", "e": true}));
        assert_eq!(base, serde_json::json!({"a": {"b": 1, "c": 3}, "d": "x", "e": true}));
    }
}
