//! A Supabase Realtime client for `campaigns watch`: Phoenix channels over a
//! websocket (protocol `vsn=1.0.0`, one JSON object per message), joined to
//! `postgres_changes` on `campaign_live` (one row per campaign, moved at
//! most every 1.5 s by the database) filtered to `user_id=eq.<the user>`,
//! with the user's access token, so Realtime checks every change against the
//! user's RLS. It only says *that* something changed: the watch then re-reads
//! the views through the REST API (Realtime streams tables, never views).
//!
//! The channel counts as subscribed only when the server's `system` message
//! confirms the database subscription. A `system` error, or the server
//! closing the channel (a quota: "Too many messages per second"), is
//! reported with its reason, and the listener tries again later.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};
use crate::settings::{Config, Secret};
use crate::t;

/// The table whose changes the watch listens to.
pub const TABLE: &str = "campaign_live";

/// After the server refused or closed the channel, the first wait before
/// joining again (doubling up to [`MAX_REFUSED_WAIT`]).
pub const REFUSED_WAIT: Duration = Duration::from_secs(10);
pub const MAX_REFUSED_WAIT: Duration = Duration::from_secs(120);

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
    /// The user whose rows the binding asks for (`user_id=eq.<id>`).
    pub user_id: Option<String>,
    pub heartbeat: Duration,
    pub timeout: Duration,
    /// The first wait before joining again after a refusal or a quota close.
    pub refused_wait: Duration,
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
            token: Arc::new(Mutex::new(token.clone())),
            topic: "realtime:mailsync-watch".to_string(),
            user_id: crate::supabase::user::subject(token.expose()),
            heartbeat: HEARTBEAT,
            timeout: Duration::from_secs(5),
            refused_wait: REFUSED_WAIT,
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
    /// The server confirmed the database subscription: changes will now
    /// arrive (re-read: something may have been missed before).
    Subscribed,
    /// A change of one of the user's campaigns.
    Changed,
    /// The socket is gone; the listener is reconnecting.
    Disconnected(String),
    /// The server refused or closed the subscription (a `system` error, a
    /// quota): the listener joins again after `retry_in`.
    Refused { reason: String, retry_in: Duration },
}

/// A joined channel.
pub struct Connection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The server's ids of our `postgres_changes` bindings.
    ids: Vec<u64>,
    next_ref: u64,
    sent_token: String,
}

/// The `phx_join` payload (supabase/realtime-js `RealtimeChannel`).
pub fn join_payload(token: &str, user_id: Option<&str>) -> Value {
    let mut binding = json!({"event": "*", "schema": "public", "table": TABLE});
    if let Some(id) = user_id {
        binding["filter"] = json!(format!("user_id=eq.{id}"));
    }
    json!({
        "config": {
            "broadcast": {"ack": false, "self": false},
            "presence": {"key": ""},
            "postgres_changes": [binding],
            "private": false
        },
        "access_token": token
    })
}

