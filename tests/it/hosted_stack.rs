//! The local stack models hosted Supabase's limits (docs/local-stack.md): the
//! statement timeouts of each role, `supabase_auth_admin` and deleting a
//! user as Auth does, the transaction-mode pooler, the REST row cap, and
//! query strings read as PostgREST reads them (checked with the official
//! supabase-js client too).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{json_of, mailsync, stderr, stdout, ScratchDb, Stack};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn port_of(url: &str) -> u16 {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or_else(|| panic!("no port in {url}"))
}

/// The pooler in front of the stack's database (`SUPABASE_POOLER_URL` from
/// `scripts/local-stack.sh env`; API port + 8 by default, as the Supabase
/// CLI's 54329).
fn pooler_url(stack: &Stack) -> String {
    let default = {
        let api = port_of(&stack.url);
        let mut u = url::Url::parse(&stack.db_url).unwrap();
        u.set_port(Some(api + 8)).unwrap();
        u.to_string()
    };
    env_or("SUPABASE_POOLER_URL", &default)
}

/// The same REST API with the low row cap (`MAILSYNC_CAPPED_URL`).
fn capped_url(stack: &Stack) -> String {
    env_or(
        "MAILSYNC_CAPPED_URL",
        &format!("http://127.0.0.1:{}", port_of(&stack.url) + 7),
    )
}

/// `url` with its port (and database) moved to the pooler's.
fn through_pooler(stack: &Stack, url: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_port(Some(port_of(&pooler_url(stack)))).unwrap();
    u.to_string()
}

/// The same URL, logged in as another role with the stack's own password.
fn as_role(url: &str, role: &str) -> String {
    let password = url::Url::parse(url)
        .unwrap()
        .password()
        .unwrap_or_default()
        .to_string();
    with_user(url, role, &password)
}

fn with_user(url: &str, user: &str, password: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_username(user).unwrap();
    u.set_password(Some(password)).unwrap();
    u.to_string()
}

/// Runs `scripts/local-stack.sh ARGS` for this stack's ports.
fn local_stack(stack: &Stack, args: &[&str]) -> std::process::Output {
    Command::new(Path::new(ROOT).join("scripts/local-stack.sh"))
        .args(args)
        .env("MAILSYNC_API_PORT", port_of(&stack.url).to_string())
        .env("MAILSYNC_DB_PORT", port_of(&stack.db_url).to_string())
        .output()
        .expect("running scripts/local-stack.sh")
}

/// The first column of the first row of `sql`, sent with the simple query
/// protocol: no named prepared statement, which a transaction-mode pooler
/// does not keep across transactions.
async fn simple_value(client: &tokio_postgres::Client, sql: &str) -> String {
    for message in client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
    {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            return row.get(0).unwrap_or_default().to_string();
        }
    }
    panic!("{sql}: no row")
}

async fn show_timeout(url: &str) -> String {
    let client = common::admin_to(url).await;
    simple_value(&client, "show statement_timeout").await
}

// ---------------------------------------------------------------------------
// The transaction-mode pooler
// ---------------------------------------------------------------------------

fn db_run(stack: &Stack, url: &str, args: &[&str]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = mailsync(stack, args, &[("SUPABASE_DB_URL", url)]);
    (out, started.elapsed())
}

#[tokio::test]
async fn db_reset_apply_verify_pass_through_the_pooler_and_the_direct_port() {
    let stack = common::ready().await;
    for (how, via_pooler) in [("direct", false), ("pooler", true)] {
        let db = ScratchDb::create(&stack).await;
        let url = if via_pooler {
            through_pooler(&stack, &db.url)
        } else {
            db.url.clone()
        };
        let (reset, _) = db_run(&stack, &url, &["--json", "db", "reset", "--yes"]);
        assert!(
            reset.status.success(),
            "{how}: db reset\n{}{}",
            stdout(&reset),
            stderr(&reset)
        );
        assert_eq!(json_of(&reset)["tables"], 15, "{how}");
        let (apply, took) = db_run(&stack, &url, &["--json", "db", "apply"]);
        assert!(
            apply.status.success(),
            "{how}: db apply\n{}{}",
            stdout(&apply),
            stderr(&apply)
        );
        let (verify, _) = db_run(&stack, &url, &["--json", "db", "verify"]);
        let report = json_of(&verify);
        let failing = common::failing_checks(&report);
        assert!(
            verify.status.success() && report["ok"] == true,
            "{how}: db verify: {failing:#?}\n{}",
            stderr(&verify)
        );
        // Again and again: a named prepared statement left on a pooled
        // server connection would break a later run.
        for run in 0..5 {
            let (verify, _) = db_run(&stack, &url, &["db", "verify"]);
            assert!(
                verify.status.success(),
                "{how}: db verify, run {run}: {}",
                stderr(&verify)
            );
        }
        eprintln!("db apply {how}: {} ms", took.as_millis());
        db.drop(&stack).await;
    }
}

