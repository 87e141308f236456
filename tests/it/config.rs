//! Configuration: `mailsync config` shows every setting and where it came
//! from, no secret printed wherever it sits in the database URL; a project
//! that is not the local stack has no default database (`db` commands say
//! SUPABASE_DB_URL is missing, and never reach the local one); a Dashboard
//! connection string (`?pgbouncer=true`) is accepted. Processes run through
//! the harness (`common::unconfigured`): nothing of the machine's
//! environment reaches them.

use crate::common;

use std::process::Output;

use common::{stderr, stdout};

fn config_json(env: &[(&str, &str)], args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::unconfigured(dir.path());
    cmd.args(["config", "--json"])
        .args(args)
        .env("MAILSYNC_STACK_DIR", dir.path().join("no-stack"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn entry(out: &Output, name: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)));
    doc.as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {doc}"))
        .clone()
}

#[test]
fn config_json_prints_no_password_from_any_url_position() {
    let urls = [
        "postgresql://postgres:S3cretUser@db.abc.supabase.co:5432/postgres",
        "postgresql://postgres@db.abc.supabase.co:5432/postgres?password=S3cretQuery",
        "postgresql://postgres:S3cretBoth@db.abc.supabase.co/postgres?sslmode=verify-full&password=S3cretBoth2&sslpassword=S3cretSsl&sslkey=/keys/S3cretKey.pem",
        "postgresql://postgres:S3cret%3FEnc@db.abc.supabase.co/postgres?PASSWORD=S3cretUpper",
        "host=db.abc.supabase.co user=postgres password=S3cretKv sslpassword=S3cretKv2 dbname=postgres",
    ];
    for url in urls {
        for via_flag in [false, true] {
            let out = if via_flag {
                config_json(
                    &[("MAILSYNC_ACCESS_TOKEN", "S3cretToken")],
                    &["--db-url", url],
                )
            } else {
                config_json(
                    &[
                        ("SUPABASE_DB_URL", url),
                        ("SUPABASE_ANON_KEY", "S3cretAnon"),
                        ("MAILSYNC_ACCESS_TOKEN", "S3cretToken"),
                    ],
                    &[],
                )
            };
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{url}: {stderr}");
            let db = entry(&out, "SUPABASE_DB_URL");
            assert!(db["value"].as_str().unwrap().contains("******"), "{db}");
            assert!(
                db["value"].as_str().unwrap().contains("db.abc.supabase.co"),
                "{db}"
            );
            assert!(
                !stdout.contains("S3cret") && !stderr.contains("S3cret"),
                "{url}:\n{stdout}\n{stderr}"
            );
        }
    }
}

