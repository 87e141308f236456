//! The direct Postgres connection, for the `db` commands only. Connecting
//! from `SUPABASE_DB_URL`, with TLS as libpq does it:
//! `sslmode=disable` is plain, `prefer` (the default) tries TLS and falls back,
//! `require` encrypts without checking the certificate (Supabase's database
//! certificates are signed by Supabase's own CA, not a public one), and
//! `verify-ca` / `verify-full` check it against the public roots or the
//! `sslrootcert` file. Error messages name host, port, database and user,
//! never the password.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Client;

use crate::config::Secret;
use crate::error::{Error, Result};

/// Where a `db` command connects, for messages: never the password.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "database \"{}\" on {}:{} as {}",
            self.database, self.host, self.port, self.user
        )
    }
}

/// How to check the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verification {
    None,
    Full,
}

struct ParsedUrl {
    config: tokio_postgres::Config,
    verification: Verification,
    root_cert: Option<String>,
}

/// Parses the URL (`postgres://` or key=value form) without ever echoing it.
fn parse(url: &Secret) -> Result<ParsedUrl> {
    // tokio-postgres knows disable/prefer/require; libpq's verify modes and
    // `sslrootcert` are taken out here and handled by the TLS setup.
    let mut verification = Verification::None;
    let mut root_cert = None;
    let text = url.expose().trim();
    let cleaned = match url::Url::parse(text) {
        Ok(mut parsed) if matches!(parsed.scheme(), "postgres" | "postgresql") => {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut kept = Vec::new();
            for (k, v) in pairs {
                match (k.as_str(), v.as_str()) {
                    ("sslmode", "verify-ca" | "verify-full") => {
                        verification = Verification::Full;
                        kept.push((k, "require".to_string()));
                    }
                    ("sslrootcert", _) => root_cert = Some(v),
                    _ => kept.push((k, v)),
                }
            }
            if kept.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
            parsed.to_string()
        }
        _ => text.to_string(),
    };
    let config = tokio_postgres::Config::from_str(&cleaned).map_err(|_| {
        Error::config(
            "SUPABASE_DB_URL is not a valid Postgres connection URL (expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE)",
        )
    })?;
    Ok(ParsedUrl {
        config,
        verification,
        root_cert,
    })
}

impl Target {
    /// The target of a database URL, for display.
    pub fn of(url: &Secret) -> Result<Self> {
        Ok(Self::from_config(&parse(url)?.config))
    }

    fn from_config(config: &tokio_postgres::Config) -> Self {
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();
        let database = config.get_dbname().unwrap_or(&user).to_string();
        Self {
            host,
            port,
            database,
            user,
        }
    }
}

/// Connects, drives the connection in the background, and returns the client.
pub async fn connect(url: &Secret) -> Result<(Client, Target)> {
    let parsed = parse(url)?;
    let target = Target::from_config(&parsed.config);
    let mut config = parsed.config;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(15));
    }
    config.application_name("mailsync");
    let failed = |e: tokio_postgres::Error| {
        let message = format!("cannot connect to {target}: {}", describe_connect_error(&e));
        // The server answered (a refused password, an unknown database):
        // configuration; no answer at all: unreachable.
        if e.as_db_error().is_some() {
            Error::config(message)
        } else {
            Error::unreachable(message)
        }
    };
    let client = if config.get_ssl_mode() == SslMode::Disable {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        tokio::spawn(connection);
        client
    } else {
        let tls = tls_config(parsed.verification, parsed.root_cert.as_deref())?;
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let (client, connection) = config.connect(connector).await.map_err(failed)?;
        tokio::spawn(connection);
        client
    };
    Ok((client, target))
}

/// A Postgres error as a person reads it: message, detail and hint, with the
/// SQLSTATE. Connection errors never contain the password.
pub fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; detail: {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            if let Some(where_) = db.where_() {
                text.push_str(&format!("; where: {where_}"));
            }
            text
        }
        None => e.to_string(),
    }
}

fn describe_connect_error(e: &tokio_postgres::Error) -> String {
    if e.as_db_error().is_some() {
        return describe_db_error(e);
    }
    // The source chain holds the useful part ("Connection refused").
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn tls_config(verification: Verification, root_cert: Option<&str>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failure(format!("setting up TLS: {e}")))?;
    let config = match verification {
        Verification::Full => {
            let mut roots = RootCertStore::empty();
            match root_cert {
                Some(path) => {
                    let pem = std::fs::read(path)
                        .map_err(|e| Error::config(format!("reading sslrootcert {path}: {e}")))?;
                    for cert in rustls_pemfile_certs(&pem) {
                        roots
                            .add(cert)
                            .map_err(|e| Error::config(format!("sslrootcert {path}: {e}")))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verification::None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Reads the certificates of a PEM file.
fn rustls_pemfile_certs(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(|c| c.ok())
        .collect()
}

/// libpq's `sslmode=require`: encrypt, but do not check who signed the
/// certificate. Signatures are still checked, so the session is encrypted
/// with the key the certificate names.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_never_shows_the_password() {
        let url = Secret::new(
            "postgresql://postgres:hunter2secret@db.example.co:6543/postgres?sslmode=verify-full",
        );
        let target = Target::of(&url).unwrap();
        let text = target.to_string();
        assert_eq!(target.host, "db.example.co");
        assert_eq!(target.port, 6543);
        assert!(!text.contains("hunter2secret"), "{text}");
    }

    #[test]
    fn malformed_url_is_a_config_error_without_the_value() {
        let err = Target::of(&Secret::new("postgresql://u:s3cr3t@host:notaport/db")).unwrap_err();
        assert_eq!(err.kind().exit_code(), 3);
        assert!(!err.message().contains("s3cr3t"));
    }
}
