//! The schema as SQL users meet it: the guide's examples, run verbatim as an
//! authenticated user the way PostgREST runs requests (role `authenticated`,
//! `request.jwt.claims` set), and the triggers' behaviour.

use crate::common;

use common::{admin, new_user, rows_as};

// The guide's SQL examples, verbatim. The three placeholders of the guide
// (`campaign_uuid`, `contact_uuid`, `email_uuid`) stand for ids the reader
// substitutes; the test substitutes real ones and changes nothing else.
const GUIDE_SENDING: &str = "SELECT * FROM campaign_analytics 
WHERE campaign_status = 'sending' 
AND user_id = auth.uid();";
const GUIDE_CONTACTS: &str = "SELECT * FROM contact_analytics 
WHERE user_id = auth.uid()
ORDER BY organization_name, email;";
const GUIDE_DASHBOARD: &str = "SELECT * FROM dashboard_analytics 
WHERE user_id = auth.uid();";
const GUIDE_IMPORT: &str = "-- Import depuis Excel
INSERT INTO contacts (email, organization_name, user_id)
VALUES ('contact@entreprise.com', 'Entreprise SA', auth.uid());";
const GUIDE_CAMPAIGN: &str = "-- Nouvelle campagne
INSERT INTO email_campaigns (name, subject, content, user_id)
VALUES ('Newsletter', 'Sujet', 'Contenu', auth.uid());";
const GUIDE_SEND: &str = "-- Ajout d'email envoyé
INSERT INTO emails_sent (campaign_id, contact_id, recipient_email, status, user_id)
VALUES (campaign_uuid, contact_uuid, 'email@contact.com', 'sending', auth.uid());";
const GUIDE_UPDATE: &str = "-- Mise à jour en temps réel
UPDATE emails_sent 
SET status = 'delivered', delivered_at = NOW()
WHERE id = email_uuid;";

fn get<'a>(row: &'a std::collections::HashMap<String, Option<String>>, col: &str) -> &'a str {
    row.get(col)
        .unwrap_or_else(|| panic!("no column {col} in {row:?}"))
        .as_deref()
        .unwrap_or("NULL")
}

#[tokio::test]
async fn every_guide_example_runs_verbatim_as_an_authenticated_user() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let other = new_user(&stack).await;
    let mut db = admin().await;

    // Another user's data must never show up in the guide's queries.
    rows_as(&mut db, &other, GUIDE_IMPORT).await;

    // 1. Import des contacts: the organisation is created too (step 3).
    rows_as(&mut db, &user, GUIDE_IMPORT).await;
    let contacts = rows_as(&mut db, &user, GUIDE_CONTACTS).await;
    assert_eq!(contacts.len(), 1);
    assert_eq!(get(&contacts[0], "email"), "contact@entreprise.com");
    assert_eq!(get(&contacts[0], "organization_name"), "Entreprise SA");
    assert_eq!(get(&contacts[0], "emails_received"), "0");
    let contact_id = get(&contacts[0], "contact_id").to_string();
    let orgs = rows_as(&mut db, &user, "select name from organizations").await;
    assert_eq!(orgs.len(), 1);
    assert_eq!(get(&orgs[0], "name"), "Entreprise SA");

    // 2. Création de campagne.
    rows_as(&mut db, &user, GUIDE_CAMPAIGN).await;
    let campaign = rows_as(&mut db, &user, "select id, status from email_campaigns").await;
    assert_eq!(get(&campaign[0], "status"), "draft");
    let campaign_id = get(&campaign[0], "id").to_string();
    rows_as(
        &mut db,
        &user,
        "update email_campaigns set status = 'sending'",
    )
    .await;

    // 3. Envoi en temps réel.
    let send = GUIDE_SEND
        .replace("campaign_uuid", &format!("'{campaign_id}'"))
        .replace("contact_uuid", &format!("'{contact_id}'"));
    rows_as(&mut db, &user, &send).await;
    let sending = rows_as(&mut db, &user, GUIDE_SENDING).await;
    assert_eq!(sending.len(), 1, "Envoi en progression");
    assert_eq!(get(&sending[0], "campaign_name"), "Newsletter");
    assert_eq!(get(&sending[0], "total_emails"), "1");
    assert_eq!(get(&sending[0], "sending_count"), "1");
    assert_eq!(get(&sending[0], "progress"), "0.00");
    let email = rows_as(
        &mut db,
        &user,
        "select id, recipient_organization, sent_at from emails_sent",
    )
    .await;
    assert_eq!(get(&email[0], "recipient_organization"), "Entreprise SA");
    assert_eq!(get(&email[0], "sent_at"), "NULL");

    // 4. Mise à jour du statut.
    let update = GUIDE_UPDATE.replace("email_uuid", &format!("'{}'", get(&email[0], "id")));
    rows_as(&mut db, &user, &update).await;
    let analytics = rows_as(&mut db, &user, "select * from campaign_analytics").await;
    assert_eq!(get(&analytics[0], "delivered_count"), "1");
    assert_eq!(get(&analytics[0], "success_rate"), "100.00");
    assert_eq!(get(&analytics[0], "progress"), "100.00");
    let email = rows_as(
        &mut db,
        &user,
        "select sent_at, delivered_at from emails_sent",
    )
    .await;
    assert_ne!(
        get(&email[0], "sent_at"),
        "NULL",
        "sent_at follows delivered"
    );
    assert_ne!(get(&email[0], "delivered_at"), "NULL");

    let dashboard = rows_as(&mut db, &user, GUIDE_DASHBOARD).await;
    assert_eq!(dashboard.len(), 1);
    assert_eq!(get(&dashboard[0], "total_contacts"), "1");
    assert_eq!(get(&dashboard[0], "total_organizations"), "1");
    assert_eq!(get(&dashboard[0], "emails_sent_today"), "1");
    let contacts = rows_as(&mut db, &user, GUIDE_CONTACTS).await;
    assert_eq!(get(&contacts[0], "emails_delivered"), "1");
    assert_eq!(get(&contacts[0], "delivery_rate"), "100.00");
}

