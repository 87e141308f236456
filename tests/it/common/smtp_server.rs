//! A small scripted SMTP server for the delivery tests (RFC 5321: greeting,
//! EHLO/HELO, MAIL, RCPT, DATA with dot-stuffing, RSET, NOOP, QUIT). It
//! answers each recipient as the test's script says, at RCPT or at the end of
//! DATA: accept (250), a reply of the test's choosing (4xx, 5xx), or a
//! connection dropped in the middle of the message. It keeps every message it
//! accepted (with when it answered), so a test can count exactly what went
//! out and when, and every MAIL and RCPT line as it was sent. It advertises DSN (RFC 3461) when asked to, and
//! otherwise refuses DSN parameters as Postfix does (555 5.5.4).
//!
//! On cue it also advertises PIPELINING (RFC 2920), offers or refuses
//! STARTTLS (with a self-signed certificate, which a client must refuse for
//! a name that is not this machine), and asks for AUTH, answering it as the
//! test says. It records every byte it receives (decrypted under TLS) and
//! each read as it came, so a test can tell whether a client grouped its
//! commands in one write and whether a password ever went out.
//!
//! The stack's maildev accepts everything; refusals and dropped connections
//! need a server a test can script, and no crate offers one that can drop a
//! connection mid-message (see docs/DECISIONS.md).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Where in the transaction a recipient is being answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Rcpt,
    Data,
}

/// What the server does for one recipient at one phase.
#[derive(Debug, Clone)]
pub enum Action {
    Accept,
    /// A full reply line such as "550 5.1.1 no such user".
    Reply(String),
    /// Close the connection (at DATA: after part of the message arrived).
    Drop,
}

/// The script: recipient, phase, and how many times this recipient was
/// seen at this phase before (0 the first time).
pub type Script = dyn Fn(&str, Phase, u32) -> Action + Send + Sync;

/// A message the server accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub recipient: String,
    pub data: String,
    /// When the server answered 250 to the end of the message.
    pub at: Instant,
}

#[derive(Default)]
struct State {
    accepted: Vec<Received>,
    seen: HashMap<(String, Phase), u32>,
    connections: u32,
    /// Advertise DSN in the EHLO answer.
    dsn: bool,
    /// Every MAIL and RCPT line, in the order they came.
    envelope: Vec<String>,
    ehlos: u32,
    /// Advertise PIPELINING in the EHLO answer.
    pipelining: bool,
    starttls: StartTls,
    /// TLS from the first byte (`smtps://`), with this certificate.
    implicit_tls: Option<TlsAcceptor>,
    /// Advertise AUTH PLAIN LOGIN and give this final answer to it.
    auth: Option<String>,
    /// Every byte received, decrypted under TLS, all connections in turn.
    received: Vec<u8>,
    /// Each read as it came (under TLS: each decrypted read).
    reads: Vec<Vec<u8>>,
}

/// What the server does about STARTTLS.
#[derive(Default, Clone)]
enum StartTls {
    #[default]
    NotOffered,
    /// Advertised, then refused with this reply.
    Refused(String),
    /// Advertised and done, with this certificate.
    Offered(TlsAcceptor),
}

pub struct ScriptedSmtp {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedSmtp {
    /// Starts a server on a free loopback port. `delay` is waited before
    /// each answer to the end of DATA (a slow server).
    pub async fn start(
        script: impl Fn(&str, Phase, u32) -> Action + Send + Sync + 'static,
        delay: Duration,
    ) -> Self {
        Self::start_at([127, 0, 0, 1].into(), script, delay).await
    }

