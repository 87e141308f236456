//! Who the user is: the access token every user-facing command acts with.
//! `MAILSYNC_ACCESS_TOKEN` when set; otherwise the session saved by
//! `mailsync login` for the current project, refreshed when it expires
//! within a minute. Never the service role: RLS must apply to everything a
//! user-facing command reads or writes.

use crate::error::{Error, ErrorKind, Result};
use crate::output::Output;
use crate::settings::{Config, Secret, Source};
use crate::supabase::rest::RestClient;

/// A saved session is refreshed when it has less than this left (seconds).
pub const REFRESH_MARGIN: i64 = 60;

/// The token and where it came from.
pub struct Token {
    pub value: Secret,
    pub source: Source,
}

/// The user's access token, or a configuration error (exit 3) saying how to get one.
pub async fn access_token(config: &Config, out: &Output) -> Result<Secret> {
    Ok(token(config, out).await?.value)
}

/// Like [`access_token`], saying where the token came from.
pub async fn token(config: &Config, out: &Output) -> Result<Token> {
    if let Some(token) = &config.access_token {
        return Ok(Token {
            value: token.value.clone(),
            source: token.source.clone(),
        });
    }
    let project = config.project_display();
    let Some((mut session, path)) =
        crate::supabase::session::load(config.session_dir()?, &project)?
    else {
        return Err(
            Error::config(crate::t!("error-not-signed-in", project = project.as_str()))
                .with_hint(crate::t!("error-not-signed-in-hint")),
        );
    };
    if session.expires_within(REFRESH_MARGIN) {
        out.debug("auth: the access token expires within a minute; refreshing the session");
        session = match crate::supabase::auth::refresh(config, &session).await {
            Ok(fresh) => {
                // The old refresh token is spent: save the new one at once.
                crate::supabase::session::save(config.session_dir()?, &fresh)?;
                fresh
            }
            // Refresh tokens are single-use: another mailsync that refreshed
            // this session at the same moment saved the new one; use it.
            Err(e) if e.kind() == ErrorKind::Config => {
                match crate::supabase::session::load(config.session_dir()?, &project)? {
                    Some((saved, _))
                        if saved.refresh_token != session.refresh_token
                            && !saved.expires_within(REFRESH_MARGIN) =>
                    {
                        out.debug("auth: another command refreshed the session; using its token");
                        saved
                    }
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
    }
    Ok(Token {
        value: session.access(),
        source: Source::SavedSession(path),
    })
}

/// A REST client acting as the signed-in user.
pub async fn user_client(config: &Config, out: &Output) -> Result<RestClient> {
    let token = access_token(config, out).await?;
    RestClient::new(config, &token)
}

/// The claims of a JWT, read without checking the signature: the server
/// checks it on every request; this only says who the token says it is.
pub fn claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The user a token speaks for: its `sub` claim (read, not verified).
pub fn subject(token: &str) -> Option<String> {
    claims(token).and_then(|c| c["sub"].as_str().map(str::to_string))
}
