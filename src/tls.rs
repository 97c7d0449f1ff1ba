//! TLS material and rustls configuration: outbound connections, and the listener's server config.
//!
//! Two phases, as everywhere in amrelay. Parsing ([`ClientTls::check`], [`server_config`]) reads
//! no global state: it parses every certificate and key and builds the rustls config once as a
//! trial (outbound: with an empty root store plus the configured CA), so a bad CA, certificate
//! or key is a config error with the file named, never a surprise at the first delivery. Building
//! the outbound config for real adds the operating system's CA store — unless a CA is configured,
//! which replaces it as in Alertmanager — which only the build step loads, through a
//! [`ClientConfigs`] cache that its owner (the reloader) keeps across reloads.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// PEM text and where it came from (a path, or the config field for inline PEM).
#[derive(Clone)]
pub struct PemSource {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The name and size only: the bytes may be a private key.
impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemSource").field("name", &self.name).field("bytes", &self.bytes.len()).finish()
    }
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

/// The operating system's CA certificates. Unreadable ones are logged and skipped.
fn native_roots() -> Vec<CertificateDer<'static>> {
    let result = rustls_native_certs::load_native_certs();
    for error in &result.errors {
        tracing::warn!(error = %error, "could not read some system CA certificates");
    }
    result.certs
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

/// Outbound TLS options that [`ClientTls::check`] has accepted: building a client config from
/// them can only differ from the trial build by the system roots it adds.
#[derive(Debug, Clone)]
pub struct ClientTls {
    options: ClientTlsOptions,
    /// [`ClientTlsOptions::fingerprint`] without a server name: what the built config depends on.
    key: u64,
}

impl ClientTls {
    /// Parses every certificate and key in `options` and builds the client config once with an
    /// empty root store plus the CA, without reading the system's CA store: an unusable CA or a
    /// certificate that does not match its key is an error naming the file.
    pub fn check(options: ClientTlsOptions) -> Result<ClientTls, String> {
        build_client_config(&options, &[])?;
        let key = options.fingerprint(None);
        Ok(ClientTls { options, key })
    }

    /// The options as checked.
    pub fn options(&self) -> &ClientTlsOptions {
        &self.options
    }
}

/// Most client configs a [`ClientConfigs`] keeps; beyond it, it starts afresh.
const MAX_CACHED_CLIENT_CONFIGS: usize = 256;

/// Builds outbound rustls configs with the system's CA store, and reuses them by fingerprint, so a
/// reload with unchanged TLS settings neither reads the CA store again nor rebuilds a config.
///
/// A plain value with `&mut self` methods: its owner (the reloader, or a one-shot command)
/// decides how it is shared. The system roots are loaded once, on the first verifying config.
#[derive(Default)]
pub struct ClientConfigs {
    system_roots: Option<Vec<CertificateDer<'static>>>,
    built: HashMap<u64, Arc<ClientConfig>>,
}

impl ClientConfigs {
    /// An empty cache; the system roots are read when first needed.
    pub fn new() -> Self {
        ClientConfigs::default()
    }

    /// A cache that uses `roots` in place of the operating system's CA store.
    pub fn with_system_roots(roots: Vec<CertificateDer<'static>>) -> Self {
        ClientConfigs { system_roots: Some(roots), built: HashMap::new() }
    }

    /// The client config for `tls`. A configured CA *replaces* the system roots, as in
    /// Alertmanager (Go's `tls.Config.RootCAs`): pinning a private CA then trusts nothing else.
    /// Without a CA the system roots are trusted. Configs with the same fingerprint are built once.
    pub fn get(&mut self, tls: &ClientTls) -> Result<Arc<ClientConfig>, String> {
        if let Some(config) = self.built.get(&tls.key) {
            return Ok(config.clone());
        }
        let roots: &[CertificateDer<'static>] = if tls.options.insecure_skip_verify || tls.options.ca.is_some() {
            &[]
        } else {
            self.system_roots.get_or_insert_with(native_roots)
        };
        let config = build_client_config(&tls.options, roots)?;
        if self.built.len() >= MAX_CACHED_CLIENT_CONFIGS {
            self.built.clear();
        }
        self.built.insert(tls.key, config.clone());
        Ok(config)
    }

    /// How many configs are kept.
    pub fn len(&self) -> usize {
        self.built.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.built.is_empty()
    }
}

impl fmt::Debug for ClientConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfigs")
            .field("system_roots", &self.system_roots.as_ref().map(Vec::len))
            .field("built", &self.built.len())
            .finish()
    }
}

/// Builds an outbound config trusting `system_roots` and the configured CA (callers pass no
/// system roots when a CA is configured or certificates are not verified).
fn build_client_config(
    options: &ClientTlsOptions,
    system_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
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
        roots.add_parsable_certificates(system_roots.iter().cloned());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (PemSource, PemSource) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap().self_signed(&key).unwrap();
        (
            PemSource { name: format!("{name}.crt"), bytes: cert.pem().into_bytes() },
            PemSource { name: format!("{name}.key"), bytes: key.serialize_pem().into_bytes() },
        )
    }

    fn options(ca: Option<PemSource>) -> ClientTlsOptions {
        ClientTlsOptions { ca, cert: None, key: None, insecure_skip_verify: false, min_version: MinVersion::Tls12 }
    }

    #[test]
    fn client_configs_are_reused_by_fingerprint() {
        // Given roots: the test must not depend on (or read) the machine's CA store.
        let mut cache = ClientConfigs::with_system_roots(Vec::new());
        let (ca, _) = self_signed("ca.example");
        let with_ca = ClientTls::check(options(Some(ca.clone()))).unwrap();
        let first = cache.get(&with_ca).unwrap();
        // Checked again, as a reload does: same material, same fingerprint, the same config.
        let again = ClientTls::check(options(Some(ca))).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&again).unwrap()));
        assert_eq!(cache.len(), 1);

        let tls13 = ClientTls::check(ClientTlsOptions { min_version: MinVersion::Tls13, ..options(None) }).unwrap();
        assert!(!Arc::ptr_eq(&first, &cache.get(&tls13).unwrap()));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let mut cache = ClientConfigs::with_system_roots(Vec::new());
        for i in 0..=MAX_CACHED_CLIENT_CONFIGS {
            let name = format!("{i}.example");
            let tls = ClientTls { options: options(None), key: crate::fingerprint::fnv1a(name.as_bytes()) };
            cache.get(&tls).unwrap();
        }
        assert!(cache.len() <= MAX_CACHED_CLIENT_CONFIGS);
    }

    #[test]
    fn checking_names_the_file_of_a_mismatched_key() {
        let (cert, _) = self_signed("a.example");
        let (_, other_key) = self_signed("b.example");
        let error =
            ClientTls::check(ClientTlsOptions { cert: Some(cert), key: Some(other_key), ..options(None) }).unwrap_err();
        assert!(error.contains("a.example.crt and b.example.key do not form a usable client identity"), "{error}");
    }

    #[test]
    fn checking_refuses_a_ca_that_is_not_a_certificate() {
        let (_, key) = self_signed("ca.example");
        let not_a_cert = PemSource { name: "ca.pem".into(), ..key };
        let error = ClientTls::check(options(Some(not_a_cert))).unwrap_err();
        assert!(error.starts_with("ca.pem: "), "{error}");
    }

    #[test]
    fn pem_sources_never_print_their_bytes() {
        let (_, key) = self_signed("a.example");
        let printed = format!("{key:?}");
        assert!(printed.contains("a.example.key") && !printed.contains("PRIVATE KEY"), "{printed}");
    }
}
