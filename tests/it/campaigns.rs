//! The campaign workflow and `campaigns watch` (polling) against the local
//! stack, through the real binary and the REST API with real JWTs.

use crate::common;

use std::time::{Duration, Instant};

use common::{insert_as, json_of, new_user, rest, run_as, stderr, stdout, Stack, User};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// Contacts for `user`: `n` in Acme SARL, `m` in Beta.
async fn contacts(stack: &Stack, user: &User, n: usize, m: usize) {
    let rows: Vec<Value> = (0..n + m)
        .map(|i| {
            json!({"email": format!("p{i}@example.fr"),
                   "organization_name": if i < n { "Acme SARL" } else { "Beta" }})
        })
        .collect();
    insert_as(stack, user, "contacts", json!(rows)).await;
}

fn create(stack: &Stack, user: &User, name: &str) -> String {
    let mut args = vec!["--json"];
    args.extend(common::create_args("campaigns", name));
    let o = run_as(stack, user, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let row = json_of(&o);
    assert_eq!(row["status"], "draft");
    row["id"].as_str().unwrap().to_string()
}

/// `campaigns send --json ID --organization ORGANIZATION --yes`.
fn send_json(stack: &Stack, user: &User, id: &str, organization: &str) -> std::process::Output {
    run_as(
        stack,
        user,
        &[
            "--json",
            "campaigns",
            "send",
            id,
            "--organization",
            organization,
            "--yes",
        ],
    )
}

async fn campaign_row(id: &str) -> (String, bool, bool) {
    let row = common::admin()
        .await
        .query_one(
            "select status, started_at is not null, completed_at is not null from public.email_campaigns where id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

async fn email_statuses(id: &str) -> Vec<(String, String, Option<String>)> {
    common::admin()
        .await
        .query(
            "select status, recipient_email, recipient_organization from public.emails_sent
             where campaign_id = $1::text::uuid order by recipient_email",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// Moves the emails of a campaign to `status`, as the user through REST.
async fn settle(stack: &Stack, user: &User, campaign: &str, filter: &str, status: &str) {
    let path = format!("emails_sent?campaign_id=eq.{campaign}{filter}");
    let (code, body) = rest(
        stack,
        Method::PATCH,
        &path,
        Some(&user.token),
        Some(json!({"status": status})),
        None,
    )
    .await;
    assert!(code == 204 || code == 200, "{code} {body}");
}

#[tokio::test]
async fn create_send_refuse_a_second_send_and_finish_by_itself() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 3, 2).await;
    let id = create(&stack, &user, "Novembre");

    let sent = run_as(
        &stack,
        &user,
        &["--json", "campaigns", "send", "Novembre", "--yes"],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert_eq!(json_of(&sent)["queued"], 5);
    let emails = email_statuses(&id).await;
    assert_eq!(emails.len(), 5);
    assert!(emails.iter().all(|(s, _, _)| s == "pending"));
    assert_eq!(emails[0].1, "p0@example.fr");
    assert_eq!(emails[0].2.as_deref(), Some("Acme SARL"));
    assert_eq!(campaign_row(&id).await, ("sending".into(), true, false));

    // Sending again (a retry whose answer was lost, or a second run) queues
    // nothing more and says what was queued.
    let again = run_as(
        &stack,
        &user,
        &["--json", "campaigns", "send", &id, "--yes"],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(json_of(&again)["queued"], 5);
    assert_eq!(json_of(&again)["queued_now"], 0);
    let plain = run_as(&stack, &user, &["campaigns", "send", &id, "--yes"]);
    assert!(
        stdout(&plain).contains("already queued: 5 emails")
            && !stderr(&plain).contains("nothing was queued"),
        "{}{}",
        stdout(&plain),
        stderr(&plain)
    );
    assert_eq!(
        email_statuses(&id).await.len(),
        5,
        "a refused send creates nothing"
    );

    settle(
        &stack,
        &user,
        &id,
        "&recipient_email=in.(p0@example.fr,p1@example.fr)",
        "delivered",
    )
    .await;
    assert_eq!(campaign_row(&id).await.0, "sending");
    settle(&stack, &user, &id, "&status=eq.pending", "bounced").await;
    assert_eq!(
        campaign_row(&id).await,
        ("sent".into(), true, true),
        "Campagne terminée"
    );

    let listed = json_of(&run_as(&stack, &user, &["--json", "campaigns", "list"]));
    assert_eq!(listed[0]["campaign_status"], "sent");
    assert_eq!(listed[0]["total_emails"], 5);
}

#[tokio::test]
async fn send_can_target_one_organisation_and_refuses_unknown_ones() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 3, 2).await;
    let id = create(&stack, &user, "Beta only");
    let unknown = run_as(
        &stack,
        &user,
        &["campaigns", "send", &id, "--organization", "Gamma", "--yes"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no organisation named"),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(campaign_row(&id).await.0, "draft");

    let o = send_json(&stack, &user, &id, "  beta ");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["queued"], 2);
    assert!(email_statuses(&id)
        .await
        .iter()
        .all(|(_, _, org)| org.as_deref() == Some("Beta")));
}

#[tokio::test]
async fn send_asks_first_and_names_must_be_unambiguous() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 1, 0).await;
    let id = create(&stack, &user, "Twice");
    let refused = run_as(&stack, &user, &["campaigns", "send", &id]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(stderr(&refused).contains("--yes"), "{}", stderr(&refused));
    assert_eq!(campaign_row(&id).await.0, "draft");

    let other = create(&stack, &user, "Twice");
    let ambiguous = run_as(&stack, &user, &["campaigns", "send", "Twice", "--yes"]);
    assert_eq!(ambiguous.status.code(), Some(2));
    let err = stderr(&ambiguous);
    assert!(err.contains(&id[..8]) && err.contains(&other[..8]), "{err}");

    let empty_user = new_user(&stack).await;
    let lonely = create(&stack, &empty_user, "Nobody");
    let none = run_as(
        &stack,
        &empty_user,
        &["campaigns", "send", &lonely, "--yes"],
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no recipients"), "{}", stderr(&none));
    assert_eq!(campaign_row(&lonely).await.0, "draft");
}

#[tokio::test]
async fn templates_feed_campaigns() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let t = run_as(
        &stack,
        &user,
        &[
            "templates",
            "create",
            "--name",
            "relance",
            "--subject",
            "Rappel",
            "--content",
            "Bonjour",
        ],
    );
    assert!(t.status.success(), "{}", stderr(&t));
    let listed = json_of(&run_as(&stack, &user, &["--json", "templates", "list"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let o = run_as(
        &stack,
        &user,
        &[
            "--json",
            "campaigns",
            "create",
            "--name",
            "R",
            "--template",
            "relance",
        ],
    );
    let row = json_of(&o);
    assert_eq!(
        (row["subject"].as_str(), row["content"].as_str()),
        (Some("Rappel"), Some("Bonjour"))
    );
    let missing = run_as(
        &stack,
        &user,
        &["campaigns", "create", "--name", "R", "--template", "nope"],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        "error: no template named \"nope\"\nhint: mailsync templates list shows yours\n"
    );
}

#[tokio::test]
async fn watch_once_json_shows_exactly_the_users_campaigns_with_their_counts() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 10, 0).await;
    let live = create(&stack, &user, "Live");
    let done = create(&stack, &user, "Done");
    let _draft = create(&stack, &user, "Draft");
    for id in [&live, &done] {
        assert!(run_as(&stack, &user, &["campaigns", "send", id, "--yes"])
            .status
            .success());
    }
    // Live: 2 pending, 1 sending, 3 sent, 2 delivered, 1 failed, 1 bounced.
    for (emails, status) in [
        ("p2,p3,p4", "sending"),
        ("p3,p4,p5", "sent"),
        ("p6,p7", "delivered"),
        ("p8", "failed"),
        ("p9", "bounced"),
    ] {
        let list = emails
            .split(',')
            .map(|e| format!("{e}@example.fr"))
            .collect::<Vec<_>>()
            .join(",");
        settle(
            &stack,
            &user,
            &live,
            &format!("&recipient_email=in.({list})"),
            status,
        )
        .await;
    }
    settle(&stack, &user, &done, "", "delivered").await;

    let o = run_as(
        &stack,
        &user,
        &["--json", "campaigns", "watch", "--once", "--mode", "poll"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let snap = json_of(&o);
    let sending = snap["sending"].as_array().unwrap();
    let sent = snap["sent"].as_array().unwrap();
    assert_eq!(sending.len(), 1);
    assert_eq!(sent.len(), 1);
    let c = &sending[0];
    assert_eq!(c["campaign_id"], live.as_str());
    let counts: Vec<i64> = [
        "total_emails",
        "pending_count",
        "sending_count",
        "sent_count",
        "delivered_count",
        "failed_count",
        "bounced_count",
    ]
    .iter()
    .map(|k| c[*k].as_i64().unwrap())
    .collect();
    assert_eq!(counts, [10, 2, 1, 3, 2, 1, 1]);
    assert_eq!(c["success_rate"].as_f64(), Some(50.0));
    assert_eq!(c["progress"].as_f64(), Some(70.0));
    assert_eq!(sent[0]["campaign_id"], done.as_str());
    assert_eq!(sent[0]["success_rate"].as_f64(), Some(100.0));
    assert_eq!(snap["dashboard"]["active_campaigns"], 1);
    assert_eq!(snap["dashboard"]["total_contacts"], 10);
    // `mailsync dashboard` prints the same row.
    let dashboard = json_of(&run_as(&stack, &user, &["--json", "dashboard"]));
    assert_eq!(dashboard, snap["dashboard"]);

    let stranger = new_user(&stack).await;
    let theirs = json_of(&run_as(
        &stack,
        &stranger,
        &["--json", "campaigns", "watch", "--once", "--mode", "poll"],
    ));
    assert_eq!(theirs["sending"], json!([]));
    assert_eq!(theirs["sent"], json!([]));
    assert_eq!(theirs["dashboard"]["total_contacts"], 0);

    let text = run_as(
        &stack,
        &user,
        &["campaigns", "watch", "--once", "--mode", "poll"],
    );
    let screen = stdout(&text);
    assert!(
        screen.contains("Sending in progress (1)") && screen.contains("Completed campaigns (1)"),
        "{screen}"
    );
    // "sent" = left the sender: 3 sent + 2 delivered + 1 bounced.
    assert!(screen.contains("6 sent of 10"), "{screen}");

    // The same screen in French, asked for with --lang or by the locale.
    let args = ["campaigns", "watch", "--once", "--mode", "poll"];
    let flag = run_as(&stack, &user, &[&["--lang", "fr"][..], &args].concat());
    let french = stdout(&flag);
    assert!(
        french.contains("Envoi en progression (1)") && french.contains("Campagne terminée (1)"),
        "{french}"
    );
    assert!(french.contains("6 envoyés sur 10"), "{french}");
    let dir = tempfile::tempdir().unwrap();
    let by_locale = common::command(&stack, dir.path())
        .args(args)
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .env_remove("MAILSYNC_LANG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "fr_FR.UTF-8")
        .output()
        .unwrap();
    assert_eq!(stdout(&by_locale), french);
    // --lang en wins over a French locale; --json stays the same document.
    let forced = common::command(&stack, dir.path())
        .args(["--lang", "en"])
        .args(args)
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .env("LC_ALL", "fr_FR.UTF-8")
        .env_remove("MAILSYNC_LANG")
        .output()
        .unwrap();
    assert_eq!(stdout(&forced), screen);
    let json_fr = json_of(&run_as(
        &stack,
        &user,
        &[
            "--lang",
            "fr",
            "--json",
            "campaigns",
            "watch",
            "--once",
            "--mode",
            "poll",
        ],
    ));
    assert_eq!(json_fr["sending"][0]["sent_count"], 3);
    assert_eq!(json_fr["dashboard"], snap["dashboard"]);
}

#[tokio::test]
async fn watch_until_done_returns_once_the_last_email_settles() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 4, 0).await;
    let id = create(&stack, &user, "Until done");
    assert!(run_as(&stack, &user, &["campaigns", "send", &id, "--yes"])
        .status
        .success());

    let dir = tempfile::tempdir().unwrap();
    let mut child = common::command(&stack, dir.path())
        .args([
            "--json",
            "campaigns",
            "watch",
            "--until-done",
            "--mode",
            "auto",
            "--interval",
            "0.5",
            "-v",
        ])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Each refresh is one JSON line; read them as they come.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut err, &mut text).unwrap();
        text
    });
    let mut lines: Vec<Value> = Vec::new();
    let started = Instant::now();
    // Two refreshes that showed the campaign sending: the watch saw pending
    // emails and went on watching rather than returning.
    while lines
        .iter()
        .filter(|l| l["sending"].to_string().contains(&id))
        .count()
        < 2
    {
        let left = Duration::from_secs(15).saturating_sub(started.elapsed());
        match lines_rx.recv_timeout(left) {
            Ok(line) => lines.push(serde_json::from_str(&line).unwrap()),
            Err(e) => panic!("no two refreshes showing the campaign sending ({e}): {lines:?}"),
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "still watching while emails are pending"
    );
    settle(&stack, &user, &id, "", "delivered").await;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "watch --until-done did not return"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    reader.join().unwrap();
    lines.extend(
        lines_rx
            .try_iter()
            .map(|l| serde_json::from_str(&l).unwrap()),
    );
    let err = err_reader.join().unwrap();
    assert!(status.success());
    assert!(
        err.contains("Realtime is not available"),
        "auto falls back to polling and says so: {err}"
    );
    assert!(lines.len() >= 2, "one JSON object per refresh");
    assert_eq!(lines.last().unwrap()["sending"], json!([]));
    assert_eq!(lines.last().unwrap()["sent"][0]["campaign_id"], id.as_str());
}

#[tokio::test]
async fn realtime_mode_fails_clearly_where_there_is_no_realtime() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let o = run_as(
        &stack,
        &user,
        &["campaigns", "watch", "--mode", "realtime", "--until-done"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("Realtime at") && err.contains("404"), "{err}");
    assert!(
        !err.contains(&stack.anon_key),
        "the key stays out of messages"
    );
    let bad = run_as(&stack, &user, &["campaigns", "watch", "--interval", "0.1"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// Many transactions settling the last emails of one campaign at the same
/// moment: the campaign must end `sent` every time.
#[tokio::test]
async fn concurrent_writers_settling_the_last_emails_always_finish_the_campaign() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 160, 0).await;
    for round in 0..5 {
        let id = create(&stack, &user, &format!("Race {round}"));
        assert!(run_as(&stack, &user, &["campaigns", "send", &id, "--yes"])
            .status
            .success());
        let ids: Vec<Uuid> = common::column(
            "select id from public.emails_sent where campaign_id = $1::text::uuid",
            &[&id],
        )
        .await;
        let chunks: Vec<Vec<Uuid>> = ids.chunks(20).map(|c| c.to_vec()).collect();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(chunks.len()));
        let mut tasks = Vec::new();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let (user, barrier) = (user.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let mut db = common::admin().await;
                let tx = common::begin_as(&mut db, &user).await;
                let status = if i % 3 == 0 { "failed" } else { "delivered" };
                // Half the writers settle in two statements.
                let (first, rest) = chunk.split_at(if i % 2 == 0 {
                    chunk.len()
                } else {
                    chunk.len() / 2
                });
                barrier.wait().await;
                for part in [first, rest] {
                    if !part.is_empty() {
                        tx.execute(
                            "update public.emails_sent set status = $1 where id = any($2)",
                            &[&status, &part.to_vec()],
                        )
                        .await
                        .unwrap();
                    }
                }
                tx.commit().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (status, _, completed) = campaign_row(&id).await;
        assert_eq!(
            (status.as_str(), completed),
            ("sent", true),
            "round {round}"
        );
    }
}

/// A campaign queued to every contact of `user`, and its emails' ids in order.
async fn queued(stack: &Stack, user: &User, name: &str) -> (String, Vec<Uuid>) {
    let id = create(stack, user, name);
    assert!(run_as(stack, user, &["campaigns", "send", &id, "--yes"])
        .status
        .success());
    let ids = common::column(
        "select id from public.emails_sent where campaign_id = $1::text::uuid order by id",
        &[&id],
    )
    .await;
    (id, ids)
}

/// The campaign is checked once per transaction, at commit, whatever the
/// transaction did before: an email settled in a savepoint rolled back
/// (its check goes with it), then the rest settled in another statement;
/// and a transaction that settles some but not all, then the last.
#[tokio::test]
async fn one_check_per_transaction_finishes_the_campaign_after_a_rolled_back_savepoint() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 6, 0).await;
    let (id, ids) = queued(&stack, &user, "Savepoint").await;
    assert_eq!(ids.len(), 6);
    let mut db = common::admin().await;
    let settle = "update public.emails_sent set status = 'delivered' where id = any($1)";
    // Half settled, then the savepoint undone: nothing settled, not finished.
    let tx = common::begin_as(&mut db, &user).await;
    tx.batch_execute("savepoint s").await.unwrap();
    tx.execute(settle, &[&ids[..3].to_vec()]).await.unwrap();
    tx.batch_execute("rollback to savepoint s").await.unwrap();
    tx.execute(settle, &[&ids[3..].to_vec()]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(campaign_row(&id).await.0, "sending", "3 emails left");
    // The rest in one transaction, over two statements, the first of which
    // leaves emails unsettled: finished at commit.
    let tx = common::begin_as(&mut db, &user).await;
    tx.execute(settle, &[&ids[..1].to_vec()]).await.unwrap();
    tx.execute(settle, &[&ids[1..3].to_vec()]).await.unwrap();
    tx.commit().await.unwrap();
    let (status, _, completed) = campaign_row(&id).await;
    assert_eq!((status.as_str(), completed), ("sent", true));

    // And with the savepoint undone after the first email of a campaign:
    // the emails settled after it still finish the campaign.
    let (id, ids) = queued(&stack, &user, "Savepoint again").await;
    let tx = common::begin_as(&mut db, &user).await;
    tx.execute(settle, &[&ids[..1].to_vec()]).await.unwrap();
    tx.batch_execute("savepoint s").await.unwrap();
    tx.execute(settle, &[&ids[1..].to_vec()]).await.unwrap();
    tx.batch_execute("rollback to savepoint s").await.unwrap();
    tx.execute(settle, &[&ids[1..].to_vec()]).await.unwrap();
    tx.commit().await.unwrap();
    let (status, _, completed) = campaign_row(&id).await;
    assert_eq!((status.as_str(), completed), ("sent", true), "again");

    // The first email settled in a savepoint undone, then all of them: the
    // check undone with the savepoint is taken again.
    let (id, ids) = queued(&stack, &user, "Savepoint undone first").await;
    let tx = common::begin_as(&mut db, &user).await;
    tx.batch_execute("savepoint s").await.unwrap();
    tx.execute(settle, &[&ids[..1].to_vec()]).await.unwrap();
    tx.batch_execute("rollback to savepoint s").await.unwrap();
    tx.execute(settle, &[&ids]).await.unwrap();
    tx.commit().await.unwrap();
    let (status, _, completed) = campaign_row(&id).await;
    assert_eq!((status.as_str(), completed), ("sent", true), "undone first");
}

#[tokio::test]
async fn send_on_a_terminal_shows_the_recipients_and_defaults_to_no() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 3, 4).await;
    let id = create(&stack, &user, "Asked");
    let on_terminal = |answer: &str, extra: &[&str]| {
        let mut args = vec!["campaigns", "send", id.as_str()];
        args.extend_from_slice(extra);
        common::on_terminal(
            &stack,
            &args,
            &[("MAILSYNC_ACCESS_TOKEN", &user.token)],
            answer,
            "[y/N]",
        )
    };
    let declined = on_terminal("\n", &["--organization", "beta"]);
    let screen = String::from_utf8_lossy(&declined.stdout).to_string();
    assert!(
        screen.contains("to 4 recipients") && screen.contains("[y/N]"),
        "{screen}"
    );
    assert!(screen.contains("nothing changed"), "{screen}");
    assert!(
        declined.status.success(),
        "declining is not an error: {screen}"
    );
    assert_eq!(campaign_row(&id).await.0, "draft");
    let accepted = on_terminal("y\n", &[]);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stdout)
    );
    assert_eq!(email_statuses(&id).await.len(), 7);
}

