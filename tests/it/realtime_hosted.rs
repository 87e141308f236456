//! The in-test Realtime server (tests/it/common/realtime_server.rs) behaves as
//! hosted Realtime, against the stack's real PostgreSQL: changes of
//! `campaign_live` (the one table mailsync publishes) read from the
//! write-ahead log, RLS per subscriber, DELETE with the primary key only,
//! filters, the `system` messages of the real server, transient join
//! failures, and the messages-per-second quota that closes the channel.

use crate::common;

use std::time::Duration;

use common::realtime_server::{RealtimeConfig, RealtimeServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(server: &RealtimeServer) -> Socket {
    let (ws, _) = tokio_tungstenite::connect_async(server.websocket_url(&common::stack().anon_key))
        .await
        .expect("connecting to the in-test Realtime server");
    ws
}

async fn send(ws: &mut Socket, frame: Value) {
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
}

/// The next frame with this event (others are skipped), within `wait`.
async fn next(ws: &mut Socket, event: &str, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        while let Some(Ok(message)) = ws.next().await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if frame["event"] == event {
                    return Some(frame);
                }
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// The next change for which `wanted` holds, within `wait`: other tests'
/// DELETEs reach every subscriber (Realtime applies no RLS to them, as on
/// Supabase), so a test waiting for its own change passes over them.
async fn next_change(
    ws: &mut Socket,
    wait: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let change = next(ws, "postgres_changes", left).await?;
        if wanted(&change) {
            return Some(change);
        }
    }
}

/// Not a DELETE (see [`next_change`]).
fn not_a_delete(change: &Value) -> bool {
    change["payload"]["data"]["type"] != "DELETE"
}

fn join_frame(token: &str, filter: Option<String>, table: &str) -> Value {
    let mut binding = json!({"event": "*", "schema": "public", "table": table});
    if let Some(filter) = filter {
        binding["filter"] = json!(filter);
    }
    json!({"topic": "realtime:watch", "event": "phx_join", "ref": "1", "join_ref": "1",
           "payload": {"config": {"broadcast": {"ack": false, "self": false}, "presence": {"key": ""},
                                   "postgres_changes": [binding], "private": false},
                       "access_token": token}})
}

/// Joins and waits for the subscription's `system` message.
async fn join_subscribed(ws: &mut Socket, token: &str, filter: Option<String>) -> Value {
    send(ws, join_frame(token, filter, "campaign_live")).await;
    let reply = next(ws, "phx_reply", Duration::from_secs(5))
        .await
        .expect("a join reply");
    assert_eq!(reply["payload"]["status"], "ok", "{reply}");
    let system = next(ws, "system", Duration::from_secs(5))
        .await
        .expect("the subscription's system message");
    assert_eq!(
        system["payload"],
        json!({"extension": "postgres_changes", "status": "ok",
               "message": "Subscribed to PostgreSQL", "channel": "watch"})
    );
    reply
}

/// mailsync publishes `campaign_live` and nothing else (a DELETE of any
/// published table reaches every subscriber).
async fn only_campaign_live_is_published() {
    let tables: Vec<String> = common::column(
        "select schemaname || '.' || tablename from pg_publication_tables
         where pubname = 'supabase_realtime' order by 1",
        &[],
    )
    .await;
    assert_eq!(tables, ["public.campaign_live"]);
}

async fn new_campaign(user: &common::User, name: &str) -> uuid::Uuid {
    common::insert_campaign(user, name, "draft").await
}

#[tokio::test]
async fn changes_stream_after_the_subscription_is_confirmed_and_only_to_who_may_see_them() {
    let stack = common::ready().await;
    only_campaign_live_is_published().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let alice = common::new_user(&stack).await;
    let bob = common::new_user(&stack).await;
    // Committed before anyone joined: never sent.
    new_campaign(&alice, "Before").await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    let reply = join_subscribed(&mut a, &alice.token, None).await;
    let id = reply["payload"]["response"]["postgres_changes"][0]["id"].clone();
    assert!(id.is_u64(), "{reply}");
    join_subscribed(&mut b, &bob.token, None).await;

    let campaign = new_campaign(&alice, "Live").await;
    // Under load the in-test server has been seen to pass on another test's
    // row first; what is checked is that alice gets hers, as it is.
    let hers = |c: &Value| c["payload"]["data"]["record"]["campaign_id"] == campaign.to_string();
    let change = next_change(&mut a, Duration::from_secs(5), hers)
        .await
        .expect("alice sees her campaign's live row");
    assert_eq!(change["payload"]["ids"], json!([id]));
    let data = &change["payload"]["data"];
    assert_eq!(data["type"], "INSERT");
    assert_eq!(
        (&data["schema"], &data["table"]),
        (&json!("public"), &json!("campaign_live"))
    );
    assert_eq!(
        data["record"]["campaign_id"],
        campaign.to_string(),
        "{data}"
    );
    assert_eq!(data["record"]["user_id"], alice.id.to_string());
    assert_eq!(data["record"]["campaign_status"], "draft");
    assert!(data["commit_timestamp"].as_str().unwrap().len() > 10);
    let live_id = data["record"]["id"].as_str().unwrap().to_string();
    assert_ne!(
        live_id,
        campaign.to_string(),
        "the live row has its own key"
    );

    // RLS: bob is never sent alice's row; the first thing he hears of is
    // his own campaign, committed after hers.
    let his = new_campaign(&bob, "Bob's").await;
    let first = next_change(&mut b, Duration::from_secs(5), not_a_delete)
        .await
        .expect("bob sees his own campaign");
    assert_eq!(
        first["payload"]["data"]["record"]["campaign_id"],
        his.to_string(),
        "bob was sent alice's row first: {first}"
    );

    // A status change moves the live row (an UPDATE for alice only).
    common::admin()
        .await
        .execute(
            "update public.email_campaigns set status = 'sending' where id = $1",
            &[&campaign],
        )
        .await
        .unwrap();
    let update = next_change(&mut a, Duration::from_secs(5), not_a_delete)
        .await
        .expect("alice sees the status change");
    assert_eq!(update["payload"]["data"]["type"], "UPDATE");
    assert_eq!(
        update["payload"]["data"]["record"]["campaign_status"],
        "sending"
    );

    // A DELETE is not RLS-filtered: everyone subscribed gets the key only,
    // which for campaign_live is a random id that says nothing.
    common::admin()
        .await
        .execute(
            "delete from public.email_campaigns where id = $1",
            &[&campaign],
        )
        .await
        .unwrap();
    for ws in [&mut a, &mut b] {
        let deleted = next_change(ws, Duration::from_secs(5), |c| {
            c["payload"]["data"]["old_record"] == json!({"id": live_id})
        })
        .await
        .expect("a DELETE reaches every subscriber");
        let data = &deleted["payload"]["data"];
        assert_eq!(data["type"], "DELETE", "{deleted}");
        assert_eq!(data["old_record"], json!({"id": live_id}));
        assert_eq!(data["record"], json!({}));
    }
}

#[tokio::test]
async fn a_filter_limits_the_changes_sent() {
    let stack = common::ready().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    let one = new_campaign(&user, "one").await;
    let two = new_campaign(&user, "two").await;
    let mut ws = connect(&server).await;
    join_subscribed(&mut ws, &user.token, Some(format!("campaign_id=eq.{two}"))).await;
    let admin = common::admin().await;
    // One statement renames both (one before the other in the log)...
    admin
        .execute(
            "update public.email_campaigns set name = name || ' renamed' where user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    // ...a later one renames the filtered campaign only.
    admin
        .execute(
            "update public.email_campaigns set name = 'two again' where id = $1",
            &[&two],
        )
        .await
        .unwrap();
    for _ in 0..2 {
        let change = next_change(&mut ws, Duration::from_secs(5), not_a_delete)
            .await
            .expect("the filtered row's updates");
        assert_eq!(
            change["payload"]["data"]["record"]["campaign_id"],
            two.to_string(),
            "campaign {one} is outside the filter: {change}"
        );
    }
}

#[tokio::test]
async fn a_table_outside_the_publication_gets_a_system_error() {
    let stack = common::ready().await;
    only_campaign_live_is_published().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    let mut ws = connect(&server).await;
    // The table the watch used to listen to is no longer published.
    send(&mut ws, join_frame(&user.token, None, "emails_sent")).await;
    let reply = next(&mut ws, "phx_reply", Duration::from_secs(5))
        .await
        .unwrap();
    // The join itself succeeds: the failure arrives afterwards.
    assert_eq!(reply["payload"]["status"], "ok");
    let system = next(&mut ws, "system", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(system["payload"]["extension"], "postgres_changes");
    assert_eq!(system["payload"]["status"], "error");
    let message = system["payload"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Unable to subscribe to changes with given parameters")
            && message.contains("table: emails_sent"),
        "{system}"
    );
    assert_eq!(server.subscribed_channels(), 0);
    // And no change of emails_sent is ever read as a published one.
    let campaign = new_campaign(&user, "x").await;
    common::admin()
        .await
        .execute(
            "insert into public.emails_sent (user_id, campaign_id, recipient_email) values ($1, $2, 'a@example.test')",
            &[&user.id, &campaign],
        )
        .await
        .unwrap();
    let mut live = connect(&server).await;
    join_subscribed(&mut live, &user.token, None).await;
    let marker = new_campaign(&user, "marker").await;
    let is_marker = |c: &Value| c["payload"]["data"]["record"]["campaign_id"] == marker.to_string();
    next_change(&mut live, Duration::from_secs(5), is_marker)
        .await
        .expect("the marker campaign");
    let tables: Vec<String> = server
        .changes()
        .iter()
        .map(|c| format!("{}.{}", c.schema, c.table))
        .collect();
    assert!(
        tables.iter().all(|t| t == "public.campaign_live"),
        "{tables:?}"
    );
    assert!(server
        .changes()
        .iter()
        .any(|c| c.record.get("campaign_id") == Some(&json!(marker.to_string()))));
}

#[tokio::test]
async fn joins_fail_transiently_while_the_project_connection_initialises() {
    let stack = common::ready().await;
    let config = RealtimeConfig {
        transient_join_failures: 2,
        ..RealtimeConfig::for_stack(&stack)
    };
    let server = RealtimeServer::start(config).await;
    let user = common::new_user(&stack).await;
    let mut ws = connect(&server).await;
    for _ in 0..2 {
        send(&mut ws, join_frame(&user.token, None, "campaign_live")).await;
        let reply = next(&mut ws, "phx_reply", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply["payload"]["status"], "error");
        assert_eq!(
            reply["payload"]["response"]["reason"],
            "InitializingProjectConnection: Realtime is initializing the project connection"
        );
    }
    join_subscribed(&mut ws, &user.token, None).await;
    assert_eq!(server.joins(), (1, 2));
    // Subscribed for real: the next change arrives.
    let campaign = new_campaign(&user, "after the retries").await;
    let wanted = |c: &Value| c["payload"]["data"]["record"]["campaign_id"] == campaign.to_string();
    next_change(&mut ws, Duration::from_secs(5), wanted)
        .await
        .expect("a change after the transient failures");

    // A bad token is refused for good, and so is an expired one.
    let expired = common::sign(&stack, &user.id, &user.email, -120);
    for (token, reason) in [
        (
            "not-a-jwt",
            "MalformedJWT: The token provided is not a valid JWT",
        ),
        (expired.as_str(), "InvalidJWTToken: Token has expired 12"),
    ] {
        let mut other = connect(&server).await;
        send(&mut other, join_frame(token, None, "campaign_live")).await;
        let reply = next(&mut other, "phx_reply", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply["payload"]["status"], "error");
        let got = reply["payload"]["response"]["reason"].as_str().unwrap();
        assert!(got.starts_with(reason), "{got}");
    }
    assert_eq!(server.joins(), (1, 4));
}

#[tokio::test]
async fn over_the_message_quota_the_channel_is_told_why_and_closed() {
    let stack = common::ready().await;
    let config = RealtimeConfig {
        messages_per_second: 20,
        ..RealtimeConfig::for_stack(&stack)
    };
    let server = RealtimeServer::start(config).await;
    let user = common::new_user(&stack).await;
    let mut ws = connect(&server).await;
    join_subscribed(&mut ws, &user.token, None).await;
    // 50 campaigns: 50 live rows inserted in one transaction.
    common::admin()
        .await
        .execute(
            "insert into public.email_campaigns (user_id, name)
             select $1, 'flood ' || g from generate_series(1, 50) g",
            &[&user.id],
        )
        .await
        .unwrap();
    let system = next(&mut ws, "system", Duration::from_secs(5))
        .await
        .expect("a system message for the quota");
    assert_eq!(
        system["payload"],
        json!({"extension": "system", "status": "error",
               "message": "Too many messages per second", "channel": "watch"})
    );
    let close = next(&mut ws, "phx_close", Duration::from_secs(5))
        .await
        .expect("the channel is closed after the quota message");
    assert_eq!(close["topic"], "realtime:watch");
    assert_eq!(server.quota_closes(), 1);
    assert_eq!(server.peak_messages_per_second(), 20);
    assert_eq!(server.subscribed_channels(), 0);
    let live_inserts = server
        .changes()
        .iter()
        .filter(|c| {
            c.table == "campaign_live"
                && c.kind == "INSERT"
                && c.record.get("user_id") == Some(&json!(user.id.to_string()))
        })
        .count();
    assert_eq!(live_inserts, 50, "every change was read from the log");
}

#[tokio::test]
async fn a_bad_key_is_refused_at_the_handshake_and_an_expiring_token_closes_its_channel() {
    let stack = common::ready().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    // Signed with another secret, or not a JWT: HTTP 403, no socket.
    let forged = {
        let claims = json!({"role": "anon", "exp": 4_000_000_000u64});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(b"another-project-secret-of-32-characters"),
        )
        .unwrap()
    };
    for key in ["not-a-key", forged.as_str()] {
        match tokio_tungstenite::connect_async(server.websocket_url(key)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403)
            }
            other => panic!(
                "the handshake with a bad key was not refused: {:?}",
                other.map(|_| ())
            ),
        }
    }
    // The project's JWTs need `role` and `exp`, whatever the role: one
    // without `role` is refused, an expired one too, and a user's own token
    // is accepted as the key (the real server checks no more than that).
    let sign = |claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(stack.jwt_secret.as_bytes()),
        )
        .unwrap()
    };
    let roleless = sign(json!({"exp": 4_000_000_000u64}));
    let expired = common::sign(&stack, &user.id, &user.email, -60);
    for key in [roleless.as_str(), expired.as_str()] {
        assert!(tokio_tungstenite::connect_async(server.websocket_url(key))
            .await
            .is_err());
    }
    let (mut by_user, _) = tokio_tungstenite::connect_async(server.websocket_url(&user.token))
        .await
        .expect("a user's token is a key the server accepts");
    by_user.close(None).await.unwrap();
    assert_eq!(
        server
            .handshakes()
            .iter()
            .map(|(_, ok)| *ok)
            .collect::<Vec<_>>(),
        [false, false, false, false, true]
    );

    // A token valid for a few more seconds: subscribed, then told and closed.
    let short = common::sign(&stack, &user.id, &user.email, 5);
    let mut ws = connect(&server).await;
    join_subscribed(&mut ws, &short, None).await;
    let system = next(&mut ws, "system", Duration::from_secs(10))
        .await
        .expect("a system message when the token expires");
    assert_eq!(system["payload"]["status"], "error");
    assert!(
        system["payload"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Token has expired"),
        "{system}"
    );
    next(&mut ws, "phx_close", Duration::from_secs(2))
        .await
        .expect("then the channel is closed");
    assert_eq!(server.subscribed_channels(), 0);
}
