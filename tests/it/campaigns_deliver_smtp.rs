//! The SMTP session of `mailsync campaigns deliver` against the scripted
//! server, which records every byte and every read: PIPELINING on and off
//! (the same outcomes; with it, a transaction's MAIL, RCPT and DATA in one
//! write), a refusal inside a pipelined group, and the login's safety
//! (STARTTLS refused, not offered, or offering a certificate that does not
//! hold for a remote name, and the same certificate under implicit TLS:
//! exit 3 and the password never sent; AUTH refused: exit 3 and nothing
//! claimed). Through the real binary, the REST
//! API and real JWTs; the database is read back as the superuser to check.

use crate::campaigns_deliver::{addresses, deliver, queued_campaign, run};
use crate::common;

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::time::Duration;

use base64::Engine;
use common::smtp_server::{Action, Phase, ScriptedSmtp};
use common::{new_user, stderr, Stack, User};

const PASSWORD: &str = "smtp-Pa55word-never-in-clear";

/// Each email of the campaign by the name before its first dot: (status,
/// attempts, error_message or smtp_response).
async fn outcomes(campaign: &str) -> HashMap<String, (String, i32, String)> {
    common::admin()
        .await
        .query(
            "select recipient_email, status, attempts,
                    coalesce(error_message, smtp_response, '')
               from public.emails_sent where campaign_id = $1::text::uuid",
            &[&campaign],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let email: String = r.get(0);
            let name = email.split('.').next().unwrap().to_string();
            (name, (r.get(1), r.get(2), r.get(3)))
        })
        .collect()
}

