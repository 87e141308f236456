//! Safe beside other people's things: `db reset` / `db apply` never drop or
//! replace an object that is not mailsync's, `--adopt` takes one over, the
//! API roles hold only what RLS governs whatever the project's default
//! privileges, and no update a user can make desynchronises the counters.
//! Scratch databases on the local stack's PostgreSQL, the real binary.

use crate::common;

use common::{mailsync, new_user, rest, stderr, stdout, ScratchDb, Stack};
use reqwest::Method;
use serde_json::json;

fn run(stack: &Stack, db: &ScratchDb, args: &[&str]) -> std::process::Output {
    mailsync(stack, args, &[("SUPABASE_DB_URL", &db.url)])
}

/// Every table, view and function of public, with its comment: what a
/// refused command must leave exactly as it was.
async fn public_snapshot(db: &ScratchDb) -> Vec<String> {
    let client = db.client().await;
    common::column_in(&client, "select format('%s %s %s', c.relkind, c.relname, coalesce(obj_description(c.oid, 'pg_class'), ''))
               from pg_class c where c.relnamespace = 'public'::regnamespace
             union all
             select format('f %s %s', p.oid::regprocedure, md5(p.prosrc))
               from pg_proc p where p.pronamespace = 'public'::regnamespace
             order by 1",
            &[]).await
}

