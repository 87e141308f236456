//! Supabase Auth (`/auth/v1`): password sign-in, refresh, sign-out. Request
//! and response shapes as supabase/auth documents them (its "Auth API"). Tokens and passwords
//! go in bodies and headers only, never in a message.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::session::{now, Session};
use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::t;

/// What `/token` answers on success.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    refresh_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    expires_at: Option<i64>,
    user: User,
}

#[derive(Deserialize)]
struct User {
    id: String,
    #[serde(default)]
    email: Option<String>,
}

/// An Auth error body: `{"code", "error_code", "msg"}`, or the older
/// `{"error", "error_description"}`.
#[derive(Deserialize, Default)]
struct AuthError {
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    msg: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl AuthError {
    fn code(&self) -> &str {
        self.error_code
            .as_deref()
            .or(self.error.as_deref())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        self.msg
            .clone()
            .or_else(|| self.error_description.clone())
            .or_else(|| self.message.clone())
            .unwrap_or_else(|| t!("auth-no-detail"))
    }
}

fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::failure(t!("error-http-client", reason = e.to_string())))
}

fn unreachable(config: &Config, e: &reqwest::Error) -> Error {
    let why = if e.is_timeout() {
        t!("auth-no-answer")
    } else {
        t!("auth-cannot-connect")
    };
    Error::unreachable(t!(
        "auth-error-unreachable",
        auth = config.auth_url(),
        why = why
    ))
    .with_hint(t!("auth-hint-check-url"))
}

async fn token_request(
    config: &Config,
    grant: &str,
    body: serde_json::Value,
) -> Result<std::result::Result<TokenResponse, (u16, AuthError)>> {
    let key = config.anon_key()?;
    let started = std::time::Instant::now();
    let response = http()?
        .post(format!("{}/token?grant_type={grant}", config.auth_url()))
        .header("apikey", key.expose())
        .json(&body)
        .send()
        .await
        .map_err(|e| unreachable(config, &e))?;
    let status = response.status().as_u16();
    crate::output::trace(format!(
        "POST /auth/v1/token?grant_type={grant} → {status} in {} ms",
        started.elapsed().as_millis()
    ));
    let bytes = response
        .bytes()
        .await
        .map_err(|e| unreachable(config, &e))?;
    if (200..300).contains(&status) {
        let token: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
            Error::failure(t!("auth-error-not-understood", auth = config.auth_url()))
        })?;
        Ok(Ok(token))
    } else {
        Ok(Err((
            status,
            serde_json::from_slice(&bytes).unwrap_or_default(),
        )))
    }
}

fn session_of(config: &Config, token: TokenResponse) -> Session {
    let expires_at = token
        .expires_at
        .unwrap_or_else(|| now() + token.expires_in.unwrap_or(3600));
    Session {
        project_url: config.project_display(),
        access_token: token.access_token,
        refresh_token: token.refresh_token,
        expires_at,
        user_id: token.user.id,
        email: token.user.email,
    }
}

/// `grant_type=password`.
pub async fn sign_in(config: &Config, email: &str, password: &Secret) -> Result<Session> {
    match token_request(
        config,
        "password",
        json!({"email": email, "password": password.expose()}),
    )
    .await?
    {
        Ok(token) => Ok(session_of(config, token)),
        Err((status, _)) if server_trouble(status) => Err(trouble(config, status)),
        Err((_, e))
            if e.code() == "email_not_confirmed" || e.text().contains("Email not confirmed") =>
        {
            Err(Error::config(t!("auth-error-not-confirmed"))
                .with_hint(t!("auth-hint-not-confirmed")))
        }
        Err((400, e))
            if matches!(e.code(), "invalid_credentials" | "invalid_grant")
                || e.text().contains("Invalid login credentials") =>
        {
            Err(Error::config(t!("auth-error-wrong-password")))
        }
        Err((404, _)) => Err(Error::config(t!(
            "auth-error-no-auth-server",
            project = config.project_display()
        ))
        .with_hint(t!("auth-hint-token"))),
        Err((status, e)) => Err(Error::config(t!(
            "auth-error-sign-in-refused",
            auth = config.auth_url(),
            status = status.to_string(),
            code = e.code(),
            text = e.text()
        ))),
    }
}

