//! The REST client's retries (src/supabase/rest.rs), through a gateway in
//! front of the local stack (tests/it/common/gateway.rs) that plays the
//! failures of a hosted project's gateway:
//! - 429, 502, 503 and 504 before the request reached the server are tried
//!   again, after `Retry-After` when given (seconds or an HTTP date), a
//!   bounded number of times; a wait longer than mailsync waits ends the
//!   command at once, saying how long;
//! - a write whose answer was lost after it was sent (the connection
//!   dropped, or a gateway 502/504 after the server committed) is repeated
//!   only when repeating it is harmless: `campaigns create` never creates two
//!   campaigns, a retried `campaigns send` reports what it queued, and any
//!   other write says it may have been applied instead of repeating it.

use crate::common;

use std::time::{Duration, Instant};

use common::gateway::{Fault, Gateway};
use common::{json_of, stderr, stdout, Stack, User};

async fn gateway(stack: &Stack) -> Gateway {
    Gateway::start(&stack.url, &stack.anon_key).await
}

/// The ways an answer is lost after the server committed a write: the
/// connection dropped, or a gateway 502 or 504.
fn lost_answers() -> impl Iterator<Item = (usize, Fault)> {
    [Fault::Drop, Fault::After(502), Fault::After(504)]
        .into_iter()
        .enumerate()
}

/// A new gateway failing the first request to `path` with `fault`.
async fn gateway_failing(stack: &Stack, path: &str, fault: &Fault) -> Gateway {
    let gw = gateway(stack).await;
    gw.fail(path, [fault.clone()]);
    gw
}

/// Runs mailsync through the gateway as `user`, from an empty directory.
async fn through(gateway: &Gateway, user: &User, args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command_for(&gateway.url, &common::stack().anon_key, dir.path());
    cmd.args(args).env("MAILSYNC_ACCESS_TOKEN", &user.token);
    common::output_off_runtime(cmd).await
}

/// `campaigns create --json` through the gateway.
async fn create_campaign_through(
    gateway: &Gateway,
    user: &User,
    name: &str,
) -> std::process::Output {
    let mut args = vec!["--json"];
    args.extend(common::create_args("campaigns", name));
    through(gateway, user, &args).await
}

async fn import_through(gateway: &Gateway, user: &User) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    std::fs::write(&file, "Acme,a@example.fr\nBeta,b@example.fr\n").unwrap();
    through(gateway, user, &["--json", "import", file.to_str().unwrap()]).await
}

async fn contacts(user: &User) -> i64 {
    common::scalar(
        "select count(*) from public.contacts where user_id = $1",
        &[&user.id],
    )
    .await
}

fn statuses(seen: &[common::gateway::Seen]) -> Vec<Option<u16>> {
    seen.iter().map(|s| s.answered).collect()
}

#[tokio::test]
async fn each_transient_status_is_retried_after_retry_after_and_the_import_completes() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let gw = gateway(&stack).await;
    gw.fail(
        "/rpc/import_contacts",
        [
            Fault::Before(429, Some("2".into())),
            Fault::Before(502, None),
            Fault::Before(503, None),
            Fault::Before(504, None),
        ],
    );
    let o = import_through(&gw, &user).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["contacts_created"], 2);
    assert_eq!(contacts(&user).await, 2);
    let seen = gw.seen("/rpc/import_contacts");
    assert_eq!(
        statuses(&seen),
        [Some(429), Some(502), Some(503), Some(504), Some(200)]
    );
    // `Retry-After: 2` is waited for (the first backoff is 250 ms).
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "the next try came {waited:?} after Retry-After: 2"
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured_and_a_long_one_ends_the_command() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let gw = gateway(&stack).await;
    // An HTTP date 3 s ahead (whole seconds: at least 2 s from now).
    let at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    gw.fail("/rpc/import_contacts", [Fault::Before(503, Some(date))]);
    let o = import_through(&gw, &user).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let seen = gw.seen("/rpc/import_contacts");
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(1500),
        "the next try came {waited:?} before the date"
    );

    // An hour: not waited for; the command ends now, saying so, with
    // nothing written.
    let other = common::new_user(&stack).await;
    let gw = gateway(&stack).await;
    gw.fail(
        "/rpc/import_contacts",
        [Fault::Before(429, Some("3600".into()))],
    );
    let started = Instant::now();
    let o = import_through(&gw, &other).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("3600 s"), "{}", stderr(&o));
    assert_eq!(gw.seen("/rpc/import_contacts").len(), 1, "one try");
    assert_eq!(contacts(&other).await, 0);
}

