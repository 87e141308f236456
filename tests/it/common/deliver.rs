//! Helpers shared by the tests of `campaigns deliver` that run the binary in
//! the background (pacing, leases, signals): a queued campaign, the binary
//! started with a scripted SMTP server, and the emails as stored.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::{rest, stderr, Stack, User};

/// `n` addresses of `user`: `<prefix>0@…`, `<prefix>1@…`, ... (tagged with
/// the user, so that tests never share a recipient).
pub fn numbered_addresses(user: &User, prefix: &str, n: usize) -> Vec<String> {
    let tag = &user.id.simple().to_string()[..10];
    (0..n)
        .map(|i| format!("{prefix}{i}.{tag}@example.test"))
        .collect()
}

/// A campaign queued (`campaigns send`) for `user` to `emails`; its id.
pub async fn queued_campaign(stack: &Stack, user: &User, emails: &[String]) -> String {
    let rows: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"email": e, "organization_name": format!("Org {}", i % 3)}))
        .collect();
    super::insert_as(stack, user, "contacts", json!(rows)).await;
    let name = format!("c-{}", uuid::Uuid::new_v4().simple());
    let (status, body) = rest(
        stack,
        Method::POST,
        "email_campaigns",
        Some(&user.token),
        Some(json!({"name": name, "subject": "S", "content": "C"})),
        Some("return=representation"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body[0]["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = super::command(stack, dir.path());
    cmd.args(["--json", "campaigns", "send", &id, "--yes"])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token);
    let o = super::output_off_runtime(cmd).await;
    assert!(o.status.success(), "{}", stderr(&o));
    id
}

/// The binary started in the background with `token` (a user's) and
/// `args`, sending through `smtp_url`, its stdout and stderr piped.
pub fn spawn(stack: &Stack, token: &str, args: &[&str], smtp_url: &str) -> Child {
    let dir = tempfile::tempdir().unwrap().keep();
    super::command_for(&stack.url, &stack.anon_key, &dir)
        .args(args)
        .env("MAILSYNC_ACCESS_TOKEN", token)
        .env("MAILSYNC_SMTP_URL", smtp_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mailsync")
}

/// Sends `signal` (such as "-INT") to `child`.
pub fn signal(child: &Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} failed");
}

/// Waits for `child` off the runtime; its output and how long the wait took.
pub async fn finish(child: Child) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (o, started.elapsed())
}

/// One email as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: String,
    pub lease_owner: Option<String>,
    pub attempts: i32,
}

/// Each email of `campaign` by recipient, as stored (read as the superuser).
pub async fn emails(campaign: &str) -> HashMap<String, Stored> {
    super::admin()
        .await
        .query(
            "select recipient_email, status, lease_owner, attempts
               from public.emails_sent where campaign_id = $1::text::uuid",
            &[&campaign],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.get(0),
                Stored {
                    status: r.get(1),
                    lease_owner: r.get(2),
                    attempts: r.get(3),
                },
            )
        })
        .collect()
}

/// How many of `rows` have `status`.
pub fn count(rows: &HashMap<String, Stored>, status: &str) -> usize {
    rows.values().filter(|r| r.status == status).count()
}

pub async fn campaign_status(campaign: &str) -> String {
    super::admin()
        .await
        .query_one(
            "select status from public.email_campaigns where id = $1::text::uuid",
            &[&campaign],
        )
        .await
        .unwrap()
        .get(0)
}