/// Auth's answers to a refresh that mean the session is over: sign in again.
const SESSION_OVER: [&str; 4] = [
    "refresh_token_not_found",
    "refresh_token_already_used",
    "session_not_found",
    "session_expired",
];

/// How many times a refresh is tried when Auth is unreachable or answers
/// 429/5xx. Repeating is safe: Auth accepts the just-spent refresh token
/// again for a few seconds (its reuse interval) and answers the same way.
const REFRESH_ATTEMPTS: u32 = 4;
/// Retries stop once a refresh has taken this long.
const REFRESH_RETRY_WINDOW: Duration = Duration::from_secs(10);

/// `grant_type=refresh_token`: a new session, with a new refresh token.
/// A network error, 429 or 5xx is retried; only Auth's "session over" codes
/// (and the older servers' `invalid_grant` for a refresh token) say to sign
/// in again; any other refusal is reported as it is.
pub async fn refresh(config: &Config, session: &Session) -> Result<Session> {
    let mut backoff = Duration::from_millis(500);
    let mut attempt = 1;
    let started = std::time::Instant::now();
    loop {
        let outcome = token_request(
            config,
            "refresh_token",
            json!({"refresh_token": session.refresh_token}),
        )
        .await;
        let transient = match outcome {
            Ok(Ok(token)) => return Ok(session_of(config, token)),
            Ok(Err((status, e))) if is_session_over(status, &e) => {
                return Err(
                    Error::config(t!("auth-error-session-expired")).with_hint(t!("hint-run-login"))
                );
            }
            Ok(Err((status, _))) if server_trouble(status) => trouble(config, status),
            Ok(Err((status, e))) => {
                return Err(Error::refused(t!(
                    "auth-error-refresh-refused",
                    auth = config.auth_url(),
                    status = status.to_string(),
                    code = e.code(),
                    text = e.text()
                )));
            }
            Err(e) if e.kind().is_transient() => e.with_hint(t!("auth-hint-session-kept")),
            Err(e) => return Err(e),
        };
        // A server that left a request unanswered until the client's
        // timeout is not asked again: the user has waited long enough.
        if attempt >= REFRESH_ATTEMPTS || started.elapsed() > REFRESH_RETRY_WINDOW {
            return Err(transient);
        }
        tokio::time::sleep(backoff).await;
        backoff *= 2;
        attempt += 1;
    }
}

fn is_session_over(status: u16, e: &AuthError) -> bool {
    if SESSION_OVER.contains(&e.code()) {
        return true;
    }
    // Older servers: {"error": "invalid_grant", "error_description":
    // "Invalid Refresh Token: ..."}.
    (400..500).contains(&status)
        && e.code() == "invalid_grant"
        && e.text().to_ascii_lowercase().contains("refresh token")
}

/// Answers that say nothing about the credentials: rate limiting and
/// server failures (an HTML page from a proxy included).
fn server_trouble(status: u16) -> bool {
    status == 429 || status >= 500
}

fn trouble(config: &Config, status: u16) -> Error {
    let message = if status == 429 {
        t!("auth-error-rate-limited", auth = config.auth_url())
    } else {
        t!(
            "auth-error-failed",
            auth = config.auth_url(),
            status = status.to_string()
        )
    };
    Error::unreachable(message).with_hint(t!("auth-hint-wait"))
}

/// `POST /logout?scope=local` with the access token: ends this session
/// only (Auth's default, `global`, would end every session of the user, on
/// every device). Whether the server revoked it.
pub async fn sign_out(config: &Config, session: &Session) -> Result<bool> {
    let key = config.anon_key()?;
    let response = http()?
        .post(format!("{}/logout?scope=local", config.auth_url()))
        .header("apikey", key.expose())
        .bearer_auth(&session.access_token)
        .send()
        .await;
    Ok(matches!(response, Ok(r) if r.status().is_success()))
}
