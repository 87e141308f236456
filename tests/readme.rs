//! The README's examples run as written.

mod common;

use std::process::Command;

const README: &str = include_str!("../README.md");

/// The completion lines work on a fresh machine: an empty home, only the
/// binary on the PATH.
#[test]
fn completion_examples_work_in_an_empty_home() {
    let start = README
        .find("Completions for bash")
        .expect("the completions section");
    let block = README[start..]
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_mailsync"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let mut ran = 0;
    for line in block.lines().filter(|l| !l.contains("powershell")) {
        let out = Command::new("sh")
            .args(["-c", line])
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", &path)
            .output()
            .unwrap();
        assert!(out.status.success(), "{line}: {out:?}");
        ran += 1;
    }
    assert_eq!(ran, 4, "{block}");
    for file in [
        ".local/share/bash-completion/completions/mailsync",
        ".zfunc/_mailsync",
        ".config/fish/completions/mailsync.fish",
        ".config/elvish/lib/mailsync.elv",
    ] {
        let text = std::fs::read_to_string(home.path().join(file)).unwrap();
        assert!(text.contains("mailsync"), "{file}");
    }
}

/// The `console` blocks of tests/readme/*.md, each as it is written.
fn cases() -> Vec<(std::path::PathBuf, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readme");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&path).unwrap();
            for block in text.split("```console\n").skip(1) {
                let body = block.split("```").next().unwrap().to_string();
                out.push((path.clone(), body));
            }
        }
    }
    assert!(!out.is_empty(), "no cases in {}", dir.display());
    out
}

#[test]
fn every_case_is_written_in_the_readme() {
    for (path, body) in cases() {
        assert!(
            README.contains(&format!("```console\n{body}```")),
            "{}: this example is not in README.md as written:\n{body}",
            path.display()
        );
    }
}

/// Every `console` block of the README is a case of tests/readme/*.md, so
/// no shown output goes unchecked (screens that cannot run here, such as a
/// prompt or the Realtime watch, are `text` blocks).
#[test]
fn every_console_block_of_the_readme_is_a_case() {
    let cases: Vec<String> = cases().into_iter().map(|(_, body)| body).collect();
    let blocks: Vec<&str> = README
        .split("```console\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 7, "{blocks:?}");
    for block in blocks {
        assert!(
            cases.iter().any(|c| c == block),
            "this README example runs in no case of tests/readme/*.md:\n{block}"
        );
    }
}

/// Runs one case file with the real binary, with `env` added to (or, empty,
/// blanking) the test's environment, which holds the local stack's (`eval
/// "$(scripts/local-stack.sh env)"`, as CI does).
fn run_case(file: &str, env: &[(&str, &str)]) {
    let cases = trycmd::TestCases::new();
    cases.register_bin(
        "mailsync",
        trycmd::schema::Bin::Path(env!("CARGO_BIN_EXE_mailsync").into()),
    );
    cases.env("NO_COLOR", "1");
    for (key, value) in env {
        cases.env(*key, *value);
    }
    cases.case(format!("tests/readme/{file}"));
    cases.run();
}

/// `db verify` on the stack's database (read-only) and `db reset --dry-run`
/// (connects to nothing).
#[tokio::test]
async fn db_examples() {
    // The schema in sql/ is the one applied.
    common::ready().await;
    run_case("db.md", &[]);
}

/// `db reset --yes` on a scratch database, never the stack's own.
#[tokio::test]
async fn reset_example() {
    let stack = common::ready().await;
    let db = common::ScratchDb::create(&stack).await;
    run_case("reset.md", &[("SUPABASE_DB_URL", &db.url)]);
    db.drop(&stack).await;
}

/// Import, contacts, templates, campaigns and the dashboard, in the README's
/// order, as a new user.
#[tokio::test]
async fn user_examples() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let config = tempfile::tempdir().unwrap();
    run_case(
        "user.md",
        &[
            ("MAILSYNC_ACCESS_TOKEN", &user.token),
            ("MAILSYNC_CONFIG_DIR", config.path().to_str().unwrap()),
        ],
    );
}

/// `mailsync config` with nothing configured and no stack started.
#[test]
fn config_example() {
    let none = tempfile::tempdir().unwrap();
    let stack_dir = none.path().join("no-stack");
    let mut env: Vec<(&str, &str)> = [
        "SUPABASE_URL",
        "SUPABASE_ANON_KEY",
        "SUPABASE_DB_URL",
        "MAILSYNC_ACCESS_TOKEN",
        "MAILSYNC_API_PORT",
        "MAILSYNC_DB_PORT",
        "MAILSYNC_SMTP_URL",
        "MAILSYNC_FROM",
        "MAILSYNC_LIST_UNSUBSCRIBE",
        "MAILSYNC_ALLOW_INSECURE_HTTP",
    ]
    .into_iter()
    .map(|k| (k, ""))
    .collect();
    env.push(("MAILSYNC_STACK_DIR", stack_dir.to_str().unwrap()));
    env.push(("MAILSYNC_CONFIG_DIR", none.path().to_str().unwrap()));
    run_case("config.md", &env);
}
