//! The Realtime client against an in-test websocket server that speaks the
//! Phoenix frames of Supabase Realtime (the local stack has no Realtime
//! server): the join, heartbeats, changes, token refresh, reconnection, and
//! `campaigns watch` coalescing a burst of changes into one re-read.

// The handshake callback's error type is tungstenite's, not ours.
#![allow(clippy::result_large_err)]

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mailsync::settings::Secret;
use mailsync::supabase::realtime::{self, Event, Settings};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// What the server saw, and how the test drives it.
struct Server {
    port: u16,
    /// Every frame a client sent, with the number of its connection.
    frames: mpsc::UnboundedReceiver<(usize, Value)>,
    /// Request URIs of the websocket handshakes.
    uris: Arc<std::sync::Mutex<Vec<String>>>,
    /// Frames to push to the current connection; `None` drops it.
    push: mpsc::UnboundedSender<Option<Value>>,
    /// Whether heartbeats get a reply.
    answer_heartbeats: Arc<std::sync::atomic::AtomicBool>,
}

/// A Realtime stand-in; with `upstream`, every other HTTP request is
/// passed to that port (the local stack), counting reads of
/// `campaign_analytics`.
async fn server(join_ok: bool, upstream: Option<(u16, Arc<AtomicUsize>)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (frames_tx, frames) = mpsc::unbounded_channel();
    let (push, push_rx) = mpsc::unbounded_channel::<Option<Value>>();
    let uris = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answer = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let connections = Arc::new(AtomicUsize::new(0));
    let push_rx = Arc::new(tokio::sync::Mutex::new(push_rx));
    let (uris2, answer2, conns2) = (uris.clone(), answer.clone(), connections.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 64];
            let n = stream.peek(&mut head).await.unwrap_or(0);
            let is_ws = head[..n].starts_with(b"GET /realtime/v1/websocket");
            if !is_ws {
                if let Some((up, count)) = &upstream {
                    tokio::spawn(pass_through(stream, *up, count.clone()));
                }
                continue;
            }
            let n = conns2.fetch_add(1, Ordering::SeqCst) + 1;
            let uris = uris2.clone();
            let (frames_tx, answer, push_rx) =
                (frames_tx.clone(), answer2.clone(), push_rx.clone());
            tokio::spawn(async move {
                let ws = tokio_tungstenite::accept_hdr_async(
                    stream,
                    move |req: &Request, resp: Response| {
                        uris.lock().unwrap().push(req.uri().to_string());
                        Ok(resp)
                    },
                )
                .await
                .unwrap();
                let (mut sink, mut source) = ws.split();
                // One connection at a time, as a client keeps one socket.
                let mut push_rx = push_rx.lock().await;
                loop {
                    tokio::select! {
                        message = source.next() => {
                            let Some(Ok(Message::Text(text))) = message else { break };
                            let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                            let _ = frames_tx.send((n, frame.clone()));
                            let reply = match frame["event"].as_str() {
                                Some("phx_join") if join_ok => Some(json!({"status": "ok", "response": {"postgres_changes": [
                                    {"id": 11, "event": "*", "schema": "public", "table": "emails_sent"},
                                    {"id": 12, "event": "*", "schema": "public", "table": "email_campaigns"}]}})),
                                Some("phx_join") => Some(json!({"status": "error", "response": {"reason": "Unauthorized: invalid token"}})),
                                Some("heartbeat") if answer.load(Ordering::SeqCst) => Some(json!({"status": "ok", "response": {}})),
                                _ => None,
                            };
                            if let Some(payload) = reply {
                                let out = json!({"topic": frame["topic"], "event": "phx_reply", "payload": payload,
                                                 "ref": frame["ref"], "join_ref": frame["join_ref"]});
                                if sink.send(Message::Text(out.to_string().into())).await.is_err() { break; }
                                if frame["event"] == "phx_join" && join_ok {
                                    let system = json!({"topic": frame["topic"], "event": "system",
                                        "payload": {"status": "ok", "message": "Subscribed to PostgreSQL", "extension": "postgres_changes"}, "ref": null});
                                    let _ = sink.send(Message::Text(system.to_string().into())).await;
                                }
                            }
                        }
                        pushed = push_rx.recv() => match pushed {
                            Some(Some(frame)) => { if sink.send(Message::Text(frame.to_string().into())).await.is_err() { break; } }
                            _ => break,
                        }
                    }
                }
            });
        }
    });
    Server {
        port,
        frames,
        uris,
        push,
        answer_heartbeats: answer,
    }
}

