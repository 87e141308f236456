//! Sign-in and sessions against an in-test server that answers like
//! Supabase Auth (SUPABASE.md §4; the local stack has no Auth server), and
//! one end-to-end import with a saved session on the real local stack.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use common::{stderr, stdout, Stack};
use serde_json::{json, Value};
use uuid::Uuid;

const PASSWORD: &str = "correct-horse-battery-staple";
const ANON_KEY: &str = "anon-key-for-the-auth-tests-1234567890";

#[derive(Default)]
struct AuthState {
    /// (grant or path, body, apikey header, authorization header)
    requests: Vec<(String, Value, String, String)>,
    /// The refresh token that is still valid.
    refresh_token: String,
    issued: u32,
    user: Uuid,
}

type Shared = Arc<Mutex<AuthState>>;

fn token_response(state: &mut AuthState, lifetime: i64) -> Value {
    state.issued += 1;
    state.refresh_token = format!("refresh-token-{}", state.issued);
    let stack = common::stack();
    let access = common::sign(&stack, &state.user, "ana@example.test", lifetime);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({"access_token": access, "token_type": "bearer", "expires_in": lifetime,
           "expires_at": now + lifetime, "refresh_token": state.refresh_token,
           "user": {"id": state.user, "aud": "authenticated", "role": "authenticated", "email": "ana@example.test"}})
}

async fn token(
    State(state): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut s = state.lock().unwrap();
    let grant = query.get("grant_type").cloned().unwrap_or_default();
    let header = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    s.requests.push((
        grant.clone(),
        body.clone(),
        header("apikey"),
        header("authorization"),
    ));
    match grant.as_str() {
        "password" if body["password"] == PASSWORD && body["email"] == "ana@example.test" => {
            // A short-lived token, so that the next use refreshes it.
            (StatusCode::OK, Json(token_response(&mut s, 30)))
        }
        "password" => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"}),
            ),
        ),
        "refresh_token" if body["refresh_token"] == s.refresh_token.as_str() => {
            (StatusCode::OK, Json(token_response(&mut s, 3600)))
        }
        _ => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"code": 400, "error_code": "refresh_token_not_found", "msg": "Invalid Refresh Token: Refresh Token Not Found"}),
            ),
        ),
    }
}

async fn logout(State(state): State<Shared>, headers: HeaderMap) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    state
        .lock()
        .unwrap()
        .requests
        .push(("logout".into(), Value::Null, String::new(), auth));
    StatusCode::NO_CONTENT
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

fn session_files(config: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(config.join("sessions"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
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
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let o = mailsync().args(["completions", shell]).output().unwrap();
        assert!(
            o.status.success() && stdout(&o).contains("mailsync"),
            "{shell}"
        );
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
    let session = mailsync::supabase::session::Session {
        project_url: stack.url.trim_end_matches('/').to_string(),
        access_token: user.token.clone(),
        refresh_token: "unused-refresh-token".into(),
        expires_at: mailsync::supabase::session::now() + 3600,
        user_id: user.id.to_string(),
        email: Some(user.email.clone()),
    };
    // Where mailsync will look, computed by mailsync itself.
    let path = {
        std::env::set_var(mailsync::supabase::session::ENV_CONFIG_DIR, &config);
        mailsync::supabase::session::save(&session).unwrap()
    };
    assert!(path.starts_with(&config));
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
