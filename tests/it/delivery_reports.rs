//! `record_delivery_reports` (sql/schema/12_delivery_reports.sql),
//! called through the REST API as the signed-in user: each kind of report
//! and its effect on the email and the suppressions, statuses that never go
//! backwards, soft bounces in a row, re-recording and concurrent calls that
//! change nothing twice, another user's emails out of reach, input bounds,
//! and the analytic views and counters kept exact.

use crate::common;

use common::{admin, insert_campaign, new_user, ready, rest, scalar, Stack, User};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const ARRIVED: &str = "2026-12-01T10:00:00Z";

/// An email of `user` in `campaign` to `address` with `status`, written
/// directly (with a contact, a Message-ID `<id@test>` and, when `sending`, a
/// worker's lease); its id.
async fn email(user: &User, campaign: Uuid, address: &str, status: &str) -> Uuid {
    let db = admin().await;
    let contact: Uuid = db
        .query_one(
            "insert into public.contacts (user_id, email) values ($1, $2)
             on conflict (user_id, email) do update set email = excluded.email returning id",
            &[&user.id, &address],
        )
        .await
        .unwrap()
        .get(0);
    let id = Uuid::new_v4();
    db.execute(
        "insert into public.emails_sent (id, user_id, campaign_id, contact_id, recipient_email, status,
                                         message_id, lease_owner, lease_expires_at, claimed_at)
         values ($1, $2, $3, $4, $5, $6::text, $7,
                 case when $6::text = 'sending' then 'worker-1' end,
                 case when $6::text = 'sending' then now() + interval '1 hour' end,
                 case when $6::text in ('sending', 'sent') then now() end)",
        &[&id, &user.id, &campaign, &contact, &address, &status, &message_id(id)],
    )
    .await
    .unwrap();
    id
}

fn message_id(email: Uuid) -> String {
    format!("<{email}@test>")
}

/// One report naming its email by Message-ID.
fn report(key: &str, email: Uuid, kind: &str, status: Option<&str>) -> Value {
    json!({"key": key, "email_id": null, "message_id": message_id(email), "kind": kind,
           "status": status, "diagnostic": status.map(|_| "remote said so"),
           "reporting_mta": "dns; mx.example.test", "arrived_at": ARRIVED})
}

/// Calls the function as `user`; the HTTP status and the answer.
async fn record(stack: &Stack, user: &User, reports: Value, limit: Option<i32>) -> (u16, Value) {
    let mut body = json!({"reports": reports});
    if let Some(limit) = limit {
        body["soft_bounce_limit"] = json!(limit);
    }
    rest(
        stack,
        Method::POST,
        "rpc/record_delivery_reports",
        Some(&user.token),
        Some(body),
        None,
    )
    .await
}

/// The outcomes of a successful call, in order.
async fn outcomes(stack: &Stack, user: &User, reports: Value, limit: Option<i32>) -> Vec<String> {
    let (status, body) = record(stack, user, reports, limit).await;
    assert_eq!(status, 200, "{body}");
    body.as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_string())
        .collect()
}

async fn status_of(email: Uuid) -> String {
    scalar(
        "select status from public.emails_sent where id = $1",
        &[&email],
    )
    .await
}