/// A campaign to ok, nouser (550 5.1.1 at RCPT), policy (554 after the
/// message), greylisted (450 at RCPT once) and two more, delivered over one
/// connection by a server that offers PIPELINING or not; the server.
async fn deliver_with_refusals(stack: &Stack, user: &User, pipelining: bool) -> ScriptedSmtp {
    let names = ["ok", "nouser", "policy", "greylisted", "ok2", "ok3"];
    let to = addresses(user, &names);
    let campaign = queued_campaign(stack, user, &to, "S", "Hello {{email}}\n.dot line").await;
    let server = ScriptedSmtp::start(
        |rcpt, phase, n| match (rcpt.split('.').next().unwrap(), phase) {
            ("nouser", Phase::Rcpt) => {
                Action::Reply("550 5.1.1 <nouser>: Recipient address rejected: User unknown".into())
            }
            ("policy", Phase::Data) => Action::Reply("554 5.7.1 Message rejected as spam".into()),
            ("greylisted", Phase::Rcpt) if n == 0 => {
                Action::Reply("450 4.2.0 Greylisted, come back later".into())
            }
            _ => Action::Accept,
        },
        Duration::ZERO,
    )
    .await;
    server.offer_dsn();
    if pipelining {
        server.offer_pipelining();
    }
    let (o, summary) = deliver(stack, user, &server.url(), &["--concurrency", "1"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 4, "{summary}");
    assert_eq!(summary["bounced"], 1, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    assert_eq!(summary["retries"], 1, "{summary}");

    let rows = outcomes(&campaign).await;
    let (status, _, reply) = &rows["nouser"];
    assert_eq!(status, "bounced", "{rows:?}");
    assert_eq!(
        reply, "550 5.1.1 <nouser>: Recipient address rejected: User unknown",
        "the server's reply to RCPT, as it wrote it"
    );
    let (status, _, reply) = &rows["policy"];
    assert_eq!(status, "failed", "{rows:?}");
    assert_eq!(reply, "554 5.7.1 Message rejected as spam");
    for name in ["ok", "greylisted", "ok2", "ok3"] {
        let (status, _, reply) = &rows[name];
        assert_eq!(status, "sent", "{name}: {rows:?}");
        assert!(reply.starts_with("250 2.0.0 Ok: queued as Q"), "{reply}");
    }
    // Each accepted message once, dot-stuffing undone by the server.
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 4, "{accepted:?}");
    let mut seen: Vec<&str> = accepted.iter().map(|r| r.recipient.as_str()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4);
    assert!(
        accepted.iter().all(|r| r.data.contains("\r\n.dot line")),
        "{accepted:?}"
    );
    // The check's connection, then one for every email: refusals end
    // with RSET, not a new connection.
    assert_eq!(server.connections(), 2);
    let envelope = server.envelope_lines();
    assert!(
        envelope
            .iter()
            .filter(|l| l.starts_with("MAIL FROM:"))
            .all(|l| l.contains(" RET=HDRS ENVID=")),
        "the DSN parameters as without pipelining: {envelope:#?}"
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pipelining_mail_rcpt_and_data_go_in_one_write_and_refusals_are_recorded() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let server = deliver_with_refusals(&stack, &user, true).await;
    // Seven transactions (greylisted twice); each one's commands in a
    // single read, the RCPT refused inside its group too.
    let reads = server.reads();
    assert_eq!(server.grouped_reads(), 7, "{reads:#?}");
    let nouser = reads
        .iter()
        .find(|r| r.contains("RCPT TO:<nouser."))
        .unwrap();
    assert!(
        nouser.starts_with("MAIL FROM:<") && nouser.ends_with("\r\nDATA\r\n"),
        "{nouser:?}"
    );
    // After the refused group, the transaction is reset before the next.
    let after = reads.iter().skip_while(|r| *r != nouser).nth(1).unwrap();
    assert_eq!(after, "RSET\r\n", "{reads:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pipelining_commands_go_one_at_a_time_with_the_same_outcomes() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let server = deliver_with_refusals(&stack, &user, false).await;
    let reads = server.reads();
    assert_eq!(server.grouped_reads(), 0, "{reads:#?}");
    assert!(
        reads.iter().any(|r| r == "DATA\r\n"),
        "DATA on its own: {reads:#?}"
    );
}

/// A name for this machine that mailsync does not count as local (not
/// `localhost` nor an IP literal), resolving to loopback addresses only:
/// the host name, as /etc/hosts gives it.
fn remote_name() -> (String, std::net::IpAddr) {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("reading the host name")
        .trim()
        .to_string();
    let addresses: Vec<_> = (name.as_str(), 25)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default();
    match addresses.first() {
        Some(ip)
            if addresses.iter().all(|a| a.is_loopback())
                && !name.eq_ignore_ascii_case("localhost") =>
        {
            (name, *ip)
        }
        _ => panic!("this test needs the host name ({name}) to resolve to loopback addresses only"),
    }
}

/// Whether `bytes` hold the password in any form a login would carry it:
/// as is, or in base64 for AUTH LOGIN and AUTH PLAIN.
fn holds_password(bytes: &[u8]) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8_lossy(bytes);
    [
        PASSWORD.to_string(),
        b64.encode(PASSWORD),
        b64.encode(format!("\0mailer\0{PASSWORD}")),
    ]
    .iter()
    .any(|form| text.contains(form.as_str()))
}

/// `deliver` of a two-email campaign through `url`: exit 3, an error that
/// says `expected` and not the password, nothing claimed.
async fn refused_before_any_email(stack: &Stack, user: &User, url: &str, expected: &str) {
    let campaign = queued_campaign(stack, user, &addresses(user, &["a", "b"]), "S", "C").await;
    let o = run(
        stack,
        user,
        &["campaigns", "deliver", &campaign],
        &[
            ("MAILSYNC_SMTP_URL", url),
            ("MAILSYNC_FROM", "Acme <news@acme.example>"),
        ],
    )
    .await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot use the SMTP server"), "{err}");
    assert!(err.contains(expected), "{expected:?} in {err}");
    assert!(!err.contains(PASSWORD), "{err}");
    let rows = outcomes(&campaign).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.values()
            .all(|(status, attempts, _)| status == "pending" && *attempts == 0),
        "{rows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_refused_or_not_offered_is_exit_3_and_the_password_never_goes_out() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let (name, ip) = remote_name();
    let refusing = ScriptedSmtp::start_at(ip, |_, _, _| Action::Accept, Duration::ZERO).await;
    refusing.refuse_starttls("454 4.7.0 TLS not available due to local problem");
    refusing.offer_auth("235 2.7.0 Authentication successful");
    let url = format!("smtp://mailer:{PASSWORD}@{name}:{}", refusing.addr.port());
    refused_before_any_email(&stack, &user, &url, "454 4.7.0 TLS not available").await;
    let received = refusing.received();
    assert!(
        String::from_utf8_lossy(&received).contains("STARTTLS\r\n"),
        "asked for TLS"
    );
    assert!(!holds_password(&received));
    assert!(!String::from_utf8_lossy(&received).contains("AUTH"));

    let user = new_user(&stack).await;
    let plain_only = ScriptedSmtp::start_at(ip, |_, _, _| Action::Accept, Duration::ZERO).await;
    plain_only.offer_auth("235 2.7.0 Authentication successful");
    let url = format!("smtp://mailer:{PASSWORD}@{name}:{}", plain_only.addr.port());
    refused_before_any_email(&stack, &user, &url, "does not offer STARTTLS").await;
    let received = plain_only.received();
    assert!(!holds_password(&received));
    assert!(!String::from_utf8_lossy(&received).contains("AUTH"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_that_does_not_hold_for_a_remote_name_is_refused_before_the_login() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let (name, ip) = remote_name();
    let server = ScriptedSmtp::start_at(ip, |_, _, _| Action::Accept, Duration::ZERO).await;
    // Self-signed, for the very name: only the trust is missing.
    let (acceptor, _) = common::tls::self_signed_acceptor(&name);
    server.offer_starttls(acceptor);
    server.offer_auth("235 2.7.0 Authentication successful");
    let url = format!("smtp://mailer:{PASSWORD}@{name}:{}", server.addr.port());
    refused_before_any_email(&stack, &user, &url, "certificate").await;
    let received = server.received();
    assert!(String::from_utf8_lossy(&received).ends_with("STARTTLS\r\n"));
    assert!(!holds_password(&received));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_with_a_certificate_that_does_not_hold_is_refused_before_a_word() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let (name, ip) = remote_name();
    let server = ScriptedSmtp::start_at(ip, |_, _, _| Action::Accept, Duration::ZERO).await;
    let (acceptor, _) = common::tls::self_signed_acceptor(&name);
    server.implicit_tls(acceptor);
    server.offer_auth("235 2.7.0 Authentication successful");
    let url = format!("smtps://mailer:{PASSWORD}@{name}:{}", server.addr.port());
    refused_before_any_email(&stack, &user, &url, "certificate").await;
    assert!(server.connections() >= 1);
    assert!(
        server.received().is_empty(),
        "nothing decrypted: no EHLO, no login"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_exit_3_and_nothing_is_claimed_an_accepted_one_delivers() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    server.offer_auth("535 5.7.8 Error: authentication failed");
    let url = format!("smtp://mailer:{PASSWORD}@127.0.0.1:{}", server.addr.port());
    refused_before_any_email(
        &stack,
        &user,
        &url,
        "refused the login of mailer: 535 5.7.8 Error: authentication failed",
    )
    .await;
    assert!(String::from_utf8_lossy(&server.received()).contains("AUTH PLAIN "));
    assert!(server.accepted().is_empty());

    // A server taking the login: the campaign goes out.
    let user = new_user(&stack).await;
    let good = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    good.offer_auth("235 2.7.0 Authentication successful");
    good.offer_pipelining();
    let url = format!("smtp://mailer:{PASSWORD}@127.0.0.1:{}", good.addr.port());
    let campaign = queued_campaign(&stack, &user, &addresses(&user, &["c", "d"]), "S", "C").await;
    let (o, summary) = deliver(&stack, &user, &url, &[&campaign]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 2, "{summary}");
    assert_eq!(good.accepted().len(), 2);
}

/// `scripts/bench-deliver` at a small size with this build, so its checks
/// run in CI: the sink counts exactly N messages for smtp-source and for
/// `deliver`, and every email of the campaign is stored `sent`; it also
/// prints what each side cost the machine and `deliver`'s peak memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_deliver_checks_what_it_stores_at_a_small_size() {
    common::ready().await;
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/bench-deliver"
        ))
        .args(["200", "1"])
        .env("MAILSYNC_BIN", common::BIN)
        // The harness applied this build's schema; an apply beside the
        // other tests deadlocked once with one of them, which PostgreSQL
        // then rolled back.
        .env("MAILSYNC_BENCH_APPLY", "0")
        .env_remove("MAILSYNC_BENCH_CONCURRENCY")
        .output()
        .expect("running scripts/bench-deliver")
    })
    .await
    .unwrap();
    let (text, err) = (common::stdout(&out), stderr(&out));
    assert!(out.status.success(), "exit {:?}\n{text}\n{err}", out.status);
    assert!(text.starts_with("bench-deliver: 200 emails of "), "{text}");
    let run: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("1 "))
        .unwrap_or_else(|| panic!("no line for run 1: {text}"))
        .split_whitespace()
        .collect();
    assert_eq!(run.len(), 13, "{text}");
    assert!(run[8].ends_with('x'), "the ratio: {text}");
    // The machine's busy time during each side (smtp-source's 200 messages
    // may take less than a clock tick), and deliver's peak memory.
    let number = |i: usize| -> f64 {
        run[i]
            .parse()
            .unwrap_or_else(|_| panic!("column {i}: {text}"))
    };
    assert!(
        number(10) >= 0.0 && number(11) > 0.0,
        "core-seconds: {text}"
    );
    assert!(number(12) > 1.0, "peak memory (MiB): {text}");
    assert!(text.contains("median of 1 runs: smtp-source "), "{text}");
    assert!(
        text.contains("machine busy (median core-seconds, all processes): smtp-source "),
        "{text}"
    );
}

