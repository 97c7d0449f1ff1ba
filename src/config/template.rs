//! The template keys of a receiver — `payload`, `body`, `content_type`, `preset`,
//! `preset_options`, `rate_limit` — and the top-level `templates:` files: parsed, compiled into a
//! [`Renderer`], and rendered once against a sample notification, so that a template that cannot
//! work never gets past `check-config` or a reload.
//!
//! Template errors are reported at their YAML position: the template's own line and column are
//! added to where its string starts in the file (a block scalar's text starts on the next line).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderValue;
use serde_saphyr::{Location, Spanned};

use super::issues::Issues;
use super::raw::RawReceiver;
use super::template_raw::RawNode;
use super::{Auth, Secret};
use crate::template::{
    Builder, CompileError, Leaf, OptionValue, PayloadNode, Preset, Renderer, Reveal, Spec, is_json, sample_notification,
};

/// At most `per_second` attempts a second on average, `burst` at once. A preset's receiver
/// without `rate_limit:` gets its destination's documented limit
/// ([`Preset::default_rate_limit`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// What a receiver's template keys add up to.
#[derive(Debug, Default)]
pub(super) struct Templating {
    pub renderer: Option<Arc<Renderer>>,
    pub rate_limit: Option<RateLimit>,
    /// Opsgenie's `GenieKey` authorization, from `preset_options.api_key_file`; Slack's Web API
    /// bot token, from `preset_options.token_file`.
    pub auth: Option<Auth>,
}

/// The shared `templates:` files, read at load: `(file name, text)`.
pub(super) type Shared = Vec<(String, String)>;

/// Reads the `templates:` globs (relative to the config file); each file becomes importable by
/// its file name, and is watched like the config file.
pub(super) fn shared(issues: &mut Issues, patterns: &[Spanned<String>]) -> Shared {
    let mut shared: Shared = Vec::new();
    for (index, pattern) in patterns.iter().enumerate() {
        let field = format!("templates[{index}]");
        let at = &pattern.referenced;
        // Absolute, so that the paths the glob yields are read as they are (a relative config
        // path made them relative to the working folder, and reading joined the folder again).
        let full = issues.resolve(&pattern.value);
        let full = std::path::absolute(&full).unwrap_or(full);
        let paths = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths,
            Err(e) => {
                issues.add(Some(at), field, format!("invalid glob: {e}"));
                continue;
            }
        };
        let mut matched = 0;
        let before = shared.len();
        for path in paths.flatten() {
            if !path.is_file() {
                continue;
            }
            matched += 1;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let Some(bytes) = issues.read_file(at, &field, &path.to_string_lossy()) else { continue };
            let Ok(text) = String::from_utf8(bytes) else {
                issues.add(Some(at), field.clone(), format!("{} is not valid UTF-8", path.display()));
                continue;
            };
            if shared.iter().any(|(n, _)| *n == name) {
                issues.add(
                    Some(at),
                    field.clone(),
                    format!("two template files are named {name:?}: names must be unique"),
                );
                continue;
            }
            shared.push((name, text));
        }
        if matched == 0 {
            issues.add(Some(at), field.clone(), format!("{:?} matches no file", pattern.value));
        }
        // Compiled here once, so that a mistake is reported once (receivers add them again).
        let mut builder = Builder::new();
        for (name, source) in &shared[before..] {
            if let Err(e) = builder.shared(name, source) {
                let place = e.position.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default();
                issues.add(Some(at), field.clone(), format!("{name}{place}: {}", e.message));
            }
        }
    }
    shared
}

