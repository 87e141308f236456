//! Sign-in and sessions against an in-test server that answers like
//! Supabase Auth (tests/it/common/auth_server.rs, after supabase/auth; the
//! local stack has no Auth server), and
//! one end-to-end import with a saved session on the real local stack.

use crate::common;

use std::path::Path;

use common::auth_server::{
    auth_server, read_session, session_files, Scripted, Shared, ANON_KEY, PASSWORD,
};
use common::{stderr, stdout, Stack};
use serde_json::{json, Value};
use uuid::Uuid;

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
    login_with(url, config, PASSWORD).await
}

/// `mailsync login` as ana@example.test with this password on stdin.
async fn login_with(url: &str, config: &Path, password: &str) -> std::process::Output {
    let url = url.to_string();
    let config = config.to_path_buf();
    let stdin = format!("{password}\n");
    tokio::task::spawn_blocking(move || {
        run(
            &url,
            &config,
            &["login", "--email", "ana@example.test", "--password-stdin"],
            &stdin,
            &[],
        )
    })
    .await
    .unwrap()
}

/// A login with a wrong password: exit 3, saying so.
async fn wrong_login(url: &str, config: &Path, password: &str) -> std::process::Output {
    let o = login_with(url, config, password).await;
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("email or password is wrong"),
        "{}",
        stderr(&o)
    );
    o
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

/// Two `whoami --json` at once with the session saved in `config`, the
/// server set to make their refreshes race: both arrive before either is
/// answered, and only the first may use the refresh token.
async fn racing_whoamis(
    url: &str,
    config: &Path,
    state: &Shared,
) -> (std::process::Output, std::process::Output) {
    state.lock().unwrap().race = Some(config.to_path_buf());
    tokio::join!(
        blocking(url, config, &["--json", "whoami"], &[]),
        blocking(url, config, &["--json", "whoami"], &[]),
    )
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
    let o = wrong_login(&url, dir.path(), "wrong-password-123").await;
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
    let err = stderr(&o);
    assert!(err.contains("error: your session expired\n"), "{err}");
    assert!(err.contains("hint: run `mailsync login`"), "{err}");
    assert_no_secret(&o, &["refresh-token-1"]);
}

/// A saved session that cannot be read as one: the cause, then the advice
/// on a line of its own.
#[tokio::test]
async fn a_damaged_saved_session_says_so_and_hints_to_sign_in_again() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    common::write_session_file(dir.path(), &url, &json!({"access_token": 42}));
    let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(": the saved session is damaged\n"), "{err}");
    assert!(
        err.contains("\nhint: run `mailsync login` again\n"),
        "{err}"
    );
    assert!(
        state.lock().unwrap().requests.is_empty(),
        "nothing was sent"
    );
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
    // same single-use refresh token. The server answers the first with a
    // new one, then the second (whose token is now the new one's parent)
    // with that same new one, as Auth does.
    let (a, b) = racing_whoamis(&url, dir.path(), &state).await;
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
    assert_eq!(s.issued, 2, "one new refresh token, given to both");
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