async fn pass_through(mut client: TcpStream, upstream: u16, reads: Arc<AtomicUsize>) {
    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let up = async {
        let mut buf = vec![0u8; 16384];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            reads.fetch_add(
                text.matches("GET /rest/v1/campaign_analytics").count(),
                Ordering::SeqCst,
            );
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    tokio::join!(up, down);
}

fn settings(port: u16, token: &str) -> Settings {
    let mut s = Settings::new(
        format!("ws://127.0.0.1:{port}/realtime/v1/websocket?apikey=anon-key-value&vsn=1.0.0"),
        format!("http://127.0.0.1:{port}"),
        Secret::new(token),
    );
    s.heartbeat = Duration::from_millis(200);
    s.timeout = Duration::from_secs(2);
    s
}

async fn next_frame(server: &mut Server, event: &str) -> (usize, Value) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (n, frame) = server.frames.recv().await.unwrap();
            if frame["event"] == event {
                return (n, frame);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {event} frame"))
}

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event from the listener")
        .expect("the listener is alive")
}

fn change(ids: &[u64]) -> Value {
    json!({"topic": "realtime:mailsync-watch", "event": "postgres_changes", "ref": null, "payload": {
        "ids": ids, "data": {"schema": "public", "table": "emails_sent", "commit_timestamp": "2026-11-25T10:00:00Z",
        "type": "UPDATE", "columns": [{"name": "status", "type": "text"}], "record": {"status": "delivered"},
        "old_record": {"id": "x"}, "errors": null}}})
}

#[tokio::test]
async fn joins_with_the_documented_payload_and_reports_changes_for_its_bindings() {
    let mut server = server(true, None).await;
    let settings = settings(server.port, "user-jwt-1");
    let connection = realtime::connect(&settings).await.unwrap();
    let (_, join) = next_frame(&mut server, "phx_join").await;
    assert_eq!(join["topic"], "realtime:mailsync-watch");
    assert_eq!(join["ref"], "1");
    assert_eq!(join["payload"]["access_token"], "user-jwt-1");
    assert_eq!(
        join["payload"]["config"]["postgres_changes"],
        json!([{"event": "*", "schema": "public", "table": "campaign_live"}])
    );
    assert_eq!(join["payload"]["config"]["private"], false);
    let uri = server.uris.lock().unwrap()[0].clone();
    assert!(
        uri.starts_with("/realtime/v1/websocket?")
            && uri.contains("apikey=anon-key-value")
            && uri.contains("vsn=1.0.0"),
        "{uri}"
    );

    let (tx, mut events) = mpsc::channel(16);
    tokio::spawn(realtime::listen(settings, Some(connection), tx));
    // Subscribed only once the server's `system` message confirms it.
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    // A change for another binding (id 99) is not ours: the next event is
    // what follows it (a second confirmation), then our change (id 11).
    server.push.send(Some(change(&[99]))).unwrap();
    server
        .push
        .send(Some(json!({"topic": "realtime:mailsync-watch", "event": "system", "ref": null,
            "payload": {"status": "ok", "message": "Subscribed to PostgreSQL", "extension": "postgres_changes"}})))
        .unwrap();
    server.push.send(Some(change(&[11]))).unwrap();
    assert_eq!(
        next_event(&mut events).await,
        Event::Subscribed,
        "a change for another binding (id 99) was taken as ours"
    );
    assert_eq!(next_event(&mut events).await, Event::Changed);
}

#[tokio::test]
async fn heartbeats_keep_the_socket_and_a_silent_server_is_left_and_rejoined() {
    let mut server = server(true, None).await;
    let settings = settings(server.port, "t");
    let connection = realtime::connect(&settings).await.unwrap();
    let (tx, mut events) = mpsc::channel(16);
    tokio::spawn(realtime::listen(settings, Some(connection), tx));
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    for _ in 0..3 {
        let (n, beat) = next_frame(&mut server, "heartbeat").await;
        assert_eq!(
            (n, beat["topic"].as_str(), beat["payload"].clone()),
            (1, Some("phoenix"), json!({}))
        );
    }
    server.answer_heartbeats.store(false, Ordering::SeqCst);
    match next_event(&mut events).await {
        Event::Disconnected(reason) => assert!(reason.contains("heartbeat"), "{reason}"),
        other => panic!("{other:?}"),
    }
    server.answer_heartbeats.store(true, Ordering::SeqCst);
    server.push.send(None).unwrap();
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    let (n, _) = next_frame(&mut server, "phx_join").await;
    assert!(n >= 2, "joined again on a new socket");
}

#[tokio::test]
async fn a_dropped_connection_reconnects_and_a_refreshed_token_is_sent() {
    let mut server = server(true, None).await;
    let settings = settings(server.port, "old-token");
    let token = settings.token.clone();
    let connection = realtime::connect(&settings).await.unwrap();
    let (tx, mut events) = mpsc::channel(16);
    tokio::spawn(realtime::listen(settings, Some(connection), tx));
    assert_eq!(next_event(&mut events).await, Event::Subscribed);

    *token.lock().unwrap() = Secret::new("new-token");
    let (_, refresh) = next_frame(&mut server, "access_token").await;
    assert_eq!(refresh["topic"], "realtime:mailsync-watch");
    assert_eq!(refresh["payload"]["access_token"], "new-token");

    server.push.send(None).unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Event::Disconnected(_)
    ));
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    let (n, join) = next_frame(&mut server, "phx_join").await;
    assert_eq!(n, 2);
    assert_eq!(
        join["payload"]["access_token"], "new-token",
        "rejoins with the current token"
    );
    server.push.send(Some(change(&[12]))).unwrap();
    assert_eq!(next_event(&mut events).await, Event::Changed);
}

