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

/// The cases run against the local stack (its environment: `eval
/// "$(scripts/local-stack.sh env)"`, as CI does) and must print what the
/// README shows.
#[tokio::test]
async fn readme_examples_run_against_the_local_stack() {
    // The schema in sql/ is the one applied.
    common::ready().await;
    trycmd::TestCases::new()
        .register_bin(
            "mailsync",
            trycmd::schema::Bin::Path(env!("CARGO_BIN_EXE_mailsync").into()),
        )
        .case("tests/readme/*.md");
}
