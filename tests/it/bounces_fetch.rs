//! `mailsync bounces fetch` against the stack's real IMAP server (Dovecot,
//! `MAILSYNC_BOUNCES_URL`) and database: reports recorded once whatever the
//! re-runs, concurrent runs and cut connections; non-reports and other
//! users' reports left as they were; hostile messages; a refused login; TLS
//! refused for a self-signed certificate under a non-local name. Each test
//! works in a folder of its own, so tests running side by side do not see
//! each other's messages. The end-to-end test through the stack's relay is
//! at the end.

use crate::common;

use std::net::ToSocketAddrs;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_imap::types::Flag;
use common::{json_of, stderr, stdout, Stack, User};
use futures_util::TryStreamExt;
use mailsync::settings::{BounceMailbox, Source};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

const KEYWORD: &str = "$MailsyncRecorded";

/// The stack's bounce mailbox, as `scripts/local-stack.sh env` exports it.
fn stack_mailbox() -> BounceMailbox {
    let url = std::env::var("MAILSYNC_BOUNCES_URL").unwrap_or_else(|_| {
        panic!(
            "MAILSYNC_BOUNCES_URL is not set: start the stack (scripts/local-stack.sh up) and \
             eval \"$(scripts/local-stack.sh env)\". Tests that need the stack fail rather than skip."
        )
    });
    BounceMailbox::parse(&url, &Source::Environment).expect("MAILSYNC_BOUNCES_URL parses")
}

/// The URL of `mailbox` with another folder and password.
fn url_of(mailbox: &BounceMailbox, folder: &str, password: &str) -> String {
    format!(
        "imap://{}:{}@{}/{}",
        mailbox.user,
        password,
        mailbox.address(),
        folder
    )
}

type Imap = async_imap::Session<TcpStream>;

async fn imap(mailbox: &BounceMailbox) -> Imap {
    let tcp = TcpStream::connect((mailbox.host.as_str(), mailbox.port))
        .await
        .unwrap_or_else(|e| panic!("the stack's IMAP server at {}: {e}", mailbox.address()));
    let mut client = async_imap::Client::new(tcp);
    client.read_response().await.unwrap();
    client
        .login(&mailbox.user, mailbox.password.expose())
        .await
        .map_err(|(e, _)| e)
        .expect("logging in to the stack's IMAP server")
}

/// A folder of the stack's mailbox for one test.
struct Folder {
    mailbox: BounceMailbox,
    name: String,
}

impl Folder {
    async fn new() -> Folder {
        let mailbox = stack_mailbox();
        let name = format!("t{}", Uuid::new_v4().simple());
        let mut session = imap(&mailbox).await;
        session.create(&name).await.unwrap();
        session.logout().await.unwrap();
        Folder { mailbox, name }
    }

    /// `MAILSYNC_BOUNCES_URL` for this folder.
    fn url(&self) -> String {
        url_of(&self.mailbox, &self.name, self.mailbox.password.expose())
    }

    /// `MAILSYNC_BOUNCES_URL` for this folder through a proxy on `port`.
    fn url_through(&self, port: u16) -> String {
        format!(
            "imap://{}:{}@127.0.0.1:{port}/{}",
            self.mailbox.user,
            self.mailbox.password.expose(),
            self.name
        )
    }

    async fn append(&self, messages: &[Vec<u8>]) {
        let mut session = imap(&self.mailbox).await;
        for raw in messages {
            session.append(&self.name, None, None, raw).await.unwrap();
        }
        session.logout().await.unwrap();
    }

    /// Each message's UID and flags, in UID order.
    async fn flags(&self) -> Vec<(u32, Vec<String>)> {
        let mut session = imap(&self.mailbox).await;
        session.examine(&self.name).await.unwrap();
        let mut found: Vec<(u32, Vec<String>)> = session
            .uid_fetch("1:*", "(UID FLAGS)")
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap()
            .iter()
            .map(|f| {
                let flags = f
                    .flags()
                    .filter(|flag| *flag != Flag::Recent)
                    .map(|flag| format!("{flag:?}"))
                    .collect();
                (f.uid.unwrap(), flags)
            })
            .collect();
        session.logout().await.unwrap();
        found.sort();
        found
    }

    /// How many messages carry the recorded keyword.
    async fn marked(&self) -> usize {
        self.flags()
            .await
            .iter()
            .filter(|(_, flags)| flags.iter().any(|f| f.contains(KEYWORD)))
            .count()
    }

    /// Deletes the folder (at the end of a test that passed).
    async fn remove(self) {
        let mut session = imap(&self.mailbox).await;
        session.delete(&self.name).await.unwrap();
        session.logout().await.unwrap();
    }

    /// Takes the recorded keyword off every message (as if never marked).
    async fn unmark(&self) {
        let mut session = imap(&self.mailbox).await;
        session.select(&self.name).await.unwrap();
        session
            .uid_store("1:*", format!("-FLAGS.SILENT ({KEYWORD})"))
            .await
            .unwrap()
            .try_collect::<Vec<_>>()
            .await
            .unwrap();
        session.logout().await.unwrap();
    }
}

/// `mailsync bounces fetch ARGS` as `user` on `url`.
fn fetch(stack: &Stack, user: &User, url: &str, args: &[&str]) -> Output {
    let mut all = vec!["bounces", "fetch"];
    all.extend_from_slice(args);
    common::mailsync(
        stack,
        &all,
        &[
            ("MAILSYNC_ACCESS_TOKEN", &user.token),
            ("MAILSYNC_BOUNCES_URL", url),
        ],
    )
}

