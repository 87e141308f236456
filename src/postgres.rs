//! The direct Postgres connection, for the `db` commands only, from
//! `SUPABASE_DB_URL`. It cannot be intercepted by default:
//!
//! * a database on this machine (a loopback address, `localhost`, a Unix
//!   socket) keeps libpq's `prefer`: TLS when offered, plain otherwise;
//! * any other host gets a verified TLS connection (`verify-full`) unless the
//!   URL says otherwise: the certificate must chain to Supabase's root CA
//!   (shipped in `certs/supabase-root-2021-ca.pem`) or a public root, or to
//!   the `sslrootcert` file when one is given, and name the host. `require`
//!   is verified too. Channel binding is used whenever the server offers
//!   SCRAM-SHA-256-PLUS over TLS (`channel_binding=require` insists on it);
//! * `sslmode=disable`, `allow` or `prefer` for such a host is honoured only
//!   because the user wrote it, and a warning says what it exposes.
//!
//! Where the server is *reached* (`hostaddr`) does not make a host local: the
//! name is what the certificate is checked against, and both must be local
//! for plain text to be the default.
//! Error messages name host, port, database and user, never the password.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::i18n::Lang;
use crate::output::Output;
use crate::settings::{is_loopback_host, Secret};
use crate::{t, t_in};

/// SQLSTATEs after which PostgreSQL has rolled the transaction back and asks
/// the client to run it again: `40P01` deadlock_detected, `40001`
/// serialization_failure. Nothing of the transaction was applied.
pub const ROLLED_BACK_CODES: [&str; 2] = ["40P01", "40001"];

/// Supabase's database root certificate ("Supabase Root 2021 CA", valid to
/// 2031-04-26), the file the dashboard offers as `prod-ca-2021.crt`.
pub const SUPABASE_ROOT_CA: &str = include_str!("../certs/supabase-root-2021-ca.pem");

/// Where a `db` command connects, for messages: never the password.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
}

impl Target {
    /// `database "postgres" on 127.0.0.1:54322 as postgres`, in `lang`.
    pub fn describe(&self, lang: Lang) -> String {
        t_in!(
            lang,
            "pg-target",
            database = self.database.as_str(),
            host = self.host.as_str(),
            port = self.port.to_string(),
            user = self.user.as_str()
        )
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(crate::i18n::current()))
    }
}

/// In JSON (`--json` of the db commands) the target is written in English.
impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe(Lang::En))
    }
}

/// The `sslmode` the user wrote, libpq's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Requested {
    fn of(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(Error::config(t!("pg-error-sslmode", mode = other))
                    .with_hint(t!("pg-hint-sslmode")))
            }
        })
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Encrypt when possible, check nothing (loopback, or asked for).
    None,
    /// The chain, not the name (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`, the default off this machine).
    Full,
}

/// What a connection will do, decided before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub ssl_mode: SslMode,
    pub verification: Verification,
    pub local: bool,
    /// Set when the user chose a mode that a network attacker can defeat.
    pub warning: Option<String>,
}

struct ParsedUrl {
    config: tokio_postgres::Config,
    requested: Option<Requested>,
    root_cert: Option<String>,
}

/// Query parameters of connection strings written for other clients:
/// Supabase's Dashboard adds `pgbouncer=true` for Prisma, which also reads
/// the others. None is a libpq setting, so tokio-postgres would refuse them.
const CLIENT_PARAMS: &[&str] = &[
    "pgbouncer",
    "connection_limit",
    "pool_timeout",
    "socket_timeout",
    "statement_cache_size",
    "schema",
    "sslaccept",
];

