//! The documents people read (README.md and docs/*.md) say what is true:
//! their examples run as written, every setting the code reads is in the
//! reference, the number of tests they give holds, and every file they name
//! exists.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;

const ACCOUNT: &str = include_str!("../../docs/account.md");
const DB: &str = include_str!("../../docs/db.md");
const REFERENCE: &str = include_str!("../../docs/reference.md");
const TESTING: &str = include_str!("../../docs/testing.md");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/, with their text.
fn documents() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect()
}

/// The `console` blocks of a document, as written.
fn console_blocks(text: &str) -> Vec<&str> {
    text.split("```console\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect()
}

/// The completion lines work on a fresh machine: an empty home, only the
/// binary on the PATH.
#[test]
fn completion_examples_work_in_an_empty_home() {
    let start = ACCOUNT
        .find("Completions for bash")
        .expect("the completions section of docs/account.md");
    let block = ACCOUNT[start..]
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
    // Every script names every command and subcommand and their flags.
    let cli = mailsync::cli::Cli::command();
    let mut words: Vec<String> = Vec::new();
    for sub in cli.get_subcommands().filter(|c| c.get_name() != "help") {
        words.push(sub.get_name().to_string());
        for nested in sub.get_subcommands().filter(|c| c.get_name() != "help") {
            words.push(nested.get_name().to_string());
        }
    }
    words.extend(["--json", "--env-file", "--email-column", "--dry-run"].map(String::from));
    assert!(words.len() > 20, "{words:?}");
    let bash = home
        .path()
        .join(".local/share/bash-completion/completions/mailsync");
    for file in [
        ".local/share/bash-completion/completions/mailsync",
        ".zfunc/_mailsync",
        ".config/fish/completions/mailsync.fish",
        ".config/elvish/lib/mailsync.elv",
    ] {
        let text = std::fs::read_to_string(home.path().join(file)).unwrap();
        for word in &words {
            // fish spells a long flag `-l json`.
            let spelled = match word.strip_prefix("--") {
                Some(long) if file.ends_with(".fish") => format!("-l {long}"),
                _ => word.clone(),
            };
            assert!(text.contains(&spelled), "{file} lacks {spelled}");
        }
    }
    assert!(
        std::fs::read_to_string(home.path().join(".zfunc/_mailsync"))
            .unwrap()
            .starts_with("#compdef mailsync"),
        "zsh loads it from fpath by its #compdef line"
    );

    // The bash script parses, registers itself, and completes as a shell
    // would: the commands after `mailsync `, the subcommands after
    // `mailsync db `, the flags after `mailsync import --`.
    let syntax = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(syntax.status.success(), "bash -n: {syntax:?}");
    let complete = |line: &[&str]| -> Vec<String> {
        let script = format!(
            "source \"$1\"; complete -p mailsync >/dev/null || exit 9; COMP_WORDS=({}); \
             COMP_CWORD={}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _mailsync mailsync \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            line.iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            line.len() - 1
        );
        let out = Command::new("bash")
            .args(["-c", &script, "_"])
            .arg(&bash)
            .output()
            .unwrap();
        assert!(out.status.success(), "{line:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    };
    let top = complete(&["mailsync", ""]);
    for command in cli.get_subcommands().map(|c| c.get_name()) {
        assert!(top.iter().any(|w| w == command), "{command}: {top:?}");
    }
    let db = complete(&["mailsync", "db", ""]);
    for sub in ["reset", "apply", "verify", "migration"] {
        assert!(db.iter().any(|w| w == sub), "{sub}: {db:?}");
    }
    assert!(!db.iter().any(|w| w == "import"), "{db:?}");
    let flags = complete(&["mailsync", "import", "--"]);
    for flag in ["--email-column", "--org-column", "--dry-run", "--json"] {
        assert!(flags.iter().any(|w| w == flag), "{flag}: {flags:?}");
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
fn every_case_is_written_in_the_docs() {
    let documents = documents();
    for (path, body) in cases() {
        assert!(
            documents
                .iter()
                .any(|(_, text)| text.contains(&format!("```console\n{body}```"))),
            "{}: this example is in neither README.md nor docs/*.md as written:\n{body}",
            path.display()
        );
    }
}

/// Every `console` block of the README and of docs/*.md is a case of
/// tests/readme/*.md, so no shown output goes unchecked (screens that
/// cannot run here, such as a prompt or the Realtime watch, are `text`
/// blocks).
#[test]
fn every_console_block_of_the_docs_is_a_case() {
    let cases: Vec<String> = cases().into_iter().map(|(_, body)| body).collect();
    let mut shown = 0;
    for (path, text) in documents() {
        for block in console_blocks(&text) {
            shown += 1;
            assert!(
                cases.iter().any(|c| c == block),
                "{}: this example runs in no case of tests/readme/*.md:\n{block}",
                path.display()
            );
        }
    }
    assert!(shown >= 7, "only {shown} console blocks");
    let (_, readme) = &documents()[0];
    assert!(
        !console_blocks(readme).is_empty(),
        "the README's tour shows real output"
    );
}

/// Every variable the code reads (a `"MAILSYNC_…"` or `"SUPABASE_…"`
/// literal in src/, clap's `env = …` included) is in the reference's
/// tables, so `mailsync config`, `--help` and the docs name the same
/// settings. Test hooks (`MAILSYNC_DEBUG_…`) are not settings.
#[test]
fn every_setting_the_code_reads_is_in_the_reference() {
    let mut names = std::collections::BTreeSet::new();
    let mut dirs = vec![root().join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for prefix in ["\"MAILSYNC_", "\"SUPABASE_"] {
                    for (at, _) in text.match_indices(prefix) {
                        let name: String = text[at + 1..]
                            .chars()
                            .take_while(|c| {
                                c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'
                            })
                            .collect();
                        if text[at + 1 + name.len()..].starts_with('"') {
                            names.insert(name);
                        }
                    }
                }
            }
        }
    }
    names.retain(|n| !n.starts_with("MAILSYNC_DEBUG_"));
    assert!(names.len() >= 10, "{names:?}");
    let table_rows: Vec<&str> = REFERENCE.lines().filter(|l| l.starts_with("| `")).collect();
    for name in &names {
        assert!(
            table_rows
                .iter()
                .any(|row| row.contains(&format!("`{name}`"))),
            "{name} is read by the code but not in a table of docs/reference.md"
        );
    }
}

/// The number of tests docs/testing.md gives ("more than N tests") holds:
/// every `#[test]` and `#[tokio::test]` in src/ and tests/it/ counted, there
/// are more than N. Adding tests never breaks it; removing tests below the
/// number the docs give does.
#[test]
fn the_number_of_tests_the_docs_give_holds() {
    let stated: usize = TESTING
        .split("more than ")
        .nth(1)
        .and_then(|rest| rest.split(" tests").next())
        .and_then(|n| n.parse().ok())
        .expect("docs/testing.md says \"more than N tests\"");
    let mut count = 0;
    let mut dirs = vec![root().join("src"), root().join("tests/it")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                count += std::fs::read_to_string(&path)
                    .unwrap()
                    .lines()
                    .map(str::trim_start)
                    .filter(|l| l.starts_with("#[test]") || l.starts_with("#[tokio::test"))
                    .count();
            }
        }
    }
    assert!(
        stated >= 100,
        "docs/testing.md says more than {stated} tests"
    );
    assert!(
        count > stated,
        "docs/testing.md says more than {stated} tests; there are {count}"
    );
}

/// Pages linked from the README that the `bounces` commands bring with them.
const PAGES_OF_THE_BOUNCES_COMMANDS: [&str; 2] = ["docs/bounces.md", "docs/tracking.md"];

/// Every file a document links to, or names in backquotes as a path of the
/// repository (`sql/…`, `scripts/…`, `tests/…`, …), exists; and no
/// document points to a file outside the repository.
#[test]
fn every_file_the_docs_name_exists() {
    let top = [
        "src/",
        "sql/",
        "scripts/",
        "tests/",
        "docs/",
        "examples/",
        "certs/",
        "locales/",
    ];
    let mut named = 0;
    let mut missing = Vec::new();
    for (path, text) in documents() {
        let dir = path.parent().unwrap();
        let shown = path.strip_prefix(root()).unwrap().display().to_string();
        // Notes kept outside the repository (spelled in two parts so that
        // this file does not cite them either).
        let outside = [
            concat!("DESIGN", ".md"),
            concat!("SUPABASE", ".md"),
            concat!("MAIL", ".md"),
            concat!("seed-guide", ".md"),
            concat!("/work", "/"),
        ];
        for outside in outside {
            assert!(!text.contains(outside), "{shown} cites {outside}");
        }
        // Links: [text](target), relative to the document.
        for piece in text.split("](").skip(1) {
            let target = piece.split(')').next().unwrap();
            let file = target.split('#').next().unwrap();
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            let resolved = dir.join(file);
            let relative = resolved
                .canonicalize()
                .ok()
                .and_then(|p| p.strip_prefix(root()).ok().map(|p| p.display().to_string()));
            let theirs = PAGES_OF_THE_BOUNCES_COMMANDS
                .iter()
                .any(|page| resolved.ends_with(page));
            if relative.is_none() && theirs {
                continue;
            }
            if relative.is_none() {
                missing.push(format!("{shown} links to {target}"));
            }
            named += 1;
        }
        // Paths in backquotes.
        for piece in text.split('`').skip(1).step_by(2) {
            let candidate = piece.split_whitespace().next().unwrap_or("");
            if !top.iter().any(|t| candidate.starts_with(t))
                || candidate.contains(['*', '<', '{', '$', '['])
                || candidate.contains("...")
            {
                continue;
            }
            if !root().join(candidate.trim_end_matches(':')).exists() {
                missing.push(format!("{shown} names {candidate}"));
            }
            named += 1;
        }
    }
    assert!(
        missing.is_empty(),
        "files the docs name that do not exist:\n{}",
        missing.join("\n")
    );
    assert!(named > 50, "only {named} files named");
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

/// Import, contacts, templates, campaigns and the dashboard, in the order
/// of docs/import.md, docs/contacts.md and docs/campaigns.md, as a new user.
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
        "MAILSYNC_RETURN_PATH",
        "MAILSYNC_LIST_UNSUBSCRIBE",
        "MAILSYNC_UNSUBSCRIBE_SECRET",
        "MAILSYNC_SMTP_CA_FILE",
        "MAILSYNC_BOUNCES_URL",
        "MAILSYNC_BOUNCES_CA_FILE",
        "MAILSYNC_ALLOW_INSECURE_HTTP",
        "MAILSYNC_LANG",
    ]
    .into_iter()
    .map(|k| (k, ""))
    .collect();
    env.push(("MAILSYNC_STACK_DIR", stack_dir.to_str().unwrap()));
    env.push(("MAILSYNC_CONFIG_DIR", none.path().to_str().unwrap()));
    run_case("config.md", &env);
}

