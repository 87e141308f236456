//! SMTP for `mailsync campaigns deliver`: the session (one connection per
//! sender, reused across emails, PIPELINING where offered; see
//! [`wire`]), building one message per email, and reading the server's
//! answer as an outcome. Its settings (server, From, return path,
//! List-Unsubscribe) are typed and checked in [`crate::settings::delivery`],
//! re-exported here. It never talks to the database and never prints: the
//! command does both.
//!
//! Delivery reports (RFC 3461): when the server advertises `DSN`, each
//! transaction asks for reports on success, failure and delay, returned to
//! the envelope sender (the return path) with the email's id as `ENVID`;
//! see docs/tracking.md.

mod wire;

use std::io::Write as _;
use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message};

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::i18n::Lang;
use crate::settings::Secret;
use crate::{t, t_in};

pub use crate::settings::delivery::{
    Security, SmtpServer, SmtpSettings, ENV_FROM, ENV_LIST_UNSUBSCRIBE, ENV_RETURN_PATH,
    ENV_SMTP_URL,
};

use wire::{Connection, Ended, Tls};

/// How to open connections to the SMTP server. Each sender keeps one
/// [`SmtpSession`] and reuses its connection for email after email.
///
/// Connections set `TCP_NODELAY`: a transaction's commands go in one write
/// and its message in another, and with Nagle's algorithm a write waits for
/// the server's delayed ACK of the one before (about 40 ms on Linux).
#[derive(Clone)]
pub struct Mailer {
    server: SmtpServer,
    timeout: Duration,
    /// `EHLO <name>\r\n`, the name as lettre finds it (the host's name).
    ehlo: String,
    /// TLS towards the server, unless the URL is plain (loopback only).
    tls: Option<Tls>,
}

impl Mailer {
    /// `extra_roots`: certificate authorities trusted besides the public
    /// roots (`MAILSYNC_SMTP_CA_FILE`).
    pub fn new(
        server: &SmtpServer,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
        timeout: Duration,
    ) -> Result<Self> {
        let tls = match server.security {
            Security::Plain => None,
            // Fail early on a host rustls cannot check certificates for.
            _ => Some(Tls::new(&server.host, extra_roots).map_err(|reason| {
                Error::config(t!(
                    "smtp-error-tls",
                    server = server.address(),
                    reason = reason
                ))
            })?),
        };
        Ok(Self {
            server: server.clone(),
            timeout,
            ehlo: format!("EHLO {}\r\n", ClientId::default()),
            tls,
        })
    }

    /// Opens one connection (greeting, EHLO, TLS, login) and closes it: a
    /// server that is down or refuses us is a configuration error before any
    /// email is claimed. Answers whether the server offers DSN (delivery
    /// reports).
    pub async fn check(&self) -> Result<bool> {
        match self.connect().await {
            Ok(mut conn) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
                Ok(conn.offers.dsn)
            }
            Err(why) => Err(Error::config(t!(
                "smtp-error-unusable",
                server = self.server.masked(),
                reason = why.describe(crate::i18n::current())
            ))
            .with_hint(t!("smtp-hint-unusable", name = ENV_SMTP_URL))),
        }
    }

    pub fn session(&self) -> SmtpSession {
        SmtpSession {
            mailer: self.clone(),
            conn: None,
        }
    }

    async fn connect(&self) -> std::result::Result<Connection, ConnectFailure> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectFailure::Timeout(self.timeout.as_secs())),
        }
    }

    /// Greeting, EHLO, TLS (implicit, or STARTTLS: a server without it is
    /// refused), EHLO again under TLS, and the login: the password goes out
    /// only on a connection that is encrypted or to this machine.
    async fn open(&self) -> std::result::Result<Connection, ConnectFailure> {
        use ConnectFailure::Other;
        let server = &self.server;
        let tcp = tokio::net::TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| ConnectFailure::Connect(server.address(), e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let mut conn = match (&self.tls, server.security) {
            (Some(tls), Security::ImplicitTls) => Connection::implicit_tls(tcp, tls).await,
            (None, Security::ImplicitTls) => return Err(Other("TLS is not set up".into())),
            _ => Connection::plain(tcp).await,
        }
        .map_err(|e| Other(e.to_string()))?;
        conn.ehlo(&self.ehlo)
            .await
            .map_err(|e| Other(e.to_string()))?;
        if server.security == Security::StartTls {
            let Some(tls) = &self.tls else {
                return Err(ConnectFailure::NoStartTls);
            };
            if !conn.offers.starttls {
                let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
                return Err(ConnectFailure::NoStartTls);
            }
            conn.starttls(tls, &self.ehlo)
                .await
                .map_err(|e| ConnectFailure::StartTls(e.to_string()))?;
        }
        if let Some(user) = &server.user {
            if server.security != Security::Plain && !conn.encrypted() {
                // Unreachable by the steps above; the password's safety does
                // not rest on that.
                return Err(ConnectFailure::NoStartTls);
            }
            let password = server.password.as_ref().map(|p| p.expose()).unwrap_or("");
            conn.login(user, password)
                .await
                .map_err(|e| ConnectFailure::Login(user.clone(), e.to_string()))?;
        }
        Ok(conn)
    }
}