    /// [`ScriptedSmtp::start`] on a free port of `ip` (a loopback address).
    pub async fn start_at(
        ip: std::net::IpAddr,
        script: impl Fn(&str, Phase, u32) -> Action + Send + Sync + 'static,
        delay: Duration,
    ) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                shared.lock().unwrap().connections += 1;
                tokio::spawn(serve(socket, shared.clone(), script.clone(), delay));
            }
        });
        Self { addr, state, task }
    }

    /// `smtp://127.0.0.1:PORT`, for MAILSYNC_SMTP_URL.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.state.lock().unwrap().accepted.clone()
    }

    /// How many messages were accepted for each recipient.
    pub fn accepted_count(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for r in self.accepted() {
            *counts.entry(r.recipient).or_default() += 1;
        }
        counts
    }

    pub fn connections(&self) -> u32 {
        self.state.lock().unwrap().connections
    }

    /// From now on, advertise DSN (RFC 3461) and accept its parameters.
    pub fn offer_dsn(&self) {
        self.state.lock().unwrap().dsn = true;
    }

    /// Every `MAIL FROM:` and `RCPT TO:` line received, as written (without
    /// the CRLF), in order.
    pub fn envelope_lines(&self) -> Vec<String> {
        self.state.lock().unwrap().envelope.clone()
    }

    /// How many EHLO commands were answered, all connections together.
    pub fn ehlos(&self) -> u32 {
        self.state.lock().unwrap().ehlos
    }

    /// From now on, advertise PIPELINING (RFC 2920).
    pub fn offer_pipelining(&self) {
        self.state.lock().unwrap().pipelining = true;
    }

    /// From now on, advertise STARTTLS and refuse it with `reply`
    /// ("454 4.7.0 TLS not available").
    pub fn refuse_starttls(&self, reply: &str) {
        self.state.lock().unwrap().starttls = StartTls::Refused(reply.to_string());
    }

    /// From now on, advertise STARTTLS and do it with `acceptor`'s
    /// certificate.
    pub fn offer_starttls(&self, acceptor: TlsAcceptor) {
        self.state.lock().unwrap().starttls = StartTls::Offered(acceptor);
    }

    /// From now on, TLS from the first byte (`smtps://`) with `acceptor`'s
    /// certificate.
    pub fn implicit_tls(&self, acceptor: TlsAcceptor) {
        self.state.lock().unwrap().implicit_tls = Some(acceptor);
    }

    /// From now on, advertise AUTH PLAIN and LOGIN and answer a login with
    /// `reply` ("235 2.7.0 Authentication successful", "535 5.7.8 ...").
    pub fn offer_auth(&self, reply: &str) {
        self.state.lock().unwrap().auth = Some(reply.to_string());
    }

    /// Every byte received (decrypted under TLS), all connections in turn.
    pub fn received(&self) -> Vec<u8> {
        self.state.lock().unwrap().received.clone()
    }

    /// Each read the server made, as text: with a pipelining client, a
    /// transaction's MAIL, RCPT and DATA arrive in one.
    pub fn reads(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .reads
            .iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect()
    }

    /// How many reads held more than one command of a transaction (MAIL,
    /// RCPT, DATA): the client pipelined them.
    pub fn grouped_reads(&self) -> usize {
        self.reads()
            .iter()
            .filter(|r| {
                let upper = r.to_ascii_uppercase();
                let commands = upper.matches("MAIL FROM:").count()
                    + upper.matches("RCPT TO:").count()
                    + upper.matches("\r\nDATA\r\n").count();
                commands > 1
            })
            .count()
    }
}

