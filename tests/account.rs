//! Sign-in and sessions against an in-test server that answers like
//! Supabase Auth (SUPABASE.md §4; the local stack has no Auth server), and
//! one end-to-end import with a saved session on the real local stack.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use common::{stderr, stdout, Stack};
use serde_json::{json, Value};
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery-staple";
const ANON_KEY: &str = "anon-key-for-the-auth-tests-1234567890";

/// A scripted answer the server gives to the next `/token` request instead
/// of its normal one: how Supabase Auth (or a proxy before it) fails.
enum Scripted {
    /// A status, a content type and a body.
    Reply(u16, &'static str, String),
    /// Accepts the request and never answers.
    Hang,
}

#[derive(Default)]
struct AuthState {
    /// (grant or path, body, apikey header, authorization header)
    requests: Vec<(String, Value, String, String)>,
    /// The refresh token that is still valid.
    refresh_token: String,
    /// Refresh tokens already spent (reuse is detected).
    spent: Vec<String>,
    /// Access tokens issued and not revoked.
    live_access: Vec<String>,
    issued: u32,
    user: Uuid,
    /// Answers for the next `/token` requests, first first.
    scripted: std::collections::VecDeque<Scripted>,
    /// Two commands refreshing at once: the config dir they share. The
    /// first refresh is answered once the second has arrived; the second
    /// (with the spent token) once the first command saved its session.
    race: Option<PathBuf>,
    /// Whether one of the racing refreshes has been answered.
    race_claimed: bool,
}

type Shared = Arc<Mutex<AuthState>>;

fn token_response(state: &mut AuthState, lifetime: i64) -> Value {
    state.issued += 1;
    if !state.refresh_token.is_empty() {
        let old = std::mem::take(&mut state.refresh_token);
        state.spent.push(old);
    }
    state.refresh_token = format!("refresh-token-{}", state.issued);
    let stack = common::stack();
    let access = common::sign(&stack, &state.user, "ana@example.test", lifetime);
    state.live_access.push(access.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({"access_token": access, "token_type": "bearer", "expires_in": lifetime,
           "expires_at": now + lifetime, "refresh_token": state.refresh_token,
           "user": {"id": state.user, "aud": "authenticated", "role": "authenticated", "email": "ana@example.test"}})
}

fn reply(status: u16, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap()
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Waits (up to 10 s) until `done` holds, checking every 20 ms.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn token(
    State(state): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let grant = query.get("grant_type").cloned().unwrap_or_default();
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (scripted, race) = {
        let mut s = state.lock().unwrap();
        s.requests.push((
            grant.clone(),
            body.clone(),
            header("apikey"),
            header("authorization"),
        ));
        (s.scripted.pop_front(), s.race.clone())
    };
    match scripted {
        Some(Scripted::Reply(status, content_type, body)) => {
            return reply(status, content_type, body)
        }
        Some(Scripted::Hang) => std::future::pending::<()>().await,
        None => {}
    }
    if header("apikey") != ANON_KEY {
        return json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid API key"}),
        );
    }
    if let (Some(config), "refresh_token") = (race, grant.as_str()) {
        // Both refreshes arrive first; the first to claim the token wins.
        let refreshes = || {
            state
                .lock()
                .unwrap()
                .requests
                .iter()
                .filter(|r| r.0 == "refresh_token")
                .count()
        };
        until(|| refreshes() >= 2).await;
        let won = !std::mem::replace(&mut state.lock().unwrap().race_claimed, true);
        if !won {
            // The spent token: answered once the winner saved its session.
            let sent = body["refresh_token"].clone();
            until(|| {
                let saved = read_session(&config)["refresh_token"].clone();
                saved != sent && !saved.is_null()
            })
            .await;
        }
    }
    let mut s = state.lock().unwrap();
    match grant.as_str() {
        "password" if body["password"] == PASSWORD && body["email"] == "ana@example.test" => {
            // A short-lived token, so that the next use refreshes it.
            json_reply(StatusCode::OK, token_response(&mut s, 30))
        }
        "password" => json_reply(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}),
        ),
        "refresh_token" if body["refresh_token"] == s.refresh_token.as_str() => {
            json_reply(StatusCode::OK, token_response(&mut s, 3600))
        }
        "refresh_token" if s.spent.iter().any(|t| body["refresh_token"] == t.as_str()) => {
            json_reply(
                StatusCode::BAD_REQUEST,
                json!({"code": 400, "error_code": "refresh_token_already_used", "msg": "Invalid Refresh Token: Already Used"}),
            )
        }
        _ => json_reply(
            StatusCode::BAD_REQUEST,
            json!({"code": 400, "error_code": "refresh_token_not_found", "msg": "Invalid Refresh Token: Refresh Token Not Found"}),
        ),
    }
}

