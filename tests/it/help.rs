//! `--help` and `mailsync man`, for every command of the clap definitions:
//! the global options under their own heading (and only there), the
//! connection options under theirs on the commands that connect and on no
//! other (the database URL only on the `db` commands that connect and
//! `config`), and one manual page per command, naming the command and its
//! global options. Needs no stack.

use crate::common;

use clap::CommandFactory;
use mailsync::cli::Cli;

/// Every command line path: `[]`, `["db"]`, `["db", "reset"]`, ...
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: Vec<String>, all: &mut Vec<Vec<String>>) {
        all.push(path.clone());
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut next = path.clone();
            next.push(sub.get_name().to_string());
            walk(sub, next, all);
        }
    }
    let mut all = Vec::new();
    walk(&Cli::command(), Vec::new(), &mut all);
    all
}

fn run(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    common::unconfigured(dir.path())
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .unwrap()
}

#[test]
fn every_help_puts_the_global_options_under_their_own_heading() {
    let paths = command_paths();
    assert!(paths.len() > 20, "{paths:?}");
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let o = run(&args);
        assert!(o.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&o.stdout);
        let heading = help.find("\nGlobal options:\n").unwrap_or_else(|| {
            panic!("mailsync {path:?} --help has no Global options heading:\n{help}")
        });
        let global = &help[heading..];
        let connection = help.find("\nConnection options:\n");
        // The command's own options: before both headings.
        let own = &help[..connection.unwrap_or(heading)];
        for flag in [
            "--json",
            "--quiet",
            "--verbose",
            "--no-color",
            "--env-file",
            "--lang",
        ] {
            assert!(
                global.contains(flag),
                "{path:?}: {flag} not under Global options"
            );
            assert!(
                !own.contains(flag),
                "{path:?}: {flag} also among the command's own options:\n{help}"
            );
        }
        // The connection options: only where a connection is made.
        let name = path.join(" ");
        let leaf = !matches!(
            name.as_str(),
            "" | "db" | "contacts" | "campaigns" | "templates" | "bounces"
        );
        let connects = leaf
            && !matches!(
                name.as_str(),
                "db migration" | "completions" | "man" | "bounces scan"
            );
        let uses_db = matches!(
            name.as_str(),
            "db reset" | "db apply" | "db verify" | "config"
        );
        assert_eq!(connection.is_some(), connects, "{path:?}:\n{help}");
        let connection_part = connection.map(|at| &help[at..heading]).unwrap_or("");
        for (flag, expected) in [
            ("--supabase-url", connects),
            ("--anon-key", connects),
            ("--allow-insecure-http", connects),
            ("--db-url", uses_db),
        ] {
            assert_eq!(
                connection_part.contains(flag),
                expected,
                "{path:?}: {flag} under Connection options:\n{help}"
            );
            assert!(
                !global.contains(flag),
                "{path:?}: {flag} among the global options"
            );
            assert!(
                !own.contains(&format!("{flag} ")),
                "{path:?}: {flag} among the command's own options:\n{help}"
            );
        }
    }
}

#[test]
fn man_writes_one_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["--json", "man", "--dir", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let paths = command_paths();
    assert_eq!(written["pages"].as_array().unwrap().len(), paths.len());
    for path in paths {
        let name = std::iter::once("mailsync".to_string())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let page = std::fs::read_to_string(dir.path().join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("no page {name}.1: {e}"));
        assert!(
            page.starts_with(".ie") || page.contains(".TH"),
            "{name}: not roff"
        );
        assert!(page.contains(&format!(".TH {name}")), "{name}: title");
        // The global options are documented on every page.
        assert!(page.contains("\\-\\-json"), "{name}: --json missing");
        assert!(
            page.contains("\\-\\-env\\-file"),
            "{name}: --env-file missing"
        );
    }
}
