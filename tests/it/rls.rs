//! Row Level Security from the outside: through the REST API with real JWTs,
//! two users and an anonymous caller, every table and every view, every verb.

use crate::common;

use common::{new_user, rest, Stack, User};
use reqwest::Method;
use serde_json::{json, Value};

const TABLES: [&str; 5] = [
    "organizations",
    "contacts",
    "email_campaigns",
    "emails_sent",
    "email_templates",
];
const VIEWS: [&str; 3] = [
    "campaign_analytics",
    "contact_analytics",
    "dashboard_analytics",
];

/// A's rows: one in every table, created through the REST API as A.
struct Rows {
    ids: Vec<(&'static str, String)>,
    campaign: String,
    contact: String,
}

async fn insert(stack: &Stack, user: &User, table: &str, body: Value) -> Value {
    let (status, rows) = rest(
        stack,
        Method::POST,
        table,
        Some(&user.token),
        Some(body),
        Some("return=representation"),
    )
    .await;
    assert_eq!(status, 201, "insert into {table}: {rows}");
    rows[0].clone()
}

async fn seed(stack: &Stack, a: &User) -> Rows {
    let org = insert(stack, a, "organizations", json!({"name": "Alpha Org"})).await;
    let contact = insert(
        stack,
        a,
        "contacts",
        json!({"email": "x@alpha.test", "organization_name": "Alpha Org"}),
    )
    .await;
    let campaign = insert(
        stack,
        a,
        "email_campaigns",
        json!({"name": "A news", "subject": "S", "content": "C"}),
    )
    .await;
    let email = insert(
        stack,
        a,
        "emails_sent",
        json!({"campaign_id": campaign["id"], "contact_id": contact["id"], "recipient_email": "x@alpha.test"}),
    )
    .await;
    let template = insert(
        stack,
        a,
        "email_templates",
        json!({"name": "T", "subject": "S", "content": "C"}),
    )
    .await;
    for row in [&org, &contact, &campaign, &email, &template] {
        assert_eq!(
            row["user_id"],
            a.id.to_string(),
            "user_id defaults to auth.uid()"
        );
    }
    Rows {
        ids: vec![
            ("organizations", org["id"].as_str().unwrap().to_string()),
            ("contacts", contact["id"].as_str().unwrap().to_string()),
            (
                "email_campaigns",
                campaign["id"].as_str().unwrap().to_string(),
            ),
            ("emails_sent", email["id"].as_str().unwrap().to_string()),
            (
                "email_templates",
                template["id"].as_str().unwrap().to_string(),
            ),
        ],
        campaign: campaign["id"].as_str().unwrap().to_string(),
        contact: contact["id"].as_str().unwrap().to_string(),
    }
}

/// A row that the table would accept from its owner, so that a refusal can
/// only come from the privileges, never from a malformed body.
fn well_formed_row(table: &str, rows: &Rows, owner: &User) -> Value {
    let mut row = match table {
        "organizations" => json!({"name": "Anon Org"}),
        "contacts" => json!({"email": "anon@alpha.test"}),
        "email_campaigns" => json!({"name": "Anon", "subject": "S"}),
        "emails_sent" => {
            json!({"campaign_id": rows.campaign, "recipient_email": "anon@alpha.test"})
        }
        "email_templates" => json!({"name": "Anon", "subject": "S", "content": "C"}),
        other => panic!("no row for {other}"),
    };
    row["user_id"] = json!(owner.id);
    row
}

fn is_refusal(status: u16, body: &Value) -> bool {
    // PostgREST answers 403 (401 for anon); the stack's server answers 401.
    status == 401 || (status == 403 && body["code"] == "42501")
}

#[tokio::test]
async fn user_b_never_reads_changes_or_deletes_user_a_rows() {
    let stack = common::ready().await;
    let a = new_user(&stack).await;
    let b = new_user(&stack).await;
    let rows = seed(&stack, &a).await;

    for (table, id) in &rows.ids {
        let path = format!("{table}?id=eq.{id}");
        let (status, seen) = rest(&stack, Method::GET, &path, Some(&b.token), None, None).await;
        assert_eq!(
            (status, seen.clone()),
            (200, json!([])),
            "B reads A's {table}"
        );
        let (status, all) = rest(&stack, Method::GET, table, Some(&b.token), None, None).await;
        assert_eq!((status, all), (200, json!([])), "B lists {table}");

        let patch = match *table {
            "emails_sent" => json!({"status": "failed"}),
            "contacts" => json!({"email": "hijacked@b.test"}),
            _ => json!({"name": "hijacked"}),
        };
        let (status, changed) = rest(
            &stack,
            Method::PATCH,
            &path,
            Some(&b.token),
            Some(patch),
            Some("return=representation"),
        )
        .await;
        assert!(
            status == 200 && changed == json!([]),
            "B updates A's {table}: {status} {changed}"
        );

        let (status, deleted) = rest(
            &stack,
            Method::DELETE,
            &path,
            Some(&b.token),
            None,
            Some("return=representation"),
        )
        .await;
        assert!(
            status == 200 && deleted == json!([]),
            "B deletes A's {table}: {status} {deleted}"
        );

        // A still has the row, unchanged.
        let (_, mine) = rest(&stack, Method::GET, &path, Some(&a.token), None, None).await;
        assert_eq!(
            mine.as_array().unwrap().len(),
            1,
            "A's {table} row survived"
        );
        assert_ne!(mine[0]["name"], "hijacked");
        assert_ne!(mine[0]["email"], "hijacked@b.test");
        assert_ne!(mine[0]["status"], "failed");
    }

    for view in VIEWS {
        let (status, seen) = rest(&stack, Method::GET, view, Some(&b.token), None, None).await;
        assert_eq!(status, 200, "{view}");
        let leaked: Vec<&Value> = seen
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["user_id"] == a.id.to_string())
            .collect();
        assert!(leaked.is_empty(), "B sees A's rows in {view}: {leaked:?}");
    }
    // B's dashboard is B's own row of zeros.
    let (_, dash) = rest(
        &stack,
        Method::GET,
        "dashboard_analytics",
        Some(&b.token),
        None,
        None,
    )
    .await;
    assert_eq!(dash.as_array().unwrap().len(), 1);
    assert_eq!(dash[0]["user_id"], b.id.to_string());
    assert_eq!(dash[0]["total_contacts"], 0);
    // A sees their own analytics.
    let (_, analytics) = rest(
        &stack,
        Method::GET,
        "campaign_analytics",
        Some(&a.token),
        None,
        None,
    )
    .await;
    assert_eq!(analytics.as_array().unwrap().len(), 1);
    assert_eq!(analytics[0]["total_emails"], 1);
}

