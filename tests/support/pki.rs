//! A throw-away PKI (CA, server and client certificates) generated per test, so TLS tests
//! need no checked-in keys and no outside tool such as openssl.

use std::path::Path;
use std::sync::Arc;

/// A CA with a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files.
pub struct Pki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl Pki {
    /// Creates the PKI, writing `ca.pem`, `server.pem`, `server-key.pem`, `client.pem` and
    /// `client-key.pem` into `dir`. `name` makes distinct CAs distinguishable.
    pub fn create(dir: &Path, name: &str) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let server_params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["amrelay-client".to_string()]).unwrap();
        client_params.distinguished_name.push(DnType::CommonName, "amrelay client");
        let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

        let files = [
            ("ca.pem", ca_cert.pem()),
            ("server.pem", server_cert.pem()),
            ("server-key.pem", server_key.serialize_pem()),
            ("client.pem", client_cert.pem()),
            ("client-key.pem", client_key.serialize_pem()),
        ];
        for (file, pem) in &files {
            std::fs::write(dir.join(file), pem).unwrap();
        }
        Pki { ca_pem: ca_cert.pem(), server_cert_pem: server_cert.pem(), server_key_pem: server_key.serialize_pem() }
    }

    /// A rustls server config with this PKI's server certificate; with `require_client_cert`,
    /// clients must present a certificate signed by this CA.
    pub fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let provider = amrelay::tls::provider();
        let certs: Vec<CertificateDer> =
            CertificateDer::pem_slice_iter(self.server_cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.server_key_pem.as_bytes()).unwrap();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}