/// The saved session of `url` in `config`, written by hand: an access token
/// the Auth server issued (signed with `lifetime`, negative for expired),
/// the refresh token it knows, and `expires_at` to match.
fn hand_written_session(url: &str, config: &Path, state: &Shared, lifetime: i64) -> String {
    let mut s = state.lock().unwrap();
    s.issued += 1;
    s.refresh_token = format!("refresh-token-hand-{}", s.issued);
    let access = common::auth_server::access_token(&common::stack(), &s, lifetime);
    s.live_access.push(access.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    common::write_session_file(
        config,
        url,
        &json!({"access_token": access, "refresh_token": s.refresh_token,
                "expires_at": now + lifetime, "user_id": s.user, "email": "ana@example.test"}),
    );
    access
}

/// `logout` ends this session only (`scope=local`): the same user signed in
/// on another machine stays signed in there.
#[tokio::test]
async fn logout_ends_only_this_session_not_the_users_others() {
    let (url, state) = auth_server().await;
    let laptop = tempfile::tempdir().unwrap();
    let phone = tempfile::tempdir().unwrap();
    let laptop_access = hand_written_session(&url, laptop.path(), &state, 3600);
    let phone_access = hand_written_session(&url, phone.path(), &state, 3600);
    let out = blocking(&url, laptop.path(), &["--json", "logout"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(common::json_of(&out)["revoked"], json!(true));
    let s = state.lock().unwrap();
    let (what, body, _, authorization) = s.requests.last().unwrap().clone();
    assert_eq!(what, "logout");
    assert_eq!(body["scope"], "local", "{body}");
    assert_eq!(authorization, format!("Bearer {laptop_access}"));
    assert_eq!(
        s.live_access,
        [phone_access],
        "the other session is still signed in"
    );
    drop(s);
    assert!(session_files(laptop.path()).is_empty());
    assert_eq!(session_files(phone.path()).len(), 1);
    assert_no_secret(&out, &[&laptop_access, ANON_KEY]);
}

/// An expired access token cannot sign anything out (Auth answers 401
/// `bad_jwt`): `logout` refreshes the session first, then ends it with the
/// fresh token.
#[tokio::test]
async fn logout_with_an_expired_access_token_refreshes_first_and_revokes() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    let expired = hand_written_session(&url, dir.path(), &state, -120);
    let out = blocking(&url, dir.path(), &["--json", "logout"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let done = common::json_of(&out);
    assert_eq!(done["revoked"], json!(true), "{done}: {}", stderr(&out));
    let s = state.lock().unwrap();
    let asked: Vec<&str> = s.requests.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(asked, ["refresh_token", "logout"]);
    let (_, _, _, authorization) = s.requests.last().unwrap().clone();
    assert_ne!(authorization, format!("Bearer {expired}"));
    assert_eq!(
        s.live_access,
        [expired.as_str()],
        "the refreshed session's token was revoked; the expired one was never usable"
    );
    drop(s);
    assert!(session_files(dir.path()).is_empty());
    assert_no_secret(&out, &[&expired, "refresh-token-hand-1", ANON_KEY]);
}

/// A refresh that fails for a network error or a 5xx is tried again within
/// the same command (bounded), and succeeds when Auth answers.
#[tokio::test]
async fn a_refresh_that_fails_transiently_is_retried_within_the_command() {
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    hand_written_session(&url, dir.path(), &state, 10);
    {
        let mut s = state.lock().unwrap();
        s.scripted.push_back(Scripted::Broken);
        s.scripted.push_back(Scripted::Reply(
            502,
            "text/html",
            "<html>Bad Gateway</html>".into(),
        ));
        s.scripted.push_back(Scripted::Reply(
            500,
            "application/json",
            r#"{"code":500,"error_code":"unexpected_failure","msg":"Unexpected failure"}"#.into(),
        ));
    }
    let o = blocking(&url, dir.path(), &["--json", "whoami"], &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(common::json_of(&o)["email"], "ana@example.test");
    let refreshes = state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|r| r.0 == "refresh_token")
        .count();
    assert_eq!(refreshes, 4, "three failures, then the answer");
    assert_eq!(read_session(dir.path())["refresh_token"], "refresh-token-2");

    // Bounded: a server that keeps failing is asked four times in all.
    let (url, state) = auth_server().await;
    let dir = tempfile::tempdir().unwrap();
    hand_written_session(&url, dir.path(), &state, 10);
    for _ in 0..10 {
        state.lock().unwrap().scripted.push_back(Scripted::Broken);
    }
    let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!stderr(&o).contains("session expired"), "{}", stderr(&o));
    assert_eq!(state.lock().unwrap().requests.len(), 4);
    assert_eq!(
        read_session(dir.path())["refresh_token"],
        "refresh-token-hand-1",
        "kept for the next try"
    );
}

/// Only Auth's "the session is over" answers, in either error shape, say
/// to sign in again; any other refusal is reported as Auth gave it, and the
/// session is kept.
#[tokio::test]
async fn only_session_over_codes_say_to_sign_in_again_in_both_error_shapes() {
    let over: &[(&str, u16, &str)] = &[
        (
            "application/json",
            400,
            r#"{"code":400,"error_code":"refresh_token_already_used","msg":"Invalid Refresh Token: Already Used"}"#,
        ),
        (
            "application/json",
            400,
            r#"{"code":400,"error_code":"refresh_token_not_found","msg":"Invalid Refresh Token: Refresh Token Not Found"}"#,
        ),
        (
            "application/json",
            403,
            r#"{"code":403,"error_code":"session_not_found","msg":"Session from session_id claim in JWT does not exist"}"#,
        ),
        (
            "application/json",
            403,
            r#"{"code":403,"error_code":"session_expired","msg":"Session expired"}"#,
        ),
        (
            "application/json",
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid Refresh Token: Already Used"}"#,
        ),
        (
            "application/json",
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid Refresh Token: Refresh Token Not Found"}"#,
        ),
    ];
    for (content_type, status, body) in over {
        let (url, state) = auth_server().await;
        let dir = tempfile::tempdir().unwrap();
        hand_written_session(&url, dir.path(), &state, 10);
        state.lock().unwrap().scripted.push_back(Scripted::Reply(
            *status,
            content_type,
            body.to_string(),
        ));
        let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{body}: {err}");
        assert!(err.contains("run `mailsync login`"), "{body}: {err}");
        assert_eq!(
            state.lock().unwrap().requests.len(),
            1,
            "{body}: not retried"
        );
    }
    let not_over: &[(u16, &str, &str)] = &[
        (
            400,
            r#"{"code":400,"error_code":"validation_failed","msg":"Unsupported grant type"}"#,
            "Unsupported grant type",
        ),
        (
            422,
            r#"{"error":"unprocessable_entity","error_description":"Bad content type"}"#,
            "Bad content type",
        ),
    ];
    for (status, body, shown) in not_over {
        let (url, state) = auth_server().await;
        let dir = tempfile::tempdir().unwrap();
        hand_written_session(&url, dir.path(), &state, 10);
        state.lock().unwrap().scripted.push_back(Scripted::Reply(
            *status,
            "application/json",
            body.to_string(),
        ));
        let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
        let err = stderr(&o);
        assert_ne!(o.status.code(), Some(0), "{body}: {err}");
        assert!(!err.contains("session expired"), "{body}: {err}");
        assert!(err.contains(shown), "{body}: Auth's words: {err}");
        assert_eq!(session_files(dir.path()).len(), 1, "kept");
    }
}

/// A server speaking the older error shape throughout: a wrong password,
/// a spent refresh token (two commands racing) and a revoked session are
/// read as with the newer one.
#[tokio::test]
async fn an_older_auth_server_is_understood() {
    let (url, state) = auth_server().await;
    state.lock().unwrap().older = true;
    let dir = tempfile::tempdir().unwrap();
    wrong_login(&url, dir.path(), "not-the-password").await;
    assert!(login(&url, dir.path()).await.status.success());
    // Racing refreshes: the second, with the spent parent token, gets the
    // refresh token the first one got.
    let (a, b) = racing_whoamis(&url, dir.path(), &state).await;
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", stderr(o));
    }
    state.lock().unwrap().race = None;
    // Revoked elsewhere: sign in again.
    hand_written_session(&url, dir.path(), &state, 10);
    state.lock().unwrap().refresh_token = "revoked".into();
    let o = blocking(&url, dir.path(), &["whoami"], &[]).await;
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("run `mailsync login`"),
        "{}",
        stderr(&o)
    );
}
