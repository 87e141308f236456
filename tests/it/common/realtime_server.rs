//! An in-test Supabase Realtime server (the local stack has none), as strict
//! as hosted Realtime (supabase/realtime, `lib/realtime_web/channels/`
//! `user_socket.ex` and `realtime_channel.ex`; Supabase's "Realtime limits"
//! guide): Phoenix v1 JSON frames on
//! `/realtime/v1/websocket`, Postgres Changes read from the stack's real
//! write-ahead log (logical decoding, `test_decoding`) for the tables of the
//! `supabase_realtime` publication, each change authorised against RLS once
//! per subscriber (DELETE events are not: they carry only the primary key, to
//! every subscriber of the table), a per-project messages-per-second and
//! joins-per-second quota, and the real server's `system` messages:
//!
//! - after the join reply, `{"extension":"postgres_changes","status":"ok",
//!   "message":"Subscribed to PostgreSQL"}` (or `"status":"error"` when the
//!   subscription fails, e.g. a table outside the publication), and again
//!   after each new `access_token` the channel accepts (the real server
//!   subscribes anew with the new claims);
//! - over the message quota, `{"extension":"system","status":"error",
//!   "message":"Too many messages per second"}` on every channel, then
//!   `phx_close`;
//! - while the "project connection initialises", the first joins are refused
//!   with `InitializingProjectConnection: Realtime is initializing the
//!   project connection`.
//!
//! It also plays the real server's failures, to test the client's answer to
//! each:
//!
//! - the websocket handshake is refused (HTTP 403, as Phoenix answers a
//!   refused `connect`) when the `apikey` is not a valid, unexpired JWT of
//!   the project carrying `role` and `exp` (any role: the anon key, the
//!   service key, or a user's own token);
//! - a join with an invalid or expired access token is refused with the
//!   server's code and words (`InvalidJWTToken: Token has expired 3 seconds
//!   ago`, `MalformedJWT: The token provided is not a valid JWT`, ...); a
//!   channel whose token expires is told so in a `system` error and closed,
//!   and so is one that sends an invalid `access_token`, in the words the
//!   real server's `shutdown_response` uses there (no code: `The token
//!   provided is not a valid JWT`); an `access_token` equal to the channel's
//!   own is ignored;
//! - the first `silent_joins` joins get no reply at all;
//! - on demand ([`RealtimeServer::fail`]): `phx_error`, `phx_close`, a
//!   WebSocket Close frame, a `postgres_changes` `system` error.
//!
//! Every other HTTP request is passed through to the local stack, so the
//! server's URL works as `SUPABASE_URL` for the whole tool. The doc comments
//! below describe the API.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_postgres::NoTls;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use super::Stack;

/// How the server behaves. `RealtimeConfig::for_stack(&stack)` gives the
/// Free plan's quotas (100 messages and 100 joins per second).
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Messages pushed to clients per second, over the whole project.
    pub messages_per_second: usize,
    /// Channel joins per second, over the whole project.
    pub joins_per_second: usize,
    /// The first N joins fail transiently (the project connection is
    /// initialising); later joins succeed.
    pub transient_join_failures: usize,
    /// Between the join reply and the `system` message that confirms (or
    /// refuses) the Postgres subscription.
    pub subscribe_delay: Duration,
    /// When set, every Postgres subscription fails with this message.
    pub subscription_error: Option<String>,
    /// The first N joins get no reply (after the transient failures).
    pub silent_joins: usize,
    /// Refuse the websocket handshake (HTTP 403) unless `apikey` is a valid
    /// JWT of the project with `role` and `exp`, as the real server does.
    pub verify_apikey: bool,
    /// How often joined channels' tokens are checked for expiry.
    pub token_check_interval: Duration,
    /// How often the write-ahead log is read.
    pub poll_interval: Duration,
    pub jwt_secret: String,
    /// The database whose changes are streamed (the stack's).
    pub db_url: String,
    /// Where other HTTP requests go (`http://127.0.0.1:PORT`, the stack's API).
    pub upstream: Option<String>,
}

impl RealtimeConfig {
    pub fn for_stack(stack: &Stack) -> Self {
        Self {
            messages_per_second: 100,
            joins_per_second: 100,
            transient_join_failures: 0,
            subscribe_delay: Duration::from_millis(50),
            subscription_error: None,
            silent_joins: 0,
            verify_apikey: true,
            token_check_interval: Duration::from_millis(500),
            poll_interval: Duration::from_millis(50),
            jwt_secret: stack.jwt_secret.clone(),
            db_url: stack.db_url.clone(),
            upstream: Some(stack.url.clone()),
        }
    }
}

/// One message the server pushed to a client.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Since the server started.
    pub at: Duration,
    /// The channel topic (`realtime:<name>`).
    pub topic: String,
    /// `postgres_changes` or `system`.
    pub event: String,
    /// The payload as sent.
    pub payload: Value,
}