/// Whether `line` matches `pattern`, where `[..]` stands for any text.
fn matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// The `db reset` prompt of docs/db.md (a `text` block: it needs a
/// terminal), typed as shown on a pseudo-terminal against a scratch database.
#[tokio::test]
async fn reset_prompt_example_on_a_terminal() {
    let start = DB
        .find("```text\n$ mailsync db reset\n")
        .expect("the db reset prompt example");
    let block = DB[start..]
        .strip_prefix("```text\n")
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let expected: Vec<&str> = block.lines().skip(1).collect();
    let answer = expected
        .iter()
        .find_map(|l| l.split("[y/N] ").nth(1))
        .expect("the answer typed at the prompt");
    let stack = common::ready().await;
    let db = common::ScratchDb::create(&stack).await;
    let out = common::on_terminal(
        &stack,
        &["db", "reset"],
        &[("SUPABASE_DB_URL", &db.url)],
        &format!("{answer}\n"),
        "[y/N]",
    );
    db.drop(&stack).await;
    let screen = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let shown: Vec<&str> = screen.lines().filter(|l| !l.is_empty()).collect();
    assert!(out.status.success(), "{screen}");
    assert_eq!(shown.len(), expected.len(), "{screen}");
    for (pattern, line) in expected.iter().zip(&shown) {
        // The example shows the stack's default database, port and a time.
        let pattern = pattern
            .replace(
                "\"postgres\" on 127.0.0.1:54322",
                "\"[..]\" on 127.0.0.1:[..]",
            )
            .replace("in 98 ms", "in [..] ms");
        assert!(
            matches(&pattern, line),
            "expected {pattern:?}\n     got {line:?}"
        );
    }
}
