//! A Supabase Realtime client for `campaigns watch`: Phoenix channels over a
//! websocket (protocol `vsn=1.0.0`, one JSON object per message), joined to
//! `postgres_changes` on `emails_sent` and `email_campaigns` with the user's
//! access token, so Realtime checks every change against the user's RLS.
//! It only says *that* something changed: the watch then re-reads the views
//! through the REST API (Realtime streams tables, never views).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::{Config, Secret};
use crate::error::{Error, Result};

/// The tables whose changes the watch listens to.
pub const TABLES: [&str; 2] = ["emails_sent", "email_campaigns"];

/// Supabase closes a socket that has not sent a heartbeat for 30 s+.
pub const HEARTBEAT: Duration = Duration::from_secs(25);

/// How to reach Realtime and as whom.
#[derive(Clone)]
pub struct Settings {
    /// `ws(s)://…/realtime/v1/websocket?apikey=…&vsn=1.0.0` (holds the key:
    /// never printed).
    url: String,
    /// The project, for messages.
    pub project: String,
    /// The user's access token; replace it when the session refreshes and
    /// the channel is told.
    pub token: Arc<Mutex<Secret>>,
    pub topic: String,
    pub heartbeat: Duration,
    pub timeout: Duration,
}

impl Settings {
    pub fn for_project(config: &Config, token: &Secret) -> Result<Self> {
        let base = config.realtime_url();
        let ws = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            base
        };
        let key = config.anon_key()?;
        Ok(Self::new(
            format!(
                "{ws}/websocket?apikey={}&vsn=1.0.0",
                url::form_urlencoded::byte_serialize(key.expose().as_bytes()).collect::<String>()
            ),
            config.project_display(),
            token.clone(),
        ))
    }

    pub fn new(url: String, project: String, token: Secret) -> Self {
        Self {
            url,
            project,
            token: Arc::new(Mutex::new(token)),
            topic: "realtime:mailsync-watch".to_string(),
            heartbeat: HEARTBEAT,
            timeout: Duration::from_secs(5),
        }
    }

    fn current_token(&self) -> String {
        self.token
            .lock()
            .map(|t| t.expose().to_string())
            .unwrap_or_default()
    }
}

/// What the watch hears from the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// (Re)joined: re-read, something may have been missed.
    Connected,
    /// A change on one of the tables.
    Changed,
    /// The socket is gone; the listener is reconnecting.
    Disconnected(String),
}

/// A joined channel.
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The server's ids of our `postgres_changes` bindings.
    ids: Vec<u64>,
    next_ref: u64,
    sent_token: String,
}

/// The `phx_join` payload (SUPABASE.md, realtime-js `RealtimeChannel`).
pub fn join_payload(token: &str) -> Value {
    json!({
        "config": {
            "broadcast": {"ack": false, "self": false},
            "presence": {"key": ""},
            "postgres_changes": TABLES
                .iter()
                .map(|t| json!({"event": "*", "schema": "public", "table": t}))
                .collect::<Vec<_>>(),
            "private": false
        },
        "access_token": token
    })
}

/// Connects and joins; an error when Realtime is not there or refuses.
pub async fn connect(settings: &Settings) -> Result<Connection> {
    let where_ = format!("Realtime at {}/realtime/v1", settings.project);
    let (mut ws, _) = tokio::time::timeout(
        settings.timeout,
        tokio_tungstenite::connect_async(settings.url.as_str()),
    )
    .await
    .map_err(|_| Error::failure(format!("{where_}: no answer")))?
    .map_err(|e| Error::failure(format!("{where_}: {}", describe(&e))))?;

    let token = settings.current_token();
    let join = json!({
        "topic": settings.topic,
        "event": "phx_join",
        "payload": join_payload(&token),
        "ref": "1",
        "join_ref": "1"
    });
    ws.send(Message::Text(join.to_string().into()))
        .await
        .map_err(|e| Error::failure(format!("{where_}: {}", describe(&e))))?;

    let reply = tokio::time::timeout(settings.timeout, async {
        while let Some(message) = ws.next().await {
            let message =
                message.map_err(|e| Error::failure(format!("{where_}: {}", describe(&e))))?;
            let Some(frame) = parse(&message) else {
                continue;
            };
            if frame["event"] == "phx_reply" && frame["ref"] == "1" {
                return Ok(frame);
            }
        }
        Err(Error::failure(format!("{where_}: closed before joining")))
    })
    .await
    .map_err(|_| Error::failure(format!("{where_}: no reply to the join")))??;

    let payload = &reply["payload"];
    if payload["status"] != "ok" {
        let reason = payload["response"]["reason"]
            .as_str()
            .unwrap_or("join refused");
        return Err(Error::failure(format!("{where_}: {reason}")));
    }
    let ids = payload["response"]["postgres_changes"]
        .as_array()
        .map(|bindings| bindings.iter().filter_map(|b| b["id"].as_u64()).collect())
        .unwrap_or_default();
    Ok(Connection {
        ws,
        ids,
        next_ref: 2,
        sent_token: token,
    })
}