#[tokio::test]
async fn user_b_cannot_insert_rows_owned_by_a_nor_point_at_a_rows() {
    let stack = common::ready().await;
    let a = new_user(&stack).await;
    let b = new_user(&stack).await;
    let rows = seed(&stack, &a).await;
    let owned_by_a = json!({"user_id": a.id});

    for (table, body) in [
        ("organizations", json!({"name": "Mine now"})),
        ("contacts", json!({"email": "b@b.test"})),
        ("email_campaigns", json!({"name": "B", "subject": "S"})),
        ("email_templates", json!({"name": "B", "subject": "S"})),
        (
            "emails_sent",
            json!({"campaign_id": rows.campaign, "contact_id": rows.contact, "recipient_email": "x@alpha.test"}),
        ),
    ] {
        let mut body = body;
        body.as_object_mut()
            .unwrap()
            .extend(owned_by_a.as_object().unwrap().clone());
        let (status, err) = rest(
            &stack,
            Method::POST,
            table,
            Some(&b.token),
            Some(body),
            None,
        )
        .await;
        assert!(
            is_refusal(status, &err),
            "B inserts a row owned by A into {table}: {status} {err}"
        );
    }

    // B's own email row pointing at A's campaign or A's contact: the
    // composite foreign keys refuse it.
    let b_campaign = insert(
        &stack,
        &b,
        "email_campaigns",
        json!({"name": "B news", "subject": "S"}),
    )
    .await;
    let b_contact = insert(&stack, &b, "contacts", json!({"email": "y@beta.test"})).await;
    for body in [
        json!({"campaign_id": rows.campaign, "contact_id": b_contact["id"], "recipient_email": "y@beta.test"}),
        json!({"campaign_id": b_campaign["id"], "contact_id": rows.contact, "recipient_email": "x@alpha.test"}),
    ] {
        let (status, err) = rest(
            &stack,
            Method::POST,
            "emails_sent",
            Some(&b.token),
            Some(body),
            None,
        )
        .await;
        assert_eq!(
            (status, err["code"].clone()),
            (409, json!("23503")),
            "{err}"
        );
    }
    // Re-pointing B's existing email at A's campaign is refused too.
    let email = insert(
        &stack,
        &b,
        "emails_sent",
        json!({"campaign_id": b_campaign["id"], "contact_id": b_contact["id"], "recipient_email": "y@beta.test"}),
    )
    .await;
    let (status, err) = rest(
        &stack,
        Method::PATCH,
        &format!("emails_sent?id=eq.{}", email["id"].as_str().unwrap()),
        Some(&b.token),
        Some(json!({"campaign_id": rows.campaign})),
        None,
    )
    .await;
    assert_eq!(status, 409, "{err}");
    // And handing a row over to A is refused by the update policy.
    let (status, err) = rest(
        &stack,
        Method::PATCH,
        &format!(
            "email_campaigns?id=eq.{}",
            b_campaign["id"].as_str().unwrap()
        ),
        Some(&b.token),
        Some(json!({"user_id": a.id})),
        None,
    )
    .await;
    assert!(is_refusal(status, &err), "{status} {err}");
}

