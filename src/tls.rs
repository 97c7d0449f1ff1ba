//! TLS material and rustls configuration: outbound connections, and the listener's server config.
//!
//! Everything is built at config load, so a bad CA, certificate or key is a config error with
//! the file named, never a surprise at the first delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// PEM text and where it came from (a path, or the config field for inline PEM).
#[derive(Debug, Clone)]
pub struct PemSource {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The lowest TLS version to negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

/// What `tls_config:` asks for.
#[derive(Debug, Clone)]
pub struct ClientTlsOptions {
    pub ca: Option<PemSource>,
    pub cert: Option<PemSource>,
    pub key: Option<PemSource>,
    pub insecure_skip_verify: bool,
    pub min_version: MinVersion,
}

impl ClientTlsOptions {
    /// A hash of everything that shapes the TLS config: equal fingerprints mean an unchanged client.
    pub fn fingerprint(&self, server_name: Option<&str>) -> u64 {
        let mut bytes = Vec::new();
        for source in [&self.ca, &self.cert, &self.key] {
            bytes.extend_from_slice(source.as_ref().map_or(&b"-"[..], |s| &s.bytes));
            bytes.push(0);
        }
        bytes.extend_from_slice(server_name.unwrap_or("").as_bytes());
        bytes.push(self.insecure_skip_verify as u8);
        bytes.push(self.min_version as u8);
        crate::fingerprint::fnv1a(&bytes)
    }
}

/// The crypto provider amrelay uses everywhere (ring: small, no C toolchain beyond cc).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

/// The system's CA certificates, read once per process.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let result = rustls_native_certs::load_native_certs();
        for error in &result.errors {
            tracing::warn!(error = %error, "could not read some system CA certificates");
        }
        result.certs
    })
}

/// Parses every certificate in a PEM source.
pub fn certificates(source: &PemSource) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&source.bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: invalid PEM certificate: {e}", source.name))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", source.name));
    }
    Ok(certs)
}

/// Parses the private key in a PEM source (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(source: &PemSource) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(&source.bytes).map_err(|e| format!("{}: no valid PEM private key: {e}", source.name))
}

/// Client configs already built, by [`ClientTlsOptions::fingerprint`]: a reload with unchanged
/// TLS settings reuses them instead of parsing the system's CA store again.
fn built() -> &'static Mutex<HashMap<u64, Arc<ClientConfig>>> {
    static BUILT: OnceLock<Mutex<HashMap<u64, Arc<ClientConfig>>>> = OnceLock::new();
    BUILT.get_or_init(Mutex::default)
}

/// Builds (or reuses) the rustls client config for one receiver.
pub fn client_config(options: &ClientTlsOptions) -> Result<Arc<ClientConfig>, String> {
    let key = options.fingerprint(None);
    if let Some(config) = built().lock().expect("tls cache").get(&key) {
        return Ok(config.clone());
    }
    let config = build_client_config(options)?;
    let mut cache = built().lock().expect("tls cache");
    if cache.len() >= 256 {
        cache.clear();
    }
    cache.insert(key, config.clone());
    Ok(config)
}

fn build_client_config(options: &ClientTlsOptions) -> Result<Arc<ClientConfig>, String> {
    let versions: &[&rustls::SupportedProtocolVersion] = match options.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = if options.insecure_skip_verify {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert))
    } else {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(native_roots().iter().cloned());
        if let Some(ca) = &options.ca {
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|e| format!("{}: unusable CA certificate: {e}", ca.name))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&options.cert, &options.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| format!("{} and {} do not form a usable client identity: {e}", cert.name, key.name))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("cert and key must be given together".into()),
    };
    Ok(Arc::new(config))
}

/// What `server.tls_server_config:` asks for.
#[derive(Debug, Clone)]
pub struct ServerTlsOptions {
    pub cert: PemSource,
    pub key: PemSource,
    /// CA certificates that client certificates must chain to.
    pub client_ca: Option<PemSource>,
    /// Refuse clients without a certificate (otherwise one is verified only if given).
    pub require_client_cert: bool,
    pub min_version: MinVersion,
}

/// Builds the listener's rustls config: HTTP/2 and HTTP/1.1 by ALPN, client certificates verified
/// against `client_ca` when one is given.
pub fn server_config(options: &ServerTlsOptions) -> Result<Arc<rustls::ServerConfig>, String> {
    let versions: &[&rustls::SupportedProtocolVersion] = match options.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &options.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots.add(cert).map_err(|e| format!("{}: unusable CA certificate: {e}", ca.name))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if options.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("{}: {e}", ca.name))?)
        }
        None => builder.with_no_client_auth(),
    };
    let (cert, key) = (&options.cert, &options.key);
    let mut config = builder
        .with_single_cert(certificates(cert)?, private_key(key)?)
        .map_err(|e| format!("{} and {} do not form a usable server identity: {e}", cert.name, key.name))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The verifier behind `insecure_skip_verify: true`: accepts any certificate, checks signatures.
#[derive(Debug)]
struct AcceptAnyServerCert;

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}
