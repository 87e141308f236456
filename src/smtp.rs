//! SMTP for `mailsync campaigns deliver`: the transport (lettre over
//! rustls, one connection per sender reused across emails), building one
//! message per email, and reading the server's answer as an outcome. Its
//! settings (server, From, return path, List-Unsubscribe) are typed and
//! checked in [`crate::settings::delivery`], re-exported here. It never talks
//! to the database and never prints: the command does both.
//!
//! Delivery reports (RFC 3461): when the server advertises `DSN`, each
//! transaction asks for reports on success, failure and delay, returned to
//! the envelope sender (the return path) with the email's id as `ENVID`;
//! see docs/tracking.md.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{
    ClientId, Extension, MailBodyParameter, MailParameter, RcptParameter,
};
use lettre::transport::smtp::response::Response;
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

/// How to open connections to the SMTP server. Each sender keeps one
/// [`SmtpSession`] and reuses its connection for email after email.
///
/// Connections are made here rather than by lettre's pool so that plain and
/// STARTTLS connections set `TCP_NODELAY`: SMTP writes the message and its
/// final dot as two small writes, and with Nagle's algorithm the second waits
/// for the server's delayed ACK (about 40 ms a message on Linux).
#[derive(Clone)]
pub struct Mailer {
    server: SmtpServer,
    timeout: Duration,
    hello: ClientId,
}

impl Mailer {
    pub fn new(server: &SmtpServer, timeout: Duration) -> Result<Self> {
        if server.security != Security::Plain {
            // Fail early on a host rustls cannot check certificates for.
            TlsParameters::new(server.host.clone()).map_err(|e| {
                Error::config(t!(
                    "smtp-error-tls",
                    server = server.address(),
                    reason = e.to_string()
                ))
            })?;
        }
        Ok(Self {
            server: server.clone(),
            timeout,
            hello: ClientId::default(),
        })
    }

    /// Opens one connection (greeting, EHLO, TLS, login) and closes it: a
    /// server that is down or refuses us is a configuration error before any
    /// email is claimed. Answers whether the server offers DSN (delivery
    /// reports).
    pub async fn check(&self) -> Result<bool> {
        match self.connect().await {
            Ok(mut conn) => {
                let _ = conn.conn.quit().await;
                Ok(conn.dsn)
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

    async fn open(&self) -> std::result::Result<Connection, ConnectFailure> {
        use ConnectFailure::Other;
        let server = &self.server;
        let mut conn = if server.security == Security::ImplicitTls {
            let tls = TlsParameters::new(server.host.clone()).map_err(|e| Other(e.to_string()))?;
            AsyncSmtpConnection::connect_tokio1(
                (server.host.as_str(), server.port),
                Some(self.timeout),
                &self.hello,
                Some(tls),
                None,
            )
            .await
            .map_err(|e| Other(describe_error(&e)))?
        } else {
            let tcp = tokio::net::TcpStream::connect((server.host.as_str(), server.port))
                .await
                .map_err(|e| ConnectFailure::Connect(server.address(), e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                .await
                .map_err(|e| Other(describe_error(&e)))?;
            if server.security == Security::StartTls {
                if !conn.can_starttls() {
                    let _ = conn.quit().await;
                    return Err(ConnectFailure::NoStartTls);
                }
                let tls =
                    TlsParameters::new(server.host.clone()).map_err(|e| Other(e.to_string()))?;
                conn.starttls(tls, &self.hello)
                    .await
                    .map_err(|e| ConnectFailure::StartTls(describe_error(&e)))?;
            }
            conn
        };
        let dsn = offers_dsn(&mut conn, &self.hello)
            .await
            .map_err(|e| Other(describe_error(&e)))?;
        if let Some(user) = &server.user {
            let credentials = Credentials::new(
                user.clone(),
                server
                    .password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            );
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| ConnectFailure::Login(user.clone(), describe_error(&e)))?;
        }
        Ok(Connection { conn, dsn })
    }
}

/// An open connection and what its server offers beyond what lettre tracks.
struct Connection {
    conn: AsyncSmtpConnection,
    /// The server advertised `DSN` (RFC 3461) in its EHLO answer.
    dsn: bool,
}

/// Whether the server advertises DSN. lettre reads the EHLO answer into
/// its `ServerInfo`, which keeps only the extensions lettre itself uses, so
/// the answer is asked for once more (before any login: EHLO then resets
/// nothing) and its lines read here.
async fn offers_dsn(
    conn: &mut AsyncSmtpConnection,
    hello: &ClientId,
) -> std::result::Result<bool, lettre::transport::smtp::Error> {
    let answer = conn.command(Ehlo::new(hello.clone())).await?;
    Ok(advertises(&answer, "DSN"))
}

/// Whether an EHLO answer lists `keyword` (its lines after the first, the
/// server's name, each an extension keyword and its parameters).
fn advertises(answer: &Response, keyword: &str) -> bool {
    answer.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|word| word.eq_ignore_ascii_case(keyword))
    })
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
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The `ORCPT` value (RFC 3461 §4.2): `rfc822;` and the address in xtext,
/// or for an address beyond ASCII `utf-8;` and its 7-bit form, each
/// character outside `!`..`~` and `+`, `=`, `\` written `\x{HEX}`
/// (RFC 6533 §3, utf-8-addr-xtext).
pub fn original_recipient(address: &str) -> String {
    if address.is_ascii() {
        return format!("rfc822;{}", xtext(address));
    }
    let mut out = String::from("utf-8;");
    for c in address.chars() {
        if ('!'..='~').contains(&c) && !matches!(c, '+' | '=' | '\\') {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:02X}}}", c as u32));
        }
    }
    out
}

