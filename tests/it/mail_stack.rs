//! The local stack's mail servers, through real clients: a message sent to
//! the stack's relay (Postfix, MAILSYNC_SMTP_URL) with DSN parameters, to one
//! address at each test domain, brings back one RFC 3464 report each into
//! the return path's mailbox, read over IMAP from Dovecot
//! (MAILSYNC_BOUNCES_URL): deliver.test `delivered` (2.0.0), nouser.test
//! `failed` (5.1.1), later.test `delayed` (4.x.x). The reports come back to a
//! VERP address (`bounces+TOKEN@...`) of the return path.

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use lettre::address::Address;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailParameter, RcptParameter};
use url::Url;
use uuid::Uuid;

/// How long the reports may take (the delay report comes at the relay's
/// first retry, 2 s after the first attempt).
const REPORTS_WITHIN: Duration = Duration::from_secs(60);

fn required(name: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "{name} is not set: the local stack's mail servers are needed \
                 (as root: `scripts/local-stack.sh up && eval \"$(scripts/local-stack.sh env)\"`). \
                 Tests that need the stack fail rather than skip."
            )
        })
}

fn host_port(url: &Url) -> (String, u16) {
    (
        url.host_str().expect("a host").to_string(),
        url.port().expect("a port"),
    )
}

/// `local@domain` with `+tag` after the local part (VERP).
fn verp(return_path: &str, tag: &str) -> String {
    let (local, domain) = return_path.split_once('@').expect("an address");
    format!("{local}+{tag}@{domain}")
}

struct Case {
    domain: &'static str,
    action: &'static str,
    status: &'static str,
    recipient: String,
    envid: String,
}

/// Sends one message per case on one connection, with `RET=HDRS ENVID=...`
/// and `NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;...`.
async fn send(smtp: &Url, sender: &str, cases: &[Case]) {
    let (host, port) = host_port(smtp);
    let hello = ClientId::Domain("client.mailsync.test".into());
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        (host.as_str(), port),
        Some(Duration::from_secs(10)),
        &hello,
        None,
        None,
    )
    .await
    .unwrap_or_else(|e| panic!("the stack's relay at {smtp} does not answer: {e}"));
    let ehlo = conn.command(Ehlo::new(hello.clone())).await.unwrap();
    let keywords: Vec<String> = ehlo.message().map(|l| l.to_uppercase()).collect();
    for wanted in ["DSN", "PIPELINING"] {
        assert!(
            keywords.iter().any(|k| k == wanted),
            "the relay offers {wanted}: {keywords:?}"
        );
    }
    for case in cases {
        let from: Address = sender.parse().unwrap();
        let to: Address = case.recipient.parse().unwrap();
        let mail = conn
            .command(Mail::new(
                Some(from),
                vec![
                    MailParameter::Other {
                        keyword: "RET".into(),
                        value: Some("HDRS".into()),
                    },
                    MailParameter::Other {
                        keyword: "ENVID".into(),
                        value: Some(case.envid.clone()),
                    },
                ],
            ))
            .await
            .unwrap();
        assert_eq!(mail.code().to_string(), "250", "{mail:?}");
        let rcpt = conn
            .command(Rcpt::new(
                to,
                vec![
                    RcptParameter::Other {
                        keyword: "NOTIFY".into(),
                        value: Some("SUCCESS,FAILURE,DELAY".into()),
                    },
                    RcptParameter::Other {
                        keyword: "ORCPT".into(),
                        value: Some(format!("rfc822;{}", case.recipient)),
                    },
                ],
            ))
            .await
            .unwrap();
        // Accepted, whatever happens next: the outcome comes as a report.
        assert_eq!(rcpt.code().to_string(), "250", "{rcpt:?}");
        let data = conn.command(Data).await.unwrap();
        assert_eq!(data.code().to_string(), "354", "{data:?}");
        let message = format!(
            "From: Acme <news@acme.example>\r\nTo: <{to}>\r\nSubject: mail stack check ({domain})\r\n\
             Message-ID: <{envid}@acme.example>\r\nDate: Sat, 05 Dec 2026 12:00:00 +0000\r\n\r\n\
             Hello {to}.\r\n",
            to = case.recipient,
            domain = case.domain,
            envid = case.envid,
        );
        let queued = conn.message(message.as_bytes()).await.unwrap();
        assert_eq!(queued.code().to_string(), "250", "{queued:?}");
    }
    conn.quit().await.unwrap();
}