#[tokio::test]
async fn a_contact_naming_a_missing_organisation_creates_it_for_its_user_only() {
    let stack = common::ready().await;
    let a = new_user(&stack).await;
    let b = new_user(&stack).await;
    let mut db = admin().await;
    rows_as(
        &mut db,
        &a,
        "insert into contacts (email, organization_name) values (' Ann@Acme.Test ', '  Acme   Corp ')",
    )
    .await;
    rows_as(
        &mut db,
        &a,
        "insert into contacts (email, organization_name) values ('bob@acme.test', 'ACME CORP')",
    )
    .await;
    rows_as(
        &mut db,
        &b,
        "insert into contacts (email, organization_name) values ('carl@acme.test', 'acme corp')",
    )
    .await;

    let a_orgs = rows_as(&mut db, &a, "select name from organizations").await;
    assert_eq!(a_orgs.len(), 1, "case-insensitive per user: {a_orgs:?}");
    assert_eq!(get(&a_orgs[0], "name"), "Acme Corp");
    let b_orgs = rows_as(&mut db, &b, "select name from organizations").await;
    assert_eq!(b_orgs.len(), 1);
    assert_eq!(get(&b_orgs[0], "name"), "acme corp");
    let ann = rows_as(
        &mut db,
        &a,
        "select email, organization_name from contacts order by email",
    )
    .await;
    assert_eq!(
        get(&ann[0], "email"),
        "ann@acme.test",
        "trimmed and lower-cased"
    );
    assert_eq!(get(&ann[0], "organization_name"), "Acme Corp");

    // Unique per user on the lower-cased email; the same email for B is fine.
    rows_as(
        &mut db,
        &b,
        "insert into contacts (email) values ('ann@acme.test')",
    )
    .await;
    let tx = common::begin_as(&mut db, &a).await;
    let dup = tx
        .batch_execute("insert into contacts (email) values ('ANN@acme.test')")
        .await;
    assert_eq!(dup.unwrap_err().code().unwrap().code(), "23505");
}

