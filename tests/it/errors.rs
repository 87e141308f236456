//! Errors a person can act on: the database's refusals as sentences about
//! the user's objects (codes only under `-v`), and no advice that cannot work
//! (a re-run after an expired token, `login` on a stack without Auth).

use crate::common;

use std::io::Write;
use std::process::Stdio;

use common::{mailsync, new_user, stderr};

#[tokio::test]
async fn a_duplicate_template_name_is_a_sentence_and_the_code_is_for_v() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let token = [("MAILSYNC_ACCESS_TOKEN", user.token.as_str())];
    let args = [
        "templates",
        "create",
        "--name",
        "Welcome",
        "--subject",
        "Hi",
        "--content",
        "Hello",
    ];
    let first = mailsync(&stack, &args, &token);
    assert!(first.status.success(), "{}", stderr(&first));
    let again = mailsync(&stack, &args, &token);
    let err = stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(err.contains("you already have a template"), "{err}");
    assert!(!err.contains("23505"), "{err}");
    assert!(!err.contains("email_templates_user_name_key"), "{err}");

    let mut verbose = vec!["-v"];
    verbose.extend_from_slice(&args);
    let again = mailsync(&stack, &verbose, &token);
    let err = stderr(&again);
    assert!(err.contains("detail: code 23505"), "{err}");

    // In French from start to end: what was being done, the sentence, the
    // advice; the server's code stays as the server gave it.
    let mut french = vec!["--lang", "fr", "-v"];
    french.extend_from_slice(&args);
    let again = mailsync(&stack, &french, &token);
    let err = stderr(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.contains("\nerreur : création du modèle \"Welcome\" : vous avez déjà un modèle"),
        "{err}"
    );
    assert!(
        err.contains("\nconseil : choisissez un autre nom, ou utilisez le modèle existant\n"),
        "{err}"
    );
    assert!(err.contains("\ndétail : code 23505"), "{err}");
}

/// The server's detail shown by `-v` quotes the user's data (a name in a
/// `raise exception`, a key in a violation's details): its control
/// characters are shown escaped, like the error's sentence. An in-test
/// server answers every request with such an error.
#[tokio::test]
async fn the_v_detail_shows_control_characters_escaped() {
    let stack = common::ready().await;
    let hostile = "Promo\u{1b}]52;c;SGVsbG8=\u{7}\u{1b}[2J\u{202e}";
    let body = serde_json::json!({
        "code": "P0001",
        "message": format!("campaign \"{hostile}\" is already sent"),
        "details": format!("Key (name)=({hostile}) already exists."),
        "hint": null,
    })
    .to_string();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let token = common::sign(&stack, &uuid::Uuid::new_v4(), "v@example.fr", 3600);
    let mut cmd = common::command_for(&url, &stack.anon_key, dir.path());
    cmd.env("MAILSYNC_ACCESS_TOKEN", &token)
        .args(["-v", "templates", "list"]);
    let o = common::output_off_runtime(cmd).await;
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let detail = err
        .lines()
        .find(|l| l.starts_with("detail: "))
        .unwrap_or_else(|| panic!("a detail line in {err}"));
    let shown = "Promo\\u{1b}]52;c;SGVsbG8=\\u{7}\\u{1b}[2J\\u{202e}";
    assert!(
        detail.contains(&format!("({shown}) already exists")),
        "{detail}"
    );
    assert!(
        !err.chars()
            .any(|c| c != '\n' && (c.is_control() || c == '\u{202e}')),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_expired_token_gets_a_new_token_not_a_re_run() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let expired = common::sign(&stack, &user.id, &user.email, -120);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    std::fs::write(&file, "Org,Email\nAcme,a@example.test\n").unwrap();
    let o = mailsync(
        &stack,
        &["import", file.to_str().unwrap()],
        &[("MAILSYNC_ACCESS_TOKEN", &expired)],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(!err.contains("run the same command again"), "{err}");
    assert!(!err.contains("mailsync login"), "no Auth locally: {err}");
    assert!(err.contains("scripts/local-stack.sh token"), "{err}");
}

#[tokio::test]
async fn login_on_a_stack_without_auth_says_so() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::command(&stack, dir.path())
        .args(["login", "--email", "a@example.test", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"secret-password\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("has no Auth server"), "{err}");
    assert!(err.contains("scripts/local-stack.sh token"), "{err}");
    assert!(!err.contains("secret-password"), "{err}");
}

/// The gateway refuses a wrong API key with a 401 and no PostgREST code
/// (`{"message":"Invalid API key"}`): the error names SUPABASE_ANON_KEY, not
/// the session, whatever the command.
#[tokio::test]
async fn the_gateway_refusing_the_key_names_supabase_anon_key_not_the_session() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let gateway = common::gateway::Gateway::start(&stack.url, &stack.anon_key).await;
    let wrong_key = "sb_publishable_not-this-projects-key-5551212";
    for args in [
        &["campaigns", "list"][..],
        &["contacts", "list"][..],
        &[
            "templates",
            "create",
            "--name",
            "T",
            "--subject",
            "S",
            "--content",
            "C",
        ][..],
    ] {
        let (url, token) = (gateway.url.clone(), user.token.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let o = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            common::command_for(&url, wrong_key, dir.path())
                .args(&args)
                .env("MAILSYNC_ACCESS_TOKEN", token)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(err.contains("SUPABASE_ANON_KEY"), "{err}");
        assert!(err.contains("Invalid API key"), "{err}");
        assert!(!err.contains("access token"), "not the session: {err}");
        assert!(!err.contains("mailsync login"), "not the session: {err}");
        assert!(!err.contains(wrong_key), "{err}");
    }
    // The same commands with the right key pass the gateway.
    let (url, token) = (gateway.url.clone(), user.token.clone());
    let o = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        common::command_for(&url, &common::stack().anon_key, dir.path())
            .args(["campaigns", "list"])
            .env("MAILSYNC_ACCESS_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `-v` says what a command does (target, requests with timings, batch
/// sizes) on stderr, and never shows the token or the key.
#[tokio::test]
async fn verbose_shows_requests_and_batches_but_no_secret() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    std::fs::write(
        &file,
        "Org,Email\nAcme,a@example.test\nBeta,b@example.test\n",
    )
    .unwrap();
    let o = mailsync(
        &stack,
        &["-v", "import", file.to_str().unwrap()],
        &[("MAILSYNC_ACCESS_TOKEN", &user.token)],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(&format!("target: {}", stack.url)), "{err}");
    assert!(err.contains("batch: rows 2–3, 2 contacts"), "{err}");
    assert!(err.contains("POST /rest/v1/rpc/import_contacts"), "{err}");
    assert!(err.contains(" ms"), "{err}");
    assert!(!err.contains(&user.token), "the token leaked: {err}");
    assert!(!err.contains(&stack.anon_key), "the key leaked: {err}");
    let payload = user.token.split('.').nth(1).unwrap();
    assert!(!err.contains(payload), "part of the token leaked: {err}");

    let list = mailsync(
        &stack,
        &["-v", "campaigns", "list"],
        &[("MAILSYNC_ACCESS_TOKEN", &user.token)],
    );
    let err = stderr(&list);
    assert!(err.contains("GET /rest/v1/campaign_analytics"), "{err}");
    assert!(!err.contains(&user.token) && !err.contains(&stack.anon_key));
}
