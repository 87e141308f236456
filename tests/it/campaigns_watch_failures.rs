//! The Realtime client's answer to each failure of the real server (issue
//! 17), played by the in-test server (tests/it/common/realtime_server.rs) on
//! top of the stack's real PostgreSQL: `phx_error`, `phx_close`, a Close
//! frame, a join with no reply, an invalid `access_token`, a
//! `postgres_changes` system error, the rate-limit close, a refused API key
//! and an expired session. The client leaves, says why, is never "live"
//! before the server confirms, waits longer each time, and joins again;
//! `campaigns watch` polls meanwhile and ends with exit 3 when the session
//! has expired. Also through the real binary: a saved session refreshed
//! while watching (the new token reaches the channel, the reads and the
//! session file), a saved session Auth refuses to refresh (exit 3 at once),
//! and failed reads (never the end of the watch; waits that double up to
//! 30 s).

use crate::common;

use std::time::{Duration, Instant};

use common::realtime_server::{Fault, RealtimeConfig, RealtimeServer};
use mailsync::config::Secret;
use mailsync::supabase::realtime::{self, Event, Settings};
use tokio::sync::mpsc;

const JOIN_TIMEOUT: Duration = Duration::from_millis(1500);

fn settings(server: &RealtimeServer, stack: &common::Stack, token: &str) -> Settings {
    let mut s = Settings::new(
        server.websocket_url(&stack.anon_key),
        server.url(),
        Secret::new(token),
    );
    // Heartbeats are not under test here: slow enough for a busy machine.
    s.heartbeat = Duration::from_secs(2);
    s.timeout = JOIN_TIMEOUT;
    s.refused_wait = Duration::from_millis(300);
    s
}

/// Starts the listener the watch runs (no connection yet: it connects).
fn listen(settings: Settings) -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(realtime::listen(settings, None, tx));
    rx
}

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event from the listener within 10 s")
        .expect("the listener is alive")
}

async fn new_campaign(user: &common::User) -> uuid::Uuid {
    common::admin()
        .await
        .query_one(
            "insert into public.email_campaigns (user_id, name) values ($1, 'c') returning id",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0)
}

/// Subscribed, and a real change of the user's data reaches the listener.
async fn changes_flow(events: &mut mpsc::Receiver<Event>, user: &common::User) {
    assert_eq!(next_event(events).await, Event::Subscribed);
    new_campaign(user).await;
    assert_eq!(next_event(events).await, Event::Changed);
}

fn refused(event: Event) -> (String, Duration) {
    match event {
        Event::Refused { reason, retry_in } => (reason, retry_in),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn phx_error_phx_close_and_a_close_frame_end_the_subscription_with_a_reason_and_it_joins_again(
) {
    let stack = common::ready().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    let mut events = listen(settings(&server, &stack, &user.token));
    changes_flow(&mut events, &user).await;

    server.fail(Fault::PhxError);
    let (reason, retry_in) = refused(next_event(&mut events).await);
    assert!(reason.contains("closed by the server"), "{reason}");
    assert_eq!(retry_in, Duration::from_millis(300));
    changes_flow(&mut events, &user).await;

    server.fail(Fault::PhxClose);
    let (reason, _) = refused(next_event(&mut events).await);
    assert!(reason.contains("closed by the server"), "{reason}");
    changes_flow(&mut events, &user).await;

    // A Close frame with a reason is the server's refusal, with that reason.
    server.fail(Fault::CloseFrame(
        1008,
        "policy violation: too many channels".into(),
    ));
    let (reason, _) = refused(next_event(&mut events).await);
    assert!(reason.contains("too many channels"), "{reason}");
    changes_flow(&mut events, &user).await;

    // Without a reason the socket is simply gone: reconnect soon.
    server.fail(Fault::CloseFrame(1001, String::new()));
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected(_)
    ));
    changes_flow(&mut events, &user).await;
    assert_eq!(server.joins(), (5, 0));
}