#[tokio::test]
async fn a_refused_join_is_an_error_naming_the_reason() {
    let server = server(false, None).await;
    let err = realtime::connect(&settings(server.port, "bad"))
        .await
        .err()
        .unwrap();
    assert!(
        err.message().contains("Unauthorized: invalid token"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains("anon-key-value"));
}

/// The watch's next `--json` line, within `within`.
async fn next_line(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    within: Duration,
) -> Value {
    let line = tokio::time::timeout(within, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no refresh within {within:?} (the watch's trace is on stderr)"))
        .unwrap()
        .expect("the watch is running");
    serde_json::from_str(&line).unwrap()
}

/// The whole watch: Realtime from the in-test server, the views from the
/// local stack; a burst of changes becomes one re-read.
#[tokio::test]
async fn watch_coalesces_a_burst_of_changes_into_one_re_read() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let reads = Arc::new(AtomicUsize::new(0));
    let api = url::Url::parse(&stack.url).unwrap().port().unwrap();
    let mut server = server(true, Some((api, reads.clone()))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::from(common::command_for(
        &format!("http://127.0.0.1:{}", server.port),
        &stack.anon_key,
        dir.path(),
    ))
    // `-v` traces each REST call and its time on stderr, shown on a failure.
    .args(["-v", "--json", "campaigns", "watch", "--mode", "realtime"])
    .env("MAILSYNC_ACCESS_TOKEN", &user.token)
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .unwrap();
    let (_, join) = next_frame(&mut server, "phx_join").await;
    assert_eq!(join["payload"]["access_token"], user.token.as_str());
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The first read, then the one the confirmed subscription asks for:
    // start-up, not what is measured, so a loaded machine gets 30 s for them.
    let first = next_line(&mut lines, Duration::from_secs(30)).await;
    assert_eq!(first["sending"], json!([]));
    next_line(&mut lines, Duration::from_secs(30)).await;
    let before = reads.load(Ordering::SeqCst);
    let burst = std::time::Instant::now();
    // A burst spread over about 200 ms (a burst that arrives at once is one
    // event-loop turn anyway).
    let mut last_change = burst;
    for _ in 0..20 {
        last_change = std::time::Instant::now();
        server.push.send(Some(change(&[11]))).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The re-reads the burst caused, until the trailing one: the watch reads
    // once more 2 s after the last change it got (so at least 2 s after the
    // last one was sent), to show what the database's 1.5 s limit held back.
    // Each `next_line` waits at most 10 s.
    let mut coalesced = 0;
    loop {
        next_line(&mut lines, Duration::from_secs(10)).await;
        if last_change.elapsed() >= Duration::from_secs(2) {
            break;
        }
        coalesced += 1;
    }
    // Each refresh reads campaign_analytics twice (sending, sent).
    assert_eq!(
        reads.load(Ordering::SeqCst) - before,
        (coalesced + 1) * 2,
        "one read per refresh"
    );
    // At most one re-read per 250 ms of burst, plus the first one: however
    // long the burst took on this machine, 20 changes are far fewer reads.
    let most = (last_change - burst).as_millis() as usize / 250 + 2;
    assert!(
        (1..=most).contains(&coalesced),
        "20 changes over {:?} became {coalesced} re-reads before the trailing one (at most {most})",
        last_change - burst
    );
    child.kill().await.ok();
}

#[tokio::test]
async fn a_system_error_or_a_quota_close_is_a_refusal_with_its_reason_and_a_later_rejoin() {
    let mut server = server(true, None).await;
    let mut settings = settings(server.port, "t");
    settings.refused_wait = Duration::from_millis(300);
    let connection = realtime::connect(&settings).await.unwrap();
    let (tx, mut events) = mpsc::channel(16);
    tokio::spawn(realtime::listen(settings, Some(connection), tx));
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    server
        .push
        .send(Some(json!({"topic": "realtime:mailsync-watch", "event": "system", "ref": null,
            "payload": {"extension": "system", "status": "error", "message": "Too many messages per second",
                        "channel": "mailsync-watch"}})))
        .unwrap();
    match next_event(&mut events).await {
        Event::Refused { reason, retry_in } => {
            assert!(reason.contains("Too many messages per second"), "{reason}");
            assert_eq!(retry_in, Duration::from_millis(300));
        }
        other => panic!("{other:?}"),
    }
    // It joins again later, and is subscribed again.
    assert_eq!(next_event(&mut events).await, Event::Subscribed);
    let (n, _) = next_frame(&mut server, "phx_leave").await;
    assert_eq!(n, 1, "left the refused channel");
}
