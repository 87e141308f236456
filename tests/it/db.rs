//! `mailsync db reset | apply | verify` against scratch databases on the
//! local stack's real PostgreSQL, through the real binary.

use crate::common;

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
    // the paged sends, the live-change rows, the suppressed addresses and
    // the delivery reports, the delivery claims, and the quotas with their
    // two counter tables.
    assert_eq!(report["tables"], 15, "{report}");
    assert_eq!(report["views"], 3, "{report}");
    assert_eq!(report["policies"], 42, "{report}");
    assert_eq!(report["triggers"], 29, "{report}");
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
    assert!(stdout(&third).contains("15 tables"), "{}", stdout(&third));
    assert_eq!(count(&db, "contacts").await, 1);
    assert_eq!(count(&db, "email_campaigns").await, 1);
    assert_eq!(count(&db, "organizations").await, 1);
    db.drop(&stack).await;
}

/// Upgrading a database whose `emails_sent` predates the hand-off mark:
/// `db apply` adds `handed_at`; the emails already `sending` (they may have
/// gone out) count as handed when they were claimed, so they become unknown,
/// never silently claimable again; the others have no mark.
#[tokio::test]
async fn apply_over_emails_without_a_hand_off_mark_counts_those_sending_as_handed() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    let user = seed_one_of_each(&db).await;
    let client = db.client().await;
    client
        .batch_execute("alter table public.emails_sent drop column handed_at")
        .await
        .unwrap();
    let campaign: Uuid = client
        .query_one(
            "update public.email_campaigns set status = 'sending' where user_id = $1 returning id",
            &[&user],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "insert into public.emails_sent
               (user_id, campaign_id, recipient_email, status, claimed_at, lease_owner, lease_expires_at)
             values ($1, $2, 'out@example.test', 'sending', '2026-01-02 03:04:05+00', 'old', now() - interval '1 hour'),
                    ($1, $2, 'waiting@example.test', 'pending', null, null, null),
                    ($1, $2, 'done@example.test', 'sent', '2026-01-02 03:04:05+00', 'old', null)",
            &[&user, &campaign],
        )
        .await
        .unwrap();

    let upgrade = run(&stack, &db, &["db", "apply"]);
    assert!(upgrade.status.success(), "{}", stderr(&upgrade));
    let marks: Vec<(String, bool, bool)> = client
        .query(
            "select recipient_email, handed_at is not null, handed_at is not distinct from claimed_at
               from public.emails_sent order by recipient_email",
            &[],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        marks,
        vec![
            ("done@example.test".to_string(), false, false),
            ("out@example.test".to_string(), true, true),
            ("waiting@example.test".to_string(), false, true),
        ]
    );
    // Applying again keeps the marks (the backfill runs once).
    client
        .execute(
            "update public.emails_sent set handed_at = null where recipient_email = 'out@example.test'",
            &[],
        )
        .await
        .unwrap();
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    let mark: bool = client
        .query_one(
            "select handed_at is null from public.emails_sent where recipient_email = 'out@example.test'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(mark, "a second apply does not backfill again");
    db.drop(&stack).await;
}

#[tokio::test]
async fn verify_passes_after_reset_and_catches_a_dropped_policy() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());

    let ok = run(&stack, &db, &["db", "verify", "--json"]);
    let report = json_of(&ok);
    let failures = common::failing_checks(&report);
    assert!(
        ok.status.success() && report["ok"] == true,
        "failing checks: {failures:#?}"
    );
    // Exactly the checks of tests/snapshots/db_verify_checks.txt (its first
    // line is the count; schema_sql.rs compares the names).
    let listed = include_str!("../snapshots/db_verify_checks.txt")
        .lines()
        .count()
        - 1;
    assert_eq!(report["checks"].as_array().unwrap().len(), listed);

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
        "[y/N]",
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

