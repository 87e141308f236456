//! The schema under hosted Supabase's limits: paged, resumable queueing
//! (`queue_campaign_page`) through the REST API with real JWTs, user deletion
//! as Auth does it (a role with no privilege in `public`), the completion
//! check's per-connection state, and the Realtime publication.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{admin, new_user, rest, Stack, User};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

/// `n` contacts for `user` (inserted as the superuser: fast), every tenth
/// in "Acme SARL".
async fn seed_contacts(user: &User, n: i64) {
    admin()
        .await
        .execute(
            "insert into public.contacts (user_id, email, organization_name)
             select $1, 'c' || g || '@example.fr', case when g % 10 = 0 then 'Acme SARL' end
             from generate_series(1, $2::int8) g",
            &[&user.id, &n],
        )
        .await
        .unwrap();
}

async fn new_campaign(stack: &Stack, user: &User, name: &str) -> String {
    let (status, body) = rest(
        stack,
        Method::POST,
        "email_campaigns",
        Some(&user.token),
        Some(json!({"name": name, "subject": "S", "content": "C"})),
        Some("return=representation"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body[0]["id"].as_str().unwrap().to_string()
}

async fn page(
    stack: &Stack,
    user: &User,
    campaign: &str,
    organization: Option<&str>,
    size: i64,
) -> (u16, Value) {
    rest(
        stack,
        Method::POST,
        "rpc/queue_campaign_page",
        Some(&user.token),
        Some(json!({"campaign": campaign, "organization": organization, "page_size": size})),
        None,
    )
    .await
}

async fn scalar_i64(sql: &str, campaign: &str) -> i64 {
    common::scalar(sql, &[&Uuid::parse_str(campaign).unwrap()]).await
}

async fn status_of(campaign: &str) -> String {
    common::scalar(
        "select status from public.email_campaigns where id = $1",
        &[&Uuid::parse_str(campaign).unwrap()],
    )
    .await
}

/// `campaign` has `n` emails, one for each of `n` contacts.
async fn assert_each_contact_queued_once(campaign: &str, n: i64) {
    assert_eq!(
        scalar_i64(
            "select count(distinct contact_id) from public.emails_sent where campaign_id = $1",
            campaign
        )
        .await,
        n
    );
    assert_eq!(
        scalar_i64(
            "select count(*) from public.emails_sent where campaign_id = $1",
            campaign
        )
        .await,
        n
    );
}

#[tokio::test]
async fn a_paged_send_queues_each_contact_once_and_becomes_sending_only_at_the_end() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed_contacts(&user, 2500).await;
    let id = new_campaign(&stack, &user, "Paged").await;

    let (code, first) = page(&stack, &user, &id, None, 1000).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(first["queued_now"], 1000);
    assert_eq!(first["done"], false);
    assert_eq!(first["status"], "draft");
    assert_eq!(status_of(&id).await, "draft", "half-queued is not sending");

    // Another organisation cannot hijack a send under way.
    let (code, body) = page(&stack, &user, &id, Some("Acme SARL"), 1000).await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("being queued"),
        "{body}"
    );
    // Nor can the one-call send.
    let (code, body) = rest(
        &stack,
        Method::POST,
        "rpc/send_campaign",
        Some(&user.token),
        Some(json!({"campaign": id})),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");

    let (_, second) = page(&stack, &user, &id, None, 1000).await;
    assert_eq!(second["queued"], 2000);
    let (_, last) = page(&stack, &user, &id, None, 1000).await;
    assert_eq!(last["queued_now"], 500);
    assert_eq!(last["queued"], 2500);
    assert_eq!(last["done"], true);
    assert_eq!(last["status"], "sending");
    assert_eq!(status_of(&id).await, "sending");

    // A retry of the last page (its answer lost) changes nothing and says
    // what was queued.
    let (code, again) = page(&stack, &user, &id, None, 1000).await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["queued"], 2500);
    assert_eq!(again["queued_now"], 0);
    assert_eq!(again["done"], true);
    assert_each_contact_queued_once(&id, 2500).await;
}

#[tokio::test]
async fn concurrent_callers_never_queue_a_contact_twice() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed_contacts(&user, 3000).await;
    let id = new_campaign(&stack, &user, "Racing").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (stack, user, id) = (stack.clone(), user.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let (code, body) = page(&stack, &user, &id, None, 400).await;
                assert_eq!(code, 200, "{body}");
                if body["done"] == true {
                    return body["queued"].as_i64().unwrap();
                }
            }
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 3000);
    }
    assert_each_contact_queued_once(&id, 3000).await;
}