#[tokio::test]
async fn campaigns_are_named_by_short_id_prefix_or_unique_name() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    contacts(&stack, &user, 1, 1).await;
    let first = create(&stack, &user, "Twin");
    let second = create(&stack, &user, "Twin");
    let list = run_as(&stack, &user, &["campaigns", "list"]);
    let table = stdout(&list);
    assert!(
        table.contains(&first[..8]) && table.contains(&second[..8]),
        "{table}"
    );

    let ambiguous = run_as(&stack, &user, &["campaigns", "send", "Twin", "--yes"]);
    let err = stderr(&ambiguous);
    assert_eq!(ambiguous.status.code(), Some(2), "{err}");
    assert!(err.contains("2 campaigns match \"Twin\""), "{err}");
    assert!(
        err.contains(&first[..8]) && err.contains(&second[..8]),
        "{err}"
    );
    assert_eq!(email_statuses(&first).await.len(), 0);

    let by_prefix = run_as(&stack, &user, &["campaigns", "send", &second[..8], "--yes"]);
    assert!(by_prefix.status.success(), "{}", stderr(&by_prefix));
    assert_eq!(email_statuses(&second).await.len(), 2);
    assert_eq!(email_statuses(&first).await.len(), 0);

    let missing = run_as(&stack, &user, &["campaigns", "send", "Nope", "--yes"]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("campaigns list"));
}