/// A change read from the write-ahead log.
#[derive(Debug, Clone)]
pub struct Change {
    pub schema: String,
    pub table: String,
    /// INSERT, UPDATE or DELETE.
    pub kind: String,
    pub columns: Vec<(String, String)>,
    pub record: Map<String, Value>,
    pub old_record: Map<String, Value>,
    pub commit_timestamp: String,
    /// When the server read it, since it started.
    pub read_at: Duration,
    /// Where its transaction committed in the write-ahead log.
    pub commit_lsn: u64,
}

/// A failure the server plays on demand, on every joined channel.
#[derive(Debug, Clone)]
pub enum Fault {
    /// `phx_error` (the channel process crashed), and the channel is gone.
    PhxError,
    /// `phx_close` with no reason, and the channel is gone.
    PhxClose,
    /// A WebSocket Close frame with this code and reason; the socket ends.
    CloseFrame(u16, String),
    /// A `postgres_changes` `system` error (the database subscription
    /// failed); the channel stays joined but gets no more changes.
    SubscriptionError(String),
}

/// An `access_token` message a channel sent.
#[derive(Debug, Clone)]
pub struct TokenRefresh {
    pub at: Duration,
    pub topic: String,
    pub token: String,
    /// Accepted, or the reason it was refused.
    pub outcome: Result<(), String>,
}

#[derive(Default)]
struct Stats {
    /// When each websocket handshake arrived (accepted or refused), since
    /// the server started.
    handshakes: Vec<(Duration, bool)>,
    token_refreshes: Vec<TokenRefresh>,
    silent_joins: usize,
    deliveries: Vec<Delivery>,
    changes: Vec<Change>,
    joins: usize,
    refused_joins: usize,
    quota_closes: usize,
}

struct Binding {
    id: u64,
    event: String,
    schema: String,
    table: String,
    filter: Option<(String, String, String)>,
}

struct Channel {
    conn: usize,
    topic: String,
    join_ref: Value,
    bindings: Vec<Binding>,
    claims: Value,
    /// The token the claims come from.
    token: String,
    subscribed: bool,
    /// Changes committed before the subscription are not sent.
    since_lsn: u64,
    out: mpsc::UnboundedSender<Outgoing>,
}

/// `16/B374D848` as a number.
fn parse_lsn(text: &str) -> u64 {
    let (hi, lo) = text.split_once('/').unwrap_or(("0", "0"));
    (u64::from_str_radix(hi, 16).unwrap_or(0) << 32) | u64::from_str_radix(lo, 16).unwrap_or(0)
}

enum Outgoing {
    Frame(Value),
    Close,
    CloseWith(u16, String),
}

struct Shared {
    config: RealtimeConfig,
    started: Instant,
    channels: Mutex<Vec<Channel>>,
    stats: Mutex<Stats>,
    sent_window: Mutex<VecDeque<Instant>>,
    join_window: Mutex<VecDeque<Instant>>,
    joins_seen: AtomicUsize,
    silent_seen: AtomicUsize,
    connections: Mutex<Vec<mpsc::UnboundedSender<Outgoing>>>,
    /// Websockets accepted and not yet closed by either side.
    open_sockets: AtomicUsize,
}

/// A running server; stops when dropped (its tasks end with the test's runtime).
pub struct RealtimeServer {
    pub port: u16,
    shared: Arc<Shared>,
}

