//! SMTP for `mailsync campaigns deliver`: the transport (lettre over
//! rustls, one connection per sender reused across emails), building one
//! message per email, and reading the server's answer as an outcome. Its settings (server, From, return path, List-Unsubscribe) are
//! typed and checked in [`crate::settings::delivery`], re-exported here. It
//! never talks to the database and never prints: the command does both.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;

use crate::error::{Error, Result};
use crate::i18n::Lang;
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
    /// email is claimed.
    pub async fn check(&self) -> Result<()> {
        match self.connect().await {
            Ok(mut conn) => {
                let _ = conn.quit().await;
                Ok(())
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

    async fn connect(&self) -> std::result::Result<AsyncSmtpConnection, ConnectFailure> {
        match tokio::time::timeout(self.timeout, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(ConnectFailure::Timeout(self.timeout.as_secs())),
        }
    }

    async fn open(&self) -> std::result::Result<AsyncSmtpConnection, ConnectFailure> {
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
        Ok(conn)
    }
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
    conn: Option<AsyncSmtpConnection>,
}

impl SmtpSession {
    /// Sends one message and reads the server's answer as an [`Attempt`].
    pub async fn send(&mut self, message: &Message) -> Attempt {
        let mut conn = match self.conn.take() {
            Some(conn) if !conn.has_broken() => conn,
            _ => match self.mailer.connect().await {
                Ok(conn) => conn,
                Err(why) => return Attempt::Temporary(why.describe(Lang::En)),
            },
        };
        let envelope = message.envelope();
        let bytes = message.formatted();
        let answer = tokio::time::timeout(self.mailer.timeout, conn.send(envelope, &bytes)).await;
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
        // After a refusal lettre has closed the connection: a new one next time.
        if !conn.has_broken() {
            self.conn = Some(conn);
        }
        attempt
    }

    /// Says goodbye to the server (QUIT).
    pub async fn close(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
        }
    }
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
        _ => None,
    })
    .unwrap_or_else(|| url.to_string())
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

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn percent_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_fields_are_filled_and_escaped_in_html() {
        let to = Recipient {
            email: "a@b.fr",
            organization: Some("R&D <Lab>"),
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
        assert_eq!(
            merge_url("https://x.example/u?e={{email}}", &to),
            "https://x.example/u?e=a%40b.fr"
        );
        let no_org = Recipient {
            email: "a@b.fr",
            organization: None,
        };
        assert_eq!(merge("[{{organization}}]", &no_org, false), "[]");
    }
}