/// Takes `sslmode` and `sslrootcert` out of a URL or key=value string: the
/// TLS setup here handles them (tokio-postgres knows only three modes).
fn take_tls_params(text: &str) -> (String, Option<String>, Option<String>) {
    let mut mode = None;
    let mut root = None;
    if let Ok(mut parsed) = url::Url::parse(text) {
        if matches!(parsed.scheme(), "postgres" | "postgresql") {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut kept = Vec::new();
            for (k, v) in pairs {
                match k.as_str() {
                    "sslmode" => mode = Some(v),
                    "sslrootcert" => root = Some(v),
                    // For other clients (Prisma, Supabase's Dashboard
                    // strings), not libpq settings: ignored.
                    k if CLIENT_PARAMS.contains(&k) => {}
                    _ => kept.push((k, v)),
                }
            }
            if kept.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
            return (parsed.to_string(), mode, root);
        }
    }
    if text.contains("://") {
        return (text.to_string(), None, None);
    }
    // key=value form (values without spaces).
    let mut kept = Vec::new();
    for token in text.split_whitespace() {
        match token.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_string()),
            Some(("sslrootcert", v)) => root = Some(v.to_string()),
            _ => kept.push(token),
        }
    }
    (kept.join(" "), mode, root)
}

/// Parses the URL (`postgres://` or key=value form) without ever echoing it.
fn parse(url: &Secret) -> Result<ParsedUrl> {
    let (cleaned, mode, root_cert) = take_tls_params(url.expose().trim());
    let requested = mode.as_deref().map(Requested::of).transpose()?;
    let config = tokio_postgres::Config::from_str(&cleaned)
        .map_err(|_| Error::config(t!("pg-error-url-invalid")))?;
    Ok(ParsedUrl {
        config,
        requested,
        root_cert,
    })
}

fn is_local(config: &tokio_postgres::Config) -> bool {
    let hosts_local = config.get_hosts().iter().all(|h| match h {
        Host::Tcp(name) => is_loopback_host(name),
        #[cfg(unix)]
        Host::Unix(_) => true,
    });
    let addrs_local = config.get_hostaddrs().iter().all(|a| a.is_loopback());
    // No host at all means libpq's default: the local socket.
    hosts_local && addrs_local
}

fn policy_of(parsed: &ParsedUrl, target: &Target) -> Policy {
    let local = is_local(&parsed.config);
    let exposed = |what: String| {
        Some(t!(
            "pg-warning-exposed",
            what = what,
            target = target.to_string()
        ))
    };
    let (ssl_mode, verification, warning) = match (parsed.requested, local) {
        (None, true) => (SslMode::Prefer, Verification::None, None),
        (None, false) => (SslMode::Require, Verification::Full, None),
        (Some(Requested::Disable), true) => (SslMode::Disable, Verification::None, None),
        (Some(Requested::Disable), false) => (
            SslMode::Disable,
            Verification::None,
            exposed(t!("pg-exposed-disable")),
        ),
        (Some(Requested::Allow | Requested::Prefer), true) => {
            (SslMode::Prefer, Verification::None, None)
        }
        (Some(weak @ (Requested::Allow | Requested::Prefer)), false) => (
            SslMode::Prefer,
            Verification::None,
            exposed(t!(
                "pg-exposed-weak",
                mode = if weak == Requested::Allow {
                    "allow"
                } else {
                    "prefer"
                }
            )),
        ),
        // Stricter than libpq off this machine: `require` checks the
        // certificate, as libpq does when a root certificate file exists.
        (Some(Requested::Require), true) => (SslMode::Require, Verification::None, None),
        (Some(Requested::Require), false) => (SslMode::Require, Verification::Full, None),
        (Some(Requested::VerifyCa), _) => (SslMode::Require, Verification::Chain, None),
        (Some(Requested::VerifyFull), _) => (SslMode::Require, Verification::Full, None),
    };
    Policy {
        ssl_mode,
        verification,
        local,
        warning,
    }
}

