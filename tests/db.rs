//! `mailsync db reset | apply | verify` against scratch databases on the
//! local stack's real PostgreSQL, through the real binary.

mod common;

use common::{json_of, mailsync, stderr, stdout, ScratchDb, Stack};
use serde_json::Value;
use uuid::Uuid;

fn run(stack: &Stack, db: &ScratchDb, args: &[&str]) -> std::process::Output {
    mailsync(stack, args, &[("SUPABASE_DB_URL", &db.url)])
}

async fn seed_one_of_each(db: &ScratchDb) -> Uuid {
    let client = db.client().await;
    let user = Uuid::new_v4();
    common::insert_user(&client, user, "seed@example.test").await;
    client
        .execute(
            "insert into public.contacts (user_id, email, organization_name) values ($1, 'a@b.test', 'Org')",
            &[&user],
        )
        .await
        .unwrap();
    client
        .execute(
            "insert into public.email_campaigns (user_id, name, subject) values ($1, 'C', 'S')",
            &[&user],
        )
        .await
        .unwrap();
    user
}

async fn count(db: &ScratchDb, table: &str) -> i64 {
    db.client()
        .await
        .query_one(&format!("select count(*) from public.{table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn reset_twice_succeeds_and_leaves_zero_rows() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;

    let first = run(&stack, &db, &["db", "reset", "--yes", "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    seed_one_of_each(&db).await;
    assert_eq!(
        count(&db, "organizations").await,
        1,
        "the trigger created the organisation"
    );

    let second = run(&stack, &db, &["db", "reset", "--yes", "--json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let report = json_of(&second);
    // The five tables of the guide, the two counter tables behind the views,
    // the paged sends and the live-change rows.
    assert_eq!(report["tables"], 9, "{report}");
    assert_eq!(report["views"], 3, "{report}");
    assert_eq!(report["policies"], 27, "{report}");
    assert_eq!(report["triggers"], 20, "{report}");
    assert!(report["elapsed_ms"].is_u64());
    let target = report["target"].as_str().unwrap();
    assert!(
        target.contains(&db.name) && !target.contains("postgres:postgres"),
        "{target}"
    );
    for table in [
        "organizations",
        "contacts",
        "email_campaigns",
        "emails_sent",
        "email_templates",
    ] {
        assert_eq!(count(&db, table).await, 0, "{table} after reset");
    }
    db.drop(&stack).await;
}

#[tokio::test]
async fn apply_twice_keeps_rows() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    seed_one_of_each(&db).await;
    let again = run(&stack, &db, &["db", "apply", "--json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let third = run(&stack, &db, &["db", "apply", "--yes"]);
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(stdout(&third).contains("9 tables"), "{}", stdout(&third));
    assert_eq!(count(&db, "contacts").await, 1);
    assert_eq!(count(&db, "email_campaigns").await, 1);
    assert_eq!(count(&db, "organizations").await, 1);
    db.drop(&stack).await;
}

#[tokio::test]
async fn verify_passes_after_reset_and_catches_a_dropped_policy() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());

    let ok = run(&stack, &db, &["db", "verify", "--json"]);
    let report = json_of(&ok);
    let failures: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] != true)
        .collect();
    assert!(
        ok.status.success() && report["ok"] == true,
        "failing checks: {failures:#?}"
    );
    assert!(report["checks"].as_array().unwrap().len() > 60);

    db.client()
        .await
        .batch_execute("drop policy contacts_delete_own on public.contacts")
        .await
        .unwrap();
    let drift = run(&stack, &db, &["db", "verify", "--json"]);
    assert_eq!(drift.status.code(), Some(4), "{}", stderr(&drift));
    let report = json_of(&drift);
    assert_eq!(report["ok"], false);
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["policy for delete on contacts"]);
    let text = stdout(&run(&stack, &db, &["db", "verify"]));
    assert!(
        text.contains("FAIL policy for delete on contacts — missing: contacts_delete_own"),
        "the failure names the policy and says missing: {text}"
    );

    // A plain view (not security_invoker) and an anon grant are caught too.
    db.client()
        .await
        .batch_execute(
            "alter view public.contact_analytics reset (security_invoker);
             grant select on public.email_templates to anon;",
        )
        .await
        .unwrap();
    let drift = run(&stack, &db, &["db", "verify"]);
    assert_eq!(drift.status.code(), Some(4));
    let text = stdout(&drift);
    assert!(
        text.contains("FAIL view contact_analytics is security_invoker"),
        "{text}"
    );
    assert!(
        text.contains("FAIL anon has no privileges on email_templates"),
        "{text}"
    );

    // `apply` repairs all of it.
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    assert!(run(&stack, &db, &["db", "verify"]).status.success());
    db.drop(&stack).await;
}

#[tokio::test]
async fn reset_without_yes_and_without_a_terminal_refuses_and_changes_nothing() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    seed_one_of_each(&db).await;

    let refused = run(&stack, &db, &["db", "reset"]);
    assert_eq!(refused.status.code(), Some(2));
    let err = stderr(&refused);
    assert!(
        err.contains("--yes") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(count(&db, "contacts").await, 1);
    db.drop(&stack).await;
}

#[tokio::test]
async fn wrong_db_url_exits_3_naming_host_and_port_but_not_the_password() {
    let stack = common::ready().await;
    let out = mailsync(
        &stack,
        &["db", "apply"],
        &[(
            "SUPABASE_DB_URL",
            "postgresql://postgres:Sup3rS3cretPw@127.0.0.1:1/postgres",
        )],
    );
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(
        !err.contains("Sup3rS3cretPw") && !stdout(&out).contains("Sup3rS3cretPw"),
        "{err}"
    );

    // A wrong password: the server refuses, still no password in the message.
    let mut url = url::Url::parse(&stack.db_url).unwrap();
    url.set_password(Some("WrongPw9")).unwrap();
    let url = url.to_string();
    let out = mailsync(&stack, &["db", "verify"], &[("SUPABASE_DB_URL", &url)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!stderr(&out).contains("WrongPw9"));
}

#[tokio::test]
async fn dry_run_prints_the_sql_without_connecting() {
    let stack = common::ready().await;
    let out = mailsync(
        &stack,
        &["db", "reset", "--dry-run"],
        &[(
            "SUPABASE_DB_URL",
            "postgresql://postgres:x@127.0.0.1:1/postgres",
        )],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let sql = stdout(&out);
    // MASTER-CLEAN drops the tables (the listed ones that are mailsync's).
    assert!(sql.contains("-- ===== sql/MASTER-CLEAN.sql") && sql.contains("drop table"));
    assert!(sql.contains("public.emails_sent") || sql.contains("'emails_sent'"));
    assert!(sql.contains("create table if not exists public.emails_sent"));

    // With --json: one document naming the scripts, for reset and apply.
    for (command, files) in [("reset", 2), ("apply", 1)] {
        let out = mailsync(
            &stack,
            &["--json", "db", command, "--dry-run"],
            &[(
                "SUPABASE_DB_URL",
                "postgresql://postgres:x@127.0.0.1:1/postgres",
            )],
        );
        let plan = json_of(&out);
        assert_eq!(plan["dry_run"], true, "{plan}");
        let scripts = plan["scripts"].as_array().unwrap();
        assert_eq!(scripts.len(), files, "{plan}");
        assert_eq!(scripts[files - 1]["file"], "sql/MASTER-DATABASE.sql");
        assert!(!plan.to_string().contains(":x@"), "no password in {plan}");
    }
}

#[tokio::test]
async fn reset_is_all_or_nothing() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    seed_one_of_each(&db).await;
    // Something of the user's depends on a mailsync table: MASTER-CLEAN does
    // not cascade, so the reset fails part-way and must roll back entirely.
    db.client()
        .await
        .batch_execute("create view public.my_report as select email from public.contacts")
        .await
        .unwrap();
    let out = run(&stack, &db, &["db", "reset", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert_eq!(count(&db, "contacts").await, 1);
    db.drop(&stack).await;
}

/// Runs `mailsync db reset` on a pseudo-terminal, typing `answer` at the
/// prompt.
fn reset_on_a_terminal(stack: &Stack, db: &ScratchDb, answer: &str) -> std::process::Output {
    common::on_terminal(
        stack,
        &["db", "reset"],
        &[("SUPABASE_DB_URL", &db.url)],
        answer,
        std::time::Duration::from_millis(500),
    )
}

#[tokio::test]
async fn reset_on_a_terminal_asks_and_defaults_to_no() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    seed_one_of_each(&db).await;

    let declined = reset_on_a_terminal(&stack, &db, "\n");
    let screen = stdout(&declined);
    assert_eq!(
        declined.status.code(),
        Some(0),
        "declining is not an error: {screen}"
    );
    assert!(screen.contains("Continue? [y/N]"), "{screen}");
    assert!(
        screen.contains("127.0.0.1"),
        "the prompt names the target: {screen}"
    );
    assert!(
        !screen.contains(":postgres@"),
        "no password on screen: {screen}"
    );
    assert!(screen.contains("nothing changed"), "{screen}");
    assert_eq!(count(&db, "contacts").await, 1);

    let accepted = reset_on_a_terminal(&stack, &db, "y\n");
    assert!(accepted.status.success(), "{}", stdout(&accepted));
    assert_eq!(count(&db, "contacts").await, 0);
    db.drop(&stack).await;
}

/// On a hosted project `postgres` is not a superuser: it owns `public`, has
/// `BYPASSRLS`, and may reference `auth.users`. `db reset` and `db verify`
/// must work with exactly that.
#[tokio::test]
async fn reset_and_verify_work_without_superuser_as_on_a_hosted_project() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let owner = format!("hosted_owner_{}", Uuid::new_v4().simple());
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "create role {owner} login password 'owner-pw' nosuperuser bypassrls;
             alter schema public owner to {owner};
             grant usage on schema auth to {owner};
             grant select, references on auth.users to {owner};
             alter publication supabase_realtime owner to {owner};"
        ))
        .await
        .unwrap();
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&owner).unwrap();
    url.set_password(Some("owner-pw")).unwrap();
    let url = url.to_string();

    let reset = mailsync(
        &stack,
        &["--json", "db", "reset", "--yes"],
        &[("SUPABASE_DB_URL", &url)],
    );
    assert!(reset.status.success(), "{}", stderr(&reset));
    let verify = mailsync(&stack, &["db", "verify"], &[("SUPABASE_DB_URL", &url)]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    let superuser: bool = admin
        .query_one(
            "select rolsuper from pg_roles where rolname = $1",
            &[&owner],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!superuser);

    drop(admin);
    db.drop(&stack).await;
    common::admin()
        .await
        .batch_execute(&format!("drop role if exists {owner}"))
        .await
        .unwrap();
}
