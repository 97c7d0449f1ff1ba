//! Payload templates: the body each receiver's endpoint understands, rendered from the filtered
//! version "4" notification amrelay would otherwise forward as is.
//!
//! A receiver's templates (`payload`, `body`, a `preset`, and the shared `templates:` files it
//! imports) are compiled once, when the config loads, into one [`Renderer`] — a minijinja
//! environment of its own that reads no file and no network. Delivery renders each notification
//! once, before its first attempt ([`crate::deliver`]); the queue and the spool keep the v4
//! payload, so a reload that changes a template applies to notifications already queued.
//!
//! **Escaping follows where the text lands.** A `body` whose content type is JSON auto-escapes
//! every `{{ value }}` as a JSON value; a `payload` leaf is plain text that becomes one JSON
//! string as a whole, or, when the leaf is one single expression, the expression's value with its
//! JSON type. Presets are written with explicit `| tojson`. Every render is bounded: [`FUEL`]
//! instructions, [`MAX_RENDERED_BYTES`] of output, and no value on the way larger than that
//! either, each size checked before it is allocated ([`limits`]; the peak is [`peak_bound`]).

mod builtins;
mod concat;
mod fit;
mod helpers;
mod limits;
mod payload;
pub mod presets;
mod tape;
mod view;

use std::fmt;
use std::io::Write;

use bytes::Bytes;
use http::{HeaderValue, Uri};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};

pub use limits::{MAX_VALUE_BYTES, peak_bound};
pub use payload::{Leaf, PayloadNode};
pub use presets::Preset;

/// Instructions one render may run: every preset renders 2,000 alerts within it (a unit test
/// holds it to that), and a template that loops forever stops in well under a second.
pub const FUEL: u64 = 1_000_000;

/// The largest body a template may render; a bigger one is a render error, not a request.
pub const MAX_RENDERED_BYTES: usize = 8 * 1024 * 1024;

/// Template names starting with this are rendered with JSON auto-escaping.
const JSON_PREFIX: &str = "json:";

/// Why a notification could not be rendered: the reason of a `template` dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the notification is not a JSON object: {0}")]
    Notification(String),
    #[error("out of fuel: the template ran more than {FUEL} instructions")]
    OutOfFuel,
    #[error("the rendered body exceeds the size limit of {MAX_RENDERED_BYTES} bytes")]
    TooLarge,
    #[error("the rendered body is not valid JSON ({0}); content_type says JSON")]
    NotJson(String),
    #[error("{0}")]
    Template(String),
}

impl RenderError {
    fn from_minijinja(error: &minijinja::Error) -> RenderError {
        match error.kind() {
            ErrorKind::OutOfFuel => RenderError::OutOfFuel,
            ErrorKind::WriteFailure => RenderError::TooLarge,
            _ => RenderError::Template(describe(error)),
        }
    }
}

/// A minijinja error in one line: kind, detail and where in the template.
pub fn describe(error: &minijinja::Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let (Some(name), Some(line)) = (error.name(), error.line()) {
        text.push_str(&format!(" (in {} line {line})", display_name(name)));
    }
    text
}

/// A template's name as users know it: `body`, `payload.text`, `macros.j2`, `preset slack`.
fn display_name(name: &str) -> &str {
    name.strip_prefix(JSON_PREFIX).unwrap_or(name)
}

/// Whether rendering is for sending or for showing: a preview (route-test, the console) shows
/// `<secret>` where a preset puts a secret (PagerDuty's routing key) into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    Send,
    Preview,
}

/// A notification rendered for one receiver.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub content_type: HeaderValue,
    /// Appended to the receiver's URL when the preset says so (Opsgenie closes a resolved
    /// group at `…/alerts/{alias}/close?identifierType=alias`).
    pub url_suffix: Option<String>,
}

/// The whole body: one template, a `payload` mapping, or a preset (with the user's `payload`
/// merged over it, or the user's `body` instead of it).
#[derive(Debug)]
enum Body {
    Template(String),
    Payload(PayloadNode),
    Preset { template: String, overlay: Option<PayloadNode> },
}

/// One receiver's compiled templates: renders a v4 notification into the body to send.
pub struct Renderer {
    env: Environment<'static>,
    body: Body,
    content_type: HeaderValue,
    json: bool,
    preset: Option<presets::Runtime>,
    /// `preset_options` as templates see them (`options.x`), with and without secrets.
    options: Value,
    options_preview: Value,
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The environment holds secrets (preset options); show only the shape.
        f.debug_struct("Renderer")
            .field("body", &self.body)
            .field("content_type", &self.content_type)
            .field("preset", &self.preset.as_ref().map(|p| p.preset.name()))
            .finish_non_exhaustive()
    }
}

/// A compile error: the template it is in (as [`display_name`]), and the minijinja error.
#[derive(Debug)]
pub struct CompileError {
    /// Line (1-based) and byte column (1-based) in the template's own text, where known.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl CompileError {
    fn new(source: &str, error: &minijinja::Error) -> CompileError {
        let position = error.range().map(|r| line_column(source, r.start)).or_else(|| error.line().map(|l| (l, 1)));
        let mut message = error.kind().to_string();
        if let Some(detail) = error.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        CompileError { position, message }
    }
}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