/// A plain TCP forwarder on `ip` (a port of its own) to `target`: it reads
/// and writes bytes, no SMTP; TLS runs end to end through it.
async fn forwarder(ip: std::net::IpAddr, target: std::net::SocketAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    port
}

/// The TLS success path, against the stack's real relay (Postfix), under a
/// name mailsync counts as remote, so STARTTLS is required and the
/// certificate checked for that name: the relay's certificate is signed by
/// the stack's own authority. Without `MAILSYNC_SMTP_CA_FILE` the login is
/// refused (exit 3, nothing claimed); with it, the campaign goes out, each
/// message received by the relay over TLS (its Received header says so)
/// and delivered to its mailbox. A CA file holding no certificate is a
/// configuration error naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_to_the_stack_relay_holds_with_its_authority_as_the_ca_file() {
    let stack = common::ready().await;
    let ca = std::env::var("MAILSYNC_RELAY_CA_FILE").expect(
        "MAILSYNC_RELAY_CA_FILE is not set: the local stack's mail servers are needed \
         (as root: `scripts/local-stack.sh up && eval \"$(scripts/local-stack.sh env)\"`)",
    );
    let relay = url::Url::parse(&std::env::var("MAILSYNC_SMTP_URL").unwrap()).unwrap();
    let target = (
        relay
            .host_str()
            .unwrap()
            .parse::<std::net::IpAddr>()
            .unwrap(),
        relay.port().unwrap(),
    )
        .into();
    let (name, ip) = remote_name();
    let url = format!("smtp://{name}:{}", forwarder(ip, target).await);
    let user = new_user(&stack).await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let to: Vec<String> = (0..3)
        .map(|i| format!("tls{i}-{tag}@deliver.test"))
        .collect();
    let campaign = queued_campaign(&stack, &user, &to, "Over TLS", "Hello").await;
    let from = ("MAILSYNC_FROM", "Acme <news@acme.example>");

    let without = run(
        &stack,
        &user,
        &["campaigns", "deliver", &campaign],
        &[("MAILSYNC_SMTP_URL", &url), from],
    )
    .await;
    assert_eq!(without.status.code(), Some(3), "{}", stderr(&without));
    assert!(
        stderr(&without).contains("UnknownIssuer"),
        "{}",
        stderr(&without)
    );

    let empty = tempfile::NamedTempFile::new().unwrap();
    let path = empty.path().to_str().unwrap();
    let bad = run(
        &stack,
        &user,
        &["campaigns", "deliver", &campaign],
        &[
            ("MAILSYNC_SMTP_URL", &url),
            from,
            ("MAILSYNC_SMTP_CA_FILE", path),
        ],
    )
    .await;
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("MAILSYNC_SMTP_CA_FILE")
            && stderr(&bad).contains("no PEM certificate"),
        "{}",
        stderr(&bad)
    );
    assert!(outcomes(&campaign)
        .await
        .values()
        .all(|(s, a, _)| s == "pending" && *a == 0));

    let with = run(
        &stack,
        &user,
        &["--json", "campaigns", "deliver", "--rate", "0", &campaign],
        &[
            ("MAILSYNC_SMTP_URL", &url),
            from,
            ("MAILSYNC_SMTP_CA_FILE", &ca),
        ],
    )
    .await;
    assert!(with.status.success(), "{}", stderr(&with));
    assert_eq!(common::json_of(&with)["sent"], 3);

    // Each message in the relay's mailbox for deliver.test, received over TLS.
    let mail_dir = std::path::Path::new(&ca)
        .parent()
        .unwrap()
        .parent()
        .unwrap();
    let mailbox = mail_dir.join("mailboxes/deliver.test/new");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut found: Vec<String> = Vec::new();
    while found.len() < to.len() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        found = std::fs::read_dir(&mailbox)
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .filter(|m| m.contains(&tag))
                    .collect()
            })
            .unwrap_or_default();
    }
    assert_eq!(found.len(), to.len(), "delivered to {mailbox:?}");
    for message in &found {
        let received = message.split("\n\n").next().unwrap_or_default();
        assert!(
            received.contains("(using TLS"),
            "not received over TLS:\n{received}"
        );
    }
}