#[tokio::test]
async fn the_pooler_runs_in_transaction_mode_and_knows_every_login_role() {
    let stack = common::ready().await;
    let pooler = pooler_url(&stack);
    // The admin console: pool_mode is transaction, as Supavisor's port 6543.
    let console = {
        let mut u = url::Url::parse(&pooler).unwrap();
        u.set_path("/pgbouncer");
        u.to_string()
    };
    let admin = common::admin_to(&console).await;
    let mut mode = None;
    for message in admin.simple_query("SHOW CONFIG").await.unwrap() {
        if let tokio_postgres::SimpleQueryMessage::Row(row) = message {
            if row.get(0) == Some("pool_mode") {
                mode = row.get(1).map(str::to_string);
            }
        }
    }
    assert_eq!(mode.as_deref(), Some("transaction"));

    // Passwords are the cluster's own (auth_query): a wrong one is refused,
    // every login role gets in with its own.
    let wrong = with_user(&pooler, "postgres", "not-the-password");
    let err = tokio_postgres::connect(&wrong, tokio_postgres::NoTls)
        .await
        .err()
        .expect("a wrong password is refused by the pooler");
    assert!(
        format!("{err:?}").contains("authentication failed"),
        "{err:?}"
    );
    for role in ["authenticator", "supabase_auth_admin"] {
        let url = as_role(&pooler, role);
        let client = common::admin_to(&url).await;
        assert_eq!(simple_value(&client, "select current_user").await, role);
    }
}

// ---------------------------------------------------------------------------
// Statement timeouts
// ---------------------------------------------------------------------------

#[tokio::test]
async fn login_roles_get_the_hosted_statement_timeouts_directly_and_through_the_pooler() {
    let stack = common::ready().await;
    let pooler = pooler_url(&stack);
    for (how, base) in [("direct", stack.db_url.clone()), ("pooler", pooler)] {
        // postgres and supabase_auth_admin have no timeout of their own:
        // the global 2-minute limit applies.
        assert_eq!(show_timeout(&base).await, "2min", "{how}: postgres");
        assert_eq!(
            show_timeout(&as_role(&base, "supabase_auth_admin")).await,
            "2min",
            "{how}: supabase_auth_admin"
        );
        // The REST server's login role: 8 s for every API request.
        assert_eq!(
            show_timeout(&as_role(&base, "authenticator")).await,
            "8s",
            "{how}: authenticator"
        );
    }
    // The roles PostgREST switches to carry their own.
    let admin = common::admin().await;
    let rows = admin
        .query(
            "select r.rolname::text, c
             from pg_db_role_setting s
             join pg_roles r on r.oid = s.setrole
             cross join lateral unnest(s.setconfig) c
             where c like 'statement_timeout=%'
             order by 1",
            &[],
        )
        .await
        .unwrap();
    let settings: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        settings,
        vec![
            ("anon".into(), "statement_timeout=3s".into()),
            ("authenticated".into(), "statement_timeout=8s".into()),
            ("authenticator".into(), "statement_timeout=8s".into()),
        ]
    );
}

/// A probe function in `public`, for the REST server to call: the timeout in
/// force for the request's role, and an optional sleep. Dropped at the end.
const PROBE: &str = "mailsync_test_timeout_probe";

