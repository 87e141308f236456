//! The delivery settings of `campaigns deliver`, typed: the SMTP server
//! (`MAILSYNC_SMTP_URL`, parsed into [`SmtpServer`]), the sender
//! (`MAILSYNC_FROM`), the envelope sender (`MAILSYNC_RETURN_PATH`, default
//! the From address), `MAILSYNC_LIST_UNSUBSCRIBE` and the certificate
//! authorities of a private relay (`MAILSYNC_SMTP_CA_FILE`). Parsed and validated
//! here, from values the settings layer resolved; errors name the variable
//! and where it came from, never the value (it may hold a password).

use lettre::message::Mailbox;
use lettre::Address;
use rustls::pki_types::CertificateDer;
use url::Url;

use super::loopback::is_loopback_host;
use super::{Secret, Source};
use crate::error::{Error, Result};
use crate::local_stack::{self, LOCAL_FROM};
use crate::t;

pub const ENV_SMTP_URL: &str = "MAILSYNC_SMTP_URL";
pub const ENV_FROM: &str = "MAILSYNC_FROM";
pub const ENV_LIST_UNSUBSCRIBE: &str = "MAILSYNC_LIST_UNSUBSCRIBE";
/// The key of `{{unsubscribe_token}}` (HMAC-SHA256), at least
/// [`UNSUBSCRIBE_SECRET_MIN`] characters.
pub const ENV_UNSUBSCRIBE_SECRET: &str = "MAILSYNC_UNSUBSCRIBE_SECRET";
pub const UNSUBSCRIBE_SECRET_MIN: usize = 32;
/// The envelope sender (`MAIL FROM`): where delivery reports and bounces
/// come back. Default: the From address.
pub const ENV_RETURN_PATH: &str = "MAILSYNC_RETURN_PATH";
/// A PEM file of certificate authorities trusted for the SMTP server's
/// certificate besides the public roots (a relay signed by a company's own
/// authority).
pub const ENV_SMTP_CA_FILE: &str = "MAILSYNC_SMTP_CA_FILE";

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtps://`: TLS from the first byte (port 465).
    ImplicitTls,
    /// `smtp://` to another machine: STARTTLS, and refuse a server without it.
    StartTls,
    /// `smtp://` to this machine (the local stack's catcher): plain text.
    Plain,
}