/// Every message in the mailbox at `bounces` (an `imap://` URL), read over
/// IMAP without marking anything seen.
async fn mailbox(bounces: &Url) -> Vec<String> {
    let (host, port) = host_port(bounces);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .unwrap_or_else(|e| {
            panic!("the stack's IMAP server at {host}:{port} does not answer: {e}")
        });
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .expect("an IMAP greeting")
        .expect("an IMAP greeting");
    let user = percent_decode(bounces.username());
    let password = percent_decode(
        bounces
            .password()
            .expect("a password in MAILSYNC_BOUNCES_URL"),
    );
    let mut session = client
        .login(&user, &password)
        .await
        .map_err(|(e, _)| e)
        .expect("the bounce mailbox's login is accepted");
    let folder = percent_decode(bounces.path().trim_start_matches('/'));
    let folder = if folder.is_empty() {
        "INBOX".to_string()
    } else {
        folder
    };
    let selected = session.select(&folder).await.unwrap();
    let mut messages = Vec::new();
    if selected.exists > 0 {
        let fetches: Vec<_> = session
            .fetch("1:*", "BODY.PEEK[]")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for f in fetches {
            if let Some(body) = f.body() {
                messages.push(String::from_utf8_lossy(body).into_owned());
            }
        }
    }
    session.logout().await.unwrap();
    messages
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A message's header block, folded lines joined, and its body.
fn split_message(raw: &str) -> (String, &str) {
    let raw_headers_end = raw
        .find("\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| raw.find("\n\n").map(|i| (i, i + 2)))
        .expect("a header block");
    let headers = raw[..raw_headers_end.0]
        .replace("\r\n", "\n")
        .replace("\n\t", " ")
        .replace("\n ", " ");
    (headers, &raw[raw_headers_end.1..])
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The report's `message/delivery-status` part as field blocks: the
/// per-message block first, then one per recipient.
fn delivery_status(raw: &str) -> Vec<Vec<(String, String)>> {
    let (headers, body) = split_message(raw);
    let content_type = header(&headers, "Content-Type").expect("a Content-Type");
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a multipart boundary")
        .trim_matches('"');
    let part = body
        .split(&format!("--{boundary}"))
        .find(|part| {
            let part = part.trim_start_matches(['\r', '\n']);
            part.contains('\n')
                && header(&split_message(part).0, "Content-Type")
                    .is_some_and(|t| t.eq_ignore_ascii_case("message/delivery-status"))
        })
        .expect("a message/delivery-status part");
    let (_, fields) = split_message(part.trim_start_matches(['\r', '\n']));
    fields
        .replace("\r\n", "\n")
        .split("\n\n")
        .map(|block| {
            block
                .replace("\n\t", " ")
                .replace("\n ", " ")
                .lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect::<Vec<_>>()
        })
        .filter(|b| !b.is_empty())
        .collect()
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reports_delivered_failed_and_delayed_into_the_imap_mailbox() {
    let smtp = Url::parse(&required("MAILSYNC_SMTP_URL")).unwrap();
    let bounces = Url::parse(&required("MAILSYNC_BOUNCES_URL")).unwrap();
    let return_path = required("MAILSYNC_RETURN_PATH");
    assert_eq!(
        bounces.scheme(),
        "imap",
        "the stack's mailbox is on loopback"
    );

    let tag = Uuid::new_v4().simple().to_string()[..12].to_string();
    let sender = verp(&return_path, &tag);
    let cases: Vec<Case> = [
        ("deliver.test", "delivered", "2.0.0"),
        ("nouser.test", "failed", "5.1.1"),
        ("later.test", "delayed", "4."),
    ]
    .into_iter()
    .map(|(domain, action, status)| Case {
        domain,
        action,
        status,
        recipient: format!("reader.{tag}@{domain}"),
        envid: format!("stack-check-{tag}-{}", domain.split('.').next().unwrap()),
    })
    .collect();
    send(&smtp, &sender, &cases).await;

    // Wait for one report per message (matched by its envelope id).
    let deadline = Instant::now() + REPORTS_WITHIN;
    let reports = loop {
        let all = mailbox(&bounces).await;
        let found: Vec<Option<String>> = cases
            .iter()
            .map(|c| {
                all.iter()
                    .find(|m| {
                        m.contains(&format!("Original-Envelope-Id: {}", c.envid))
                            && m.contains(&format!("Action: {}", c.action))
                    })
                    .cloned()
            })
            .collect();
        if found.iter().all(Option::is_some) {
            break found.into_iter().map(Option::unwrap).collect::<Vec<_>>();
        }
        let missing: Vec<&str> = cases
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(c, _)| c.action)
            .collect();
        assert!(
            Instant::now() < deadline,
            "no `{missing:?}` report within {REPORTS_WITHIN:?} in the mailbox at {}:{} \
             ({} messages there)",
            bounces.host_str().unwrap(),
            bounces.port().unwrap(),
            all.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    for (case, report) in cases.iter().zip(&reports) {
        let (headers, _) = split_message(report);
        let content_type = header(&headers, "Content-Type")
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            content_type.starts_with("multipart/report;")
                && content_type.contains("report-type=delivery-status"),
            "{}: {content_type}",
            case.domain
        );
        // Back to the VERP address the message was sent from.
        assert_eq!(
            header(&headers, "To"),
            Some(sender.as_str()),
            "{}",
            case.domain
        );
        let blocks = delivery_status(report);
        assert_eq!(
            blocks.len(),
            2,
            "{}: one per-message block and one recipient (the inbox copy of \
             deliver.test mail asks for no report): {blocks:?}",
            case.domain
        );
        assert_eq!(
            field(&blocks[0], "original-envelope-id"),
            Some(case.envid.as_str())
        );
        assert!(field(&blocks[0], "reporting-mta").is_some_and(|m| m.starts_with("dns;")));
        let rcpt = &blocks[1];
        assert_eq!(
            field(rcpt, "final-recipient").map(|v| v.replace(' ', "")),
            Some(format!("rfc822;{}", case.recipient))
        );
        assert_eq!(
            field(rcpt, "original-recipient").map(|v| v.replace(' ', "")),
            Some(format!("rfc822;{}", case.recipient))
        );
        assert_eq!(field(rcpt, "action"), Some(case.action), "{rcpt:?}");
        let status = field(rcpt, "status").unwrap_or_default();
        assert!(
            status.starts_with(case.status)
                && status.split('.').count() == 3
                && status.split('.').all(|n| n.parse::<u16>().is_ok()),
            "{}: Status {status}",
            case.domain
        );
    }
}