/// The names of the checks `db verify --json` reported, and which failed.
fn check_names(o: &std::process::Output) -> (Vec<String>, Vec<String>) {
    let report = json_of(o);
    let checks = report["checks"].as_array().unwrap();
    let name = |c: &Value| c["name"].as_str().unwrap().to_string();
    (
        checks.iter().map(name).collect(),
        checks
            .iter()
            .filter(|c| c["ok"] == false)
            .map(name)
            .collect(),
    )
}

/// The first column of every row `sql` returns.
async fn column(db: &ScratchDb, sql: &str) -> Vec<String> {
    db.client()
        .await
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn verify_checks_what_the_schema_defines_and_catches_rls_search_path_and_fk_index_drift() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());
    let ok = run(&stack, &db, &["db", "verify", "--json"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    let (names, failed) = check_names(&ok);
    assert!(failed.is_empty(), "{failed:?}");
    let mut seen = names.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), names.len(), "no check is reported twice");

    // One check per table, per function and per foreign key the schema made.
    let expected = |prefix: &str, suffix: &str, items: Vec<String>| {
        let mut of_kind: Vec<String> = names
            .iter()
            .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
            .cloned()
            .collect();
        of_kind.sort();
        (of_kind, items)
    };
    let tables = column(
        &db,
        "select format('RLS enabled on %s', relname) from pg_class
         where relnamespace = 'public'::regnamespace and relkind in ('r', 'p') order by 1",
    )
    .await;
    assert!(tables.len() >= 7, "{tables:?}");
    let (got, want) = expected("RLS enabled on ", "", tables);
    assert_eq!(got, want);
    let functions = column(
        &db,
        "select format('function %s(%s) pins search_path', proname, pg_get_function_identity_arguments(oid))
         from pg_proc where pronamespace = 'public'::regnamespace order by 1",
    )
    .await;
    assert!(functions.len() >= 9, "{functions:?}");
    let (got, want) = expected("function ", " pins search_path", functions);
    assert_eq!(got, want);
    let foreign_keys = column(
        &db,
        "select format('foreign key %s is indexed', conname) from pg_constraint
         where contype = 'f' and connamespace = 'public'::regnamespace order by 1",
    )
    .await;
    assert!(foreign_keys.len() >= 5, "{foreign_keys:?}");
    let (got, want) = expected("foreign key ", " is indexed", foreign_keys);
    assert_eq!(got, want);

    // Each drift fails exactly its check (exit 4); `apply` repairs it.
    let function = column(
        &db,
        "select proname from pg_proc where pronamespace = 'public'::regnamespace
         and proname = 'import_contacts'",
    )
    .await;
    assert_eq!(function.len(), 1);
    let fk_index = db
        .client()
        .await
        .query_one(
            "select fk.conname::text, ic.relname::text
             from pg_constraint fk
             join pg_index i on i.indrelid = fk.conrelid
              and (i.indkey::int2[])[0:cardinality(fk.conkey) - 1] @> fk.conkey
              and (i.indkey::int2[])[0:cardinality(fk.conkey) - 1] <@ fk.conkey
             join pg_class ic on ic.oid = i.indexrelid
             where fk.contype = 'f' and fk.connamespace = 'public'::regnamespace
               and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)
               and (select count(*) from pg_index j where j.indrelid = fk.conrelid
                     and (j.indkey::int2[])[0:cardinality(fk.conkey) - 1] @> fk.conkey
                     and (j.indkey::int2[])[0:cardinality(fk.conkey) - 1] <@ fk.conkey) = 1
             order by 1 limit 1",
            &[],
        )
        .await
        .expect("a foreign key covered by exactly one plain index");
    let (fk, index): (String, String) = (fk_index.get(0), fk_index.get(1));
    let args = column(
        &db,
        "select pg_get_function_identity_arguments(oid) from pg_proc
         where pronamespace = 'public'::regnamespace and proname = 'import_contacts'",
    )
    .await;
    let drifts = [
        (
            "alter table public.contacts disable row level security".to_string(),
            "RLS enabled on contacts".to_string(),
        ),
        (
            format!(
                "alter function public.import_contacts({}) reset search_path",
                args[0]
            ),
            format!("function import_contacts({}) pins search_path", args[0]),
        ),
        (
            format!("drop index public.{index}"),
            format!("foreign key {fk} is indexed"),
        ),
    ];
    for (sql, check) in drifts {
        db.client().await.batch_execute(&sql).await.unwrap();
        let drift = run(&stack, &db, &["db", "verify", "--json"]);
        assert_eq!(drift.status.code(), Some(4), "{sql}: {}", stderr(&drift));
        assert_eq!(check_names(&drift).1, vec![check], "after {sql}");
        let apply = run(&stack, &db, &["db", "apply"]);
        assert!(apply.status.success(), "{}", stderr(&apply));
        let again = run(&stack, &db, &["db", "verify", "--json"]);
        assert!(
            again.status.success(),
            "apply repairs {sql}: {:?}",
            check_names(&again).1
        );
    }
    db.drop(&stack).await;
}

