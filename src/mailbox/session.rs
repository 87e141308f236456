//! One IMAP session on the bounce mailbox: the connection (TCP, then TLS
//! for `imaps://`), the login, the folder, and the few commands
//! `bounces fetch` needs. Every network step has a time limit. The password
//! is sent once, inside LOGIN, and is in no message, error or trace.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::{AttributeValue, MailboxDatum, Response, Status};
use async_imap::types::Flag;
use async_imap::{Client, Session};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, ErrorKind, Result};
use crate::output::trace;
use crate::settings::{BounceMailbox, ENV_BOUNCES_URL};
use crate::t;

/// The keyword a message gets once its reports are recorded.
pub const RECORDED: &str = "$MailsyncRecorded";

/// The longest a server's error text is quoted in a message.
const QUOTE_MAX: usize = 200;

/// How long each network step may take.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connection and TLS handshake, each.
    pub connect: Duration,
    /// One command and its answer (a FETCH of one batch included).
    pub command: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(15),
            command: Duration::from_secs(60),
        }
    }
}

/// A connection, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}
type Stream = Box<dyn Io>;

/// A message as read from the mailbox.
#[derive(Debug)]
pub struct Fetched {
    pub uid: u32,
    /// Its whole size, as the server counts it.
    pub size: u64,
    /// Its first bytes, at most the cap given to [`Reader::fetch`].
    pub raw: Vec<u8>,
    /// The message is larger than what was read.
    pub truncated: bool,
    /// When the server received it (RFC 3339), for a report without a date.
    pub received_at: Option<String>,
}

/// The open folder of the bounce mailbox, after login.
pub struct Reader {
    session: Option<Session<Stream>>,
    address: String,
    folder: String,
    timeouts: Timeouts,
    /// `UIDVALIDITY` of the folder: UIDs mean the same messages while it stays.
    pub uid_validity: Option<u32>,
    /// The server keeps the [`RECORDED`] keyword.
    pub keywords: bool,
    /// The server offers IDLE.
    pub idle: bool,
}

impl Reader {
    /// Connects, logs in and selects the folder.
    pub async fn open(mailbox: &BounceMailbox, timeouts: Timeouts) -> Result<Self> {
        let address = mailbox.address();
        trace(format!(
            "imap: connecting to {address} ({})",
            if mailbox.tls {
                "TLS"
            } else {
                "plain, loopback"
            }
        ));
        let tcp = within(
            timeouts.connect,
            TcpStream::connect((mailbox.host.as_str(), mailbox.port)),
        )
        .await
        .ok_or_else(|| not_reached(&address, &t!("mailbox-cause-timeout")))?
        .map_err(|e| not_reached(&address, &e.to_string()))?;
        let stream: Stream = if mailbox.tls {
            Box::new(tls_connect(tcp, mailbox, &address, timeouts).await?)
        } else {
            Box::new(tcp)
        };
        let mut client = Client::new(stream);
        // The greeting: `* OK ...` (or `* BYE` from a server that refuses us).
        match within(timeouts.command, client.read_response()).await {
            None => return Err(not_reached(&address, &t!("mailbox-cause-timeout"))),
            Some(Err(e)) => return Err(not_reached(&address, &e.to_string())),
            Some(Ok(None)) => return Err(not_reached(&address, &t!("mailbox-cause-closed"))),
            Some(Ok(Some(_))) => {}
        }
        trace(format!("imap: logging in as {}", mailbox.user));
        let session = match within(
            timeouts.command,
            client.login(&mailbox.user, mailbox.password.expose()),
        )
        .await
        {
            None => return Err(not_reached(&address, &t!("mailbox-cause-timeout"))),
            Some(Ok(session)) => session,
            Some(Err((async_imap::error::Error::No(text), _))) => {
                trace(format!("imap: LOGIN refused: {}", quote(&text)));
                return Err(Error::config(t!(
                    "mailbox-error-login",
                    user = mailbox.user.as_str(),
                    address = address.as_str()
                ))
                .with_hint(t!("mailbox-hint-login", name = ENV_BOUNCES_URL)));
            }
            Some(Err((e, _))) => return Err(lost(&address, e)),
        };
        let mut reader = Reader {
            session: Some(session),
            address,
            folder: mailbox.folder.clone(),
            timeouts,
            uid_validity: None,
            keywords: false,
            idle: false,
        };
        reader.select().await?;
        Ok(reader)
    }