impl RealtimeServer {
    /// Binds a free port, opens a logical replication slot on the stack's
    /// database (changes are streamed from this moment) and serves.
    pub async fn start(config: RealtimeConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            config,
            started: Instant::now(),
            channels: Mutex::new(Vec::new()),
            stats: Mutex::new(Stats::default()),
            sent_window: Mutex::new(VecDeque::new()),
            join_window: Mutex::new(VecDeque::new()),
            joins_seen: AtomicUsize::new(0),
            silent_seen: AtomicUsize::new(0),
            connections: Mutex::new(Vec::new()),
            open_sockets: AtomicUsize::new(0),
        });
        start_wal_reader(shared.clone()).await;
        start_token_checker(shared.clone());
        let accept = shared.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((stream, _)) = listener.accept().await {
                let mut head = [0u8; 64];
                let len = stream.peek(&mut head).await.unwrap_or(0);
                if head[..len].starts_with(b"GET /realtime/v1/websocket") {
                    n += 1;
                    tokio::spawn(serve_socket(accept.clone(), stream, n));
                } else if let Some(upstream) = accept.config.upstream.clone() {
                    tokio::spawn(pass_through(stream, upstream));
                }
            }
        });
        Self { port, shared }
    }

    /// `http://127.0.0.1:PORT`: use it as `SUPABASE_URL` (REST and Auth
    /// requests are passed to the stack).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:PORT/realtime/v1/websocket?apikey=KEY&vsn=1.0.0`.
    pub fn websocket_url(&self, apikey: &str) -> String {
        format!(
            "ws://127.0.0.1:{}/realtime/v1/websocket?apikey={apikey}&vsn=1.0.0",
            self.port
        )
    }

    /// Every message pushed to a client so far (postgres_changes and system).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.stats.lock().unwrap().deliveries.clone()
    }

    /// Every change of a published table read from the log so far.
    pub fn changes(&self) -> Vec<Change> {
        self.shared.stats.lock().unwrap().changes.clone()
    }

    /// Joins answered `ok`, joins refused.
    pub fn joins(&self) -> (usize, usize) {
        let s = self.shared.stats.lock().unwrap();
        (s.joins, s.refused_joins)
    }

    /// Channels closed for the message quota.
    pub fn quota_closes(&self) -> usize {
        self.shared.stats.lock().unwrap().quota_closes
    }

    /// Channels currently joined and subscribed.
    pub fn subscribed_channels(&self) -> usize {
        self.shared
            .channels
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.subscribed)
            .count()
    }

    /// The most postgres_changes messages pushed within any one second.
    pub fn peak_messages_per_second(&self) -> usize {
        let times: Vec<Duration> = self
            .deliveries()
            .iter()
            .filter(|d| d.event == "postgres_changes")
            .map(|d| d.at)
            .collect();
        let mut peak = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= Duration::from_secs(1) {
                start += 1;
            }
            peak = peak.max(end - start + 1);
        }
        peak
    }

    /// Websocket handshakes so far: when each arrived, and whether it was
    /// accepted.
    pub fn handshakes(&self) -> Vec<(Duration, bool)> {
        self.shared.stats.lock().unwrap().handshakes.clone()
    }

    /// Every `access_token` message received, with its outcome.
    pub fn token_refreshes(&self) -> Vec<TokenRefresh> {
        self.shared.stats.lock().unwrap().token_refreshes.clone()
    }

    /// Websockets open now: a client that leaves a socket closes it.
    pub fn open_sockets(&self) -> usize {
        self.shared.open_sockets.load(Ordering::SeqCst)
    }

    /// Joins left without a reply.
    pub fn silent_joins(&self) -> usize {
        self.shared.stats.lock().unwrap().silent_joins
    }

    /// The claims of the joined channels (the token each now acts with).
    pub fn channel_claims(&self) -> Vec<Value> {
        self.shared
            .channels
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.claims.clone())
            .collect()
    }

    /// Plays a failure on every joined channel (see [`Fault`]).
    pub fn fail(&self, fault: Fault) {
        let mut channels = self.shared.channels.lock().unwrap();
        match fault {
            Fault::PhxError | Fault::PhxClose => {
                let event = if matches!(fault, Fault::PhxError) {
                    "phx_error"
                } else {
                    "phx_close"
                };
                for c in channels.iter() {
                    let _ = c
                        .out
                        .send(Outgoing::Frame(json!({"topic": c.topic, "event": event,
                        "payload": {}, "ref": c.join_ref, "join_ref": c.join_ref})));
                }
                channels.clear();
            }
            Fault::CloseFrame(code, reason) => {
                for c in channels.iter() {
                    let _ = c.out.send(Outgoing::CloseWith(code, reason.clone()));
                }
                channels.clear();
            }
            Fault::SubscriptionError(message) => {
                for c in channels.iter_mut() {
                    c.subscribed = false;
                    let payload = system_payload("postgres_changes", "error", &message, &c.topic);
                    push(&self.shared, c, "system", payload);
                }
            }
        }
    }

    /// Drops every websocket connection (the client should reconnect).
    pub fn drop_connections(&self) {
        for tx in self.shared.connections.lock().unwrap().drain(..) {
            let _ = tx.send(Outgoing::Close);
        }
        self.shared.channels.lock().unwrap().clear();
    }

    /// Pushes a `system` message to every joined channel, as the server does
    /// for an error it reports without closing.
    pub fn push_system(&self, extension: &str, status: &str, message: &str) {
        let channels = self.shared.channels.lock().unwrap();
        for c in channels.iter() {
            let payload = system_payload(extension, status, message, &c.topic);
            push(&self.shared, c, "system", payload);
        }
    }
}

fn system_payload(extension: &str, status: &str, message: &str, topic: &str) -> Value {
    json!({"extension": extension, "status": status, "message": message,
           "channel": topic.strip_prefix("realtime:").unwrap_or(topic)})
}

/// Sends a frame on a channel and records it.
fn push(shared: &Shared, channel: &Channel, event: &str, payload: Value) {
    let frame = json!({"topic": channel.topic, "event": event, "payload": payload, "ref": null});
    if channel.out.send(Outgoing::Frame(frame)).is_ok() {
        shared.stats.lock().unwrap().deliveries.push(Delivery {
            at: shared.started.elapsed(),
            topic: channel.topic.clone(),
            event: event.to_string(),
            payload,
        });
    }
}

/// Counts one event in a one-second sliding window; false when over `limit`.
fn within_quota(window: &Mutex<VecDeque<Instant>>, limit: usize) -> bool {
    let now = Instant::now();
    let mut w = window.lock().unwrap();
    while w
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        w.pop_front();
    }
    if w.len() >= limit {
        return false;
    }
    w.push_back(now);
    true
}

