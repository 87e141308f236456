//! The counters behind `campaign_analytics` and `dashboard_analytics`: exact
//! under concurrent writers (with rollbacks), equal to the straightforward
//! definitions, private to their user, caught by `db verify` when they
//! drift, and rebuilt by `db apply` on a database that predates them.

use crate::common;

use common::{admin, mailsync, new_user, rest, stderr, stdout, ScratchDb, User};
use reqwest::Method;
use serde_json::json;
use tokio_postgres::Client;
use uuid::Uuid;

const STATUSES: [&str; 6] = [
    "pending",
    "sending",
    "sent",
    "delivered",
    "failed",
    "bounced",
];

/// The views as the guide would write them, straight over `emails_sent`.
const REFERENCE_CAMPAIGNS: &str = "
  select c.id::text, count(e.id)::bigint,
         count(*) filter (where e.status = 'pending')::bigint, count(*) filter (where e.status = 'sending')::bigint,
         count(*) filter (where e.status = 'sent')::bigint, count(*) filter (where e.status = 'delivered')::bigint,
         count(*) filter (where e.status = 'failed')::bigint, count(*) filter (where e.status = 'bounced')::bigint,
         case when count(e.id) = 0 then 0.00 else round(100.0 * count(*) filter (where e.status in ('sent', 'delivered')) / count(e.id), 2) end,
         case when count(e.id) = 0 then 0.00 else round(100.0 * count(*) filter (where e.status not in ('pending', 'sending')) / count(e.id), 2) end
  from public.email_campaigns c left join public.emails_sent e on e.campaign_id = c.id
  where c.user_id = auth.uid() group by c.id order by c.id";
const VIEW_CAMPAIGNS: &str = "
  select campaign_id::text, total_emails, pending_count, sending_count, sent_count, delivered_count,
         failed_count, bounced_count, success_rate, progress
  from public.campaign_analytics order by campaign_id";
const REFERENCE_TODAY: &str = "
  select count(*)::bigint from public.emails_sent e where e.user_id = auth.uid()
    and (e.sent_at at time zone 'utc')::date = (now() at time zone 'utc')::date";

/// Runs `sql` as `user` (claims set, role authenticated), rows as text.
async fn as_user(db: &mut Client, user: &User, sql: &str) -> Vec<Vec<Option<String>>> {
    common::rows_as(db, user, sql)
        .await
        .into_iter()
        .map(|row| {
            let mut cols: Vec<(String, Option<String>)> = row.into_iter().collect();
            cols.sort();
            cols.into_iter().map(|(_, v)| v).collect()
        })
        .collect()
}

async fn simple_rows(db: &Client, sql: &str) -> Vec<Vec<Option<String>>> {
    db.simple_query(sql)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The views and the reference agree for `user`, and every counter matches
/// a recount.
async fn assert_exact(user: &User) {
    let mut db = admin().await;
    let reference = as_user(
        &mut db,
        user,
        &format!("select * from ({REFERENCE_CAMPAIGNS}) r"),
    )
    .await;
    let view = as_user(
        &mut db,
        user,
        &format!("select * from ({VIEW_CAMPAIGNS}) v"),
    )
    .await;
    assert_eq!(reference.len(), view.len());
    // Column names differ between the two queries; compare positionally.
    let positional = |sql: &str| {
        let sql = sql.to_string();
        let user = user.clone();
        async move {
            let mut db = admin().await;
            let tx = common::begin_as(&mut db, &user).await;
            let rows = tx.simple_query(&sql).await.unwrap();
            tx.commit().await.unwrap();
            rows.into_iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len())
                            .map(|i| r.get(i).map(str::to_string))
                            .collect::<Vec<_>>(),
                    ),
                    _ => None,
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        positional(VIEW_CAMPAIGNS).await,
        positional(REFERENCE_CAMPAIGNS).await,
        "campaign_analytics"
    );
    let today = positional("select emails_sent_today::text from public.dashboard_analytics").await;
    let expected = positional(REFERENCE_TODAY).await;
    assert_eq!(today, expected, "emails_sent_today");
    let drift = simple_rows(
        &db,
        &format!(
            "select name, ok::text, detail from ({}) v where not ok",
            include_str!("../../sql/db/verify-counters.sql")
        ),
    )
    .await;
    assert!(drift.is_empty(), "{drift:?}");
}