/// A stream that records what is read from it in the server's state.
struct Recorder<S> {
    inner: S,
    state: Arc<Mutex<State>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                let mut state = this.state.lock().unwrap();
                state.received.extend_from_slice(new);
                state.reads.push(new.to_vec());
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The DSN parameters of a MAIL or RCPT line (RFC 3461 §4), which a server
/// that does not advertise DSN refuses.
fn has_dsn_parameter(command: &str) -> bool {
    command.split_whitespace().skip(2).any(|p| {
        let keyword = p.split('=').next().unwrap_or_default().to_ascii_uppercase();
        matches!(keyword.as_str(), "RET" | "ENVID" | "NOTIFY" | "ORCPT")
    })
}

impl Drop for ScriptedSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn seen(state: &Mutex<State>, recipient: &str, phase: Phase) -> u32 {
    let mut state = state.lock().unwrap();
    let n = state
        .seen
        .entry((recipient.to_string(), phase))
        .or_default();
    let before = *n;
    *n += 1;
    before
}

async fn serve(socket: TcpStream, state: Arc<Mutex<State>>, script: Arc<Script>, delay: Duration) {
    let implicit = state.lock().unwrap().implicit_tls.clone();
    if let Some(acceptor) = implicit {
        if let Ok(tls) = acceptor.accept(socket).await {
            let tls = Recorder {
                inner: tls,
                state: state.clone(),
            };
            converse(tls, true, true, &state, &script, delay).await;
        }
        return;
    }
    let plain = Recorder {
        inner: socket,
        state: state.clone(),
    };
    let Some((plain, acceptor)) = converse(plain, true, false, &state, &script, delay).await else {
        return;
    };
    // STARTTLS: the same connection, under TLS from here on.
    if let Ok(tls) = acceptor.accept(plain.inner).await {
        let tls = Recorder {
            inner: tls,
            state: state.clone(),
        };
        converse(tls, false, true, &state, &script, delay).await;
    }
}

/// The conversation on one stream (greeted first when `greet`), until
/// QUIT, a drop, or STARTTLS (then the stream, to be put under TLS with the
/// acceptor).
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    greet: bool,
    tls_up: bool,
    state: &Arc<Mutex<State>>,
    script: &Arc<Script>,
    delay: Duration,
) -> Option<(S, TlsAcceptor)> {
    let state = state.clone();
    let mut lines = BufReader::new(stream);
    macro_rules! say {
        ($text:expr) => {
            if lines
                .write_all(format!("{}\r\n", $text).as_bytes())
                .await
                .is_err()
            {
                return None;
            }
        };
    }
    if greet {
        say!("220 scripted.test ESMTP ready");
    }
    let mut recipients: Vec<String> = Vec::new();
    let mut mail_from = false;
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("MAIL FROM:") || upper.starts_with("RCPT TO:") {
            let dsn = {
                let mut s = state.lock().unwrap();
                s.envelope.push(command.clone());
                s.dsn
            };
            if !dsn && has_dsn_parameter(&command) {
                say!("555 5.5.4 Unsupported option");
                continue;
            }
        }
        if upper.starts_with("EHLO") {
            let answer = {
                let mut s = state.lock().unwrap();
                s.ehlos += 1;
                let mut answer = vec!["scripted.test", "8BITMIME"];
                if s.pipelining {
                    answer.push("PIPELINING");
                }
                if s.dsn {
                    answer.push("DSN");
                }
                if !tls_up && !matches!(s.starttls, StartTls::NotOffered) {
                    answer.push("STARTTLS");
                }
                if s.auth.is_some() {
                    answer.push("AUTH PLAIN LOGIN");
                }
                answer.extend(["SMTPUTF8", "SIZE 10485760"]);
                let last = answer.len() - 1;
                answer
                    .iter()
                    .enumerate()
                    .map(|(i, a)| format!("250{}{a}", if i == last { ' ' } else { '-' }))
                    .collect::<Vec<_>>()
                    .join("\r\n")
            };
            say!(answer);
        } else if upper == "STARTTLS" && !tls_up {
            let starttls = state.lock().unwrap().starttls.clone();
            match starttls {
                StartTls::NotOffered => say!("502 5.5.2 Command not recognized"),
                StartTls::Refused(reply) => say!(reply),
                StartTls::Offered(acceptor) => {
                    say!("220 2.0.0 Ready to start TLS");
                    return Some((lines.into_inner(), acceptor));
                }
            }
        } else if upper.starts_with("AUTH ") {
            let Some(reply) = state.lock().unwrap().auth.clone() else {
                say!("502 5.5.2 Command not recognized");
                continue;
            };
            if upper.starts_with("AUTH LOGIN") {
                // The user name, then the password, each asked for.
                for prompt in ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"] {
                    say!(prompt);
                    line.clear();
                    match lines.read_line(&mut line).await {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                }
            }
            say!(reply);
        } else if upper.starts_with("HELO") {
            say!("250 scripted.test");
        } else if upper.starts_with("MAIL FROM:") {
            mail_from = true;
            recipients.clear();
            say!("250 2.1.0 Ok");
        } else if upper.starts_with("RCPT TO:") {
            if !mail_from {
                say!("503 5.5.1 MAIL first");
                continue;
            }
            let recipient = address(&command["RCPT TO:".len()..]);
            let n = seen(&state, &recipient, Phase::Rcpt);
            match script(&recipient, Phase::Rcpt, n) {
                Action::Accept => {
                    recipients.push(recipient);
                    say!("250 2.1.5 Ok");
                }
                Action::Reply(reply) => say!(reply),
                Action::Drop => return None,
            }
        } else if upper == "DATA" {
            if recipients.is_empty() {
                say!("503 5.5.1 RCPT first");
                continue;
            }
            say!("354 End data with <CR><LF>.<CR><LF>");
            let actions: Vec<(String, Action)> = recipients
                .iter()
                .map(|r| {
                    let n = seen(&state, r, Phase::Data);
                    (r.clone(), script(r, Phase::Data, n))
                })
                .collect();
            let drop_midway = actions.iter().any(|(_, a)| matches!(a, Action::Drop));
            let mut data = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
                if drop_midway && data.len() > 40 {
                    // The connection goes away with the message half read.
                    return None;
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // One transaction, one reply: the first recipient's action
            // decides (mailsync sends one recipient per message).
            match &actions[0].1 {
                Action::Accept => {
                    let n = {
                        let mut s = state.lock().unwrap();
                        let at = Instant::now();
                        for (r, _) in &actions {
                            s.accepted.push(Received {
                                recipient: r.clone(),
                                data: data.clone(),
                                at,
                            });
                        }
                        s.accepted.len()
                    };
                    say!(format!("250 2.0.0 Ok: queued as Q{n}"));
                }
                Action::Reply(reply) => say!(reply),
                Action::Drop => return None,
            }
            mail_from = false;
            recipients.clear();
        } else if upper == "RSET" {
            mail_from = false;
            recipients.clear();
            say!("250 2.0.0 Ok");
        } else if upper == "NOOP" {
            say!("250 2.0.0 Ok");
        } else if upper == "QUIT" {
            say!("221 2.0.0 Bye");
            return None;
        } else {
            say!("502 5.5.2 Command not recognized");
        }
    }
}

/// `<jane@acme.example> SIZE=123` → `jane@acme.example`
fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split('>').next())
        .unwrap_or(arg);
    inner.to_ascii_lowercase()
}