/// Why the server refuses a token, as `ChannelsAuthorization.authorize_conn`
/// and `confirm_token` find it: the signature first, then the claims it
/// requires (`role` and `exp`), then the expiry, with no leeway.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenRefusal {
    Malformed,
    Signature,
    MissingClaims,
    /// Expired this many seconds ago.
    Expired(i64),
}

impl TokenRefusal {
    /// The reason of a refused join: the server's code, then its words.
    pub fn join_reason(&self) -> String {
        match self {
            Self::Malformed => "MalformedJWT: The token provided is not a valid JWT".into(),
            Self::Signature => "JwtSignatureError: Failed to validate JWT signature".into(),
            Self::MissingClaims => {
                "InvalidJWTToken: Fields `role` and `exp` are required in JWT".into()
            }
            Self::Expired(ago) => format!("InvalidJWTToken: Token has expired {ago} seconds ago"),
        }
    }

    /// The `system` message closing a channel whose new `access_token` is
    /// refused: the words alone, and for a bad signature the error term as
    /// the server prints it (`inspect(:signature_error)`).
    pub fn shutdown_reason(&self) -> String {
        match self {
            Self::Malformed => "The token provided is not a valid JWT".into(),
            Self::Signature => ":signature_error".into(),
            Self::MissingClaims => "Fields `role` and `exp` are required in JWT".into(),
            Self::Expired(ago) => format!("Token has expired {ago} seconds ago"),
        }
    }
}

fn verify_token(secret: &str, token: &str) -> Result<Value, TokenRefusal> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    // Expiry and required claims are checked below, in the server's order.
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map(|t| t.claims)
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenRefusal::Signature,
        _ => TokenRefusal::Malformed,
    })?;
    let (Some(_), Some(exp)) = (claims.get("role"), claims.get("exp")) else {
        return Err(TokenRefusal::MissingClaims);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    match exp.as_i64() {
        // Expired is expired: no leeway.
        Some(exp) if exp > now => Ok(claims),
        Some(exp) => Err(TokenRefusal::Expired(now - exp)),
        None => Err(TokenRefusal::Malformed),
    }
}

fn parse_filter(filter: &str) -> Option<(String, String, String)> {
    let (column, rest) = filter.split_once('=')?;
    let (op, value) = rest.split_once('.')?;
    Some((column.to_string(), op.to_string(), value.to_string()))
}

/// The `apikey` of a websocket request, checked as the real server's
/// `connect` does: a valid JWT of the project with `role` and `exp`,
/// whatever the role.
fn apikey_refusal(shared: &Shared, req: &Request) -> Option<String> {
    if !shared.config.verify_apikey {
        return None;
    }
    let key = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "apikey")
        .map(|(_, v)| v.into_owned());
    let Some(key) = key else {
        return Some("apikey is required".into());
    };
    verify_token(&shared.config.jwt_secret, &key)
        .err()
        .map(|refusal| refusal.join_reason())
}