async fn seed(db: &Client, user: &User, campaigns: usize, contacts: usize) -> Vec<Uuid> {
    db.execute(
        "insert into public.contacts (user_id, email) select $1, 'c' || g || '@example.fr' from generate_series(1, $2::int) g",
        &[&user.id, &(contacts as i32)],
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..campaigns {
        ids.push(common::insert_campaign(user, &format!("C{i}"), "sending").await);
    }
    ids
}

#[tokio::test]
async fn counters_stay_exact_under_concurrent_writers_and_rollbacks() {
    common::ready().await;
    let (a, b) = {
        let stack = common::stack();
        (new_user(&stack).await, new_user(&stack).await)
    };
    let db = admin().await;
    let mut campaigns = seed(&db, &a, 2, 50).await;
    let b_campaigns = seed(&db, &b, 1, 50).await;
    campaigns.extend(b_campaigns.iter().copied());
    let mut tasks = Vec::new();
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for w in 0..12u32 {
        let (a, b, campaigns) = (a.clone(), b.clone(), campaigns.clone());
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let mut db = admin().await;
            for round in 0..15u32 {
                let (user, campaign) = if w % 4 == 3 { (&b, campaigns[2]) } else { (&a, campaigns[(w % 2) as usize]) };
                let tx = common::begin_as(&mut db, user).await;
                let n = 5 + (w + round) % 7;
                let tag = format!("w{w}-%");
                let next = STATUSES[((w + round) % 6) as usize];
                // Each writer moves its own emails (so writers never wait on
                // each other's rows) but they all share the campaigns'
                // counters. A statement that fails (a deadlock on the
                // counters would be one) rolls the transaction back.
                let work = async {
                    tx.execute(
                        "insert into public.emails_sent (campaign_id, recipient_email, status)
                         select $1, $3 || g || '@example.fr', (array['pending','sending','sent'])[1 + g % 3]
                         from generate_series(1, $2::int) g",
                        &[&campaign, &(n as i32), &format!("w{w}-{round}-")],
                    )
                    .await?;
                    tx.execute(
                        "update public.emails_sent set status = $2
                         where id in (select id from public.emails_sent
                                      where campaign_id = $1 and recipient_email like $3
                                      order by random() limit 6)",
                        &[&campaign, &next, &tag],
                    )
                    .await?;
                    if round % 4 == 1 {
                        tx.execute(
                            "delete from public.emails_sent where id in
                             (select id from public.emails_sent
                              where campaign_id = $1 and recipient_email like $2
                              order by random() limit 3)",
                            &[&campaign, &tag],
                        )
                        .await?;
                    }
                    Ok::<(), tokio_postgres::Error>(())
                };
                if let Err(e) = work.await {
                    failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    eprintln!("writer {w} round {round}: {e}");
                    tx.rollback().await.unwrap();
                    continue;
                }
                if round % 5 == 2 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Writers of distinct rows do not deadlock on the counters.
    assert_eq!(failures.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_exact(&a).await;
    assert_exact(&b).await;
}

#[tokio::test]
async fn the_views_equal_the_straightforward_definitions_on_random_data() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let db = admin().await;
    let campaigns = seed(&db, &user, 4, 30).await;
    // Random statuses, contacts, some moved between campaigns, some deleted.
    db.execute(
        "insert into public.emails_sent (user_id, campaign_id, contact_id, recipient_email, status)
         select $1, ($2::uuid[])[1 + (random() * 3)::int], c.id, c.email, (array['pending','sending','sent','delivered','failed','bounced'])[1 + (random() * 5)::int]
         from public.contacts c cross join generate_series(1, 20) where c.user_id = $1",
        &[&user.id, &campaigns],
    )
    .await
    .unwrap();
    db.execute(
        "update public.emails_sent set campaign_id = $2 where user_id = $1 and random() < 0.1",
        &[&user.id, &campaigns[3]],
    )
    .await
    .unwrap();
    db.execute(
        "update public.emails_sent set status = 'delivered' where user_id = $1 and random() < 0.2",
        &[&user.id],
    )
    .await
    .unwrap();
    db.execute(
        "delete from public.emails_sent where user_id = $1 and random() < 0.1",
        &[&user.id],
    )
    .await
    .unwrap();
    assert_exact(&user).await;
    // Deleting a campaign takes its emails and counters; the rest stay exact.
    db.execute(
        "delete from public.email_campaigns where id = $1",
        &[&campaigns[0]],
    )
    .await
    .unwrap();
    let left: i64 = db
        .query_one(
            "select count(*) from public.campaign_email_counts where campaign_id = $1",
            &[&campaigns[0]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    assert_exact(&user).await;
}

#[tokio::test]
async fn counters_are_private_and_read_only_through_the_api() {
    let stack = common::ready().await;
    let (a, b) = (new_user(&stack).await, new_user(&stack).await);
    let db = admin().await;
    let campaigns = seed(&db, &a, 1, 3).await;
    db.execute(
        "insert into public.emails_sent (user_id, campaign_id, recipient_email, status) values ($1, $2, 'x@example.fr', 'sent')",
        &[&a.id, &campaigns[0]],
    )
    .await
    .unwrap();
    for table in ["campaign_email_counts", "user_daily_sent_counts"] {
        let (status, mine) = rest(&stack, Method::GET, table, Some(&a.token), None, None).await;
        assert_eq!(status, 200);
        assert!(!mine.as_array().unwrap().is_empty(), "A reads A's {table}");
        let (_, theirs) = rest(&stack, Method::GET, table, Some(&b.token), None, None).await;
        assert_eq!(theirs, json!([]), "B reads none of A's {table}");
        let (status, _) = rest(&stack, Method::GET, table, None, None, None).await;
        assert!(
            status == 401 || status == 403,
            "anon reads {table}: {status}"
        );
        let (status, body) = rest(
            &stack,
            Method::PATCH,
            &format!("{table}?user_id=eq.{}", a.id),
            Some(&a.token),
            Some(json!({"user_id": a.id})),
            None,
        )
        .await;
        assert!(
            status == 401 || status == 403,
            "A writes its own {table}: {status} {body}"
        );
        let (status, _) = rest(
            &stack,
            Method::DELETE,
            &format!("{table}?user_id=eq.{}", a.id),
            Some(&a.token),
            None,
            None,
        )
        .await;
        assert!(
            status == 401 || status == 403,
            "A deletes its own {table}: {status}"
        );
    }
    let (status, _) = rest(
        &stack,
        Method::POST,
        "campaign_email_counts",
        Some(&a.token),
        Some(json!({"campaign_id": campaigns[0], "shard": 99, "user_id": a.id, "total": 1000000})),
        None,
    )
    .await;
    assert!(status == 401 || status == 403, "A forges a count: {status}");
}

#[tokio::test]
async fn verify_catches_drift_and_apply_rebuilds_counters_a_database_lacks() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let env = [("SUPABASE_DB_URL", db.url.as_str())];
    assert!(mailsync(&stack, &["db", "apply"], &env).status.success());
    let client = db.client().await;
    let user = Uuid::new_v4();
    common::insert_user(&client, user, "v@example.fr").await;
    let campaign: Uuid = client
        .query_one(
            "insert into public.email_campaigns (user_id, name) values ($1, 'V') returning id",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "insert into public.emails_sent (user_id, campaign_id, recipient_email, status)
             select $1, $2, 'r' || g || '@example.fr', 'delivered' from generate_series(1, 25) g",
            &[&user, &campaign],
        )
        .await
        .unwrap();
    assert!(mailsync(&stack, &["db", "verify"], &env).status.success());

    client
        .execute(
            "update public.campaign_email_counts set delivered = delivered + 1",
            &[],
        )
        .await
        .unwrap();
    let drift = mailsync(&stack, &["db", "verify"], &env);
    assert_eq!(drift.status.code(), Some(4));
    assert!(
        stdout(&drift).contains("FAIL campaign counters match emails_sent"),
        "{}",
        stdout(&drift)
    );

    // A database from before the counters: they are built on apply.
    client
        .batch_execute(
            "delete from public.campaign_email_counts; delete from public.user_daily_sent_counts;",
        )
        .await
        .unwrap();
    let applied = mailsync(&stack, &["db", "apply"], &env);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let verified = mailsync(&stack, &["db", "verify"], &env);
    assert!(verified.status.success(), "{}", stdout(&verified));
    db.drop(&stack).await;
}

/// `scripts/bench-analytics` at small sizes, so its checks run in CI: at
/// each size the live views return the same rows as the counting views and
/// the counters match a recount (a mismatch is exit 1), and both statement
/// sizes of the write measurement run.
#[tokio::test]
async fn bench_analytics_checks_what_it_times_at_small_sizes() {
    common::ready().await;
    let db = format!("mailsync_bench_{}", Uuid::new_v4().simple());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/bench-analytics"
        ))
        .env("SIZES", "2000 20000")
        .env("RUNS", "1")
        .env("ROUNDS", "1")
        .env("WRITE_SECONDS", "1")
        .env("BENCH_DB", &db)
        .env_remove("KEEP")
        .output()
        .expect("running scripts/bench-analytics")
    })
    .await
    .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "exit {:?}\n{text}\n{err}", out.status);
    for size in [2000, 20000] {
        assert!(
            err.contains(&format!(
                "  {size} emails: live and counting views return the same rows (200 campaigns, 10 dashboards); counters match a recount"
            )),
            "{err}"
        );
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{size} "))),
            "no timing row for {size}:\n{text}"
        );
    }
    // The work of one refresh in buffers read, which the machine's load does
    // not change: flat for the live views, growing with the emails for the
    // counting views (which shows that the measure sees the difference).
    let buffers = |size: u64| -> (f64, f64) {
        let row: Vec<f64> = text
            .lines()
            .find(|l| l.starts_with(&format!("{size} ")))
            .unwrap()
            .split_whitespace()
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(
            row.len(),
            6,
            "size, three times, two buffer counts:\n{text}"
        );
        (row[4], row[5])
    };
    let ((live_small, count_small), (live_big, count_big)) = (buffers(2000), buffers(20000));
    assert!(
        live_big <= 2.0 * live_small,
        "the live views read {live_small} buffers at 2 000 emails and {live_big} at 20 000:\n{text}"
    );
    assert!(
        count_big >= 3.0 * count_small,
        "the counting views read {count_small} buffers at 2 000 emails and {count_big} at 20 000:\n{text}"
    );
    for batch in ["20 email(s) per statement", "1 email(s) per statement"] {
        assert!(text.contains(batch), "{text}");
    }
    assert!(
        text.contains("side by side: 20 per statement: ") && text.contains("1 per statement: "),
        "{text}"
    );
}