#[tokio::test]
async fn an_organisation_send_and_a_send_with_nobody_to_send_to() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed_contacts(&user, 95).await;
    let id = new_campaign(&stack, &user, "Acme only").await;
    let mut last = Value::Null;
    for _ in 0..10 {
        let (code, body) = page(&stack, &user, &id, Some("  acme   sarl "), 20).await;
        assert_eq!(code, 200, "{body}");
        last = body;
        if last["done"] == true {
            break;
        }
    }
    assert_eq!(last["queued"], 9);
    assert_eq!(last["organization"], "Acme SARL");
    assert_eq!(status_of(&id).await, "sending");

    let lonely = new_user(&stack).await;
    let empty = new_campaign(&stack, &lonely, "Nobody").await;
    let (code, body) = page(&stack, &lonely, &empty, None, 20).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["done"], true);
    assert_eq!(body["queued"], 0);
    assert_eq!(
        status_of(&empty).await,
        "draft",
        "nobody to send to: unchanged"
    );
    assert_eq!(
        scalar_i64(
            "select count(*) from public.campaign_sends where campaign_id = $1",
            &empty
        )
        .await,
        0
    );
}

/// Pages of the size `campaigns send` starts with, as the user through the
/// REST API with the stack's hosted 8 s limit on: none is cut.
#[tokio::test]
async fn pages_of_five_thousand_recipients_finish_within_the_api_limit() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed_contacts(&user, 20_000).await;
    let id = new_campaign(&stack, &user, "Timed").await;
    let mut slowest = Duration::ZERO;
    loop {
        let started = Instant::now();
        let (code, body) = page(&stack, &user, &id, None, 5_000).await;
        slowest = slowest.max(started.elapsed());
        assert_eq!(code, 200, "{body}");
        if body["done"] == true {
            assert_eq!(body["queued"], 20_000);
            break;
        }
    }
    eprintln!("slowest page of 5000: {slowest:?}");
}

/// A role like Supabase's `supabase_auth_admin`: it owns nothing in `public`
/// and holds no privilege there; it may delete from `auth.users`.
async fn auth_admin_role() -> String {
    let db = admin().await;
    let exists: bool = common::scalar_in(
        &db,
        "select exists (select 1 from pg_roles where rolname = 'supabase_auth_admin')",
        &[],
    )
    .await;
    if exists {
        return "supabase_auth_admin".into();
    }
    let name = format!("auth_admin_like_{}", Uuid::new_v4().simple());
    db.batch_execute(&format!(
        "create role {name} nologin noinherit;
         grant usage on schema auth to {name};
         grant select, delete on auth.users to {name};"
    ))
    .await
    .unwrap();
    name
}

#[tokio::test]
async fn auth_deletes_a_user_whatever_the_state_of_their_campaigns() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let other = new_user(&stack).await;
    seed_contacts(&user, 300).await;
    seed_contacts(&other, 10).await;

    // A campaign being queued, one sending with some emails settled, one sent.
    let queuing = new_campaign(&stack, &user, "Queuing").await;
    page(&stack, &user, &queuing, None, 100).await;
    let sending = new_campaign(&stack, &user, "Sending").await;
    while page(&stack, &user, &sending, None, 1000).await.1["done"] != true {}
    let (code, body) = rest(
        &stack,
        Method::PATCH,
        &format!("emails_sent?campaign_id=eq.{sending}&recipient_email=like.c1*"),
        Some(&user.token),
        Some(json!({"status": "delivered"})),
        None,
    )
    .await;
    assert!(code == 204 || code == 200, "{code} {body}");
    let sent = new_campaign(&stack, &user, "Sent").await;
    while page(&stack, &user, &sent, None, 1000).await.1["done"] != true {}
    rest(
        &stack,
        Method::PATCH,
        &format!("emails_sent?campaign_id=eq.{sent}"),
        Some(&user.token),
        Some(json!({"status": "delivered"})),
        None,
    )
    .await;
    assert_eq!(status_of(&sent).await, "sent");
    let theirs = new_campaign(&stack, &other, "Theirs").await;
    while page(&stack, &other, &theirs, None, 1000).await.1["done"] != true {}

    let role = auth_admin_role().await;
    let mut db = admin().await;
    let tx = db.transaction().await.unwrap();
    tx.batch_execute(&format!("set local role {role}"))
        .await
        .unwrap();
    tx.execute("delete from auth.users where id = $1", &[&user.id])
        .await
        .unwrap();
    tx.commit()
        .await
        .unwrap_or_else(|e| panic!("deleting the user as {role}: {e:?}"));

    for table in [
        "organizations",
        "contacts",
        "email_campaigns",
        "emails_sent",
        "email_templates",
        "campaign_email_counts",
        "user_daily_sent_counts",
        "campaign_sends",
        "campaign_live",
    ] {
        let count = |id: Uuid| {
            let sql = format!("select count(*) from public.{table} where user_id = $1");
            async move {
                admin()
                    .await
                    .query_one(&sql, &[&id])
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };
        assert_eq!(count(user.id).await, 0, "{table}: rows of the deleted user");
        if [
            "contacts",
            "email_campaigns",
            "emails_sent",
            "campaign_sends",
        ]
        .contains(&table)
        {
            assert!(
                count(other.id).await > 0,
                "{table}: the other user's rows stay"
            );
        }
    }
}