async fn serve_socket(shared: Arc<Shared>, stream: TcpStream, conn: usize) {
    let check = shared.clone();
    let accepted =
        tokio_tungstenite::accept_hdr_async(stream, move |req: &Request, resp: Response| {
            let refusal = apikey_refusal(&check, req);
            check
                .stats
                .lock()
                .unwrap()
                .handshakes
                .push((check.started.elapsed(), refusal.is_none()));
            match refusal {
                None => Ok(resp),
                Some(reason) => Err(tokio_tungstenite::tungstenite::http::Response::builder()
                    .status(403)
                    .body(Some(reason))
                    .unwrap()),
            }
        })
        .await;
    let Ok(ws) = accepted else {
        return;
    };
    shared.open_sockets.fetch_add(1, Ordering::SeqCst);
    let (mut sink, mut source) = ws.split();
    let (out, mut out_rx) = mpsc::unbounded_channel::<Outgoing>();
    shared.connections.lock().unwrap().push(out.clone());
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            match message {
                Outgoing::Frame(frame) => {
                    if sink
                        .send(Message::Text(frame.to_string().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
                Outgoing::Close => {
                    let _ = sink.close().await;
                    break;
                }
                Outgoing::CloseWith(code, reason) => {
                    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            continue;
        };
        let topic = frame["topic"].as_str().unwrap_or_default().to_string();
        let reply = |status: &str, response: Value| {
            json!({"topic": topic, "event": "phx_reply", "ref": frame["ref"], "join_ref": frame["join_ref"],
                   "payload": {"status": status, "response": response}})
        };
        match frame["event"].as_str().unwrap_or_default() {
            "heartbeat" => {
                let _ = out.send(Outgoing::Frame(reply("ok", json!({}))));
            }
            "phx_join" => join(&shared, conn, &out, &frame, &topic).await,
            "access_token" => {
                let token = frame["payload"]["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                // The channel's own token again: nothing to do.
                let same = shared
                    .channels
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|c| c.conn == conn && c.topic == topic && c.token == token);
                let verified = if same {
                    Ok(Value::Null)
                } else {
                    verify_token(&shared.config.jwt_secret, &token)
                };
                shared
                    .stats
                    .lock()
                    .unwrap()
                    .token_refreshes
                    .push(TokenRefresh {
                        at: shared.started.elapsed(),
                        topic: topic.clone(),
                        token: token.clone(),
                        outcome: verified
                            .clone()
                            .map(|_| ())
                            .map_err(|r| r.shutdown_reason()),
                    });
                match verified {
                    Ok(_) if same => {}
                    Ok(claims) => {
                        for c in shared.channels.lock().unwrap().iter_mut() {
                            if c.conn == conn && c.topic == topic {
                                c.claims = claims.clone();
                                c.token = token.clone();
                            }
                        }
                        // The real server subscribes anew with the new
                        // claims, and says so again.
                        subscribe_later(&shared, conn, &topic);
                    }
                    // The real server tells the channel why and stops it.
                    Err(refusal) => shut_down(
                        &shared,
                        |c| c.conn == conn && c.topic == topic,
                        &refusal.shutdown_reason(),
                    ),
                }
            }
            "phx_leave" => {
                shared
                    .channels
                    .lock()
                    .unwrap()
                    .retain(|c| !(c.conn == conn && c.topic == topic));
                let _ = out.send(Outgoing::Frame(reply("ok", json!({}))));
                let _ = out.send(Outgoing::Frame(
                    json!({"topic": topic, "event": "phx_close", "payload": {}, "ref": frame["join_ref"]}),
                ));
            }
            _ => {}
        }
    }
    shared.channels.lock().unwrap().retain(|c| c.conn != conn);
    writer.abort();
    shared.open_sockets.fetch_sub(1, Ordering::SeqCst);
}

async fn join(
    shared: &Arc<Shared>,
    conn: usize,
    out: &mpsc::UnboundedSender<Outgoing>,
    frame: &Value,
    topic: &str,
) {
    let refuse = |reason: &str| {
        shared.stats.lock().unwrap().refused_joins += 1;
        let _ = out.send(Outgoing::Frame(
            json!({"topic": topic, "event": "phx_reply",
            "ref": frame["ref"], "join_ref": frame["join_ref"],
            "payload": {"status": "error", "response": {"reason": reason}}}),
        ));
    };
    if topic == "realtime:" {
        return refuse("TopicNameRequired: You must provide a topic name");
    }
    if !within_quota(&shared.join_window, shared.config.joins_per_second) {
        return refuse("ClientJoinRateLimitReached: Too many joins per second");
    }
    if shared.joins_seen.fetch_add(1, Ordering::SeqCst) < shared.config.transient_join_failures {
        return refuse(
            "InitializingProjectConnection: Realtime is initializing the project connection",
        );
    }
    if shared.silent_seen.fetch_add(1, Ordering::SeqCst) < shared.config.silent_joins {
        shared.stats.lock().unwrap().silent_joins += 1;
        return;
    }
    let payload = &frame["payload"];
    let token = payload["access_token"].as_str().unwrap_or_default();
    let claims = match verify_token(&shared.config.jwt_secret, token) {
        Ok(claims) => claims,
        Err(refusal) => return refuse(&refusal.join_reason()),
    };
    let mut bindings = Vec::new();
    let mut reply_bindings = Vec::new();
    for (i, b) in payload["config"]["postgres_changes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let id = 1000 + (conn as u64) * 100 + i as u64;
        let mut echoed = b.clone();
        echoed["id"] = json!(id);
        reply_bindings.push(echoed);
        bindings.push(Binding {
            id,
            event: b["event"].as_str().unwrap_or("*").to_string(),
            schema: b["schema"].as_str().unwrap_or("public").to_string(),
            table: b["table"].as_str().unwrap_or("*").to_string(),
            filter: b["filter"].as_str().and_then(parse_filter),
        });
    }
    let tables: Vec<(String, String)> = bindings
        .iter()
        .map(|b| (b.schema.clone(), b.table.clone()))
        .collect();
    shared.channels.lock().unwrap().push(Channel {
        conn,
        topic: topic.to_string(),
        join_ref: frame["join_ref"].clone(),
        bindings,
        claims,
        token: token.to_string(),
        subscribed: false,
        since_lsn: u64::MAX,
        out: out.clone(),
    });
    shared.stats.lock().unwrap().joins += 1;
    let _ = out.send(Outgoing::Frame(
        json!({"topic": topic, "event": "phx_reply",
        "ref": frame["ref"], "join_ref": frame["join_ref"],
        "payload": {"status": "ok", "response": {"postgres_changes": reply_bindings}}}),
    ));
    if tables.is_empty() {
        return;
    }
    subscribe_later(shared, conn, topic);
}

/// The Postgres subscription of a channel, after `subscribe_delay`: then the
/// `system` message that confirms it (or says why it failed). Changes
/// committed before a channel's first subscription are not sent.
fn subscribe_later(shared: &Arc<Shared>, conn: usize, topic: &str) {
    let tables: Vec<(String, String)> = shared
        .channels
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.conn == conn && c.topic == topic)
        .flat_map(|c| {
            c.bindings
                .iter()
                .map(|b| (b.schema.clone(), b.table.clone()))
        })
        .collect();
    if tables.is_empty() {
        return;
    }
    let shared = shared.clone();
    let topic = topic.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(shared.config.subscribe_delay).await;
        let since = super::admin_to(&shared.config.db_url)
            .await
            .query_one("select pg_current_wal_lsn()::text", &[])
            .await
            .map(|r| parse_lsn(r.get(0)))
            .unwrap_or(0);
        let error = match &shared.config.subscription_error {
            Some(e) => Some(e.clone()),
            None => unpublished(&shared.config.db_url, &tables).await.map(|t| {
                format!(
                    "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given connect parameters: [schema: {}, table: {}, filters: []]",
                    t.0, t.1
                )
            }),
        };
        let channels = &mut shared.channels.lock().unwrap();
        if let Some(c) = channels
            .iter_mut()
            .find(|c| c.conn == conn && c.topic == topic)
        {
            let status = if error.is_some() { "error" } else { "ok" };
            c.subscribed = error.is_none();
            if c.since_lsn == u64::MAX {
                c.since_lsn = since;
            }
            let message = error.unwrap_or_else(|| "Subscribed to PostgreSQL".to_string());
            let payload = system_payload("postgres_changes", status, &message, &c.topic);
            push(&shared, c, "system", payload);
        }
    });
}

