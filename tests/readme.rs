//! The README's examples run as written.

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