fn fetch_json(stack: &Stack, user: &User, url: &str) -> Value {
    let out = fetch(stack, user, url, &["--json"][..]);
    assert!(
        out.status.success(),
        "bounces fetch failed: {}",
        stderr(&out)
    );
    json_of(&out)
}

fn count(report: &Value, name: &str) -> u64 {
    report[name]
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

/// Emails of `user` that left (status `sent`) to `addresses`, with the
/// Message-IDs deliver gives them; their ids, in order.
async fn sent_emails(user: &User, addresses: &[String]) -> Vec<Uuid> {
    let campaign = common::insert_campaign(user, &format!("c{}", Uuid::new_v4()), "sending").await;
    common::column(
        "with new as (
           insert into public.emails_sent (id, user_id, campaign_id, recipient_email, status, message_id)
           select id, $1, $2, address, 'sent', format('<%s@mailsync.test>', id)
           from (select gen_random_uuid() as id, address, n
                 from unnest($3::text[]) with ordinality as a(address, n)) as rows
           returning id, recipient_email)
         select new.id from new
         join unnest($3::text[]) with ordinality as a(address, n) on a.address = new.recipient_email
         order by a.n",
        &[&user.id, &campaign, &addresses],
    )
    .await
}

/// Each email's status and number of stored reports.
async fn states(ids: &[Uuid]) -> Vec<(String, i64)> {
    let statuses: Vec<String> = common::column(
        "select e.status || ':' || (select count(*) from public.delivery_reports r where r.email_id = e.id)
         from unnest($1::uuid[]) with ordinality as i(id, n)
         join public.emails_sent e on e.id = i.id order by i.n",
        &[&ids],
    )
    .await;
    statuses
        .into_iter()
        .map(|s| {
            let (status, n) = s.split_once(':').unwrap();
            (status.to_string(), n.parse().unwrap())
        })
        .collect()
}

async fn status_of(id: Uuid) -> String {
    common::scalar(
        "select status from public.emails_sent where id = $1",
        &[&id],
    )
    .await
}

async fn reports_of(id: Uuid) -> i64 {
    common::scalar(
        "select count(*) from public.delivery_reports where email_id = $1",
        &[&id],
    )
    .await
}

/// An RFC 3464 report about the email `id` sent to `rcpt`, as a relay
/// writes it; `nonce` makes two reports about the same email different
/// messages.
fn dsn(id: Uuid, rcpt: &str, action: &str, status: &str, nonce: &str) -> Vec<u8> {
    report_of(id, &recipient_block(rcpt, action, status), rcpt, nonce)
}

/// One recipient's fields of a report.
fn recipient_block(rcpt: &str, action: &str, status: &str) -> String {
    format!(
        "Final-Recipient: rfc822; {rcpt}\r\n\
         Original-Recipient: rfc822;{rcpt}\r\n\
         Action: {action}\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {status} <{rcpt}>: test diagnostic\r\n\
         \r\n"
    )
}

/// A report about the email `id` (sent to `to`) with the recipients' fields
/// `blocks`.
fn report_of(id: Uuid, blocks: &str, to: &str, nonce: &str) -> Vec<u8> {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@relay.mailsync.test>\r\n\
         To: bounces@mailsync.test\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <{nonce}@relay.mailsync.test>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"b-{nonce}\"\r\n\
         \r\n\
         --b-{nonce}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host relay.mailsync.test.\r\n\
         \r\n\
         --b-{nonce}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; relay.mailsync.test\r\n\
         Original-Envelope-Id: {id}\r\n\
         Arrival-Date: Sat, 05 Dec 2026 09:59:00 +0000\r\n\
         \r\n\
         {blocks}\
         --b-{nonce}\r\n\
         Content-Type: text/rfc822-headers\r\n\
         \r\n\
         Message-ID: <{id}@mailsync.test>\r\n\
         From: news@mailsync.test\r\n\
         To: {to}\r\n\
         Subject: Hello\r\n\
         \r\n\
         --b-{nonce}--\r\n"
    )
    .into_bytes()
}

fn not_a_report(nonce: &str) -> Vec<u8> {
    format!(
        "From: Ana <ana@deliver.test>\r\n\
         To: bounces@mailsync.test\r\n\
         Subject: Re: Hello\r\n\
         Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n\
         Message-ID: <{nonce}@deliver.test>\r\n\
         \r\n\
         Thanks, see you on Monday.\r\n"
    )
    .into_bytes()
}

fn addresses(n: usize, domain: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("r{i}-{}@{domain}", Uuid::new_v4().simple()))
        .collect()
}

/// Where most tests start: the stack, a user, `n` of their emails sent to
/// addresses of example.test (and their ids), and a folder of the stack's
/// mailbox of their own.
async fn mailbox_with(n: usize) -> (Stack, User, Folder, Vec<String>, Vec<Uuid>) {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let folder = Folder::new().await;
    let to = addresses(n, "example.test");
    let ids = sent_emails(&user, &to).await;
    (stack, user, folder, to, ids)
}

