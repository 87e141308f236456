//! Where the bounce mailbox is: `MAILSYNC_BOUNCES_URL` read as
//! `imaps://user:password@host[:port]/FOLDER` (`imap://` only for a loopback
//! host). The password lives in a [`Secret`]; errors name the setting and
//! where it came from, never its value.

use url::Url;

use crate::config::{Secret, Source};
use crate::error::{Error, Result};
use crate::postgres::is_loopback_host;
use crate::t;

pub const ENV_BOUNCES_URL: &str = "MAILSYNC_BOUNCES_URL";

/// The bounce mailbox, parsed and checked.
#[derive(Clone)]
pub struct BounceMailbox {
    pub host: String,
    pub port: u16,
    /// `imaps://`: TLS from the first byte, the certificate verified.
    pub tls: bool,
    pub user: String,
    pub password: Secret,
    /// The folder the reports arrive in (`INBOX` unless the URL names one).
    pub folder: String,
}

impl std::fmt::Debug for BounceMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl BounceMailbox {
    /// Parses the URL. `source` says where it came from, for the message.
    pub fn parse(text: &str, source: &Source) -> Result<Self> {
        let setting = format!("{ENV_BOUNCES_URL} ({source})");
        let bad = |why: String| Error::config(format!("{setting} {why}"));
        let url = Url::parse(text.trim())
            .map_err(|e| bad(t!("mailbox-url-invalid", reason = e.to_string())))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad(t!("mailbox-url-no-host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let (tls, default_port) = match url.scheme() {
            "imaps" => (true, 993),
            "imap" if is_loopback_host(&host) => (false, 143),
            "imap" => return Err(bad(t!("mailbox-url-plain-remote", host = host.as_str()))),
            _ => return Err(bad(t!("mailbox-url-scheme"))),
        };
        let decode = |s: &str| {
            percent_decode(s)
                .filter(|v| !v.chars().any(char::is_control))
                .ok_or_else(|| bad(t!("mailbox-url-not-text")))
        };
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(bad(t!("mailbox-url-no-user")));
        }
        let password = Secret::new(decode(url.password().unwrap_or(""))?);
        let folder = decode(url.path().trim_start_matches('/'))?;
        let folder = if folder.is_empty() {
            "INBOX".to_string()
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
        })
    }

    /// The URL with the password masked, for messages and `--json`.
    pub fn masked(&self) -> String {
        let scheme = if self.tls { "imaps" } else { "imap" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "{scheme}://{}:******@{host}:{}/{}",
            self.user, self.port, self.folder
        )
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BounceMailbox> {
        BounceMailbox::parse(text, &Source::Environment)
    }

    #[test]
    fn imaps_defaults_to_port_993_and_inbox() {
        let m = parse("imaps://bounces%40acme.example:p%40ss@imap.acme.example").unwrap();
        assert_eq!(m.host, "imap.acme.example");
        assert_eq!(m.port, 993);
        assert!(m.tls);
        assert_eq!(m.user, "bounces@acme.example");
        assert_eq!(m.password.expose(), "p@ss");
        assert_eq!(m.folder, "INBOX");
        assert_eq!(
            m.masked(),
            "imaps://bounces@acme.example:******@imap.acme.example:993/INBOX"
        );
    }

    #[test]
    fn plain_imap_only_to_a_loopback_host() {
        let m = parse("imap://bounces:pw@127.0.0.1:10143/Reports%2F2026").unwrap();
        assert!(!m.tls);
        assert_eq!(m.port, 10143);
        assert_eq!(m.folder, "Reports/2026");
        for remote in [
            "imap://bounces:secret-pw@imap.acme.example/INBOX",
            "imap://bounces:secret-pw@127.imap.example/INBOX",
            "imap://bounces:secret-pw@10.0.0.1/INBOX",
        ] {
            let e = parse(remote).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Config, "{remote}");
            assert!(!e.to_string().contains("secret-pw"), "{e}");
        }
    }

    #[test]
    fn a_user_is_required_and_the_password_never_shows() {
        let e = parse("imaps://:secret-pw@imap.acme.example/").unwrap_err();
        assert!(!e.to_string().contains("secret-pw"));
        let e = parse("pop3://u:secret-pw@imap.acme.example/").unwrap_err();
        assert!(!e.to_string().contains("secret-pw"));
        let m = parse("imaps://u:secret-pw@imap.acme.example/").unwrap();
        assert!(!format!("{m:?}").contains("secret-pw"));
    }
}
