//! `mailsync config`: with no URL configured, the binary targets the local
//! stack as `scripts/local-stack.sh` runs it (port variables, stack state).
//! Processes run through the harness (`common::unconfigured`).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    // The stack at the repository's root, mailsync run in a subdirectory.
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    let work = dir.path().join("project");
    std::fs::create_dir(&work).unwrap();
    let doc = config_json(&work, &[("HOME", dir.path().to_str().unwrap())]);
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

/// A valid-looking state file naming `url` (and a database on `db_host`),
/// written at `<dir>/.local-stack/stack.env` with `mode`.
fn plant(dir: &Path, url: &str, db_host: &str, mode: u32) -> PathBuf {
    let stack = dir.join(".local-stack");
    std::fs::create_dir_all(&stack).unwrap();
    let file = stack.join("stack.env");
    std::fs::write(
        &file,
        format!(
            "export SUPABASE_URL='{url}'\n\
             export SUPABASE_ANON_KEY='planted-anon-key'\n\
             export SUPABASE_DB_URL='postgresql://postgres:planted-pw@{db_host}/postgres'\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

/// `config --json -v` in `cwd` with `HOME` at `home`: the document and stderr.
fn config_verbose(cwd: &Path, home: &Path) -> (Value, String) {
    let mut cmd = common::unconfigured(cwd);
    cmd.args(["-v", "config", "--json"]).env("HOME", home);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The planted state was not used: the stack's defaults are the target and
/// nothing of the file reached the configuration; `-v` says why, naming it.
fn assert_ignored(doc: &Value, stderr: &str, file: &Path, why: &str) {
    assert_eq!(
        value(doc, "SUPABASE_URL").0,
        "http://127.0.0.1:54321",
        "{doc}"
    );
    assert!(value(doc, "SUPABASE_URL").1.starts_with("default"), "{doc}");
    let (db, db_source) = value(doc, "SUPABASE_DB_URL");
    assert!(db.contains("127.0.0.1:54322"), "{db}");
    assert!(!db_source.contains("stack.env"), "{db_source}");
    assert!(!doc.to_string().contains("planted"), "{doc}");
    let note = stderr
        .lines()
        .find(|l| l.contains(&file.parent().unwrap().display().to_string()))
        .unwrap_or_else(|| panic!("no note about {} in:\n{stderr}", file.display()));
    assert!(note.starts_with("ignored "), "{note}");
    assert!(note.contains(why), "{note}");
}

#[test]
fn a_stack_above_the_repository_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = plant(
        dir.path(),
        "http://127.0.0.1:62011",
        "127.0.0.1:62012",
        0o600,
    );
    let repo = dir.path().join("cloned");
    std::fs::create_dir_all(repo.join(".git")).unwrap();
    let work = repo.join("src");
    std::fs::create_dir(&work).unwrap();
    let (doc, stderr) = config_verbose(&work, &dir.path().join("elsewhere"));
    assert_ignored(
        &doc,
        &stderr,
        &file,
        "where the search for the local stack stops",
    );
    assert!(stderr.contains(&repo.display().to_string()), "{stderr}");

    // Inside the repository, the same file is the stack's.
    std::fs::rename(dir.path().join(".local-stack"), repo.join(".local-stack")).unwrap();
    let (doc, _) = config_verbose(&work, &dir.path().join("elsewhere"));
    assert_eq!(value(&doc, "SUPABASE_URL").0, "http://127.0.0.1:62011");
    assert!(value(&doc, "SUPABASE_URL").1.contains("stack.env"), "{doc}");
}

#[test]
fn a_stack_above_the_home_directory_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = plant(
        dir.path(),
        "http://127.0.0.1:62021",
        "127.0.0.1:62022",
        0o600,
    );
    let home = dir.path().join("home");
    let work = home.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (doc, stderr) = config_verbose(&work, &home);
    assert_ignored(
        &doc,
        &stderr,
        &file,
        "where the search for the local stack stops",
    );
}

#[test]
fn a_state_file_others_may_write_is_not_used() {
    for mode in [0o666, 0o620] {
        let dir = tempfile::tempdir().unwrap();
        let file = plant(
            dir.path(),
            "http://127.0.0.1:62031",
            "127.0.0.1:62032",
            mode,
        );
        let (doc, stderr) = config_verbose(dir.path(), dir.path());
        assert_ignored(&doc, &stderr, &file, "other users may write it");
    }
}

#[test]
fn a_state_file_of_another_user_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let file = plant(
        dir.path(),
        "http://127.0.0.1:62041",
        "127.0.0.1:62042",
        0o644,
    );
    // SAFETY: geteuid and chown have no preconditions beyond valid arguments.
    if unsafe { libc::geteuid() } == 0 {
        let path = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::chown(path.as_ptr(), 65534, 65534) }, 0);
    } else {
        // Without root, a file of another user: root's, through a link.
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &file).unwrap();
    }
    let (doc, stderr) = config_verbose(dir.path(), dir.path());
    assert_ignored(&doc, &stderr, &file, "belongs to another user");
}

#[test]
fn a_state_file_naming_another_machine_is_not_used() {
    for (url, db_host, name) in [
        (
            "https://evil.example.com",
            "127.0.0.1:62052",
            "SUPABASE_URL",
        ),
        (
            "http://127.0.0.1.nip.io:62051",
            "127.0.0.1:62052",
            "SUPABASE_URL",
        ),
        (
            "http://127.0.0.1:62051",
            "db.evil.example:5432",
            "SUPABASE_DB_URL",
        ),
        (
            "http://127.0.0.1:62051",
            "127.0.0.1:62052?host=db.evil.example",
            "SUPABASE_DB_URL",
        ),
        (
            "http://127.0.0.1:62051",
            "127.0.0.1:62052?hostaddr=192.0.2.1",
            "SUPABASE_DB_URL",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = plant(dir.path(), url, db_host, 0o600);
        let (doc, stderr) = config_verbose(dir.path(), dir.path());
        assert_ignored(
            &doc,
            &stderr,
            &file,
            &format!("its {name} is not on this machine"),
        );
    }
}

/// What a planted state file is after: `login` sending the password where it
/// points. Neither a file others may write nor one above home is followed.
#[test]
fn login_never_goes_where_an_ignored_state_file_points() {
    use std::io::Write;
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let url = format!("http://{}", trap.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let writable = dir.path().join("writable");
    std::fs::create_dir(&writable).unwrap();
    plant(&writable, &url, "127.0.0.1:62062", 0o666);
    let above = dir.path().join("above");
    let home = above.join("home");
    std::fs::create_dir_all(&home).unwrap();
    plant(&above, &url, "127.0.0.1:62062", 0o600);
    for (cwd, home) in [(&writable, &writable), (&home, &home)] {
        let mut child = common::unconfigured(cwd)
            .env("HOME", home)
            .args([
                "login",
                "--email",
                "victim@example.test",
                "--password-stdin",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"the-password\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{out:?}");
        match trap.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!(
                "login reached the planted URL from {}: {other:?}",
                cwd.display()
            ),
        }
    }
}