/// Where and how to send: parsed from `MAILSYNC_SMTP_URL`.
#[derive(Clone)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub user: Option<String>,
    pub password: Option<Secret>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl SmtpServer {
    /// Parses `smtp://user:pass@host:587` or `smtps://user:pass@host:465`.
    /// `source` names where the value came from, for the error message
    /// (which never repeats the value: it may hold the password).
    pub fn parse(text: &str, source: &Source) -> Result<Self> {
        let setting = format!("{ENV_SMTP_URL} ({source})");
        let bad = |why: String| Error::config(format!("{setting} {why}"));
        let url = Url::parse(text.trim())
            .map_err(|e| bad(t!("smtp-url-invalid", reason = e.to_string())))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad(t!("smtp-url-no-host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let local = is_loopback_host(&host);
        let (security, default_port) = match url.scheme() {
            "smtps" => (Security::ImplicitTls, 465),
            "smtp" if local => (Security::Plain, 587),
            "smtp" => (Security::StartTls, 587),
            _ => return Err(bad(t!("smtp-url-scheme"))),
        };
        let decode = |s: &str| super::percent_decode(s).map_err(|_| bad(t!("smtp-url-not-utf8")));
        let user = match url.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = url.password().map(decode).transpose()?.map(Secret::new);
        if password.is_some() && user.is_none() {
            return Err(bad(t!("smtp-url-password-no-user")));
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            user,
            password,
        })
    }

    /// The URL with the password masked, for `mailsync config`, messages and logs.
    pub fn masked(&self) -> String {
        let scheme = if self.security == Security::ImplicitTls {
            "smtps"
        } else {
            "smtp"
        };
        let auth = match (&self.user, &self.password) {
            (Some(u), Some(_)) => format!("{u}:******@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{auth}{host}:{}", self.port)
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Everything `deliver` needs to know about sending, resolved.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub server: SmtpServer,
    pub server_source: Source,
    pub from: Mailbox,
    pub from_source: Source,
    /// The envelope sender (`MAIL FROM`, the Return-Path): where delivery
    /// reports and bounces come back. The From address unless
    /// `MAILSYNC_RETURN_PATH` says otherwise.
    pub return_path: Address,
    pub return_path_source: Source,
    /// A `mailto:` or `https:` URL, with merge fields, for `List-Unsubscribe`.
    pub list_unsubscribe: Option<String>,
    /// `MAILSYNC_UNSUBSCRIBE_SECRET`: set whenever the URL uses
    /// `{{unsubscribe_token}}`.
    pub unsubscribe_secret: Option<Secret>,
    /// The certificates of `MAILSYNC_SMTP_CA_FILE`, trusted besides the
    /// public roots (none when it is not set).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

impl SmtpSettings {
    /// Resolves the settings. `lookup` answers a variable's value and where
    /// it came from (flag > environment > env file); `local_api_port` is the
    /// local stack's API port when the project is the local stack, whose
    /// SMTP server is then the default.
    pub fn resolve(
        lookup: impl Fn(&str) -> Option<(String, Source)>,
        local_api_port: Option<u16>,
    ) -> Result<Self> {
        let (server, server_source) = match lookup(ENV_SMTP_URL) {
            Some((text, source)) => (SmtpServer::parse(&text, &source)?, source),
            None => match local_api_port {
                Some(api) => (
                    SmtpServer::parse(&local_stack::smtp_url(api), &Source::Default)?,
                    Source::Default,
                ),
                None => return Err(Error::config(t!("smtp-error-no-url", name = ENV_SMTP_URL))),
            },
        };
        let (from_text, from_source) = match lookup(ENV_FROM) {
            Some(found) => found,
            None if is_loopback_host(&server.host) => (LOCAL_FROM.to_string(), Source::Default),
            None => return Err(Error::config(t!("smtp-error-no-from", name = ENV_FROM))),
        };
        let from: Mailbox =
            from_text
                .trim()
                .parse()
                .map_err(|e: lettre::address::AddressError| {
                    Error::config(t!(
                        "smtp-error-from-invalid",
                        setting = format!("{ENV_FROM} ({from_source})"),
                        reason = e.to_string()
                    ))
                })?;
        let (return_path, return_path_source) = match lookup(ENV_RETURN_PATH) {
            None => (from.email.clone(), from_source.clone()),
            Some((text, source)) => (parse_return_path(&text, &source)?, source),
        };
        let unsubscribe_secret = lookup(ENV_UNSUBSCRIBE_SECRET)
            .map(|(text, source)| parse_unsubscribe_secret(&text, &source))
            .transpose()?;
        let list_unsubscribe = match lookup(ENV_LIST_UNSUBSCRIBE) {
            None => None,
            Some((text, source)) => {
                let text = text.trim().to_string();
                let lower = text.to_ascii_lowercase();
                let setting = format!("{ENV_LIST_UNSUBSCRIBE} ({source})");
                if !(lower.starts_with("mailto:") || lower.starts_with("https://")) {
                    return Err(Error::config(t!(
                        "smtp-error-list-unsubscribe",
                        setting = setting
                    )));
                }
                let fields = merge_fields(&text);
                // A web address lands in web logs, and anyone could write
                // it for someone else's address.
                if lower.starts_with("https://") && fields.iter().any(|f| f == "email") {
                    return Err(Error::config(t!(
                        "smtp-error-list-unsubscribe-email",
                        setting = setting
                    )));
                }
                if unsubscribe_secret.is_none() && fields.iter().any(|f| f == "unsubscribe_token") {
                    return Err(Error::config(t!(
                        "smtp-error-list-unsubscribe-no-secret",
                        setting = setting,
                        name = ENV_UNSUBSCRIBE_SECRET
                    )));
                }
                Some(text)
            }
        };
        let extra_roots = match lookup(ENV_SMTP_CA_FILE) {
            None => Vec::new(),
            Some((path, source)) => {
                super::ca_file::read_ca_file(ENV_SMTP_CA_FILE, path.trim(), &source)?
            }
        };
        Ok(Self {
            server,
            server_source,
            from,
            from_source,
            return_path,
            return_path_source,
            list_unsubscribe,
            unsubscribe_secret,
            extra_roots,
        })
    }

    /// The domain of the sender: the right-hand side of every Message-ID.
    pub fn message_id_domain(&self) -> String {
        self.from.email.domain().to_string()
    }
}

/// The names inside `{{…}}` in `text`, trimmed.
fn merge_fields(text: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        fields.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    fields
}

/// `MAILSYNC_UNSUBSCRIBE_SECRET`: at least [`UNSUBSCRIBE_SECRET_MIN`]
/// characters. The error names the variable, never the value.
pub fn parse_unsubscribe_secret(text: &str, source: &Source) -> Result<Secret> {
    let text = text.trim();
    if text.chars().count() < UNSUBSCRIBE_SECRET_MIN {
        return Err(Error::config(t!(
            "settings-error-unsubscribe-secret-short",
            setting = format!("{ENV_UNSUBSCRIBE_SECRET} ({source})"),
            min = UNSUBSCRIBE_SECRET_MIN
        )));
    }
    Ok(Secret::new(text))
}

/// `MAILSYNC_RETURN_PATH`: an address (`bounces@acme.example`), or a
/// mailbox whose address is taken (`Acme <bounces@acme.example>`), as the
/// envelope has no display name.
pub fn parse_return_path(text: &str, source: &Source) -> Result<Address> {
    let text = text.trim();
    text.parse::<Address>()
        .or_else(|_| text.parse::<Mailbox>().map(|m| m.email))
        .map_err(|e: lettre::address::AddressError| {
            Error::config(t!(
                "settings-error-return-path-invalid",
                setting = format!("{ENV_RETURN_PATH} ({source})"),
                reason = e.to_string()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<(String, Source)> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (v.to_string(), Source::Environment))
        }
    }

    #[test]
    fn remote_smtp_requires_starttls_and_masks_the_password() {
        let s = SmtpServer::parse(
            "smtp://me%40acme.example:p%40ss@smtp.acme.example",
            &Source::Environment,
        )
        .unwrap();
        assert_eq!(s.security, Security::StartTls);
        assert_eq!(s.port, 587);
        assert_eq!(s.user.as_deref(), Some("me@acme.example"));
        assert_eq!(s.password.as_ref().unwrap().expose(), "p@ss");
        assert!(!s.masked().contains("p@ss"));
        assert!(!format!("{s:?}").contains("p@ss"));
        let s =
            SmtpServer::parse("smtps://u:secret@smtp.acme.example", &Source::Environment).unwrap();
        assert_eq!((s.security, s.port), (Security::ImplicitTls, 465));
        let s = SmtpServer::parse("smtp://127.0.0.1:2525", &Source::Environment).unwrap();
        assert_eq!((s.security, s.port), (Security::Plain, 2525));
    }

    #[test]
    fn bad_smtp_urls_name_the_variable_and_not_the_password() {
        for bad in [
            "http://u:hunter2@x",
            "smtp://:hunter2@x.example",
            "not a url hunter2",
        ] {
            let e = SmtpServer::parse(bad, &Source::Environment).unwrap_err();
            assert_eq!(e.kind().exit_code(), 3);
            assert!(e.message().contains(ENV_SMTP_URL), "{e}");
            assert!(!e.message().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn no_configuration_means_the_local_catcher_and_remote_needs_from() {
        let s = SmtpSettings::resolve(lookup(&[]), Some(57321)).unwrap();
        assert_eq!(s.server.address(), "127.0.0.1:57325");
        assert_eq!(s.message_id_domain(), "localhost.test");
        let e = SmtpSettings::resolve(lookup(&[]), None).unwrap_err();
        assert!(e.message().contains(ENV_SMTP_URL));
        let e = SmtpSettings::resolve(
            lookup(&[(ENV_SMTP_URL, "smtp://u:p@smtp.acme.example")]),
            None,
        )
        .unwrap_err();
        assert!(e.message().contains(ENV_FROM));
        let e = SmtpSettings::resolve(
            lookup(&[(ENV_LIST_UNSUBSCRIBE, "http://acme.example/u")]),
            Some(54321),
        )
        .unwrap_err();
        assert!(e.message().contains(ENV_LIST_UNSUBSCRIBE));
    }

    #[test]
    fn the_return_path_defaults_to_the_from_address_and_is_checked() {
        let s = SmtpSettings::resolve(
            lookup(&[(ENV_FROM, "Acme <news@acme.example>")]),
            Some(54321),
        )
        .unwrap();
        assert_eq!(s.return_path.to_string(), "news@acme.example");
        assert_eq!(s.return_path_source, Source::Environment);
        let s = SmtpSettings::resolve(
            lookup(&[
                (ENV_FROM, "Acme <news@acme.example>"),
                (ENV_RETURN_PATH, " Bounces <bounces@acme.example> "),
            ]),
            Some(54321),
        )
        .unwrap();
        assert_eq!(s.return_path.to_string(), "bounces@acme.example");
        for bad in [
            &[(ENV_RETURN_PATH, "not an address")],
            &[(ENV_RETURN_PATH, "a@")],
            &[(ENV_RETURN_PATH, "@acme.example")],
        ] {
            let e = SmtpSettings::resolve(lookup(bad), Some(54321)).unwrap_err();
            assert_eq!(e.kind().exit_code(), 3, "{bad:?}");
            assert!(e.message().contains(ENV_RETURN_PATH), "{e}");
        }
    }

    #[test]
    fn an_https_unsubscribe_url_takes_the_token_not_the_address() {
        const SECRET: &str = "0123456789abcdef0123456789abcdef-s3cr3t";
        let e = SmtpSettings::resolve(
            lookup(&[(ENV_LIST_UNSUBSCRIBE, "https://acme.example/u?e={{ email }}")]),
            Some(54321),
        )
        .unwrap_err();
        assert_eq!(e.kind().exit_code(), 3);
        assert!(e.message().contains("unsubscribe_token"), "{e}");
        // The token needs the secret.
        let e = SmtpSettings::resolve(
            lookup(&[(
                ENV_LIST_UNSUBSCRIBE,
                "https://acme.example/u/{{unsubscribe_token}}",
            )]),
            Some(54321),
        )
        .unwrap_err();
        assert_eq!(e.kind().exit_code(), 3);
        assert!(e.message().contains(ENV_UNSUBSCRIBE_SECRET), "{e}");
        // A short secret is refused without being shown.
        let e = SmtpSettings::resolve(
            lookup(&[(ENV_UNSUBSCRIBE_SECRET, "short-s3cr3t")]),
            Some(54321),
        )
        .unwrap_err();
        assert_eq!(e.kind().exit_code(), 3);
        assert!(e.message().contains(ENV_UNSUBSCRIBE_SECRET), "{e}");
        assert!(!e.message().contains("s3cr3t"), "{e}");
        let s = SmtpSettings::resolve(
            lookup(&[
                (
                    ENV_LIST_UNSUBSCRIBE,
                    "https://acme.example/u/{{unsubscribe_token}}",
                ),
                (ENV_UNSUBSCRIBE_SECRET, SECRET),
            ]),
            Some(54321),
        )
        .unwrap();
        assert_eq!(s.unsubscribe_secret.as_ref().unwrap().expose(), SECRET);
        assert!(!format!("{s:?}").contains("s3cr3t"));
        // mailto: goes to the operator's own mailbox: the address may stay.
        let s = SmtpSettings::resolve(
            lookup(&[(
                ENV_LIST_UNSUBSCRIBE,
                "mailto:u@acme.example?subject={{email}}",
            )]),
            Some(54321),
        )
        .unwrap();
        assert!(s.list_unsubscribe.is_some());
    }

    #[test]
    fn a_host_that_only_starts_like_loopback_gets_starttls() {
        let s = SmtpServer::parse("smtp://user:pw@127.relay.example.com", &Source::Environment)
            .unwrap();
        assert_eq!(s.security, Security::StartTls);
        let s = SmtpServer::parse("smtp://user:pw@localhost.", &Source::Environment).unwrap();
        assert_eq!(s.security, Security::Plain);
    }
}