/// `/logout`: 204 only with the project's key and a live access token it
/// issued, which it then revokes; 401 otherwise, as Supabase Auth answers.
async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let auth = header("authorization");
    let mut s = state.lock().unwrap();
    s.requests
        .push(("logout".into(), Value::Null, header("apikey"), auth.clone()));
    if header("apikey") != ANON_KEY {
        return json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid API key"}),
        );
    }
    let token = auth.strip_prefix("Bearer ").unwrap_or("").to_string();
    match s.live_access.iter().position(|t| *t == token) {
        Some(i) => {
            s.live_access.remove(i);
            StatusCode::NO_CONTENT.into_response()
        }
        None => json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"code": 401, "error_code": "bad_jwt", "msg": "invalid JWT: unable to parse or verify signature, token is unverifiable"}),
        ),
    }
}

async fn auth_server() -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(AuthState {
        user: Uuid::new_v4(),
        ..Default::default()
    }));
    let app = Router::new()
        .route("/auth/v1/token", post(token))
        .route("/auth/v1/logout", post(logout))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// Runs mailsync against the in-test Auth server with its own config dir.
fn run(
    url: &str,
    config: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    use std::io::Write;
    let mut cmd = common::command_for(url, ANON_KEY, config);
    cmd.args(args)
        .env("MAILSYNC_CONFIG_DIR", config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The saved sessions (not the temporary file of a save in progress).
fn session_files(config: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(config.join("sessions"))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

fn read_session(config: &Path) -> Value {
    let files = session_files(config);
    assert_eq!(files.len(), 1, "{files:?}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

/// No secret may appear in what a person or a log sees.
fn assert_no_secret(o: &std::process::Output, secrets: &[&str]) {
    let all = format!("{}{}", stdout(o), stderr(o));
    for s in secrets {
        assert!(
            !s.is_empty() && !all.contains(s),
            "a secret was printed:\n{all}"
        );
    }
}

async fn login(url: &str, config: &Path) -> std::process::Output {
    let url = url.to_string();
    let config = config.to_path_buf();
    tokio::task::spawn_blocking(move || {
        run(
            &url,
            &config,
            &["login", "--email", "ana@example.test", "--password-stdin"],
            &format!("{PASSWORD}\n"),
            &[],
        )
    })
    .await
    .unwrap()
}

async fn blocking(
    url: &str,
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let (url, config) = (url.to_string(), config.to_path_buf());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run(&url, &config, &args, "", &env)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn login_saves_a_private_session_and_a_near_expiry_token_is_refreshed_before_use() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    let o = login(&url, dir.path()).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ana@example.test"));
    let saved = read_session(dir.path());
    let first_access = saved["access_token"].as_str().unwrap().to_string();
    assert_eq!(saved["refresh_token"], "refresh-token-1");
    assert_eq!(saved["project_url"], url.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&session_files(dir.path())[0])
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    {
        let s = state.lock().unwrap();
        let (grant, body, apikey, _) = &s.requests[0];
        assert_eq!((grant.as_str(), apikey.as_str()), ("password", ANON_KEY));
        assert_eq!(body["email"], "ana@example.test");
    }
    assert_no_secret(&o, &[PASSWORD, &first_access, "refresh-token-1", ANON_KEY]);

    // The token expires in 30 s: the next command refreshes it first.
    let who = blocking(&url, dir.path(), &["--json", "whoami"], &[]).await;
    assert!(who.status.success(), "{}", stderr(&who));
    let me: Value = serde_json::from_str(stdout(&who).trim()).unwrap();
    assert_eq!(me["email"], "ana@example.test");
    assert!(me["expires_in_seconds"].as_i64().unwrap() > 3000, "{me}");
    assert!(
        me["token_source"]
            .as_str()
            .unwrap()
            .starts_with("saved session"),
        "{me}"
    );
    let saved = read_session(dir.path());
    assert_eq!(
        saved["refresh_token"], "refresh-token-2",
        "the rotated refresh token is saved"
    );
    {
        let s = state.lock().unwrap();
        let (grant, body, _, _) = &s.requests[1];
        assert_eq!(
            (grant.as_str(), body["refresh_token"].as_str()),
            ("refresh_token", Some("refresh-token-1"))
        );
    }
    assert_no_secret(
        &who,
        &[
            saved["access_token"].as_str().unwrap(),
            "refresh-token-2",
            &first_access,
        ],
    );

    // Fresh now: no more refreshes.
    let again = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert!(again.status.success());
    assert_eq!(state.lock().unwrap().requests.len(), 2);
}

#[tokio::test]
async fn a_wrong_password_exits_3_and_saves_nothing() {
    let (url, _) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    let (u, d) = (url.clone(), dir.path().to_path_buf());
    let o = tokio::task::spawn_blocking(move || {
        run(
            &u,
            &d,
            &["login", "--email", "ana@example.test", "--password-stdin"],
            "wrong-password-123\n",
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("email or password is wrong"),
        "{}",
        stderr(&o)
    );
    assert_no_secret(&o, &["wrong-password-123"]);
    assert!(session_files(dir.path()).is_empty());
}

#[tokio::test]
async fn a_failed_refresh_exits_3_and_says_to_log_in() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    assert!(login(&url, dir.path()).await.status.success());
    // The server forgets the refresh token (revoked elsewhere).
    state.lock().unwrap().refresh_token = "something-else".into();
    let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("your session expired; run `mailsync login`"),
        "{}",
        stderr(&o)
    );
    assert_no_secret(&o, &["refresh-token-1"]);
}

#[tokio::test]
async fn logout_revokes_and_deletes_the_session_and_the_environment_token_wins() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    assert!(login(&url, dir.path()).await.status.success());
    let access = read_session(dir.path())["access_token"]
        .as_str()
        .unwrap()
        .to_string();

    let env_token = common::sign(&common::stack(), &Uuid::new_v4(), "env@example.test", 3600);
    let who = blocking(
        &url,
        dir.path(),
        &["--json", "whoami"],
        &[("MAILSYNC_ACCESS_TOKEN", &env_token)],
    )
    .await;
    let me: Value = serde_json::from_str(stdout(&who).trim()).unwrap();
    assert_eq!(me["email"], "env@example.test");
    assert_eq!(me["token_source"], "environment");
    assert_eq!(
        state.lock().unwrap().requests.len(),
        1,
        "no refresh of the saved session"
    );
    assert_no_secret(&who, &[&env_token]);

    let config = blocking(&url, dir.path(), &["config"], &[]).await;
    assert!(
        stdout(&config).contains("saved session"),
        "{}",
        stdout(&config)
    );
    assert_no_secret(&config, &[&access, ANON_KEY, "refresh-token-1"]);

    let out = blocking(&url, dir.path(), &["--json", "logout"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let done = common::json_of(&out);
    assert_eq!(
        (&done["signed_in"], &done["revoked"]),
        (&json!(true), &json!(true)),
        "{done}"
    );
    assert!(session_files(dir.path()).is_empty());
    assert!(
        state.lock().unwrap().live_access.is_empty(),
        "the server revoked the access token"
    );
    let again = common::json_of(&blocking(&url, dir.path(), &["--json", "logout"], &[]).await);
    assert_eq!(again["signed_in"], json!(false), "{again}");
    let (what, _, _, authorization) = state.lock().unwrap().requests.last().unwrap().clone();
    assert_eq!(
        (what.as_str(), authorization.as_str()),
        ("logout", format!("Bearer {access}").as_str())
    );
    let none = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert_eq!(none.status.code(), Some(3));
    assert!(stderr(&none).contains("mailsync login"));
}

#[tokio::test]
async fn unreachable_auth_and_a_missing_key_exit_3_naming_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let o = tokio::task::spawn_blocking(move || {
        run(
            "http://127.0.0.1:1",
            &d,
            &["login", "--email", "a@b.fr", "--password-stdin"],
            "pw-secret-xyz\n",
            &[],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("http://127.0.0.1:1/auth/v1"),
        "{}",
        stderr(&o)
    );
    assert_no_secret(&o, &["pw-secret-xyz"]);

    let o = common::command_for("https://abcdefgh.supabase.co", "", dir.path())
        .args(["login", "--email", "a@b.fr", "--password-stdin"])
        .env_remove("SUPABASE_ANON_KEY")
        .env("MAILSYNC_CONFIG_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("SUPABASE_ANON_KEY"), "{}", stderr(&o));
}

#[test]
fn completions_and_every_help_have_what_they_promise() {
    let dir = tempfile::tempdir().unwrap();
    let mailsync = || common::command_for("http://127.0.0.1:1", ANON_KEY, dir.path());
    // Every command path clap knows, e.g. ["campaigns", "watch"].
    use clap::CommandFactory;
    let tree = mailsync::cli::Cli::command();
    let mut paths: Vec<Vec<String>> = Vec::new();
    for top in tree.get_subcommands().filter(|c| c.get_name() != "help") {
        paths.push(vec![top.get_name().to_string()]);
        for sub in top.get_subcommands().filter(|c| c.get_name() != "help") {
            paths.push(vec![top.get_name().to_string(), sub.get_name().to_string()]);
        }
    }
    assert!(paths.len() >= 17, "{paths:?}");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = mailsync().args(["completions", shell]).output().unwrap();
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        for path in &paths {
            let name = path.last().unwrap();
            let found = match (shell, path.as_slice()) {
                ("bash", [top]) => script.contains(&format!("mailsync,{top})")),
                ("bash", [top, sub]) => script.contains(&format!("mailsync__subcmd__{top},{sub})")),
                ("zsh", _) => script.contains(&format!("'{name}:")),
                ("fish", [top]) => script.lines().any(|l| {
                    l.contains("__fish_mailsync_needs_command")
                        && l.contains(&format!("-a \"{top}\""))
                }),
                ("fish", [top, sub]) => script.lines().any(|l| {
                    l.contains(&format!("__fish_mailsync_using_subcommand {top};"))
                        && l.contains(&format!("-a \"{sub}\""))
                }),
                ("powershell", _) => script.contains(&format!("'mailsync;{}' {{", path.join(";"))),
                _ => unreachable!(),
            };
            assert!(
                found,
                "{shell} completions lack `mailsync {}`",
                path.join(" ")
            );
        }
    }
    let commands: &[&[&str]] = &[
        &["db", "reset"],
        &["db", "apply"],
        &["db", "verify"],
        &["import"],
        &["contacts", "list"],
        &["campaigns", "create"],
        &["campaigns", "list"],
        &["campaigns", "send"],
        &["campaigns", "watch"],
        &["templates", "create"],
        &["templates", "list"],
        &["dashboard"],
        &["login"],
        &["logout"],
        &["whoami"],
        &["config"],
        &["completions"],
    ];
    for args in commands {
        let mut full = args.to_vec();
        full.push("--help");
        let o = mailsync().args(&full).output().unwrap();
        let help = stdout(&o);
        assert!(
            help.contains("Examples:") && help.contains("mailsync "),
            "{args:?} --help has no example:\n{help}"
        );
    }
}

/// A saved session (from the local stack's token) drives a real import.
#[tokio::test]
async fn a_saved_session_is_used_for_an_import_on_the_local_stack() {
    let stack: Stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    // Written by hand, not by the code under test.
    common::write_saved_session(&stack, &user, &config, "unused-refresh-token");
    let file = dir.path().join("c.csv");
    std::fs::write(&file, "Acme,a@example.fr\nBeta,b@example.fr\n").unwrap();
    let o = common::mailsync(
        &stack,
        &["--json", "import", file.to_str().unwrap()],
        &[("MAILSYNC_CONFIG_DIR", config.to_str().unwrap())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(report["contacts_created"], 2);
    let n: i64 = common::admin()
        .await
        .query_one(
            "select count(*) from public.contacts where user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    assert_no_secret(&o, &[&user.token]);
}

/// Runs `login` as ana with the right password.
async fn login_answered(url: &str, config: &Path) -> std::process::Output {
    login(url, config).await
}

#[tokio::test]
async fn every_documented_sign_in_failure_gets_a_clear_message_exit_3_and_no_session() {
    let cases: &[(u16, &str, &str, &str)] = &[
        // The older error shape (GoTrue before error codes).
        (
            400,
            "application/json",
            r#"{"error":"invalid_grant","error_description":"Invalid login credentials"}"#,
            "email or password is wrong",
        ),
        (
            400,
            "application/json",
            r#"{"code":400,"error_code":"email_not_confirmed","msg":"Email not confirmed"}"#,
            "not confirmed",
        ),
        (
            400,
            "application/json",
            r#"{"error":"invalid_grant","error_description":"Email not confirmed"}"#,
            "not confirmed",
        ),
        (
            429,
            "application/json",
            r#"{"code":429,"error_code":"over_request_rate_limit","msg":"Request rate limit reached"}"#,
            "is limiting requests (HTTP 429)",
        ),
        (
            500,
            "application/json",
            r#"{"code":500,"error_code":"unexpected_failure","msg":"Unexpected failure"}"#,
            "failed (HTTP 500)",
        ),
        // A proxy in front of Auth answers with a page, not JSON.
        (
            502,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "failed (HTTP 502)",
        ),
    ];
    for (status, content_type, body, expected) in cases {
        let (url, state) = auth_server().await;
        state.lock().unwrap().scripted.push_back(Scripted::Reply(
            *status,
            content_type,
            body.to_string(),
        ));
        let dir = tempfile::tempdir().unwrap();
        let o = login_answered(&url, dir.path()).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "HTTP {status} {body}: {err}");
        assert!(err.contains(expected), "HTTP {status} {body}: {err}");
        assert!(!err.contains("<html"), "the page is not shown: {err}");
        assert!(
            session_files(dir.path()).is_empty(),
            "HTTP {status}: nothing saved"
        );
        assert_no_secret(&o, &[PASSWORD, ANON_KEY]);
    }
}

#[tokio::test]
async fn a_refresh_the_server_cannot_answer_keeps_the_session_and_says_to_try_again() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    assert!(login(&url, dir.path()).await.status.success());
    let replies = [
        (
            503,
            "text/html",
            "<html>Service Unavailable</html>",
            "failed (HTTP 503)",
        ),
        (
            429,
            "application/json",
            r#"{"code":429,"error_code":"over_request_rate_limit","msg":"Request rate limit reached"}"#,
            "is limiting requests (HTTP 429)",
        ),
    ];
    for (status, content_type, body, expected) in replies {
        // Every attempt of the refresh's bounded retry gets the failure.
        for _ in 0..4 {
            state.lock().unwrap().scripted.push_back(Scripted::Reply(
                status,
                content_type,
                body.to_string(),
            ));
        }
        let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{}", stderr(&o));
        assert!(
            !stderr(&o).contains("session expired"),
            "a server failure is not an expired session: {}",
            stderr(&o)
        );
        assert_eq!(
            read_session(dir.path())["refresh_token"],
            "refresh-token-1",
            "the session is kept for the next try"
        );
        assert_no_secret(&o, &["refresh-token-1", ANON_KEY]);
    }
    // Once the server is back, the kept session works.
    let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_session(dir.path())["refresh_token"], "refresh-token-2");
}

#[tokio::test]
async fn an_auth_server_that_never_answers_times_out_with_exit_3_and_keeps_the_session() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    assert!(login(&url, dir.path()).await.status.success());
    state.lock().unwrap().scripted.push_back(Scripted::Hang);
    let started = std::time::Instant::now();
    let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no answer"), "{}", stderr(&o));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the client gives up in time"
    );
    assert_eq!(read_session(dir.path())["refresh_token"], "refresh-token-1");
}

#[tokio::test]
async fn two_commands_refreshing_at_once_both_succeed_with_the_one_saved_session() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    assert!(login(&url, dir.path()).await.status.success());
    // The saved token expires in 30 s: both commands refresh it, with the
    // same single-use refresh token. The server answers the first, then
    // tells the second its token was already used.
    state.lock().unwrap().race = Some(dir.path().to_path_buf());
    let (a, b) = tokio::join!(
        blocking(&url, dir.path(), &["--json", "whoami"], &[]),
        blocking(&url, dir.path(), &["--json", "whoami"], &[]),
    );
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", stderr(o));
        assert_eq!(common::json_of(o)["email"], "ana@example.test");
        assert_no_secret(o, &["refresh-token-1", "refresh-token-2"]);
    }
    let s = state.lock().unwrap();
    let refreshes: Vec<&str> = s
        .requests
        .iter()
        .filter(|r| r.0 == "refresh_token")
        .map(|r| r.1["refresh_token"].as_str().unwrap())
        .collect();
    assert_eq!(
        refreshes,
        ["refresh-token-1", "refresh-token-1"],
        "both refreshed"
    );
    assert_eq!(s.issued, 2, "one refresh succeeded");
    drop(s);
    assert_eq!(read_session(dir.path())["refresh_token"], "refresh-token-2");
}

#[tokio::test]
async fn logout_with_a_key_the_server_refuses_is_not_reported_as_revoked() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    assert!(login(&url, dir.path()).await.status.success());
    let out = blocking(
        &url,
        dir.path(),
        &["--json", "logout"],
        &[("SUPABASE_ANON_KEY", "some-other-projects-key-0987654321")],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let done = common::json_of(&out);
    assert_eq!(
        (&done["signed_in"], &done["revoked"]),
        (&json!(true), &json!(false)),
        "{done}"
    );
    assert!(
        stderr(&out).contains("could not revoke"),
        "{}",
        stderr(&out)
    );
    assert!(session_files(dir.path()).is_empty(), "deleted all the same");
    assert_eq!(
        state.lock().unwrap().live_access.len(),
        1,
        "the server revoked nothing"
    );
    assert_no_secret(&out, &["some-other-projects-key-0987654321", ANON_KEY]);
}
