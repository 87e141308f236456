//! The in-test Realtime server (tests/common/realtime_server.rs) behaves as
//! hosted Realtime: changes from the real database, RLS per subscriber,
//! DELETE with the primary key only, the `system` messages of the real
//! server, transient join failures, and the messages-per-second quota that
//! closes the channel.

mod common;

use std::time::Duration;

use common::realtime_server::{RealtimeConfig, RealtimeServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(server: &RealtimeServer) -> Socket {
    let (ws, _) = tokio_tungstenite::connect_async(server.websocket_url("anon-key"))
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
    send(ws, join_frame(token, filter, "email_campaigns")).await;
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

async fn published(table: &str) {
    let found: bool = common::admin()
        .await
        .query_one(
            "select exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime' and tablename = $1)",
            &[&table],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        found,
        "these tests stream public.{table}, which must be in supabase_realtime"
    );
}

#[tokio::test]
async fn changes_stream_after_the_subscription_is_confirmed_and_only_to_who_may_see_them() {
    let stack = common::ready().await;
    published("email_campaigns").await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let alice = common::new_user(&stack).await;
    let bob = common::new_user(&stack).await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    let reply = join_subscribed(&mut a, &alice.token, None).await;
    let id = reply["payload"]["response"]["postgres_changes"][0]["id"].clone();
    assert!(id.is_u64(), "{reply}");
    join_subscribed(&mut b, &bob.token, None).await;

    let admin = common::admin().await;
    let campaign: uuid::Uuid = admin
        .query_one(
            "insert into public.email_campaigns (user_id, name, subject) values ($1, 'Live', 'S') returning id",
            &[&alice.id],
        )
        .await
        .unwrap()
        .get(0);
    let change = next(&mut a, "postgres_changes", Duration::from_secs(5))
        .await
        .expect("alice sees her insert");
    assert_eq!(change["payload"]["ids"], json!([id]));
    let data = &change["payload"]["data"];
    assert_eq!(data["type"], "INSERT");
    assert_eq!(data["table"], "email_campaigns");
    assert_eq!(data["record"]["id"], campaign.to_string());
    assert_eq!(data["record"]["status"], "draft");
    assert!(data["commit_timestamp"].as_str().unwrap().len() > 10);
    // RLS: bob is never sent alice's row.
    assert!(next(&mut b, "postgres_changes", Duration::from_millis(700))
        .await
        .is_none());

    // A DELETE is not RLS-filtered: everyone subscribed gets the key only.
    admin
        .execute(
            "delete from public.email_campaigns where id = $1",
            &[&campaign],
        )
        .await
        .unwrap();
    for ws in [&mut a, &mut b] {
        let deleted = next(ws, "postgres_changes", Duration::from_secs(5))
            .await
            .expect("a DELETE reaches every subscriber");
        let data = &deleted["payload"]["data"];
        assert_eq!(data["type"], "DELETE");
        assert_eq!(data["old_record"], json!({"id": campaign.to_string()}));
        assert_eq!(data["record"], json!({}));
    }
}

#[tokio::test]
async fn a_filter_limits_the_changes_sent() {
    let stack = common::ready().await;
    published("email_campaigns").await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    let admin = common::admin().await;
    let ids: Vec<uuid::Uuid> = admin
        .query(
            "insert into public.email_campaigns (user_id, name) values ($1, 'one'), ($1, 'two') returning id",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut ws = connect(&server).await;
    join_subscribed(&mut ws, &user.token, Some(format!("id=eq.{}", ids[1]))).await;
    admin
        .execute(
            "update public.email_campaigns set subject = 'changed' where user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    let change = next(&mut ws, "postgres_changes", Duration::from_secs(5))
        .await
        .expect("the filtered row's update");
    assert_eq!(
        change["payload"]["data"]["record"]["id"],
        ids[1].to_string()
    );
    assert!(
        next(&mut ws, "postgres_changes", Duration::from_millis(500))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_table_outside_the_publication_gets_a_system_error() {
    let stack = common::ready().await;
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let user = common::new_user(&stack).await;
    let mut ws = connect(&server).await;
    send(&mut ws, join_frame(&user.token, None, "no_such_table")).await;
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
    assert!(
        system["payload"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unable to subscribe to changes with given parameters"),
        "{system}"
    );
    assert_eq!(server.subscribed_channels(), 0);
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
        send(&mut ws, join_frame(&user.token, None, "email_campaigns")).await;
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

    // A bad token is refused for good.
    let mut other = connect(&server).await;
    send(&mut other, join_frame("not-a-jwt", None, "email_campaigns")).await;
    let reply = next(&mut other, "phx_reply", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply["payload"]["status"], "error");
}

#[tokio::test]
async fn over_the_message_quota_the_channel_is_told_why_and_closed() {
    let stack = common::ready().await;
    published("email_campaigns").await;
    let config = RealtimeConfig {
        messages_per_second: 20,
        ..RealtimeConfig::for_stack(&stack)
    };
    let server = RealtimeServer::start(config).await;
    let user = common::new_user(&stack).await;
    let mut ws = connect(&server).await;
    join_subscribed(&mut ws, &user.token, None).await;
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
}