#[tokio::test]
async fn reset_leaves_auth_users_and_an_unrelated_table_untouched() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());
    let user = seed_one_of_each(&db).await;
    db.client()
        .await
        .batch_execute(
            "create table public.team_notes (id int primary key, body text not null);
             alter table public.team_notes enable row level security;
             insert into public.team_notes values (1, 'keep me'), (2, 'me too');",
        )
        .await
        .unwrap();
    let reset = run(&stack, &db, &["db", "reset", "--yes"]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert_eq!(
        count(&db, "contacts").await,
        0,
        "mailsync's tables are emptied"
    );
    let client = db.client().await;
    let users: i64 = client
        .query_one("select count(*) from auth.users where id = $1", &[&user])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1, "auth.users is Supabase's, not mailsync's");
    let notes: Vec<String> = client
        .query("select body from public.team_notes order by id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(notes, ["keep me", "me too"]);
    db.drop(&stack).await;
}

/// What `sql` returns as one text value (the project's objects, fingerprinted).
async fn text_of(db: &ScratchDb, sql: &str) -> String {
    db.client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

/// How the project's own objects stand: their code, RLS, grants, comments.
async fn own_objects(db: &ScratchDb) -> String {
    text_of(
        db,
        "select concat_ws(' | ',
           (select md5(prosrc) || coalesce(array_to_string(proconfig, ','), '') || coalesce(proacl::text, '')
              from pg_proc where oid = 'public.update_updated_at_column()'::regprocedure),
           (select relrowsecurity::text || coalesce(relacl::text, '') from pg_class where oid = 'public.invoices'::regclass),
           coalesce(obj_description('public.update_updated_at_column()'::regprocedure, 'pg_proc'), 'no comment'),
           coalesce(obj_description('public.invoices'::regclass, 'pg_class'), 'no comment'),
           (select string_agg(tgname, ',') from pg_trigger where tgrelid = 'public.invoices'::regclass))",
    )
    .await
}