#[tokio::test]
async fn reports_are_recorded_once_and_other_messages_left_as_they_were() {
    let (stack, user, folder, to, ids) = mailbox_with(3).await;
    folder
        .append(&[
            dsn(ids[0], &to[0], "delivered", "2.0.0", "n0"),
            not_a_report("reply-1"),
            dsn(ids[1], &to[1], "failed", "5.1.1", "n1"),
            dsn(ids[2], &to[2], "delayed", "4.4.1", "n2"),
        ])
        .await;

    // A dry run shows the reports and changes nothing.
    let dry = fetch(&stack, &user, &folder.url(), &["--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(text.contains("not a report, left in the mailbox"), "{text}");
    assert!(
        text.contains(&format!("{} failed 5.1.1 → would be recorded", to[1])),
        "{text}"
    );
    assert_eq!(status_of(ids[0]).await, "sent");
    assert_eq!(folder.marked().await, 0);

    let first = fetch(&stack, &user, &folder.url(), &["-v"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let password = folder.mailbox.password.expose();
    assert!(!stderr(&first).contains(password) && !stdout(&first).contains(password));
    assert!(
        stderr(&first).contains("imap: logging in as"),
        "{}",
        stderr(&first)
    );
    let text = stdout(&first);
    assert!(
        text.contains(&format!(
            "UID 1: delivery report: {} delivered 2.0.0 → recorded",
            to[0]
        )),
        "{text}"
    );
    assert!(
        text.contains("UID 2: not a report, left in the mailbox"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "UID 3: delivery report: {} failed 5.1.1 → recorded",
            to[1]
        )),
        "{text}"
    );
    assert_eq!(status_of(ids[0]).await, "delivered");
    assert_eq!(status_of(ids[1]).await, "bounced");
    assert_eq!(status_of(ids[2]).await, "sent");
    let suppressed: i64 = common::scalar(
        "select count(*) from public.suppressions where user_id = $1 and email = $2 and reason = 'bounced'",
        &[&user.id, &to[1]],
    )
    .await;
    assert_eq!(suppressed, 1);
    // The reports are marked, the reply keeps its flags (none: not even \Seen).
    let flags = folder.flags().await;
    assert_eq!(flags.len(), 4);
    for (uid, flags) in &flags {
        if *uid == 2 {
            assert!(flags.is_empty(), "the reply was touched: {flags:?}");
        } else {
            assert_eq!(flags, &vec![format!("Custom({KEYWORD:?})")], "UID {uid}");
        }
    }

    // Again: nothing new.
    let again = fetch_json(&stack, &user, &folder.url());
    assert_eq!(count(&again, "messages"), 1, "{again}");
    assert_eq!(count(&again, "recorded"), 0, "{again}");
    assert_eq!(count(&again, "not_reports"), 1, "{again}");

    // Unmarked (a crash between recording and marking), then two fetches
    // at once: every report is a duplicate, none counts twice.
    folder.unmark().await;
    let (a, b) = two_fetches_at_once(&stack, &user, &folder.url()).await;
    assert_eq!(count(&a, "recorded") + count(&b, "recorded"), 0, "{a} {b}");
    assert!(
        count(&a, "duplicates") + count(&b, "duplicates") >= 3,
        "{a} {b}"
    );
    let expected = ["delivered", "bounced", "sent"];
    for ((id, state), status) in ids.iter().zip(states(&ids).await).zip(expected) {
        assert_eq!(state, (status.to_string(), 1), "email {id}");
    }
    assert_eq!(folder.marked().await, 3);
    folder.remove().await;
}

fn user_clone(user: &User) -> User {
    User {
        id: user.id,
        email: user.email.clone(),
        token: user.token.clone(),
    }
}

/// Two `bounces fetch --json` runs of `user` on `url` at the same time;
/// their reports.
async fn two_fetches_at_once(stack: &Stack, user: &User, url: &str) -> (Value, Value) {
    let one = || {
        let (stack, user, url) = (stack.clone(), user_clone(user), url.to_string());
        tokio::task::spawn_blocking(move || fetch_json(&stack, &user, &url))
    };
    let (a, b) = tokio::join!(one(), one());
    (a.unwrap(), b.unwrap())
}

#[tokio::test]
async fn another_users_fetch_cannot_touch_these_emails() {
    let (stack, owner, folder, to, ids) = mailbox_with(2).await;
    let other = common::new_user(&stack).await;
    folder
        .append(&[
            dsn(ids[0], &to[0], "failed", "5.1.1", "o0"),
            dsn(ids[1], &to[1], "delivered", "2.0.0", "o1"),
        ])
        .await;

    let by_other = fetch_json(&stack, &other, &folder.url());
    assert_eq!(count(&by_other, "unmatched"), 2, "{by_other}");
    assert_eq!(count(&by_other, "recorded"), 0, "{by_other}");
    assert_eq!(status_of(ids[0]).await, "sent");
    assert_eq!(status_of(ids[1]).await, "sent");
    assert_eq!(reports_of(ids[0]).await, 0);
    // Left for their owner, who records them.
    assert_eq!(folder.marked().await, 0);
    let by_owner = fetch_json(&stack, &owner, &folder.url());
    assert_eq!(count(&by_owner, "recorded"), 2, "{by_owner}");
    assert_eq!(status_of(ids[0]).await, "bounced");
    assert_eq!(status_of(ids[1]).await, "delivered");
    folder.remove().await;
}

/// One RFC 3464 report listing several recipients of the email `id`, as a
/// relay reports the recipients of one message it gave up on together.
fn dsn_of_many(id: Uuid, rcpts: &[String], nonce: &str) -> Vec<u8> {
    let blocks: String = rcpts
        .iter()
        .map(|rcpt| recipient_block(rcpt, "failed", "5.1.1"))
        .collect();
    report_of(id, &blocks, &rcpts[0], nonce)
}

/// A project's row cap below a batch's reports (the stack's capped API:
/// 100 rows): the function answers one JSON value, which no cap cuts, so
/// every report of the batch is counted recorded and its message marked.
#[tokio::test]
async fn a_row_cap_below_the_reports_of_a_batch_cuts_no_answer() {
    let (stack, user, folder, _, ids) = mailbox_with(2).await;
    let first: Vec<String> = addresses(70, "example.test");
    let second: Vec<String> = addresses(70, "example.test");
    folder
        .append(&[
            dsn_of_many(ids[0], &first, "m0"),
            dsn_of_many(ids[1], &second, "m1"),
        ])
        .await;
    let capped = std::env::var("MAILSYNC_CAPPED_URL").unwrap_or_else(|_| {
        let port = url::Url::parse(&stack.url).unwrap().port().unwrap();
        format!("http://127.0.0.1:{}", port + 7)
    });
    let run = || {
        common::mailsync(
            &stack,
            &["--json", "bounces", "fetch"],
            &[
                ("MAILSYNC_ACCESS_TOKEN", user.token.as_str()),
                ("MAILSYNC_BOUNCES_URL", folder.url().as_str()),
                ("SUPABASE_URL", capped.as_str()),
            ],
        )
    };
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = json_of(&out);
    assert_eq!(count(&summary, "reports"), 140, "{summary}");
    assert_eq!(count(&summary, "recorded"), 140, "{summary}");
    assert_eq!(count(&summary, "unmatched"), 0, "{summary}");
    assert_eq!(folder.marked().await, 2);
    assert_eq!(reports_of(ids[0]).await, 70);
    assert_eq!(reports_of(ids[1]).await, 70);
    // Nothing left to read, nothing counted twice.
    let again = json_of(&run());
    assert_eq!(count(&again, "messages"), 0, "{again}");
    folder.remove().await;
}

#[tokio::test]
async fn a_refused_login_exits_3_and_changes_nothing() {
    let (stack, user, folder, to, ids) = mailbox_with(1).await;
    folder
        .append(&[dsn(ids[0], &to[0], "failed", "5.1.1", "w0")])
        .await;

    let wrong = "wrong-Pa55word-not-this-one";
    let url = url_of(&folder.mailbox, &folder.name, wrong);
    let out = fetch(&stack, &user, &url, &["-v"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refused the login of"), "{err}");
    assert!(
        !err.contains(wrong) && !stdout(&out).contains(wrong),
        "{err}"
    );
    assert!(!err.contains(folder.mailbox.password.expose()), "{err}");
    assert_eq!(status_of(ids[0]).await, "sent");
    assert_eq!(reports_of(ids[0]).await, 0);
    assert_eq!(folder.marked().await, 0);

    // Not signed in: exit 3 before the mailbox is opened.
    let anonymous = common::mailsync(
        &stack,
        &["bounces", "fetch"],
        &[("MAILSYNC_BOUNCES_URL", folder.url().as_str())],
    );
    assert_eq!(anonymous.status.code(), Some(3), "{}", stderr(&anonymous));
    assert!(
        stderr(&anonymous).contains("mailsync login"),
        "{}",
        stderr(&anonymous)
    );
    assert_eq!(folder.marked().await, 0);
    folder.remove().await;
}

/// A TCP proxy to the stack's IMAP server that cuts the connection at the
/// `nth` client command containing `trigger`: with `forward`, after passing
/// it on and 2 000 bytes of the answer (a cut in the middle of a FETCH);
/// without, before the server sees it.
async fn cutting_proxy(target: String, trigger: &'static str, nth: usize, forward: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let server = TcpStream::connect(&target).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let seen = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicUsize::new(0));
        let up = {
            let (seen, armed) = (seen.clone(), armed.clone());
            async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if String::from_utf8_lossy(&buf[..n]).contains(trigger)
                        && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth
                    {
                        if !forward {
                            return;
                        }
                        armed.store(1, Ordering::SeqCst);
                    }
                    if server_write.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        };
        let down = async move {
            let mut buf = vec![0u8; 65536];
            let mut after = 0usize;
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if armed.load(Ordering::SeqCst) == 1 {
                    let pass = n.min(2000 - after);
                    let _ = client_write.write_all(&buf[..pass]).await;
                    after += pass;
                    if after >= 2000 {
                        return;
                    }
                    continue;
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        // Whichever side ends first drops both connections.
        tokio::select! {
            _ = up => {},
            _ = down => {},
        }
    });
    port
}

async fn cut_then_rerun(trigger: &'static str, forward: bool, recorded_by_rerun: u64) {
    let (stack, user, folder, to, ids) = mailbox_with(25).await;
    let messages: Vec<Vec<u8>> = ids
        .iter()
        .zip(&to)
        .enumerate()
        .map(|(i, (id, rcpt))| dsn(*id, rcpt, "failed", "5.1.1", &format!("cut{i}")))
        .collect();
    folder.append(&messages).await;

    let port = cutting_proxy(folder.mailbox.address(), trigger, 2, forward).await;
    let url = folder.url_through(port);
    let dir = tempfile::tempdir().unwrap();
    let out = common::output_off_runtime({
        let mut cmd = common::command(&stack, dir.path());
        cmd.args(["bounces", "fetch"])
            .env("MAILSYNC_ACCESS_TOKEN", &user.token)
            .env("MAILSYNC_BOUNCES_URL", &url);
        cmd
    })
    .await;
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("run the command again"),
        "{}",
        stderr(&out)
    );
    // The first batch is recorded and marked.
    assert_eq!(folder.marked().await, 10);

    let rerun = fetch_json(&stack, &user, &folder.url());
    assert_eq!(count(&rerun, "recorded"), recorded_by_rerun, "{rerun}");
    assert_eq!(
        count(&rerun, "recorded") + count(&rerun, "duplicates"),
        15,
        "{rerun}"
    );
    assert_eq!(folder.marked().await, 25);
    for (id, state) in ids.iter().zip(states(&ids).await) {
        assert_eq!(state, ("bounced".to_string(), 1), "email {id}");
    }
    folder.remove().await;
}

#[tokio::test]
async fn a_connection_cut_mid_fetch_then_a_rerun_records_the_rest_once() {
    cut_then_rerun("UID FETCH", true, 15).await;
}

#[tokio::test]
async fn a_connection_cut_before_marking_then_a_rerun_counts_nothing_twice() {
    // The second batch is recorded, then the connection drops before it is
    // marked: the re-run reads it again and finds its reports recorded.
    cut_then_rerun("UID STORE", false, 5).await;
}

/// A TCP proxy to the stack's IMAP server that hides the server's keyword
/// support: `\*` is taken out of its PERMANENTFLAGS (as a server that keeps
/// no keywords answers). Serves any number of connections.
async fn proxy_without_keywords(target: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&target).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let text = String::from_utf8_lossy(&buf[..n]);
                    let bytes = if text.contains("PERMANENTFLAGS") {
                        text.replace(" \\*)", ")").into_bytes()
                    } else {
                        buf[..n].to_vec()
                    };
                    if client_write.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn without_keywords_every_run_reads_everything_and_counts_each_report_once() {
    let (stack, user, folder, to, ids) = mailbox_with(2).await;
    folder
        .append(&[
            dsn(ids[0], &to[0], "delivered", "2.0.0", "k0"),
            dsn(ids[1], &to[1], "failed", "5.1.1", "k1"),
        ])
        .await;
    let port = proxy_without_keywords(folder.mailbox.address()).await;
    let url = folder.url_through(port);
    for (run, recorded, duplicates) in [(1, 2, 0), (2, 0, 2)] {
        // Off the runtime: the proxy runs on it.
        let out = tokio::task::spawn_blocking({
            let (stack, user, url) = (stack.clone(), user_clone(&user), url.clone());
            move || fetch(&stack, &user, &url, &["--json"])
        })
        .await
        .unwrap();
        assert!(out.status.success(), "run {run}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("keeps no keywords"),
            "{}",
            stderr(&out)
        );
        let report = json_of(&out);
        assert_eq!(report["keywords"], false, "{report}");
        assert_eq!(count(&report, "messages"), 2, "run {run}: {report}");
        assert_eq!(count(&report, "recorded"), recorded, "run {run}: {report}");
        assert_eq!(
            count(&report, "duplicates"),
            duplicates,
            "run {run}: {report}"
        );
        assert_eq!(count(&report, "marked"), 0, "run {run}: {report}");
    }
    assert_eq!(folder.marked().await, 0);
    let expected = [("delivered".to_string(), 1), ("bounced".to_string(), 1)];
    assert_eq!(states(&ids).await, expected);
    folder.remove().await;
}

/// A name for this machine that is not `localhost` nor an IP literal (so
/// mailsync's loopback rule does not count it as local), yet resolves to a
/// loopback address, where the in-test servers listen: the host name, as
/// /etc/hosts gives it (Debian writes `127.0.1.1 <hostname>`).
fn remote_name() -> (String, std::net::IpAddr) {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("reading the host name")
        .trim()
        .to_string();
    // Every address of the name must be loopback: mailsync connects to the
    // first, and this test sends nothing beyond this machine's loopback.
    let addresses: Vec<_> = (name.as_str(), 993)
        .to_socket_addrs()
        .map(|a| a.map(|a| a.ip()).collect())
        .unwrap_or_default();
    let ip = match addresses.first() {
        Some(first) if addresses.iter().all(|a| a.is_loopback()) => Some(*first),
        _ => None,
    };
    match ip {
        Some(ip) if !name.eq_ignore_ascii_case("localhost") => (name, ip),
        _ => panic!("this test needs the host name ({name}) to resolve to loopback addresses only"),
    }
}

/// TLS in front of the stack's IMAP server (Dovecot, which the stack runs
/// without TLS), as a load balancer or stunnel terminates it: on `ip`, with
/// the stack relay's certificate (for the host name, signed by the stack's
/// own authority), forwarding the decrypted bytes to Dovecot.
async fn tls_front(ip: std::net::IpAddr, dovecot: String, ca_file: &str) -> u16 {
    let dir = std::path::Path::new(ca_file).parent().unwrap();
    let acceptor = common::tls::acceptor_from_files(&dir.join("relay.pem"), &dir.join("relay.key"));
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, dovecot) = (acceptor.clone(), dovecot.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                if let Ok(mut server) = TcpStream::connect(&dovecot).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                }
            });
        }
    });
    port
}