/// What a connection to `url` will do, without connecting.
pub fn policy(url: &Secret) -> Result<Policy> {
    let parsed = parse(url)?;
    let target = Target::from_config(&parsed.config);
    Ok(policy_of(&parsed, &target))
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

/// Connects, drives the connection in the background, and returns the
/// client. The TLS policy ([`policy`]) is decided first; a warning about an
/// explicitly weakened mode goes to stderr through `out`.
pub async fn connect(url: &Secret, out: &Output) -> Result<(Client, Target)> {
    let parsed = parse(url)?;
    let target = Target::from_config(&parsed.config);
    let policy = policy_of(&parsed, &target);
    if let Some(warning) = &policy.warning {
        out.note(warning);
    }
    let mut config = parsed.config.clone();
    config.ssl_mode(policy.ssl_mode);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(15));
    }
    config.application_name("mailsync");
    let verified = policy.verification != Verification::None;
    let failed = |e: tokio_postgres::Error| {
        let reason = describe_connect_error(&e);
        let message = t!(
            "pg-error-connect",
            target = target.to_string(),
            reason = reason.as_str()
        );
        // The server answered (a refused password, an unknown database):
        // configuration; no answer at all: unreachable.
        if e.as_db_error().is_some() {
            Error::config(message)
        } else if verified && is_tls_refusal(&reason) {
            Error::config(t!(
                "pg-error-unverified",
                target = target.to_string(),
                reason = reason.as_str()
            ))
            .with_hint(t!("pg-hint-unverified"))
        } else {
            Error::unreachable(message)
        }
    };
    let client = if policy.ssl_mode == SslMode::Disable {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(failed)?;
        tokio::spawn(connection);
        client
    } else {
        let tls = tls_config(policy.verification, parsed.root_cert.as_deref())?;
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
        let (client, connection) = config.connect(connector).await.map_err(failed)?;
        tokio::spawn(connection);
        client
    };
    Ok((client, target))
}

/// A connection that failed in the TLS step (no TLS offered, a certificate
/// that does not verify), as opposed to a host that does not answer.
fn is_tls_refusal(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    ["tls", "certificate", "ssl", "handshake"]
        .iter()
        .any(|w| reason.contains(w))
}

/// A Postgres error as a person reads it: message, detail and hint, with the
/// SQLSTATE. Connection errors never contain the password.
pub fn describe_db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            // The server's own words, labelled in the run's language.
            let mut text = t!(
                "pg-db-error",
                message = db.message(),
                code = db.code().code()
            );
            if let Some(detail) = db.detail() {
                text.push_str(&t!("pg-db-error-detail", detail = detail));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&t!("pg-db-error-hint", hint = hint));
            }
            if let Some(where_) = db.where_() {
                text.push_str(&t!("pg-db-error-where", place = where_));
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

/// The roots a verified connection trusts: the `sslrootcert` file alone
/// when given (`system`: the public roots), else Supabase's root CA and the
/// public roots.
fn root_store(root_cert: Option<&str>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some("system") => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::config(t!(
                    "pg-error-rootcert-read",
                    path = path,
                    reason = e.to_string()
                ))
            })?;
            let certs = rustls_pemfile_certs(&pem);
            if certs.is_empty() {
                return Err(Error::config(t!("pg-error-rootcert-empty", path = path)));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| Error::config(format!("sslrootcert {path}: {e}")))?;
            }
        }
        None => {
            for cert in rustls_pemfile_certs(SUPABASE_ROOT_CA.as_bytes()) {
                roots.add(cert).map_err(|e| {
                    Error::failure(t!("pg-error-bundled-ca", reason = e.to_string()))
                })?;
            }
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    Ok(roots)
}

fn tls_config(verification: Verification, root_cert: Option<&str>) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failure(t!("error-tls-setup", reason = e.to_string())))?;
    let config = match verification {
        Verification::Full => builder
            .with_root_certificates(root_store(root_cert)?)
            .with_no_client_auth(),
        Verification::Chain => {
            let inner = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(root_cert)?),
                provider.clone(),
            )
            .build()
            .map_err(|e| Error::failure(t!("error-tls-setup", reason = e.to_string())))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
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