/// Listens until the receiver goes away: reports changes, keeps the
/// heartbeat, reconnects with backoff when the socket dies.
pub async fn listen(settings: Settings, mut connection: Connection, events: mpsc::Sender<Event>) {
    loop {
        let reason = serve(&settings, &mut connection, &events).await;
        let Some(reason) = reason else { return };
        if events.send(Event::Disconnected(reason)).await.is_err() {
            return;
        }
        let mut backoff = Duration::from_millis(500);
        connection = loop {
            tokio::time::sleep(backoff).await;
            match connect(&settings).await {
                Ok(c) => break c,
                Err(e) => {
                    if events
                        .send(Event::Disconnected(e.message().to_string()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        };
        if events.send(Event::Connected).await.is_err() {
            return;
        }
    }
}

/// One connection's life; `None` when the watch has gone, otherwise why the
/// socket died.
async fn serve(
    settings: &Settings,
    connection: &mut Connection,
    events: &mpsc::Sender<Event>,
) -> Option<String> {
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.tick().await;
    let mut unanswered: Option<String> = None;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                if unanswered.is_some() {
                    return Some("heartbeat not answered".into());
                }
                let r = connection.next_ref.to_string();
                connection.next_ref += 1;
                let beat = json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": r});
                if connection.ws.send(Message::Text(beat.to_string().into())).await.is_err() {
                    return Some("connection lost".into());
                }
                unanswered = Some(r);
                // A refreshed session: tell the channel.
                let token = settings.current_token();
                if token != connection.sent_token {
                    let r = connection.next_ref.to_string();
                    connection.next_ref += 1;
                    let refresh = json!({"topic": settings.topic, "event": "access_token",
                                         "payload": {"access_token": token}, "ref": r, "join_ref": "1"});
                    if connection.ws.send(Message::Text(refresh.to_string().into())).await.is_err() {
                        return Some("connection lost".into());
                    }
                    connection.sent_token = token;
                }
            }
            message = connection.ws.next() => {
                let message = match message {
                    None => return Some("closed by the server".into()),
                    Some(Err(e)) => return Some(describe(&e)),
                    Some(Ok(m)) => m,
                };
                if let Message::Close(_) = message {
                    return Some("closed by the server".into());
                }
                let Some(frame) = parse(&message) else { continue };
                match frame["event"].as_str().unwrap_or("") {
                    "phx_reply" if unanswered.as_deref().is_some_and(|r| frame["ref"] == r) => {
                        unanswered = None;
                    }
                    "postgres_changes" => {
                        let ids: Vec<u64> = frame["payload"]["ids"]
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_u64).collect())
                            .unwrap_or_default();
                        let ours = connection.ids.is_empty()
                            || ids.is_empty()
                            || ids.iter().any(|id| connection.ids.contains(id));
                        if ours && events.send(Event::Changed).await.is_err() {
                            return None;
                        }
                    }
                    "phx_error" | "phx_close" if frame["topic"] == settings.topic.as_str() => {
                        return Some("the channel was closed by the server".into());
                    }
                    _ => {}
                }
            }
        }
        if events.is_closed() {
            return None;
        }
    }
}

fn parse(message: &Message) -> Option<Value> {
    match message {
        Message::Text(text) => serde_json::from_str(text.as_str()).ok(),
        _ => None,
    }
}

/// A websocket error without the URL (it carries the key).
fn describe(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(response) => format!("the server answered HTTP {}", response.status()),
        E::Io(io) => io.to_string(),
        E::ConnectionClosed | E::AlreadyClosed => "connection closed".into(),
        E::Tls(_) => "TLS error".into(),
        E::Url(_) => "invalid Realtime URL".into(),
        other => other.to_string(),
    }
}