/// The TLS success path of the bounce mailbox: `imaps://` under a name
/// mailsync counts as remote, the certificate signed by the stack's own
/// authority. Without `MAILSYNC_BOUNCES_CA_FILE` the TLS handshake is
/// refused, so no login (exit 3, nothing recorded); with it, the reports are
/// recorded; a CA file without a certificate is a configuration error.
#[tokio::test]
async fn imaps_holds_with_the_servers_authority_as_the_ca_file() {
    let (stack, user, folder, to, ids) = mailbox_with(1).await;
    folder
        .append(&[dsn(ids[0], &to[0], "delivered", "2.0.0", "t0")])
        .await;
    let ca = std::env::var("MAILSYNC_RELAY_CA_FILE")
        .expect("MAILSYNC_RELAY_CA_FILE is not set: start the stack (scripts/local-stack.sh up)");
    let (name, ip) = remote_name();
    let port = tls_front(ip, folder.mailbox.address(), &ca).await;
    let url = format!(
        "imaps://{}:{}@{name}:{port}/{}",
        folder.mailbox.user,
        folder.mailbox.password.expose(),
        folder.name
    );
    let run = |ca_file: Option<&str>| {
        let (stack, user, url) = (stack.clone(), user_clone(&user), url.clone());
        let ca_file = ca_file.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let mut env = vec![
                ("MAILSYNC_ACCESS_TOKEN", user.token.clone()),
                ("MAILSYNC_BOUNCES_URL", url),
            ];
            if let Some(ca) = ca_file {
                env.push(("MAILSYNC_BOUNCES_CA_FILE", ca));
            }
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            common::mailsync(&stack, &["--json", "bounces", "fetch"], &env)
        })
    };
    let without = run(None).await.unwrap();
    assert_eq!(without.status.code(), Some(3), "{}", stderr(&without));
    assert!(
        stderr(&without).contains("UnknownIssuer"),
        "{}",
        stderr(&without)
    );
    assert!(!stderr(&without).contains(folder.mailbox.password.expose()));

    let empty = tempfile::NamedTempFile::new().unwrap();
    let bad = run(empty.path().to_str()).await.unwrap();
    assert_eq!(bad.status.code(), Some(3), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("MAILSYNC_BOUNCES_CA_FILE")
            && stderr(&bad).contains("no PEM certificate"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(status_of(ids[0]).await, "sent");

    let with = run(Some(&ca)).await.unwrap();
    assert!(with.status.success(), "{}", stderr(&with));
    assert_eq!(count(&json_of(&with), "recorded"), 1, "{}", stdout(&with));
    assert_eq!(status_of(ids[0]).await, "delivered");
    assert_eq!(folder.marked().await, 1);
    folder.remove().await;
}

/// A server on loopback that records every byte it receives (decrypted,
/// when `tls`: with a self-signed certificate for `name`) and greets as an
/// IMAP server would.
async fn recording_server(
    (name, ip): &(String, std::net::IpAddr),
    tls: bool,
) -> (u16, Arc<Mutex<Vec<u8>>>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((*ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (acceptor, _) = common::tls::self_signed_acceptor(name);
    let (sink, seen) = (received.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            seen.fetch_add(1, Ordering::SeqCst);
            let (sink, acceptor) = (sink.clone(), acceptor.clone());
            tokio::spawn(async move {
                if tls {
                    if let Ok(stream) = acceptor.accept(socket).await {
                        converse(stream, sink).await;
                    }
                } else {
                    converse(socket, sink).await;
                }
            });
        }
    });
    (port, received, connections)
}

async fn converse<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    sink: Arc<Mutex<Vec<u8>>>,
) {
    let _ = stream.write_all(b"* OK IMAP4rev1 ready\r\n").await;
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
    {
        if n == 0 {
            return;
        }
        sink.lock().unwrap().extend_from_slice(&buf[..n]);
        let _ = stream
            .write_all(b"a1 NO [AUTHENTICATIONFAILED] no\r\n")
            .await;
    }
}

