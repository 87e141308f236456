//! One SMTP connection on the wire (RFC 5321), on tokio and tokio-rustls:
//! the greeting, EHLO and what it offers, STARTTLS (RFC 3207), AUTH PLAIN
//! or LOGIN (RFC 4954), and mail transactions, their commands sent in one
//! write where the server offers PIPELINING (RFC 2920). Its buffers live
//! as long as the connection: a transaction allocates only the text of the
//! reply it ends with.
//!
//! It knows nothing of campaigns, envelopes' DSN parameters or outcomes
//! (see the parent module), never logs, and never puts a password in an
//! error.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The longest reply line read (RFC 5321 §4.5.3.1.5 says 512 octets; some
/// servers write more).
const MAX_LINE: u64 = 4096;
/// The most lines one reply may take (an EHLO answer has a dozen).
const MAX_LINES: usize = 128;

/// TLS towards one server: the verifier (webpki's roots and those of
/// `MAILSYNC_SMTP_CA_FILE`, the server's name checked) and the name.
#[derive(Clone)]
pub(super) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// The TLS settings for `host`, or why there cannot be any (a name
    /// rustls cannot check a certificate for).
    pub(super) fn new(
        host: &str,
        extra_roots: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Self, String> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("{host} is not a host name a certificate can be checked for"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = crate::settings::ca_file::public_roots_and(extra_roots)
            .map_err(|e| format!("a certificate of the CA file: {e}"))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    async fn connect(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Failure> {
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| {
                // rustls' own words ("invalid peer certificate: UnknownIssuer")
                // rather than the I/O wrapper's.
                let reason = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .map(|r| r.to_string())
                    .unwrap_or_else(|| e.to_string());
                Failure::Tls(reason)
            })
    }
}

/// What went wrong on the wire.
#[derive(Debug)]
pub(super) enum Failure {
    /// The system's words.
    Io(io::Error),
    /// The server closed the connection.
    Closed,
    /// A negative or unexpected reply: "454 4.7.0 TLS not available".
    Reply(String),
    /// A reply that is not SMTP, or a step the server does not offer.
    Protocol(String),
    Tls(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Io(e) => write!(f, "network error: {e}"),
            Failure::Closed => f.write_str("network error: the server closed the connection"),
            Failure::Reply(text) | Failure::Protocol(text) => f.write_str(text),
            Failure::Tls(text) => write!(f, "TLS: {text}"),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Failure::Closed
        } else {
            Failure::Io(e)
        }
    }
}

/// What the server's EHLO answer offers, of what mailsync uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Offers {
    pub pipelining: bool,
    pub dsn: bool,
    pub smtputf8: bool,
    pub eight_bit_mime: bool,
    pub starttls: bool,
    pub auth_plain: bool,
    pub auth_login: bool,
}