#[tokio::test]
async fn a_server_that_keeps_failing_ends_the_command_after_five_tries_with_nothing_written() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let gw = gateway(&stack).await;
    gw.fail("/rpc/import_contacts", vec![Fault::Before(503, None); 6]);
    let o = import_through(&gw, &user).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("503"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("<html"), "{}", stderr(&o));
    assert_eq!(gw.seen("/rpc/import_contacts").len(), 5, "five tries");
    assert_eq!(contacts(&user).await, 0);
    assert!(!stderr(&o).contains(&user.token));
}

/// `campaigns create` chooses the campaign's id and inserts it ignoring a
/// duplicate: when the answer of a committed insert is lost, the repeat
/// finds it, and there is one campaign.
#[tokio::test]
async fn campaigns_create_never_creates_two_campaigns_when_an_answer_is_lost() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    for (i, fault) in lost_answers() {
        let gw = gateway_failing(&stack, "/email_campaigns", &fault).await;
        let name = format!("Lost answer {i}");
        let o = create_campaign_through(&gw, &user, &name).await;
        assert!(o.status.success(), "{fault:?}: {}", stderr(&o));
        assert_eq!(json_of(&o)["name"], name.as_str());
        let posts: Vec<_> = gw
            .seen("/email_campaigns")
            .into_iter()
            .filter(|s| s.method == "POST")
            .collect();
        assert_eq!(posts.len(), 2, "{fault:?}: tried again: {posts:?}");
        assert!(posts.iter().all(|p| p.forwarded), "{posts:?}");
        let n: i64 = common::scalar(
            "select count(*) from public.email_campaigns where user_id = $1 and name = $2",
            &[&user.id, &name],
        )
        .await;
        assert_eq!(n, 1, "{fault:?}: one campaign");
    }
}

/// `campaigns send` whose first page's answer is lost: the page is asked
/// again, and the report says this run queued every email.
#[tokio::test]
async fn a_retried_send_reports_what_it_queued() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let db = common::admin().await;
    db.execute(
        "insert into public.contacts (user_id, email) select $1, 'r' || g || '@example.fr' from generate_series(1, 3) g",
        &[&user.id],
    )
    .await
    .unwrap();
    for (i, fault) in [Fault::Drop, Fault::After(502)].into_iter().enumerate() {
        let gw = gateway(&stack).await;
        let made = create_campaign_through(&gw, &user, &format!("Send {i}")).await;
        assert!(made.status.success(), "{}", stderr(&made));
        let id = json_of(&made)["id"].as_str().unwrap().to_string();
        gw.fail("/rpc/queue_campaign_page", [fault.clone()]);
        let json = through(&gw, &user, &["--json", "campaigns", "send", &id, "--yes"]).await;
        assert!(json.status.success(), "{fault:?}: {}", stderr(&json));
        let r = json_of(&json);
        assert_eq!(r["queued"], 3, "{r}");
        assert_eq!(r["queued_now"], 3, "{fault:?}: this run queued them: {r}");
        assert_eq!(r["resumed"], false, "{r}");
        let pages = gw.seen("/rpc/queue_campaign_page");
        assert!(pages.len() >= 2 && pages[0].forwarded, "{pages:?}");
        assert_eq!(pages[0].answered, if i == 0 { None } else { Some(502) });
        let emails: i64 = common::scalar(
            "select count(*) from public.emails_sent where campaign_id = $1::text::uuid",
            &[&id],
        )
        .await;
        assert_eq!(emails, 3, "each contact once");
    }

    // The same, as a person reads it.
    let gw = gateway(&stack).await;
    let made = create_campaign_through(&gw, &user, "Send human").await;
    let id = json_of(&made)["id"].as_str().unwrap().to_string();
    gw.fail("/rpc/queue_campaign_page", [Fault::Drop]);
    let human = through(&gw, &user, &["campaigns", "send", &id, "--yes"]).await;
    assert!(human.status.success(), "{}", stderr(&human));
    let text = stdout(&human);
    assert!(text.contains("3 emails queued"), "{text}");
    assert!(
        !text.contains("already") && !text.contains("nothing"),
        "{text}"
    );
}

