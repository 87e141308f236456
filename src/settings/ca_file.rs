//! The CA file settings (`MAILSYNC_SMTP_CA_FILE`, `MAILSYNC_BOUNCES_CA_FILE`):
//! a PEM file of certificate authorities trusted besides the public roots,
//! and the root store a TLS client builds from both.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::Source;
use crate::error::{Error, Result};
use crate::t;

/// A CA file setting (`name`: `MAILSYNC_SMTP_CA_FILE`,
/// `MAILSYNC_BOUNCES_CA_FILE`): the certificates of a PEM file, at least
/// one. A configuration error (exit 3) names the variable and the path.
pub fn read_ca_file(
    name: &str,
    path: &str,
    source: &Source,
) -> Result<Vec<CertificateDer<'static>>> {
    let setting = format!("{name} ({source})");
    let pem = std::fs::read(path).map_err(|e| {
        Error::config(t!(
            "settings-error-ca-file-read",
            setting = setting.as_str(),
            path = path,
            reason = e.to_string()
        ))
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(Error::config(t!(
            "settings-error-ca-file-empty",
            setting = setting.as_str(),
            path = path
        )));
    }
    Ok(certs)
}

/// webpki's public roots and `extra` (a CA file's authorities): what the
/// SMTP and IMAP clients trust.
pub fn public_roots_and(
    extra: &[CertificateDer<'static>],
) -> std::result::Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra {
        roots.add(cert.clone())?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_is_read_whole_and_a_bad_one_names_the_variable_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let one = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap();
        let two = rcgen::generate_simple_self_signed(vec!["ca2.example".into()]).unwrap();
        let good = dir.path().join("cas.pem");
        std::fs::write(&good, format!("{}\n{}", one.cert.pem(), two.cert.pem())).unwrap();
        let read = |path: &std::path::Path| {
            read_ca_file(
                crate::settings::ENV_SMTP_CA_FILE,
                path.to_str().unwrap(),
                &Source::Environment,
            )
        };
        let certs = read(&good).unwrap();
        assert_eq!(certs.len(), 2);

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for (path, says) in [(&empty, "no PEM certificate"), (&missing, "reading")] {
            let e = read(path).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Config, "{e}");
            let text = e.message();
            assert!(
                text.contains(crate::settings::ENV_SMTP_CA_FILE)
                    && text.contains(path.to_str().unwrap()),
                "{text}"
            );
            assert!(text.contains(says), "{text}");
        }
    }
}