#[tokio::test]
async fn completing_campaigns_leaves_no_per_campaign_setting_on_the_connection() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed_contacts(&user, 3).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = new_campaign(&stack, &user, &format!("Settle {i}")).await;
        while page(&stack, &user, &id, None, 100).await.1["done"] != true {}
        ids.push(Uuid::parse_str(&id).unwrap());
    }
    // One connection settles every campaign, one transaction each, as a
    // pooled server connection would.
    let db = admin().await;
    for id in &ids {
        db.execute(
            "update public.emails_sent set status = 'delivered' where campaign_id = $1",
            &[id],
        )
        .await
        .unwrap();
    }
    let done: i64 = common::scalar_in(
        &db,
        "select count(*) from public.email_campaigns where id = any($1) and status = 'sent'",
        &[&ids],
    )
    .await;
    assert_eq!(done, 5, "every campaign completed");
    let names: Vec<String> = common::column_in(
        &db,
        "select name from pg_catalog.pg_settings where name like 'mailsync.%'",
        &[],
    )
    .await;
    assert!(
        names
            .iter()
            .all(|n| n == "mailsync.settled_checked" || n == "mailsync.settled_queued"),
        "per-campaign settings: {names:?}"
    );
    for name in ["mailsync.settled_checked", "mailsync.settled_queued"] {
        let value: Option<String> =
            common::scalar_in(&db, "select current_setting($1, true)", &[&name]).await;
        assert_eq!(
            value.unwrap_or_default(),
            "",
            "{name}: nothing survives the transaction"
        );
    }
}

/// A writer whose counts moved a campaign's live row holds that row until
/// it commits, and at its commit takes the campaign row to check whether the
/// campaign is finished. A transaction finishing the campaign meanwhile must
/// not wait for the live row while it holds the campaign row: the two
/// deadlocked, and one commit failed (seen in the counters' concurrency test
/// in tests/it/analytics.rs).
#[tokio::test]
async fn finishing_a_campaign_while_another_writer_holds_its_live_row_does_not_deadlock() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let db = admin().await;
    let campaign = common::insert_campaign(&user, "Live row", "sending").await;
    // The live row last moved a minute ago: the next writer's counts move it.
    db.execute(
        "update public.campaign_live set changed_at = now() - interval '1 minute' where campaign_id = $1",
        &[&campaign],
    )
    .await
    .unwrap();
    let claims = json!({"sub": user.id, "role": "authenticated"});
    // A transaction, left open, that queues one email and settles it.
    let writer = |email: &str| {
        format!(
            "begin;
             select set_config('request.jwt.claims', '{claims}', true);
             set local role authenticated;
             insert into public.emails_sent (campaign_id, recipient_email) values ('{campaign}', '{email}');
             update public.emails_sent set status = 'sent'
              where campaign_id = '{campaign}' and recipient_email = '{email}';"
        )
    };
    let live_row_free = move || async move {
        admin()
            .await
            .query(
                "select 1 from public.campaign_live where campaign_id = $1 for update skip locked",
                &[&campaign],
            )
            .await
            .unwrap()
            .len()
            == 1
    };
    let b = admin().await;
    b.batch_execute(&writer("b@example.fr")).await.unwrap();
    assert!(
        !live_row_free().await,
        "the first writer holds the live row"
    );

    // The second writer's emails are all the campaign has that is settled
    // and visible: its commit finishes the campaign, which moves the live row.
    let a = std::sync::Arc::new(admin().await);
    let a_pid: i32 = common::scalar_in(&a, "select pg_backend_pid()", &[]).await;
    a.batch_execute(&writer("a@example.fr")).await.unwrap();
    let a_commit = tokio::spawn({
        let a = a.clone();
        async move { a.batch_execute("commit").await }
    });
    let started = Instant::now();
    loop {
        let waiting: Option<String> = common::scalar_in(
            &db,
            "select wait_event_type from pg_stat_activity where pid = $1",
            &[&a_pid],
        )
        .await;
        if waiting.as_deref() == Some("Lock") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the finishing commit never waited for the live row"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first writer commits: its own check takes the campaign row.
    let b_commit = b.batch_execute("commit").await;
    let a_commit = a_commit.await.unwrap();
    assert!(
        b_commit.is_ok() && a_commit.is_ok(),
        "first writer: {b_commit:?}; finishing writer: {a_commit:?}"
    );
    let row = db
        .query_one(
            "select c.status, l.campaign_status,
                    (select count(*) from public.emails_sent e where e.campaign_id = c.id)
               from public.email_campaigns c join public.campaign_live l on l.campaign_id = c.id
              where c.id = $1",
            &[&campaign],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2)
        ),
        ("sent".to_string(), "sent".to_string(), 2)
    );
    assert!(live_row_free().await);
}

