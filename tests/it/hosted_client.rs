//! The client under hosted limits: `campaigns send` in pages, resumed after
//! an interruption, and every list read until an empty page whatever the
//! REST row cap (the stack's capped API: 100 rows).

use crate::common;

use common::{admin, json_of, mailsync, new_user, rest, stderr, Stack, User};
use reqwest::Method;
use serde_json::json;

fn run_as(stack: &Stack, user: &User, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut all = vec![("MAILSYNC_ACCESS_TOKEN", user.token.as_str())];
    all.extend_from_slice(env);
    mailsync(stack, args, &all)
}

fn capped_url(stack: &Stack) -> String {
    std::env::var("MAILSYNC_CAPPED_URL").unwrap_or_else(|_| {
        let port = url::Url::parse(&stack.url).unwrap().port().unwrap();
        format!("http://127.0.0.1:{}", port + 7)
    })
}

async fn seed_contacts(user: &User, n: i64) {
    admin()
        .await
        .execute(
            "insert into public.contacts (user_id, email) select $1, 'k' || g || '@example.fr'
             from generate_series(1, $2::int8) g",
            &[&user.id, &n],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn send_queues_in_pages_and_an_interrupted_send_is_resumed() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed_contacts(&user, 12_000).await;
    let made = run_as(
        &stack,
        &user,
        &[
            "--json",
            "campaigns",
            "create",
            "--name",
            "Big",
            "--subject",
            "S",
            "--content",
            "C",
        ],
        &[],
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let id = json_of(&made)["id"].as_str().unwrap().to_string();
    // An earlier run that stopped after one page of 1000.
    let (code, body) = rest(
        &stack,
        Method::POST,
        "rpc/queue_campaign_page",
        Some(&user.token),
        Some(json!({"campaign": id, "page_size": 1000})),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");

    let sent = run_as(
        &stack,
        &user,
        &["--json", "campaigns", "send", &id, "--yes"],
        &[],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let r = json_of(&sent);
    assert_eq!(r["queued"], 12_000);
    assert_eq!(r["queued_now"], 11_000);
    assert_eq!(r["resumed"], true);
    assert_eq!(r["status"], "sending");
    assert!(r["calls"].as_u64().unwrap() >= 2, "{r}");
    let count: i64 = admin()
        .await
        .query_one(
            "select count(distinct contact_id) + count(*) from public.emails_sent where campaign_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 24_000, "each contact exactly once");
}

#[tokio::test]
async fn every_list_reads_past_a_row_cap_of_100() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed_contacts(&user, 230).await;
    let db = admin().await;
    db.execute(
        "insert into public.email_campaigns (user_id, name, status, started_at, completed_at)
         select $1, 'C' || g, 'sent', now(), now() from generate_series(1, 150) g",
        &[&user.id],
    )
    .await
    .unwrap();
    db.execute(
        "insert into public.email_templates (user_id, name) select $1, 'T' || g from generate_series(1, 120) g",
        &[&user.id],
    )
    .await
    .unwrap();
    let capped = capped_url(&stack);
    let env = [("SUPABASE_URL", capped.as_str())];
    let len = |args: &[&str]| {
        let o = run_as(&stack, &user, args, &env);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        json_of(&o)
    };
    assert_eq!(
        len(&["--json", "campaigns", "list"])
            .as_array()
            .unwrap()
            .len(),
        150
    );
    assert_eq!(
        len(&["--json", "templates", "list"])
            .as_array()
            .unwrap()
            .len(),
        120
    );
    assert_eq!(
        len(&["--json", "contacts", "list", "--limit", "0"])
            .as_array()
            .unwrap()
            .len(),
        230
    );
    let watch = len(&["--json", "campaigns", "watch", "--once", "--mode", "poll"]);
    assert_eq!(watch["sent"].as_array().unwrap().len(), 150);
}