/// The first (schema, table) not in the `supabase_realtime` publication.
async fn unpublished(db_url: &str, tables: &[(String, String)]) -> Option<(String, String)> {
    let client = super::admin_to(db_url).await;
    for (schema, table) in tables {
        let found = client
            .query_one(
                "select exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime'
                   and schemaname = $1 and ($2 = '*' or tablename = $2))",
                &[schema, table],
            )
            .await
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if !found {
            return Some((schema.clone(), table.clone()));
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The write-ahead log: a temporary logical slot read with test_decoding
// ---------------------------------------------------------------------------

async fn start_wal_reader(shared: Arc<Shared>) {
    let (client, connection) = tokio_postgres::connect(&shared.config.db_url, NoTls)
        .await
        .expect("the in-test Realtime server connects to the stack's database");
    tokio::spawn(connection);
    let slot = format!("mailsync_rt_{}", uuid::Uuid::new_v4().simple());
    client
        .execute(
            "select pg_create_logical_replication_slot($1, 'test_decoding', true)",
            &[&slot],
        )
        .await
        .expect("creating a logical replication slot (wal_level = logical)");
    let checker = super::admin_to(&shared.config.db_url).await;
    tokio::spawn(async move {
        let mut published: HashMap<(String, String), Vec<String>> = HashMap::new();
        let mut refreshed = Instant::now() - Duration::from_secs(10);
        loop {
            tokio::time::sleep(shared.config.poll_interval).await;
            let Ok(rows) = client
                .query(
                    "select lsn::text, data from pg_logical_slot_get_changes($1, null, null, 'include-xids', '0', 'include-timestamp', '1')",
                    &[&slot],
                )
                .await
            else {
                return;
            };
            if rows.is_empty() {
                continue;
            }
            if refreshed.elapsed() > Duration::from_millis(500) {
                published = published_tables(&checker).await;
                refreshed = Instant::now();
            }
            let mut pending: Vec<Change> = Vec::new();
            for row in rows {
                let lsn = parse_lsn(row.get(0));
                let line: String = row.get(1);
                if let Some(at) = line.strip_prefix("COMMIT") {
                    let ts = at
                        .trim()
                        .trim_start_matches("(at ")
                        .trim_end_matches(')')
                        .to_string();
                    for mut change in std::mem::take(&mut pending) {
                        change.commit_timestamp = ts.clone();
                        change.commit_lsn = lsn;
                        dispatch(&shared, &checker, &published, change).await;
                    }
                } else if let Some(mut change) = parse_change(&line) {
                    if published.contains_key(&(change.schema.clone(), change.table.clone())) {
                        change.read_at = shared.started.elapsed();
                        pending.push(change);
                    }
                }
            }
        }
    });
}

async fn published_tables(
    client: &tokio_postgres::Client,
) -> HashMap<(String, String), Vec<String>> {
    let rows = client
        .query(
            "select t.schemaname::text, t.tablename::text,
                    coalesce((select array_agg(a.attname::text order by a.attnum)
                              from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
                              where i.indrelid = format('%I.%I', t.schemaname, t.tablename)::regclass and i.indisprimary), '{}')
             from pg_publication_tables t where t.pubname = 'supabase_realtime'",
            &[],
        )
        .await
        .unwrap_or_default();
    rows.iter()
        .map(|r| ((r.get(0), r.get(1)), r.get::<_, Vec<String>>(2)))
        .collect()
}

/// Sends a change to every subscribed channel with a matching binding that
/// may see it, within the message quota.
async fn dispatch(
    shared: &Arc<Shared>,
    checker: &tokio_postgres::Client,
    published: &HashMap<(String, String), Vec<String>>,
    change: Change,
) {
    let pk = published
        .get(&(change.schema.clone(), change.table.clone()))
        .cloned()
        .unwrap_or_default();
    shared.stats.lock().unwrap().changes.push(change.clone());
    // (topic, conn, ids, claims) of the channels that listen to this change.
    let targets: Vec<(String, usize, Vec<u64>, Value)> = {
        let channels = shared.channels.lock().unwrap();
        channels
            .iter()
            .filter(|c| c.subscribed && change.commit_lsn >= c.since_lsn)
            .filter_map(|c| {
                let ids: Vec<u64> = c
                    .bindings
                    .iter()
                    .filter(|b| binding_matches(b, &change))
                    .map(|b| b.id)
                    .collect();
                (!ids.is_empty()).then(|| (c.topic.clone(), c.conn, ids, c.claims.clone()))
            })
            .collect()
    };
    for (topic, conn, ids, claims) in targets {
        let mut record = change.record.clone();
        let mut old_record = change.old_record.clone();
        if change.kind == "DELETE" {
            // Not authorised against RLS: only the primary key, to everyone.
            old_record.retain(|k, _| pk.contains(k));
        } else if !visible(checker, &change, &pk, &claims).await {
            continue;
        }
        if change.kind == "INSERT" {
            old_record.clear();
        }
        if change.kind == "DELETE" {
            record.clear();
        }
        let payload = json!({"ids": ids, "data": {
            "schema": change.schema, "table": change.table, "commit_timestamp": change.commit_timestamp,
            "type": change.kind,
            "columns": change.columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
            "record": record, "old_record": old_record, "errors": null}});
        if !within_quota(&shared.sent_window, shared.config.messages_per_second) {
            shut_down_for_quota(shared);
            return;
        }
        let channels = shared.channels.lock().unwrap();
        if let Some(c) = channels.iter().find(|c| c.conn == conn && c.topic == topic) {
            push(shared, c, "postgres_changes", payload);
        }
    }
}

/// Tells the channels that match why, in a `system` error, and closes them.
fn shut_down(shared: &Shared, which: impl Fn(&Channel) -> bool, reason: &str) {
    let mut channels = shared.channels.lock().unwrap();
    for c in channels.iter().filter(|c| which(c)) {
        let payload = system_payload("system", "error", reason, &c.topic);
        push(shared, c, "system", payload);
        let _ = c.out.send(Outgoing::Frame(
            json!({"topic": c.topic, "event": "phx_close", "payload": {}, "ref": c.join_ref}),
        ));
    }
    channels.retain(|c| !which(c));
}

/// Closes the channels whose token has expired, as the real server does
/// when it re-checks a channel's token.
fn start_token_checker(shared: Arc<Shared>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(shared.config.token_check_interval).await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            let expired: Vec<(usize, String, i64)> = shared
                .channels
                .lock()
                .unwrap()
                .iter()
                .filter_map(|c| {
                    let exp = c.claims["exp"].as_i64()?;
                    (exp <= now).then(|| (c.conn, c.topic.clone(), now - exp))
                })
                .collect();
            for (conn, topic, ago) in expired {
                shut_down(
                    &shared,
                    |c| c.conn == conn && c.topic == topic,
                    &format!("Token has expired {ago} seconds ago"),
                );
            }
        }
    });
}