/// Builds a [`Renderer`]: shared macro files first, then the receiver's templates.
pub struct Builder {
    env: Environment<'static>,
    next: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    pub fn new() -> Builder {
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(
            |name| {
                if name.starts_with(JSON_PREFIX) { AutoEscape::Json } else { AutoEscape::None }
            },
        );
        builtins::register(&mut env);
        concat::register(&mut env);
        env.set_formatter(limits::formatter);
        helpers::register(&mut env);
        fit::register(&mut env);
        presets::register_common(&mut env);
        Builder { env, next: 0 }
    }

    /// Adds a shared file of macros, importable by its file name.
    pub fn shared(&mut self, name: &str, source: &str) -> Result<(), CompileError> {
        self.add(name.to_owned(), source)
    }

    /// Adds the whole-body template; `json`: auto-escape values as JSON.
    pub fn body(&mut self, source: &str, json: bool) -> Result<String, CompileError> {
        let name = if json { format!("{JSON_PREFIX}body") } else { "body".to_owned() };
        self.add(name.clone(), source)?;
        Ok(name)
    }

    /// Adds a preset's template.
    pub fn preset(&mut self, preset: Preset) -> Result<(), CompileError> {
        self.add(preset.template_name().to_owned(), preset.source())
    }

    /// A `payload` leaf (or key): literal text, a text template, or a single expression whose
    /// value is inserted with its JSON type.
    pub fn leaf(&mut self, path: &str, source: &str, as_key: bool) -> Result<Leaf, CompileError> {
        if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
            return Ok(Leaf::Text(source.to_owned()));
        }
        self.next += 1;
        let name = format!("payload{path}#{}", self.next);
        if !as_key && let Some(expression) = payload::single_expression(source) {
            // Checked as written (for positions), rendered through the value filter.
            self.check(&name, source)?;
            let wrapped = format!("{{{{ ({expression}) | __amrelay_value }}}}");
            let wrapped = concat::rewrite(&wrapped).into_owned();
            self.env.add_template_owned(name.clone(), wrapped).map_err(|e| CompileError::new(source, &e))?;
            return Ok(Leaf::Value(name));
        }
        self.add(name.clone(), source)?;
        Ok(Leaf::Template(name))
    }

    fn add(&mut self, name: String, source: &str) -> Result<(), CompileError> {
        self.check(&name, source)?;
        let rewritten = concat::rewrite(source).into_owned();
        self.env.add_template_owned(name, rewritten).map_err(|e| CompileError::new(source, &e))
    }

    /// Compiles `source` and finds filters and tests that do not exist (minijinja only notices
    /// those when it reaches them).
    fn check(&self, name: &str, source: &str) -> Result<(), CompileError> {
        self.env.template_from_named_str(name, source).map_err(|e| CompileError::new(source, &e))?;
        for (offset, kind, word) in helpers::filter_and_test_names(source) {
            if !self.exists(kind, word) {
                let what = if kind == helpers::Kind::Filter { "unknown filter" } else { "unknown test" };
                return Err(CompileError {
                    position: Some(line_column(source, offset)),
                    message: format!("{what}: {word}"),
                });
            }
        }
        Ok(())
    }

    fn exists(&self, kind: helpers::Kind, word: &str) -> bool {
        let probe = match kind {
            helpers::Kind::Filter => format!("none | {word}"),
            helpers::Kind::Test => format!("none is {word}"),
        };
        match self.env.compile_expression_owned(probe).and_then(|e| e.eval(())) {
            Ok(_) => true,
            Err(e) => !matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest),
        }
    }

    /// The finished renderer.
    pub fn finish(self, spec: Spec) -> Renderer {
        let json = is_json(&spec.content_type);
        let body = match (spec.body, spec.payload, &spec.preset) {
            (Some(name), _, _) => Body::Template(name),
            (None, overlay, Some(preset)) => Body::Preset { template: preset.template_name().to_owned(), overlay },
            (None, Some(node), None) => Body::Payload(node),
            (None, None, None) => Body::Payload(PayloadNode::Literal(serde_json::Value::Null)),
        };
        let options_preview = Value::from(
            spec.options
                .iter()
                .map(|(k, v)| (k.clone(), if v.secret { "<secret>".to_owned() } else { v.value.clone() }))
                .collect::<std::collections::BTreeMap<_, _>>(),
        );
        let options = Value::from(
            spec.options
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        );
        Renderer {
            env: self.env,
            body,
            content_type: spec.content_type,
            json,
            preset: spec.preset.map(|preset| presets::Runtime { preset, signing: spec.signing }),
            options,
            options_preview,
        }
    }
}

/// An option of a preset as templates see it.
#[derive(Debug, Clone)]
pub struct OptionValue {
    pub value: String,
    /// Read from a `*_file` (or given as a secret): shown as `<secret>` in previews.
    pub secret: bool,
}