#[tokio::test]
async fn a_join_with_no_reply_is_abandoned_and_retried_with_growing_waits() {
    let stack = common::ready().await;
    let config = RealtimeConfig {
        silent_joins: 3,
        ..RealtimeConfig::for_stack(&stack)
    };
    let server = RealtimeServer::start(config).await;
    let user = common::new_user(&stack).await;
    let mut events = listen(settings(&server, &stack, &user.token));
    for _ in 0..3 {
        match next_event(&mut events).await {
            Event::Disconnected(reason) => {
                assert!(reason.contains("no reply to the join"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    changes_flow(&mut events, &user).await;
    assert_eq!(server.silent_joins(), 3);
    // Each silent server was left: its socket closed, only the live one open.
    until(
        "the abandoned sockets closed",
        Duration::from_secs(10),
        || server.open_sockets() == 1,
    )
    .await;
    // One socket per attempt; the wait between attempts doubles (0.5 s,
    // 1 s, 2 s after each join timeout).
    let at: Vec<f64> = server
        .handshakes()
        .iter()
        .map(|(t, _)| t.as_secs_f64())
        .collect();
    assert_eq!(at.len(), 4, "{at:?}");
    let gaps: Vec<f64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, wait) in gaps.iter().zip([0.5, 1.0, 2.0]) {
        let least = JOIN_TIMEOUT.as_secs_f64() + wait - 0.05;
        assert!(
            *gap >= least && *gap < least + 3.0,
            "waits between attempts: {gaps:?}"
        );
    }
}

#[tokio::test]
async fn a_subscription_error_is_never_live_and_is_retried_with_doubling_waits() {
    let stack = common::ready().await;
    let config = RealtimeConfig {
        subscription_error: Some("Subscription failed: the replication slot is busy".into()),
        ..RealtimeConfig::for_stack(&stack)
    };
    let server = RealtimeServer::start(config).await;
    let user = common::new_user(&stack).await;
    let mut events = listen(settings(&server, &stack, &user.token));
    let mut waits = Vec::new();
    for _ in 0..3 {
        // Joined (the reply is ok), but never Subscribed: the system error
        // comes first.
        let (reason, retry_in) = refused(next_event(&mut events).await);
        assert!(reason.contains("replication slot is busy"), "{reason}");
        waits.push(retry_in.as_millis());
    }
    assert_eq!(waits, [300, 600, 1200]);
    assert_eq!(server.joins(), (3, 0), "each refusal was a real join");

    // Later a subscription that fails while running is left too.
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let mut events = listen(settings(&server, &stack, &user.token));
    changes_flow(&mut events, &user).await;
    server.fail(Fault::SubscriptionError("Subscription lost".into()));
    let (reason, _) = refused(next_event(&mut events).await);
    assert!(reason.contains("Subscription lost"), "{reason}");
    changes_flow(&mut events, &user).await;
}

#[tokio::test]
async fn the_rate_limit_close_is_a_refusal_and_the_channel_comes_back() {
    let stack = common::ready().await;
    let config = RealtimeConfig {
        messages_per_second: 5,
        ..RealtimeConfig::for_stack(&stack)
    };
    let server = RealtimeServer::start(config).await;
    let user = common::new_user(&stack).await;
    let mut settings = settings(&server, &stack, &user.token);
    // Join again once the quota's one-second window has passed.
    settings.refused_wait = Duration::from_millis(1200);
    let mut events = listen(settings);
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    common::admin()
        .await
        .execute(
            "insert into public.email_campaigns (user_id, name)
             select $1, 'flood ' || g from generate_series(1, 20) g",
            &[&user.id],
        )
        .await
        .unwrap();
    let reason = loop {
        match next_event(&mut events).await {
            Event::Changed => continue,
            other => break refused(other).0,
        }
    };
    assert!(reason.contains("Too many messages per second"), "{reason}");
    assert_eq!(server.quota_closes(), 1);
    changes_flow(&mut events, &user).await;
}

#[tokio::test]
async fn a_refreshed_token_is_handed_to_the_channel_and_an_invalid_one_ends_it() {
    let stack = common::ready().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    let mut settings = settings(&server, &stack, &user.token);
    // The refreshed token must not wait for a heartbeat.
    settings.heartbeat = Duration::from_secs(20);
    let token = settings.token.clone();
    let mut events = listen(settings);
    changes_flow(&mut events, &user).await;

    // The session refreshed: a new token (two hours) reaches the channel,
    // which keeps streaming.
    let fresh = common::sign(&stack, &user.id, &user.email, 7200);
    *token.lock().unwrap() = Secret::new(fresh.clone());
    let started = Instant::now();
    while server.token_refreshes().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no access_token sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refresh = &server.token_refreshes()[0];
    assert_eq!(
        (refresh.token.as_str(), &refresh.outcome),
        (fresh.as_str(), &Ok(()))
    );
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let exp = jsonwebtoken::decode::<serde_json::Value>(
        &fresh,
        &jsonwebtoken::DecodingKey::from_secret(stack.jwt_secret.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims["exp"]
        .clone();
    assert_eq!(server.channel_claims()[0]["exp"], exp);
    // The server subscribes anew with the new claims and says so again.
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    new_campaign(&user).await;
    assert_eq!(next_event(&mut events).await, Event::Changed);

    // A token the server refuses: told why in a system error (in the words
    // it uses for a refreshed token, without a code), closed.
    *token.lock().unwrap() = Secret::new("not-a-jwt");
    let (reason, _) = refused(next_event(&mut events).await);
    assert!(
        reason.contains("The token provided is not a valid JWT"),
        "{reason}"
    );
    assert!(!reason.contains("not-a-jwt"), "no token in messages");
}

#[tokio::test]
async fn a_refused_key_or_an_expired_token_is_a_refusal_naming_why() {
    let stack = common::ready().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;

    let bad_key = Settings::new(
        server.websocket_url("not-the-project-key"),
        server.url(),
        Secret::new(&user.token),
    );
    let err = realtime::connect(&bad_key).await.err().expect("refused");
    assert_eq!(err.kind(), mailsync::error::ErrorKind::Refused);
    assert!(
        err.message().contains("API key was refused") && err.message().contains("403"),
        "{}",
        err.message()
    );
    assert!(err.hint().unwrap().contains("SUPABASE_ANON_KEY"));
    assert!(!err.message().contains("not-the-project-key"));
    assert_eq!(server.handshakes().len(), 1);
    assert!(
        !server.handshakes()[0].1,
        "the server refused the handshake"
    );

    let expired = common::sign(&stack, &user.id, &user.email, -60);
    let err = realtime::connect(&settings(&server, &stack, &expired))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.kind(), mailsync::error::ErrorKind::Refused);
    assert!(
        err.message().contains("Token has expired"),
        "{}",
        err.message()
    );
}

/// The real binary: a session that expires while watching. Realtime closes
/// the channel ("Token has expired"), the watch says so and polls, and the
/// next read is refused: exit 3, saying the session expired.
#[tokio::test]
async fn the_watch_ends_with_exit_3_when_the_session_expires() {
    let stack = common::ready().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    let token = common::sign(&stack, &user.id, &user.email, 4);
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::command_for(&server.url(), &stack.anon_key, dir.path())
        .args([
            "--json",
            "-v",
            "campaigns",
            "watch",
            "--mode",
            "realtime",
            "--interval",
            "0.5",
        ])
        .env("MAILSYNC_ACCESS_TOKEN", &token)
        .env("MAILSYNC_LANG", "en")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the watch did not end within 60 s of its session expiring: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the Realtime subscription is confirmed"),
        "it was live first: {err}"
    );
    assert!(
        err.contains("Token has expired") && err.contains("polling every 0.5 s"),
        "says why Realtime stopped, and that it polls: {err}"
    );
    assert!(err.to_lowercase().contains("expired"), "{err}");
    assert!(!err.contains(&token), "no token in messages");
}

/// Waits until `check` holds, at most `limit`; fails naming `what`.
async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The claims of a token the stack signed.
fn claims_of(stack: &common::Stack, token: &str) -> serde_json::Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(stack.jwt_secret.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims
}

/// The real binary with a saved session whose access token nears its end,
/// behind one project address (the in-test Realtime server, which passes
/// the rest to a gateway that sends `/auth/v1` to the in-test Auth server
/// and `/rest/v1` to the stack): the watch starts with the saved token,
/// refreshes the session through Auth once the token is within its last
/// minute, saves the rotated refresh token, reads the views with the new
/// token and hands it to the Realtime channel (`access_token`), which then
/// acts as the new token and goes on streaming.
#[tokio::test]
async fn a_session_refreshed_while_watching_reaches_the_channel_the_reads_and_the_saved_file() {
    use common::auth_server::{auth_server_for, read_session};
    use common::gateway::Gateway;

    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let (auth_url, auth) = auth_server_for(user.id, &user.email, &stack.anon_key).await;
    auth.lock().unwrap().refresh_token = "refresh-token-0".into();
    let gateway = Gateway::start_with_auth(&stack.url, &stack.anon_key, Some(&auth_url)).await;
    // Record every REST request (no faults).
    gateway.fail("/rest/v1/", std::iter::empty());
    let server = RealtimeServer::start(RealtimeConfig {
        upstream: Some(gateway.url.clone()),
        ..RealtimeConfig::for_stack(&stack)
    })
    .await;

    // The saved session: 70 s left, so the watch starts with this token (a
    // session is refreshed in its last minute) and must refresh it a few
    // seconds into the watch (10 s leave room for a slow start).
    let left = mailsync::supabase::user::REFRESH_MARGIN + 10;
    let old = common::sign(&stack, &user.id, &user.email, left);
    let old_claims = claims_of(&stack, &old);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    common::write_session_file(
        &config,
        &server.url(),
        &serde_json::json!({"access_token": old, "refresh_token": "refresh-token-0",
                            "expires_at": old_claims["exp"], "user_id": user.id, "email": user.email}),
    );
    let mut child = spawn_watch(
        &server.url(),
        &stack.anon_key,
        dir.path(),
        &["-v", "campaigns", "watch", "--mode", "realtime"],
        None,
    );
    let _shown = gather(child.stdout.take().unwrap());
    let bearer = |token: &str| Some(format!("Bearer {token}"));

    // Live with the saved token, nothing refreshed yet.
    until("a subscribed channel", Duration::from_secs(20), || {
        server.subscribed_channels() == 1
    })
    .await;
    assert_eq!(
        server.channel_claims()[0]["exp"],
        old_claims["exp"],
        "joined with the saved token"
    );
    let reads = gateway.seen("/rest/v1/");
    assert!(!reads.is_empty(), "the views were read");
    assert!(
        reads.iter().all(|r| r.authorization == bearer(&old)),
        "read with the saved token"
    );
    assert!(auth.lock().unwrap().requests.is_empty(), "no refresh yet");

    // Once the token is in its last minute, a change makes the watch re-read:
    // it refreshes first.
    let margin_reached =
        old_claims["exp"].as_i64().unwrap() - mailsync::supabase::user::REFRESH_MARGIN;
    until("the token's last minute", Duration::from_secs(20), || {
        mailsync::supabase::session::now() > margin_reached
    })
    .await;
    new_campaign(&user).await;
    until("a refresh", Duration::from_secs(20), || {
        !auth.lock().unwrap().issued_access.is_empty()
    })
    .await;
    let new = auth.lock().unwrap().issued_access[0].clone();
    let new_claims = claims_of(&stack, &new);

    // The channel is handed the new token and acts as it.
    until("an access_token message", Duration::from_secs(10), || {
        !server.token_refreshes().is_empty()
    })
    .await;
    let refresh = &server.token_refreshes()[0];
    assert_eq!(
        (refresh.token.as_str(), &refresh.outcome),
        (new.as_str(), &Ok(()))
    );
    assert_eq!(
        server.channel_claims()[0]["session_id"],
        new_claims["session_id"]
    );
    // The reads use it from the refresh on.
    until("a read with the new token", Duration::from_secs(10), || {
        gateway
            .seen("/rest/v1/")
            .iter()
            .any(|r| r.authorization == bearer(&new))
    })
    .await;
    let reads: Vec<Option<String>> = gateway
        .seen("/rest/v1/")
        .into_iter()
        .map(|r| r.authorization)
        .collect();
    let first_new = reads.iter().position(|a| *a == bearer(&new)).unwrap();
    assert!(
        reads[..first_new].iter().all(|a| *a == bearer(&old))
            && reads[first_new..].iter().all(|a| *a == bearer(&new)),
        "the saved token until the refresh, the new one after"
    );
    // Auth was asked once, with the saved refresh token and the project's key,
    // and the rotated refresh token is saved with the new access token.
    {
        let auth = auth.lock().unwrap();
        let refreshes: Vec<_> = auth
            .requests
            .iter()
            .map(|(grant, body, key, _)| {
                (grant.as_str(), body["refresh_token"].clone(), key.as_str())
            })
            .collect();
        assert_eq!(
            refreshes,
            [(
                "refresh_token",
                serde_json::json!("refresh-token-0"),
                stack.anon_key.as_str()
            )]
        );
    }
    let saved = read_session(&config);
    assert_eq!(
        (
            saved["refresh_token"].as_str(),
            saved["access_token"].as_str()
        ),
        (Some("refresh-token-1"), Some(new.as_str()))
    );
    assert!(
        saved["expires_at"].as_i64().unwrap() > mailsync::supabase::session::now() + 3000,
        "{saved}"
    );

    // The channel goes on streaming the user's changes.
    let after = server.deliveries().len();
    new_campaign(&user).await;
    until(
        "a change after the hand-off",
        Duration::from_secs(10),
        || {
            server.deliveries()[after..]
                .iter()
                .any(|d| d.event == "postgres_changes")
        },
    )
    .await;
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("the session was refreshed"), "{err}");
    for secret in [
        old.as_str(),
        new.as_str(),
        "refresh-token-0",
        "refresh-token-1",
    ] {
        assert!(!err.contains(secret), "a token was printed: {err}");
    }
}

/// The real `--json campaigns watch` with these arguments, against `url`
/// with the configuration directory `dir` (isolated by the harness), its
/// stdout and stderr piped, killed when dropped.
fn spawn_watch(
    url: &str,
    anon_key: &str,
    dir: &std::path::Path,
    args: &[&str],
    token: Option<&str>,
) -> tokio::process::Child {
    let mut command = tokio::process::Command::from(common::command_for(url, anon_key, dir));
    command
        .args(["--json"])
        .args(args)
        .env("MAILSYNC_LANG", "en")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(token) = token {
        command.env("MAILSYNC_ACCESS_TOKEN", token);
    }
    command.spawn().unwrap()
}

/// Lines a child writes to a pipe, gathered as they come.
fn gather(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use tokio::io::AsyncBufReadExt;
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// `campaigns watch` (polling, the real binary, through a gateway in front
/// of the stack) when reads fail: it never ends on a failed read, says it is
/// reconnecting and when it tries again, doubles the wait each time, and
/// shows the views once a read succeeds. The wait is capped at 30 s.
#[tokio::test]
async fn the_watch_outlives_failed_reads_with_doubling_waits_capped_at_30_s() {
    use common::gateway::{Fault as GatewayFault, Gateway};

    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let gateway = Gateway::start(&stack.url, &stack.anon_key).await;
    let watch = |interval: &str| {
        let dir = tempfile::tempdir().unwrap();
        let child = spawn_watch(
            &gateway.url,
            &stack.anon_key,
            dir.path(),
            &[
                "campaigns",
                "watch",
                "--mode",
                "poll",
                "--interval",
                interval,
            ],
            Some(&user.token),
        );
        (child, dir)
    };

    // The first two reads fail (the gateway answers 500 for the dashboard).
    gateway.fail(
        "dashboard_analytics",
        [
            GatewayFault::Before(500, None),
            GatewayFault::Before(500, None),
        ],
    );
    let (mut child, _dir) = watch("0.5");
    let out = gather(child.stdout.take().unwrap());
    let err = gather(child.stderr.take().unwrap());
    until(
        "a refresh after the failed reads",
        Duration::from_secs(20),
        || !out.lock().unwrap().is_empty(),
    )
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the watch ended: {:?}",
        err.lock().unwrap()
    );
    let shown: serde_json::Value = serde_json::from_str(&out.lock().unwrap()[0]).unwrap();
    assert_eq!(
        shown["dashboard"]["user_id"],
        user.id.to_string(),
        "{shown}"
    );
    let notes = err.lock().unwrap().clone();
    let retries: Vec<&String> = notes
        .iter()
        .filter(|l| l.contains("reconnecting"))
        .collect();
    assert_eq!(retries.len(), 2, "{notes:?}");
    assert!(
        retries[0].contains("retrying in 1 s") && retries[1].contains("retrying in 2 s"),
        "{notes:?}"
    );
    assert!(
        retries[0].contains("dashboard_analytics"),
        "says what failed: {notes:?}"
    );
    let at: Vec<Instant> = gateway
        .seen("dashboard_analytics")
        .iter()
        .map(|s| s.at)
        .collect();
    assert_eq!(at.len(), 3, "two failed reads, then one that succeeded");
    let gaps: Vec<f64> = at.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
    assert!(
        gaps[0] >= 0.95 && gaps[1] >= 1.95,
        "waits of 1 s then 2 s between reads: {gaps:?}"
    );
    child.start_kill().unwrap();
    let _ = child.wait().await;

    // At --interval 16 the first failure would double to 32 s: capped at 30.
    gateway.fail("dashboard_analytics", [GatewayFault::Before(500, None)]);
    let (mut child, _dir) = watch("16");
    let err = gather(child.stderr.take().unwrap());
    until("a retry note", Duration::from_secs(20), || {
        err.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("reconnecting"))
    })
    .await;
    let notes = err.lock().unwrap().clone();
    assert!(
        notes.iter().any(|l| l.contains("retrying in 30 s")),
        "{notes:?}"
    );
    assert!(child.try_wait().unwrap().is_none(), "{notes:?}");
}

/// The real binary (polling, through the gateway) with a saved session that
/// Auth no longer knows (signed out elsewhere): the watch reads with the
/// saved token until its last minute, then the refresh is refused and the
/// watch ends at once with exit 3 saying the session expired, rather than
/// reading on with a token about to expire.
#[tokio::test]
async fn a_watch_whose_session_cannot_be_refreshed_ends_with_exit_3() {
    use common::auth_server::auth_server_for;
    use common::gateway::Gateway;

    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let (auth_url, auth) = auth_server_for(user.id, &user.email, &stack.anon_key).await;
    auth.lock().unwrap().refresh_token = "the-session-ended-elsewhere".into();
    let gateway = Gateway::start_with_auth(&stack.url, &stack.anon_key, Some(&auth_url)).await;
    let left = mailsync::supabase::user::REFRESH_MARGIN + 10;
    let old = common::sign(&stack, &user.id, &user.email, left);
    let expires_at = claims_of(&stack, &old)["exp"].clone();
    let dir = tempfile::tempdir().unwrap();
    common::write_session_file(
        &dir.path().join("config"),
        &gateway.url,
        &serde_json::json!({"access_token": old, "refresh_token": "refresh-token-0",
                            "expires_at": expires_at, "user_id": user.id, "email": user.email}),
    );
    let mut child = spawn_watch(
        &gateway.url,
        &stack.anon_key,
        dir.path(),
        &["campaigns", "watch", "--mode", "poll", "--interval", "0.5"],
        None,
    );
    let out = gather(child.stdout.take().unwrap());
    let err = gather(child.stderr.take().unwrap());
    until("a first refresh", Duration::from_secs(20), || {
        !out.lock().unwrap().is_empty()
    })
    .await;
    assert!(auth.lock().unwrap().requests.is_empty(), "no refresh yet");
    // The token enters its last minute about 10 s in; the next read asks Auth.
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the watch ended within 30 s")
        .unwrap();
    // Let the readers drain what the watch wrote last.
    until("the watch's last words", Duration::from_secs(5), || {
        err.lock().unwrap().iter().any(|l| l.starts_with("hint:"))
    })
    .await;
    let notes = err.lock().unwrap().join("\n");
    assert_eq!(status.code(), Some(3), "{notes}");
    assert!(
        notes.contains("error: your session expired")
            && notes.contains("hint: run `mailsync login`"),
        "{notes}"
    );
    let refreshes: Vec<serde_json::Value> = auth
        .lock()
        .unwrap()
        .requests
        .iter()
        .map(|(grant, body, _, _)| serde_json::json!([grant, body["refresh_token"]]))
        .collect();
    assert_eq!(
        refreshes,
        [serde_json::json!(["refresh_token", "refresh-token-0"])],
        "one refresh, not retried: the session is over"
    );
    assert!(!notes.contains(&old) && !notes.contains("refresh-token-0"));
}
