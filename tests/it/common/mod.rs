//! The test harness: the real local stack (PostgreSQL, the REST server behind
//! the Supabase URL layout), real users in `auth.users` and real HS256 JWTs
//! signed with the stack's secret. A test that needs the stack and cannot
//! reach it fails with a message saying how to start it; it never skips.
#![allow(dead_code)]

pub mod auth_server;
pub mod deliver;
pub mod gateway;
pub mod realtime_server;
pub mod smtp_server;
pub mod tls;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

pub const DEFAULT_URL: &str = "http://127.0.0.1:54321";
pub const DEFAULT_DB_URL: &str = "postgresql://postgres:postgres@127.0.0.1:54322/postgres";
/// The anon key when the stack has recorded none (no `stack.env`): the
/// documented local-development key, which a stack started by
/// `scripts/local-stack.sh up` does not accept (it signs its own).
pub const DEFAULT_ANON_KEY: &str = mailsync::local_stack::LOCAL_ANON_KEY;
/// Supabase's documented local-development JWT secret: only for a stack
/// started before stacks had their own (`<stack dir>/jwt-secret`).
pub const DEFAULT_JWT_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

const SCHEMA: &str = include_str!("../../../sql/MASTER-DATABASE.sql");

/// Where the local stack is: what `scripts/local-stack.sh env` exported,
/// else what the stack recorded (its anon key in `stack.env`, its JWT
/// secret in `jwt-secret`), else the defaults of the contract.
#[derive(Debug, Clone)]
pub struct Stack {
    pub url: String,
    pub db_url: String,
    pub anon_key: String,
    pub jwt_secret: String,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The stack's directory, as the script finds it.
pub fn stack_dir() -> std::path::PathBuf {
    std::env::var_os("MAILSYNC_STACK_DIR")
        .filter(|d| !d.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".local-stack"))
}

/// The secret the stack's REST API checks tokens with.
fn stack_jwt_secret() -> String {
    let recorded = std::fs::read_to_string(stack_dir().join("jwt-secret"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty());
    env_or(
        "MAILSYNC_LOCAL_JWT_SECRET",
        recorded.as_deref().unwrap_or(DEFAULT_JWT_SECRET),
    )
}

/// The anon key the stack recorded, as mailsync itself reads it.
fn stack_anon_key() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = stack_dir();
    let env = move |name: &str| match name {
        "MAILSYNC_STACK_DIR" => Some(dir.display().to_string()),
        _ => None,
    };
    env_or(
        "SUPABASE_ANON_KEY",
        &mailsync::local_stack::resolve(&env, root).anon_key,
    )
}

pub fn stack() -> Stack {
    Stack {
        url: env_or("SUPABASE_URL", DEFAULT_URL),
        db_url: env_or("SUPABASE_DB_URL", DEFAULT_DB_URL),
        anon_key: stack_anon_key(),
        jwt_secret: stack_jwt_secret(),
    }
}

fn stack_down(what: &str, e: impl std::fmt::Display) -> ! {
    panic!(
        "the local stack is not reachable ({what}: {e}).\n\
         Start it with `scripts/local-stack.sh up` (or run the whole suite with `scripts/test.sh`).\n\
         Tests that need the stack fail rather than skip."
    )
}

/// A superuser connection to the stack's database.
pub async fn admin() -> Client {
    admin_to(&stack().db_url).await
}

pub async fn admin_to(db_url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(db_url, NoTls)
        .await
        .unwrap_or_else(|e| stack_down("PostgreSQL", e));
    tokio::spawn(connection);
    client
}