    fn session(&mut self) -> Result<&mut Session<Stream>> {
        let address = self.address.clone();
        self.session
            .as_mut()
            .ok_or_else(|| unreachable(&address, &t!("mailbox-cause-closed")))
    }

    async fn select(&mut self) -> Result<()> {
        let (address, folder, limit) = (
            self.address.clone(),
            self.folder.clone(),
            self.timeouts.command,
        );
        let session = self.session()?;
        let capabilities = step(limit, &address, session.capabilities()).await?;
        let idle = capabilities.has_str("IDLE");
        let selected = match within(limit, session.select(&folder)).await {
            None => return Err(unreachable(&address, &t!("mailbox-cause-timeout"))),
            Some(Ok(m)) => m,
            Some(Err(async_imap::error::Error::No(text))) => {
                trace(format!("imap: SELECT refused: {}", quote(&text)));
                return Err(Error::config(t!(
                    "mailbox-error-folder",
                    folder = folder.as_str(),
                    address = address.as_str()
                )));
            }
            Some(Err(e)) => return Err(lost(&address, e)),
        };
        let keywords = selected
            .permanent_flags
            .iter()
            .any(|f| matches!(f, Flag::MayCreate) || matches!(f, Flag::Custom(k) if k == RECORDED));
        trace(format!(
            "imap: selected {folder}: {} message(s), UIDVALIDITY {:?}, keywords {}, IDLE {}",
            selected.exists,
            selected.uid_validity,
            if keywords { "kept" } else { "not kept" },
            if idle { "offered" } else { "not offered" }
        ));
        self.uid_validity = selected.uid_validity;
        self.keywords = keywords;
        self.idle = idle;
        Ok(())
    }

    /// The UIDs of the messages not marked [`RECORDED`] (every message when
    /// the server keeps no keywords), in ascending order.
    pub async fn unrecorded(&mut self) -> Result<Vec<u32>> {
        let query = if self.keywords {
            format!("UID SEARCH UNKEYWORD {RECORDED}")
        } else {
            "UID SEARCH ALL".to_string()
        };
        let mut uids: Vec<u32> = Vec::new();
        self.command(&query, |answer| {
            if let Response::MailboxData(MailboxDatum::Search(ids)) = answer {
                uids.extend_from_slice(ids);
            }
        })
        .await?;
        uids.sort_unstable();
        uids.dedup();
        trace(format!("imap: {query}: {} message(s)", uids.len()));
        Ok(uids)
    }

