//! A TLS client for the relay's own HTTPS listener: which protocol ALPN chose, which
//! certificate the relay presented, and why a handshake failed.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::support::{Reply, WAIT};

/// A rustls client that trusts `ca_file` and presents `cert`/`key` files when given.
pub fn tls_client(ca_file: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    use amrelay::tls::{ClientTlsOptions, MinVersion, PemSource};
    let pem = |path: &Path| PemSource { name: path.display().to_string(), bytes: std::fs::read(path).unwrap() };
    let tls = amrelay::tls::ClientTls::check(ClientTlsOptions {
        ca: Some(pem(ca_file)),
        cert: identity.map(|(cert, _)| pem(cert)),
        key: identity.map(|(_, key)| pem(key)),
        insecure_skip_verify: false,
        min_version: MinVersion::Tls12,
    })
    .unwrap();
    let mut config = (*amrelay::tls::ClientConfigs::new().get(&tls).unwrap()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The outcome of one HTTPS exchange with the relay.
#[derive(Debug)]
pub struct TlsExchange {
    pub reply: Reply,
    /// `h2` or `http/1.1`, as negotiated by ALPN.
    pub alpn: Option<Vec<u8>>,
    /// The server's certificate, DER.
    pub server_cert: Vec<u8>,
}

/// Connects to `addr` over TLS with `client` and sends one request; `Err` holds the reason a
/// handshake or exchange failed.
pub async fn tls_request(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<TlsExchange, String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(client).connect(name, tcp).await.map_err(|e| e.to_string())?;
        let (_, session) = tls.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let server_cert = session.peer_certificates().and_then(|c| c.first()).map(|c| c.to_vec()).unwrap_or_default();
        let mut request = Request::builder().method(method).uri(format!("https://localhost{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let io = TokioIo::new(tls);
        let response = if alpn.as_deref() == Some(b"h2") {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            sender.send_request(request).await.map_err(|e| e.to_string())?
        } else {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let mut request = request;
            request.headers_mut().insert("host", "localhost".parse().unwrap());
            sender.send_request(request).await.map_err(|e| e.to_string())?
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(TlsExchange { reply: Reply { status: parts.status, headers: parts.headers, body }, alpn, server_cert })
    };
    tokio::time::timeout(WAIT, exchange).await.unwrap_or_else(|_| Err("timed out".into()))
}

/// The first certificate in a PEM file, DER.
pub fn first_cert_der(pem_file: &Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(pem_file).unwrap().next().unwrap().unwrap().to_vec()
}
