//! A page of `queue_campaign_page` reads the contacts it queues and no
//! others, whatever the table's statistics: right after an insert (no
//! ANALYZE: users cannot run one through the API) and after one. Left to
//! the planner, a fresh table's page was a bitmap scan of every contact
//! after the cursor and a sort, so each page cost a read of the rest of the
//! list; and the foreign key's check of each email, planned with a new
//! user's values, walked the user's every contact (`send_recipients` and
//! `queue_send_recipients` in 09_sending.sql pin the plans).

use crate::common;

use common::{admin, begin_as, new_user, User};
use tokio_postgres::Client;

const CONTACTS: i64 = 20_000;
const PAGE: i32 = 100;

/// Queues the next page as `user` and answers how many contact rows the
/// transaction read: (by sequential scans, through indexes).
async fn page_reads(client: &mut Client, user: &User, campaign: uuid::Uuid) -> (i64, i64) {
    // The transaction's counters, before and after: they may still hold
    // the session's earlier transactions' (not yet reported) reads.
    const READS: &str = "select coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0)
                           from pg_catalog.pg_stat_xact_user_tables
                          where relid = 'public.contacts'::regclass";
    let tx = begin_as(client, user).await;
    let before = tx.query_one(READS, &[]).await.unwrap();
    tx.execute(
        "select public.queue_campaign_page($1, null, $2)",
        &[&campaign, &PAGE],
    )
    .await
    .unwrap();
    let after = tx.query_one(READS, &[]).await.unwrap();
    tx.commit().await.unwrap();
    let read = |i: usize| after.get::<_, i64>(i) - before.get::<_, i64>(i);
    (read(0), read(1))
}

#[tokio::test]
async fn a_page_reads_its_own_contacts_only_before_and_after_analyze() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    // Another user's contacts, three times as many, their ids interleaved
    // with the first user's (random UUIDs): a page read through the primary
    // key (id alone) would walk past them.
    let other = new_user(&stack).await;
    let db = admin().await;
    for (who, count) in [(&other, 3 * CONTACTS), (&user, CONTACTS)] {
        db.execute(
            "insert into public.contacts (user_id, email, organization_name)
             select $1, 'p' || g || '@pages.test', 'Org ' || (g % 7) from generate_series(1, $2::bigint) g",
            &[&who.id, &count],
        )
        .await
        .unwrap();
    }
    let campaign: uuid::Uuid = db
        .query_one(
            "insert into public.email_campaigns (user_id, name, subject, content)
             values ($1, 'Pages', 'S', 'C') returning id",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    let mut client = common::admin_to(&stack.db_url).await;
    // A page of 100 reads its 100 contacts, and the foreign key's check
    // reads each again (through the unique (user_id, id) index): never the
    // user's other 19 900, nor the other user's.
    let limit = 2 * i64::from(PAGE) + 10;
    let first = page_reads(&mut client, &user, campaign).await;
    assert_eq!(
        first.0, 0,
        "a sequential scan of contacts on a fresh table: {first:?}"
    );
    assert!(
        first.1 <= limit,
        "a fresh table's first page read {first:?} contacts"
    );
    let second = page_reads(&mut client, &user, campaign).await;
    assert!(
        second.0 == 0 && second.1 <= limit,
        "second page: {second:?}"
    );
    db.batch_execute("analyze public.contacts").await.unwrap();
    let analysed = page_reads(&mut client, &user, campaign).await;
    assert!(
        analysed.0 == 0 && analysed.1 <= limit,
        "after analyze: {analysed:?}"
    );
    let queued: i64 = db
        .query_one(
            "select count(*) from public.emails_sent where campaign_id = $1",
            &[&campaign],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 3 * i64::from(PAGE));
    for who in [&user, &other] {
        db.execute("delete from auth.users where id = $1", &[&who.id])
            .await
            .unwrap();
    }
}

/// The rows of `emails_sent` a transaction has read so far.
const EMAIL_READS: &str = "select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
                             from pg_catalog.pg_stat_xact_user_tables
                            where relid = 'public.emails_sent'::regclass";