/// The envelope of one email: where reports and bounces go back to, and the
/// id the reports carry (`ENVID`).
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// The envelope sender (`MAIL FROM`): the return path, or its VERP form.
    pub return_path: &'a Address,
    /// The email's id; comes back as `Original-Envelope-Id`.
    pub envelope_id: &'a str,
}

/// `local+token@domain` of the return path (VERP): a report addressed to it
/// names its email even when the reporting system drops `ENVID` and the
/// original headers.
pub fn verp_address(
    return_path: &Address,
    token: &str,
) -> std::result::Result<Address, lettre::address::AddressError> {
    Address::new(
        format!("{}+{token}", return_path.user()),
        return_path.domain(),
    )
}

/// Why a return path cannot carry VERP tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerpProblem {
    /// Its local part already uses `+`: the token would be ambiguous.
    Plus,
    /// With the token, its local part would pass 64 characters
    /// (RFC 5321 §4.5.3.1.1).
    TooLong,
}

/// Whether `return_path` can take a VERP token of `token_len` characters.
pub fn verp_problem(return_path: &Address, token_len: usize) -> Option<VerpProblem> {
    let user = return_path.user();
    if user.contains('+') {
        Some(VerpProblem::Plus)
    } else if user.len() + 1 + token_len > 64 {
        Some(VerpProblem::TooLong)
    } else {
        None
    }
}

/// xtext (RFC 3461 §4): the value as is, except `+`, `=` and every byte
/// outside `!`..`~`, written `+XX` (two upper-case hex digits).
pub fn xtext(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len());
    write_xtext(&mut out, value);
    String::from_utf8(out).expect("xtext is ASCII")
}

fn write_xtext(out: &mut Vec<u8>, value: &str) {
    for &b in value.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b);
        } else {
            let _ = write!(out, "+{b:02X}");
        }
    }
}

/// The `ORCPT` value (RFC 3461 §4.2): `rfc822;` and the address in xtext,
/// or for an address beyond ASCII `utf-8;` and its 7-bit form, each
/// character outside `!`..`~` and `+`, `=`, `\` written `\x{HEX}`
/// (RFC 6533 §3, utf-8-addr-xtext).
pub fn original_recipient(address: &str) -> String {
    let mut out = Vec::with_capacity(address.len() + 8);
    write_original_recipient(&mut out, address);
    String::from_utf8(out).expect("ORCPT is ASCII")
}

fn write_original_recipient(out: &mut Vec<u8>, address: &str) {
    if address.is_ascii() {
        out.extend_from_slice(b"rfc822;");
        return write_xtext(out, address);
    }
    out.extend_from_slice(b"utf-8;");
    for c in address.chars() {
        if ('!'..='~').contains(&c) && !matches!(c, '+' | '=' | '\\') {
            out.push(c as u8);
        } else {
            let _ = write!(out, "\\x{{{:02X}}}", c as u32);
        }
    }
}

/// The `MAIL FROM` parameters the message itself needs.
#[derive(Debug, Clone, Copy, Default)]
struct BodyParameters {
    /// `SMTPUTF8`: an address beyond ASCII.
    smtputf8: bool,
    /// `BODY=8BITMIME`: a message beyond ASCII.
    eight_bit_mime: bool,
}