/// Over the quota the server tells every channel why and closes it.
fn shut_down_for_quota(shared: &Shared) {
    let mut channels = shared.channels.lock().unwrap();
    for c in channels.iter() {
        let payload = system_payload("system", "error", "Too many messages per second", &c.topic);
        push(shared, c, "system", payload);
        let _ = c.out.send(Outgoing::Frame(
            json!({"topic": c.topic, "event": "phx_close", "payload": {}, "ref": c.join_ref}),
        ));
    }
    shared.stats.lock().unwrap().quota_closes += channels.len();
    channels.clear();
}

fn binding_matches(b: &Binding, change: &Change) -> bool {
    if b.schema != change.schema || (b.table != "*" && b.table != change.table) {
        return false;
    }
    if b.event != "*" && b.event != change.kind {
        return false;
    }
    let Some((column, op, value)) = &b.filter else {
        return true;
    };
    let row = if change.kind == "DELETE" {
        &change.old_record
    } else {
        &change.record
    };
    let Some(actual) = row.get(column) else {
        return false;
    };
    let actual = match actual {
        Value::String(s) => s.clone(),
        Value::Null => return false,
        other => other.to_string(),
    };
    let cmp = match (actual.parse::<f64>(), value.parse::<f64>()) {
        (Ok(a), Ok(v)) => a.partial_cmp(&v),
        _ => Some(actual.as_str().cmp(value.as_str())),
    };
    match op.as_str() {
        "eq" => actual == *value,
        "neq" => actual != *value,
        "lt" => cmp == Some(std::cmp::Ordering::Less),
        "lte" => cmp != Some(std::cmp::Ordering::Greater),
        "gt" => cmp == Some(std::cmp::Ordering::Greater),
        "gte" => cmp != Some(std::cmp::Ordering::Less),
        "in" => value
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .any(|v| v.trim() == actual),
        _ => false,
    }
}