#[tokio::test]
async fn the_rest_api_applies_each_roles_timeout_and_cuts_anon_at_3_seconds() {
    let stack = common::ready().await;
    let admin = common::admin().await;
    admin
        .batch_execute(&format!(
            "create or replace function public.{PROBE}(sleep_seconds float8 default 0)
             returns jsonb language plpgsql volatile set search_path = '' as $$
             begin
               perform pg_catalog.pg_sleep(sleep_seconds);
               return jsonb_build_object('role', current_user,
                                         'timeout', current_setting('statement_timeout'));
             end $$;
             grant execute on function public.{PROBE}(float8) to anon, authenticated, service_role;"
        ))
        .await
        .unwrap();
    let user = common::new_user(&stack).await;

    // Wait until the REST server has loaded the new function.
    let mut last = (0, Value::Null);
    for _ in 0..100 {
        last = common::rest(
            &stack,
            Method::POST,
            &format!("rpc/{PROBE}"),
            None,
            Some(json!({})),
            None,
        )
        .await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = async {
        assert_eq!(last.0, 200, "{last:?}");
        assert_eq!(last.1, json!({"role": "anon", "timeout": "3s"}));
        let (status, body) = common::rest(
            &stack,
            Method::POST,
            &format!("rpc/{PROBE}"),
            Some(&user.token),
            Some(json!({})),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"role": "authenticated", "timeout": "8s"}));

        // One real cut: anon's 3 s limit stops a 3.5 s statement with 57014,
        // which PostgREST answers with HTTP 500.
        let started = Instant::now();
        let (status, body) = common::rest(
            &stack,
            Method::POST,
            &format!("rpc/{PROBE}"),
            None,
            Some(json!({"sleep_seconds": 3.5})),
            None,
        )
        .await;
        let took = started.elapsed();
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["code"], "57014", "{body}");
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_millis(3450),
            "cut after {took:?}"
        );
        eprintln!("anon statement cut after {} ms", took.as_millis());
    }
    .await;
    admin
        .batch_execute(&format!("drop function if exists public.{PROBE}(float8)"))
        .await
        .unwrap();
    result
}

// ---------------------------------------------------------------------------
// supabase_auth_admin
// ---------------------------------------------------------------------------

