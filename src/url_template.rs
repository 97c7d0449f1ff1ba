//! URL templates: a receiver's `url` may use the template language in its path and query
//! (`https://hooks.example.com/{{ commonLabels.namespace }}/alerts`), as Alertmanager 0.31 allows.
//!
//! The scheme, host and port are fixed (a template there is a config error): a notification can
//! choose where on the receiver's server it goes, never which server. Each rendered value is
//! percent-encoded as exactly one path segment or one query value — `a/b` becomes `a%2Fb`, `?`
//! and `#` are encoded, and a value of `.` or `..` is sent as `%2E` / `%2E%2E`, so it cannot climb
//! out of the path the receiver gives. A value that renders empty is an error: the notification
//! is dead-lettered with reason `template` rather than sent to a different URL.

use http::Uri;
use minijinja::{Environment, UndefinedBehavior};

/// Instructions one URL render may run.
const FUEL: u64 = 100_000;
/// The longest URL a template may render.
const MAX_URL_BYTES: usize = 8 * 1024;

/// One piece of the path or a query value: as written, or a template to render.
#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Template(String),
}

/// A receiver URL with templates in its path or query, compiled.
pub struct UrlTemplate {
    env: Environment<'static>,
    /// `scheme://authority`.
    origin: String,
    segments: Vec<Part>,
    query: Vec<(String, Part)>,
}

impl std::fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlTemplate").field("origin", &self.origin).finish_non_exhaustive()
    }
}

/// Whether `url` holds template syntax at all.
pub fn is_template(url: &str) -> bool {
    url.contains("{{") || url.contains("{%")
}

impl UrlTemplate {
    /// Compiles `url`; `Err` says what is wrong (a template outside the path and query, a
    /// template that does not compile, a fragment).
    pub fn compile(url: &str) -> Result<UrlTemplate, String> {
        let (scheme, rest) = url.split_once("://").ok_or("must be an absolute http:// or https:// URL")?;
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(authority_end);
        if is_template(scheme) || is_template(authority) {
            return Err("a template may only be in the URL's path and query, not its scheme, host or port".into());
        }
        if rest.contains('#') {
            return Err("a templated URL may not have a fragment".into());
        }
        let mut env = Environment::new();
        env.set_fuel(Some(FUEL));
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        let mut count = 0;
        let mut part = |env: &mut Environment<'static>, text: &str| -> Result<Part, String> {
            if !is_template(text) {
                return Ok(Part::Literal(text.to_owned()));
            }
            count += 1;
            let name = format!("url{count}");
            env.add_template_owned(name.clone(), text.to_owned()).map_err(|e| format!("template {text:?}: {e}"))?;
            Ok(Part::Template(name))
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut segments = Vec::new();
        for segment in path.split('/').skip(1) {
            segments.push(part(&mut env, segment)?);
        }
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if is_template(key) {
                return Err("a query parameter's name may not be a template, only its value".into());
            }
            pairs.push((key.to_owned(), part(&mut env, value)?));
        }
        Ok(UrlTemplate { env, origin: format!("{scheme}://{authority}"), segments, query: pairs })
    }

    /// The URL without its templated parts, for identity and display: scheme and authority.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The URL for `notification` (the JSON the receiver would be sent, before its template).
    pub fn render(&self, notification: &[u8]) -> Result<Uri, String> {
        self.render_with(notification, false)
    }

    /// Whether the templates run on `sample` (a value the sample lacks may render empty there).
    pub fn check(&self, sample: &[u8]) -> Result<(), String> {
        self.render_with(sample, true).map(drop)
    }

    fn render_with(&self, notification: &[u8], allow_empty: bool) -> Result<Uri, String> {
        // Parsed straight into template values, as the body's templates see the notification.
        let context: minijinja::Value =
            serde_json::from_slice(notification).map_err(|e| format!("the notification is not JSON: {e}"))?;
        let value = |part: &Part| -> Result<String, String> {
            match part {
                Part::Literal(text) => Ok(text.clone()),
                Part::Template(name) => {
                    let template = self.env.get_template(name).map_err(|e| e.to_string())?;
                    let rendered = template.render(&context).map_err(|e| format!("URL template: {e}"))?;
                    match rendered.is_empty() {
                        true if allow_empty => Ok("x".into()),
                        true => Err("the URL's template rendered an empty value".into()),
                        false => Ok(encode(&rendered)),
                    }
                }
            }
        };
        let mut url = self.origin.clone();
        for segment in &self.segments {
            url.push('/');
            url.push_str(&value(segment)?);
        }
        for (index, (key, part)) in self.query.iter().enumerate() {
            url.push(if index == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.push_str(&value(part)?);
        }
        if url.len() > MAX_URL_BYTES {
            return Err(format!("the rendered URL is longer than {MAX_URL_BYTES} bytes"));
        }
        url.parse::<Uri>().map_err(|e| format!("the rendered URL is invalid: {e}"))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters; `.` and `..` (which would
/// mean "here" and "up" as a path segment) are encoded whole.
fn encode(value: &str) -> String {
    if value == "." || value == ".." {
        return "%2E".repeat(value.len());
    }
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(namespace: &str) -> Vec<u8> {
        serde_json::json!({"commonLabels": {"namespace": namespace}, "receiver": "r"}).to_string().into_bytes()
    }

    #[test]
    fn values_are_one_encoded_segment_each() {
        let url = UrlTemplate::compile(
            "https://hooks.example.com/t/{{ commonLabels.namespace }}/alerts?ns={{ commonLabels.namespace }}&x=1",
        )
        .unwrap();
        assert_eq!(
            url.render(&notification("team-a")).unwrap().to_string(),
            "https://hooks.example.com/t/team-a/alerts?ns=team-a&x=1"
        );
        // Hostile values stay inside their segment or value.
        let hostile = url.render(&notification("../../admin?x=1#f")).unwrap().to_string();
        assert_eq!(
            hostile,
            "https://hooks.example.com/t/..%2F..%2Fadmin%3Fx%3D1%23f/alerts?ns=..%2F..%2Fadmin%3Fx%3D1%23f&x=1"
        );
        let climb = url.render(&notification("..")).unwrap();
        assert_eq!(climb.path(), "/t/%2E%2E/alerts");
        assert!(url.render(&notification("a b&c=d")).unwrap().query().unwrap().starts_with("ns=a%20b%26c%3Dd&"));
    }

    #[test]
    fn an_empty_value_is_an_error_and_the_origin_is_fixed() {
        let url = UrlTemplate::compile("https://hooks.example.com/{{ commonLabels.missing }}").unwrap();
        assert!(url.render(&notification("x")).unwrap_err().contains("empty"));
        for bad in [
            "https://{{ commonLabels.namespace }}.example.com/",
            "http{{ x }}://a/",
            "https://a:{{ x }}/",
            "https://a/?{{ k }}=v",
            "https://a/{{ x }}#frag",
        ] {
            assert!(UrlTemplate::compile(bad).is_err(), "{bad}");
        }
        assert!(UrlTemplate::compile("https://a/{{ x").is_err(), "does not compile");
    }
}
