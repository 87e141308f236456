//! `mailsync config`: with no URL configured, the binary targets the local
//! stack as `scripts/local-stack.sh` runs it (port variables, stack state).
//! Processes run through the harness (`common::unconfigured`).

use crate::common;

use std::process::Command;

use serde_json::Value;

fn config_json(dir: &std::path::Path, env: &[(&str, &str)]) -> Value {
    let mut cmd = common::unconfigured(dir);
    cmd.args(["config", "--json"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn value<'a>(doc: &'a Value, name: &str) -> (&'a str, &'a str) {
    let e = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {doc}"));
    (
        e["value"].as_str().unwrap_or(""),
        e["source"].as_str().unwrap_or(""),
    )
}

#[test]
fn port_overrides_are_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-stack");
    let doc = config_json(
        dir.path(),
        &[
            ("MAILSYNC_API_PORT", "61999"),
            ("MAILSYNC_DB_PORT", "61998"),
            ("MAILSYNC_STACK_DIR", nowhere.to_str().unwrap()),
        ],
    );
    let (url, source) = value(&doc, "SUPABASE_URL");
    assert_eq!(url, "http://127.0.0.1:61999");
    assert!(source.contains("MAILSYNC_API_PORT"), "{source}");
    let (db, _) = value(&doc, "SUPABASE_DB_URL");
    assert!(db.contains("127.0.0.1:61998"), "{db}");
    assert!(!db.contains("postgres:postgres@"), "password shown: {db}");
}

#[test]
fn the_running_stack_state_gives_password_and_ports() {
    let dir = tempfile::tempdir().unwrap();
    let stack = dir.path().join(".local-stack");
    std::fs::create_dir(&stack).unwrap();
    std::fs::write(
        stack.join("stack.env"),
        "export SUPABASE_URL='http://127.0.0.1:62001'\n\
         export SUPABASE_ANON_KEY='anon-from-state'\n\
         export SUPABASE_DB_URL='postgresql://postgres:generated-pw@127.0.0.1:62002/postgres'\n",
    )
    .unwrap();
    let work = dir.path().join("project");
    std::fs::create_dir(&work).unwrap();
    let doc = config_json(&work, &[]);
    assert_eq!(value(&doc, "SUPABASE_URL").0, "http://127.0.0.1:62001");
    let (db, source) = value(&doc, "SUPABASE_DB_URL");
    assert!(db.contains("127.0.0.1:62002"), "{db}");
    assert!(!db.contains("generated-pw"), "{db}");
    assert!(source.contains("stack.env"), "{source}");
    let (key, _) = value(&doc, "SUPABASE_ANON_KEY");
    assert!(!key.contains("anon-from-state"));
}

/// The script and the binary agree: the state `up` wrote is what `config`
/// shows, given the same stack variables (and nothing else).
#[test]
fn binary_and_script_agree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let stack_vars: Vec<(String, String)> = [
        "MAILSYNC_STACK_DIR",
        "MAILSYNC_API_PORT",
        "MAILSYNC_DB_PORT",
    ]
    .iter()
    .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
    .collect();
    let dir = tempfile::tempdir().unwrap();
    let env_out = Command::new(root.join("scripts/local-stack.sh"))
        .arg("env")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .envs(stack_vars.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = String::from_utf8(env_out.stdout).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("export SUPABASE_URL='"))
        .and_then(|l| l.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no SUPABASE_URL in:\n{text}"));
    let mut cmd = common::unconfigured(dir.path());
    cmd.args(["config", "--json"])
        .current_dir(root)
        .envs(stack_vars.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value(&doc, "SUPABASE_URL").0, url);
}