/// An extension parameter written exactly as given. lettre's own
/// `keyword=value` form applies an xtext that leaves bytes above `~` as
/// they are and writes `+9` for a tab, so the value is encoded here by
/// [`xtext`] and handed over whole.
fn mail_parameter(keyword: &str, value: &str) -> MailParameter {
    MailParameter::Other {
        keyword: format!("{keyword}={value}"),
        value: None,
    }
}

fn rcpt_parameter(keyword: &str, value: &str) -> RcptParameter {
    RcptParameter::Other {
        keyword: format!("{keyword}={value}"),
        value: None,
    }
}

/// The `MAIL FROM` command: the return path, and with DSN the reports'
/// content (headers only) and the envelope id.
fn mail_command(envelope: &Envelope<'_>, mut parameters: Vec<MailParameter>, dsn: bool) -> Mail {
    if dsn {
        parameters.push(mail_parameter("RET", "HDRS"));
        parameters.push(mail_parameter("ENVID", &xtext(envelope.envelope_id)));
    }
    Mail::new(Some(envelope.return_path.clone()), parameters)
}

/// The `RCPT TO` command: with DSN a report on success, failure and delay,
/// and the address as written (`ORCPT`).
fn rcpt_command(to: &Address, dsn: bool) -> Rcpt {
    let parameters = if dsn {
        vec![
            rcpt_parameter("NOTIFY", "SUCCESS,FAILURE,DELAY"),
            rcpt_parameter("ORCPT", &original_recipient(to.as_ref())),
        ]
    } else {
        Vec::new()
    };
    Rcpt::new(to.clone(), parameters)
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
    /// lettre's or rustls' own words.
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
    pub async fn send(&mut self, message: &Message, envelope: &Envelope<'_>) -> Attempt {
        let mut conn = match self.conn.take() {
            Some(conn) if !conn.conn.has_broken() => conn,
            _ => match self.mailer.connect().await {
                Ok(conn) => conn,
                Err(why) => return Attempt::Temporary(why.describe(Lang::En)),
            },
        };
        let bytes = message.formatted();
        let to = message.envelope().to();
        let parameters = match body_parameters(&conn.conn, envelope.return_path, to, &bytes) {
            Ok(parameters) => parameters,
            Err(why) => {
                // Refused before a word was sent: the connection stays good.
                self.conn = Some(conn);
                return Attempt::Refused(format!("internal client error: {why}"));
            }
        };
        let mail = mail_command(envelope, parameters, conn.dsn);
        let answer = tokio::time::timeout(
            self.mailer.timeout,
            transaction(&mut conn.conn, mail, to, conn.dsn, &bytes),
        )
        .await;
        let attempt = match answer {
            Err(_) => {
                let timeout = ConnectFailure::Timeout(self.mailer.timeout.as_secs());
                return Attempt::Temporary(timeout.describe(Lang::En));
            }
            Ok(Ok(response)) => Attempt::Accepted(format!(
                "{} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(e)) => classify(&e),
        };
        // After a refusal the connection was closed: a new one next time.
        if !conn.conn.has_broken() {
            self.conn = Some(conn);
        }
        attempt
    }

    /// Says goodbye to the server (QUIT).
    pub async fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.conn.quit()).await;
        }
    }
}

