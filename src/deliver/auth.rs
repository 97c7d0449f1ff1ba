//! Outbound authentication, applied to every attempt.
//!
//! The `Authorization` header is not baked into the target when the config loads: an
//! [`Authorizer`] adds it to each request as it is sent, so a kind that must fetch or refresh a
//! credential (OAuth2's client-credentials token, say) fits here as one more variant, and can fail
//! an attempt with its own outcome ([`super::FailureKind::Auth`]) instead of sending it unsigned.

use http::HeaderMap;
use http::HeaderValue;
use http::header::AUTHORIZATION;

use super::Failure;
use crate::config::Auth;

/// How one receiver's requests are authenticated.
#[derive(Debug, Clone)]
pub enum Authorizer {
    None,
    /// A fixed `Authorization` value: basic auth or `authorization: {type, credentials}`.
    Static(HeaderValue),
}

impl Authorizer {
    /// The authorizer for a receiver's `http_config` auth.
    pub fn new(auth: &Auth) -> Authorizer {
        match auth.header_value() {
            Some(value) => Authorizer::Static(value),
            None => Authorizer::None,
        }
    }

    /// Adds the credentials to one attempt's headers.
    pub async fn authorize(&self, headers: &mut HeaderMap) -> Result<(), Failure> {
        match self {
            Authorizer::None => {}
            Authorizer::Static(value) => {
                headers.insert(AUTHORIZATION, value.clone());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[tokio::test]
    async fn each_attempt_carries_the_credentials_marked_sensitive() {
        let basic = Authorizer::new(&Auth::Basic { username: "am".into(), password: Secret::new("pw") });
        let mut headers = HeaderMap::new();
        basic.authorize(&mut headers).await.unwrap();
        let value = &headers[AUTHORIZATION];
        assert_eq!(value, "Basic YW06cHc=");
        assert!(value.is_sensitive(), "hyper must never log it");
        let mut headers = HeaderMap::new();
        Authorizer::new(&Auth::None).authorize(&mut headers).await.unwrap();
        assert!(headers.is_empty());
    }
}