/// A claim reads the emails it takes, whatever the statistics say: on a
/// table analysed when all of the caller's emails were settled, and grown
/// by less than a tenth since (no refresh), the planner believed the
/// caller's unsettled emails were a handful, and a claim's write of the
/// emails left `sending` (planned even when there are none) read every one
/// of them, per claim: all the emails of a campaign of a million. On a
/// scratch database.
#[tokio::test]
async fn a_claim_reads_only_the_emails_it_takes_on_statistics_from_before_the_send() {
    let stack = common::ready().await;
    let (db, admin, user) = scratch_with_user(&stack, "claims@example.test").await;
    // 20 000 emails sent long ago, analysed; then 1 500 queued (7.5 %).
    admin
        .batch_execute(&format!(
            "insert into public.email_campaigns (id, user_id, name, subject, content, status)
               values ('{old}', '{user}', 'Old', 'S', 'C', 'sent');
             insert into public.emails_sent (user_id, campaign_id, recipient_email, status, sent_at)
               select '{user}', '{old}', 'o' || g || '@claims.test', 'sent', now()
               from generate_series(1, 20000) g;
             analyze public.emails_sent;
             insert into public.contacts (user_id, email)
               select '{user}', 'n' || g || '@claims.test' from generate_series(1, 1500) g;",
            old = uuid::Uuid::new_v4(),
            user = user.id
        ))
        .await
        .unwrap();
    let new: uuid::Uuid = admin
        .query_one(
            "insert into public.email_campaigns (user_id, name, subject, content)
             values ($1, 'New', 'S', 'C') returning id",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    let mut client = db.client().await;
    let tx = begin_as(&mut client, &user).await;
    tx.execute("select public.send_campaign($1)", &[&new])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let analysed: i64 = admin
        .query_one(
            "select reltuples::bigint from pg_catalog.pg_class where oid = 'public.emails_sent'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        analysed, 20000,
        "the statistics are those from before the send"
    );
    // The caller's suppression list, grown since: each claim looks up the
    // addresses it takes in it, not the list whole.
    admin
        .execute(
            "insert into public.suppressions (user_id, email, reason)
             select $1, 'gone' || g || '@claims.test', 'unsubscribed' from generate_series(1, 5000) g",
            &[&user.id],
        )
        .await
        .unwrap();

    for round in 1..=3 {
        let tx = begin_as(&mut client, &user).await;
        let before: i64 = tx.query_one(EMAIL_READS, &[]).await.unwrap().get(0);
        let looked_up: i64 = tx.query_one(SUPPRESSION_READS, &[]).await.unwrap().get(0);
        let claimed: serde_json::Value = tx
            .query_one(
                "select public.claim_emails($1, 100, 60, 'w', 'claims.test', false, true)",
                &[&new],
            )
            .await
            .unwrap()
            .get(0);
        let after: i64 = tx.query_one(EMAIL_READS, &[]).await.unwrap().get(0);
        let looked_up = tx
            .query_one(SUPPRESSION_READS, &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
            - looked_up;
        tx.commit().await.unwrap();
        assert_eq!(claimed.as_array().map(Vec::len), Some(100), "round {round}");
        assert!(
            after - before <= 300,
            "claim {round} of 100 emails read {} emails",
            after - before
        );
        assert!(
            looked_up <= 100,
            "claim {round} of 100 emails read {looked_up} suppressions"
        );
    }
    db.drop(&stack).await;
}

/// A scratch database holding this build's schema (`db reset`), its admin
/// client, and one user (no token: its sessions are opened with `begin_as`).
async fn scratch_with_user(
    stack: &common::Stack,
    email: &str,
) -> (common::ScratchDb, Client, User) {
    let db = common::ScratchDb::create(stack).await;
    let reset = common::mailsync(
        stack,
        &["db", "reset", "--yes"],
        &[("SUPABASE_DB_URL", &db.url)],
    );
    assert!(reset.status.success(), "{}", common::stderr(&reset));
    let admin = db.client().await;
    let user = User {
        id: uuid::Uuid::new_v4(),
        email: email.into(),
        token: String::new(),
    };
    common::insert_user(&admin, user.id, &user.email).await;
    (db, admin, user)
}

const SUPPRESSION_READS: &str = "select coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0)
                                   from pg_catalog.pg_stat_xact_user_tables
                                  where relid = 'public.suppressions'::regclass";

/// Right after a send, `deliver` records outcomes by probing each email by
/// its key, not by reading every email of the caller: the send refreshes
/// the emails' statistics (a trigger when the campaign becomes `sending`)
/// when the table has grown by a tenth (users cannot ANALYZE through the
/// API). Without them the planner expected a few hundred emails
/// per user and read all of them, per call. On a scratch database, whose
/// table holds only this send.
#[tokio::test]
async fn a_send_refreshes_the_statistics_so_outcomes_read_only_their_emails() {
    let stack = common::ready().await;
    let (db, admin, user) = scratch_with_user(&stack, "stats@example.test").await;
    admin
        .execute(
            "insert into public.contacts (user_id, email)
             select $1, 's' || g || '@stats.test' from generate_series(1, 5000) g",
            &[&user.id],
        )
        .await
        .unwrap();
    let campaign = |name: &str| {
        let admin = &admin;
        let name = name.to_string();
        let id = user.id;
        async move {
            admin
                .query_one(
                    "insert into public.email_campaigns (user_id, name, subject, content)
                     values ($1, $2, 'S', 'C') returning id",
                    &[&id, &name],
                )
                .await
                .unwrap()
                .get::<_, uuid::Uuid>(0)
        }
    };
    let first = campaign("First").await;
    let mut client = db.client().await;
    let tx = begin_as(&mut client, &user).await;
    tx.execute("select public.send_campaign($1)", &[&first])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let tuples = || async {
        admin
            .query_one(
                "select reltuples::bigint from pg_catalog.pg_class
                  where oid = 'public.emails_sent'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(tuples().await, 5000, "the send analysed the emails");

    // A claim of 100 reads about those 100 emails, not the 5000 queued
    // (its writes for emails left `sending` are not even planned when there
    // are none: planned, they read every unsettled email of the caller).
    let tx = begin_as(&mut client, &user).await;
    let before: i64 = tx.query_one(EMAIL_READS, &[]).await.unwrap().get(0);
    let claimed: serde_json::Value = tx
        .query_one(
            "select public.claim_emails($1, 100, 60, 'w', 'stats.test', false, true)",
            &[&first],
        )
        .await
        .unwrap()
        .get(0);
    let after: i64 = tx.query_one(EMAIL_READS, &[]).await.unwrap().get(0);
    tx.commit().await.unwrap();
    assert!(
        after - before <= 300,
        "claiming 100 emails read {} emails",
        after - before
    );

    // 100 outcomes recorded read about those 100 emails (each is read
    // again by the claims' bookkeeping), not the 5000.
    let outcomes: Vec<serde_json::Value> = claimed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::json!({"id": e["id"], "status": "sent", "response": "250 ok"}))
        .collect();
    assert_eq!(outcomes.len(), 100);
    let tx = begin_as(&mut client, &user).await;
    let before: i64 = tx.query_one(EMAIL_READS, &[]).await.unwrap().get(0);
    let recorded: serde_json::Value = tx
        .query_one(
            "select public.record_email_outcomes($1, 'w')",
            &[&serde_json::Value::from(outcomes)],
        )
        .await
        .unwrap()
        .get(0);
    let after: i64 = tx.query_one(EMAIL_READS, &[]).await.unwrap().get(0);
    tx.commit().await.unwrap();
    assert_eq!(recorded["recorded"], 100, "{recorded}");
    assert!(
        after - before <= 300,
        "recording 100 outcomes read {} emails",
        after - before
    );
    // The outcomes stamped `updated_at` themselves (its trigger skipped),
    // and a user's own write of it, to any other time, still ends as now().
    let stamped: i64 = admin
        .query_one(
            "select count(*) from public.emails_sent
              where campaign_id = $1 and status = 'sent' and updated_at > created_at",
            &[&first],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stamped, 100, "the outcomes' updated_at");
    let tx = begin_as(&mut client, &user).await;
    let (kept_now, forged): (bool, bool) = {
        let row = tx
            .query_one(
                "with w as (
                   update public.emails_sent set updated_at = '2000-01-01'
                    where id = (select id from public.emails_sent where campaign_id = $1 limit 1)
                   returning updated_at)
                 select (select updated_at = now() from w), (select updated_at < '2001-01-01' from w)",
                &[&first],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    tx.commit().await.unwrap();
    assert!(
        kept_now && !forged,
        "a written updated_at is replaced by now()"
    );

    // A small send later (10 emails, to one organisation) is not worth an
    // ANALYZE: the statistics stay.
    admin
        .execute(
            "insert into public.contacts (user_id, email, organization_name)
             select $1, 't' || g || '@stats.test', 'Small' from generate_series(1, 10) g",
            &[&user.id],
        )
        .await
        .unwrap();
    let second = campaign("Second").await;
    let tx = begin_as(&mut client, &user).await;
    tx.execute("select public.send_campaign($1, 'Small')", &[&second])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(tuples().await, 5000, "not analysed again");

    // It is a trigger's, not a function users may call (an ANALYZE on
    // demand through the API).
    let tx = begin_as(&mut client, &user).await;
    let refused = tx
        .execute("select public.mailsync_refresh_email_statistics()", &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code().map(|c| c.code()),
        Some("42501"),
        "{refused:?}"
    );
    drop(tx);
    db.drop(&stack).await;
}