/// Makes sure the stack answers and the schema in `sql/` is the one applied
/// (applying it, which keeps data, when the file changed). Runs once per test
/// process, serialised across processes by an advisory lock.
pub async fn ready() -> Stack {
    static DONE: OnceLock<()> = OnceLock::new();
    let stack = stack();
    if DONE.get().is_some() {
        return stack;
    }
    let client = admin().await;
    let hash = format!("{:x}", fnv1a(SCHEMA.as_bytes()));
    client
        .batch_execute("select pg_advisory_lock(727274)")
        .await
        .unwrap();
    client
        .batch_execute(
            "create schema if not exists mailsync_test;
             create table if not exists mailsync_test.applied (hash text not null);",
        )
        .await
        .unwrap();
    let current: Option<String> = client
        .query_opt("select hash from mailsync_test.applied limit 1", &[])
        .await
        .unwrap()
        .map(|r| r.get(0));
    let present = client
        .query_one("select to_regclass('public.contacts') is not null", &[])
        .await
        .unwrap()
        .get::<_, bool>(0);
    if current.as_deref() != Some(hash.as_str()) || !present {
        client
            .batch_execute(&format!("begin; {SCHEMA}; commit;"))
            .await
            .unwrap_or_else(|e| panic!("applying sql/MASTER-DATABASE.sql: {e:?}"));
        client
            .execute("delete from mailsync_test.applied", &[])
            .await
            .unwrap();
        client
            .execute("insert into mailsync_test.applied values ($1)", &[&hash])
            .await
            .unwrap();
        // Let the REST server reload its schema cache: wait until it knows
        // the newest objects (anon is refused them, but they are found).
        wait_for_rest(&stack, "contacts").await;
        for (function, args) in RPC_PROBES {
            wait_for_rpc(&stack, function, args).await;
        }
    }
    client
        .batch_execute("select pg_advisory_unlock(727274)")
        .await
        .unwrap();
    let _ = DONE.set(());
    wait_for_rest(&stack, "contacts").await;
    stack
}

async fn wait_for_rest(stack: &Stack, table: &str) {
    // anon has no grant: 401/403 with 42501 means the table is known.
    wait_until_known(table, || {
        reqwest::Client::new()
            .get(format!("{}/rest/v1/{table}?limit=0", stack.url))
            .header("apikey", &stack.anon_key)
    })
    .await
}