#[test]
fn a_remote_project_over_http_is_refused_unless_allowed() {
    let env = [
        ("SUPABASE_URL", "http://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "k"),
    ];
    let refused = config_json(&env, &[]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-insecure-http"));
    assert!(config_json(&env, &["--allow-insecure-http"])
        .status
        .success());
    let local = config_json(&[("SUPABASE_URL", "http://127.0.0.1:54321")], &[]);
    assert!(local.status.success());
}

#[test]
fn help_recommends_the_environment_for_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::unconfigured(dir.path())
        .arg("--help")
        .output()
        .unwrap();
    let help = stdout(&out);
    assert!(help.contains("--env-file rather than in flags"), "{help}");
}

/// A hosted SUPABASE_URL and no SUPABASE_DB_URL: `config` says it is not
/// set, and every `db` command (`reset --yes` included) is a configuration
/// error naming it, while the local stack is running and its database would
/// answer.
#[tokio::test]
async fn a_hosted_project_without_a_database_url_never_reaches_the_local_database() {
    let stack = common::ready().await;
    let db = common::admin().await;
    let marker = format!("untouched_{}", uuid::Uuid::new_v4().simple());
    db.batch_execute(&format!(
        "create table mailsync_test.{marker} (x int); insert into mailsync_test.{marker} values (1);"
    ))
    .await
    .unwrap();
    let before: i64 = db
        .query_one("select count(*) from public.contacts", &[])
        .await
        .unwrap()
        .get(0);

    let local = url::Url::parse(&stack.db_url).unwrap();
    let port = local.port().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    // The machine's stack, findable as mailsync looks for it.
    let stack_dir = std::env::var("MAILSYNC_STACK_DIR").unwrap_or_default();
    let hosted = |args: &[&str]| {
        let mut cmd = common::unconfigured(dir.path());
        cmd.args(args)
            .env("SUPABASE_URL", "https://abcdefghijklmnop.supabase.co")
            .env("SUPABASE_ANON_KEY", "sb_publishable_test")
            .env("MAILSYNC_DB_PORT", &port);
        if !stack_dir.is_empty() {
            cmd.env("MAILSYNC_STACK_DIR", &stack_dir);
        }
        cmd.output().unwrap()
    };
    let shown = hosted(&["config", "--json"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let db_entry = entry(&shown, "SUPABASE_DB_URL");
    assert!(db_entry["value"].is_null(), "{db_entry}");
    assert!(
        db_entry["source"].as_str().unwrap().contains("not set"),
        "{db_entry}"
    );
    for args in [
        // Harmless ones first, should this ever reach a database.
        &["db", "reset", "--dry-run"][..],
        &["db", "verify"][..],
        &["db", "apply"][..],
        &["db", "reset", "--yes"][..],
        &["--json", "db", "reset", "--yes"][..],
    ] {
        let o = hosted(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("SUPABASE_DB_URL is not set"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("Connect"),
            "{args:?}: the hint says where: {err}"
        );
        assert!(!err.contains("127.0.0.1"), "{args:?}: {err}");
    }
    // Nothing was dropped: the schema and its rows, and an unrelated table.
    let after: i64 = db
        .query_one("select count(*) from public.contacts", &[])
        .await
        .unwrap()
        .get(0);
    assert!(after >= before, "contacts went from {before} to {after}");
    let kept: i64 = db
        .query_one(&format!("select count(*) from mailsync_test.{marker}"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 1);
    db.batch_execute(&format!("drop table mailsync_test.{marker}"))
        .await
        .unwrap();
}

/// A connection string as the Dashboard gives it for Prisma, with the
/// pooler flag and Prisma's own parameters, reaches the database.
#[tokio::test]
async fn a_dashboard_connection_string_with_pgbouncer_true_is_accepted() {
    let stack = common::ready().await;
    let mut url = url::Url::parse(&stack.db_url).unwrap();
    url.query_pairs_mut()
        .append_pair("pgbouncer", "true")
        .append_pair("connection_limit", "1")
        .append_pair("pool_timeout", "10");
    let dir = tempfile::tempdir().unwrap();
    let o = common::command(&stack, dir.path())
        .args(["--json", "db", "verify"])
        .env("SUPABASE_DB_URL", url.as_str())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = common::json_of(&o);
    assert!(
        report["checks"].as_array().is_some_and(|c| !c.is_empty()),
        "{report}"
    );
    // Shown as given, password masked.
    let shown = common::command(&stack, dir.path())
        .args(["--json", "config"])
        .env("SUPABASE_DB_URL", url.as_str())
        .output()
        .unwrap();
    let db = entry(&shown, "SUPABASE_DB_URL");
    assert!(
        db["value"].as_str().unwrap().contains("pgbouncer=true"),
        "{db}"
    );
    assert!(db["value"].as_str().unwrap().contains("******"), "{db}");
}

/// The return path and the bounce mailbox: shown with where they came from
/// (here `./.env`), the mailbox's password masked; the return path is the
/// From address unless set. No stack needed.
#[test]
fn config_shows_the_return_path_and_the_bounce_mailbox_from_the_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env_file: &str| {
        std::fs::write(dir.path().join(".env"), env_file).unwrap();
        let o = common::unconfigured(dir.path())
            .args(["config", "--json"])
            .env("MAILSYNC_STACK_DIR", dir.path().join("no-stack"))
            .env("MAILSYNC_FROM", "Acme <news@acme.example>")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stdout(&o).contains("S3cretImap"), "{}", stdout(&o));
        o
    };
    let o = run("MAILSYNC_RETURN_PATH=bounces@acme.example\n\
         MAILSYNC_BOUNCES_URL=imaps://bounces%40acme.example:S3cretImap@imap.acme.example/Retours\n");
    let return_path = entry(&o, "MAILSYNC_RETURN_PATH");
    assert_eq!(return_path["value"], "bounces@acme.example");
    assert!(
        return_path["source"].as_str().unwrap().contains(".env"),
        "{return_path}"
    );
    let bounces = entry(&o, "MAILSYNC_BOUNCES_URL");
    assert_eq!(
        bounces["value"],
        "imaps://bounces%40acme.example:******@imap.acme.example:993/Retours"
    );
    assert!(
        bounces["source"].as_str().unwrap().contains(".env"),
        "{bounces}"
    );

    // Unset: the From address, and no mailbox for a project with none.
    let o = run("");
    let return_path = entry(&o, "MAILSYNC_RETURN_PATH");
    assert_eq!(return_path["value"], "news@acme.example");
    assert!(
        return_path["source"].as_str().unwrap().contains("From"),
        "{return_path}"
    );
    let bounces = entry(&o, "MAILSYNC_BOUNCES_URL");
    assert!(bounces["value"].is_null(), "{bounces}");

    // Plain IMAP to another machine is not shown as a usable mailbox.
    let o = run("MAILSYNC_BOUNCES_URL=imap://u:S3cretImap@127.relay.example.com/INBOX\n");
    let bounces = entry(&o, "MAILSYNC_BOUNCES_URL");
    assert!(
        bounces["value"].as_str().unwrap().contains("not a valid"),
        "{bounces}"
    );
}

/// `.env` sets the language as it sets every other setting, and the
/// environment still wins over it.
#[test]
fn the_env_file_sets_the_language_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env_file: &str, env: &[(&str, &str)]| {
        std::fs::write(dir.path().join(".env"), env_file).unwrap();
        let mut cmd = common::unconfigured(dir.path());
        cmd.arg("config")
            .env("MAILSYNC_STACK_DIR", dir.path().join("no-stack"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let o = run("MAILSYNC_LANG=fr\n", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("réglage"), "{}", stdout(&o));
    let o = run("MAILSYNC_LANG=fr\n", &[("MAILSYNC_LANG", "en")]);
    assert!(stdout(&o).contains("setting"), "{}", stdout(&o));
    let o = run("MAILSYNC_LANG=de\n", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("MAILSYNC_LANG=de"), "{}", stderr(&o));
}
