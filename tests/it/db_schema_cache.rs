//! `db reset` / `db apply` and the REST API's schema cache: on a brand-new
//! database with its own REST server (the stack's binary, started here, as
//! a new project has it), the command right after `db reset` works at once.
//! The REST server reloads its cache asynchronously after DDL; without the
//! wait, `import` met "Could not find the function public.import_contacts(rows)
//! in the schema cache".

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use uuid::Uuid;

use crate::common::{self, json_of, stderr, stdout, ScratchDb, Stack};

/// The REST server binary the local stack runs (scripts/local-stack.sh):
/// its version, built with the patches `scripts/postrust/id` digests.
fn rest_server_binary() -> PathBuf {
    let script = include_str!("../../scripts/local-stack.sh");
    let version = script
        .lines()
        .find_map(|l| l.strip_prefix("POSTRUST_VERSION="))
        .expect("POSTRUST_VERSION in scripts/local-stack.sh")
        .trim();
    let cache = std::env::var_os("MAILSYNC_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("mailsync")))
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mailsync")
        });
    let id =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postrust/id"))
            .output()
            .expect("running scripts/postrust/id");
    assert!(id.status.success(), "scripts/postrust/id failed");
    let digest = String::from_utf8(id.stdout).unwrap();
    cache.join(format!("postrust-{version}-{}/bin/postrust", digest.trim()))
}

/// A REST server on one scratch database, behind `/rest/v1` as on Supabase.
struct RestServer {
    child: Child,
    url: String,
}

impl Drop for RestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Forwards `/rest/v1/...` to the REST server's `/...`, as the stack's
/// nginx (and Supabase's gateway) does.
async fn forward(State(upstream): State<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let path = path.strip_prefix("/rest/v1").unwrap_or(path);
    let body = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut outgoing = reqwest::Client::new()
        .request(method, format!("{upstream}{path}"))
        .body(body.to_vec());
    for (name, value) in &parts.headers {
        if name.as_str() != "host" {
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
    }
    let Ok(answer) = outgoing.send().await else {
        return Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .body(Body::empty())
            .unwrap();
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            response = response.header(n, v);
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    response.body(Body::from(bytes.to_vec())).unwrap()
}

impl RestServer {
    /// Starts the REST server on `db` (as `authenticator`, listening on the
    /// `pgrst` channel) and the `/rest/v1` front; returns once it answers.
    async fn start(stack: &Stack, db: &ScratchDb) -> RestServer {
        let binary = rest_server_binary();
        assert!(binary.exists(), "{} (scripts/setup.sh)", binary.display());
        let mut db_url = url::Url::parse(&db.url).unwrap();
        db_url.set_username("authenticator").unwrap();
        let port = free_port();
        let child = Command::new(&binary)
            .env("DATABASE_URL", db_url.as_str())
            .env("PGRST_DB_ANON_ROLE", "anon")
            .env("PGRST_DB_SCHEMAS", "public")
            .env("PGRST_JWT_SECRET", &stack.jwt_secret)
            .env("PGRST_SERVER_HOST", "127.0.0.1")
            .env("PGRST_SERVER_PORT", port.to_string())
            .env("PGRST_COMPAT_MODE", "true")
            .env("PGRST_DB_CHANNEL_ENABLED", "true")
            .env("PGRST_DB_POOL", "4")
            .env("PGRST_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the REST server");
        let upstream = format!("http://127.0.0.1:{port}");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let front = listener.local_addr().unwrap();
        let app = Router::new().fallback(forward).with_state(upstream);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let server = RestServer {
            child,
            url: format!("http://{front}"),
        };
        let started = Instant::now();
        loop {
            let answer = reqwest::Client::new()
                .get(format!("{}/rest/v1/", server.url))
                .header("apikey", &stack.anon_key)
                .send()
                .await;
            if answer.is_ok_and(|a| a.status().as_u16() < 500) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the REST server did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }
}

/// mailsync against `db` and its own REST server.
async fn mailsync_on(
    stack: &Stack,
    db: &ScratchDb,
    server: &RestServer,
    dir: &std::path::Path,
    token: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    let mut cmd = common::command_for(&server.url, &stack.anon_key, dir);
    cmd.env("SUPABASE_DB_URL", &db.url).args(args);
    if let Some(token) = token {
        cmd.env("MAILSYNC_ACCESS_TOKEN", token);
    }
    common::output_off_runtime(cmd).await
}

#[tokio::test]
async fn import_works_right_after_reset_on_a_brand_new_database() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let server = RestServer::start(&stack, &db).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contacts.csv");
    std::fs::write(
        &file,
        "Organisation,Email\nAcme,a@example.fr\nBeta,b@example.fr\n",
    )
    .unwrap();
    let id = Uuid::new_v4();
    let email = format!("{}@example.test", id.simple());
    common::insert_user(&db.client().await, id, &email).await;
    let token = common::sign(&stack, &id, &email, 3600);

    // The REST server loaded its cache when the database was empty.
    let reset = mailsync_on(
        &stack,
        &db,
        &server,
        dir.path(),
        None,
        &["-v", "db", "reset", "--yes"],
    )
    .await;
    assert!(reset.status.success(), "{}", stderr(&reset));
    let import = mailsync_on(
        &stack,
        &db,
        &server,
        dir.path(),
        Some(&token),
        &["--json", "import", file.to_str().unwrap()],
    )
    .await;
    assert!(
        import.status.success(),
        "import right after reset: {}{}",
        stdout(&import),
        stderr(&import)
    );
    let inserted: i64 = db
        .client()
        .await
        .query_one(
            "select count(*) from public.contacts where user_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(inserted, 2, "{}", stdout(&import));
    assert!(
        stderr(&reset).contains("schema cache: the REST API at"),
        "-v says what it waited for: {}",
        stderr(&reset)
    );

    // And after apply, every time: the cache may still be reloading from the
    // reset when apply commits.
    for _ in 0..2 {
        let apply = mailsync_on(
            &stack,
            &db,
            &server,
            dir.path(),
            None,
            &["--json", "db", "apply"],
        )
        .await;
        assert!(apply.status.success(), "{}", stderr(&apply));
        assert_eq!(json_of(&apply)["tables"], 15);
        let list = mailsync_on(
            &stack,
            &db,
            &server,
            dir.path(),
            Some(&token),
            &["--json", "contacts", "list"],
        )
        .await;
        assert!(list.status.success(), "{}", stderr(&list));
    }
    drop(server);
    db.drop(&stack).await;
}

/// A database the configured REST API does not serve (no REST session on
/// it) is not waited for: `db reset` on a scratch database beside the stack
/// ends at once.
#[tokio::test]
async fn a_database_no_rest_server_serves_is_not_waited_for() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let started = Instant::now();
    let reset = common::mailsync(
        &stack,
        &["-v", "db", "reset", "--yes"],
        &[("SUPABASE_DB_URL", &db.url)],
    );
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert!(
        stderr(&reset).contains("no REST API session"),
        "{}",
        stderr(&reset)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    db.drop(&stack).await;
}
