//! The outbound HTTP client of one receiver: pooled keep-alive connections, HTTP/1.1 or HTTP/2
//! (chosen by ALPN on TLS), rustls with the receiver's own TLS settings, optionally through an
//! HTTP CONNECT proxy (for `https://` and `http://` receivers alike: the proxy sees only a tunnel),
//! with `proxy_connect_header` on the CONNECT request. Which proxy (`proxy_url`, `no_proxy`,
//! `proxy_from_environment`) is decided when the config is parsed ([`crate::config::http`]): a
//! receiver's URL is fixed, so the choice is too. A tenant's receiver connects through its
//! outbound guard ([`super::guard`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tower_service::Service;

use super::guard::{Resolver, check_destination, check_peer};
use crate::config::tenancy::OutboundGuard;
use crate::config::{Proxy, TlsSettings};

/// `User-Agent` of every outbound request.
pub const USER_AGENT_VALUE: &str = concat!("amrelay/", env!("CARGO_PKG_VERSION"));

/// A pooled client; cloning shares the pool.
pub type HttpClient = Client<HttpsConnector<Connector>, Full<Bytes>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// TCP straight to the receiver, or through a proxy's CONNECT tunnel; with the receiver's
/// outbound guard, if any.
#[derive(Debug, Clone)]
pub struct Connector {
    way: Way,
    guard: Option<Arc<OutboundGuard>>,
}

#[derive(Debug, Clone)]
enum Way {
    Direct(HttpConnector<Resolver>),
    Tunnel(Tunnel<HttpConnector<Resolver>>),
}

impl Service<http::Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.way {
            Way::Direct(c) => c.poll_ready(cx).map_err(Into::into),
            Way::Tunnel(c) => c.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, destination: http::Uri) -> Self::Future {
        let guard = self.guard.clone();
        if let Err(refused) = check_destination(guard.as_deref(), &destination) {
            return Box::pin(async move { Err(refused.into()) });
        }
        let connecting: Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>> = match &mut self.way {
            Way::Direct(c) => {
                let connecting = c.call(destination);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            Way::Tunnel(c) => {
                let connecting = c.call(destination);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
        };
        Box::pin(async move {
            let stream = connecting.await?;
            check_peer(guard.as_deref(), stream.inner().peer_addr())?;
            Ok(stream)
        })
    }
}

/// Idle keep-alive connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle connections kept per downstream host.
const POOL_MAX_IDLE_PER_HOST: usize = 64;

/// Builds a client for one receiver's TLS settings (with `client_config` built from them by
/// [`crate::tls::ClientConfigs`]), proxy and outbound guard.
pub fn build(
    tls: &TlsSettings,
    client_config: &rustls::ClientConfig,
    enable_http2: bool,
    connect_timeout: Duration,
    (proxy, guard): (Option<&Proxy>, Option<&Arc<OutboundGuard>>),
) -> HttpClient {
    let mut tcp = HttpConnector::new_with_resolver(Resolver { guard: guard.cloned() });
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(connect_timeout));
    let way = match proxy {
        None => Way::Direct(tcp),
        Some(proxy) => {
            let mut tunnel = Tunnel::new(proxy.url.clone(), tcp);
            if !proxy.connect_headers.is_empty() {
                let mut headers = http::HeaderMap::new();
                for (name, value) in &proxy.connect_headers {
                    headers.append(name.clone(), value.clone());
                }
                tunnel = tunnel.with_headers(headers);
            }
            match proxy.authorization.as_ref().and_then(|a| http::HeaderValue::from_str(a.expose()).ok()) {
                Some(value) => Way::Tunnel(tunnel.with_auth(value)),
                None => Way::Tunnel(tunnel),
            }
        }
    };
    let http = Connector { way, guard: guard.cloned() };
    let builder = HttpsConnectorBuilder::new().with_tls_config(client_config.clone()).https_or_http();
    let builder = match &tls.server_name {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name.clone())),
        None => builder,
    };
    let connector = if enable_http2 {
        builder.enable_all_versions().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .build(connector)
}
