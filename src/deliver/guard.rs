//! The outbound guard at connect time: a tenant's receiver ([`OutboundGuard`]) connects only to
//! addresses the guard allows.
//!
//! Checked against the addresses actually connected, so DNS re-binding cannot slip past it:
//! the resolver drops the addresses the guard refuses (the connector tries only what it returns),
//! an address literal in the URL (which skips the resolver) is checked before connecting, and the
//! connected socket's peer is checked again before a byte is sent. A refusal is a
//! [`ForbiddenAddress`] error, which the delivery classifies as `forbidden_address` and
//! dead-letters at once: retrying cannot change it.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use tower_service::Service;

use crate::config::tenancy::OutboundGuard;

/// A connection the guard refused: the host and why (no URL, so no secret).
#[derive(Debug)]
pub struct ForbiddenAddress {
    pub host: String,
    pub why: &'static str,
}

impl std::fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "forbidden address: {} is {}", self.host, self.why)
    }
}

impl std::error::Error for ForbiddenAddress {}

impl ForbiddenAddress {
    pub fn io(host: impl Into<String>, why: &'static str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, ForbiddenAddress { host: host.into(), why })
    }
}

/// The system resolver (`getaddrinfo` on the blocking pool), keeping only the addresses the
/// guard allows when there is one.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    pub guard: Option<Arc<OutboundGuard>>,
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.guard.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let Some(guard) = guard else {
                return Ok(found.into_iter());
            };
            let mut why = "";
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match guard.refuses(a.ip()) {
                    Some(reason) => {
                        why = reason;
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() && !why.is_empty() {
                return Err(ForbiddenAddress::io(host, why));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// Checks an address literal of the destination before connecting (literals skip the resolver).
pub fn check_destination(guard: Option<&OutboundGuard>, destination: &http::Uri) -> Result<(), std::io::Error> {
    let (Some(guard), Some(host)) = (guard, destination.host()) else {
        return Ok(());
    };
    if !guard.host_allowed(host) {
        return Err(ForbiddenAddress::io(host, "not in tenancy.allowed_hosts"));
    }
    match host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        Ok(ip) => guard.refuses(ip).map_or(Ok(()), |why| Err(ForbiddenAddress::io(host, why))),
        Err(_) => Ok(()),
    }
}

/// Checks the peer of a connected socket: what was actually reached.
pub fn check_peer(guard: Option<&OutboundGuard>, peer: std::io::Result<SocketAddr>) -> Result<(), std::io::Error> {
    let Some(guard) = guard else {
        return Ok(());
    };
    let peer = peer?;
    guard.refuses(peer.ip()).map_or(Ok(()), |why| Err(ForbiddenAddress::io(peer.ip().to_string(), why)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression guard: `localhost` resolves to loopback, which the resolver drops, so a name
    /// cannot reach what its address literal could not.
    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused() {
        let mut resolver = Resolver { guard: Some(Arc::new(OutboundGuard::default())) };
        let error = resolver.call("localhost".parse().unwrap()).await.unwrap_err();
        assert!(error.get_ref().is_some_and(|e| e.is::<ForbiddenAddress>()), "{error}");
        let mut open = Resolver { guard: None };
        assert!(open.call("localhost".parse().unwrap()).await.unwrap().next().is_some());
    }

    #[test]
    fn literals_and_peers_are_checked() {
        let guard = OutboundGuard::default();
        let uri = |u: &str| u.parse::<http::Uri>().unwrap();
        assert!(check_destination(Some(&guard), &uri("http://127.0.0.1:9/")).is_err());
        assert!(check_destination(Some(&guard), &uri("http://[fe80::1]:9/")).is_err());
        assert!(check_destination(None, &uri("http://127.0.0.1:9/")).is_ok());
        assert!(check_peer(Some(&guard), Ok("10.0.0.1:80".parse().unwrap())).is_err());
        assert!(check_peer(Some(&guard), Ok("192.0.2.1:80".parse().unwrap())).is_ok());
    }
}
