//! No secret in any output (README: "no secret in logs or errors"): every
//! command, with `-v`, `-vv` and `--json -vv`, on success and on failure, is
//! scanned for every access token and refresh token the session had, the
//! anon key, the database password, the SMTP password and the bounce
//! mailbox's password. The commands run
//! as a hosted project's user would: through a gateway that checks the key
//! (tests/it/common/gateway.rs), signed in with `mailsync login` against an
//! in-test Auth server (tests/it/common/auth_server.rs) whose short-lived token
//! makes the next command refresh the session, on the real local stack.

use crate::common;

use std::process::Output;

use common::auth_server::{auth_server_for, PASSWORD};
use common::gateway::Gateway;
use common::{stderr, stdout};

/// A command's arguments and its extra environment.
type Run = (Vec<String>, Vec<(String, String)>);

fn run(args: &[&str]) -> Run {
    (args.iter().map(|a| a.to_string()).collect(), Vec::new())
}

fn run_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    (
        args.iter().map(|a| a.to_string()).collect(),
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Every command path clap knows, e.g. `["campaigns", "watch"]`.
fn every_command() -> Vec<Vec<String>> {
    use clap::CommandFactory;
    let tree = mailsync::cli::Cli::command();
    let mut paths = Vec::new();
    for top in tree.get_subcommands().filter(|c| c.get_name() != "help") {
        let subs: Vec<_> = top
            .get_subcommands()
            .filter(|c| c.get_name() != "help")
            .collect();
        if subs.is_empty() {
            paths.push(vec![top.get_name().to_string()]);
        }
        for sub in subs {
            paths.push(vec![top.get_name().to_string(), sub.get_name().to_string()]);
        }
    }
    paths
}

#[tokio::test]
async fn no_command_prints_a_token_the_key_or_a_password() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let (auth_url, auth) = auth_server_for(user.id, &user.email, &stack.anon_key).await;
    let gateway = Gateway::start_with_auth(&stack.url, &stack.anon_key, Some(&auth_url)).await;
    let password = url::Url::parse(&stack.db_url)
        .unwrap()
        .password()
        .expect("the stack's database URL has a password")
        .to_string();
    let wrong_password = "wrong-db-password-27182818";
    let wrong_db_url = {
        let mut url = url::Url::parse(&stack.db_url).unwrap();
        url.set_password(Some(wrong_password)).unwrap();
        url.to_string()
    };
    let smtp_password = "smtp-password-never-printed-16180339";
    // The stack's bounce mailbox, and the same with a wrong password.
    let bounces_url = std::env::var("MAILSYNC_BOUNCES_URL")
        .expect("MAILSYNC_BOUNCES_URL: the local stack's mailbox (scripts/local-stack.sh env)");
    let imap_password = url::Url::parse(&bounces_url)
        .unwrap()
        .password()
        .expect("the stack's mailbox URL has a password")
        .to_string();
    let wrong_imap_password = "wrong-imap-password-14142135";
    let wrong_bounces_url = {
        let mut url = url::Url::parse(&bounces_url).unwrap();
        url.set_password(Some(wrong_imap_password)).unwrap();
        url.to_string()
    };
    let smtp_url = format!("smtp://mailer:{smtp_password}@127.0.0.1:1");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let config_dir = config.to_str().unwrap().to_string();
    let common_env = |cmd: &mut std::process::Command| {
        cmd.env("SUPABASE_URL", &gateway.url)
            .env("SUPABASE_DB_URL", &stack.db_url)
            .env("MAILSYNC_CONFIG_DIR", &config_dir)
            .env("MAILSYNC_SMTP_URL", &smtp_url)
            .env("MAILSYNC_FROM", "Acme <news@acme.example>");
    };

    // Signed in as a person would be: the password on stdin.
    let login = {
        let mut cmd = common::command(&stack, dir.path());
        common_env(&mut cmd);
        cmd.args(["-vv", "login", "--email", &user.email, "--password-stdin"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = cmd.spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
            drop(stdin);
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    };
    assert!(login.status.success(), "{}", stderr(&login));

    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "Acme,a@example.fr\nBeta,b@example.fr\n").unwrap();
    let csv = csv.to_str().unwrap().to_string();
    let eml = dir.path().join("reply.eml");
    std::fs::write(
        &eml,
        "From: a@example.fr\r\nSubject: Re: hi\r\n\r\nThanks\r\n",
    )
    .unwrap();
    let eml = eml.to_str().unwrap().to_string();
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (report, export, migrations) = (file("r.xlsx"), file("e.csv"), file("migrations"));
    let expired = common::sign(&stack, &user.id, &user.email, -60);
    let campaign = "Rentrée";

    let runs: Vec<Run> = vec![
        // The first use refreshes the 30-second session.
        run(&["whoami"]),
        run(&["config"]),
        run(&["import", &csv]),
        run(&["contacts", "list"]),
        run(&["contacts", "export", &export]),
        run(&["contacts", "unsubscribe", "b@example.fr"]),
        run(&[
            "templates",
            "create",
            "--name",
            "t1",
            "--subject",
            "S",
            "--content",
            "C",
        ]),
        run(&["templates", "list"]),
        run(&[
            "campaigns",
            "create",
            "--name",
            campaign,
            "--subject",
            "S",
            "--content",
            "C",
        ]),
        run(&["campaigns", "list"]),
        run(&["campaigns", "send", campaign, "--yes"]),
        run(&["campaigns", "watch", "--once", "--mode", "poll"]),
        run(&["campaigns", "deliver", campaign, "--dry-run"]),
        // The SMTP server cannot be reached: a failure naming it.
        run(&["campaigns", "deliver", campaign]),
        run(&["campaigns", "report", campaign, &report]),
        run(&["dashboard"]),
        run_with(
            &["bounces", "fetch"],
            &[("MAILSYNC_BOUNCES_URL", bounces_url.as_str())],
        ),
        run(&["bounces", "scan", &eml]),
        run(&["db", "verify"]),
        run(&["db", "apply", "--dry-run"]),
        run(&["db", "reset", "--dry-run"]),
        run(&["db", "migration", "--dir", &migrations]),
        run(&["completions", "bash"]),
        run(&["man"]),
        // Failures: a refused key, a refused token, a refused password, a
        // wrong sign-in, a missing file, a missing campaign.
        run_with(
            &["campaigns", "list"],
            &[("SUPABASE_ANON_KEY", "sb_publishable_wrong-key-4242424242")],
        ),
        run_with(
            &["contacts", "list"],
            &[("MAILSYNC_ACCESS_TOKEN", expired.as_str())],
        ),
        run_with(
            &["db", "verify"],
            &[("SUPABASE_DB_URL", wrong_db_url.as_str())],
        ),
        run_with(
            &["bounces", "fetch"],
            &[("MAILSYNC_BOUNCES_URL", wrong_bounces_url.as_str())],
        ),
        run(&["login", "--email", &user.email, "--password-stdin"]),
        run(&["import", "/nonexistent/file.xlsx"]),
        run(&["campaigns", "send", "no-such-campaign", "--yes"]),
        run(&["logout"]),
    ];
    let covered: Vec<Vec<String>> = runs
        .iter()
        .map(|(args, _)| args.iter().take(2).cloned().collect())
        .collect();
    for path in every_command() {
        assert!(
            covered.iter().any(|c| c.starts_with(&path)),
            "`mailsync {}` is not scanned: add it to this test",
            path.join(" ")
        );
    }

    let mut outputs: Vec<(String, Output)> = vec![("login".into(), login)];
    let mut failed = 0;
    for (args, env) in &runs {
        for mode in [&["-v"][..], &["-vv"][..], &["--json", "-vv"][..]] {
            let mut cmd = common::command(&stack, dir.path());
            common_env(&mut cmd);
            cmd.args(mode).args(args);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let o = tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap();
            failed += usize::from(!o.status.success());
            outputs.push((format!("{} {}", mode.join(" "), args.join(" ")), o));
        }
    }

    // Every token the session ever had, known once every command ran.
    let (tokens, refreshed) = {
        let s = auth.lock().unwrap();
        let mut tokens: Vec<String> = s.spent.clone();
        tokens.push(s.refresh_token.clone());
        tokens.extend(s.issued_access.iter().cloned());
        let refreshed = s.requests.iter().any(|r| r.0 == "refresh_token");
        (tokens, refreshed)
    };
    assert!(refreshed, "the session was refreshed along the way");
    assert!(tokens.len() >= 4, "{} tokens", tokens.len());
    let mut secrets: Vec<&str> = tokens.iter().map(String::as_str).collect();
    secrets.extend([
        stack.anon_key.as_str(),
        password.as_str(),
        wrong_password,
        smtp_password,
        imap_password.as_str(),
        wrong_imap_password,
        PASSWORD,
        user.token.as_str(),
        expired.as_str(),
    ]);
    // Each secret long enough that a match is not a coincidence.
    assert!(secrets.iter().all(|s| s.len() >= 8), "{password}");
    // A JWT's payload alone identifies it.
    let payloads: Vec<&str> = secrets
        .iter()
        .filter_map(|s| s.split('.').nth(1))
        .filter(|p| p.len() >= 16)
        .collect();
    for (what, o) in &outputs {
        let text = format!("{}{}", stdout(o), stderr(o));
        for secret in secrets.iter().chain(payloads.iter()) {
            assert!(
                !text.contains(secret),
                "`mailsync {what}` printed a secret:\n{text}"
            );
        }
    }
    // The scan saw successes and failures, not only errors.
    let ran = runs.len() * 3;
    assert!(
        failed >= 15 && failed < ran - 30,
        "{failed} of {ran} failed"
    );
}
