//! `mailsync campaigns deliver` and `contacts unsubscribe` against real SMTP
//! servers: the local stack's maildev (messages read back from its REST
//! API) and a scripted in-test server for refusals, dropped connections and
//! slow answers. Everything goes through the real binary, the REST API and
//! real JWTs; the database is read back as the superuser only to check.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::deliver::campaign_status;
use common::smtp_server::{Action, Phase, ScriptedSmtp};
use common::{json_of, new_user, rest, stderr, stdout, Stack, User};
use reqwest::Method;
use serde_json::{json, Value};

/// Contacts for `user` at `emails` (organisation `Org <i % 3>` each) and a
/// draft campaign `name` to send them; its id.
async fn draft_campaign(
    stack: &Stack,
    user: &User,
    emails: &[String],
    name: &str,
    subject: &str,
    content: &str,
) -> String {
    let rows: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"email": e, "organization_name": format!("Org {}", i % 3)}))
        .collect();
    common::insert_as(stack, user, "contacts", json!(rows)).await;
    let (status, body) = rest(
        stack,
        Method::POST,
        "email_campaigns",
        Some(&user.token),
        Some(json!({"name": name, "subject": subject, "content": content})),
        Some("return=representation"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body[0]["id"].as_str().unwrap().to_string()
}

/// A campaign queued for `user` to `emails` (organisation `Org <i % 3>` each).
pub(crate) async fn queued_campaign(
    stack: &Stack,
    user: &User,
    emails: &[String],
    subject: &str,
    content: &str,
) -> String {
    let name = format!("c-{}", uuid::Uuid::new_v4().simple());
    let id = draft_campaign(stack, user, emails, &name, subject, content).await;
    let o = run(
        stack,
        user,
        &["--json", "campaigns", "send", &id, "--yes"],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    id
}

pub(crate) fn addresses(user: &User, names: &[&str]) -> Vec<String> {
    let tag = &user.id.simple().to_string()[..10];
    names
        .iter()
        .map(|n| format!("{n}.{tag}@example.test"))
        .collect()
}

/// `n` addresses of `user`: `<prefix>0`, `<prefix>1`, ...
fn numbered_addresses(user: &User, prefix: &str, n: usize) -> Vec<String> {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    addresses(user, &names.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Runs the binary as `user` off the async runtime (the scripted server
/// runs on it).
pub(crate) async fn run(stack: &Stack, user: &User, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command(stack, dir.path());
    cmd.args(args)
        .envs(env.iter().copied())
        .env("MAILSYNC_ACCESS_TOKEN", &user.token);
    common::output_off_runtime(cmd).await
}

/// `deliver --json` with fast retries, through `smtp_url`.
pub(crate) async fn deliver(
    stack: &Stack,
    user: &User,
    smtp_url: &str,
    extra: &[&str],
) -> (Output, Value) {
    let mut args = vec![
        "--json",
        "campaigns",
        "deliver",
        "--rate",
        "0",
        "--retry-delay",
        "0.05",
    ];
    args.extend_from_slice(extra);
    let o = run(stack, user, &args, &[("MAILSYNC_SMTP_URL", smtp_url)]).await;
    let summary = serde_json::from_str(stdout(&o).trim()).unwrap_or(Value::Null);
    (o, summary)
}

/// The binary started in the background (for kill -9 and Ctrl-C).
fn spawn(stack: &Stack, user: &User, args: &[&str], smtp_url: &str) -> Child {
    let dir = tempfile::tempdir().unwrap().keep();
    common::command_for(&stack.url, &stack.anon_key, &dir)
        .args(args)
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .env("MAILSYNC_SMTP_URL", smtp_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mailsync")
}

/// A campaign queued to `n` addresses (`<prefix><i>`), an SMTP server
/// accepting each message after `delay`, and `deliver --json` with
/// `concurrency` connections at full speed started in the background;
/// returns once the server has accepted `accepted` messages.
async fn delivering(
    stack: &Stack,
    user: &User,
    prefix: &str,
    n: usize,
    delay: Duration,
    concurrency: &str,
    accepted: usize,
) -> (String, ScriptedSmtp, Child) {
    let to = numbered_addresses(user, prefix, n);
    let campaign = queued_campaign(stack, user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, delay).await;
    let child = spawn(
        stack,
        user,
        &[
            "--json",
            "campaigns",
            "deliver",
            &campaign,
            "--rate",
            "0",
            "--concurrency",
            concurrency,
        ],
        &server.url(),
    );
    let started = Instant::now();
    while server.accepted().len() < accepted {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing was delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (campaign, server, child)
}

#[derive(Debug, Clone)]
struct Row {
    status: String,
    message_id: Option<String>,
    smtp_response: Option<String>,
    error_message: Option<String>,
    attempts: i32,
    sent_at: bool,
}

/// Each email of the campaign by recipient, as stored.
async fn emails(campaign: &str) -> HashMap<String, Row> {
    common::admin()
        .await
        .query(
            "select recipient_email, status, message_id, smtp_response, error_message, attempts, sent_at is not null
               from public.emails_sent where campaign_id = $1::text::uuid",
            &[&campaign],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                Row {
                    status: r.get(1),
                    message_id: r.get(2),
                    smtp_response: r.get(3),
                    error_message: r.get(4),
                    attempts: r.get(5),
                    sent_at: r.get(6),
                },
            )
        })
        .collect()
}

fn count(rows: &HashMap<String, Row>, status: &str) -> usize {
    rows.values().filter(|r| r.status == status).count()
}

/// The stack's web inbox (maildev's REST API).
fn inbox_url(stack: &Stack) -> String {
    std::env::var("MAILSYNC_INBOX_URL").unwrap_or_else(|_| {
        let port = url::Url::parse(&stack.url).unwrap().port().unwrap_or(54321);
        format!("http://127.0.0.1:{}", port + 3)
    })
}

/// The web inbox's messages once every one of `addresses` is there. The
/// stack's relay (Postfix) hands mail to the inbox after it answered the
/// sender, so the inbox is read until it has them all (30 s at most).
async fn inbox_with(stack: &Stack, addresses: &[String]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let inbox: Vec<Value> = reqwest::get(format!("{}/email", inbox_url(stack)))
            .await
            .expect("the stack's web inbox answers")
            .json()
            .await
            .unwrap();
        let all_there = addresses.iter().all(|a| {
            inbox
                .iter()
                .any(|m| m["to"][0]["address"].as_str() == Some(a.as_str()))
        });
        if all_there || Instant::now() > deadline {
            return inbox;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_to_the_stack_inbox_with_merge_fields_and_headers() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["lea", "marc", "nina"]);
    let campaign = queued_campaign(
        &stack,
        &user,
        &to,
        "Nouveautés pour {{organization}} — été",
        "Bonjour {{email}},\nles nouveautés de {{ organization }} arrivent. À bientôt !",
    )
    .await;
    // No MAILSYNC_SMTP_URL given to the command beyond the stack's own.
    let smtp = std::env::var("MAILSYNC_SMTP_URL").unwrap_or_else(|_| {
        let port = url::Url::parse(&stack.url).unwrap().port().unwrap_or(54321);
        format!("smtp://127.0.0.1:{}", port + 4)
    });
    let o = run(
        &stack,
        &user,
        &["--json", "campaigns", "deliver", &campaign],
        &[
            ("MAILSYNC_SMTP_URL", &smtp),
            ("MAILSYNC_FROM", "Équipe Acme <news@acme.example>"),
            (
                "MAILSYNC_LIST_UNSUBSCRIBE",
                "https://acme.example/unsubscribe?t={{unsubscribe_token}}",
            ),
            ("MAILSYNC_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET),
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: Value = json_of(&o);
    assert_eq!(summary["sent"], 3, "{summary}");
    assert_eq!(summary["bounced"], 0);

    let rows = emails(&campaign).await;
    assert_eq!(count(&rows, "sent"), 3, "{rows:?}");
    assert_eq!(campaign_status(&campaign).await, "sent");

    let inbox = inbox_with(&stack, &to).await;
    for (i, address) in to.iter().enumerate() {
        let row = &rows[address];
        assert!(row.sent_at);
        assert!(
            row.smtp_response
                .as_deref()
                .unwrap_or("")
                .starts_with("250"),
            "{row:?}"
        );
        let mail = inbox
            .iter()
            .find(|m| m["to"][0]["address"].as_str() == Some(address.as_str()))
            .unwrap_or_else(|| panic!("{address} is not in the inbox"));
        let org = format!("Org {}", i % 3);
        assert_eq!(mail["subject"], format!("Nouveautés pour {org} — été"));
        let text = mail["text"].as_str().unwrap();
        assert!(text.contains(&format!("Bonjour {address},")), "{text}");
        assert!(
            text.contains(&format!("les nouveautés de {org} arrivent")),
            "{text}"
        );
        let headers = &mail["headers"];
        assert_eq!(
            headers["message-id"].as_str(),
            row.message_id.as_deref(),
            "{headers}"
        );
        assert!(row
            .message_id
            .as_deref()
            .unwrap()
            .ends_with("@acme.example>"));
        assert!(headers["date"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(headers["from"]
            .as_str()
            .unwrap()
            .contains("news@acme.example"));
        // The signed token of this email, not the address.
        let email_id = row
            .message_id
            .as_deref()
            .unwrap()
            .trim_start_matches('<')
            .split('@')
            .next()
            .unwrap()
            .to_string();
        let header = headers["list-unsubscribe"].as_str().unwrap();
        let token = header
            .strip_prefix(&format!("<https://acme.example/unsubscribe?t={email_id}."))
            .and_then(|rest| rest.strip_suffix('>'))
            .unwrap_or_else(|| panic!("{header}"));
        assert_eq!(token.len(), 43, "{header}");
        assert!(
            !header.contains(address.split('@').next().unwrap()),
            "{header}"
        );
        assert_eq!(
            headers["list-unsubscribe-post"],
            "List-Unsubscribe=One-Click"
        );
    }
    let ids: HashSet<_> = rows.values().map(|r| r.message_id.clone()).collect();
    assert_eq!(ids.len(), 3, "each email has its own Message-ID");
}

const UNSUBSCRIBE_SECRET: &str = "an-unsubscribe-secret-of-40-characters!!";

/// The `List-Unsubscribe` header of a message as the scripted server
/// received it.
fn list_unsubscribe(data: &str) -> String {
    data.lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: "))
        .unwrap_or_else(|| panic!("no List-Unsubscribe in {data}"))
        .trim()
        .to_string()
}

/// `contacts unsubscribe --json --token TOKEN` as `user`.
async fn unsubscribe(stack: &Stack, user: &User, token: &str, env: &[(&str, &str)]) -> Output {
    let args = ["--json", "contacts", "unsubscribe", "--token", token];
    run(stack, user, &args, env).await
}

/// What is on `user`'s suppression list, as stored.
async fn suppressed(user: &User) -> Vec<String> {
    common::admin()
        .await
        .query(
            "select email from public.suppressions where user_id = $1 order by email",
            &[&user.id],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect()
}

/// The one-click URL carries a signed token, never the address, and
/// `contacts unsubscribe --token` suppresses the address it was made for;
/// a forged token, another user's, or one checked with another secret
/// changes nothing (exit 1). `{{email}}` in an https URL is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_click_url_carries_a_signed_token_that_unsubscribes_its_address() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["tok1", "tok2"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    let url = "https://acme.example/u?t={{unsubscribe_token}}";

    // {{email}} in an https URL, or the token without its secret: exit 3,
    // nothing claimed.
    for env in [
        vec![(
            "MAILSYNC_LIST_UNSUBSCRIBE",
            "https://acme.example/u?e={{email}}",
        )],
        vec![("MAILSYNC_LIST_UNSUBSCRIBE", url)],
        vec![
            ("MAILSYNC_LIST_UNSUBSCRIBE", url),
            ("MAILSYNC_UNSUBSCRIBE_SECRET", "too-short"),
        ],
    ] {
        let mut env = env.clone();
        let smtp = server.url();
        env.push(("MAILSYNC_SMTP_URL", &smtp));
        let o = run(&stack, &user, &["campaigns", "deliver", &campaign], &env).await;
        assert_eq!(o.status.code(), Some(3), "{env:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("MAILSYNC_"), "{err}");
        assert!(!err.contains("too-short"), "{err}");
    }
    assert!(server.accepted().is_empty());
    assert_eq!(count(&emails(&campaign).await, "pending"), 2);

    let smtp = server.url();
    let o = run(
        &stack,
        &user,
        &["--json", "campaigns", "deliver", &campaign, "--rate", "0"],
        &[
            ("MAILSYNC_SMTP_URL", &smtp),
            ("MAILSYNC_LIST_UNSUBSCRIBE", url),
            ("MAILSYNC_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET),
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 2);
    let mut tokens = HashMap::new();
    for received in &accepted {
        let header = list_unsubscribe(&received.data);
        let local = received.recipient.split('@').next().unwrap();
        assert!(!header.contains(local), "{header}");
        assert!(!header.contains(UNSUBSCRIBE_SECRET), "{header}");
        assert!(received
            .data
            .contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        let token = header
            .strip_prefix("<https://acme.example/u?t=")
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or_else(|| panic!("{header}"))
            .to_string();
        tokens.insert(received.recipient.clone(), token);
    }
    let token = tokens[&to[0]].clone();
    let secret = [("MAILSYNC_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET)];

    // Forged: the other email's id with this MAC, a changed MAC, a made-up one.
    let (id0, mac0) = token.split_once('.').unwrap();
    let (id1, _) = tokens[&to[1]].split_once('.').unwrap();
    let flipped = format!(
        "{id0}.{}{}",
        &mac0[..10],
        if &mac0[10..11] == "A" { "B" } else { "A" }
    ) + &mac0[11..];
    for forged in [
        format!("{id1}.{mac0}"),
        flipped,
        format!("{id0}.{}", "A".repeat(43)),
        "garbage".to_string(),
    ] {
        let o = unsubscribe(&stack, &user, &forged, &secret).await;
        assert_eq!(o.status.code(), Some(1), "{forged}: {}", stderr(&o));
        assert!(stderr(&o).contains("token"), "{}", stderr(&o));
    }
    // Another secret, and another user (RLS: the email is not theirs).
    let o = unsubscribe(
        &stack,
        &user,
        &token,
        &[(
            "MAILSYNC_UNSUBSCRIBE_SECRET",
            "another-secret-that-is-long-enough-too",
        )],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let other = new_user(&stack).await;
    let o = unsubscribe(&stack, &other, &token, &secret).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(suppressed(&other).await.is_empty());
    // No secret: a configuration error.
    let o = unsubscribe(&stack, &user, &token, &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAILSYNC_UNSUBSCRIBE_SECRET"));
    assert!(suppressed(&user).await.is_empty(), "nothing was changed");

    // The genuine token suppresses its address, as `contacts unsubscribe` does.
    let o = unsubscribe(&stack, &user, &token, &secret).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = json_of(&o);
    assert_eq!(report["suppressed"], json!([to[0].clone()]));
    assert_eq!(suppressed(&user).await, vec![to[0].clone()]);
    let (status, body) = rest(
        &stack,
        Method::GET,
        "suppressions?select=email,reason",
        Some(&user.token),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([{"email": to[0].clone(), "reason": "unsubscribed"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_rcpt_and_at_data_are_recorded_with_the_servers_reply() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(
        &user,
        &["ok", "nouser", "policy", "busy", "greylisted", "full"],
    );
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(
        |rcpt, phase, n| match (rcpt.split('.').next().unwrap(), phase) {
            ("nouser", Phase::Rcpt) => {
                Action::Reply("550 5.1.1 <nouser>: Recipient address rejected: User unknown".into())
            }
            ("policy", Phase::Data) => Action::Reply("554 5.7.1 Message rejected as spam".into()),
            ("busy", Phase::Rcpt) => Action::Reply("451 4.3.0 Try again later".into()),
            ("greylisted", Phase::Data) if n < 2 => {
                Action::Reply("450 4.2.0 Greylisted, come back later".into())
            }
            ("full", Phase::Data) => Action::Reply("552 5.2.2 Mailbox full".into()),
            _ => Action::Accept,
        },
        Duration::ZERO,
    )
    .await;
    let (o, summary) = deliver(&stack, &user, &server.url(), &[&campaign]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = emails(&campaign).await;
    let by = |name: &str| {
        rows.iter()
            .find(|(k, _)| k.starts_with(&format!("{name}.")))
            .unwrap()
            .1
            .clone()
    };

    assert_eq!(by("ok").status, "sent");
    assert!(by("ok")
        .smtp_response
        .unwrap()
        .starts_with("250 2.0.0 Ok: queued"));
    let nouser = by("nouser");
    assert_eq!(
        nouser.status, "bounced",
        "5.1.1 at RCPT is an unknown mailbox"
    );
    assert!(nouser.error_message.unwrap().contains("550 5.1.1"));
    let policy = by("policy");
    assert_eq!(
        policy.status, "failed",
        "a 5xx that is not 5.1.x is a failure"
    );
    assert!(policy
        .error_message
        .unwrap()
        .contains("554 5.7.1 Message rejected as spam"));
    assert_eq!(by("full").status, "failed");
    let busy = by("busy");
    assert_eq!(
        busy.status, "failed",
        "4xx every time: failed after the tries"
    );
    assert!(
        busy.error_message.as_deref().unwrap().contains("451 4.3.0"),
        "{busy:?}"
    );
    assert!(busy.error_message.unwrap().contains("3 tries"));
    let grey = by("greylisted");
    assert_eq!(grey.status, "sent", "4xx twice then accepted");

    assert_eq!(summary["sent"], 2, "{summary}");
    assert_eq!(summary["bounced"], 1);
    assert_eq!(summary["failed"], 3);
    assert_eq!(summary["retries"], 4, "busy twice, greylisted twice");
    // Exactly the accepted ones reached the server, once each.
    let accepted = server.accepted_count();
    assert_eq!(accepted.len(), 2);
    assert!(accepted.values().all(|n| *n == 1));
    assert_eq!(
        campaign_status(&campaign).await,
        "sent",
        "the last settled email finishes it"
    );

    // The bounced address is suppressed for the next send.
    let (status, body) = rest(
        &stack,
        Method::GET,
        "suppressions?select=email,reason",
        Some(&user.token),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!([{"email": by_key(&rows, "nouser"), "reason": "bounced"}])
    );
}

fn by_key(rows: &HashMap<String, Row>, name: &str) -> String {
    rows.keys()
        .find(|k| k.starts_with(&format!("{name}.")))
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_message_is_retried_and_sent_once() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["drop", "after1", "after2"]);
    let campaign =
        queued_campaign(&stack, &user, &to, "S", &"Long enough content. ".repeat(20)).await;
    let server = ScriptedSmtp::start(
        |rcpt, phase, n| {
            if rcpt.starts_with("drop.") && phase == Phase::Data && n == 0 {
                Action::Drop
            } else {
                Action::Accept
            }
        },
        Duration::ZERO,
    )
    .await;
    let (o, summary) = deliver(&stack, &user, &server.url(), &["--concurrency", "1"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 3, "{summary}");
    assert_eq!(summary["retries"], 1);
    let rows = emails(&campaign).await;
    assert_eq!(count(&rows, "sent"), 3);
    assert!(server.accepted_count().values().all(|n| *n == 1));
    assert!(server.connections() >= 2, "a new connection after the drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_is_exit_3_and_nothing_is_claimed() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["a", "b"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("smtp://mailer:s3cr3t-pass@127.0.0.1:{port}");
    let o = run(
        &stack,
        &user,
        &["campaigns", "deliver", &campaign],
        &[("MAILSYNC_SMTP_URL", &url)],
    )
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("cannot use the SMTP server"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        !err.contains("s3cr3t-pass"),
        "the password is never printed: {err}"
    );
    // In French, mailsync's own words about the connection too.
    let o = run(
        &stack,
        &user,
        &["--lang", "fr", "campaigns", "deliver", &campaign],
        &[("MAILSYNC_SMTP_URL", &url)],
    )
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "erreur : le serveur SMTP smtp://mailer:******@127.0.0.1:{port} est inutilisable : connexion impossible à 127.0.0.1:{port} : "
        )),
        "{err}"
    );
    assert!(
        err.contains("\nconseil : définissez MAILSYNC_SMTP_URL"),
        "{err}"
    );
    assert!(!err.contains("s3cr3t-pass"), "{err}");
    let rows = emails(&campaign).await;
    assert_eq!(count(&rows, "pending"), 2);
    assert!(rows
        .values()
        .all(|r| r.attempts == 0 && r.message_id.is_none()));
}

/// `deliver --json` as `user` with its state (journal) in `dir`, through
/// `smtp_url`.
async fn deliver_in(
    stack: &Stack,
    user: &User,
    dir: &std::path::Path,
    smtp_url: &str,
    extra: &[&str],
) -> (Output, Value) {
    let mut cmd = common::command(stack, dir);
    cmd.args([
        "--json",
        "campaigns",
        "deliver",
        "--rate",
        "0",
        "--retry-delay",
        "0.05",
    ])
    .args(extra)
    .env("MAILSYNC_ACCESS_TOKEN", &user.token)
    .env("MAILSYNC_SMTP_URL", smtp_url);
    let o = common::output_off_runtime(cmd).await;
    let summary = serde_json::from_str(stdout(&o).trim()).unwrap_or(Value::Null);
    (o, summary)
}

/// The journals of `user`'s workers under `dir`.
fn journal_dir(dir: &std::path::Path, user: &User) -> std::path::PathBuf {
    dir.join("config")
        .join("deliver")
        .join(user.id.hyphenated().to_string())
}

/// How a crash test's SMTP server behaves.
#[derive(Clone, Copy, PartialEq)]
enum Server {
    /// Accepts each message after a short delay.
    Slow,
    /// Never answers the end of DATA (in the test's time).
    StallsInData,
}

/// `deliver` with `connections`, killed with SIGKILL mid-run; the leases
/// run out; then (its journal replayed, or removed as if it had run on
/// another machine) the next run delivers every other email without
/// `--resend-unknown`, exits 5 while unknown outcomes remain, and
/// `--settle-unknown sent` finishes the campaign. Returns how many were
/// left unknown.
async fn crash_and_recover(connections: usize, server: Server, keep_journal: bool) -> u64 {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let n = 400;
    let to = numbered_addresses(&user, "k", n);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let delay = match server {
        Server::Slow => Duration::from_millis(20),
        Server::StallsInData => Duration::from_secs(600),
    };
    let first = ScriptedSmtp::start(|_, _, _| Action::Accept, delay).await;
    let dir = tempfile::tempdir().unwrap();
    let concurrency = connections.to_string();
    let mut cmd = common::command(&stack, dir.path());
    cmd.args([
        "--json",
        "campaigns",
        "deliver",
        &campaign,
        "--rate",
        "0",
        "--concurrency",
        &concurrency,
    ])
    .env("MAILSYNC_ACCESS_TOKEN", &user.token)
    .env("MAILSYNC_SMTP_URL", first.url())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("starting mailsync");
    let started = Instant::now();
    loop {
        let busy = match server {
            Server::Slow => first.accepted().len() >= 3 * connections,
            Server::StallsInData => {
                first
                    .envelope_lines()
                    .iter()
                    .filter(|l| l.starts_with("RCPT"))
                    .count()
                    >= connections
            }
        };
        if busy {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing was delivered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL: no chance to record anything more
    let _ = child.wait();
    // What the server took in the meantime (a slow server finishes the
    // messages in flight).
    // (And a REST call the worker had in flight, a claim say, commits.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    let accepted_first: HashSet<String> = first.accepted_count().keys().cloned().collect();

    let rows = emails(&campaign).await;
    for (address, row) in &rows {
        if row.status == "sent" {
            assert!(
                accepted_first.contains(address),
                "{address} is marked sent but the server never accepted it"
            );
        }
    }
    if !keep_journal {
        std::fs::remove_dir_all(journal_dir(dir.path(), &user)).unwrap();
    }
    // Time passes: the dead worker's leases expire.
    common::admin()
        .await
        .execute(
            "with claims as (
               update public.email_claims set lease_expires_at = now() - interval '1 second'
                where campaign_id = $1::text::uuid)
             update public.emails_sent set lease_expires_at = now() - interval '1 second'
              where campaign_id = $1::text::uuid and status = 'sending'",
            &[&campaign],
        )
        .await
        .unwrap();

    // The next run, on a server that answers at once.
    let second = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    let (o, summary) = deliver_in(&stack, &user, dir.path(), &second.url(), &[&campaign]).await;
    let unknown = summary["unknown"].as_u64().expect("the run's summary");
    eprintln!("crash at {connections} connections: {unknown} unknown; the next run: {summary}");
    let bound = if keep_journal {
        connections
    } else {
        // Handed without a recorded outcome, at most (docs/campaigns.md).
        connections * 8
    };
    assert!(
        unknown as usize <= bound,
        "{unknown} unknown after a crash at {connections} connections (bound {bound}): {summary}"
    );
    if keep_journal {
        assert!(
            !journal_dir(dir.path(), &user).read_dir().unwrap().any(|e| {
                e.unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "journal")
            }),
            "the dead worker's journal is replayed and removed, the new one removed at the end"
        );
        assert!(stderr(&o).contains("left a journal"), "{}", stderr(&o));
    }
    if unknown > 0 {
        assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
        assert!(stderr(&o).contains("--settle-unknown"), "{}", stderr(&o));
    } else {
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut sent_total: HashMap<String, usize> = first.accepted_count();
    for (k, v) in second.accepted_count() {
        *sent_total.entry(k).or_default() += v;
    }
    assert!(
        sent_total.values().all(|n| *n == 1),
        "nothing was sent twice: {:?}",
        sent_total
            .iter()
            .filter(|(_, n)| **n > 1)
            .collect::<Vec<_>>()
    );
    let rows = emails(&campaign).await;
    assert_eq!(
        count(&rows, "sending"),
        unknown as usize,
        "only the unknown ones are left: {summary}"
    );
    assert_eq!(count(&rows, "sent"), n - unknown as usize, "{summary}");
    for (address, row) in &rows {
        if row.status == "sent" {
            assert!(
                sent_total.contains_key(address),
                "{address} sent but never accepted"
            );
        }
    }

    // The operator checked the server's logs: settled, the campaign ends.
    let (o, summary) = deliver_in(
        &stack,
        &user,
        dir.path(),
        &second.url(),
        &[&campaign, "--settle-unknown", "sent"],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["unknown"], 0, "{summary}");
    assert_eq!(count(&emails(&campaign).await, "sent"), n);
    assert_eq!(campaign_status(&campaign).await, "sent");
    unknown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_4_connections_leaves_at_most_4_unknown_and_the_rest_is_delivered() {
    crash_and_recover(4, Server::Slow, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_16_connections_leaves_at_most_16_unknown_and_the_rest_is_delivered() {
    crash_and_recover(16, Server::Slow, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_the_server_stalls_in_data_leaves_exactly_those_unknown() {
    let unknown = crash_and_recover(4, Server::StallsInData, true).await;
    assert_eq!(unknown, 4, "the 4 messages the server was holding");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_on_another_machine_than_the_journal_stays_within_the_hand_off_window() {
    crash_and_recover(4, Server::Slow, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_journal_line_is_ignored_with_a_warning() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["j1", "j2"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let pending: Vec<String> = common::admin()
        .await
        .query(
            "select id::text from public.emails_sent where campaign_id = $1::text::uuid order by recipient_email",
            &[&campaign],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let journals = journal_dir(dir.path(), &user);
    std::fs::create_dir_all(&journals).unwrap();
    // A worker that never held these emails claims one was sent: the
    // database ignores it (not its lease); garbage lines are skipped.
    std::fs::write(
        journals.join("gone.0.journal"),
        format!(
            "worker someone:1:x\nhand not-a-uuid\n\u{0}\u{1b}[2Jgarbage\ndone {} sent 250 forged\nstart\n",
            pending[0]
        ),
    )
    .unwrap();
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    let (o, summary) = deliver_in(&stack, &user, dir.path(), &server.url(), &[&campaign]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("3 line(s) of the journal") && err.contains("ignored"),
        "{err}"
    );
    assert_eq!(summary["sent"], 2, "{summary}");
    assert!(
        !journals.join("gone.0.journal").exists(),
        "replayed, then removed"
    );
    let rows = emails(&campaign).await;
    assert_eq!(count(&rows, "sent"), 2);
    assert!(rows
        .values()
        .all(|r| r.smtp_response.as_deref() != Some("250 forged")));
    assert!(server.accepted_count().values().all(|n| *n == 1));
}

/// Emails left unknown by an earlier mailsync (claimed, no hand-off mark)
/// are still re-sent with --resend-unknown, with the Message-ID they had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_unknown_sends_them_again_with_the_same_message_id() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["u1", "u2", "u3"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    common::admin()
        .await
        .execute(
            "update public.emails_sent
                set status = 'sending', lease_owner = 'dead', claimed_at = now() - interval '1 hour',
                    handed_at = now() - interval '1 hour', lease_expires_at = now() - interval '1 minute',
                    message_id = '<' || id || '@before.test>', attempts = 1
              where campaign_id = $1::text::uuid and recipient_email like 'u1.%'",
            &[&campaign],
        )
        .await
        .unwrap();
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    let (o, summary) = deliver(&stack, &user, &server.url(), &[&campaign]).await;
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(summary["sent"], 2, "{summary}");
    assert_eq!(summary["unknown"], 1, "{summary}");
    assert_eq!(campaign_status(&campaign).await, "sending");
    let (o, summary) = deliver(
        &stack,
        &user,
        &server.url(),
        &[&campaign, "--resend-unknown"],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 1, "{summary}");
    let rows = emails(&campaign).await;
    let u1 = by_key(&rows, "u1");
    assert_eq!(rows[&u1].status, "sent");
    assert!(rows[&u1]
        .message_id
        .as_deref()
        .unwrap()
        .ends_with("@before.test>"));
    assert_eq!(campaign_status(&campaign).await, "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_one_campaign_without_overlap() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = numbered_addresses(&user, "w", 300);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::from_millis(2)).await;
    let args = [
        "--json",
        "campaigns",
        "deliver",
        campaign.as_str(),
        // A claim is two seconds of sending: at 50/s, 100 emails, so one
        // worker cannot claim the whole campaign before the other starts.
        "--rate",
        "50",
        "--concurrency",
        "2",
    ];
    let a = spawn(&stack, &user, &args, &server.url());
    let b = spawn(&stack, &user, &args, &server.url());
    let (a, b) = tokio::task::spawn_blocking(move || {
        (a.wait_with_output().unwrap(), b.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let sa: Value = json_of(&a);
    let sb: Value = json_of(&b);
    let (na, nb) = (sa["sent"].as_u64().unwrap(), sb["sent"].as_u64().unwrap());
    assert_eq!(na + nb, 300, "{sa} {sb}");
    assert!(na > 0 && nb > 0, "both workers took part: {na} and {nb}");
    let counts = server.accepted_count();
    assert_eq!(counts.len(), 300);
    assert!(counts.values().all(|n| *n == 1), "no email went out twice");
    assert_eq!(count(&emails(&campaign).await, "sent"), 300);
    assert_eq!(campaign_status(&campaign).await, "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_finishes_the_emails_in_flight_records_them_and_exits_130() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let (campaign, server, child) =
        delivering(&stack, &user, "i", 80, Duration::from_millis(150), "3", 6).await;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let summary: Value = json_of(&o);
    assert_eq!(summary["interrupted"], true);

    let rows = emails(&campaign).await;
    let accepted = server.accepted_count();
    assert_eq!(
        count(&rows, "sending"),
        0,
        "nothing is left in doubt after Ctrl-C: {rows:?}"
    );
    assert_eq!(
        count(&rows, "sent"),
        accepted.len(),
        "every accepted email is recorded"
    );
    assert_eq!(summary["sent"], accepted.len());
    assert!(
        count(&rows, "pending") > 0,
        "the emails not tried are pending again"
    );
    assert_eq!(count(&rows, "sent") + count(&rows, "pending"), 80);

    // A later run finishes the campaign.
    let (o, _) = deliver(&stack, &user, &server.url(), &[&campaign]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(count(&emails(&campaign).await, "sent"), 80);
    assert!(server.accepted_count().values().all(|n| *n == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppressed_addresses_are_left_out_by_send_and_skipped_by_deliver() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["stay", "leave", "late"]);
    // "leave" unsubscribes before the first send.
    let o = run(
        &stack,
        &user,
        &["contacts", "unsubscribe", &to[1].to_uppercase()],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let campaign = draft_campaign(&stack, &user, &to, "sup", "S", "C").await;
    let o = run(
        &stack,
        &user,
        &["--json", "campaigns", "send", &campaign, "--yes"],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let queued: Value = json_of(&o);
    assert_eq!(queued["queued"], 2, "{queued}");
    assert_eq!(
        queued["suppressed"], 1,
        "send reports how many were left out: {queued}"
    );
    // Sending it again queues nothing more and says what was queued.
    let o = run(
        &stack,
        &user,
        &["--json", "campaigns", "send", "sup", "--yes"],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let again: Value = json_of(&o);
    assert_eq!(
        (again["queued"].clone(), again["queued_now"].clone()),
        (json!(2), json!(0)),
        "{again}"
    );

    // "late" unsubscribes after the campaign was queued: deliver skips it.
    let o = run(&stack, &user, &["contacts", "unsubscribe", &to[2]], &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    let (o, summary) = deliver(&stack, &user, &server.url(), &[&campaign]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 1, "{summary}");
    assert_eq!(summary["suppressed"], 1);
    let rows = emails(&campaign).await;
    assert_eq!(rows[&to[0]].status, "sent");
    assert_eq!(rows[&to[2]].status, "failed");
    assert!(rows[&to[2]]
        .error_message
        .as_deref()
        .unwrap()
        .contains("suppressed (unsubscribed)"));
    assert!(!rows.contains_key(&to[1]));
    assert_eq!(
        server.accepted_count().keys().cloned().collect::<Vec<_>>(),
        vec![to[0].clone()]
    );

    // Another user's suppression list is theirs alone.
    let other = new_user(&stack).await;
    let (status, body) = rest(
        &stack,
        Method::GET,
        "suppressions?select=email",
        Some(&other.token),
        None,
        None,
    )
    .await;
    assert_eq!((status, body), (200, json!([])));

    // --undo takes an address off the list.
    let o = run(
        &stack,
        &user,
        &["--json", "contacts", "unsubscribe", "--undo", &to[1]],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let undone: Value = json_of(&o);
    assert_eq!(undone["removed"], json!([to[1].clone()]));
}

/// `contacts unsubscribe --undo` takes off unsubscribed addresses only: a
/// hard bounce and a complaint stay on the list unless asked explicitly
/// (`--include-bounces`, `--include-complaints`), and unsubscribing a
/// bounced address does not turn it into an unsubscription `--undo` would
/// take off.
#[tokio::test]
async fn undo_keeps_hard_bounces_and_complaints_unless_asked() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let [left, gone, angry] =
        ["left", "gone", "angry"].map(|p| format!("{p}-{}@example.test", user.id));
    for (email, reason) in [
        (&left, "unsubscribed"),
        (&gone, "bounced"),
        (&angry, "complained"),
    ] {
        common::admin()
            .await
            .execute(
                "insert into public.suppressions (user_id, email, reason) values ($1, $2, $3)",
                &[&user.id, email, &reason],
            )
            .await
            .unwrap();
    }
    let on_list = || async {
        common::admin()
            .await
            .query(
                "select email, reason from public.suppressions where user_id = $1 order by email",
                &[&user.id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect::<Vec<_>>()
    };
    let all = [left.as_str(), gone.as_str(), angry.as_str()];
    let undo = |extra: &'static [&'static str]| {
        let mut args = vec!["--json", "contacts", "unsubscribe", "--undo"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&all);
        args.into_iter().map(str::to_string).collect::<Vec<_>>()
    };
    let run_args = |args: Vec<String>| {
        let (stack, user) = (&stack, &user);
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(stack, user, &args, &[]).await
        }
    };

    // Unsubscribing a bounced address keeps its reason.
    let o = run(&stack, &user, &["contacts", "unsubscribe", &gone], &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let bounced = (gone.clone(), "bounced".to_string());
    assert!(on_list().await.contains(&bounced));

    // --undo: only the unsubscribed address goes; the others are reported.
    let o = run_args(undo(&[])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json_of(&o);
    assert_eq!(report["removed"], json!([left]), "{report}");
    let mut kept = vec![
        json!({"email": angry, "reason": "complained"}),
        json!({"email": gone, "reason": "bounced"}),
    ];
    kept.sort_by_key(|k| k["email"].as_str().unwrap().to_string());
    assert_eq!(report["kept"], json!(kept), "{report}");
    let complained = (angry.clone(), "complained".to_string());
    let mut expected = vec![complained.clone(), bounced.clone()];
    expected.sort();
    assert_eq!(on_list().await, expected);

    // Without --json, a person is told what was kept and how to take it off.
    let o = run(
        &stack,
        &user,
        &["contacts", "unsubscribe", "--undo", &gone, &angry],
        &[],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("0 addresses taken off"),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains(&format!("--include-bounces to take it off too ({gone})")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "--include-complaints to take it off too ({angry})"
        )),
        "{err}"
    );

    // The explicit flags take them off, each its own reason.
    let o = run_args(undo(&["--include-bounces"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["removed"], json!([gone]));
    assert_eq!(on_list().await, [complained]);
    let o = run_args(undo(&["--include-complaints"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["removed"], json!([angry]));
    assert_eq!(json_of(&o)["kept"], json!([]));
    assert!(on_list().await.is_empty());

    // The flags mean nothing without --undo.
    let o = run(
        &stack,
        &user,
        &["contacts", "unsubscribe", "--include-bounces", &gone],
        &[],
    )
    .await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_checks_and_counts_but_claims_nothing() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["d1", "d2"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    let (o, summary) = deliver(&stack, &user, &server.url(), &[&campaign, "--dry-run"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["pending"], 2);
    assert!(server.accepted().is_empty());
    assert_eq!(count(&emails(&campaign).await, "pending"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_shows_the_smtp_settings_with_the_password_masked() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let o = run(
        &stack,
        &user,
        &["--json", "config"],
        &[
            (
                "MAILSYNC_SMTP_URL",
                "smtp://apikey:hunter2-secret@smtp.acme.example:587",
            ),
            ("MAILSYNC_FROM", "news@acme.example"),
            ("MAILSYNC_UNSUBSCRIBE_SECRET", UNSUBSCRIBE_SECRET),
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(!text.contains("hunter2-secret"), "{text}");
    assert!(!text.contains("unsubscribe-secret"), "{text}");
    let entries: Vec<Value> = serde_json::from_str(text.trim()).unwrap();
    let smtp = entries
        .iter()
        .find(|e| e["name"] == "MAILSYNC_SMTP_URL")
        .expect("MAILSYNC_SMTP_URL is shown");
    assert_eq!(smtp["value"], "smtp://apikey:******@smtp.acme.example:587");
    let from = entries
        .iter()
        .find(|e| e["name"] == "MAILSYNC_FROM")
        .unwrap();
    assert_eq!(from["value"], "news@acme.example");
    let secret = entries
        .iter()
        .find(|e| e["name"] == "MAILSYNC_UNSUBSCRIBE_SECRET")
        .expect("MAILSYNC_UNSUBSCRIBE_SECRET is shown");
    assert!(
        secret["value"].as_str().unwrap().starts_with("******"),
        "{secret}"
    );
}

/// One claim and one record of 500 outcomes (with 500 hand-offs) stay far
/// inside the API's limit among many emails of other users and campaigns:
/// each finds its rows through an index, not by reading the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_outcomes_of_500_are_quick_among_200k_other_emails() {
    let stack = common::ready().await;
    let other = new_user(&stack).await;
    let user = new_user(&stack).await;
    let busy = common::insert_campaign(&other, "Busy", "sending").await;
    let mine = common::insert_campaign(&user, "Mine", "sending").await;
    let db = common::admin().await;
    // The other user's 200 000 emails, in short statements: tests that
    // change the schema meanwhile may pick one as a deadlock victim, and
    // it is then run again.
    for chunk in 0..20 {
        let from = chunk * 10_000 + 1;
        let mut tries = 0;
        loop {
            let done = db
                .execute(
                    "insert into public.emails_sent (user_id, campaign_id, recipient_email, status)
                     select $1, $2, 'o' || g || '@example.test', case when g % 5 = 0 then 'pending' else 'sent' end
                     from generate_series($3::int, $3::int + 9999) g",
                    &[&other.id, &busy, &from],
                )
                .await;
            match done {
                Ok(_) => break,
                Err(e)
                    if tries < 5
                        && e.code()
                            == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) =>
                {
                    tries += 1;
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    db.batch_execute("analyze public.emails_sent")
        .await
        .unwrap();
    db.execute(
        "insert into public.emails_sent (user_id, campaign_id, recipient_email, status)
         select $1, $2, 'm' || g || '@example.test', 'pending' from generate_series(1, 1000) g",
        &[&user.id, &mine],
    )
    .await
    .unwrap();
    let call = |function: &'static str, body: Value| {
        let stack = &stack;
        let token = user.token.clone();
        async move {
            let started = Instant::now();
            let (status, body) = rest(
                stack,
                Method::POST,
                &format!("rpc/{function}"),
                Some(&token),
                Some(body),
                None,
            )
            .await;
            assert_eq!(status, 200, "{function}: {body}");
            (body, started.elapsed())
        }
    };
    // A claim answers one JSON value, never a set of rows: the hosted REST
    // API cuts a set at the project's row cap after the function ran, and
    // the emails claimed past it would be held and never sent.
    let returns: String = db
        .query_one(
            "select prorettype::regtype::text from pg_catalog.pg_proc
              where oid = 'public.claim_emails(uuid, integer, integer, text, text, boolean, boolean)'::regprocedure",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(returns, "jsonb");
    for round in 0..2 {
        let (claimed, claim_took) = call(
            "claim_emails",
            json!({"campaign": mine, "max_emails": 500, "worker": "w", "lease_seconds": 60}),
        )
        .await;
        let ids: Vec<Value> = claimed
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(ids.len(), 500);
        let (handed, hand_took) = call(
            "record_email_outcomes",
            json!({"outcomes": [], "worker": "w", "handed": ids}),
        )
        .await;
        assert_eq!(handed["handed"].as_array().unwrap().len(), 500, "{handed}");
        let outcomes: Vec<Value> = ids
            .iter()
            .map(|id| json!({"id": id, "status": "sent", "response": "250 ok"}))
            .collect();
        let (recorded, record_took) = call(
            "record_email_outcomes",
            json!({"outcomes": outcomes, "worker": "w"}),
        )
        .await;
        assert_eq!(recorded["recorded"], 500, "{recorded}");
        // A retried call (its answer lost) says the same.
        let (again, _) = call(
            "record_email_outcomes",
            json!({"outcomes": outcomes, "worker": "w"}),
        )
        .await;
        assert_eq!(again["recorded"], 500, "{again}");
        eprintln!(
            "round {round}: claim {claim_took:?}, hand-off {hand_took:?}, record {record_took:?}"
        );
        for (what, took) in [
            ("claim", claim_took),
            ("hand-off", hand_took),
            ("record", record_took),
        ] {
            assert!(
                took < Duration::from_millis(500),
                "{what} of 500 took {took:?}"
            );
        }
    }
    // The plans behind those timings: the campaign's unsettled emails (the
    // claim's candidates, the check that finishes a campaign at each
    // commit) come from the partial index on (user_id, campaign_id, id), never from
    // reading the table or a whole index.
    for query in [
        "select 1 from public.emails_sent e
          where e.user_id = (select c.user_id from public.email_campaigns c where c.id = $1)
            and e.campaign_id = $1 and e.status in ('pending', 'sending') limit 1",
        "select e.id from public.emails_sent e
          where e.user_id = (select c.user_id from public.email_campaigns c where c.id = $1)
            and e.campaign_id = $1
           and (e.status = 'pending' or (e.status = 'sending' and coalesce(e.lease_expires_at, '-infinity') < now()
                                        and e.handed_at is null)) limit 500",
    ] {
        let plan: Vec<String> = db
            .query(&format!("explain {query}"), &[&mine])
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        // (The (user_id, campaign_id) index would do, read whole: O(table).)
        assert!(
            plan.iter().any(|l| l.contains("emails_sent_unsettled_idx")),
            "{query}\n{}",
            plan.join("\n")
        );
    }
    let status: String = db
        .query_one(
            "select status from public.email_campaigns where id = $1",
            &[&mine],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "sent", "the last outcome finished the campaign");
    for tries in 0.. {
        match db
            .execute(
                "delete from public.emails_sent where campaign_id = $1",
                &[&busy],
            )
            .await
        {
            Ok(_) => break,
            Err(e)
                if tries < 5
                    && e.code()
                        == Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A SQL function called through the REST API as the holder of `token`.
async fn rpc_as(stack: &Stack, token: &str, function: &str, body: Value) -> (u16, Value) {
    rest(
        stack,
        Method::POST,
        &format!("rpc/{function}"),
        Some(token),
        Some(body),
        None,
    )
    .await
}

/// The ids of the emails a claim answered, sorted.
fn claimed_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The database side of the hand-off, call by call: a claimed email never
/// handed goes back to any worker once its lease ends (no --resend-unknown
/// needed, not counted unknown); a hand-off after the lease was lost is
/// refused (the worker never sends it); a handed one is unknown once its
/// lease ends, claimed again only with resend_unknown, and settled by
/// settle_unknown_emails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_handed_emails_become_unknown_and_a_lost_lease_refuses_the_hand_off() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let campaign = common::insert_campaign(&user, "Hand-off", "sending").await;
    let db = common::admin().await;
    db.execute(
        "insert into public.emails_sent (user_id, campaign_id, recipient_email, status)
         select $1, $2, 'h' || g || '@example.test', 'pending' from generate_series(1, 2) g",
        &[&user.id, &campaign],
    )
    .await
    .unwrap();
    let rpc = |function: &'static str, body: Value| {
        let (stack, token) = (&stack, user.token.clone());
        async move { rpc_as(stack, &token, function, body).await }
    };
    let expire = || async {
        common::admin()
            .await
            .execute(
                "with claims as (
                   update public.email_claims set lease_expires_at = now() - interval '1 second'
                    where campaign_id = $1)
                 update public.emails_sent set lease_expires_at = now() - interval '1 second'
                  where campaign_id = $1 and status = 'sending'",
                &[&campaign],
            )
            .await
            .unwrap();
    };
    let claim = |worker: &'static str, resend: bool| {
        rpc(
            "claim_emails",
            json!({"campaign": campaign, "max_emails": 10, "worker": worker, "resend_unknown": resend}),
        )
    };
    let ids = claimed_ids;
    let unknown = || rpc("unknown_emails", json!({"campaign": campaign}));

    let (_, first) = claim("w1", false).await;
    let all = ids(&first);
    assert_eq!(all.len(), 2);
    // w1 hands one of them, then dies; both leases run out.
    let (_, answer) = rpc(
        "record_email_outcomes",
        json!({"outcomes": [], "worker": "w1", "handed": [all[0]]}),
    )
    .await;
    assert_eq!(answer["handed"], json!([all[0]]), "{answer}");
    expire().await;
    let (_, u) = unknown().await;
    assert_eq!(u["count"], 1, "only the handed one is unknown: {u}");
    // w2 takes the one never handed, without resend_unknown, with no new attempt.
    let (_, second) = claim("w2", false).await;
    assert_eq!(ids(&second), vec![all[1].clone()], "{second}");
    assert_eq!(second[0]["attempts"], 1, "{second}");
    // w1 comes back and tries to hand it: refused, its lease is gone.
    let (_, answer) = rpc(
        "record_email_outcomes",
        json!({"outcomes": [], "worker": "w1", "handed": [all[1]]}),
    )
    .await;
    assert_eq!(answer["handed"], json!([]), "{answer}");
    // The handed one comes back only with resend_unknown.
    let (_, none) = claim("w3", false).await;
    assert_eq!(ids(&none), Vec::<String>::new());
    let (_, again) = claim("w4", true).await;
    assert_eq!(ids(&again), vec![all[0].clone()], "{again}");
    assert_eq!(
        again[0]["attempts"], 2,
        "a re-send is one more attempt: {again}"
    );
    let (_, answer) = rpc(
        "record_email_outcomes",
        json!({"outcomes": [], "worker": "w4", "handed": [all[0]]}),
    )
    .await;
    assert_eq!(answer["handed"], json!([all[0]]), "{answer}");
    expire().await;
    // An outcome other than sent or failed cannot settle it.
    let (status, refused) = rpc(
        "settle_unknown_emails",
        json!({"campaign": campaign, "outcome": "bounced"}),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["code"], "22023", "{refused}");
    let (status, settled) = rpc(
        "settle_unknown_emails",
        json!({"campaign": campaign, "outcome": "sent"}),
    )
    .await;
    assert_eq!((status, settled.clone()), (200, json!(1)), "{settled}");
    let (_, u) = unknown().await;
    assert_eq!(u["count"], 0, "{u}");
    // (w2's email, never handed, lost its lease too: it is the only one.)
    let (_, resent) = claim("w3", true).await;
    assert_eq!(
        ids(&resent),
        vec![all[1].clone()],
        "a settled email stays settled"
    );
}

/// A claim with `hand` is its own hand-off: the emails are unknown once the
/// lease ends. `release_worker_emails` gives back what a dead worker still
/// holds but the emails it had started (its journal's word), as if never
/// claimed; it touches neither another worker's emails nor another user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handing_claim_is_the_hand_off_and_a_dead_workers_unstarted_emails_come_back() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let other = new_user(&stack).await;
    let campaign = common::insert_campaign(&user, "Hand on claim", "sending").await;
    common::admin()
        .await
        .execute(
            "insert into public.emails_sent (user_id, campaign_id, recipient_email, status)
             select $1, $2, 'r' || g || '@example.test', 'pending' from generate_series(1, 5) g",
            &[&user.id, &campaign],
        )
        .await
        .unwrap();
    let rpc = |token: String, function: &'static str, body: Value| {
        let stack = &stack;
        async move {
            let (status, body) = rpc_as(stack, &token, function, body).await;
            assert_eq!(status, 200, "{function}: {body}");
            body
        }
    };
    let claim = |worker: &'static str, max: u32| {
        rpc(
            user.token.clone(),
            "claim_emails",
            json!({"campaign": campaign, "max_emails": max, "worker": worker, "hand": true}),
        )
    };
    let ids = claimed_ids;
    let rows = || async {
        common::admin()
            .await
            .query(
                "select id::text, status, lease_owner, handed_at is not null, attempts
                   from public.emails_sent where campaign_id = $1 order by id",
                &[&campaign],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let row: (String, String, Option<String>, bool, i32) =
                    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
                row
            })
            .collect::<Vec<_>>()
    };

    let dead = ids(&claim("dead", 4).await);
    assert_eq!(dead.len(), 4);
    let live = ids(&claim("live", 4).await);
    assert_eq!(live.len(), 1, "the fifth, for another worker");
    // Claimed and handed by one row per claim: the emails themselves are
    // not written until their outcome.
    for (id, status, owner, handed, attempts) in rows().await {
        assert_eq!(
            (status.as_str(), owner, handed, attempts),
            ("pending", None, false, 0),
            "{id}"
        );
    }
    let claims = || async {
        common::admin()
            .await
            .query(
                "select worker, email_ids::text[] from public.email_claims
                  where campaign_id = $1 order by worker",
                &[&campaign],
            )
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let mut held: Vec<String> = r.get(1);
                held.sort();
                (r.get::<_, String>(0), held)
            })
            .collect::<Vec<_>>()
    };
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    assert_eq!(
        claims().await,
        vec![
            ("dead".into(), sorted(&dead)),
            ("live".into(), sorted(&live))
        ]
    );
    // Handed: unknown once the lease ends, not claimable again as pending.
    common::admin()
        .await
        .execute(
            "with claims as (
               update public.email_claims set lease_expires_at = now() - interval '1 second'
                where campaign_id = $1 and worker = 'dead')
             update public.emails_sent set lease_expires_at = now() - interval '1 second'
              where campaign_id = $1 and lease_owner = 'dead'",
            &[&campaign],
        )
        .await
        .unwrap();
    let unknown = rpc(
        user.token.clone(),
        "unknown_emails",
        json!({"campaign": campaign}),
    )
    .await;
    assert_eq!(unknown["count"], 4, "{unknown}");
    assert_eq!(ids(&claim("third", 10).await), Vec::<String>::new());

    // Another user cannot release them, whatever the worker's name.
    let none = rpc(
        other.token.clone(),
        "release_worker_emails",
        json!({"worker": "dead", "started": []}),
    )
    .await;
    assert_eq!(none, json!(0));
    // The dead worker's journal says it had started the first one.
    let released = rpc(
        user.token.clone(),
        "release_worker_emails",
        json!({"worker": "dead", "started": [dead[0]]}),
    )
    .await;
    assert_eq!(released, json!(3));
    for (id, status, owner, handed, attempts) in rows().await {
        if live.contains(&id) {
            assert_eq!(
                (status.as_str(), owner.as_deref()),
                ("pending", None),
                "still held by the live worker's claim"
            );
        } else if id == dead[0] {
            assert_eq!(
                (status.as_str(), handed),
                ("sending", true),
                "started: unknown"
            );
        } else {
            assert_eq!(
                (status.as_str(), owner, handed, attempts),
                ("pending", None, false, 0),
                "given back as if never claimed: {id}"
            );
        }
    }
    let unknown = rpc(
        user.token.clone(),
        "unknown_emails",
        json!({"campaign": campaign}),
    )
    .await;
    assert_eq!(unknown["count"], 1, "{unknown}");
    assert_eq!(
        ids(&claim("third", 10).await),
        dead[1..].to_vec(),
        "the released ones, claimable at once"
    );
    assert_eq!(claims().await.len(), 2, "the live worker's and the third's");
}

/// The usual case of a crash on one machine: the dead worker's journal is
/// replayed before its claim's lease has ended. The emails it had started
/// keep the claim's lease and become unknown when it ends; the others are
/// claimable at once; its claim is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_claim_released_before_its_lease_ends_keeps_only_the_started() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let campaign = common::insert_campaign(&user, "Release early", "sending").await;
    common::admin()
        .await
        .execute(
            "insert into public.emails_sent (user_id, campaign_id, recipient_email, status)
             select $1, $2, 'r' || g || '@example.test', 'pending' from generate_series(1, 3) g",
            &[&user.id, &campaign],
        )
        .await
        .unwrap();
    let rpc = |function: &'static str, body: Value| {
        let (stack, token) = (&stack, user.token.clone());
        async move {
            let (status, body) = rpc_as(stack, &token, function, body).await;
            assert_eq!(status, 200, "{function}: {body}");
            body
        }
    };
    let dead = claimed_ids(
        &rpc(
            "claim_emails",
            json!({"campaign": campaign, "max_emails": 3, "worker": "dead", "hand": true,
                   "lease_seconds": 60, "message_id_domain": "example.test"}),
        )
        .await,
    );
    assert_eq!(dead.len(), 3);
    let released = rpc(
        "release_worker_emails",
        json!({"worker": "dead", "started": [dead[0]]}),
    )
    .await;
    assert_eq!(released, json!(2));
    let row = common::admin()
        .await
        .query_one(
            "select status, lease_owner, handed_at is not null, lease_expires_at > now() + interval '50 seconds',
                    attempts, message_id
               from public.emails_sent where id = $1::text::uuid",
            &[&dead[0]],
        )
        .await
        .unwrap();
    let started: (String, Option<String>, bool, bool, i32, Option<String>) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    assert_eq!(
        started,
        (
            "sending".into(),
            Some("dead".into()),
            true,
            true,
            1,
            Some(format!("<{}@example.test>", dead[0]))
        ),
        "the started one keeps the claim's lease and Message-ID"
    );
    let unknown = rpc("unknown_emails", json!({"campaign": campaign})).await;
    assert_eq!(unknown["count"], 0, "not before its lease ends: {unknown}");
    let mut again = claimed_ids(
        &rpc(
            "claim_emails",
            json!({"campaign": campaign, "max_emails": 10, "worker": "next", "hand": true}),
        )
        .await,
    );
    again.sort();
    let mut rest = dead[1..].to_vec();
    rest.sort();
    assert_eq!(again, rest, "the unstarted ones, claimable at once");
    let left: i64 = common::admin()
        .await
        .query_one(
            "select count(*) from public.email_claims where campaign_id = $1 and worker = 'dead'",
            &[&campaign],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

/// `scripts/bench-crash` at a small size, so its checks run in CI: after
/// each crash and re-run, every email is `sent` but the unknown ones, the
/// re-run exits 5 while some remain, and the unknown ones stay within the
/// bounds (the connections with the journal, the hand-off window without).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_crash_checks_what_it_measures_at_a_small_size() {
    common::ready().await;
    let out = tokio::task::spawn_blocking(|| {
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-crash"))
            .args(["800", "1"])
            .env("MAILSYNC_BIN", common::BIN)
            .env("MAILSYNC_BENCH_CONNECTIONS", "4")
            .env("MAILSYNC_BENCH_KILL_AFTER", "0.8")
            .output()
            .expect("running scripts/bench-crash")
    })
    .await
    .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "exit {:?}\n{text}\n{err}", out.status);
    let median = text
        .lines()
        .find(|l| l.trim_start().starts_with("median"))
        .unwrap_or_else(|| panic!("no median line:\n{text}"));
    assert!(
        median.contains("(bound 4)") && median.contains("(bound 1024)"),
        "{text}"
    );
}
