//! An in-test server that answers like Supabase Auth (supabase/auth,
//! `internal/api/token_refresh.go` and `logout.go`; the local stack has no
//! Auth server): password sign-in and refresh with single-use refresh tokens
//! (the parent of the active one, reused, is answered with the active one,
//! as Auth does for a client that could not save its last refresh; any other
//! spent token is "already used"), logout with its scopes, the key checked
//! on every request, errors in the newer (`code`/`error_code`/`msg`) or the
//! older (`error`/`error_description`) shape, and scripted failures (429,
//! 5xx, an HTML page, a hang, a cut connection). Access tokens are real
//! HS256 JWTs signed with the stack's secret, for the user the server is
//! given, so the stack's REST API accepts them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

pub const PASSWORD: &str = "correct-horse-battery-staple";
pub const ANON_KEY: &str = "anon-key-for-the-auth-tests-1234567890";

/// A scripted answer the server gives to the next `/token` request instead
/// of its normal one: how Supabase Auth (or a proxy before it) fails.
#[derive(Clone)]
pub enum Scripted {
    /// A status, a content type and a body.
    Reply(u16, &'static str, String),
    /// Accepts the request and never answers.
    Hang,
    /// Answers 200 and cuts the connection before the body: a network
    /// failure in the middle of the answer.
    Broken,
}

#[derive(Default)]
pub struct AuthState {
    /// (grant or path, body, apikey header, authorization header)
    pub requests: Vec<(String, Value, String, String)>,
    /// The refresh token that is still valid.
    pub refresh_token: String,
    /// Refresh tokens already spent (reuse is detected).
    pub spent: Vec<String>,
    /// The refresh token the valid one was swapped from by a refresh (empty
    /// after a sign-in): reusing it gets the valid one back.
    pub parent: String,
    /// Access tokens issued and not revoked.
    pub live_access: Vec<String>,
    pub issued: u32,
    pub user: Uuid,
    /// Answers for the next `/token` requests, first first.
    pub scripted: std::collections::VecDeque<Scripted>,
    /// Two commands refreshing at once: the config dir they share. The
    /// first refresh is answered once the second has arrived; the second
    /// (with the spent token) once the first command saved its session.
    pub race: Option<PathBuf>,
    /// Whether one of the racing refreshes has been answered.
    pub race_claimed: bool,
    /// Errors in the older shape (`{"error", "error_description"}`) instead
    /// of the newer (`{"code", "error_code", "msg"}`).
    pub older: bool,
    /// The user's address (sign-in checks it; tokens carry it).
    pub email: String,
    /// Every access token issued, revoked or not.
    pub issued_access: Vec<String>,
    /// The project's key, required on every request.
    pub anon_key: String,
}

/// An Auth error in the shape the server speaks: the newer
/// `{"code", "error_code", "msg"}` or the older `{"error", "error_description"}`
/// (where every refused grant is `invalid_grant`).
fn auth_error(older: bool, status: StatusCode, code: &str, msg: &str) -> Response {
    if older {
        let error = if status == StatusCode::BAD_REQUEST {
            "invalid_grant"
        } else {
            code
        };
        json_reply(status, json!({"error": error, "error_description": msg}))
    } else {
        json_reply(
            status,
            json!({"code": status.as_u16(), "error_code": code, "msg": msg}),
        )
    }
}

pub type Shared = Arc<Mutex<AuthState>>;

/// An access token as Auth signs them: the stack's secret, the user's
/// claims and a `session_id` of its own, so that no two sessions share a token.
pub fn access_token(stack: &super::Stack, state: &AuthState, lifetime: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = json!({
        "sub": state.user.to_string(), "role": "authenticated", "aud": "authenticated",
        "email": state.email, "iat": now, "exp": now + lifetime,
        "session_id": Uuid::new_v4().to_string(),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(stack.jwt_secret.as_bytes()),
    )
    .unwrap()
}

/// Issues a session: a new refresh token (the previous one spent) and an
/// access token valid for `lifetime` seconds.
pub fn token_response(state: &mut AuthState, lifetime: i64) -> Value {
    state.issued += 1;
    state.parent.clear();
    if !state.refresh_token.is_empty() {
        let old = std::mem::take(&mut state.refresh_token);
        state.spent.push(old);
    }
    state.refresh_token = format!("refresh-token-{}", state.issued);
    session_response(state, lifetime)
}

/// A refresh: as a sign-in, and the spent token is the new one's parent.
fn refresh_response(state: &mut AuthState, lifetime: i64) -> Value {
    let parent = state.refresh_token.clone();
    let response = token_response(state, lifetime);
    state.parent = parent;
    response
}

/// The valid refresh token again, with a new access token: no rotation.
fn session_response(state: &mut AuthState, lifetime: i64) -> Value {
    let stack = super::stack();
    let access = access_token(&stack, state, lifetime);
    state.live_access.push(access.clone());
    state.issued_access.push(access.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    json!({"access_token": access, "token_type": "bearer", "expires_in": lifetime,
           "expires_at": now + lifetime, "refresh_token": state.refresh_token,
           "user": {"id": state.user, "aud": "authenticated", "role": "authenticated", "email": state.email}})
}

fn reply(status: u16, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(axum::body::Body::from(body))
        .unwrap()
}

fn json_reply(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// A request header's text ("" when it is missing).
fn header_text(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Auth's answer to a request without the project's key.
fn invalid_api_key() -> Response {
    json_reply(
        StatusCode::UNAUTHORIZED,
        json!({"message": "Invalid API key"}),
    )
}

/// Waits (up to 10 s) until `done` holds, checking every 20 ms.
async fn until(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn token(
    State(state): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let grant = query.get("grant_type").cloned().unwrap_or_default();
    let header = |k: &str| header_text(&headers, k);
    let (scripted, race, key) = {
        let mut s = state.lock().unwrap();
        s.requests.push((
            grant.clone(),
            body.clone(),
            header("apikey"),
            header("authorization"),
        ));
        (s.scripted.pop_front(), s.race.clone(), s.anon_key.clone())
    };
    match scripted {
        Some(Scripted::Reply(status, content_type, body)) => {
            return reply(status, content_type, body)
        }
        Some(Scripted::Hang) => std::future::pending::<()>().await,
        Some(Scripted::Broken) => {
            let cut = futures_util::stream::once(async {
                Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("cut"))
            });
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(axum::body::Body::from_stream(cut))
                .unwrap();
        }
        None => {}
    }
    if header("apikey") != key {
        return invalid_api_key();
    }
    if let (Some(config), "refresh_token") = (race, grant.as_str()) {
        // Both refreshes arrive first; the first to claim the token wins.
        let refreshes = || {
            state
                .lock()
                .unwrap()
                .requests
                .iter()
                .filter(|r| r.0 == "refresh_token")
                .count()
        };
        until(|| refreshes() >= 2).await;
        let won = !std::mem::replace(&mut state.lock().unwrap().race_claimed, true);
        if !won {
            // The spent token: answered once the winner saved its session.
            let sent = body["refresh_token"].clone();
            until(|| {
                let saved = read_session(&config)["refresh_token"].clone();
                saved != sent && !saved.is_null()
            })
            .await;
        }
    }
    let mut s = state.lock().unwrap();
    let older = s.older;
    match grant.as_str() {
        "password" if body["password"] == PASSWORD && body["email"] == s.email.as_str() => {
            // A short-lived token, so that the next use refreshes it.
            json_reply(StatusCode::OK, token_response(&mut s, 30))
        }
        "password" => auth_error(
            older,
            StatusCode::BAD_REQUEST,
            "invalid_credentials",
            "Invalid login credentials",
        ),
        "refresh_token" if body["refresh_token"] == s.refresh_token.as_str() => {
            json_reply(StatusCode::OK, refresh_response(&mut s, 3600))
        }
        // The parent of the valid token: its client did not keep the answer
        // to its refresh (or lost the race to another); Auth hands back the
        // valid token rather than a new one.
        "refresh_token" if !s.parent.is_empty() && body["refresh_token"] == s.parent.as_str() => {
            json_reply(StatusCode::OK, session_response(&mut s, 3600))
        }
        "refresh_token" if s.spent.iter().any(|t| body["refresh_token"] == t.as_str()) => {
            auth_error(
                older,
                StatusCode::BAD_REQUEST,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
            )
        }
        _ => auth_error(
            older,
            StatusCode::BAD_REQUEST,
            "refresh_token_not_found",
            "Invalid Refresh Token: Refresh Token Not Found",
        ),
    }
}

/// `/logout`: as Supabase Auth answers it. The project's key is required
/// (401 "Invalid API key" otherwise), and a valid, unexpired access token it
/// issued (401 `bad_jwt` otherwise). `scope` is `global` by default (every
/// session of the user ends), `local` (this one only) or `others`.
async fn logout(
    State(state): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let header = |k: &str| header_text(&headers, k);
    let auth = header("authorization");
    let scope = query.get("scope").cloned();
    let mut s = state.lock().unwrap();
    s.requests.push((
        "logout".into(),
        json!({ "scope": scope }),
        header("apikey"),
        auth.clone(),
    ));
    if header("apikey") != s.anon_key {
        return invalid_api_key();
    }
    let token = auth.strip_prefix("Bearer ").unwrap_or("").to_string();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["authenticated"]);
    validation.leeway = 0;
    let valid = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(super::stack().jwt_secret.as_bytes()),
        &validation,
    );
    if let Err(e) = valid {
        return auth_error(
            s.older,
            StatusCode::UNAUTHORIZED,
            "bad_jwt",
            &format!("invalid JWT: unable to parse or verify signature, {e}"),
        );
    }
    if !s.live_access.contains(&token) {
        return auth_error(
            s.older,
            StatusCode::FORBIDDEN,
            "session_not_found",
            "Session from session_id claim in JWT does not exist",
        );
    }
    match scope.as_deref().unwrap_or("global") {
        "local" => s.live_access.retain(|t| *t != token),
        "others" => s.live_access.retain(|t| *t == token),
        _ => s.live_access.clear(),
    }
    StatusCode::NO_CONTENT.into_response()
}

pub async fn auth_server() -> (String, Shared) {
    auth_server_for(Uuid::new_v4(), "ana@example.test", ANON_KEY).await
}

/// An Auth server whose one user is `user` with `email` (give a user of the
/// stack for tokens its REST API accepts), accepting only `anon_key`.
pub async fn auth_server_for(user: Uuid, email: &str, anon_key: &str) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(AuthState {
        user,
        email: email.to_string(),
        anon_key: anon_key.to_string(),
        ..Default::default()
    }));
    let app = Router::new()
        .route("/auth/v1/token", post(token))
        .route("/auth/v1/logout", post(logout))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// The saved sessions (not the temporary file of a save in progress).
pub fn session_files(config: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(config.join("sessions"))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default()
}

pub fn read_session(config: &Path) -> Value {
    let files = session_files(config);
    assert_eq!(files.len(), 1, "{files:?}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}
