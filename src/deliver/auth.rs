//! Outbound authentication, applied to every attempt.
//!
//! The `Authorization` header is not baked into the target when the config loads: an
//! [`Authorizer`] adds it to each request as it is sent, so a kind that must fetch or refresh a
//! credential (OAuth2's client-credentials token, say) fits here as one more variant, and can fail
//! an attempt with its own outcome ([`super::FailureKind::Auth`]) instead of sending it unsigned.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::HeaderValue;
use http::header::AUTHORIZATION;

use super::Failure;
use super::oauth2::{Token, TokenSource};
use crate::config::Auth;

/// How one receiver's requests are authenticated.
#[derive(Debug, Clone)]
pub enum Authorizer {
    None,
    /// A fixed `Authorization` value: basic auth or `authorization: {type, credentials}`.
    Static(HeaderValue),
    /// An OAuth2 client-credentials token, cached and renewed ([`super::oauth2`]).
    OAuth2(Arc<TokenSource>),
}

/// The credential one attempt carried, so that a `401` can drop exactly that one.
#[derive(Debug, Clone, Default)]
pub struct Used(Option<Arc<Token>>);

impl Used {
    /// The credential obtained at run time (an OAuth2 access token) this attempt carried: it is
    /// in no config, so the downstream's answer is scrubbed of it by value.
    pub fn secret(&self) -> Option<&str> {
        self.0.as_deref().map(Token::secret)
    }
}

impl Authorizer {
    /// The authorizer for a receiver's `http_config` auth; an OAuth2 source of `previous` for
    /// the same `oauth2` block is kept (with its token) across a reload.
    pub fn new(auth: &Auth, timeout: Duration, previous: Option<&Authorizer>) -> Authorizer {
        match (auth, previous) {
            (Auth::OAuth2(config), Some(Authorizer::OAuth2(source))) if source.serves(config) => {
                Authorizer::OAuth2(source.clone())
            }
            (Auth::OAuth2(config), _) => Authorizer::OAuth2(Arc::new(TokenSource::new(config, timeout))),
            _ => match auth.header_value() {
                Some(value) => Authorizer::Static(value),
                None => Authorizer::None,
            },
        }
    }

    /// Adds the credentials to one attempt's headers. Fails with [`super::FailureKind::Auth`]
    /// when a token cannot be had.
    pub async fn authorize(&self, headers: &mut HeaderMap) -> Result<Used, Failure> {
        match self {
            Authorizer::None => Ok(Used::default()),
            Authorizer::Static(value) => {
                headers.insert(AUTHORIZATION, value.clone());
                Ok(Used::default())
            }
            Authorizer::OAuth2(source) => {
                let token = source.token().await?;
                headers.insert(AUTHORIZATION, TokenSource::header(&token));
                Ok(Used(Some(token)))
            }
        }
    }

    /// The downstream refused `used` with a 401: whether a fresh credential may help (the
    /// token is dropped so the next authorization fetches one).
    pub fn refused(&self, used: &Used) -> bool {
        match (self, &used.0) {
            (Authorizer::OAuth2(source), Some(token)) => {
                source.invalidate(token);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn each_attempt_carries_the_credentials_marked_sensitive() {
        let basic = Authorizer::new(&Auth::Basic { username: "am".into(), password: Secret::new("pw") }, SECOND, None);
        let mut headers = HeaderMap::new();
        basic.authorize(&mut headers).await.unwrap();
        let value = &headers[AUTHORIZATION];
        assert_eq!(value, "Basic YW06cHc=");
        assert!(value.is_sensitive(), "hyper must never log it");
        let mut headers = HeaderMap::new();
        Authorizer::new(&Auth::None, SECOND, None).authorize(&mut headers).await.unwrap();
        assert!(headers.is_empty());
    }
}
