//! `mailsync config`: every setting shown, no secret printed, wherever it
//! sits in the database URL. Needs no stack.

use std::process::Output;

fn config_json(env: &[(&str, &str)], args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mailsync"));
    cmd.args(["config", "--json"])
        .args(args)
        .current_dir(dir.path())
        .env("MAILSYNC_CONFIG_DIR", dir.path().join("config"))
        .env_remove("SUPABASE_DB_URL")
        .env_remove("SUPABASE_URL")
        .env_remove("SUPABASE_ANON_KEY")
        .env_remove("MAILSYNC_ACCESS_TOKEN")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn config_json_prints_no_password_from_any_url_position() {
    let urls = [
        "postgresql://postgres:S3cretUser@db.abc.supabase.co:5432/postgres",
        "postgresql://postgres@db.abc.supabase.co:5432/postgres?password=S3cretQuery",
        "postgresql://postgres:S3cretBoth@db.abc.supabase.co/postgres?sslmode=verify-full&password=S3cretBoth2&sslpassword=S3cretSsl&sslkey=/keys/S3cretKey.pem",
        "postgresql://postgres:S3cret%3FEnc@db.abc.supabase.co/postgres?PASSWORD=S3cretUpper",
        "host=db.abc.supabase.co user=postgres password=S3cretKv sslpassword=S3cretKv2 dbname=postgres",
    ];
    for url in urls {
        for via_flag in [false, true] {
            let out = if via_flag {
                config_json(
                    &[("MAILSYNC_ACCESS_TOKEN", "S3cretToken")],
                    &["--db-url", url],
                )
            } else {
                config_json(
                    &[
                        ("SUPABASE_DB_URL", url),
                        ("SUPABASE_ANON_KEY", "S3cretAnon"),
                        ("MAILSYNC_ACCESS_TOKEN", "S3cretToken"),
                    ],
                    &[],
                )
            };
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{url}: {stderr}");
            let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
            let db = doc
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == "SUPABASE_DB_URL")
                .unwrap();
            assert!(db["value"].as_str().unwrap().contains("******"), "{db}");
            assert!(
                db["value"].as_str().unwrap().contains("db.abc.supabase.co"),
                "{db}"
            );
            assert!(
                !stdout.contains("S3cret") && !stderr.contains("S3cret"),
                "{url}:\n{stdout}\n{stderr}"
            );
        }
    }
}

#[test]
fn a_remote_project_over_http_is_refused_unless_allowed() {
    let env = [
        ("SUPABASE_URL", "http://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "k"),
    ];
    let refused = config_json(&env, &[]);
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--allow-insecure-http"));
    assert!(config_json(&env, &["--allow-insecure-http"])
        .status
        .success());
    let local = config_json(&[("SUPABASE_URL", "http://127.0.0.1:54321")], &[]);
    assert!(local.status.success());
}

#[test]
fn help_recommends_the_environment_for_secrets() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mailsync"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--env-file rather than in flags"), "{help}");
}