    /// Reads the messages `uids` (at most `cap` bytes of each) without
    /// setting `\Seen`. A message deleted meanwhile is simply missing from
    /// the answer.
    pub async fn fetch(&mut self, uids: &[u32], cap: usize) -> Result<Vec<Fetched>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids);
        trace(format!("imap: UID FETCH {set} (at most {cap} bytes each)"));
        let wanted: HashSet<u32> = uids.iter().copied().collect();
        let mut messages = Vec::new();
        let query = format!("UID FETCH {set} (UID RFC822.SIZE INTERNALDATE BODY.PEEK[]<0.{cap}>)");
        self.command(&query, |answer| {
            let Response::Fetch(_, attributes) = answer else {
                return;
            };
            let (mut uid, mut size, mut received_at, mut body) = (None, None, None, None);
            for attribute in attributes {
                match attribute {
                    AttributeValue::Uid(u) => uid = Some(*u),
                    AttributeValue::Rfc822Size(n) => size = Some(u64::from(*n)),
                    AttributeValue::InternalDate(d) => received_at = internal_date(d),
                    AttributeValue::BodySection {
                        section: None,
                        data: Some(data),
                        ..
                    } => body = Some(data),
                    _ => {}
                }
            }
            // Unsolicited FETCHes (flag changes by another client) are not ours.
            let (Some(uid), Some(body)) = (uid.filter(|u| wanted.contains(u)), body) else {
                return;
            };
            let raw = body[..body.len().min(cap)].to_vec();
            let size = size.unwrap_or(raw.len() as u64);
            messages.push(Fetched {
                uid,
                size,
                truncated: size > raw.len() as u64,
                raw,
                received_at,
            });
        })
        .await?;
        messages.sort_by_key(|m| m.uid);
        messages.dedup_by_key(|m| m.uid);
        Ok(messages)
    }

    /// Marks the messages `uids` [`RECORDED`] (nothing when the server keeps
    /// no keywords).
    pub async fn mark_recorded(&mut self, uids: &[u32]) -> Result<()> {
        if uids.is_empty() || !self.keywords {
            return Ok(());
        }
        let command = format!("UID STORE {} +FLAGS.SILENT ({RECORDED})", uid_set(uids));
        trace(format!("imap: {command}"));
        self.command(&command, |_| {}).await
    }

    /// Sends one tagged command and reads the answers up to its completion,
    /// which must be OK. A connection that ends before the completion is
    /// an error, never an empty answer.
    async fn command(&mut self, command: &str, mut each: impl FnMut(&Response<'_>)) -> Result<()> {
        let (address, limit) = (self.address.clone(), self.timeouts.command);
        let session = self.session()?;
        let exchange = async {
            let tag = session.run_command(command).await?;
            loop {
                let Some(answer) = session.read_response().await? else {
                    return Err(async_imap::error::Error::ConnectionLost);
                };
                if let Response::Done {
                    tag: done,
                    status,
                    information,
                    ..
                } = answer.parsed()
                {
                    if *done == tag {
                        return match status {
                            Status::Ok => Ok(()),
                            Status::No => Err(async_imap::error::Error::No(
                                information.as_deref().unwrap_or_default().to_string(),
                            )),
                            _ => Err(async_imap::error::Error::Bad(
                                information.as_deref().unwrap_or_default().to_string(),
                            )),
                        };
                    }
                    continue;
                }
                if let Response::Data {
                    status: Status::Bye,
                    ..
                } = answer.parsed()
                {
                    return Err(async_imap::error::Error::ConnectionLost);
                }
                each(answer.parsed());
            }
        };
        match within(limit, exchange).await {
            None => {
                // A half-read answer leaves the connection unusable.
                self.session = None;
                Err(unreachable(&address, &t!("mailbox-cause-timeout")))
            }
            Some(Err(e)) => {
                self.session = None;
                Err(lost(&address, e))
            }
            Some(Ok(())) => Ok(()),
        }
    }

    /// Waits until the server says something changed in the folder (IDLE),
    /// or `wait` passes, or `stop` resolves; without IDLE, just waits.
    /// Returns whether `stop` ended the wait.
    pub async fn wait_for_news(
        &mut self,
        wait: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<bool> {
        if !self.idle {
            tokio::select! {
                _ = tokio::time::sleep(wait) => return Ok(false),
                _ = stop => return Ok(true),
            }
        }
        let address = self.address.clone();
        let limit = self.timeouts.command;
        let session = self
            .session
            .take()
            .ok_or_else(|| unreachable(&address, &t!("mailbox-cause-closed")))?;
        let mut handle = session.idle();
        step(limit, &address, handle.init()).await?;
        trace("imap: IDLE");
        let stopped = {
            let (news, _interrupt) = handle.wait_with_timeout(wait);
            tokio::select! {
                answer = news => match answer {
                    Ok(IdleResponse::NewData(_)) => { trace("imap: IDLE: the folder changed"); false }
                    Ok(_) => false,
                    Err(e) => return Err(lost(&address, e)),
                },
                _ = stop => true,
            }
        };
        let session = step(limit, &address, handle.done()).await?;
        self.session = Some(session);
        Ok(stopped)
    }

    /// Logs out (best effort: the work is already recorded).
    pub async fn close(mut self) {
        if let Some(mut session) = self.session.take() {
            let _ = within(Duration::from_secs(5), session.logout()).await;
        }
    }
}

/// TLS to the mailbox's host: webpki's roots and those of
/// `MAILSYNC_BOUNCES_CA_FILE`, the certificate checked for the host name.
async fn tls_connect(
    tcp: TcpStream,
    mailbox: &BounceMailbox,
    address: &str,
    timeouts: Timeouts,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let host = mailbox.host.as_str();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = crate::settings::ca_file::public_roots_and(&mailbox.extra_roots)
        .map_err(|e| tls_refused(address, &e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::failure(t!("error-tls-setup", reason = e.to_string())))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| tls_refused(address, &t!("mailbox-cause-bad-name")))?;
    let connector = TlsConnector::from(Arc::new(config));
    match within(timeouts.connect, connector.connect(name, tcp)).await {
        None => Err(not_reached(address, &t!("mailbox-cause-timeout"))),
        Some(Ok(stream)) => Ok(stream),
        Some(Err(e)) => {
            let reason = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map(|r| r.to_string());
            match reason {
                Some(reason) => Err(tls_refused(address, &reason)),
                None => Err(not_reached(address, &e.to_string())),
            }
        }
    }
}

/// An IMAP `INTERNALDATE` (` 5-Dec-2026 10:00:00 +0000`) in RFC 3339.
fn internal_date(text: &str) -> Option<String> {
    chrono::DateTime::parse_from_str(text.trim(), "%d-%b-%Y %H:%M:%S %z")
        .ok()
        .map(|d| d.to_rfc3339())
}

/// The UID set of a command: `3,5,7`.
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

async fn within<F: std::future::Future>(limit: Duration, f: F) -> Option<F::Output> {
    tokio::time::timeout(limit, f).await.ok()
}

/// One command with its time limit; a failure is a lost connection.
async fn step<T>(
    limit: Duration,
    address: &str,
    f: impl std::future::Future<Output = async_imap::error::Result<T>>,
) -> Result<T> {
    match within(limit, f).await {
        None => Err(unreachable(address, &t!("mailbox-cause-timeout"))),
        Some(Err(e)) => Err(lost(address, e)),
        Some(Ok(v)) => Ok(v),
    }
}

/// The server could not be reached or greeted: nothing was sent to it yet.
fn not_reached(address: &str, cause: &str) -> Error {
    Error::unreachable(t!(
        "mailbox-error-unreachable",
        address = address,
        cause = quote(cause)
    ))
    .with_hint(t!("mailbox-hint-check-url", name = ENV_BOUNCES_URL))
}

fn unreachable(address: &str, cause: &str) -> Error {
    Error::unreachable(t!(
        "mailbox-error-unreachable",
        address = address,
        cause = quote(cause)
    ))
    .with_hint(t!("mailbox-hint-rerun"))
}

fn tls_refused(address: &str, reason: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        t!(
            "mailbox-error-tls",
            address = address,
            reason = quote(reason)
        ),
    )
    .with_hint(t!("mailbox-hint-tls"))
}