/// libpq's `verify-ca`: the chain must lead to a trusted root; the name in
/// the certificate is not compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// An unverified TLS session: `prefer`/`allow` asked for explicitly, or a
/// loopback host. Encrypts, but does not check who signed the
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
    fn remote_hosts_default_to_verified_tls_and_loopback_to_prefer() {
        let p = |url: &str| policy(&Secret::new(url)).unwrap();
        let remote = p("postgresql://postgres:pw@db.abc.supabase.co:5432/postgres");
        assert_eq!(remote.verification, Verification::Full);
        assert_eq!(remote.ssl_mode, SslMode::Require);
        assert!(remote.warning.is_none());
        let required = p("postgresql://postgres:pw@db.abc.supabase.co/postgres?sslmode=require");
        assert_eq!(required.verification, Verification::Full);
        let ca = p("postgresql://postgres:pw@db.abc.supabase.co/postgres?sslmode=verify-ca");
        assert_eq!(ca.verification, Verification::Chain);
        for weak in ["disable", "prefer", "allow"] {
            let w = p(&format!(
                "postgresql://postgres:pw@db.abc.supabase.co/postgres?sslmode={weak}"
            ));
            assert_eq!(w.verification, Verification::None);
            assert!(w.warning.as_deref().unwrap().contains(weak), "{weak}");
            assert!(!w.warning.unwrap().contains("pw@"));
        }
        for local in [
            "postgresql://postgres:pw@127.0.0.1:54322/postgres",
            "postgresql://postgres:pw@localhost/postgres",
            "postgresql://postgres:pw@[::1]:5432/postgres",
            "host=/var/run/postgresql user=postgres",
        ] {
            let l = p(local);
            assert!(l.local, "{local}");
            assert_eq!(l.ssl_mode, SslMode::Prefer, "{local}");
            assert!(l.warning.is_none());
        }
        // Reached on loopback, but named as a remote host: not local.
        let tunnel =
            p("postgresql://postgres:pw@db.abc.supabase.co:5432/postgres?hostaddr=127.0.0.1");
        assert!(!tunnel.local);
        // Named local, reached elsewhere: not local either.
        let elsewhere = p("postgresql://postgres:pw@localhost:5432/postgres?hostaddr=10.1.2.3");
        assert!(!elsewhere.local);
        // Only looks like loopback: another machine, verified TLS.
        let lookalike = p("postgresql://postgres:pw@127.relay.example.com:5432/postgres");
        assert!(!lookalike.local);
        assert_eq!(lookalike.verification, Verification::Full);
        assert!(policy(&Secret::new("postgresql://u:pw@h/db?sslmode=bogus")).is_err());
    }

    #[test]
    fn dashboard_and_prisma_parameters_are_accepted() {
        let url = Secret::new(
            "postgresql://postgres.abcdefgh:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres?pgbouncer=true&connection_limit=1&sslmode=require&application_name=x",
        );
        let target = Target::of(&url).unwrap();
        assert_eq!(target.port, 6543);
        assert_eq!(policy(&url).unwrap().verification, Verification::Full);
        // Not every unknown parameter: a typo is still refused.
        assert!(Target::of(&Secret::new("postgresql://u:pw@h/db?sslmod=require")).is_err());
    }

    #[test]
    fn the_bundled_supabase_root_is_a_certificate() {
        assert_eq!(rustls_pemfile_certs(SUPABASE_ROOT_CA.as_bytes()).len(), 1);
        assert!(root_store(None).unwrap().len() > 100);
    }

    #[test]
    fn malformed_url_is_a_config_error_without_the_value() {
        let err = Target::of(&Secret::new("postgresql://u:s3cr3t@host:notaport/db")).unwrap_err();
        assert_eq!(err.kind().exit_code(), 3);
        assert!(!err.message().contains("s3cr3t"));
    }
}