/// A project with its own `update_updated_at_column()` (anon may execute
/// it, no pinned search_path) and its own table without RLS: after a clean
/// `db apply`, `db verify` judges only mailsync's objects (exit 0) and
/// notes the project's; nothing of the project's is changed.
#[tokio::test]
async fn verify_passes_beside_the_projects_own_objects_and_notes_them() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    db.client()
        .await
        .batch_execute(
            "create function public.update_updated_at_column() returns trigger language plpgsql as
               $$ begin new.updated_at = now(); return new; end $$;
             grant execute on function public.update_updated_at_column() to anon;
             create table public.invoices (id int primary key, amount int, updated_at timestamptz);
             grant select on public.invoices to anon;
             create trigger invoices_updated_at before update on public.invoices
               for each row execute function public.update_updated_at_column();
             insert into public.invoices values (1, 42, null);",
        )
        .await
        .unwrap();
    let before = own_objects(&db).await;

    let apply = run(&stack, &db, &["db", "apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    let verify = run(&stack, &db, &["db", "verify"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    // By default: no `ok` line, the count, and how many notes.
    let text = stdout(&verify);
    assert!(!text.lines().any(|l| l.starts_with("ok ")), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
    assert!(
        text.contains("4 notes on the project's own objects"),
        "{text}"
    );
    assert!(text.lines().count() <= 3, "{text}");

    let json = run(&stack, &db, &["--json", "db", "verify"]);
    let report = json_of(&json);
    assert_eq!(report["ok"], true, "{:#?}", common::failing_checks(&report));
    let notes: Vec<&str> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        notes,
        [
            "RLS enabled on invoices",
            "anon has no privileges on invoices",
            "anon cannot execute update_updated_at_column()",
            "function update_updated_at_column() pins search_path",
        ]
    );
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("invoices") || n.contains("update_updated_at_column")),
        "the project's objects are not judged: {names:?}"
    );
    let listed = include_str!("../snapshots/db_verify_checks.txt")
        .lines()
        .count()
        - 1;
    assert_eq!(names.len(), listed);

    // -v lists every check and every note.
    let verbose = run(&stack, &db, &["-v", "db", "verify"]);
    let text = stdout(&verbose);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        listed,
        "{text}"
    );
    assert!(
        text.contains("note RLS enabled on invoices — disabled"),
        "{text}"
    );

    // A failure of mailsync's own is still one, beside the notes.
    db.client()
        .await
        .batch_execute("alter table public.contacts disable row level security")
        .await
        .unwrap();
    let drift = run(&stack, &db, &["db", "verify"]);
    assert_eq!(drift.status.code(), Some(4));
    let text = stdout(&drift);
    assert!(text.contains("FAIL RLS enabled on contacts"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("ok ")), "{text}");

    assert_eq!(
        own_objects(&db).await,
        before,
        "the project's objects are untouched"
    );
    assert_eq!(
        text_of(&db, "select amount::text from public.invoices where id = 1").await,
        "42"
    );
    db.drop(&stack).await;
}

/// Five `<table>_select_own` policies on the project's own tables do not
/// make it an earlier mailsync: `db verify` says the names are taken by the
/// project's objects (`--adopt`), not "set up by an earlier mailsync".
#[tokio::test]
async fn five_select_own_policies_alone_are_not_an_earlier_mailsync() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let mut sql = String::new();
    for t in [
        "organizations",
        "contacts",
        "email_campaigns",
        "emails_sent",
        "email_templates",
    ] {
        sql.push_str(&format!(
            "create table public.{t} (id int primary key, owner text);
             alter table public.{t} enable row level security;
             create policy {t}_select_own on public.{t} for select using (owner = current_user);"
        ));
    }
    db.client().await.batch_execute(&sql).await.unwrap();
    let verify = run(&stack, &db, &["--json", "db", "verify"]);
    assert_eq!(verify.status.code(), Some(4));
    let report = json_of(&verify);
    let ownership = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "table public.contacts is mailsync's")
        .expect("the ownership check of contacts")
        .clone();
    assert_eq!(ownership["ok"], false);
    let detail = ownership["detail"].as_str().unwrap();
    assert!(
        detail.contains("not mailsync's") && detail.contains("--adopt contacts"),
        "{detail}"
    );

    // Nor do they let apply or reset take the project's tables over.
    for args in [&["db", "apply"][..], &["db", "reset", "--yes"][..]] {
        let refused = run(&stack, &db, args);
        assert_eq!(
            refused.status.code(),
            Some(4),
            "{args:?}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains("table public.contacts"),
            "{}",
            stderr(&refused)
        );
    }
    let untouched = text_of(
        &db,
        "select string_agg(c.relname || ':' || coalesce(obj_description(c.oid, 'pg_class'), '-')
                           || ':' || (select count(*) from pg_policies p where p.tablename = c.relname), ',' order by c.relname)
         from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'",
    )
    .await;
    assert_eq!(
        untouched,
        "contacts:-:1,email_campaigns:-:1,email_templates:-:1,emails_sent:-:1,organizations:-:1"
    );
    db.drop(&stack).await;
}