/// (reason, detail) of `address`'s suppression for `user`, if any.
async fn suppression(user: &User, address: &str) -> Option<(String, String)> {
    admin()
        .await
        .query_opt(
            "select reason, coalesce(detail, '') from public.suppressions where user_id = $1 and email = $2",
            &[&user.id, &address],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// Everything the function may change for `user`, as text: emails,
/// suppressions, reports.
async fn state_of(user: &User) -> String {
    scalar(
        "select concat_ws(' | ',
           (select string_agg(concat_ws(',', id, status, sent_at, delivered_at, error_message, lease_owner,
                                        lease_expires_at, updated_at), ';' order by id)
              from public.emails_sent where user_id = $1),
           (select string_agg(concat_ws(',', email, reason, detail, updated_at), ';' order by email)
              from public.suppressions where user_id = $1),
           (select string_agg(concat_ws(',', report_key, email_id, kind, status, updated_at), ';' order by report_key)
              from public.delivery_reports where user_id = $1))",
        &[&user.id],
    )
    .await
}

/// The views agree with a recount over `emails_sent`, and every counter
/// matches (`db verify`'s counter checks).
async fn assert_counts_exact(user: &User, campaign: Uuid) {
    let db = admin().await;
    let view = db
        .query_one(
            "select delivered_count, bounced_count, failed_count, sent_count, sending_count, total_emails
             from public.campaign_analytics where campaign_id = $1",
            &[&campaign],
        )
        .await
        .unwrap();
    let truth = db
        .query_one(
            "select count(*) filter (where status = 'delivered'), count(*) filter (where status = 'bounced'),
                    count(*) filter (where status = 'failed'), count(*) filter (where status = 'sent'),
                    count(*) filter (where status = 'sending'), count(*)
             from public.emails_sent where campaign_id = $1",
            &[&campaign],
        )
        .await
        .unwrap();
    for i in 0..6 {
        assert_eq!(
            view.get::<_, i64>(i),
            truth.get::<_, i64>(i),
            "campaign_analytics column {i}"
        );
    }
    let contacts_off: i64 = scalar(
        "select count(*) from public.contact_analytics a
         cross join lateral (
           select count(*) filter (where e.status = 'delivered') as delivered, count(*) as received
           from public.emails_sent e where e.user_id = a.user_id and e.contact_id = a.contact_id) t
         where a.user_id = $1 and (a.emails_delivered, a.emails_received) is distinct from (t.delivered, t.received)",
        &[&user.id],
    )
    .await;
    assert_eq!(contacts_off, 0, "contact_analytics");
    let drift: Vec<String> = db
        .query(
            &format!(
                "select name || ': ' || detail from ({}) v where not ok",
                include_str!("../../sql/db/verify-counters.sql")
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(drift.is_empty(), "{drift:?}");
}

#[tokio::test]
async fn each_kind_of_report_has_its_effect_and_nothing_goes_backwards() {
    let stack = ready().await;
    let user = new_user(&stack).await;
    let campaign = insert_campaign(&user, "Reports", "sending").await;
    let delivered_sent = email(&user, campaign, "d1@example.test", "sent").await;
    let delivered_sending = email(&user, campaign, "d2@example.test", "sending").await;
    let hard = email(&user, campaign, "hard@example.test", "sent").await;
    let hard_after_delivery = email(&user, campaign, "late@example.test", "delivered").await;
    let full = email(&user, campaign, "full@example.test", "sent").await;
    let gave_up = email(&user, campaign, "relay@example.test", "sent").await;
    let delayed = email(&user, campaign, "slow@example.test", "sent").await;
    let complained = email(&user, campaign, "angry@example.test", "sent").await;
    let relayed = email(&user, campaign, "relayed@example.test", "sent").await;
    let expanded = email(&user, campaign, "list@example.test", "sent").await;
    let already_bounced = email(&user, campaign, "gone@example.test", "bounced").await;
    let already_failed = email(&user, campaign, "failed@example.test", "failed").await;
    let pending = email(&user, campaign, "pending@example.test", "pending").await;
    // An address unsubscribed earlier: a complaint upgrades the reason.
    admin()
        .await
        .execute(
            "insert into public.suppressions (user_id, email, reason) values ($1, 'angry@example.test', 'unsubscribed')",
            &[&user.id],
        )
        .await
        .unwrap();

    let reports = json!([
        report("r1", delivered_sent, "delivered", Some("2.0.0")),
        // By id, not Message-ID.
        {"key": "r2", "email_id": delivered_sending, "kind": "delivered", "arrived_at": "2026-12-01T09:30:00+01:00"},
        report("r3", hard, "failed", Some("5.1.1")),
        report("r4", hard_after_delivery, "failed", Some("5.1.1")),
        report("r5", full, "failed", Some("5.2.2")),
        report("r6", gave_up, "failed", Some("4.4.7")),
        report("r7", delayed, "delayed", Some("4.2.2")),
        report("r8", complained, "complaint", None),
        report("r9", relayed, "relayed", Some("2.0.0")),
        report("r10", expanded, "expanded", None),
        report("r11", already_bounced, "delivered", None),
        report("r12", already_failed, "delivered", None),
        report("r13", pending, "delivered", None),
    ]);
    let got = outcomes(&stack, &user, reports.clone(), None).await;
    assert_eq!(got, vec!["recorded"; 13]);

    assert_eq!(status_of(delivered_sent).await, "delivered");
    let (delivered_at, sent_at, lease_owner, lease_expires): (
        String,
        String,
        Option<String>,
        bool,
    ) = {
        let row = admin()
            .await
            .query_one(
                "select delivered_at::text, sent_at::text, lease_owner, lease_expires_at is null
                 from public.emails_sent where id = $1",
                &[&delivered_sending],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3))
    };
    assert_eq!(status_of(delivered_sending).await, "delivered");
    assert_eq!(
        delivered_at, "2026-12-01 08:30:00+00",
        "delivered_at is the arrival"
    );
    assert_eq!(
        sent_at, "2026-12-01 08:30:00+00",
        "sent_at filled from the arrival"
    );
    assert_eq!(lease_owner, None, "the lease is cleared");
    assert!(lease_expires);

    assert_eq!(status_of(hard).await, "bounced");
    let error: String = scalar(
        "select error_message from public.emails_sent where id = $1",
        &[&hard],
    )
    .await;
    assert_eq!(error, "5.1.1 remote said so");
    assert_eq!(
        suppression(&user, "hard@example.test").await.map(|s| s.0),
        Some("bounced".to_string())
    );
    assert_eq!(status_of(hard_after_delivery).await, "bounced");
    assert!(suppression(&user, "late@example.test").await.is_some());

    // 5.2.2: bounced, but a soft bounce: not suppressed by itself.
    assert_eq!(status_of(full).await, "bounced");
    assert_eq!(suppression(&user, "full@example.test").await, None);
    assert_eq!(status_of(gave_up).await, "failed");
    assert_eq!(suppression(&user, "relay@example.test").await, None);
    assert_eq!(status_of(delayed).await, "sent");
    assert_eq!(suppression(&user, "slow@example.test").await, None);

    assert_eq!(status_of(complained).await, "delivered");
    let (reason, _) = suppression(&user, "angry@example.test").await.unwrap();
    assert_eq!(reason, "complained");

    assert_eq!(status_of(relayed).await, "sent");
    assert_eq!(status_of(expanded).await, "sent");
    assert_eq!(suppression(&user, "relayed@example.test").await, None);

    // Never backwards.
    assert_eq!(status_of(already_bounced).await, "bounced");
    assert_eq!(status_of(already_failed).await, "failed");
    assert_eq!(status_of(pending).await, "pending");
    let stored: i64 = scalar(
        "select count(*) from public.delivery_reports where user_id = $1",
        &[&user.id],
    )
    .await;
    assert_eq!(stored, 13);
    // A later delivered report does not undo a bounce.
    let got = outcomes(
        &stack,
        &user,
        json!([report("r14", hard, "delivered", None)]),
        None,
    )
    .await;
    assert_eq!(got, vec!["recorded"]);
    assert_eq!(status_of(hard).await, "bounced");

    assert_counts_exact(&user, campaign).await;

    // Re-recording the same reports changes nothing.
    let before = state_of(&user).await;
    let got = outcomes(&stack, &user, reports, None).await;
    assert_eq!(got, vec!["duplicate"; 13]);
    assert_eq!(state_of(&user).await, before);
    assert_counts_exact(&user, campaign).await;
}

#[tokio::test]
async fn soft_bounces_in_a_row_suppress_the_address_and_a_delivery_resets_them() {
    let stack = ready().await;
    let user = new_user(&stack).await;
    let campaign = insert_campaign(&user, "Soft", "sending").await;
    let mut soft = Vec::new();
    for _ in 0..4 {
        soft.push(email(&user, campaign, "soft@example.test", "sent").await);
    }
    let mut reset = Vec::new();
    for _ in 0..3 {
        reset.push(email(&user, campaign, "reset@example.test", "sent").await);
    }

    // Two reports on one email count once; two emails: under the limit of 3.
    let at = |key: &str, e: Uuid, kind: &str, status: Option<&str>, when: &str| {
        let mut r = report(key, e, kind, status);
        r["arrived_at"] = json!(when);
        r
    };
    let got = outcomes(
        &stack,
        &user,
        json!([
            at(
                "s1",
                soft[0],
                "delayed",
                Some("4.2.2"),
                "2026-12-01T10:00:00Z"
            ),
            at(
                "s2",
                soft[0],
                "delayed",
                Some("4.2.2"),
                "2026-12-01T11:00:00Z"
            ),
            at(
                "s3",
                soft[1],
                "failed",
                Some("4.4.7"),
                "2026-12-01T12:00:00Z"
            ),
        ]),
        Some(3),
    )
    .await;
    assert_eq!(got, vec!["recorded"; 3]);
    assert_eq!(suppression(&user, "soft@example.test").await, None);
    // A third email: mailbox full (5.2.2) is a soft bounce too.
    outcomes(
        &stack,
        &user,
        json!([at(
            "s4",
            soft[2],
            "failed",
            Some("5.2.2"),
            "2026-12-01T13:00:00Z"
        )]),
        Some(3),
    )
    .await;
    let (reason, detail) = suppression(&user, "soft@example.test").await.unwrap();
    assert_eq!(reason, "bounced");
    assert!(detail.contains("3 soft bounces in a row"), "{detail}");

    // A delivery between soft bounces breaks the row.
    outcomes(
        &stack,
        &user,
        json!([
            at("t1", reset[0], "delayed", None, "2026-12-01T10:00:00Z"),
            at("t2", reset[1], "delayed", None, "2026-12-01T11:00:00Z"),
            at("t3", reset[1], "delivered", None, "2026-12-01T12:00:00Z"),
            at("t4", reset[2], "delayed", None, "2026-12-01T13:00:00Z"),
        ]),
        Some(3),
    )
    .await;
    assert_eq!(suppression(&user, "reset@example.test").await, None);
    // With a limit of 1, the next soft bounce is enough.
    outcomes(
        &stack,
        &user,
        json!([at("t5", reset[2], "delayed", None, "2026-12-01T14:00:00Z")]),
        Some(1),
    )
    .await;
    assert!(suppression(&user, "reset@example.test").await.is_some());
    assert_counts_exact(&user, campaign).await;
}

#[tokio::test]
async fn concurrent_calls_with_the_same_reports_record_each_once() {
    let stack = ready().await;
    let user = new_user(&stack).await;
    let campaign = insert_campaign(&user, "Race", "sending").await;
    let mut reports = Vec::new();
    for i in 0..40 {
        let e = email(&user, campaign, &format!("r{i}@example.test"), "sent").await;
        let (kind, status) = match i % 4 {
            0 => ("delivered", None),
            1 => ("failed", Some("5.1.1")),
            2 => ("complaint", None),
            _ => ("delayed", Some("4.2.2")),
        };
        reports.push(report(&format!("race-{i}"), e, kind, status));
    }
    let mut reversed = reports.clone();
    reversed.reverse();
    let (a, b) = tokio::join!(
        record(&stack, &user, Value::Array(reports.clone()), Some(1)),
        record(&stack, &user, Value::Array(reversed), Some(1)),
    );
    assert_eq!(a.0, 200, "{}", a.1);
    assert_eq!(b.0, 200, "{}", b.1);
    let mut recorded = std::collections::BTreeMap::<String, usize>::new();
    for r in
        a.1.as_array()
            .unwrap()
            .iter()
            .chain(b.1.as_array().unwrap())
    {
        let key = r["report_key"].as_str().unwrap().to_string();
        match r["outcome"].as_str().unwrap() {
            "recorded" => *recorded.entry(key).or_default() += 1,
            "duplicate" => {
                recorded.entry(key).or_default();
            }
            other => panic!("{other} for {key}"),
        }
    }
    assert_eq!(recorded.len(), 40);
    assert!(recorded.values().all(|n| *n == 1), "{recorded:?}");
    let stored: i64 = scalar(
        "select count(*) from public.delivery_reports where user_id = $1",
        &[&user.id],
    )
    .await;
    assert_eq!(stored, 40);
    let suppressed: i64 = scalar(
        "select count(*) from public.suppressions where user_id = $1",
        &[&user.id],
    )
    .await;
    // Hard bounces, complaints, and (limit 1) the delayed ones.
    assert_eq!(suppressed, 30);
    assert_counts_exact(&user, campaign).await;
}

#[tokio::test]
async fn another_users_emails_are_unmatched_and_untouched() {
    let stack = ready().await;
    let owner = new_user(&stack).await;
    let intruder = new_user(&stack).await;
    let campaign = insert_campaign(&owner, "Private", "sending").await;
    let target = email(&owner, campaign, "victim@example.test", "sent").await;
    let before = state_of(&owner).await;

    let got = outcomes(
        &stack,
        &intruder,
        json!([
            {"key": "x1", "email_id": target, "kind": "failed", "status": "5.1.1", "arrived_at": ARRIVED},
            report("x2", target, "complaint", None),
        ]),
        None,
    )
    .await;
    assert_eq!(got, vec!["unmatched", "unmatched"]);
    assert_eq!(state_of(&owner).await, before);
    let theirs: i64 = scalar(
        "select count(*) from public.delivery_reports where user_id = $1",
        &[&intruder.id],
    )
    .await;
    assert_eq!(theirs, 0, "nothing stored for an unmatched report");
    assert_eq!(suppression(&intruder, "victim@example.test").await, None);

    // The owner's own key is theirs alone: the intruder's unmatched key does
    // not make it a duplicate for the owner.
    let got = outcomes(
        &stack,
        &owner,
        json!([report("x2", target, "delivered", None)]),
        None,
    )
    .await;
    assert_eq!(got, vec!["recorded"]);
    // And the intruder cannot read the owner's reports.
    let (status, body) = rest(
        &stack,
        Method::GET,
        "delivery_reports?select=id",
        Some(&intruder.token),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn malformed_and_oversized_input_is_refused() {
    let stack = ready().await;
    let user = new_user(&stack).await;
    let campaign = insert_campaign(&user, "Bounds", "sending").await;
    let e = email(&user, campaign, "bounds@example.test", "sent").await;

    // More than 1000 elements, or not an array: the whole call is refused.
    let many: Vec<Value> = (0..1001)
        .map(|i| report(&format!("m{i}"), e, "delivered", None))
        .collect();
    let (status, body) = record(&stack, &user, Value::Array(many), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "22023", "{body}");
    let (status, body) = record(&stack, &user, json!({"key": "k"}), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "22023", "{body}");
    let (status, body) = record(&stack, &user, json!([]), Some(0)).await;
    assert_eq!(status, 400, "{body}");
    // Anonymous callers cannot call it at all.
    let (status, _) = rest(
        &stack,
        Method::POST,
        "rpc/record_delivery_reports",
        None,
        Some(json!({"reports": []})),
        None,
    )
    .await;
    assert!(status == 401 || status == 403, "{status}");

    // Element by element: invalid ones store nothing.
    let mut long_diagnostic = report("long-diag", e, "relayed", None);
    long_diagnostic["diagnostic"] = json!("x".repeat(5000));
    let got = outcomes(
        &stack,
        &user,
        json!([
            report(&"k".repeat(201), e, "delivered", None),
            report("bad-kind", e, "bounced", None),
            report("bad-status", e, "failed", Some("5.1")),
            report("success-failure", e, "failed", Some("2.0.0")),
            report("no-status", e, "failed", None),
            {"key": "no-date", "message_id": message_id(e), "kind": "delivered"},
            {"key": "bad-date", "message_id": message_id(e), "kind": "delivered", "arrived_at": "yesterday"},
            {"key": "bad-id", "email_id": "not-a-uuid", "kind": "delivered", "arrived_at": ARRIVED},
            {"key": 7, "message_id": message_id(e), "kind": "delivered", "arrived_at": ARRIVED},
            "a string",
            long_diagnostic,
            report(&"k".repeat(200), e, "expanded", None),
        ]),
        None,
    )
    .await;
    let mut want = vec!["invalid"; 10];
    want.extend(["recorded", "recorded"]);
    assert_eq!(got, want);
    let kept: i32 = scalar(
        "select length(diagnostic) from public.delivery_reports where user_id = $1 and report_key = 'long-diag'",
        &[&user.id],
    )
    .await;
    assert_eq!(kept, 2000, "a long diagnostic is cut, not refused");
    assert_eq!(status_of(e).await, "sent");
    let stored: i64 = scalar(
        "select count(*) from public.delivery_reports where user_id = $1",
        &[&user.id],
    )
    .await;
    assert_eq!(stored, 2);
}

/// A full batch stays far inside the API's 8-second limit for a user with
/// many emails: each report finds its email through an index (by id or by
/// Message-ID), not by reading the user's emails.
#[tokio::test]
async fn a_batch_of_1000_reports_is_quick_among_many_emails() {
    let stack = ready().await;
    let user = new_user(&stack).await;
    let campaign = insert_campaign(&user, "Big", "sending").await;
    let ids: Vec<Uuid> = common::column(
        "insert into public.emails_sent (user_id, campaign_id, recipient_email, status, message_id)
         select $1, $2, 'big' || g || '@example.test', 'sent', '<' || gen_random_uuid() || '@test>'
         from generate_series(1, 30000) g
         returning id",
        &[&user.id, &campaign],
    )
    .await;
    let message_ids: Vec<String> = common::column(
        "select message_id from public.emails_sent where user_id = $1 order by id limit 500",
        &[&user.id],
    )
    .await;
    let mut reports: Vec<Value> = message_ids
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"key": format!("big-m{i}"), "message_id": m, "kind": "delivered", "arrived_at": ARRIVED})
        })
        .collect();
    reports.extend(ids.iter().rev().take(500).enumerate().map(|(i, id)| {
        json!({"key": format!("big-i{i}"), "email_id": id, "kind": "delayed", "status": "4.2.2", "arrived_at": ARRIVED})
    }));
    let started = std::time::Instant::now();
    let got = outcomes(&stack, &user, Value::Array(reports), None).await;
    let took = started.elapsed();
    assert_eq!(got.len(), 1000);
    assert!(got.iter().all(|o| o == "recorded"), "{got:?}");
    assert!(
        took < std::time::Duration::from_secs(3),
        "1000 reports took {took:?}"
    );
    assert_counts_exact(&user, campaign).await;
}