/// Any other write whose answer is lost is not repeated: the command says
/// it may have been applied (exit 3). A 429 or 503 before the server ran
/// it is repeated.
#[tokio::test]
async fn a_write_that_may_have_committed_is_not_repeated() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let templates = |name: &str| {
        let name = name.to_string();
        let id = user.id;
        async move {
            common::scalar::<i64>(
                "select count(*) from public.email_templates where user_id = $1 and name = $2",
                &[&id, &name],
            )
            .await
        }
    };
    for (i, fault) in lost_answers() {
        let gw = gateway_failing(&stack, "/email_templates", &fault).await;
        let name = format!("Lost {i}");
        let o = through(&gw, &user, &common::create_args("templates", &name)).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{fault:?}: {err}");
        assert!(err.contains("may or may not have been applied"), "{err}");
        assert!(!err.contains("<html"), "{err}");
        let posts = gw.seen("/email_templates");
        assert_eq!(posts.len(), 1, "{fault:?}: not repeated: {posts:?}");
        assert_eq!(templates(&name).await, 1, "it had committed");
    }
    for status in [429, 503] {
        let gw = gateway(&stack).await;
        gw.fail(
            "/email_templates",
            [Fault::Before(status, Some("1".into()))],
        );
        let name = format!("Refused {status}");
        let o = through(&gw, &user, &common::create_args("templates", &name)).await;
        assert!(o.status.success(), "{status}: {}", stderr(&o));
        assert_eq!(
            statuses(&gw.seen("/email_templates")),
            [Some(status), Some(201)]
        );
        assert_eq!(templates(&name).await, 1);
    }
}

/// PostgreSQL rolls a request back when it deadlocks, here with a schema
/// change (as `db apply` makes) that holds the delivery claims and asks for
/// the campaigns while `deliver` looks for unknown outcomes. Nothing of the
/// request was applied: it is run again and the command does not fail.
#[tokio::test]
async fn a_request_rolled_back_by_a_deadlock_is_run_again() {
    use common::deliver::{emails, numbered_addresses, queued_campaign};
    use common::smtp_server::{Action, ScriptedSmtp};

    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let to = numbered_addresses(&user, "deadlock", 2);
    let campaign = queued_campaign(&stack, &user, &to).await;
    let smtp = ScriptedSmtp::start(|_, _, _| Action::Accept, Duration::ZERO).await;
    let gw = gateway(&stack).await;
    gw.fail("/rpc/unknown_emails", []);

    let held = common::admin().await;
    held.batch_execute(
        "begin; set local deadlock_timeout = '30s';
         lock table public.email_claims in access exclusive mode",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command_for(&gw.url, &stack.anon_key, dir.path());
    cmd.args(["--json", "campaigns", "deliver", &campaign, "--rate", "0"])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .env("MAILSYNC_SMTP_URL", smtp.url());
    let run = tokio::spawn(common::output_off_runtime(cmd));
    common::deadlock_the_waiter(
        &held,
        "public.email_claims",
        "%unknown_emails%",
        "lock table public.email_campaigns in access exclusive mode",
    )
    .await;
    let o = run.await.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // The look before claiming, rolled back and run again; the look at the
    // end.
    let seen = statuses(&gw.seen("/rpc/unknown_emails"));
    assert_eq!(seen, [Some(500), Some(200), Some(200)]);
    let stored = emails(&campaign).await;
    assert_eq!(common::deliver::count(&stored, "sent"), 2, "{stored:?}");
    assert_eq!(smtp.accepted().len(), 2, "each email once");
}