/// SQL functions the commands call, with arguments that match their
/// signature: after the schema changes, the tests wait until the REST server
/// has loaded each of them.
const RPC_PROBES: &[(&str, &str)] = &[
    ("import_contacts", r#"{"rows": []}"#),
    ("contact_organization_spellings", r#"{"name": ""}"#),
    ("claim_emails", r#"{"max_emails": 1}"#),
    ("record_delivery_reports", r#"{"reports": []}"#),
    (
        "queue_campaign_page",
        r#"{"campaign": "00000000-0000-0000-0000-000000000000", "organization": null, "page_size": 1}"#,
    ),
];

async fn wait_for_rpc(stack: &Stack, function: &str, args: &str) {
    wait_until_known(&format!("rpc/{function}"), || {
        reqwest::Client::new()
            .post(format!("{}/rest/v1/rpc/{function}", stack.url))
            .header("apikey", &stack.anon_key)
            .header("Content-Type", "application/json")
            .body(args.to_string())
    })
    .await
}

/// Sends `request` until the REST server answers neither 404 nor 5xx (it
/// knows the object), for up to 10 s; then the stack is down.
async fn wait_until_known(what: &str, request: impl Fn() -> reqwest::RequestBuilder) {
    let mut last = String::new();
    for _ in 0..100 {
        match request().send().await {
            Ok(r) if r.status().as_u16() != 404 && r.status().as_u16() < 500 => return,
            Ok(r) => last = format!("{what}: HTTP {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stack_down("REST API", last)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// A user of the project: a row in `auth.users` and a signed access token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// Creates a new user (as signing up would) and signs a one-hour token.
pub async fn new_user(stack: &Stack) -> User {
    let id = Uuid::new_v4();
    let email = format!("{}@example.test", id.simple());
    insert_user(&admin_to(&stack.db_url).await, id, &email).await;
    let token = sign(stack, &id, &email, 3600);
    User { id, email, token }
}

/// A row in `auth.users` of the database `client` is connected to.
pub async fn insert_user(client: &Client, id: Uuid, email: &str) {
    client
        .execute(
            "insert into auth.users (id, email) values ($1, $2)",
            &[&id, &email],
        )
        .await
        .expect("creating a user in auth.users");
}

/// An HS256 access token as Supabase Auth issues them.
pub fn sign(stack: &Stack, id: &Uuid, email: &str, lifetime_secs: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "sub": id.to_string(),
        "role": "authenticated",
        "aud": "authenticated",
        "email": email,
        "iat": now,
        "exp": now + lifetime_secs,
        "iss": format!("{}/auth/v1", stack.url),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(stack.jwt_secret.as_bytes()),
    )
    .unwrap()
}

/// A raw REST call: `GET/POST/PATCH/DELETE {url}/rest/v1/{path}` as `token`
/// (or as anon with `None`). Returns the status and the JSON body.
pub async fn rest(
    stack: &Stack,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    prefer: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}/rest/v1/{path}", stack.url))
        .header("apikey", &stack.anon_key);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(prefer) = prefer {
        req = req.header("Prefer", prefer);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| stack_down("REST API", e));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Inserts `rows` (an object or an array of them) into `table` as `user`
/// through the REST API, and checks that it answered 201.
pub async fn insert_as(stack: &Stack, user: &User, table: &str, rows: Value) {
    let (status, body) = rest(
        stack,
        reqwest::Method::POST,
        table,
        Some(&user.token),
        Some(rows),
        None,
    )
    .await;
    assert_eq!(status, 201, "inserting into {table}: {body}");
}

/// The mailsync binary the tests run.
pub const BIN: &str = env!("CARGO_BIN_EXE_mailsync");

/// A mailsync process isolated from the machine: run in `dir` (no stray
/// .env), its sessions in `dir/config` (no saved session of the machine's
/// user), no inherited access token, no colour, stdin closed, aimed at
/// `url` with `anon_key`. Callers add arguments and environment, then
/// `output()` or `spawn()` it.
pub fn command_for(url: &str, anon_key: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    isolate(&mut cmd, url, anon_key, dir);
    cmd
}

/// A mailsync process with nothing configured: an empty environment (only
/// `PATH` and `HOME`), run in `dir` (no stray .env), its sessions in
/// `dir/config`, no colour, stdin closed. For the configuration tests, which
/// set exactly what they need.
pub fn unconfigured(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("MAILSYNC_CONFIG_DIR", dir.join("config"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// [`command_for`] the local stack, its database URL included.
pub fn command(stack: &Stack, dir: &Path) -> Command {
    let mut cmd = command_for(&stack.url, &stack.anon_key, dir);
    cmd.env("SUPABASE_DB_URL", &stack.db_url);
    cmd
}

fn isolate(cmd: &mut Command, url: &str, anon_key: &str, dir: &Path) {
    cmd.current_dir(dir)
        .env_remove("MAILSYNC_ACCESS_TOKEN")
        .env("MAILSYNC_CONFIG_DIR", dir.join("config"))
        .env("SUPABASE_URL", url)
        .env("SUPABASE_ANON_KEY", anon_key)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
}

/// Runs `cmd` to its end off the async runtime, so that the in-test servers
/// running on it (gateway, Auth, SMTP) keep answering meanwhile.
pub async fn output_off_runtime(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("running the mailsync binary"))
        .await
        .unwrap()
}

/// What a run measured by [`output_measured`] printed and cost.
pub struct Measured {
    pub output: Output,
    pub elapsed: Duration,
    /// The process's peak resident memory, in MiB.
    pub peak_mib: f64,
}

/// Runs `cmd` (from [`command_for`] or [`command`]) to its end with its
/// address space capped at `address_space` bytes, so that a runaway
/// allocation ends the run instead of the machine, and measures its peak
/// resident memory (`wait4`'s resource usage: std's `wait` cannot report
/// it). Its output goes through files, so a large one cannot block it.
// `wait4` reaps the child: std's `Child` is never waited for.
#[allow(clippy::zombie_processes)]
pub fn output_measured(mut cmd: Command, address_space: u64) -> Measured {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    cmd.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    // SAFETY: between fork and exec the closure only calls setrlimit, which
    // is async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: address_space,
                rlim_max: address_space,
            };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let started = std::time::Instant::now();
    let child = cmd.spawn().expect("running the mailsync binary");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data, zeroes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet reaped; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "waiting for mailsync");
    let elapsed = started.elapsed();
    Measured {
        output: Output {
            status: std::process::ExitStatus::from_raw(status),
            stdout: std::fs::read(&out).unwrap_or_default(),
            stderr: std::fs::read(&err).unwrap_or_default(),
        },
        elapsed,
        // Linux reports ru_maxrss in KiB.
        peak_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

/// The arguments of `mailsync GROUP create` (`campaigns` or `templates`)
/// for `name`, with subject "S" and content "C".
pub fn create_args<'a>(group: &'a str, name: &'a str) -> [&'a str; 8] {
    [
        group,
        "create",
        "--name",
        name,
        "--subject",
        "S",
        "--content",
        "C",
    ]
}

/// Runs the mailsync binary against the stack, from an empty directory (no
/// stray .env), with only the given extra environment.
pub fn mailsync(stack: &Stack, args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(stack, dir.path());
    cmd.args(args).envs(extra_env.iter().copied());
    cmd.output().expect("running the mailsync binary")
}

/// [`mailsync`] as `user` (its token in `MAILSYNC_ACCESS_TOKEN`).
pub fn run_as(stack: &Stack, user: &User, args: &[&str]) -> Output {
    mailsync(stack, args, &[("MAILSYNC_ACCESS_TOKEN", &user.token)])
}

/// Runs mailsync on a pseudo-terminal (util-linux `script`), isolated as
/// [`command`] does, and types `answer` once `prompt` is on the screen (as a
/// person would: not after a guessed delay). Fails if the prompt has not
/// appeared within 30 s, or the command ended without showing it.
pub fn on_terminal(
    stack: &Stack,
    args: &[&str],
    extra_env: &[(&str, &str)],
    answer: &str,
    prompt: &str,
) -> Output {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let line = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]);
    isolate(&mut cmd, &stack.url, &stack.anon_key, dir.path());
    cmd.env("SUPABASE_DB_URL", &stack.db_url)
        .envs(extra_env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("running `script` (util-linux) to get a terminal");
    let screen = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let screen = screen.clone();
        let mut out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let started = std::time::Instant::now();
    loop {
        let shown = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
        if shown.contains(prompt) {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            reader.join().unwrap();
            panic!(
                "the command ended ({status}) without showing {prompt:?}:\n{}",
                String::from_utf8_lossy(&screen.lock().unwrap())
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no {prompt:?} on the screen after 30 s:\n{shown}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    drop(stdin);
    let mut output = child.wait_with_output().unwrap();
    reader.join().unwrap();
    output.stdout = std::mem::take(&mut *screen.lock().unwrap());
    output
}

/// Plays a real deadlock on another session. `held` is a superuser session
/// inside a transaction that holds a lock on `relation`. Once a session
/// whose query is like `query_like` waits for that lock, `held` asks for
/// `second`, a lock that session holds. The waiter's `deadlock_timeout`
/// (1 s) runs out first (`held` waits 30 s before it checks), so PostgreSQL
/// rolls the waiter back with `40P01`; `held` then gets its lock and rolls
/// back. Fails if nothing waits within 30 s, or if `held` was the one
/// rolled back.
pub async fn deadlock_the_waiter(held: &Client, relation: &str, query_like: &str, second: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        // A transaction reads the sessions once, unless told to look again.
        held.batch_execute("select pg_catalog.pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let waiting: i64 = scalar_in(
            held,
            "select count(*) from pg_catalog.pg_locks l join pg_catalog.pg_stat_activity a using (pid)
              where not l.granted and l.locktype = 'relation' and l.relation = $1::text::regclass
                and l.database = (select oid from pg_catalog.pg_database where datname = current_database())
                and a.query like $2",
            &[&relation, &query_like],
        )
        .await;
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < until, "no session waited for {relation}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.batch_execute(second)
        .await
        .unwrap_or_else(|e| panic!("the other session should have been rolled back: {e:?}"));
    held.batch_execute("rollback").await.unwrap();
}

/// The one value of a query answering one row of one column, read as the
/// stack's superuser.
pub async fn scalar<T>(sql: &str, params: &[&(dyn ToSql + Sync)]) -> T
where
    T: for<'a> FromSql<'a>,
{
    scalar_in(&admin().await, sql, params).await
}

/// [`scalar`] through `client` (a scratch database, a transaction's client).
pub async fn scalar_in<T>(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> T
where
    T: for<'a> FromSql<'a>,
{
    client
        .query_one(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .get(0)
}

/// The first column of every row a query answers, read as the stack's
/// superuser.
pub async fn column<T>(sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<T>
where
    T: for<'a> FromSql<'a>,
{
    column_in(&admin().await, sql, params).await
}

/// [`column`] through `client`.
pub async fn column_in<T>(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Vec<T>
where
    T: for<'a> FromSql<'a>,
{
    client
        .query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `user`'s contacts as (email, organisation), by email, read directly.
pub async fn contacts_of(user: &User) -> Vec<(String, Option<String>)> {
    admin()
        .await
        .query(
            "select email, organization_name from public.contacts where user_id = $1 order by email",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// `user`'s organisations' names, by key, read directly.
pub async fn organizations_of(user: &User) -> Vec<String> {
    column(
        "select name from public.organizations where user_id = $1 order by name_key, name",
        &[&user.id],
    )
    .await
}

/// An `import --json` report's counts: rows, blank, invalid, duplicates,
/// contacts created, updated, unchanged, organisations created.
pub fn import_counts(report: &Value) -> [u64; 8] {
    [
        "rows",
        "blank",
        "invalid",
        "duplicates",
        "contacts_created",
        "contacts_updated",
        "contacts_unchanged",
        "organizations_created",
    ]
    .map(|k| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {report}"))
    })
}

/// A campaign of `user` named `name` (subject "S") with `status`, written
/// directly as the superuser; its id.
pub async fn insert_campaign(user: &User, name: &str, status: &str) -> Uuid {
    scalar(
        "insert into public.email_campaigns (user_id, name, subject, status)
         values ($1, $2, 'S', $3) returning id",
        &[&user.id, &name, &status],
    )
    .await
}

/// The checks a `db verify --json` report has failing.
pub fn failing_checks(report: &Value) -> Vec<&Value> {
    report["checks"]
        .as_array()
        .expect("a db verify report")
        .iter()
        .filter(|c| c["ok"] != true)
        .collect()
}

/// The one JSON document a `--json` command printed on stdout.
pub fn json_of(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}\nstderr:\n{}",
            stdout(o),
            stderr(o)
        )
    })
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A throwaway database on the stack's cluster with the Supabase shim loaded,
/// for tests that drop and recreate the schema without disturbing others.
pub struct ScratchDb {
    pub name: String,
    pub url: String,
}

impl ScratchDb {
    pub async fn create(stack: &Stack) -> Self {
        let name = format!("mailsync_scratch_{}", Uuid::new_v4().simple());
        admin_to(&stack.db_url)
            .await
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("creating a scratch database");
        let url = replace_db_name(&stack.db_url, &name);
        let compat = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sql/local/supabase-compat.sql"
        ))
        .expect("reading sql/local/supabase-compat.sql");
        // The roles it alters are shared by the whole cluster: two loads at
        // once would collide ("tuple concurrently updated"), so they take
        // turns under a lock held in the stack's main database.
        let main = admin_to(&stack.db_url).await;
        main.batch_execute("select pg_advisory_lock(727275)")
            .await
            .unwrap();
        admin_to(&url)
            .await
            .batch_execute(&compat)
            .await
            .unwrap_or_else(|e| panic!("loading sql/local/supabase-compat.sql: {e:?}"));
        main.batch_execute("select pg_advisory_unlock(727275)")
            .await
            .unwrap();
        Self { name, url }
    }

    pub async fn client(&self) -> Client {
        admin_to(&self.url).await
    }

    pub async fn drop(self, stack: &Stack) {
        let _ = admin_to(&stack.db_url)
            .await
            .batch_execute(&format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .await;
    }
}

fn replace_db_name(url: &str, name: &str) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// Opens a transaction acting as `user` the way PostgREST does: the role
/// switched to `authenticated` and `request.jwt.claims` set. The caller
/// commits it (or lets it roll back).
pub async fn begin_as<'a>(client: &'a mut Client, user: &User) -> tokio_postgres::Transaction<'a> {
    let claims = json!({"sub": user.id.to_string(), "role": "authenticated", "email": user.email});
    let tx = client.transaction().await.unwrap();
    tx.execute(
        "select set_config('request.jwt.claims', $1, true)",
        &[&claims.to_string()],
    )
    .await
    .unwrap();
    tx.batch_execute("set local role authenticated")
        .await
        .unwrap();
    tx
}

/// Runs `sql` in one transaction as `user` (see [`begin_as`]) and commits.
pub async fn as_user_sql(
    client: &mut Client,
    user: &User,
    sql: &str,
) -> Vec<tokio_postgres::SimpleQueryMessage> {
    let tx = begin_as(client, user).await;
    let rows = tx
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("running as {}:\n{sql}\n{e:?}", user.id));
    tx.commit().await.unwrap();
    rows
}

/// The rows of the last statement of `sql` run as `user`, as text maps.
pub async fn rows_as(
    client: &mut Client,
    user: &User,
    sql: &str,
) -> Vec<std::collections::HashMap<String, Option<String>>> {
    let mut rows = Vec::new();
    for message in as_user_sql(client, user, sql).await {
        match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => rows.push(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), row.get(i).map(str::to_string)))
                    .collect(),
            ),
            tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {}
            _ => {}
        }
    }
    rows
}

/// Writes a saved session for `user` by hand, where the documented layout
/// puts it (`CONFIG/sessions/<host>-<port>-<fnv-1a 32 bits of the URL>.json`),
/// so a test never saves its session with the code under test. Valid for an
/// hour.
pub fn write_saved_session(stack: &Stack, user: &User, config: &Path, refresh_token: &str) {
    let expires_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3600;
    write_session_file(
        config,
        &stack.url,
        &json!({"access_token": user.token, "refresh_token": refresh_token,
                "expires_at": expires_at, "user_id": user.id, "email": user.email}),
    );
}

/// Writes the session file of `project_url` in `config` by hand: `fields`
/// (access_token, refresh_token, expires_at, user_id, email) and the
/// project's URL.
pub fn write_session_file(config: &Path, project_url: &str, fields: &Value) {
    let project = project_url.trim_end_matches('/').to_string();
    let readable: String = project
        .split("://")
        .last()
        .unwrap()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = project.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    }) as u32;
    let mut session = fields.clone();
    session["project_url"] = json!(project);
    std::fs::create_dir_all(config.join("sessions")).unwrap();
    std::fs::write(
        config
            .join("sessions")
            .join(format!("{readable}-{hash:08x}.json")),
        session.to_string(),
    )
    .unwrap();
}

/// Compares `actual` with `tests/snapshots/NAME.txt` and fails on any
/// difference, whatever the environment: a test never rewrites what it
/// checks. On a difference it leaves the new text in
/// `tests/snapshots/NAME.txt.new` (ignored by git); `scripts/update-snapshots`
/// moves those over the files after an intended change, for review with
/// `git diff`.
pub fn assert_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.txt"));
    let new = path.with_extension("txt.new");
    let expected = std::fs::read_to_string(&path).ok();
    if expected.as_deref() == Some(actual) {
        let _ = std::fs::remove_file(&new);
        return;
    }
    std::fs::write(&new, actual).unwrap_or_else(|e| panic!("writing {}: {e}", new.display()));
    match expected {
        None => panic!(
            "no snapshot {} yet; the output is in {} (scripts/update-snapshots accepts it)",
            path.display(),
            new.display()
        ),
        Some(expected) => {
            let first = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            panic!(
                "the output differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}\n\
                 ({} lines expected, {} actual; the whole output is in {}; after an intended \
                 change, scripts/update-snapshots accepts it)",
                path.display(),
                first + 1,
                expected.lines().nth(first).unwrap_or("<end>"),
                actual.lines().nth(first).unwrap_or("<end>"),
                expected.lines().count(),
                actual.lines().count(),
                new.display()
            )
        }
    }
}