/// Compiles a receiver's templates and checks its rate limit; `None` when there are errors
/// (each already added to `issues`).
pub(super) fn receiver(issues: &mut Issues, field: &str, raw: &RawReceiver, shared: &Shared) -> Option<Templating> {
    let before = issues.len();
    let rate_limit = raw.rate_limit.as_ref().and_then(|spanned| {
        let (at, limit) = (&spanned.referenced, &spanned.value);
        let field = format!("{field}.rate_limit");
        if !(limit.per_second.is_finite() && limit.per_second > 0.0) {
            issues.add(Some(at), format!("{field}.per_second"), "must be a number greater than 0");
            return None;
        }
        let burst = limit.burst.unwrap_or(1);
        if burst == 0 {
            issues.add(Some(at), format!("{field}.burst"), "must be at least 1");
            return None;
        }
        Some(RateLimit { per_second: limit.per_second, burst })
    });

    let preset = raw.preset.as_ref().and_then(|p| match Preset::parse(&p.value) {
        Some(preset) => Some(preset),
        None => {
            let known: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
            issues.add(
                Some(&p.referenced),
                format!("{field}.preset"),
                format!("unknown preset {:?}: use one of {}", p.value, known.join(", ")),
            );
            None
        }
    });
    if raw.preset.is_none()
        && let Some(options) = &raw.preset_options
    {
        issues.add(Some(&options.referenced), format!("{field}.preset_options"), "is only read with a preset");
    }
    // The destination's documented limit unless the receiver sets its own.
    let rate_limit = rate_limit.or_else(|| {
        let (per_second, burst) = preset?.default_rate_limit()?;
        raw.rate_limit.is_none().then_some(RateLimit { per_second, burst })
    });
    let (options, auth, signing) = match preset {
        Some(preset) => preset_options(issues, field, raw, preset)?,
        None => (Vec::new(), None, None),
    };
    if auth.is_some() && (raw.http_config.authorization.is_some() || raw.http_config.basic_auth.is_some()) {
        issues.add(
            None,
            format!("{field}.http_config"),
            "the opsgenie preset sends its GenieKey authorization: remove basic_auth/authorization",
        );
    }

    let content_type = match &raw.content_type {
        Some(spanned) => match HeaderValue::from_str(&spanned.value) {
            Ok(value) if spanned.value.contains('/') => value,
            _ => {
                issues.add(
                    Some(&spanned.referenced),
                    format!("{field}.content_type"),
                    format!("{:?} is not a media type", spanned.value),
                );
                return None;
            }
        },
        None => HeaderValue::from_static("application/json"),
    };
    if raw.payload.is_some() && raw.body.is_some() {
        issues.add(
            raw.body.as_ref().map(|b| &b.referenced),
            format!("{field}.body"),
            "payload and body are mutually exclusive",
        );
    }
    if raw.payload.is_some() && !is_json(&content_type) {
        issues.add(
            raw.content_type.as_ref().map(|c| &c.referenced),
            format!("{field}.content_type"),
            "a payload mapping is JSON: content_type must be a JSON type (use body for other types)",
        );
    }
    if raw.payload.is_none() && raw.body.is_none() && preset.is_none() {
        if let Some(c) = &raw.content_type {
            issues.add(
                Some(&c.referenced),
                format!("{field}.content_type"),
                "is only read with payload, body or preset",
            );
        }
        return (issues.len() == before).then_some(Templating { renderer: None, rate_limit, auth });
    }
    if issues.len() > before {
        return None;
    }

    let mut builder = Builder::new();
    for (name, source) in shared {
        // A broken file was reported once, by `shared`.
        let _ = builder.shared(name, source);
    }
    let mut spec = Spec { body: None, payload: None, preset, options, content_type: content_type.clone(), signing };
    // Where to point a render error found with the sample notification.
    let mut render_at: Option<(&Location, String)> = None;
    if let Some(preset) = preset
        && let Err(e) = builder.preset(preset)
    {
        issues.add(
            None,
            format!("{field}.preset"),
            format!("the shipped {} preset does not compile: {}", preset.name(), e.message),
        );
    }
    if let Some(preset) = &raw.preset {
        render_at = Some((&preset.referenced, format!("{field}.preset")));
    }
    if let Some(body) = &raw.body {
        match builder.body(&body.value, is_json(&content_type)) {
            Ok(name) => spec.body = Some(name),
            Err(e) => template_issue(issues, &body.referenced, &format!("{field}.body"), &e),
        }
        render_at = Some((&body.referenced, format!("{field}.body")));
    }
    if let Some(payload) = &raw.payload {
        let path = format!("{field}.payload");
        if !matches!(payload.value, RawNode::Map(_)) {
            issues.add(Some(&payload.referenced), path.clone(), "must be a mapping");
        } else if let Some(node) = payload_node(issues, &mut builder, &path, "", payload) {
            spec.payload = Some(node);
        }
        render_at = Some((&payload.referenced, path));
    }
    if issues.len() > before {
        return None;
    }
    let renderer = builder.finish(spec);
    if let Err(e) = renderer.render(&sample_notification(), Reveal::Preview) {
        let (at, path) = render_at.expect("a template was given");
        issues.add(Some(at), path, format!("fails on a sample notification: {e}"));
        return None;
    }
    Some(Templating { renderer: Some(Arc::new(renderer)), rate_limit, auth })
}