impl Offers {
    /// Reads the lines of an EHLO answer after the first (the server's
    /// name): each an extension keyword and its parameters.
    pub(super) fn from_ehlo<'a>(lines: impl Iterator<Item = &'a str>) -> Self {
        let mut offers = Offers::default();
        for line in lines.skip(1) {
            let mut words = line.split_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            // Old servers write `AUTH=PLAIN LOGIN`.
            let (keyword, first) = match keyword.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (keyword, None),
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => offers.pipelining = true,
                "DSN" => offers.dsn = true,
                "SMTPUTF8" => offers.smtputf8 = true,
                "8BITMIME" => offers.eight_bit_mime = true,
                "STARTTLS" => offers.starttls = true,
                "AUTH" => {
                    for mechanism in first.into_iter().chain(words) {
                        match mechanism.to_ascii_uppercase().as_str() {
                            "PLAIN" => offers.auth_plain = true,
                            "LOGIN" => offers.auth_login = true,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        offers
    }
}

/// How a transaction ended, when the server answered every step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ended {
    /// The final reply to the message, positive: "250 2.0.0 Ok: queued".
    Accepted(String),
    /// The first negative reply, its code and its text with the code.
    Refused(u16, String),
}

/// One connection to an SMTP server, greeted.
pub(super) struct Connection {
    stream: BufReader<Stream>,
    /// The commands of the next transaction (see [`Connection::commands`]),
    /// then its message.
    out: Vec<u8>,
    /// Where each command in `out` ends.
    ends: Vec<usize>,
    line: Vec<u8>,
    /// The last reply: its code and its lines, each ended by `\n`.
    code: u16,
    lines: String,
    pub offers: Offers,
    /// A step failed in a way that leaves the session unknown: not reused.
    pub broken: bool,
    /// The current transaction's message went out, in part or whole: from
    /// then on a lost connection may have delivered it.
    pub content_sent: bool,
}

impl Connection {
    /// A plain TCP connection, its greeting read.
    pub(super) async fn plain(tcp: TcpStream) -> Result<Self, Failure> {
        Self::greeted(Stream::Plain(tcp)).await
    }

    /// TLS from the first byte (`smtps://`), its greeting read.
    pub(super) async fn implicit_tls(tcp: TcpStream, tls: &Tls) -> Result<Self, Failure> {
        let stream = tls.connect(tcp).await?;
        Self::greeted(Stream::Tls(Box::new(stream))).await
    }

    async fn greeted(stream: Stream) -> Result<Self, Failure> {
        let mut conn = Connection {
            stream: BufReader::with_capacity(8 * 1024, stream),
            out: Vec::with_capacity(8 * 1024),
            ends: Vec::with_capacity(4),
            line: Vec::with_capacity(512),
            code: 0,
            lines: String::with_capacity(512),
            offers: Offers::default(),
            broken: false,
            content_sent: false,
        };
        if conn.read_reply().await? != 220 {
            return Err(Failure::Reply(conn.reply()));
        }
        Ok(conn)
    }

    /// EHLO, and what the answer offers (replacing what an earlier one did).
    pub(super) async fn ehlo(&mut self, command: &str) -> Result<(), Failure> {
        let code = self.command(command.as_bytes()).await?;
        if code != 250 {
            return Err(Failure::Reply(self.reply()));
        }
        self.offers = Offers::from_ehlo(self.lines.lines());
        Ok(())
    }

    /// STARTTLS, the TLS handshake, and EHLO again (the answer before TLS
    /// counts for nothing). The caller checks that the server offers it.
    pub(super) async fn starttls(&mut self, tls: &Tls, ehlo: &str) -> Result<(), Failure> {
        let code = self.command(b"STARTTLS\r\n").await?;
        if code != 220 {
            return Err(Failure::Reply(self.reply()));
        }
        // Anything the server wrote after its 220 came before TLS: reading
        // it as an answer under TLS would let a third party speak for the
        // server (the STARTTLS injection flaw).
        if !self.stream.buffer().is_empty() {
            return Err(Failure::Protocol(
                "the server wrote more after its answer to STARTTLS".into(),
            ));
        }
        let stream = std::mem::replace(self.stream.get_mut(), Stream::Gone);
        let Stream::Plain(tcp) = stream else {
            return Err(Failure::Protocol("STARTTLS on a TLS connection".into()));
        };
        let tls_stream = tls.connect(tcp).await?;
        *self.stream.get_mut() = Stream::Tls(Box::new(tls_stream));
        self.offers = Offers::default();
        self.ehlo(ehlo).await
    }

    /// Whether the stream is under TLS.
    pub(super) fn encrypted(&self) -> bool {
        matches!(self.stream.get_ref(), Stream::Tls(_))
    }

    /// AUTH PLAIN where offered, else AUTH LOGIN. The credentials' buffers
    /// are zeroed once written; an error quotes the server, never them.
    pub(super) async fn login(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let code = if self.offers.auth_plain {
            let mut secret = Vec::with_capacity(user.len() + password.len() + 2);
            secret.push(0);
            secret.extend_from_slice(user.as_bytes());
            secret.push(0);
            secret.extend_from_slice(password.as_bytes());
            let mut command = b"AUTH PLAIN ".to_vec();
            command.extend_from_slice(b64.encode(&secret).as_bytes());
            command.extend_from_slice(b"\r\n");
            let code = self.command(&command).await;
            zero(&mut secret);
            zero(&mut command);
            code?
        } else if self.offers.auth_login {
            if self.command(b"AUTH LOGIN\r\n").await? != 334 {
                return Err(Failure::Reply(self.reply()));
            }
            let mut line = format!("{}\r\n", b64.encode(user)).into_bytes();
            let code = self.command(&line).await?;
            zero(&mut line);
            if code != 334 {
                return Err(Failure::Reply(self.reply()));
            }
            let mut line = format!("{}\r\n", b64.encode(password)).into_bytes();
            let code = self.command(&line).await;
            zero(&mut line);
            code?
        } else {
            return Err(Failure::Protocol(
                "the server offers neither AUTH PLAIN nor AUTH LOGIN".into(),
            ));
        };
        if code != 235 {
            return Err(Failure::Reply(self.reply()));
        }
        Ok(())
    }

    /// The buffer the next transaction's commands are written to, emptied:
    /// `MAIL`, each `RCPT`, then `DATA`, each line ended by CRLF and
    /// followed by a call to [`Connection::end_command`].
    pub(super) fn commands(&mut self) -> &mut Vec<u8> {
        self.out.clear();
        self.ends.clear();
        &mut self.out
    }

    /// The buffer, to write the next command of the transaction to.
    pub(super) fn command_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Marks the end of the command just written.
    pub(super) fn end_command(&mut self) {
        self.ends.push(self.out.len());
    }

    /// Runs the transaction whose commands were written (see
    /// [`Connection::commands`]) and sends `message` (dot-stuffed, with
    /// CRLF line ends) once the server answered `DATA` with 354.
    ///
    /// With PIPELINING the commands go in one write and their replies are
    /// read in order (RFC 2920 §3.1); without, one at a time. The first
    /// negative reply is the outcome, the message is not sent, and the
    /// transaction is reset (RSET) so the connection can serve the next
    /// one. `Err` when the connection failed.
    pub(super) async fn transaction(&mut self, message: &[u8]) -> Result<Ended, Failure> {
        self.content_sent = false;
        let result = self.run_transaction(message).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn run_transaction(&mut self, message: &[u8]) -> Result<Ended, Failure> {
        let commands = self.ends.len();
        if commands < 3 {
            return Err(Failure::Protocol("a transaction without recipients".into()));
        }
        let mut refused: Option<(u16, String)> = None;
        if self.offers.pipelining {
            self.write_out(0, self.out.len()).await?;
            for i in 0..commands {
                let code = self.read_reply().await?;
                let last = i + 1 == commands;
                let expected = if last {
                    code == 354
                } else {
                    (200..300).contains(&code)
                };
                if last && expected && refused.is_some() {
                    // DATA taken after a refusal: the only way to end it
                    // without a message is to close the connection.
                    self.broken = true;
                }
                if !expected && refused.is_none() {
                    refused = Some((code, self.reply()));
                }
            }
        } else {
            let mut start = 0;
            for i in 0..commands {
                let end = self.ends[i];
                self.write_out(start, end).await?;
                start = end;
                let code = self.read_reply().await?;
                let last = i + 1 == commands;
                if (last && code != 354) || (!last && !(200..300).contains(&code)) {
                    refused = Some((code, self.reply()));
                    break;
                }
            }
        }
        if let Some((code, text)) = refused {
            if (200..400).contains(&code) {
                // DATA answered as if done, or a command answered as if it
                // asked for more: not a server to go on talking to.
                self.broken = true;
                return Err(Failure::Protocol(format!("unexpected reply: {text}")));
            }
            if code == 421 {
                self.broken = true;
            } else if !self.broken {
                self.reset().await;
            }
            return Ok(Ended::Refused(code, text));
        }
        self.out.clear();
        stuff(&mut self.out, message);
        self.content_sent = true;
        self.write_out(0, self.out.len()).await?;
        let code = self.read_reply().await?;
        if (200..300).contains(&code) {
            Ok(Ended::Accepted(self.reply()))
        } else {
            if code == 421 || code < 400 {
                self.broken = true;
            }
            Ok(Ended::Refused(code, self.reply()))
        }
    }

    /// RSET after a refusal; a connection that does not take it is broken.
    async fn reset(&mut self) {
        match self.command(b"RSET\r\n").await {
            Ok(code) if (200..300).contains(&code) => {}
            _ => self.broken = true,
        }
    }

    /// QUIT, its answer read (not judged).
    pub(super) async fn quit(&mut self) {
        if self.command(b"QUIT\r\n").await.is_ok() {
            let _ = self.stream.get_mut().shutdown().await;
        }
    }

    /// Writes one command and reads its reply's code.
    async fn command(&mut self, command: &[u8]) -> Result<u16, Failure> {
        let stream = self.stream.get_mut();
        stream.write_all(command).await?;
        stream.flush().await?;
        self.read_reply().await
    }

    async fn write_out(&mut self, start: usize, end: usize) -> Result<(), Failure> {
        let stream = self.stream.get_mut();
        stream.write_all(&self.out[start..end]).await?;
        stream.flush().await?;
        Ok(())
    }

    /// Reads one reply, all its lines; its code.
    async fn read_reply(&mut self) -> Result<u16, Failure> {
        self.lines.clear();
        self.code = 0;
        for _ in 0..MAX_LINES {
            self.line.clear();
            let n = (&mut self.stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut self.line)
                .await?;
            if n == 0 {
                return Err(Failure::Closed);
            }
            if self.line.last() != Some(&b'\n') {
                return Err(Failure::Protocol(if n as u64 >= MAX_LINE {
                    "a reply line too long".into()
                } else {
                    "network error: the server closed the connection mid-reply".into()
                }));
            }
            let line = trim_line_end(&self.line);
            let (code, more, text) = parse_line(line).ok_or_else(|| {
                Failure::Protocol(format!(
                    "not an SMTP reply: {}",
                    String::from_utf8_lossy(&line[..line.len().min(80)])
                ))
            })?;
            if self.code != 0 && code != self.code {
                return Err(Failure::Protocol(
                    "a reply whose lines disagree on the code".into(),
                ));
            }
            self.code = code;
            self.lines.push_str(&String::from_utf8_lossy(text));
            self.lines.push('\n');
            if !more {
                return Ok(code);
            }
        }
        Err(Failure::Protocol("a reply of too many lines".into()))
    }

    /// The last reply as people read it: its code and its lines joined by
    /// spaces, an enhanced status code repeated on every line written once
    /// ("550 5.1.1 <x@y>: Recipient address rejected").
    pub(super) fn reply(&self) -> String {
        describe_reply(self.code, &self.lines)
    }
}

/// See [`Connection::reply`]: `lines` each ended by `\n`.
fn describe_reply(code: u16, lines: &str) -> String {
    let mut lines = lines.lines();
    let mut out = code.to_string();
    let Some(first) = lines.next() else {
        return out;
    };
    if !first.is_empty() {
        out.push(' ');
        out.push_str(first);
    }
    let status = first
        .split_whitespace()
        .next()
        .filter(|word| is_enhanced_status(word, code));
    for line in lines {
        let line = match status {
            Some(status) => line
                .strip_prefix(status)
                .filter(|rest| rest.is_empty() || rest.starts_with(' '))
                .map_or(line, str::trim_start),
            None => line,
        };
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
    }
    out
}

/// Whether `word` is an enhanced status code (RFC 3463) of the reply
/// code's class: `5.1.1` for a 550.
fn is_enhanced_status(word: &str, code: u16) -> bool {
    let mut parts = word.split('.');
    let class = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    class.len() == 1
        && class.as_bytes()[0] == b'0' + (code / 100) as u8
        && rest.len() == 2
        && rest
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `250-PIPELINING` → (250, more lines follow, `PIPELINING`).
fn parse_line(line: &[u8]) -> Option<(u16, bool, &[u8])> {
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..600).contains(&code) {
        return None;
    }
    match line.get(3) {
        None => Some((code, false, &[])),
        Some(b' ') => Some((code, false, &line[4..])),
        Some(b'-') => Some((code, true, &line[4..])),
        Some(_) => None,
    }
}

/// Appends `message` as DATA carries it (RFC 5321 §4.5.2): every line end
/// CRLF (a bare CR or LF becomes one), a dot doubled at the start of a
/// line, a last line ended, then the lone dot.
pub(super) fn stuff(out: &mut Vec<u8>, message: &[u8]) {
    out.reserve(message.len() + message.len() / 32 + 5);
    let mut rest = message;
    let mut line_start = true;
    while !rest.is_empty() {
        if line_start && rest[0] == b'.' {
            out.push(b'.');
        }
        match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                out.extend_from_slice(rest);
                line_start = false;
                break;
            }
            Some(at) => {
                out.extend_from_slice(&rest[..at]);
                out.extend_from_slice(b"\r\n");
                let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[at + skip..];
                line_start = true;
            }
        }
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

fn zero(bytes: &mut [u8]) {
    bytes.fill(0);
    // Read once more, so the zeroing is not optimised away.
    std::hint::black_box(bytes);
}

/// The connection's bytes, in clear or under TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Between the two, during STARTTLS.
    Gone,
}

fn gone() -> io::Error {
    io::ErrorKind::NotConnected.into()
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(message: &str) -> String {
        let mut out = Vec::new();
        stuff(&mut out, message.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn data_doubles_leading_dots_ends_lines_with_crlf_and_ends_with_a_lone_dot() {
        assert_eq!(stuffed("a\r\n.b\r\n"), "a\r\n..b\r\n.\r\n");
        assert_eq!(stuffed(".\r\n"), "..\r\n.\r\n");
        assert_eq!(stuffed("x\n.\ny"), "x\r\n..\r\ny\r\n.\r\n");
        assert_eq!(stuffed("bare\rcr\r\n"), "bare\r\ncr\r\n.\r\n");
        assert_eq!(stuffed("a.b\r\n"), "a.b\r\n.\r\n");
        assert_eq!(stuffed(""), ".\r\n");
        assert_eq!(stuffed("..x"), "...x\r\n.\r\n");
    }

    #[test]
    fn reply_lines_are_parsed_and_joined_with_the_status_code_once() {
        assert_eq!(
            parse_line(b"250-PIPELINING"),
            Some((250, true, &b"PIPELINING"[..]))
        );
        assert_eq!(
            parse_line(b"354 go ahead"),
            Some((354, false, &b"go ahead"[..]))
        );
        assert_eq!(parse_line(b"250"), Some((250, false, &b""[..])));
        assert_eq!(parse_line(b"25x ok"), None);
        assert_eq!(parse_line(b"250_ok"), None);
        assert_eq!(parse_line(b"099 ok"), None);
        assert_eq!(
            describe_reply(550, "5.1.1 <x@y>: no such user\n5.1.1 try another\n"),
            "550 5.1.1 <x@y>: no such user try another"
        );
        assert_eq!(
            describe_reply(550, "5.7.2 first\n5.7.25 second\n"),
            "550 5.7.2 first 5.7.25 second"
        );
        assert_eq!(
            describe_reply(250, "2.0.0 Ok: queued as X\n"),
            "250 2.0.0 Ok: queued as X"
        );
        assert_eq!(describe_reply(221, ""), "221");
    }

    #[test]
    fn the_ehlo_answer_says_what_the_server_offers() {
        let answer = "relay.example\nPIPELINING\ndsn\nAUTH=PLAIN\nAUTH LOGIN CRAM-MD5\nSTARTTLS\n8BITMIME\nSIZE 100\n";
        let offers = Offers::from_ehlo(answer.lines());
        assert_eq!(
            offers,
            Offers {
                pipelining: true,
                dsn: true,
                smtputf8: false,
                eight_bit_mime: true,
                starttls: true,
                auth_plain: true,
                auth_login: true,
            }
        );
        // The server's name is not an extension.
        let offers = Offers::from_ehlo("DSN.relay.example\nDSNX\nPIPELININGX\n".lines());
        assert_eq!(offers, Offers::default());
    }
}