#[tokio::test]
async fn realtime_publishes_one_throttled_row_per_campaign_and_no_data_table() {
    let stack = common::ready().await;
    let published: HashSet<String> = common::column::<String>(
        "select tablename::text from pg_catalog.pg_publication_tables
             where pubname = 'supabase_realtime' and schemaname = 'public'",
        &[],
    )
    .await
    .into_iter()
    .collect();
    assert!(published.contains("campaign_live"), "{published:?}");
    for table in [
        "organizations",
        "contacts",
        "email_campaigns",
        "emails_sent",
        "email_templates",
    ] {
        assert!(!published.contains(table), "{table} is published");
    }

    let user = new_user(&stack).await;
    seed_contacts(&user, 200).await;
    let id = new_campaign(&stack, &user, "Throttled").await;
    while page(&stack, &user, &id, None, 1000).await.1["done"] != true {}
    // 200 emails delivered one by one over about 2 s: the live row moves at
    // most every 1.5 s (plus once more at completion).
    let db = admin().await;
    let uuid = Uuid::parse_str(&id).unwrap();
    let started = Instant::now();
    let mut stamps = HashSet::new();
    let emails: Vec<Uuid> = common::column_in(
        &db,
        "select id from public.emails_sent where campaign_id = $1",
        &[&uuid],
    )
    .await;
    for email in emails {
        db.execute(
            "update public.emails_sent set status = 'delivered' where id = $1",
            &[&email],
        )
        .await
        .unwrap();
        let stamp: String = common::scalar_in(&db, "select changed_at::text || campaign_status from public.campaign_live where campaign_id = $1",
                &[&uuid]).await;
        stamps.insert(stamp);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        (stamps.len() as f64) <= seconds.ceil() + 2.0,
        "{} changes in {seconds:.1} s",
        stamps.len()
    );
    assert!(
        stamps.len() >= 2,
        "it moves while emails change: {stamps:?}"
    );
    assert_eq!(status_of(&id).await, "sent");
    let last: String = common::scalar_in(
        &db,
        "select campaign_status from public.campaign_live where campaign_id = $1",
        &[&uuid],
    )
    .await;
    assert_eq!(last, "sent");
}

/// Hosted Supabase stops every statement after 2 minutes: `db apply` and
/// `db verify` set their own timeout for their transaction. Modelled here
/// with a database whose default limit (10 ms) is shorter than applying the
/// schema takes.
#[tokio::test]
async fn db_apply_and_verify_outlast_the_database_statement_timeout() {
    let stack = common::ready().await;
    let db = common::ScratchDb::create(&stack).await;
    admin()
        .await
        .batch_execute(&format!(
            "alter database {} set statement_timeout = '10ms'",
            db.name
        ))
        .await
        .unwrap();
    let short: String = db
        .client()
        .await
        .query_one("show statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(short, "10ms");
    for args in [&["db", "apply"][..], &["db", "verify"][..]] {
        let out = common::mailsync(&stack, args, &[("SUPABASE_DB_URL", &db.url)]);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            common::stdout(&out),
            common::stderr(&out)
        );
    }
    db.drop(&stack).await;
}