fn payload_node(
    issues: &mut Issues,
    builder: &mut Builder,
    field: &str,
    path: &str,
    node: &Spanned<RawNode>,
) -> Option<PayloadNode> {
    match &node.value {
        RawNode::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let child = format!("{path}.{}", key.value);
                let key_leaf = match builder.leaf(&child, &key.value, true) {
                    Ok(leaf) => leaf,
                    Err(e) => {
                        template_issue(issues, &key.referenced, &format!("{field}{path}"), &e);
                        Leaf::Text(key.value.clone())
                    }
                };
                let value = payload_node(issues, builder, field, &child, value);
                out.push((key_leaf, value?));
            }
            Some(PayloadNode::Map(out))
        }
        RawNode::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                out.push(payload_node(issues, builder, field, &format!("{path}[{index}]"), item));
            }
            out.into_iter().collect::<Option<Vec<_>>>().map(PayloadNode::Seq)
        }
        RawNode::Str(text) => match builder.leaf(path, text, false) {
            Ok(leaf) => Some(PayloadNode::Leaf(leaf)),
            Err(e) => {
                template_issue(issues, &node.referenced, &format!("{field}{path}"), &e);
                None
            }
        },
        RawNode::Literal(value) => Some(PayloadNode::Literal(value.clone())),
    }
}

/// Adds a compile error at its position in the YAML file.
fn template_issue(issues: &mut Issues, at: &Location, field: &str, error: &CompileError) {
    let position = error.position.and_then(|(line, column)| yaml_position(issues.text(), at, line, column));
    let message = match error.position {
        Some((line, column)) => format!("template line {line}, column {column}: {}", error.message),
        None => error.message.clone(),
    };
    issues.add_at(position.or_else(|| Some((at.line(), at.column()))), field, message);
}

/// Where line `line`, column `column` of a template that starts at `at` is in the YAML text.
fn yaml_position(text: &str, at: &Location, line: usize, column: usize) -> Option<(u64, u64)> {
    if at.line() == 0 {
        return None;
    }
    let offset = at.span().byte_offset()? as usize;
    let first = text.get(offset..)?.chars().next()?;
    let lines: Vec<&str> = text.lines().collect();
    let (line, column) = match first {
        // A block scalar: the template's first line is the one after the indicator.
        '|' | '>' => {
            let yaml_line = at.line() as usize + line;
            let indent = lines.get(yaml_line - 1).map_or(0, |l| l.len() - l.trim_start().len());
            (yaml_line, indent + column)
        }
        // A quoted scalar: its text starts after the quote.
        '"' | '\'' if line == 1 => (at.line() as usize, at.column() as usize + column),
        _ if line == 1 => (at.line() as usize, at.column() as usize + column - 1),
        _ => {
            let yaml_line = at.line() as usize + line - 1;
            let indent = lines.get(yaml_line - 1).map_or(0, |l| l.len() - l.trim_start().len());
            (yaml_line, indent + column)
        }
    };
    Some((line as u64, column as u64))
}