#[tokio::test]
async fn tls_is_refused_for_a_self_signed_certificate_and_the_password_never_leaves() {
    let remote = remote_name();
    let name = remote.0.clone();
    let password = "Secret-imap-pw-never-sent";
    let (port, received, connections) = recording_server(&remote, true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command_for("http://127.0.0.1:9", "anon", dir.path());
    cmd.args(["-v", "bounces", "fetch", "--dry-run"]).env(
        "MAILSYNC_BOUNCES_URL",
        format!("imaps://bounces:{password}@{name}:{port}/INBOX"),
    );
    let out = common::output_off_runtime(cmd).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("TLS with the bounce mailbox"), "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert!(
        !err.contains(password) && !stdout(&out).contains(password),
        "{err}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    assert!(received.lock().unwrap().is_empty(), "the server got data");

    // imap:// (no TLS) to that name is refused before any connection.
    let (port, received, connections) = recording_server(&remote, false).await;
    let mut cmd = common::command_for("http://127.0.0.1:9", "anon", dir.path());
    cmd.args(["bounces", "fetch", "--dry-run"]).env(
        "MAILSYNC_BOUNCES_URL",
        format!("imap://bounces:{password}@{name}:{port}/INBOX"),
    );
    let out = common::output_off_runtime(cmd).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("use imaps://"), "{err}");
    assert!(!err.contains(password), "{err}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    assert!(received.lock().unwrap().is_empty());
}

/// A message `depth` multiparts deep.
fn nested(depth: usize) -> Vec<u8> {
    let mut out = String::from("From: a@b.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for i in 0..depth {
        out.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"d{i}\"\r\n\r\n--d{i}\r\n"
        ));
    }
    out.push_str("Content-Type: text/plain\r\n\r\nbottom\r\n");
    out.into_bytes()
}