/// Connects and joins; an error when Realtime is not there or refuses.
pub async fn connect(settings: &Settings) -> Result<Connection> {
    let where_ = t!("realtime-at", project = settings.project.as_str());
    let (mut ws, _) = tokio::time::timeout(
        settings.timeout,
        tokio_tungstenite::connect_async(settings.url.as_str()),
    )
    .await
    .map_err(|_| Error::failure(format!("{where_}: {}", t!("realtime-no-answer"))))?
    .map_err(|e| match &e {
        // The server refused the key (or the gateway did): waiting a
        // moment will not help.
        tokio_tungstenite::tungstenite::Error::Http(r)
            if matches!(r.status().as_u16(), 401 | 403) =>
        {
            Error::refused(t!(
                "realtime-error-key",
                place = where_.as_str(),
                reason = describe(&e)
            ))
            .with_hint(t!("realtime-hint-key"))
        }
        _ => Error::failure(format!("{where_}: {}", describe(&e))),
    })?;

    let token = settings.current_token();
    let join = json!({
        "topic": settings.topic,
        "event": "phx_join",
        "payload": join_payload(&token, settings.user_id.as_deref()),
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
        Err(Error::failure(format!(
            "{where_}: {}",
            t!("realtime-closed-before-join")
        )))
    })
    .await
    .map_err(|_| Error::failure(format!("{where_}: {}", t!("realtime-no-join-reply"))))??;

    let payload = &reply["payload"];
    if payload["status"] != "ok" {
        let reason = payload["response"]["reason"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| t!("realtime-join-refused"));
        return Err(Error::refused(format!("{where_}: {reason}")));
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
/// heartbeat, reconnects with backoff when the socket dies, and joins again
/// later when the server refused or closed the subscription. Without a
/// connection, it starts by connecting.
pub async fn listen(
    settings: Settings,
    connection: Option<Connection>,
    events: mpsc::Sender<Event>,
) {
    let mut connection = connection;
    let mut refused_wait = settings.refused_wait;
    loop {
        let mut backoff = Duration::from_millis(500);
        let mut current = loop {
            if let Some(c) = connection.take() {
                break c;
            }
            match connect(&settings).await {
                Ok(c) => break c,
                Err(e) => {
                    let refused = e.kind() == crate::error::ErrorKind::Refused;
                    let wait = if refused { refused_wait } else { backoff };
                    let event = if refused {
                        refused_wait = (refused_wait * 2).min(MAX_REFUSED_WAIT);
                        Event::Refused {
                            reason: e.message().to_string(),
                            retry_in: wait,
                        }
                    } else {
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        Event::Disconnected(e.message().to_string())
                    };
                    if events.send(event).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        };
        let ended = serve(&settings, &mut current, &events, &mut refused_wait).await;
        let Some(ended) = ended else { return };
        let (event, wait) = if ended.refused {
            let wait = refused_wait;
            refused_wait = (refused_wait * 2).min(MAX_REFUSED_WAIT);
            (
                Event::Refused {
                    reason: ended.reason,
                    retry_in: wait,
                },
                wait,
            )
        } else {
            (
                Event::Disconnected(ended.reason),
                Duration::from_millis(500),
            )
        };
        if events.send(event).await.is_err() {
            return;
        }
        tokio::time::sleep(wait).await;
    }
}

/// Why a connection ended.
struct Ended {
    reason: String,
    /// The server refused or closed the subscription (rather than the
    /// socket dying): wait longer before joining again.
    refused: bool,
}

/// One connection's life; `None` when the watch has gone, otherwise why the
/// socket died.
async fn serve(
    settings: &Settings,
    connection: &mut Connection,
    events: &mpsc::Sender<Event>,
    refused_wait: &mut Duration,
) -> Option<Ended> {
    let lost = |reason: &str| {
        Some(Ended {
            reason: reason.to_string(),
            refused: false,
        })
    };
    let mut heartbeat = tokio::time::interval(settings.heartbeat);
    heartbeat.tick().await;
    // A refreshed session is handed to the channel within a second.
    let mut token_check = tokio::time::interval(settings.heartbeat.min(Duration::from_secs(1)));
    token_check.tick().await;
    let mut unanswered: Option<String> = None;
    loop {
        tokio::select! {
            _ = token_check.tick() => {
                let token = settings.current_token();
                if token != connection.sent_token {
                    let r = connection.next_ref.to_string();
                    connection.next_ref += 1;
                    let refresh = json!({"topic": settings.topic, "event": "access_token",
                                         "payload": {"access_token": token}, "ref": r, "join_ref": "1"});
                    if connection.ws.send(Message::Text(refresh.to_string().into())).await.is_err() {
                        return lost(&t!("realtime-connection-lost"));
                    }
                    connection.sent_token = token;
                }
            }
            _ = heartbeat.tick() => {
                if unanswered.is_some() {
                    return lost(&t!("realtime-heartbeat"));
                }
                let r = connection.next_ref.to_string();
                connection.next_ref += 1;
                let beat = json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": r});
                if connection.ws.send(Message::Text(beat.to_string().into())).await.is_err() {
                    return lost(&t!("realtime-connection-lost"));
                }
                unanswered = Some(r);
            }
            message = connection.ws.next() => {
                let message = match message {
                    None => return lost(&t!("realtime-closed-by-server")),
                    Some(Err(e)) => return lost(&describe(&e)),
                    Some(Ok(m)) => m,
                };
                if let Message::Close(frame) = message {
                    // A close with a reason (a quota) is the server's refusal.
                    return match frame.filter(|f| !f.reason.is_empty()) {
                        Some(f) => Some(Ended { reason: format!("Realtime: {}", f.reason), refused: true }),
                        None => lost(&t!("realtime-closed-by-server")),
                    };
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
                    "system" => {
                        let payload = &frame["payload"];
                        let message = payload["message"].as_str().unwrap_or("").to_string();
                        if payload["status"] == "ok" {
                            *refused_wait = settings.refused_wait;
                            if events.send(Event::Subscribed).await.is_err() {
                                return None;
                            }
                        } else if payload["status"] == "error" {
                            // The subscription failed, or a quota was hit:
                            // leave (the server closes the channel anyway)
                            // and join again later.
                            let reason = if message.is_empty() { t!("realtime-subscription-failed") } else { message };
                            let leave = json!({"topic": settings.topic, "event": "phx_leave",
                                               "payload": {}, "ref": connection.next_ref.to_string(), "join_ref": "1"});
                            connection.next_ref += 1;
                            let _ = connection.ws.send(Message::Text(leave.to_string().into())).await;
                            let _ = connection.ws.close(None).await;
                            return Some(Ended { reason: format!("Realtime: {reason}"), refused: true });
                        }
                    }
                    "phx_error" | "phx_close" if frame["topic"] == settings.topic.as_str() => {
                        return Some(Ended {
                            reason: frame["payload"]["reason"].as_str()
                                .map(|r| t!("realtime-channel-closed-because", reason = r))
                                .unwrap_or_else(|| t!("realtime-channel-closed")),
                            refused: true,
                        });
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
        E::Http(response) => t!("realtime-http", status = response.status().to_string()),
        E::Io(io) => io.to_string(),
        E::ConnectionClosed | E::AlreadyClosed => t!("realtime-connection-closed"),
        E::Tls(_) => t!("realtime-tls"),
        E::Url(_) => t!("realtime-url"),
        other => other.to_string(),
    }
}