type PresetParts = (Vec<(String, OptionValue)>, Option<Auth>, Option<Secret>);

/// Checks `preset_options` against what the preset reads; reads secret files.
fn preset_options(issues: &mut Issues, field: &str, raw: &RawReceiver, preset: Preset) -> Option<PresetParts> {
    let before = issues.len();
    let field = format!("{field}.preset_options");
    let given: BTreeMap<&str, &Spanned<RawNode>> =
        raw.preset_options.as_ref().map(|o| o.value.iter().map(|(k, v)| (k.as_str(), v)).collect()).unwrap_or_default();
    let at = raw.preset_options.as_ref().map(|o| &o.referenced).or(raw.preset.as_ref().map(|p| &p.referenced));
    let specs = preset.options();
    for (&name, value) in &given {
        let known = specs.iter().any(|s| s.name == name || (s.secret && name.strip_suffix("_file") == Some(s.name)));
        if !known {
            let names: Vec<String> =
                specs.iter().map(|s| if s.secret { format!("{}_file", s.name) } else { s.name.to_owned() }).collect();
            let hint =
                if names.is_empty() { "it takes none".to_owned() } else { format!("it takes {}", names.join(", ")) };
            issues.add(
                Some(&value.referenced),
                format!("{field}.{name}"),
                format!("is not an option of the {} preset: {hint}", preset.name()),
            );
        }
    }
    let mut options = Vec::new();
    let mut auth = None;
    let mut signing = None;
    for spec in specs {
        let file_key = format!("{}_file", spec.name);
        let inline = given.get(spec.name).copied();
        let file = if spec.secret { given.get(file_key.as_str()).copied() } else { None };
        let value = match (inline, file) {
            (Some(_), Some(f)) => {
                issues.add(
                    Some(&f.referenced),
                    format!("{field}.{}", spec.name),
                    format!("{} and {file_key} are mutually exclusive", spec.name),
                );
                continue;
            }
            (Some(v), None) => match scalar(&v.value) {
                Some(text) => text,
                None => {
                    issues.add(
                        Some(&v.referenced),
                        format!("{field}.{}", spec.name),
                        "must be a string, number or boolean",
                    );
                    continue;
                }
            },
            (None, Some(f)) => {
                let Some(path) = scalar(&f.value) else {
                    issues.add(Some(&f.referenced), format!("{field}.{file_key}"), "must be a file name");
                    continue;
                };
                match issues.read_secret(&f.referenced, &format!("{field}.{file_key}"), &path) {
                    Some(secret) => secret.expose().to_owned(),
                    None => continue,
                }
            }
            (None, None) => {
                if spec.required {
                    let how = if spec.secret {
                        format!("preset_options.{file_key} (or {})", spec.name)
                    } else {
                        format!("preset_options.{}", spec.name)
                    };
                    issues.add(
                        at,
                        format!("{field}.{}", spec.name),
                        format!("the {} preset needs {how}", preset.name()),
                    );
                }
                continue;
            }
        };
        match (preset, spec.name) {
            (Preset::Opsgenie, "api_key") => {
                auth = Some(Auth::Authorization { scheme: "GenieKey".into(), credentials: Secret::new(value.as_str()) })
            }
            (Preset::Slack, "token") => {
                auth = Some(Auth::Authorization { scheme: "Bearer".into(), credentials: Secret::new(value.as_str()) })
            }
            (Preset::DingTalk | Preset::Feishu, "secret") => signing = Some(Secret::new(value.as_str())),
            _ => {}
        }
        if spec.in_template {
            options.push((spec.name.to_owned(), OptionValue { value, secret: spec.secret }));
        }
    }
    (issues.len() == before).then_some((options, auth, signing))
}

fn scalar(node: &RawNode) -> Option<String> {
    match node {
        RawNode::Str(s) => Some(s.clone()),
        RawNode::Literal(serde_json::Value::Null) => None,
        RawNode::Literal(v) => Some(v.to_string()),
        _ => None,
    }
}