/// A message with `parts` parts.
fn wide(parts: usize) -> Vec<u8> {
    let mut out = String::from(
        "From: a@b.test\r\nSubject: wide\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"w\"\r\n\r\n",
    );
    for i in 0..parts {
        out.push_str(&format!(
            "--w\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; x{i}@nowhere.test\r\n\r\n"
        ));
    }
    out.push_str("--w--\r\n");
    out.into_bytes()
}

#[tokio::test]
async fn hostile_messages_get_a_line_each_in_bounded_memory_and_nothing_wrong_is_recorded() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let other = common::new_user(&stack).await;
    let folder = Folder::new().await;
    let theirs = addresses(1, "example.test");
    let their_ids = sent_emails(&other, &theirs).await;
    let mine = addresses(1, "example.test");
    let my_ids = sent_emails(&user, &mine).await;

    let mut big = b"From: a@b.test\r\nSubject: big\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    let line = [b'A'; 998];
    while big.len() < 50 * 1024 * 1024 {
        big.extend_from_slice(&line);
        big.extend_from_slice(b"\r\n");
    }
    let mut broken = b"From: \xff\xfe <bad@b.test>\r\nSubject: =?utf-8?B?!!!not-base64?=\r\n\
        Content-Type: text/plain; charset=x-no-such-charset\r\n\
        Content-Transfer-Encoding: base64\r\n\r\n%%%% not base64 \xc3\x28 \r\n"
        .to_vec();
    broken.extend_from_slice(&[0xf0, 0x28, 0x8c, 0x28, b'\r', b'\n']);
    let messages = vec![
        big,
        nested(10_000),
        wide(10_000),
        broken,
        // A report naming another user's email, then one naming no email at all.
        dsn(their_ids[0], &theirs[0], "failed", "5.1.1", "h-other"),
        dsn(
            Uuid::new_v4(),
            "ghost@example.test",
            "failed",
            "5.1.1",
            "h-ghost",
        ),
        // Among them, a good report of this user's: recorded.
        dsn(my_ids[0], &mine[0], "delivered", "2.0.0", "h-mine"),
    ];
    folder.append(&messages).await;

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command(&stack, dir.path());
    cmd.args(["bounces", "fetch"])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .env("MAILSYNC_BOUNCES_URL", folder.url());
    let run = tokio::task::spawn_blocking(move || common::output_measured(cmd, 4 << 30))
        .await
        .unwrap();
    let text = stdout(&run.output);
    assert!(
        run.output.status.success(),
        "{text}\n{}",
        stderr(&run.output)
    );
    eprintln!(
        "hostile mailbox: {:.2} s, peak {:.1} MiB",
        run.elapsed.as_secs_f64(),
        run.peak_mib
    );
    assert!(run.elapsed < Duration::from_secs(60), "{:?}", run.elapsed);
    assert!(run.peak_mib < 200.0, "peak {} MiB", run.peak_mib);
    for uid in 1..=messages.len() {
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with(&format!("UID {uid}:")))
                .count(),
            1,
            "UID {uid}:\n{text}"
        );
    }
    assert!(
        text.contains("UID 1: 50.0 MB, only the first 2 MB read; not a report"),
        "{text}"
    );
    assert!(text.contains("matches none of your emails"), "{text}");

    assert_eq!(status_of(their_ids[0]).await, "sent");
    assert_eq!(reports_of(their_ids[0]).await, 0);
    assert_eq!(status_of(my_ids[0]).await, "delivered");
    let stored: i64 = common::scalar(
        "select count(*) from public.delivery_reports where user_id = $1",
        &[&user.id],
    )
    .await;
    assert_eq!(stored, 1);
    // Only the recorded report is marked.
    assert_eq!(folder.marked().await, 1);
    let started = Instant::now();
    let again = fetch_json(&stack, &user, &folder.url());
    assert_eq!(
        count(&again, "messages"),
        messages.len() as u64 - 1,
        "{again}"
    );
    assert_eq!(count(&again, "too_large"), 1, "{again}");
    assert_eq!(count(&again, "unmatched"), 2, "{again}");
    assert_eq!(count(&again, "recorded"), 0, "{again}");
    assert!(started.elapsed() < Duration::from_secs(60));
    folder.remove().await;
}