#[tokio::test]
async fn supabase_auth_admin_owns_auth_and_holds_nothing_in_public() {
    let stack = common::ready().await;
    let admin = common::admin().await;
    let role = admin
        .query_one(
            "select rolcanlogin, rolsuper, rolinherit, rolcreaterole, rolbypassrls
             from pg_roles where rolname = 'supabase_auth_admin'",
            &[],
        )
        .await
        .expect("the supabase_auth_admin role exists");
    let flags: (bool, bool, bool, bool, bool) = (
        role.get(0),
        role.get(1),
        role.get(2),
        role.get(3),
        role.get(4),
    );
    assert_eq!(
        flags,
        (true, false, false, true, false),
        "login, not superuser, noinherit, createrole, no bypassrls"
    );
    let owner: String = admin
        .query_one(
            "select tableowner::text from pg_tables where schemaname = 'auth' and tablename = 'users'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "supabase_auth_admin");
    let auth_functions: i64 = admin
        .query_one(
            "select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
             where n.nspname = 'auth' and p.proname in ('uid', 'role', 'email', 'jwt')
               and pg_get_userbyid(p.proowner) = 'supabase_auth_admin'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(auth_functions, 4, "auth.uid/role/email/jwt are Auth's");

    // No privilege of any kind on anything in public.
    let granted = admin
        .query(
            "select c.relname::text, p.privilege
             from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             cross join unnest(array['SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER']) p(privilege)
             where n.nspname = 'public' and c.relkind in ('r', 'v', 'm', 'p', 'S')
               and has_table_privilege('supabase_auth_admin', c.oid, p.privilege)",
            &[],
        )
        .await
        .unwrap();
    let granted: Vec<(String, String)> = granted.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(granted.is_empty(), "supabase_auth_admin holds: {granted:?}");
    let tables: i64 = admin
        .query_one(
            "select count(*) from pg_tables where schemaname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(tables >= 5, "the schema is applied ({tables} tables)");

    // Connected as Auth: reads auth.users, is refused public tables.
    let auth = common::admin_to(&as_role(&stack.db_url, "supabase_auth_admin")).await;
    auth.query_one("select count(*) from auth.users", &[])
        .await
        .expect("supabase_auth_admin reads auth.users");
    let refused = auth
        .query_one("select count(*) from public.contacts", &[])
        .await
        .expect_err("supabase_auth_admin must not read public.contacts");
    assert_eq!(
        refused.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

#[tokio::test]
async fn delete_user_removes_the_user_and_their_rows_as_auth_does() {
    let stack = common::ready().await;
    let admin = common::admin().await;
    let gone = common::new_user(&stack).await;
    let kept = common::new_user(&stack).await;
    for user in [&gone, &kept] {
        admin
            .execute(
                "insert into public.contacts (user_id, email, organization_name)
                 values ($1, 'x@example.test', 'Deleted Org'), ($1, 'y@example.test', null)",
                &[&user.id],
            )
            .await
            .unwrap();
    }
    let out = local_stack(&stack, &["delete-user", &gone.id.to_string()]);
    assert!(
        out.status.success(),
        "delete-user: {}{}",
        stdout(&out),
        stderr(&out)
    );
    let count = |table: &'static str, id: Uuid| {
        let admin = &admin;
        async move {
            admin
                .query_one(
                    &format!(
                        "select count(*) from {table} where {} = $1",
                        if table == "auth.users" {
                            "id"
                        } else {
                            "user_id"
                        }
                    ),
                    &[&id],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(count("auth.users", gone.id).await, 0);
    assert_eq!(count("public.contacts", gone.id).await, 0);
    assert_eq!(count("public.organizations", gone.id).await, 0);
    assert_eq!(count("auth.users", kept.id).await, 1);
    assert_eq!(count("public.contacts", kept.id).await, 2);
    assert_eq!(count("public.organizations", kept.id).await, 1);

    // A user that does not exist: Auth's "User not found", exit non-zero.
    let again = local_stack(&stack, &["delete-user", &gone.id.to_string()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not found"), "{}", stderr(&again));
}

// ---------------------------------------------------------------------------
// The REST layer: row cap and query strings
// ---------------------------------------------------------------------------

async fn get_with_count(
    base: &str,
    stack: &Stack,
    token: &str,
    query: &str,
) -> (u16, usize, String) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/rest/v1/{query}"))
        .header("apikey", &stack.anon_key)
        .bearer_auth(token)
        .header("Prefer", "count=exact")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let range = resp
        .headers()
        .get("content-range")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let rows: Vec<Value> = resp.json().await.unwrap();
    (status, rows.len(), range)
}

#[tokio::test]
async fn the_rest_row_cap_is_1000_and_the_capped_api_caps_at_100() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    common::admin()
        .await
        .execute(
            "insert into public.contacts (user_id, email)
             select $1, 'cap' || g || '@example.test' from generate_series(1, 1001) g",
            &[&user.id],
        )
        .await
        .unwrap();
    let (status, rows, range) =
        get_with_count(&stack.url, &stack, &user.token, "contacts?select=id").await;
    assert_eq!((status, rows, range.as_str()), (206, 1000, "0-999/1001"));
    // A larger limit is still capped.
    let (_, rows, _) = get_with_count(
        &stack.url,
        &stack,
        &user.token,
        "contacts?select=id&limit=5000",
    )
    .await;
    assert_eq!(rows, 1000);

    let capped = capped_url(&stack);
    let (status, rows, range) =
        get_with_count(&capped, &stack, &user.token, "contacts?select=id").await;
    assert_eq!((status, rows, range.as_str()), (206, 100, "0-99/1001"));
    let (_, rows, range) = get_with_count(
        &capped,
        &stack,
        &user.token,
        "contacts?select=id&offset=1000",
    )
    .await;
    assert_eq!((rows, range.as_str()), (1, "1000-1000/1001"));
}

/// As PostgREST: a function returning a set of rows has its answer cut at
/// the row cap (the function ran whole), one returning a single JSON value
/// never. `mailsync_parse_delivery_reports` answers a row per element;
/// `record_delivery_reports` one array with an object per element.
#[tokio::test]
async fn the_row_cap_cuts_a_set_returning_functions_answer_and_never_one_value() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let reports: Vec<Value> = (0..150)
        .map(|i| json!({"key": format!("cap-{i}"), "kind": "delivered"}))
        .collect();
    let answer = |base: String, function: &'static str| {
        let (token, anon, reports) = (user.token.clone(), stack.anon_key.clone(), reports.clone());
        async move {
            let resp = reqwest::Client::new()
                .post(format!("{base}/rest/v1/rpc/{function}"))
                .header("apikey", anon)
                .bearer_auth(token)
                .json(&json!({"reports": reports}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{function} on {base}");
            resp.json::<Vec<Value>>().await.unwrap().len()
        }
    };
    let capped = capped_url(&stack);
    let set = "mailsync_parse_delivery_reports";
    assert_eq!(answer(stack.url.clone(), set).await, 150);
    assert_eq!(answer(capped.clone(), set).await, 100);
    assert_eq!(answer(capped, "record_delivery_reports").await, 150);
}

#[tokio::test]
async fn a_plus_in_the_query_string_is_a_space_and_2b_is_a_plus() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let (status, body) = common::rest(
        &stack,
        Method::POST,
        "organizations",
        Some(&user.token),
        Some(json!([{"name": "Acme SARL"}, {"name": "Plus+Sign"}])),
        Some("return=minimal"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (query, expected) in [
        (
            "organizations?select=name&name=eq.Acme+SARL",
            json!([{"name": "Acme SARL"}]),
        ),
        (
            "organizations?select=name&name=eq.Acme%20SARL",
            json!([{"name": "Acme SARL"}]),
        ),
        (
            "organizations?select=name&name=in.(%22Acme+SARL%22)",
            json!([{"name": "Acme SARL"}]),
        ),
        (
            "organizations?select=name&or=(name.eq.Acme+SARL)",
            json!([{"name": "Acme SARL"}]),
        ),
        (
            "organizations?select=name&name=eq.Plus%2BSign",
            json!([{"name": "Plus+Sign"}]),
        ),
        ("organizations?select=name&name=eq.Plus+Sign", json!([])),
    ] {
        let (status, body) =
            common::rest(&stack, Method::GET, query, Some(&user.token), None, None).await;
        assert_eq!((status, &body), (200, &expected), "{query}");
    }
}

// ---------------------------------------------------------------------------
// The official supabase-js client
// ---------------------------------------------------------------------------

/// `npm ci` in tests/js when its packages are missing or older than the lock.
fn npm_ci(dir: &Path) {
    let installed = dir.join("node_modules/.package-lock.json");
    let lock = dir.join("package-lock.json");
    let fresh = match (installed.metadata(), lock.metadata()) {
        (Ok(i), Ok(l)) => i.modified().unwrap() >= l.modified().unwrap(),
        _ => false,
    };
    if fresh {
        return;
    }
    let out = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("npm is needed for the supabase-js tests (scripts/setup.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "npm ci in tests/js failed:\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test]
async fn supabase_js_answers_as_postgrest_documents() {
    let stack = common::ready().await;
    let dir = Path::new(ROOT).join("tests/js");
    npm_ci(&dir);
    let user = common::new_user(&stack).await;
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "supabase-js.test.mjs"])
        .current_dir(&dir)
        .env("SUPABASE_URL", &stack.url)
        .env("SUPABASE_ANON_KEY", &stack.anon_key)
        .env("MAILSYNC_TEST_TOKEN", &user.token)
        .env("MAILSYNC_TEST_USER_ID", user.id.to_string())
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("node is needed for the supabase-js tests (scripts/setup.sh installs it): {e}")
        });
    let report = format!("{}{}", stdout(&out), stderr(&out));
    eprintln!("{report}");
    assert!(out.status.success(), "supabase-js tests failed:\n{report}");
    assert!(
        report.contains("ℹ fail 0") && !report.contains("ℹ pass 0"),
        "{report}"
    );
}
