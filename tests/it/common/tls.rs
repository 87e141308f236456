//! TLS for the in-test servers: a self-signed certificate and the acceptor
//! that serves it.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor serving a new self-signed certificate for `name`, and that
/// certificate in PEM (for a client told to trust it).
pub fn self_signed_acceptor(name: &str) -> (TlsAcceptor, String) {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der())),
        )
        .unwrap();
    (TlsAcceptor::from(Arc::new(config)), cert.cert.pem())
}