#[tokio::test]
async fn follow_records_new_messages_as_they_arrive_and_ctrl_c_ends_cleanly() {
    let (stack, user, folder, to, ids) = mailbox_with(2).await;
    folder
        .append(&[dsn(ids[0], &to[0], "delivered", "2.0.0", "f0")])
        .await;

    let dir = tempfile::tempdir().unwrap();
    let child = common::command(&stack, dir.path())
        .args(["--json", "bounces", "fetch", "--follow"])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .env("MAILSYNC_BOUNCES_URL", folder.url())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting mailsync");
    let wait_for = |id: Uuid, status: &'static str| async move {
        let started = Instant::now();
        while states(&[id]).await[0].0 != status {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "email {id} is not {status} after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    wait_for(ids[0], "delivered").await;
    // A report arriving while it waits (IDLE) is recorded too.
    folder
        .append(&[dsn(ids[1], &to[1], "failed", "5.1.1", "f1")])
        .await;
    wait_for(ids[1], "bounced").await;

    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    // Ctrl-C is exit 130 for every command, `--follow` included.
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let summary = json_of(&out);
    assert_eq!(summary["interrupted"], true, "{summary}");
    assert_eq!(count(&summary, "recorded"), 2, "{summary}");
    assert_eq!(count(&summary, "marked"), 2, "{summary}");
    assert_eq!(folder.marked().await, 2);
    folder.remove().await;
}

/// Everything a user sees of `campaign`'s outcome, as text: each email
/// (recipient, status, delivered_at = its delivered report's arrival,
/// error_message, reports stored), the user's suppressions, and the three
/// views, read as the user.
async fn outcome(user: &User, campaign: &str) -> Vec<String> {
    let mut client = common::admin().await;
    let sql = format!(
        "select e.recipient_email, e.status,
                e.delivered_at is not null as has_delivered_at,
                e.delivered_at is not distinct from
                  (select min(r.arrived_at) from public.delivery_reports r
                   where r.email_id = e.id and r.kind = 'delivered') as delivered_at_is_report,
                e.error_message,
                (select string_agg(r.kind || ' ' || coalesce(r.status, '-'), ', ' order by r.kind)
                   from public.delivery_reports r where r.email_id = e.id) as reports
         from public.emails_sent e where e.campaign_id = '{campaign}'
         order by e.recipient_email;
         select email, reason from public.suppressions order by email;
         select total_emails, pending_count, sending_count, sent_count, delivered_count,
                failed_count, bounced_count, success_rate, progress
         from public.campaign_analytics where campaign_id = '{campaign}';
         select email, emails_received, emails_delivered, delivery_rate
         from public.contact_analytics order by email;
         select total_contacts, total_organizations, active_campaigns, emails_sent_today
         from public.dashboard_analytics;"
    );
    let mut lines = Vec::new();
    for message in common::as_user_sql(&mut client, user, &sql).await {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            let cells: Vec<String> = (0..row.len())
                .map(|i| format!("{}={}", row.columns()[i].name(), row.get(i).unwrap_or("∅")))
                .collect();
            lines.push(cells.join(" "));
        }
    }
    lines
}

