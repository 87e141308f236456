//! Supabase Auth (`/auth/v1`): password sign-in, refresh, sign-out. Request
//! and response shapes as SUPABASE.md documents them. Tokens and passwords
//! go in bodies and headers only, never in a message.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::session::{now, Session};
use crate::config::{Config, Secret};
use crate::error::{Error, Result};

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
            .unwrap_or_else(|| "no detail".into())
    }
}

fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::failure(format!("creating the HTTP client: {e}")))
}

fn unreachable(config: &Config, e: &reqwest::Error) -> Error {
    let why = if e.is_timeout() {
        "no answer"
    } else {
        "cannot connect"
    };
    Error::unreachable(format!(
        "Supabase Auth at {}: {why}; check SUPABASE_URL",
        config.auth_url()
    ))
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
            Error::failure(format!(
                "Supabase Auth at {} answered something mailsync does not understand",
                config.auth_url()
            ))
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
            Err(Error::config("this email address is not confirmed yet")
                .with_hint("open the link Supabase sent to it, then run `mailsync login` again"))
        }
        Err((400, e))
            if matches!(e.code(), "invalid_credentials" | "invalid_grant")
                || e.text().contains("Invalid login credentials") =>
        {
            Err(Error::config("email or password is wrong"))
        }
        Err((404, _)) => Err(Error::config(format!(
            "{} has no Auth server (the local stack has none): `mailsync login` cannot sign in there",
            config.project_display()
        ))
        .with_hint(
            "act as a user with a token: export MAILSYNC_ACCESS_TOKEN=\"$(scripts/local-stack.sh token <uuid>)\"",
        )),
        Err((status, e)) => Err(Error::config(format!(
            "Supabase Auth at {} refused the sign-in (HTTP {status}, {}): {}",
            config.auth_url(),
            e.code(),
            e.text()
        ))),
    }
}

/// `grant_type=refresh_token`: a new session, with a new refresh token.
pub async fn refresh(config: &Config, session: &Session) -> Result<Session> {
    match token_request(
        config,
        "refresh_token",
        json!({"refresh_token": session.refresh_token}),
    )
    .await?
    {
        Ok(token) => Ok(session_of(config, token)),
        // The server could not answer now: the session may still be good.
        Err((status, _)) if server_trouble(status) => Err(trouble(config, status)),
        Err(_) => Err(Error::config("your session expired; run `mailsync login`")),
    }
}

/// Answers that say nothing about the credentials: rate limiting and
/// server failures (an HTML page from a proxy included).
fn server_trouble(status: u16) -> bool {
    status == 429 || status >= 500
}

fn trouble(config: &Config, status: u16) -> Error {
    let message = if status == 429 {
        format!(
            "Supabase Auth at {} is limiting requests (HTTP 429)",
            config.auth_url()
        )
    } else {
        format!(
            "Supabase Auth at {} failed (HTTP {status})",
            config.auth_url()
        )
    };
    Error::unreachable(message).with_hint("nothing was changed; wait a minute and try again")
}

/// `POST /logout` with the access token; whether the server revoked it.
pub async fn sign_out(config: &Config, session: &Session) -> Result<bool> {
    let key = config.anon_key()?;
    let response = http()?
        .post(format!("{}/logout", config.auth_url()))
        .header("apikey", key.expose())
        .bearer_auth(&session.access_token)
        .send()
        .await;
    Ok(matches!(response, Ok(r) if r.status().is_success()))
}
