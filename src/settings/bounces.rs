//! The bounce mailbox (`MAILSYNC_BOUNCES_URL`): the IMAP folder where
//! delivery reports and bounces arrive, as
//! `imaps://user:password@host[:port]/FOLDER` (`imap://`, without TLS, only
//! for a loopback host). Parsed and validated here; errors name the
//! variable and where it came from, never the value.

use std::fmt;

use url::Url;

use super::loopback::is_loopback_host;
use super::{Secret, Source};
use crate::error::{Error, Result};
use crate::t;

pub const ENV_BOUNCES_URL: &str = "MAILSYNC_BOUNCES_URL";
/// A PEM file of certificate authorities trusted for the IMAP server's
/// certificate besides the public roots.
pub const ENV_BOUNCES_CA_FILE: &str = "MAILSYNC_BOUNCES_CA_FILE";
/// The folder read when the URL names none.
pub const DEFAULT_FOLDER: &str = "INBOX";
/// IMAP over TLS from the first byte (`imaps://`).
pub const IMAPS_PORT: u16 = 993;
/// Plain IMAP (`imap://`, loopback only).
pub const IMAP_PORT: u16 = 143;

/// Where to read bounces: an IMAP server, an account and a folder.
#[derive(Clone, PartialEq, Eq)]
pub struct BounceMailbox {
    /// The host as written (an IPv6 address without its brackets).
    pub host: String,
    /// The URL's port, else 993 (`imaps://`) or 143 (`imap://`).
    pub port: u16,
    /// `imaps://`: TLS from the first byte. `false` only for a loopback host.
    pub tls: bool,
    /// The account, percent-decoded.
    pub user: String,
    /// The account's password, percent-decoded (empty when the URL has none).
    pub password: Secret,
    /// The folder, percent-decoded; `INBOX` when the URL names none.
    pub folder: String,
    /// The certificates of `MAILSYNC_BOUNCES_CA_FILE`, trusted besides the
    /// public roots (none when it is not set; not part of the URL).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl fmt::Debug for BounceMailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl BounceMailbox {
    /// Parses `imaps://user:password@host[:port]/FOLDER`. `source` names where
    /// the value came from, for the error message (which never repeats the
    /// value: it holds the password).
    pub fn parse(text: &str, source: &Source) -> Result<Self> {
        let bad = |why: String| {
            Error::config(t!(
                "bounces-url-error",
                setting = format!("{ENV_BOUNCES_URL} ({source})"),
                reason = why
            ))
            .with_hint(t!("bounces-url-hint", name = ENV_BOUNCES_URL))
        };
        let url = Url::parse(text.trim())
            .map_err(|e| bad(t!("bounces-url-invalid", reason = e.to_string())))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad(t!("bounces-url-no-host")))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_string();
        let (tls, default_port) = match url.scheme() {
            "imaps" => (true, IMAPS_PORT),
            "imap" if is_loopback_host(&host) => (false, IMAP_PORT),
            "imap" => return Err(bad(t!("bounces-url-plain-remote", host = host.as_str()))),
            _ => return Err(bad(t!("bounces-url-scheme"))),
        };
        let decode =
            |s: &str| super::percent_decode(s).map_err(|_| bad(t!("bounces-url-not-utf8")));
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(bad(t!("bounces-url-no-user")));
        }
        let password = Secret::new(url.password().map(decode).transpose()?.unwrap_or_default());
        let folder = decode(url.path().trim_start_matches('/'))?;
        let folder = if folder.is_empty() {
            DEFAULT_FOLDER.to_string()
        } else {
            folder
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            user,
            password,
            folder,
            extra_roots: Vec::new(),
        })
    }

    /// The URL with the password masked, for `mailsync config`, messages and
    /// logs: user and folder percent-encoded as a URL writes them.
    pub fn masked(&self) -> String {
        let scheme = if self.tls { "imaps" } else { "imap" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let shown = format!("{scheme}://{host}:{}/", self.port);
        let Ok(mut url) = Url::parse(&shown) else {
            return shown;
        };
        let _ = url.set_username(&self.user);
        if !self.password.expose().is_empty() {
            let _ = url.set_password(Some("******"));
        }
        url.set_path(&self.folder);
        url.to_string()
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BounceMailbox> {
        BounceMailbox::parse(text, &Source::Environment)
    }

    #[test]
    fn an_imaps_url_gives_every_part_decoded() {
        let m = parse("imaps://bounces%40acme.example:p%40ss%2Fw@imap.acme.example/Bounces%20In")
            .unwrap();
        assert_eq!(m.host, "imap.acme.example");
        assert_eq!(m.port, 993);
        assert!(m.tls);
        assert_eq!(m.user, "bounces@acme.example");
        assert_eq!(m.password.expose(), "p@ss/w");
        assert_eq!(m.folder, "Bounces In");
        assert_eq!(
            m.masked(),
            "imaps://bounces%40acme.example:******@imap.acme.example:993/Bounces%20In"
        );
        assert!(!format!("{m:?}").contains("p@ss"));
        let m = parse("imaps://u:p@imap.acme.example:1993").unwrap();
        assert_eq!((m.port, m.folder.as_str()), (1993, "INBOX"));
        let m = parse("imap://u:p@127.0.0.1/").unwrap();
        assert_eq!((m.port, m.tls, m.folder.as_str()), (143, false, "INBOX"));
        let m = parse("imap://u@[::1]:1143/INBOX").unwrap();
        assert_eq!((m.host.as_str(), m.port), ("::1", 1143));
        assert_eq!(m.password.expose(), "");
        assert_eq!(m.masked(), "imap://u@[::1]:1143/INBOX");
    }

    #[test]
    fn bad_urls_are_config_errors_naming_the_variable_not_the_password() {
        for bad in [
            "imap://u:hunter2@imap.acme.example/INBOX",
            "imap://u:hunter2@127.relay.example.com/INBOX",
            "imaps://:hunter2@imap.acme.example/INBOX",
            "imaps://imap.acme.example/INBOX",
            "https://u:hunter2@imap.acme.example/",
            "not a url hunter2",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Config, "{bad}");
            assert_eq!(e.kind().exit_code(), 3, "{bad}");
            assert!(e.message().contains(ENV_BOUNCES_URL), "{bad}: {e}");
            assert!(!e.message().contains("hunter2"), "{bad}: {e}");
        }
    }
}