/// A schema set up by an earlier mailsync, before the marks (here: the
/// schema with every mark removed), is still recognised: `db apply` marks
/// it and `db verify` passes.
#[tokio::test]
async fn an_earlier_mailsyncs_unmarked_schema_is_still_taken_over_by_apply() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());
    db.client()
        .await
        .batch_execute(
            "do $$ declare r record; begin
               for r in select c.oid, c.relkind from pg_class c
                        where c.relnamespace = 'public'::regnamespace
                          and obj_description(c.oid, 'pg_class') like 'Managed by mailsync%' loop
                 execute format('comment on %s %s is null',
                                case r.relkind when 'v' then 'view' else 'table' end, r.oid::regclass);
               end loop;
               for r in select p.oid from pg_proc p
                        where p.pronamespace = 'public'::regnamespace
                          and obj_description(p.oid, 'pg_proc') like 'Managed by mailsync%' loop
                 execute format('comment on function %s is null', r.oid::regprocedure);
               end loop;
             end $$;",
        )
        .await
        .unwrap();
    let unmarked = run(&stack, &db, &["--json", "db", "verify"]);
    let report = json_of(&unmarked);
    let detail = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "table public.contacts is mailsync's")
        .map(|c| c["detail"].as_str().unwrap().to_string());
    assert!(
        detail
            .as_deref()
            .is_some_and(|d| d.contains("earlier mailsync")),
        "{detail:?}"
    );
    let apply = run(&stack, &db, &["db", "apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    let verify = run(&stack, &db, &["db", "verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    db.drop(&stack).await;
}

/// `db apply` changes the schema in one transaction, taking its locks one
/// object at a time, so it can deadlock with a running command's query.
/// PostgreSQL then rolls it back whole (`40P01`), and apply runs again.
#[tokio::test]
async fn apply_rolled_back_by_a_deadlock_runs_again() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());
    seed_one_of_each(&db).await;

    // A reader of the delivery claims (near the schema's end) that then
    // reads the contacts (near its start), which apply holds by then.
    let held = db.client().await;
    held.batch_execute(
        "begin; set local deadlock_timeout = '30s';
         select count(*) from public.email_claims",
    )
    .await
    .unwrap();
    let url = db.url.clone();
    let apply = tokio::task::spawn_blocking(move || {
        mailsync(
            &common::stack(),
            &["-v", "db", "apply", "--json"],
            &[("SUPABASE_DB_URL", &url)],
        )
    });
    common::deadlock_the_waiter(
        &held,
        "public.email_claims",
        "%",
        "select count(*) from public.contacts",
    )
    .await;
    let o = apply.await.unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rolled back (40P01); trying again"),
        "{}",
        stderr(&o)
    );
    assert_eq!(json_of(&o)["tables"], 15);
    assert_eq!(count(&db, "contacts").await, 1, "apply keeps rows");
    db.drop(&stack).await;
}