/// A failure after login: the connection dropped, or the server answered
/// something unexpected. The work recorded so far stays; a re-run goes on.
fn lost(address: &str, e: async_imap::error::Error) -> Error {
    let cause = match &e {
        async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => quote(text),
        async_imap::error::Error::Io(io) => quote(&io.to_string()),
        async_imap::error::Error::ConnectionLost => t!("mailbox-cause-closed"),
        other => quote(&other.to_string()),
    };
    Error::unreachable(t!("mailbox-error-lost", address = address, cause = cause))
        .with_hint(t!("mailbox-hint-rerun"))
}

/// A server's words, one line, bounded, without control characters.
fn quote(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    match line.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_dates_read_as_rfc3339() {
        assert_eq!(
            internal_date(" 5-Dec-2026 10:00:00 +0100").as_deref(),
            Some("2026-12-05T10:00:00+01:00")
        );
        assert_eq!(internal_date("yesterday"), None);
    }

    #[test]
    fn uid_sets_list_each_uid() {
        assert_eq!(uid_set(&[3, 5, 7]), "3,5,7");
        assert_eq!(uid_set(&[42]), "42");
    }

    #[test]
    fn server_words_are_one_bounded_line() {
        assert_eq!(quote(" a\r\nb\u{7}c "), "a  b c");
        let long = "x".repeat(500);
        assert_eq!(quote(&long).chars().count(), QUOTE_MAX + 1);
    }
}