/// The `MAIL FROM` command: the return path, the message's own parameters,
/// and with DSN the reports' content (headers only) and the envelope id.
fn write_mail_command(out: &mut Vec<u8>, envelope: &Envelope<'_>, body: BodyParameters, dsn: bool) {
    out.extend_from_slice(b"MAIL FROM:<");
    out.extend_from_slice(AsRef::<str>::as_ref(envelope.return_path).as_bytes());
    out.push(b'>');
    if body.smtputf8 {
        out.extend_from_slice(b" SMTPUTF8");
    }
    if body.eight_bit_mime {
        out.extend_from_slice(b" BODY=8BITMIME");
    }
    if dsn {
        out.extend_from_slice(b" RET=HDRS ENVID=");
        write_xtext(out, envelope.envelope_id);
    }
    out.extend_from_slice(b"\r\n");
}

/// The `RCPT TO` command: with DSN a report on success, failure and delay,
/// and the address as written (`ORCPT`).
fn write_rcpt_command(out: &mut Vec<u8>, to: &Address, dsn: bool) {
    out.extend_from_slice(b"RCPT TO:<");
    out.extend_from_slice(AsRef::<str>::as_ref(to).as_bytes());
    out.push(b'>');
    if dsn {
        out.extend_from_slice(b" NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=");
        write_original_recipient(out, to.as_ref());
    }
    out.extend_from_slice(b"\r\n");
}

/// Why a connection to the SMTP server failed: in the run's language for
/// the person ([`Mailer::check`]), in English for what is stored with an
/// email (its `smtp_response`), which other tools read.
#[derive(Debug, Clone)]
enum ConnectFailure {
    /// No answer within this many seconds.
    Timeout(u64),
    /// No TCP connection to the address, for the system's reason.
    Connect(String, String),
    /// A remote server without STARTTLS: nothing is sent in clear.
    NoStartTls,
    StartTls(String),
    /// The server refused this user's login.
    Login(String, String),
    /// The server's or rustls' own words.
    Other(String),
}

impl ConnectFailure {
    fn describe(&self, lang: Lang) -> String {
        match self {
            ConnectFailure::Timeout(seconds) => {
                t_in!(lang, "smtp-no-answer", seconds = seconds.to_string())
            }
            ConnectFailure::Connect(address, reason) => t_in!(
                lang,
                "smtp-cannot-connect",
                address = address.as_str(),
                reason = reason.as_str()
            ),
            ConnectFailure::NoStartTls => t_in!(lang, "smtp-no-starttls"),
            ConnectFailure::StartTls(reason) => {
                t_in!(lang, "smtp-starttls-failed", reason = reason.as_str())
            }
            ConnectFailure::Login(user, reason) => t_in!(
                lang,
                "smtp-login-refused",
                user = user.as_str(),
                reason = reason.as_str()
            ),
            ConnectFailure::Other(text) => text.clone(),
        }
    }
}

/// One sender's connection, opened on first use and again after a failure.
pub struct SmtpSession {
    mailer: Mailer,
    conn: Option<Connection>,
}

impl SmtpSession {
    /// Sends one message to its recipients, from the envelope's return path
    /// (asking for delivery reports where the server offers DSN), and reads
    /// the server's answer as an [`Attempt`].
    ///
    /// A reused connection that turns out closed before the message went
    /// out (the server dropped it while idle) is replaced once, at once:
    /// nothing was handed over on it.
    pub async fn send(&mut self, message: &Message, envelope: &Envelope<'_>) -> Attempt {
        let bytes = message.formatted();
        let to = message.envelope().to();
        loop {
            let reused = self.conn.is_some();
            let mut conn = match self.conn.take() {
                Some(conn) => conn,
                None => match self.mailer.connect().await {
                    Ok(conn) => conn,
                    Err(why) => return Attempt::Temporary(why.describe(Lang::En)),
                },
            };
            let body = match body_parameters(&conn.offers, envelope.return_path, to, &bytes) {
                Ok(body) => body,
                Err(why) => {
                    // Refused before a word was sent: the connection stays good.
                    self.conn = Some(conn);
                    return Attempt::Refused(format!("internal client error: {why}"));
                }
            };
            let dsn = conn.offers.dsn;
            write_mail_command(conn.commands(), envelope, body, dsn);
            conn.end_command();
            for address in to {
                write_rcpt_command(conn.command_buffer(), address, dsn);
                conn.end_command();
            }
            conn.command_buffer().extend_from_slice(b"DATA\r\n");
            conn.end_command();
            let answer = tokio::time::timeout(self.mailer.timeout, conn.transaction(&bytes)).await;
            let ended = match answer {
                Err(_) => {
                    // The connection is dropped: its state is unknown.
                    let timeout = ConnectFailure::Timeout(self.mailer.timeout.as_secs());
                    return Attempt::Temporary(timeout.describe(Lang::En));
                }
                Ok(Err(_)) if reused && !conn.content_sent => continue,
                Ok(Err(failure)) => return Attempt::Temporary(failure.to_string()),
                Ok(Ok(ended)) => ended,
            };
            if !conn.broken {
                self.conn = Some(conn);
            }
            return classify(ended);
        }
    }