#[tokio::test]
async fn updated_at_moves_and_status_timestamps_follow_the_status() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let mut db = admin().await;
    rows_as(
        &mut db,
        &user,
        "insert into email_campaigns (name, subject) values ('C', 'S');
         insert into contacts (email) values ('t@t.test');",
    )
    .await;
    let before = rows_as(&mut db, &user, "select updated_at from email_campaigns").await;
    let before = get(&before[0], "updated_at").to_string();
    // The next transaction starts once the database's clock has passed it.
    let later = |a: &str, b: &str| {
        let (a, b) = (a.to_string(), b.to_string());
        async move {
            admin()
                .await
                .query_one(
                    "select coalesce($1::text::timestamptz, clock_timestamp()) > $2::text::timestamptz",
                    &[&(!a.is_empty()).then_some(a), &b],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    while !later("", &before).await {}
    rows_as(&mut db, &user, "update email_campaigns set subject = 'S2'").await;
    let after = rows_as(
        &mut db,
        &user,
        "select created_at, updated_at from email_campaigns",
    )
    .await;
    let (created, updated) = (get(&after[0], "created_at"), get(&after[0], "updated_at"));
    assert!(
        later(updated, &before).await,
        "updated_at moved on: {before} then {updated}"
    );
    assert!(
        later(updated, created).await,
        "created {created}, updated {updated}"
    );

    rows_as(
        &mut db,
        &user,
        "insert into emails_sent (campaign_id, contact_id, recipient_email, status)
           select c.id, ct.id, 'p@t.test', 'pending' from email_campaigns c, contacts ct;
         insert into emails_sent (campaign_id, contact_id, recipient_email, status)
           select c.id, ct.id, 's@t.test', 'sent' from email_campaigns c, contacts ct;
         insert into emails_sent (campaign_id, contact_id, recipient_email, status, sent_at)
           select c.id, ct.id, 'x@t.test', 'bounced', '2020-01-01T00:00:00Z' from email_campaigns c, contacts ct;",
    )
    .await;
    let rows = rows_as(
        &mut db,
        &user,
        "select recipient_email, sent_at is not null as has_sent, delivered_at is not null as has_delivered,
                sent_at = '2020-01-01T00:00:00Z' as kept
           from emails_sent order by recipient_email",
    )
    .await;
    let by_email = |e: &str| {
        rows.iter()
            .find(|r| get(r, "recipient_email") == e)
            .unwrap()
            .clone()
    };
    assert_eq!(get(&by_email("p@t.test"), "has_sent"), "f");
    assert_eq!(get(&by_email("s@t.test"), "has_sent"), "t");
    assert_eq!(get(&by_email("s@t.test"), "has_delivered"), "f");
    assert_eq!(
        get(&by_email("x@t.test"), "kept"),
        "t",
        "a writer's sent_at is kept"
    );

    rows_as(
        &mut db,
        &user,
        "update emails_sent set status = 'delivered' where recipient_email = 'p@t.test'",
    )
    .await;
    let p = rows_as(
        &mut db,
        &user,
        "select sent_at is not null as has_sent, delivered_at is not null as has_delivered from emails_sent
          where recipient_email = 'p@t.test'",
    )
    .await;
    assert_eq!(get(&p[0], "has_sent"), "t");
    assert_eq!(get(&p[0], "has_delivered"), "t");
}

/// `db verify` on a freshly reset database runs exactly the checks listed
/// in `tests/snapshots/db_verify_checks.txt`, in that order, and all pass: a
/// check that disappears (or a new object that goes unchecked) changes the
/// list, which is reviewed with the schema change
/// (`scripts/update-snapshots`).
#[tokio::test]
async fn db_verify_runs_exactly_the_listed_checks() {
    let stack = common::ready().await;
    let db = common::ScratchDb::create(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        common::command(&stack, dir.path())
            .env("SUPABASE_DB_URL", &db.url)
            .args(args)
            .output()
            .unwrap()
    };
    let reset = run(&["db", "reset", "--yes"]);
    assert!(reset.status.success(), "{}", common::stderr(&reset));
    let verify = run(&["--json", "db", "verify"]);
    let report = common::json_of(&verify);
    let checks = report["checks"].as_array().unwrap();
    let failed: Vec<&serde_json::Value> = checks.iter().filter(|c| c["ok"] != true).collect();
    assert!(verify.status.success() && failed.is_empty(), "{failed:#?}");
    let mut list = format!("{} checks\n", checks.len());
    for check in checks {
        list.push_str(check["name"].as_str().unwrap());
        list.push('\n');
    }
    db.drop(&stack).await;
    common::assert_snapshot("db_verify_checks", &list);
}