/// A worker that died holding a claim (`claim_emails` with `hand`) left its
/// emails `pending` in the claim; once the claim's lease has ended, a report
/// for one of them settles it (the claim becomes unknown outcomes first),
/// and the other stays unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_settles_an_email_of_a_dead_workers_expired_claim() {
    let stack = ready().await;
    let user = new_user(&stack).await;
    let campaign = insert_campaign(&user, "Claimed, then the worker died", "sending").await;
    let reported = email(&user, campaign, "reported@example.test", "pending").await;
    let silent = email(&user, campaign, "silent@example.test", "pending").await;
    let (status, claimed) = rest(
        &stack,
        Method::POST,
        "rpc/claim_emails",
        Some(&user.token),
        Some(json!({"campaign": campaign, "max_emails": 10, "worker": "dead", "hand": true})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed.as_array().map(Vec::len), Some(2), "{claimed}");
    assert_eq!(
        status_of(reported).await,
        "pending",
        "a claim writes no email"
    );
    admin()
        .await
        .execute(
            "update public.email_claims set lease_expires_at = now() - interval '1 second'
              where campaign_id = $1",
            &[&campaign],
        )
        .await
        .unwrap();

    let got = outcomes(
        &stack,
        &user,
        json!([report("r-1", reported, "delivered", Some("2.0.0"))]),
        None,
    )
    .await;
    assert_eq!(got, vec!["recorded"]);
    assert_eq!(status_of(reported).await, "delivered");
    let (left, handed, message): (String, bool, String) = {
        let row = admin()
            .await
            .query_one(
                "select status, handed_at is not null, message_id from public.emails_sent where id = $1",
                &[&silent],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!(
        (left.as_str(), handed, message),
        ("sending", true, message_id(silent)),
        "the other one: unknown, its Message-ID kept"
    );
    let claims: i64 = scalar(
        "select count(*) from public.email_claims where campaign_id = $1",
        &[&campaign],
    )
    .await;
    assert_eq!(claims, 0);
}
