//! The secret values of one receiver's definition, gathered once when its target is built, so
//! that text its downstream writes can be scrubbed of them (see [`crate::redact::Scrubber`])
//! before it reaches a failure's detail: the status API, dead letters, logs and test answers.
//!
//! What counts: the credentials (basic password, `authorization` credentials, OAuth2 client
//! secret) and the `Authorization` values made of them, every `headers:` value and secret or
//! file `http_headers` value, the signing key, the proxies' credentials and CONNECT headers,
//! the parts of the URL that [`crate::redact::url`] hides, and secret preset options. The OAuth2
//! token, obtained at run time, is added per request ([`super::Used::secret`]).

use crate::config::{Auth, Endpoint, Proxy};
use crate::redact::Scrubber;

/// Every secret value `endpoint` holds, for [`Target::scrubber`]: credentials (and the
/// `Authorization` values made of them), secret headers, the signing key, the proxies'
/// credentials and the URL's hidden parts.
pub(super) fn scrubber(endpoint: &Endpoint) -> Scrubber {
    let mut scrubber = Scrubber::default();
    scrubber.url(&endpoint.url);
    for (_, value) in endpoint.headers.iter().filter(|(_, v)| v.is_sensitive()) {
        scrubber.secret(value.to_str().unwrap_or(""));
    }
    match &endpoint.auth {
        Auth::None => {}
        Auth::Basic { password, .. } => {
            scrubber.secret(password.expose());
        }
        Auth::Authorization { credentials, .. } => {
            scrubber.secret(credentials.expose());
        }
        Auth::OAuth2(oauth2) => {
            let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            // The token request's basic auth: id and secret form-encoded, then base64.
            scrubber.secret(oauth2.client_secret.expose()).secret(&format!(
                "{}:{}",
                encode(&oauth2.client_id),
                encode(oauth2.client_secret.expose())
            ));
            proxy_secrets(&mut scrubber, oauth2.proxy.as_ref());
        }
    }
    if let Some(value) = endpoint.auth.header_value().as_ref().and_then(|v| v.to_str().ok()) {
        // The whole value and its credentials part (`Basic dXNlcjpwdw==` → `dXNlcjpwdw==`).
        scrubber.secret(value).secret(value.split_once(' ').map_or(value, |(_, c)| c));
    }
    if let Some(signing) = &endpoint.signing {
        scrubber.secret(signing.expose());
    }
    proxy_secrets(&mut scrubber, endpoint.proxy.as_ref());
    if let Some(renderer) = &endpoint.template {
        preset_secrets(&mut scrubber, renderer);
    }
    scrubber
}

/// The secret `preset_options` a preset writes into the body (PagerDuty's `routing_key`): the
/// renderer keeps them to itself, but shows `<secret>` in their place in a preview, so every
/// string of the sample notification's body that a preview shows with `<secret>` is one (or
/// holds one) as sent. Other secret options become credentials (`api_key`, `token`: in
/// `auth`) or never leave the process (DingTalk's and Feishu's signing `secret`: only its HMAC is sent).
fn preset_secrets(scrubber: &mut Scrubber, renderer: &crate::template::Renderer) {
    use crate::template::Reveal;
    if renderer.preset().is_none() {
        return;
    }
    let sample = crate::template::sample_notification();
    let body = |reveal| {
        let rendered = renderer.render(&sample, reveal).ok()?;
        serde_json::from_slice::<serde_json::Value>(&rendered.body).ok()
    };
    if let (Some(sent), Some(shown)) = (body(Reveal::Send), body(Reveal::Preview)) {
        hidden_in_preview(scrubber, &sent, &shown);
    }
}

fn hidden_in_preview(scrubber: &mut Scrubber, sent: &serde_json::Value, shown: &serde_json::Value) {
    use serde_json::Value;
    match (sent, shown) {
        (Value::String(sent), Value::String(shown)) if shown.contains(PREVIEW_SECRET) && sent != shown => {
            let literal = shown.split(PREVIEW_SECRET).filter(|part| !part.is_empty());
            let mut secret = sent.as_str();
            // `prefix-<secret>-suffix`: the secret is what the literal parts do not cover.
            for part in literal {
                secret = secret.strip_prefix(part).or_else(|| secret.strip_suffix(part)).unwrap_or(secret);
            }
            scrubber.secret(secret);
        }
        (Value::Array(sent), Value::Array(shown)) => {
            sent.iter().zip(shown).for_each(|(sent, shown)| hidden_in_preview(scrubber, sent, shown));
        }
        (Value::Object(sent), Value::Object(shown)) => {
            for (key, shown) in shown {
                if let Some(sent) = sent.get(key) {
                    hidden_in_preview(scrubber, sent, shown);
                }
            }
        }
        _ => {}
    }
}

/// What a preview shows in place of a secret option (see [`crate::template::Reveal`]).
const PREVIEW_SECRET: &str = "<secret>";

fn proxy_secrets(scrubber: &mut Scrubber, proxy: Option<&Proxy>) {
    let Some(proxy) = proxy else { return };
    if let Some(authorization) = &proxy.authorization {
        let value = authorization.expose();
        scrubber.secret(value).secret(value.split_once(' ').map_or(value, |(_, c)| c));
    }
    for (_, value) in &proxy.connect_headers {
        scrubber.secret(value.to_str().unwrap_or(""));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_secret_of_a_definition_is_gathered() {
        let yaml = "receivers:
  - name: pd
    url: https://events.pagerduty.com/v2/enqueue
    preset: pagerduty
    preset_options: {routing_key: R0UTING-k3y-123}
    signing: {secret: s1gning-secret-0123456}
    headers: {X-Api-Key: h3ader-k3y}
    http_config: {basic_auth: {username: am, password: b4sic-pw}}
";
        let environment = crate::config::Environment::empty();
        let config = crate::config::from_str(yaml, std::path::Path::new("a.yml"), &environment).unwrap();
        let scrubber = scrubber(&config.receivers[0].endpoint);
        let text = "R0UTING-k3y-123 s1gning-secret-0123456 h3ader-k3y b4sic-pw YW06YjRzaWMtcHc= enqueue";
        assert_eq!(scrubber.scrub(text, &[]), "*** *** *** *** *** enqueue");
    }

    #[test]
    fn a_preview_tells_where_a_preset_put_a_secret() {
        let mut scrubber = Scrubber::default();
        let sent = json!({"routing_key": "R0UTING-key", "list": [{"k": "pre-t0ken-post"}], "plain": "x"});
        let shown = json!({"routing_key": "<secret>", "list": [{"k": "pre-<secret>-post"}], "plain": "x"});
        hidden_in_preview(&mut scrubber, &sent, &shown);
        assert_eq!(scrubber.scrub("R0UTING-key t0ken pre-x", &[]), "*** *** pre-x");
    }
}
