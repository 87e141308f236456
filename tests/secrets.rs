//! No secret in any output: every command, with `-vv` and with `--json`,
//! on success and on failure, is scanned for the access token, the refresh
//! token, the anon key and the database password (README: "no secret in
//! logs or errors").

mod common;

use std::process::Output;

use common::{stderr, stdout};

/// A command's arguments and its extra environment.
type Run<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);

const REFRESH_TOKEN: &str = "refresh-token-never-printed-31415926";

#[tokio::test]
async fn no_command_prints_a_token_the_key_or_the_database_password() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
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
    let secrets = [
        user.token.as_str(),
        REFRESH_TOKEN,
        stack.anon_key.as_str(),
        password.as_str(),
        wrong_password,
    ];
    // Each secret long enough that a match is not a coincidence.
    assert!(secrets.iter().all(|s| s.len() >= 8), "{password}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    common::write_saved_session(&stack, &user, &config, REFRESH_TOKEN);
    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "Acme,a@example.fr\nBeta,b@example.fr\n").unwrap();
    let csv = csv.to_str().unwrap();
    let config_dir = config.to_str().unwrap();
    let expired = common::sign(&stack, &user.id, &user.email, -60);

    let runs: Vec<Run> = vec![
        (vec!["whoami"], vec![]),
        (vec!["config"], vec![]),
        (vec!["import", csv], vec![]),
        (vec!["contacts", "list"], vec![]),
        (
            vec![
                "templates",
                "create",
                "--name",
                "t1",
                "--subject",
                "S",
                "--content",
                "C",
            ],
            vec![],
        ),
        (vec!["templates", "list"], vec![]),
        (
            vec![
                "campaigns",
                "create",
                "--name",
                "Rentrée",
                "--subject",
                "S",
                "--content",
                "C",
            ],
            vec![],
        ),
        (vec!["campaigns", "list"], vec![]),
        (vec!["campaigns", "send", "Rentrée", "--yes"], vec![]),
        (vec!["dashboard"], vec![]),
        (vec!["db", "verify"], vec![]),
        (vec!["db", "apply", "--dry-run"], vec![]),
        (vec!["db", "reset", "--dry-run"], vec![]),
        // Failures: a refused token, a refused password, a missing file.
        (
            vec!["contacts", "list"],
            vec![("MAILSYNC_ACCESS_TOKEN", expired.as_str())],
        ),
        (
            vec!["db", "verify"],
            vec![("SUPABASE_DB_URL", wrong_db_url.as_str())],
        ),
        (vec!["import", "/nonexistent/file.xlsx"], vec![]),
        (
            vec!["campaigns", "send", "no-such-campaign", "--yes"],
            vec![],
        ),
        (vec!["logout"], vec![]),
    ];
    let mut ran = 0;
    let mut failed = 0;
    for (args, env) in &runs {
        for mode in [&["-vv"][..], &["--json", "-vv"][..]] {
            let mut all: Vec<&str> = mode.to_vec();
            all.extend(args.iter().copied());
            let mut extra = vec![("MAILSYNC_CONFIG_DIR", config_dir)];
            extra.extend(env.iter().copied());
            let o: Output = common::mailsync(&stack, &all, &extra);
            let text = format!("{}{}", stdout(&o), stderr(&o));
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "`mailsync {}` printed a secret:\n{text}",
                    all.join(" ")
                );
            }
            ran += 1;
            failed += usize::from(!o.status.success());
        }
    }
    // The scan saw successes and failures, not only errors.
    assert_eq!(ran, runs.len() * 2);
    assert!(failed >= 8 && failed < ran - 10, "{failed} of {ran} failed");
}