#[tokio::test]
async fn anon_gets_nothing() {
    let stack = common::ready().await;
    let a = new_user(&stack).await;
    let rows = seed(&stack, &a).await;
    for relation in TABLES.iter().chain(VIEWS.iter()) {
        let (status, body) = rest(&stack, Method::GET, relation, None, None, None).await;
        assert!(
            status == 401 || status == 403,
            "anon reads {relation}: {status} {body}"
        );
    }
    for (table, id) in &rows.ids {
        let path = format!("{table}?id=eq.{id}");
        let (status, _) = rest(
            &stack,
            Method::PATCH,
            &path,
            None,
            Some(json!({"updated_at": "2001-01-01T00:00:00Z"})),
            None,
        )
        .await;
        assert!(
            status == 401 || status == 403,
            "anon updates {table}: {status}"
        );
        let (status, _) = rest(&stack, Method::DELETE, &path, None, None, None).await;
        assert!(
            status == 401 || status == 403,
            "anon deletes {table}: {status}"
        );
        let (status, _) = rest(
            &stack,
            Method::POST,
            table,
            None,
            Some(well_formed_row(table, &rows, &a)),
            None,
        )
        .await;
        assert!(
            status == 401 || status == 403,
            "anon inserts into {table}: {status}"
        );
        let (_, still) = rest(&stack, Method::GET, &path, Some(&a.token), None, None).await;
        assert_eq!(still.as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn an_expired_or_forged_token_is_refused() {
    let stack = common::ready().await;
    let a = new_user(&stack).await;
    let expired = common::sign(&stack, &a.id, &a.email, -120);
    let (status, _) = rest(&stack, Method::GET, "contacts", Some(&expired), None, None).await;
    assert_eq!(status, 401);
    let forged_stack = Stack {
        jwt_secret: "another-secret-that-is-at-least-32-characters".into(),
        ..stack.clone()
    };
    let forged = common::sign(&forged_stack, &a.id, &a.email, 3600);
    let (status, _) = rest(&stack, Method::GET, "contacts", Some(&forged), None, None).await;
    assert_eq!(status, 401);
}
