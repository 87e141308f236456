//! A project shared by many users (docs/shared-project.md,
//! sql/schema/13_limits.sql): every text column and every array an API
//! function takes is bounded by the database itself, through the REST API
//! as well as through mailsync; the per-user quotas hold for the CLI and for
//! direct REST writes.

use crate::common;

use common::{admin, new_user, rest, run_as, stderr, Stack, User};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

async fn post(stack: &Stack, user: &User, path: &str, body: Value) -> (u16, Value) {
    rest(
        stack,
        Method::POST,
        path,
        Some(&user.token),
        Some(body),
        Some("return=representation"),
    )
    .await
}

/// Refused with the check constraint `constraint` (23514).
fn assert_bound(result: (u16, Value), constraint: &str, what: &str) {
    let (code, body) = result;
    let shown = format!("{:.400}", body.to_string());
    assert_eq!(code, 400, "{what}: {shown}");
    assert_eq!(body["code"], "23514", "{what}: {shown}");
    assert!(
        body["message"].as_str().unwrap_or("").contains(constraint),
        "{what}: {shown}"
    );
}

async fn campaign_of(stack: &Stack, user: &User) -> String {
    let (code, body) = post(
        stack,
        user,
        "email_campaigns",
        json!({"name": "Limites", "subject": "S", "content": "C"}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    body[0]["id"].as_str().unwrap().to_string()
}

/// Refused with the SQLSTATE `code` (400), and the message says `said`.
fn assert_refused(result: (u16, Value), code: &str, said: Option<&str>) {
    let (status, body) = result;
    assert_eq!((status, body["code"].as_str()), (400, Some(code)), "{body}");
    if let Some(said) = said {
        assert!(body["message"].as_str().unwrap().contains(said), "{body}");
    }
}

/// How many rows of `table` the user owns, read past RLS.
async fn rows_of(table: &str, user: &User) -> i64 {
    common::scalar(
        &format!("select count(*) from public.{table} where user_id = $1"),
        &[&user.id],
    )
    .await
}

/// A DELETE through REST, as the user, that succeeds.
async fn delete_as(stack: &Stack, user: &User, path: &str) {
    let (code, _) = rest(stack, Method::DELETE, path, Some(&user.token), None, None).await;
    assert_eq!(code, 204, "DELETE {path}");
}

/// A CLI run that fails with exit code 1, saying `said` on stderr.
fn assert_fails_saying(out: &std::process::Output, said: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    assert!(stderr(out).contains(said), "{}", stderr(out));
}

/// An address of `n` characters.
fn address(n: usize) -> String {
    format!("{}@x.fr", "a".repeat(n - 5))
}

#[tokio::test]
async fn every_user_written_text_column_is_bounded_through_rest() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let huge = "x".repeat(100_000);
    let campaign = campaign_of(&stack, &user).await;

    // (table, column, constraint, longest accepted, the row besides)
    let cases: Vec<(&str, &str, &str, String, Value)> = vec![
        (
            "organizations",
            "name",
            "organizations_name_length",
            "o".repeat(200),
            json!({}),
        ),
        (
            "contacts",
            "email",
            "contacts_email_length",
            address(254),
            json!({}),
        ),
        (
            "contacts",
            "organization_name",
            "contacts_organization_name_length",
            "o".repeat(200),
            json!({"email": "org@x.fr"}),
        ),
        (
            "email_campaigns",
            "name",
            "email_campaigns_name_length",
            "n".repeat(200),
            json!({}),
        ),
        (
            "email_campaigns",
            "subject",
            "email_campaigns_subject_length",
            "s".repeat(998),
            json!({"name": "s"}),
        ),
        (
            "email_campaigns",
            "content",
            "email_campaigns_content_size",
            "c".repeat(1_048_576),
            json!({"name": "c"}),
        ),
        (
            "email_templates",
            "name",
            "email_templates_name_length",
            "n".repeat(200),
            json!({}),
        ),
        (
            "email_templates",
            "subject",
            "email_templates_subject_length",
            "s".repeat(998),
            json!({"name": "s"}),
        ),
        (
            "email_templates",
            "content",
            "email_templates_content_size",
            "c".repeat(1_048_576),
            json!({"name": "c"}),
        ),
        (
            "emails_sent",
            "recipient_email",
            "emails_sent_recipient_email_length",
            address(254),
            json!({"campaign_id": campaign}),
        ),
        (
            "emails_sent",
            "recipient_organization",
            "emails_sent_recipient_organization_length",
            "o".repeat(200),
            json!({"campaign_id": campaign, "recipient_email": "r@x.fr"}),
        ),
        (
            "emails_sent",
            "error_message",
            "emails_sent_error_message_length",
            "e".repeat(2000),
            json!({"campaign_id": campaign, "recipient_email": "r@x.fr"}),
        ),
        (
            "emails_sent",
            "smtp_response",
            "emails_sent_smtp_response_length",
            "r".repeat(2000),
            json!({"campaign_id": campaign, "recipient_email": "r@x.fr"}),
        ),
        (
            "emails_sent",
            "message_id",
            "emails_sent_message_id_length",
            "m".repeat(998),
            json!({"campaign_id": campaign, "recipient_email": "r@x.fr"}),
        ),
        (
            "emails_sent",
            "lease_owner",
            "emails_sent_lease_owner_length",
            "w".repeat(200),
            json!({"campaign_id": campaign, "recipient_email": "r@x.fr"}),
        ),
        (
            "campaign_sends",
            "organization",
            "campaign_sends_organization_length",
            "o".repeat(200),
            json!({"campaign_id": campaign}),
        ),
        (
            "suppressions",
            "email",
            "suppressions_email_length",
            address(254),
            json!({"reason": "unsubscribed"}),
        ),
        (
            "suppressions",
            "detail",
            "suppressions_detail_length",
            "d".repeat(2000),
            json!({"reason": "unsubscribed", "email": "d@x.fr"}),
        ),
    ];
    for (table, column, constraint, longest, row) in cases {
        let what = format!("{table}.{column}");
        let with = |value: String| {
            let mut row = row.clone();
            row[column] = Value::String(value);
            row
        };
        // One character over (an address stays an address), and 100 000.
        let over = if column.contains("email") {
            address(longest.chars().count() + 1)
        } else {
            format!("{longest}x")
        };
        assert_bound(
            post(&stack, &user, table, with(over)).await,
            constraint,
            &what,
        );
        let huge = if column.contains("email") {
            address(100_000)
        } else if column == "content" {
            "x".repeat(2 * 1_048_576)
        } else {
            huge.clone()
        };
        assert_bound(
            post(&stack, &user, table, with(huge)).await,
            constraint,
            &what,
        );
        // The longest value is stored.
        let (code, body) = post(&stack, &user, table, with(longest)).await;
        assert_eq!(code, 201, "{what} at its bound: {:.400}", body.to_string());
        if table == "campaign_sends" {
            // One send per campaign: leave room for the next case.
            delete_as(
                &stack,
                &user,
                &format!("campaign_sends?campaign_id=eq.{campaign}"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn every_array_an_api_function_takes_is_bounded() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;

    let rows: Vec<Value> = (0..50_001)
        .map(|i| json!({"email": format!("c{i}@x.fr")}))
        .collect();
    assert_refused(
        post(&stack, &user, "rpc/import_contacts", json!({"rows": rows})).await,
        "22023",
        Some("at most 50000 rows"),
    );
    assert_eq!(rows_of("contacts", &user).await, 0, "nothing is written");

    let outcomes: Vec<Value> = (0..1001)
        .map(|_| json!({"id": Uuid::new_v4(), "status": "sent"}))
        .collect();
    assert_refused(
        post(
            &stack,
            &user,
            "rpc/record_email_outcomes",
            json!({"outcomes": outcomes, "worker": "w"}),
        )
        .await,
        "22023",
        Some("at most 1000 outcomes"),
    );

    let ids: Vec<Uuid> = (0..1001).map(|_| Uuid::new_v4()).collect();
    assert_refused(
        post(
            &stack,
            &user,
            "rpc/extend_email_leases",
            json!({"ids": ids, "worker": "w"}),
        )
        .await,
        "22023",
        Some("at most 1000 ids"),
    );
    // At the bound, the calls run.
    let (code, body) = post(
        &stack,
        &user,
        "rpc/extend_email_leases",
        json!({"ids": &ids[..1000], "worker": "w"}),
    )
    .await;
    assert_eq!((code, body), (200, json!(0)));

    let reports: Vec<Value> = (0..1001)
        .map(|i| json!({"key": format!("k{i}"), "kind": "failed"}))
        .collect();
    assert_refused(
        post(
            &stack,
            &user,
            "rpc/record_delivery_reports",
            json!({"reports": reports}),
        )
        .await,
        "22023",
        None,
    );

    // send_campaign: at most 20 000 contacts in one call.
    admin()
        .await
        .execute(
            "insert into public.contacts (user_id, email)
             select $1, 's' || g || '@x.fr' from generate_series(1, 20001) g",
            &[&user.id],
        )
        .await
        .unwrap();
    let campaign = campaign_of(&stack, &user).await;
    assert_refused(
        post(
            &stack,
            &user,
            "rpc/send_campaign",
            json!({"campaign": campaign}),
        )
        .await,
        "22023",
        Some("at most 20000 contacts"),
    );
    assert_eq!(rows_of("emails_sent", &user).await, 0, "nothing is queued");
}

async fn set_quota(user: &User, contacts: Option<i64>, emails: Option<i64>) {
    admin()
        .await
        .execute(
            "insert into public.mailsync_quotas (user_id, max_contacts, max_emails_per_day)
             values ($1, $2, $3)
             on conflict (user_id) do update set max_contacts = excluded.max_contacts,
               max_emails_per_day = excluded.max_emails_per_day",
            &[&user.id, &contacts, &emails],
        )
        .await
        .unwrap();
}

fn csv_of(dir: &std::path::Path, first: usize, n: usize) -> String {
    let file = dir.join(format!("c{first}.csv"));
    let mut text = String::from("organisation,email\n");
    for i in first..first + n {
        text.push_str(&format!("Acme,q{i}@x.fr\n"));
    }
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_string()
}

#[tokio::test]
async fn the_contact_quota_holds_for_the_cli_and_for_direct_rest_writes() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    set_quota(&user, Some(5), None).await;
    let dir = tempfile::tempdir().unwrap();

    let first = run_as(&stack, &user, &["import", &csv_of(dir.path(), 0, 4)]);
    assert!(first.status.success(), "{}", stderr(&first));
    // Re-importing the same rows creates nothing, so counts nothing.
    let again = run_as(&stack, &user, &["import", &csv_of(dir.path(), 0, 4)]);
    assert!(again.status.success(), "{}", stderr(&again));

    let (code, body) = post(&stack, &user, "contacts", json!({"email": "r1@x.fr"})).await;
    assert_eq!(code, 201, "the fifth: {body}");
    assert_refused(
        post(&stack, &user, "contacts", json!({"email": "r2@x.fr"})).await,
        "MSQTA",
        Some("at most 5 contacts"),
    );

    let over = run_as(&stack, &user, &["import", &csv_of(dir.path(), 10, 3)]);
    assert_fails_saying(
        &over,
        "the contact quota is reached: at most 5 contacts per user, and this would make 8",
    );
    assert!(
        stderr(&over).contains("public.mailsync_quotas"),
        "{}",
        stderr(&over)
    );
    assert_eq!(rows_of("contacts", &user).await, 5);

    // Deleting makes room again.
    delete_as(&stack, &user, "contacts?email=eq.r1@x.fr").await;
    let (code, body) = post(&stack, &user, "contacts", json!({"email": "r3@x.fr"})).await;
    assert_eq!(code, 201, "{body}");
    let kept: i64 = common::scalar(
        "select contacts from public.user_contact_counts where user_id = $1",
        &[&user.id],
    )
    .await;
    assert_eq!(kept, 5);
}

/// One more email queued by a direct REST insert.
async fn one_more(stack: &Stack, user: &User, campaign: &str) -> (u16, Value) {
    post(
        stack,
        user,
        "emails_sent",
        json!({"campaign_id": campaign, "recipient_email": "d9@x.fr"}),
    )
    .await
}

#[tokio::test]
async fn the_daily_email_quota_holds_for_campaigns_send_and_direct_inserts() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    set_quota(&user, None, Some(3)).await;
    for i in 0..4 {
        let (code, body) = post(
            &stack,
            &user,
            "contacts",
            json!({"email": format!("e{i}@x.fr")}),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }
    let campaign = campaign_of(&stack, &user).await;

    let send = run_as(&stack, &user, &["campaigns", "send", &campaign, "--yes"]);
    assert_fails_saying(
        &send,
        "the daily email quota is reached: at most 3 emails queued per user per day (UTC), and this would make 4",
    );
    assert_eq!(rows_of("emails_sent", &user).await, 0);

    let rows: Vec<Value> = (0..3)
        .map(|i| json!({"campaign_id": campaign, "recipient_email": format!("d{i}@x.fr")}))
        .collect();
    let (code, body) = post(&stack, &user, "emails_sent", json!(rows)).await;
    assert_eq!(code, 201, "{body}");
    assert_refused(one_more(&stack, &user, &campaign).await, "MSQTA", None);
    // Deleting gives nothing back.
    delete_as(
        &stack,
        &user,
        &format!("emails_sent?campaign_id=eq.{campaign}"),
    )
    .await;
    assert_refused(one_more(&stack, &user, &campaign).await, "MSQTA", None);
}

#[tokio::test]
async fn users_read_their_quotas_and_only_the_owner_writes_them() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let other = new_user(&stack).await;
    set_quota(&other, Some(7), None).await;
    set_quota(&user, Some(9), None).await;

    let (code, body) = rest(
        &stack,
        Method::GET,
        "mailsync_quotas?select=user_id,max_contacts",
        Some(&user.token),
        None,
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let rows = body.as_array().unwrap();
    assert_eq!(rows.len(), 2, "the default and their own: {body}");
    assert!(rows.iter().any(|r| r["user_id"].is_null()));
    assert!(rows
        .iter()
        .any(|r| r["user_id"] == user.id.to_string() && r["max_contacts"] == 9));

    for (method, path, body) in [
        (
            Method::PATCH,
            format!("mailsync_quotas?user_id=eq.{}", user.id),
            Some(json!({"max_contacts": 1_000_000_000})),
        ),
        (
            Method::PATCH,
            "mailsync_quotas?user_id=is.null".to_string(),
            Some(json!({"max_contacts": null})),
        ),
        (
            Method::POST,
            "mailsync_quotas".to_string(),
            Some(json!({"max_contacts": 1})),
        ),
        (
            Method::DELETE,
            format!("mailsync_quotas?user_id=eq.{}", user.id),
            None,
        ),
        (
            Method::POST,
            "user_contact_counts".to_string(),
            Some(json!({"user_id": user.id, "contacts": -100})),
        ),
        (
            Method::PATCH,
            format!("user_daily_queued_counts?user_id=eq.{}", user.id),
            Some(json!({"emails": 0})),
        ),
    ] {
        let (code, answer) =
            rest(&stack, method.clone(), &path, Some(&user.token), body, None).await;
        assert!(
            code == 401 || code == 403,
            "{method} {path}: {code} {answer}"
        );
    }
    let kept: i64 = common::scalar(
        "select max_contacts from public.mailsync_quotas where user_id = $1",
        &[&user.id],
    )
    .await;
    assert_eq!(kept, 9);
}

/// `db apply` on a database whose rows are already over a bound: it
/// succeeds, keeps the rows, checks new ones; `db verify` fails on that
/// bound until the rows are shortened and the schema applied again.
#[tokio::test]
async fn applying_the_bounds_over_existing_long_rows_keeps_them_and_verify_says_so() {
    let stack = common::ready().await;
    let db = common::ScratchDb::create(&stack).await;
    let run = |args: &[&str]| common::mailsync(&stack, args, &[("SUPABASE_DB_URL", &db.url)]);
    assert!(run(&["db", "apply", "--yes"]).status.success());
    let client = db.client().await;
    let user = Uuid::new_v4();
    common::insert_user(&client, user, "long@example.test").await;
    // A row stored before the bound existed.
    client
        .batch_execute(&format!(
            "alter table public.contacts drop constraint contacts_email_length;
             insert into public.contacts (user_id, email) values ('{user}', '{}');",
            address(300)
        ))
        .await
        .unwrap();

    let applied = run(&["db", "apply", "--yes"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let validated: bool = common::scalar_in(
        &client,
        "select convalidated from pg_catalog.pg_constraint where conname = 'contacts_email_length'",
        &[],
    )
    .await;
    assert!(!validated);
    let kept: i64 = common::scalar_in(&client, "select count(*) from public.contacts", &[]).await;
    assert_eq!(kept, 1, "the long row is kept");
    let longer = client
        .execute(
            "insert into public.contacts (user_id, email) values ($1, $2)",
            &[&user, &address(300).replacen('a', "b", 1)],
        )
        .await;
    assert!(longer.is_err(), "new rows are checked");

    let verify = run(&["db", "verify", "--json"]);
    assert_eq!(verify.status.code(), Some(4), "{}", stderr(&verify));
    let failing: Vec<String> = common::failing_checks(&common::json_of(&verify))
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failing, ["bound contacts_email_length on contacts"]);

    client
        .execute("delete from public.contacts", &[])
        .await
        .unwrap();
    assert!(run(&["db", "apply", "--yes"]).status.success());
    let verify = run(&["db", "verify", "--json"]);
    assert!(verify.status.success(), "{}", common::stdout(&verify));
    drop(client);
    db.drop(&stack).await;
}

/// What mailsync says when the database refuses a value as too long: the
/// sentence, the constraint, and where the limits are listed.
#[tokio::test]
async fn mailsync_names_the_bound_a_value_is_over() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let name = "n".repeat(201);
    let created = run_as(&stack, &user, &common::create_args("campaigns", &name));
    assert_eq!(created.status.code(), Some(1), "{}", stderr(&created));
    let err = stderr(&created);
    assert!(
        err.contains("a value is longer than the database allows (email_campaigns_name_length)"),
        "{err}"
    );
    assert!(err.contains("docs/shared-project.md"), "{err}");
}
