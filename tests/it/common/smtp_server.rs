//! A small scripted SMTP server for the delivery tests (RFC 5321: greeting,
//! EHLO/HELO, MAIL, RCPT, DATA with dot-stuffing, RSET, NOOP, QUIT). It
//! answers each recipient as the test's script says, at RCPT or at the end of
//! DATA: accept (250), a reply of the test's choosing (4xx, 5xx), or a
//! connection dropped in the middle of the message. It keeps every message it
//! accepted (with when it answered), so a test can count exactly what went
//! out and when, and every MAIL and RCPT line as it was sent. It advertises DSN (RFC 3461) when asked to, and
//! otherwise refuses DSN parameters as Postfix does (555 5.5.4).
//!
//! The stack's maildev accepts everything; refusals and dropped connections
//! need a server a test can script, and no crate offers one that can drop a
//! connection mid-message (see docs/DECISIONS.md).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    macro_rules! say {
        ($text:expr) => {
            if write
                .write_all(format!("{}\r\n", $text).as_bytes())
                .await
                .is_err()
            {
                return;
            }
        };
    }
    say!("220 scripted.test ESMTP ready");
    let mut recipients: Vec<String> = Vec::new();
    let mut mail_from = false;
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
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
            let dsn = {
                let mut s = state.lock().unwrap();
                s.ehlos += 1;
                s.dsn
            };
            if dsn {
                say!("250-scripted.test\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 SIZE 10485760");
            } else {
                say!("250-scripted.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760");
            }
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
                Action::Drop => return,
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
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if drop_midway && data.len() > 40 {
                    // The connection goes away with the message half read.
                    return;
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
                Action::Drop => return,
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
            return;
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