/// An earlier schema's same-user foreign key from the delivery reports,
/// (user_id, email_id) to a unique (user_id, id) index of emails_sent kept
/// for it alone, becomes a key on email_id, and that index is dropped (one
/// less for every write of an email), unless one of the project's own
/// foreign keys uses it.
#[tokio::test]
async fn apply_replaces_the_reports_same_user_key_and_drops_its_index() {
    let stack = common::ready().await;
    let earlier = "alter table public.delivery_reports drop constraint delivery_reports_email_fkey;
         alter table public.emails_sent add constraint emails_sent_user_id_id_key unique (user_id, id);
         alter table public.delivery_reports add constraint delivery_reports_email_fkey
           foreign key (user_id, email_id) references public.emails_sent (user_id, id) on delete cascade;";
    let state = |db: &ScratchDb| {
        let url = db.url.clone();
        async move {
            let client = common::admin_to(&url).await;
            let columns: i32 = client
                .query_one(
                    "select cardinality(conkey)::int from pg_catalog.pg_constraint
                      where conname = 'delivery_reports_email_fkey'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            let unique: bool = client
                .query_one(
                    "select to_regclass('public.emails_sent_user_id_id_key') is not null",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            (columns, unique)
        }
    };

    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());
    assert_eq!(state(&db).await, (1, false), "a new schema");
    seed_one_of_each(&db).await;
    db.client().await.batch_execute(earlier).await.unwrap();
    assert_eq!(state(&db).await, (2, true), "the earlier schema");
    let apply = run(&stack, &db, &["db", "apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert_eq!(state(&db).await, (1, false), "upgraded");
    assert_eq!(count(&db, "contacts").await, 1);
    let verify = run(&stack, &db, &["db", "verify", "--json"]);
    assert!(verify.status.success(), "{}", stdout(&verify));

    // The project's own table referencing that index keeps it.
    db.client()
        .await
        .batch_execute(&format!(
            "{earlier}
             create table public.project_notes (user_id uuid, email_id uuid,
               foreign key (user_id, email_id) references public.emails_sent (user_id, id));"
        ))
        .await
        .unwrap();
    let apply = run(&stack, &db, &["db", "apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert_eq!(state(&db).await, (1, true), "kept for the project's key");
    db.drop(&stack).await;
}

/// An earlier schema's `record_delivery_reports`, which answered a set of
/// rows (cut by a low row cap), is replaced by the one answering one JSON
/// array, its grants as before; a later apply keeps the function it finds.
#[tokio::test]
async fn apply_replaces_a_set_returning_record_delivery_reports() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "reset", "--yes"]).status.success());
    let function = "public.record_delivery_reports(jsonb, integer)";
    let state = |db: &ScratchDb| {
        let url = db.url.clone();
        async move {
            let row = common::admin_to(&url)
                .await
                .query_one(
                    &format!(
                        "select p.oid::int8, pg_catalog.format_type(p.prorettype, null), p.proretset,
                                has_function_privilege('authenticated', p.oid, 'execute'),
                                has_function_privilege('anon', p.oid, 'execute')
                           from pg_catalog.pg_proc p where p.oid = '{function}'::regprocedure"
                    ),
                    &[],
                )
                .await
                .unwrap();
            let shape: (String, bool, bool, bool) =
                (row.get(1), row.get(2), row.get(3), row.get(4));
            (row.get::<_, i64>(0), shape)
        }
    };
    let now = ("jsonb".to_string(), false, true, false);
    assert_eq!(state(&db).await.1, now, "a new schema");
    db.client()
        .await
        .batch_execute(&format!(
            "drop function {function};
             create function public.record_delivery_reports(reports jsonb, soft_bounce_limit integer default 3)
               returns table (report_key text, email_id uuid, outcome text)
               language sql security invoker set search_path = '' as $$ select null::text, null::uuid, null::text $$;
             comment on function {function} is 'Managed by mailsync';
             grant execute on function {function} to authenticated;"
        ))
        .await
        .unwrap();
    assert_eq!(
        state(&db).await.1,
        ("record".to_string(), true, true, true),
        "the earlier function"
    );
    let apply = run(&stack, &db, &["db", "apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    let (oid, shape) = state(&db).await;
    assert_eq!(shape, now, "replaced");
    let apply = run(&stack, &db, &["db", "apply"]);
    assert!(apply.status.success(), "{}", stderr(&apply));
    assert_eq!(state(&db).await, (oid, now), "kept by a later apply");
    let verify = run(&stack, &db, &["db", "verify", "--json"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    db.drop(&stack).await;
}