/// Whether the subscriber may see the row, by the table's RLS, as the
/// subscriber (once per change and subscriber, as hosted Realtime does).
async fn visible(
    client: &tokio_postgres::Client,
    change: &Change,
    pk: &[String],
    claims: &Value,
) -> bool {
    if pk.is_empty() {
        return false;
    }
    let role = claims["role"].as_str().unwrap_or("anon");
    if !matches!(role, "anon" | "authenticated" | "service_role") {
        return false;
    }
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    for (i, column) in pk.iter().enumerate() {
        let v = match change.record.get(column) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => return false,
            Some(other) => other.to_string(),
        };
        conditions.push(format!(
            "\"{}\"::text = ${}",
            column.replace('"', "\"\""),
            i + 1
        ));
        values.push(v);
    }
    let sql = format!(
        "select exists (select 1 from \"{}\".\"{}\" where {})",
        change.schema.replace('"', "\"\""),
        change.table.replace('"', "\"\""),
        conditions.join(" and ")
    );
    let setup = format!(
        "begin; select set_config('request.jwt.claims', '{}', true); set local role {role};",
        claims.to_string().replace('\'', "''")
    );
    if client.batch_execute(&setup).await.is_err() {
        let _ = client.batch_execute("rollback").await;
        return false;
    }
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let seen = client
        .query_one(&sql, &params)
        .await
        .map(|r| r.get::<_, bool>(0))
        .unwrap_or(false);
    let _ = client.batch_execute("rollback").await;
    seen
}

/// One line of test_decoding output:
/// `table public.t: UPDATE: old-key: a[int]:1 new-tuple: a[int]:2 b[text]:'x'`.
fn parse_change(line: &str) -> Option<Change> {
    let rest = line.strip_prefix("table ")?;
    let (name, rest) = rest.split_once(": ")?;
    let (schema, table) = name.split_once('.')?;
    let (kind, rest) = rest
        .split_once(": ")
        .unwrap_or((rest.trim_end_matches(':'), ""));
    let (old, new) = if let Some(r) = rest.strip_prefix("old-key: ") {
        r.split_once(" new-tuple: ").unwrap_or((r, ""))
    } else if kind == "DELETE" {
        (rest, "")
    } else {
        ("", rest)
    };
    let (columns, record) = parse_tuple(new);
    let (old_columns, old_record) = parse_tuple(old);
    Some(Change {
        schema: schema.trim_matches('"').to_string(),
        table: table.trim_matches('"').to_string(),
        kind: kind.to_string(),
        columns: if columns.is_empty() {
            old_columns
        } else {
            columns
        },
        record,
        old_record,
        commit_timestamp: String::new(),
        read_at: Duration::ZERO,
        commit_lsn: 0,
    })
}

fn parse_tuple(text: &str) -> (Vec<(String, String)>, Map<String, Value>) {
    let mut columns = Vec::new();
    let mut record = Map::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() && !rest.starts_with('(') {
        let Some(open) = rest.find('[') else { break };
        let name = rest[..open].trim_matches('"').to_string();
        let Some(close) = rest[open..].find("]:") else {
            break;
        };
        let ty = rest[open + 1..open + close].to_string();
        rest = &rest[open + close + 2..];
        let (raw, quoted, after) = if let Some(body) = rest.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = body.char_indices().peekable();
            let mut end = body.len();
            while let Some((i, ch)) = chars.next() {
                if ch == '\'' {
                    if matches!(chars.peek(), Some((_, '\''))) {
                        value.push('\'');
                        chars.next();
                    } else {
                        end = i + 1;
                        break;
                    }
                } else {
                    value.push(ch);
                }
            }
            (value, true, &body[end..])
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            (rest[..end].to_string(), false, &rest[end..])
        };
        rest = after.trim_start();
        let value = if !quoted && raw == "null" {
            Value::Null
        } else if !quoted && raw == "unchanged-toast-datum" {
            continue;
        } else {
            typed(&ty, raw)
        };
        columns.push((name.clone(), ty));
        record.insert(name, value);
    }
    (columns, record)
}

fn typed(ty: &str, raw: String) -> Value {
    match ty {
        "smallint" | "integer" | "bigint" => raw
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(raw)),
        "numeric" | "real" | "double precision" => raw
            .parse::<f64>()
            .map(Value::from)
            .unwrap_or(Value::String(raw)),
        "boolean" => Value::Bool(raw == "true"),
        "json" | "jsonb" => serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
        _ => Value::String(raw),
    }
}

/// Passes a non-websocket connection through to the stack's API.
async fn pass_through(mut client: TcpStream, upstream: String) {
    let Some(addr) = upstream
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/').to_string())
    else {
        return;
    };
    let Ok(mut server) = TcpStream::connect(&addr).await else {
        let _ = client.shutdown().await;
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