#[tokio::test]
async fn end_to_end_through_the_stacks_relay_and_mailbox() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let tag = &user.id.simple().to_string()[..10];
    let mut to: Vec<String> = [
        "ana@deliver.test",
        "ben@deliver.test",
        "cleo@nouser.test",
        "dan@nouser.test",
        "eve@later.test",
    ]
    .iter()
    .map(|a| {
        let (local, domain) = a.split_once('@').unwrap();
        format!("{local}.{tag}@{domain}")
    })
    .collect();
    to.sort();
    let campaign =
        crate::campaigns_deliver::queued_campaign(&stack, &user, &to, "Hello", "Hi").await;
    // The stack's return path (MAILSYNC_RETURN_PATH) is its bounce mailbox.
    let (out, summary) = crate::campaigns_deliver::deliver(
        &stack,
        &user,
        &std::env::var("MAILSYNC_SMTP_URL").expect("the stack's relay"),
        &[&campaign],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary["sent"], 5, "{summary}");

    // Fetch until the relay's reports are all in (bounded).
    let inbox = Folder {
        mailbox: stack_mailbox(),
        name: "INBOX".into(),
    };
    let started = Instant::now();
    let settled = loop {
        let report = fetch_json(&stack, &user, &inbox.url());
        let now = outcome(&user, &campaign).await;
        let emails: Vec<&String> = now.iter().take(5).collect();
        let done = emails.len() == 5
            && emails.iter().all(|e| {
                (e.contains("@deliver.test") && e.contains("status=delivered"))
                    || (e.contains("@nouser.test") && e.contains("status=bounced"))
                    || (e.contains("@later.test") && e.contains("reports=delayed"))
            });
        if done {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the reports did not all come within 90 s; last fetch: {report}\n{}",
            now.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    let expected_emails: Vec<String> = to
        .iter()
        .map(|a| {
            let (status, delivered, error, reports) = if a.contains("@deliver.test") {
                ("delivered", "t", "∅".to_string(), "delivered 2.0.0")
            } else if a.contains("@nouser.test") {
                ("bounced", "f", "5.1.1".to_string(), "failed 5.1.1")
            } else {
                ("sent", "f", "∅".to_string(), "delayed 4.2.1")
            };
            format!(
                "recipient_email={a} status={status} has_delivered_at={delivered} \
                 delivered_at_is_report=t error_message={error} reports={reports}"
            )
        })
        .collect();
    for (line, expected) in settled.iter().zip(&expected_emails) {
        let expected_error = expected.contains("error_message=5.1.1");
        if expected_error {
            // The relay's own words follow the code.
            let (head, tail) = expected.split_once("error_message=5.1.1").unwrap();
            assert!(
                line.starts_with(&format!("{head}error_message=5.1.1 ")),
                "{line}\n{expected}"
            );
            assert!(line.ends_with(tail), "{line}\n{expected}");
        } else {
            assert_eq!(line, expected);
        }
    }
    let rest: Vec<&str> = settled[5..].iter().map(String::as_str).collect();
    let suppressed: Vec<String> = to
        .iter()
        .filter(|a| a.contains("@nouser.test"))
        .map(|a| format!("email={a} reason=bounced"))
        .collect();
    assert_eq!(&rest[..2], &suppressed[..], "{}", settled.join("\n"));
    assert_eq!(
        rest[2],
        "total_emails=5 pending_count=0 sending_count=0 sent_count=1 delivered_count=2 \
         failed_count=0 bounced_count=2 success_rate=60.00 progress=100.00"
    );
    let contacts: Vec<String> = to
        .iter()
        .map(|a| {
            if a.contains("@deliver.test") {
                format!("email={a} emails_received=1 emails_delivered=1 delivery_rate=100.00")
            } else {
                format!("email={a} emails_received=1 emails_delivered=0 delivery_rate=0.00")
            }
        })
        .collect();
    assert_eq!(&rest[3..8], &contacts[..], "{}", settled.join("\n"));
    assert_eq!(
        rest[8],
        "total_contacts=5 total_organizations=3 active_campaigns=0 emails_sent_today=5"
    );
    assert_eq!(rest.len(), 9, "{}", settled.join("\n"));

    // A second fetch changes nothing.
    let again = fetch_json(&stack, &user, &inbox.url());
    assert_eq!(count(&again, "recorded"), 0, "{again}");
    assert_eq!(outcome(&user, &campaign).await, settled);

    // Every message unmarked, then two fetches at once: nothing recorded again.
    inbox.unmark().await;
    let (a, b) = two_fetches_at_once(&stack, &user, &inbox.url()).await;
    assert_eq!(count(&a, "recorded") + count(&b, "recorded"), 0, "{a} {b}");
    assert_eq!(outcome(&user, &campaign).await, settled);

    // Another user reading the same reports cannot touch these emails.
    inbox.unmark().await;
    let other = common::new_user(&stack).await;
    let theirs = fetch_json(&stack, &other, &inbox.url());
    assert_eq!(count(&theirs, "recorded"), 0, "{theirs}");
    assert!(count(&theirs, "unmatched") >= 5, "{theirs}");
    assert_eq!(outcome(&user, &campaign).await, settled);
    // Left for their owner: marked again by the owner's next fetch.
    let last = fetch_json(&stack, &user, &inbox.url());
    assert_eq!(count(&last, "recorded"), 0, "{last}");
}