/// The count the `send` prompt shows is what is then queued, whatever the
/// spelling: case, accents, runs of white space, and `_` and `%` (plain
/// characters, never patterns), with an unsubscribed contact left out of
/// both.
#[tokio::test]
async fn the_prompt_counts_what_is_queued_for_tricky_organisation_names() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let people = [
        ("a@ecole.test", "École  Saint_Jean"),
        ("b@ecole.test", "ÉCOLE SAINT_JEAN"),
        ("c@ecole.test", "\técole saint_jean "),
        ("d@ecole.test", "école saint_jean"),
        ("e@decoy.test", "Ecole Saint_Jean"),
        ("f@decoy.test", "École SaintXJean"),
        ("g@remise.test", "Remise 50%"),
        ("h@remise.test", "remise  50%"),
        ("i@decoy.test", "Remise 500"),
        ("j@decoy.test", "Remise 50"),
    ];
    let rows: Vec<Value> = people
        .iter()
        .map(|(email, org)| json!({"email": email, "organization_name": org}))
        .collect();
    insert_as(&stack, &user, "contacts", json!(rows)).await;
    let unsubscribed = json!({"email": "d@ecole.test", "reason": "unsubscribed"});
    insert_as(&stack, &user, "suppressions", unsubscribed).await;

    for (typed, expected) in [
        ("école   SAINT_JEAN", 3),
        (" Ecole Saint_Jean", 1),
        ("REMISE 50%", 2),
        ("remise 50", 1),
    ] {
        let id = create(&stack, &user, &format!("To {typed}"));
        let asked = common::on_terminal(
            &stack,
            &["campaigns", "send", &id, "--organization", typed],
            &[("MAILSYNC_ACCESS_TOKEN", &user.token)],
            "\n",
            "[y/N]",
        );
        let screen = String::from_utf8_lossy(&asked.stdout).to_string();
        let shown: i64 = screen
            .split(" to ")
            .nth(1)
            .and_then(|rest| rest.split(" recipient").next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no count in the prompt for {typed:?}: {screen}"));
        let sent = send_json(&stack, &user, &id, typed);
        assert!(sent.status.success(), "{typed:?}: {}", stderr(&sent));
        let queued = json_of(&sent)["queued"].as_i64().unwrap();
        assert_eq!(
            (shown, queued),
            (expected, expected),
            "{typed:?}: the prompt said {shown}, {queued} were queued"
        );
        assert_eq!(
            email_statuses(&id).await.len() as i64,
            expected,
            "{typed:?}"
        );
    }
}