/// The `MAIL FROM` parameters the message itself needs, as lettre's own
/// `send` sets them: `SMTPUTF8` for an address beyond ASCII, `BODY=8BITMIME`
/// for a message beyond ASCII; an error when the server offers neither.
fn body_parameters(
    conn: &AsyncSmtpConnection,
    return_path: &Address,
    to: &[Address],
    bytes: &[u8],
) -> std::result::Result<Vec<MailParameter>, &'static str> {
    let server = conn.server_info();
    let mut parameters = Vec::new();
    if std::iter::once(return_path)
        .chain(to)
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii())
    {
        if !server.supports_feature(Extension::SmtpUtfEight) {
            return Err("Envelope contains non-ascii chars but server does not support SMTPUTF8");
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !bytes.is_ascii() {
        if !server.supports_feature(Extension::EightBitMime) {
            return Err("Message contains non-ascii chars but server does not support 8BITMIME");
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(parameters)
}

/// One SMTP transaction: MAIL, a RCPT per recipient, DATA and the message.
/// A refusal at any step ends the connection, as lettre's own `send` does
/// (the next email opens a new one).
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    mail: Mail,
    to: &[Address],
    dsn: bool,
    bytes: &[u8],
) -> std::result::Result<Response, lettre::transport::smtp::Error> {
    let result = async {
        conn.command(mail).await?;
        for address in to {
            conn.command(rcpt_command(address, dsn)).await?;
        }
        conn.command(Data).await?;
        conn.message(bytes).await
    }
    .await;
    if result.is_err() {
        conn.abort().await;
    }
    result
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

fn classify(e: &lettre::transport::smtp::Error) -> Attempt {
    let text = describe_error(e);
    if e.is_permanent() {
        // The enhanced status code (RFC 3463) follows the reply code:
        // "550 5.1.1 <x@y>: Recipient address rejected".
        let detail = e.source_text().unwrap_or_default().trim_start().to_string();
        if detail.starts_with("5.1.") {
            Attempt::Bounced(text)
        } else {
            Attempt::Refused(text)
        }
    } else if e.is_transient()
        || e.is_timeout()
        || e.is_response()
        || e.is_transport_shutdown()
        || is_connection(e)
    {
        Attempt::Temporary(text)
    } else if e.is_client() {
        Attempt::Refused(text)
    } else {
        Attempt::Temporary(text)
    }
}

fn is_connection(e: &lettre::transport::smtp::Error) -> bool {
    let t = e.to_string();
    t.starts_with("network error") || t.starts_with("Connection error") || e.is_tls()
}

trait SourceText {
    fn source_text(&self) -> Option<String>;
}

impl SourceText for lettre::transport::smtp::Error {
    fn source_text(&self) -> Option<String> {
        std::error::Error::source(self).map(|s| s.to_string())
    }
}

/// A server reply as people read them ("550 5.1.1 no such user"), or the
/// failure in words.
pub fn describe_error(e: &lettre::transport::smtp::Error) -> String {
    match (e.status(), e.source_text()) {
        (Some(code), Some(text)) => format!("{code} {text}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
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
    fn dsn_is_read_from_the_ehlo_answer_lines() {
        let answer: Response = "250-relay.example\r\n250-PIPELINING\r\n250-dsn\r\n250 SIZE 100\r\n"
            .parse()
            .unwrap();
        assert!(advertises(&answer, "DSN"));
        let answer: Response =
            "250-DSN.relay.example\r\n250-DSNX\r\n250-8BITMIME\r\n250 SIZE 100\r\n"
                .parse()
                .unwrap();
        assert!(
            !advertises(&answer, "DSN"),
            "the server's name is not an extension"
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
        assert_eq!(
            mail_command(&envelope, Vec::new(), true).to_string(),
            "MAIL FROM:<bounces@acme.example> RET=HDRS ENVID=0b5e1d2c-9c3a-4f7e-8a61-2f1d3c4b5a69\r\n"
        );
        assert_eq!(
            rcpt_command(&to, true).to_string(),
            "RCPT TO:<o+hara=x@client.example> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;o+2Bhara+3Dx@client.example\r\n"
        );
        assert_eq!(
            mail_command(&envelope, vec![MailParameter::SmtpUtfEight], false).to_string(),
            "MAIL FROM:<bounces@acme.example> SMTPUTF8\r\n"
        );
        assert_eq!(
            rcpt_command(&to, false).to_string(),
            "RCPT TO:<o+hara=x@client.example>\r\n"
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