    /// Says goodbye to the server (QUIT).
    pub async fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
        }
    }
}

/// The `MAIL FROM` parameters the message itself needs, as lettre's own
/// transport sets them: `SMTPUTF8` for an address beyond ASCII,
/// `BODY=8BITMIME` for a message beyond ASCII; an error when the server
/// offers neither.
fn body_parameters(
    offers: &wire::Offers,
    return_path: &Address,
    to: &[Address],
    bytes: &[u8],
) -> std::result::Result<BodyParameters, &'static str> {
    let mut body = BodyParameters::default();
    if std::iter::once(return_path)
        .chain(to)
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii())
    {
        if !offers.smtputf8 {
            return Err("Envelope contains non-ascii chars but server does not support SMTPUTF8");
        }
        body.smtputf8 = true;
    }
    if !bytes.is_ascii() {
        if !offers.eight_bit_mime {
            return Err("Message contains non-ascii chars but server does not support 8BITMIME");
        }
        body.eight_bit_mime = true;
    }
    Ok(body)
}

/// What one try of one email came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 250: the server took responsibility for it.
    Accepted(String),
    /// 5xx with a 5.1.x status: the mailbox does not exist.
    Bounced(String),
    /// Any other 5xx, or a message the client cannot send: final.
    Refused(String),
    /// 4xx, a dropped connection, a timeout: worth another try.
    Temporary(String),
}

/// A transaction's end as an outcome: a 5xx whose enhanced status code
/// (RFC 3463, after the reply code: "550 5.1.1 <x@y>: Recipient address
/// rejected") is 5.1.x names a mailbox that does not exist.
fn classify(ended: Ended) -> Attempt {
    match ended {
        Ended::Accepted(reply) => Attempt::Accepted(reply),
        Ended::Refused(code, reply) if (500..600).contains(&code) => {
            let detail = reply.get(3..).unwrap_or_default().trim_start();
            if detail.starts_with("5.1.") {
                Attempt::Bounced(reply)
            } else {
                Attempt::Refused(reply)
            }
        }
        Ended::Refused(_, reply) => Attempt::Temporary(reply),
    }
}

/// A campaign's text with its merge fields, ready to become messages.
#[derive(Debug, Clone)]
pub struct Template {
    pub subject: String,
    pub content: String,
    pub html: bool,
}

/// One recipient's values for the merge fields.
#[derive(Debug, Clone)]
pub struct Recipient<'a> {
    pub email: &'a str,
    pub organization: Option<&'a str>,
    /// `{{unsubscribe_token}}`: see [`unsubscribe_token`].
    pub unsubscribe_token: Option<&'a str>,
}

impl Template {
    pub fn new(subject: &str, content: &str) -> Self {
        Self {
            subject: subject.to_string(),
            content: content.to_string(),
            html: looks_like_html(content),
        }
    }

    /// The message for one email: From, To, Subject, Date, Message-ID, the
    /// content with its merge fields filled, and List-Unsubscribe when set.
    pub fn message(
        &self,
        settings: &SmtpSettings,
        to: &Recipient<'_>,
        message_id: &str,
    ) -> std::result::Result<Message, String> {
        let to_box: Mailbox = to
            .email
            .parse()
            .map_err(|e| format!("not a valid address: {e}"))?;
        let subject = merge(&self.subject, to, false);
        let body = merge(&self.content, to, self.html);
        let mut builder = Message::builder()
            .from(settings.from.clone())
            .to(to_box)
            .subject(subject)
            .date_now()
            .message_id(Some(message_id.to_string()))
            .user_agent(format!("mailsync/{}", env!("CARGO_PKG_VERSION")));
        if let Some(url) = &settings.list_unsubscribe {
            let url = merge_url(url, to);
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ));
            if url.to_ascii_lowercase().starts_with("https://") {
                // RFC 8058 one-click unsubscribe.
                builder = builder.raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_string(),
                ));
            }
        }
        let part = if self.html {
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(body)
        } else {
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body)
        };
        builder.singlepart(part).map_err(|e| e.to_string())
    }
}