/// (kind, name) of what the schema creates, from its own list.
fn mailsync_objects() -> Vec<(String, String)> {
    let sql = include_str!("../../sql/MASTER-DATABASE.sql");
    let list = sql
        .split("-- mailsync objects: begin")
        .nth(1)
        .unwrap()
        .split("-- mailsync objects: end")
        .next()
        .unwrap();
    list.lines()
        .filter_map(|l| {
            let inner = l.trim().trim_end_matches(',');
            let inner = inner.strip_prefix("('")?.strip_suffix("')")?;
            let (k, n) = inner.split_once("', '")?;
            Some((k.to_string(), n.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn a_projects_own_table_view_or_function_of_a_mailsync_name_is_refused_and_untouched() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let client = db.client().await;
    let objects = mailsync_objects();
    assert!(objects.iter().filter(|(k, _)| k == "function").count() >= 10);
    for (kind, name) in objects.iter().filter(|(k, _)| k != "index") {
        let (create, drop) = match kind.as_str() {
            "table" => (
                format!("create table public.{name} (id int, note text); insert into public.{name} values (1, 'mine')"),
                format!("drop table public.{name}"),
            ),
            "view" => (
                format!("create view public.{name} as select 1 as mine"),
                format!("drop view public.{name}"),
            ),
            _ => (
                format!("create function public.{name} returns int language sql as 'select 1'"),
                format!("drop function public.{name}"),
            ),
        };
        client.batch_execute(&create).await.unwrap();
        let before = public_snapshot(&db).await;
        let bare = name.split('(').next().unwrap();
        for args in [&["db", "apply"][..], &["db", "reset", "--yes"][..]] {
            let out = run(&stack, &db, args);
            assert_eq!(
                out.status.code(),
                Some(4),
                "{args:?} with {kind} {name}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert!(
                err.contains(&format!("{kind} public.{bare}")) && err.contains("nothing changed"),
                "{args:?}: the message names {kind} {name}: {err}"
            );
            assert!(err.contains("--adopt"), "{err}");
            assert_eq!(
                public_snapshot(&db).await,
                before,
                "{args:?} changed something"
            );
        }
        let verify = run(&stack, &db, &["db", "verify", "--json"]);
        assert_eq!(verify.status.code(), Some(4));
        let report: serde_json::Value = serde_json::from_str(&stdout(&verify)).unwrap();
        assert!(
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["ok"] == false
                    && c["name"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("{kind} public.{bare}"))),
            "verify reports the foreign {kind} {name}"
        );
        // The ownership line says why.
        for (name, ok, detail) in ownership_checks(&report) {
            assert!(
                !ok && detail.starts_with("not mailsync's"),
                "{name}: {detail}"
            );
        }
        if kind == "table" {
            let rows: i64 =
                common::scalar_in(&client, &format!("select count(*) from public.{name}"), &[])
                    .await;
            assert_eq!(rows, 1, "the project's rows in {name} are kept");
        }
        client.batch_execute(&drop).await.unwrap();
    }
    db.drop(&stack).await;
}

#[tokio::test]
async fn a_projects_update_updated_at_column_and_its_triggers_keep_working() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let client = db.client().await;
    // The common Supabase idiom, on a table without `updated_at`.
    client
        .batch_execute(
            "create table public.notes (id int primary key, body text, modified timestamptz);
             create function public.update_updated_at_column() returns trigger language plpgsql as
               $$ begin new.modified := now(); return new; end $$;
             create trigger notes_modified before update on public.notes
               for each row execute function public.update_updated_at_column();
             insert into public.notes values (1, 'a', null);",
        )
        .await
        .unwrap();
    let before: String = common::scalar_in(
        &client,
        "select md5(prosrc) from pg_proc where proname = 'update_updated_at_column'",
        &[],
    )
    .await;
    for args in [&["db", "apply"][..], &["db", "reset", "--yes"][..]] {
        let out = run(&stack, &db, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let after: String = common::scalar_in(
        &client,
        "select md5(prosrc) from pg_proc where proname = 'update_updated_at_column'",
        &[],
    )
    .await;
    assert_eq!(before, after, "the project's function is untouched");
    client
        .batch_execute("update public.notes set body = 'b' where id = 1")
        .await
        .expect("the project's own trigger still works");
    let notes: i64 = common::scalar_in(
        &client,
        "select count(*) from public.notes where modified is not null",
        &[],
    )
    .await;
    assert_eq!(notes, 1);
    db.drop(&stack).await;
}

#[tokio::test]
async fn adopt_hands_an_object_over_to_mailsync() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let client = db.client().await;
    client
        .batch_execute(
            "create table public.email_templates (id int, note text);
             insert into public.email_templates values (1, 'old');",
        )
        .await
        .unwrap();
    let unknown = run(&stack, &db, &["db", "apply", "--adopt", "no_such_thing"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    let out = run(
        &stack,
        &db,
        &["db", "reset", "--yes", "--adopt", "email_templates"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Adopted table public.email_templates"));
    let (rows, marked): (i64, bool) = {
        let row = client
            .query_one(
                "select (select count(*) from public.email_templates),
                        obj_description('public.email_templates'::regclass, 'pg_class') like 'Managed by mailsync%'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(
        rows, 0,
        "the adopted table was dropped and created as mailsync's"
    );
    assert!(marked);
    let verify = run(&stack, &db, &["db", "verify", "--json"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    // Every ownership line of an installed schema says why it passes.
    let report: serde_json::Value = serde_json::from_str(&stdout(&verify)).unwrap();
    let checks = ownership_checks(&report);
    assert!(checks.len() > 40, "{} ownership checks", checks.len());
    for (name, ok, detail) in checks {
        assert!(
            ok && (detail == "marked \"Managed by mailsync\""
                || detail == "an index of a mailsync table"),
            "{name}: {detail}"
        );
    }
    db.drop(&stack).await;
}

#[tokio::test]
async fn old_all_granting_defaults_leave_no_dangerous_privilege_and_verify_catches_one() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let client = db.client().await;
    client
        .batch_execute(
            "alter default privileges in schema public grant all on tables to anon, authenticated;
             alter default privileges in schema public grant all on functions to anon, authenticated;",
        )
        .await
        .unwrap();
    let out = run(&stack, &db, &["db", "apply"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let granted: Vec<String> = common::column_in(
        &client,
        "select format('%s %s on %s', r.role, p.privilege, c.relname)
               from pg_class c
              cross join (values ('anon'), ('authenticated')) r(role)
              cross join (values ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) p(privilege)
              where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v')
                and has_table_privilege(r.role, c.oid, p.privilege)
             union all
             select format('authenticated update of %s.%s', c.relname, a.attname)
               from pg_class c join pg_attribute a on a.attrelid = c.oid
              where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
                and a.attname in ('id', 'user_id', 'created_at')
                and has_column_privilege('authenticated', c.oid, a.attnum, 'UPDATE')",
        &[],
    )
    .await;
    assert!(granted.is_empty(), "still granted: {granted:?}");
    let relations: i64 = common::scalar_in(&client, "select count(*) from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'v')",
            &[]).await;
    let listed = mailsync_objects()
        .iter()
        .filter(|(k, _)| k == "table" || k == "view")
        .count() as i64;
    assert_eq!(
        relations, listed,
        "every mailsync table and view was checked (the issue's 24 privileges are on 8 of them)"
    );
    let ok = run(&stack, &db, &["db", "verify"]);
    assert!(ok.status.success(), "{}", stdout(&ok));

    for (grant, revoke, expect) in [
        (
            "grant truncate on public.emails_sent to authenticated",
            "revoke truncate on public.emails_sent from authenticated",
            "TRUNCATE to authenticated",
        ),
        (
            "grant references on public.campaign_analytics to authenticated",
            "revoke references on public.campaign_analytics from authenticated",
            "REFERENCES to authenticated",
        ),
        (
            "grant trigger on public.contacts to anon",
            "revoke trigger on public.contacts from anon",
            "TRIGGER to anon",
        ),
        (
            "grant update (id) on public.emails_sent to authenticated",
            "revoke update (id) on public.emails_sent from authenticated",
            "updatable: id",
        ),
    ] {
        client.batch_execute(grant).await.unwrap();
        let failed = run(&stack, &db, &["db", "verify"]);
        assert_eq!(
            failed.status.code(),
            Some(4),
            "{grant}: {}",
            stdout(&failed)
        );
        assert!(
            stdout(&failed).contains(expect),
            "{grant}: {}",
            stdout(&failed)
        );
        client.batch_execute(revoke).await.unwrap();
    }
    assert!(run(&stack, &db, &["db", "verify"]).status.success());
    db.drop(&stack).await;
}

#[tokio::test]
async fn a_patch_of_an_emails_id_is_refused_and_counters_stay_exact() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let post = |table: &'static str, body: serde_json::Value| {
        let stack = stack.clone();
        let token = user.token.clone();
        async move {
            let (status, rows) = rest(
                &stack,
                Method::POST,
                table,
                Some(&token),
                Some(body),
                Some("return=representation"),
            )
            .await;
            assert_eq!(status, 201, "{rows}");
            rows[0].clone()
        }
    };
    let campaign = post(
        "email_campaigns",
        json!({"name": "ids", "status": "sending"}),
    )
    .await;
    let email = post(
        "emails_sent",
        json!({"campaign_id": campaign["id"], "recipient_email": "x@ids.test", "status": "sent"}),
    )
    .await;
    let id = email["id"].as_str().unwrap();
    for patch in [
        json!({"id": uuid::Uuid::new_v4()}),
        json!({"user_id": uuid::Uuid::new_v4()}),
        json!({"created_at": "2001-01-01T00:00:00Z"}),
    ] {
        let (status, body) = rest(
            &stack,
            Method::PATCH,
            &format!("emails_sent?id=eq.{id}"),
            Some(&user.token),
            Some(patch.clone()),
            None,
        )
        .await;
        assert!(
            status == 401 || status == 403,
            "{patch} was accepted: {status} {body}"
        );
    }
    let (_, analytics) = rest(
        &stack,
        Method::GET,
        &format!(
            "campaign_analytics?campaign_id=eq.{}",
            campaign["id"].as_str().unwrap()
        ),
        Some(&user.token),
        None,
        None,
    )
    .await;
    assert_eq!(analytics[0]["total_emails"], 1, "{analytics}");
    assert_eq!(analytics[0]["sent_count"], 1, "{analytics}");
}

#[tokio::test]
async fn counters_stay_exact_when_the_schema_owner_rekeys_emails() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    assert!(run(&stack, &db, &["db", "apply"]).status.success());
    let client = db.client().await;
    client
        .batch_execute(
            "insert into auth.users (id, email) values ('00000000-0000-0000-0000-00000000000a', 'k@ids.test');
             insert into public.email_campaigns (id, user_id, name)
               values ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-00000000000a', 'c');
             insert into public.emails_sent (user_id, campaign_id, recipient_email, status)
               select '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-0000000000c1',
                      'r' || g || '@ids.test', 'pending' from generate_series(1, 5) g;
             -- Re-key every email and change some statuses in one statement.
             update public.emails_sent set id = gen_random_uuid(),
               status = case when recipient_email < 'r3' then 'delivered' else status end;",
        )
        .await
        .unwrap();
    let verify = run(&stack, &db, &["db", "verify", "--json"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    db.drop(&stack).await;
}

/// The ownership checks of a `db verify --json` report: (name, ok, detail).
fn ownership_checks(report: &serde_json::Value) -> Vec<(String, bool, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().ends_with("is mailsync's"))
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["ok"] == true,
                c["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