/// What a receiver's templates add up to, besides the templates themselves.
#[derive(Debug)]
pub struct Spec {
    pub body: Option<String>,
    pub payload: Option<PayloadNode>,
    pub preset: Option<Preset>,
    pub options: Vec<(String, OptionValue)>,
    pub content_type: HeaderValue,
    /// The preset's signing secret: DingTalk's, applied to each attempt's URL; Feishu's, to each
    /// attempt's body.
    pub signing: Option<crate::secret::Secret>,
}

/// Whether a content type is JSON (`application/json`, `application/*+json`).
pub fn is_json(content_type: &HeaderValue) -> bool {
    let text = content_type.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    text == "application/json" || (text.starts_with("application/") && text.ends_with("+json"))
}

/// Stops writing past [`MAX_RENDERED_BYTES`].
pub(crate) struct Bounded {
    pub out: Vec<u8>,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > MAX_RENDERED_BYTES {
            return Err(std::io::Error::other("rendered body too large"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Renderer {
    /// The outbound Content-Type.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The preset, if any.
    pub fn preset(&self) -> Option<Preset> {
        self.preset.as_ref().map(|p| p.preset)
    }

    /// Renders `notification` (the v4 payload amrelay would forward to this receiver).
    pub fn render(&self, notification: &[u8], reveal: Reveal) -> Result<Rendered, RenderError> {
        let data = helpers::parse(notification).map_err(|e| RenderError::Notification(e.to_string()))?;
        if data.kind() != minijinja::value::ValueKind::Map {
            return Err(RenderError::Notification("not an object".into()));
        }
        let options = if reveal == Reveal::Send { &self.options } else { &self.options_preview };
        let context = helpers::context(data.clone(), options.clone());
        let mut out = Bounded { out: Vec::with_capacity(notification.len() / 2 + 512) };
        match &self.body {
            Body::Template(name) => self.render_template(name, &context, &mut out)?,
            Body::Payload(node) => node.render(&self.env, &context, &mut out)?,
            Body::Preset { template, overlay } => {
                self.render_template(template, &context, &mut out)?;
                if let Some(overlay) = overlay {
                    out.out = payload::merge_over(&self.env, &context, &out.out, overlay)?;
                }
            }
        }
        if self.json {
            serde_json::from_slice::<serde::de::IgnoredAny>(&out.out)
                .map_err(|e| RenderError::NotJson(e.to_string()))?;
        }
        let url_suffix = self.preset.as_ref().and_then(|p| p.url_suffix(&data));
        Ok(Rendered { body: Bytes::from(out.out), content_type: self.content_type.clone(), url_suffix })
    }

    fn render_template(&self, name: &str, context: &Value, out: &mut Bounded) -> Result<(), RenderError> {
        let template = self.env.get_template(name).map_err(|e| RenderError::from_minijinja(&e))?;
        template.render_captured_to(context.clone(), &mut *out).map_err(|e| RenderError::from_minijinja(&e))?;
        Ok(())
    }

    /// The body of one attempt of `rendered`: as rendered, signed when the preset signs its body
    /// (Feishu's `timestamp` and `sign`, which Feishu refuses once an hour old, so each attempt
    /// signs again).
    pub fn attempt_body(&self, rendered: &Rendered, now: std::time::SystemTime) -> Bytes {
        match &self.preset {
            Some(runtime) => runtime.attempt_body(&rendered.body, now),
            None => rendered.body.clone(),
        }
    }

    /// The URL of one attempt of `rendered`: the receiver's, with the preset's suffix, signed
    /// when the preset signs (DingTalk's `timestamp` and `sign`).
    pub fn attempt_url(&self, url: &Uri, rendered: &Rendered, now: std::time::SystemTime) -> Uri {
        let url = match &rendered.url_suffix {
            Some(suffix) => presets::join(url, suffix),
            None => url.clone(),
        };
        match &self.preset {
            Some(runtime) => runtime.attempt_url(&url, now),
            None => url,
        }
    }
}

/// A small notification every template is rendered against when the config loads: two alerts,
/// one firing and one resolved, with the usual labels and annotations.
pub fn sample_notification() -> Vec<u8> {
    let alert = |status: &str, name: &str, ends: &str| {
        serde_json::json!({
            "status": status,
            "labels": {"alertname": name, "severity": "critical", "instance": "node-1:9100", "job": "node"},
            "annotations": {"summary": format!("{name} on node-1"), "description": "A sample alert.", "runbook_url": "https://runbooks.example/sample"},
            "startsAt": "2026-01-01T00:00:00Z", "endsAt": ends,
            "generatorURL": "http://prometheus.example/graph?g0.expr=up", "fingerprint": "0123456789abcdef",
        })
    };
    serde_json::json!({
        "receiver": "sample", "status": "firing",
        "alerts": [alert("firing", "SampleDown", "0001-01-01T00:00:00Z"), alert("resolved", "SampleUp", "2026-01-01T00:05:00Z")],
        "groupLabels": {"alertname": "SampleDown"}, "commonLabels": {"severity": "critical", "job": "node"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example", "version": "4",
        "groupKey": "{}:{alertname=\"SampleDown\"}", "truncatedAlerts": 0,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod pinned;
#[cfg(test)]
mod tests;