fn looks_like_html(content: &str) -> bool {
    let t = content.trim_start().to_ascii_lowercase();
    t.starts_with("<!doctype html") || t.starts_with("<html") || {
        ["<p>", "<br", "<div", "<a ", "<table", "<h1", "<h2", "<body"]
            .iter()
            .any(|tag| t.contains(tag))
    }
}

/// Fills `{{email}}` and `{{organization}}` (spaces inside the braces
/// allowed); other `{{…}}` are left as written. In HTML the values are
/// escaped.
pub fn merge(text: &str, to: &Recipient<'_>, html: bool) -> String {
    let escape = |v: &str| if html { escape_html(v) } else { v.to_string() };
    merge_with(text, |field| match field {
        "email" => Some(escape(to.email)),
        "organization" => Some(escape(to.organization.unwrap_or_default())),
        _ => None,
    })
    .unwrap_or_else(|| text.to_string())
}

fn merge_url(url: &str, to: &Recipient<'_>) -> String {
    merge_with(url, |field| match field {
        "email" => Some(percent_encode(to.email)),
        "organization" => Some(percent_encode(to.organization.unwrap_or_default())),
        "unsubscribe_token" => to.unsubscribe_token.map(percent_encode),
        _ => None,
    })
    .unwrap_or_else(|| url.to_string())
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The MAC of one email: who sent it, which email, to which address.
fn unsubscribe_mac(secret: &Secret, user_id: &str, email_id: &Uuid, address: &str) -> HmacSha256 {
    use hmac::{KeyInit, Mac};
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(user_id.trim().to_lowercase().as_bytes());
    mac.update(b"\0");
    mac.update(email_id.hyphenated().to_string().as_bytes());
    mac.update(b"\0");
    mac.update(address.trim().to_lowercase().as_bytes());
    mac
}

/// `{{unsubscribe_token}}`: `<email id>.<base64url HMAC-SHA256 of (user id,
/// email id, address)>` under `MAILSYNC_UNSUBSCRIBE_SECRET`. It names the
/// email (whose row holds the address) without showing the address, and
/// only the holder of the secret can make one.
pub fn unsubscribe_token(secret: &Secret, user_id: &str, email_id: &Uuid, address: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let tag = unsubscribe_mac(secret, user_id, email_id, address)
        .finalize()
        .into_bytes();
    format!(
        "{}.{}",
        email_id.hyphenated(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The email a token names, or `None` when it is not shaped like a token.
/// Says nothing of whether it is genuine: see [`verify_unsubscribe_token`].
pub fn unsubscribe_token_email(token: &str) -> Option<Uuid> {
    let (id, tag) = token.trim().split_once('.')?;
    if tag.is_empty() {
        return None;
    }
    // Only the form the token is made with: one token per email.
    Uuid::parse_str(id)
        .ok()
        .filter(|uuid| uuid.hyphenated().to_string() == id)
}

/// Whether `token` was made with `secret` for this user, its email and
/// this address (a constant-time comparison).
pub fn verify_unsubscribe_token(
    secret: &Secret,
    token: &str,
    user_id: &str,
    address: &str,
) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let Some(email_id) = unsubscribe_token_email(token) else {
        return false;
    };
    let Some((_, tag)) = token.trim().split_once('.') else {
        return false;
    };
    let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    unsubscribe_mac(secret, user_id, &email_id, address)
        .verify_slice(&tag)
        .is_ok()
}

fn merge_with(text: &str, value: impl Fn(&str) -> Option<String>) -> Option<String> {
    if !text.contains("{{") {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 32);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let field = after[..end].trim();
                match value(field) {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// A value as HTML text or as an attribute quoted with `"` or `'`: the
/// five characters that could end either are written as references.
fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_plus_equals_and_every_byte_outside_bang_to_tilde() {
        assert_eq!(xtext("jane.doe@acme.example"), "jane.doe@acme.example");
        assert_eq!(xtext("a+b=c@x.fr"), "a+2Bb+3Dc@x.fr");
        assert_eq!(xtext("!#$%&'*/?^_`{|}~@x"), "!#$%&'*/?^_`{|}~@x");
        assert_eq!(xtext("a b\tc\u{7f}"), "a+20b+09c+7F");
        // Beyond ASCII: each UTF-8 byte.
        assert_eq!(xtext("josé@x.fr"), "jos+C3+A9@x.fr");
        assert_eq!(xtext(""), "");
    }

    #[test]
    fn the_original_recipient_is_rfc822_xtext_or_its_utf8_form() {
        assert_eq!(
            original_recipient("o+hara=x@client.example"),
            "rfc822;o+2Bhara+3Dx@client.example"
        );
        assert_eq!(
            original_recipient("josé+a=b\\c@café.example"),
            "utf-8;jos\\x{E9}\\x{2B}a\\x{3D}b\\x{5C}c@caf\\x{E9}.example"
        );
        assert_eq!(
            original_recipient("日@x.example"),
            "utf-8;\\x{65E5}@x.example"
        );
    }

    #[test]
    fn mail_and_rcpt_carry_the_dsn_parameters_only_when_offered() {
        let from: Address = "bounces@acme.example".parse().unwrap();
        let to: Address = "o+hara=x@client.example".parse().unwrap();
        let envelope = Envelope {
            return_path: &from,
            envelope_id: "0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69",
        };
        let mail = |body, dsn| {
            let mut out = Vec::new();
            write_mail_command(&mut out, &envelope, body, dsn);
            String::from_utf8(out).unwrap()
        };
        let rcpt = |dsn| {
            let mut out = Vec::new();
            write_rcpt_command(&mut out, &to, dsn);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            mail(BodyParameters::default(), true),
            "MAIL FROM:<bounces@acme.example> RET=HDRS ENVID=0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69\r\n"
        );
        assert_eq!(
            rcpt(true),
            "RCPT TO:<o+hara=x@client.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;o+2Bhara+3Dx@client.example\r\n"
        );
        let utf8 = BodyParameters {
            smtputf8: true,
            eight_bit_mime: false,
        };
        assert_eq!(
            mail(utf8, false),
            "MAIL FROM:<bounces@acme.example> SMTPUTF8\r\n"
        );
        let both = BodyParameters {
            smtputf8: true,
            eight_bit_mime: true,
        };
        assert_eq!(
            mail(both, true),
            "MAIL FROM:<bounces@acme.example> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69\r\n"
        );
        assert_eq!(rcpt(false), "RCPT TO:<o+hara=x@client.example>\r\n");
    }

    #[test]
    fn a_5xx_with_status_5_1_is_a_bounce_other_5xx_a_refusal_4xx_temporary() {
        let refused = |code, text: &str| classify(Ended::Refused(code, text.to_string()));
        assert_eq!(
            refused(550, "550 5.1.1 <x@y>: User unknown"),
            Attempt::Bounced("550 5.1.1 <x@y>: User unknown".into())
        );
        assert_eq!(
            refused(554, "554 5.7.1 spam"),
            Attempt::Refused("554 5.7.1 spam".into())
        );
        assert_eq!(
            refused(550, "550 no such user"),
            Attempt::Refused("550 no such user".into())
        );
        assert_eq!(
            refused(451, "451 4.3.0 later"),
            Attempt::Temporary("451 4.3.0 later".into())
        );
        assert_eq!(
            classify(Ended::Accepted("250 2.0.0 Ok".into())),
            Attempt::Accepted("250 2.0.0 Ok".into())
        );
    }

    #[test]
    fn verp_puts_the_token_after_a_plus_and_refuses_what_would_be_ambiguous() {
        let id = "0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69";
        let rp: Address = "bounces@acme.example".parse().unwrap();
        assert_eq!(verp_problem(&rp, id.len()), None);
        assert_eq!(
            verp_address(&rp, id).unwrap().to_string(),
            format!("bounces+{id}@acme.example")
        );
        let tagged: Address = "bounces+news@acme.example".parse().unwrap();
        assert_eq!(verp_problem(&tagged, id.len()), Some(VerpProblem::Plus));
        let long: Address = format!("{}@acme.example", "b".repeat(28)).parse().unwrap();
        assert_eq!(verp_problem(&long, id.len()), Some(VerpProblem::TooLong));
        let fits: Address = format!("{}@acme.example", "b".repeat(27)).parse().unwrap();
        assert_eq!(verp_problem(&fits, id.len()), None);
    }

    #[test]
    fn merge_fields_are_filled_and_escaped_in_html() {
        let to = Recipient {
            email: "a@b.fr",
            organization: Some("R&D <Lab>"),
            unsubscribe_token: None,
        };
        assert_eq!(
            merge(
                "Bonjour {{ email }} de {{organization}} {{other}}",
                &to,
                false
            ),
            "Bonjour a@b.fr de R&D <Lab> {{other}}"
        );
        assert_eq!(
            merge("<p>{{organization}}</p>", &to, true),
            "<p>R&amp;D &lt;Lab&gt;</p>"
        );
        // In an attribute quoted either way, a value cannot close it.
        let quoting = Recipient {
            email: "o'brien@b.fr",
            organization: Some("x' onmouseover='alert(1)\" y"),
            unsubscribe_token: None,
        };
        assert_eq!(
            merge(
                "<a title='{{organization}}' href=\"mailto:{{email}}\">",
                &quoting,
                true
            ),
            "<a title='x&#39; onmouseover=&#39;alert(1)&quot; y' href=\"mailto:o&#39;brien@b.fr\">"
        );
        assert_eq!(
            merge("{{organization}}", &quoting, false),
            "x' onmouseover='alert(1)\" y"
        );
        assert_eq!(
            merge_url("https://x.example/u?e={{email}}", &to),
            "https://x.example/u?e=a%40b.fr"
        );
        let no_org = Recipient {
            email: "a@b.fr",
            organization: None,
            unsubscribe_token: None,
        };
        assert_eq!(merge("[{{organization}}]", &no_org, false), "[]");
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-s3cr3t";
    const USER: &str = "6f1c2b3a-0000-4000-8000-000000000001";

    #[test]
    fn an_unsubscribe_token_round_trips_and_names_only_its_email() {
        let secret = Secret::new(SECRET);
        let email = Uuid::parse_str("0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69").unwrap();
        let token = unsubscribe_token(&secret, USER, &email, "Jane@Acme.example");
        assert!(
            token.starts_with("0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69."),
            "{token}"
        );
        // 36 (UUID) + 1 + 43 (32 bytes, base64url without padding).
        assert_eq!(token.len(), 80, "{token}");
        assert!(!token.to_lowercase().contains("jane") && !token.contains("acme"));
        assert!(!token.contains(SECRET) && !token.contains("s3cr3t"));
        assert_eq!(unsubscribe_token_email(&token), Some(email));
        // The address as the row holds it, in any case.
        assert!(verify_unsubscribe_token(
            &secret,
            &token,
            USER,
            "jane@acme.example"
        ));
        assert!(verify_unsubscribe_token(
            &secret,
            &token,
            USER,
            " JANE@acme.example"
        ));
        // Another address, user or email, or another secret: refused.
        assert!(!verify_unsubscribe_token(
            &secret,
            &token,
            USER,
            "bob@acme.example"
        ));
        let other_user = "6f1c2b3a-0000-4000-8000-000000000002";
        assert!(!verify_unsubscribe_token(
            &secret,
            &token,
            other_user,
            "jane@acme.example"
        ));
        let other_email = Uuid::parse_str("0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a6a").unwrap();
        let moved = format!("{}.{}", other_email, token.split_once('.').unwrap().1);
        assert!(!verify_unsubscribe_token(
            &secret,
            &moved,
            USER,
            "jane@acme.example"
        ));
        let other_secret = Secret::new("another-secret-of-at-least-32-characters");
        assert!(!verify_unsubscribe_token(
            &other_secret,
            &token,
            USER,
            "jane@acme.example"
        ));
    }

    #[test]
    fn a_tampered_or_malformed_unsubscribe_token_fails() {
        let secret = Secret::new(SECRET);
        let email = Uuid::parse_str("0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69").unwrap();
        let token = unsubscribe_token(&secret, USER, &email, "jane@acme.example");
        let ok = |t: &str| verify_unsubscribe_token(&secret, t, USER, "jane@acme.example");
        assert!(ok(&token));
        // Every single character changed, in turn.
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(!ok(&tampered), "{tampered}");
        }
        for bad in [
            "",
            ".",
            "0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69",
            "0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69.",
            "not-a-uuid.abc",
            &token[..token.len() - 1],
            &format!("{token}A"),
            &format!("{token}.x"),
        ] {
            assert!(!ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_unsubscribe_url_carries_the_token_url_encoded() {
        let to = Recipient {
            email: "a@b.fr",
            organization: None,
            unsubscribe_token: Some("0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69.abc_-"),
        };
        assert_eq!(
            merge_url("https://x.example/u?t={{ unsubscribe_token }}", &to),
            "https://x.example/u?t=0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69.abc_-"
        );
    }
}
