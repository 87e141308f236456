//! Who the user is: the access token every user-facing command acts with.
//! `MAILSYNC_ACCESS_TOKEN` when set; otherwise the session saved by
//! `mailsync login`. Never the service role: RLS must apply to everything a
//! user-facing command reads or writes.

use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::rest::RestClient;

/// The user's access token, or a configuration error (exit 3) saying how to get one.
pub async fn access_token(config: &Config, _out: &Output) -> Result<Secret> {
    if let Some(token) = &config.access_token {
        return Ok(token.value.clone());
    }
    Err(Error::config(format!(
        "not signed in to {}: run `mailsync login`, or set MAILSYNC_ACCESS_TOKEN (on the local stack: `scripts/local-stack.sh token <uuid>`)",
        config.project_display()
    )))
}

/// A REST client acting as the signed-in user.
pub async fn user_client(config: &Config, out: &Output) -> Result<RestClient> {
    let token = access_token(config, out).await?;
    RestClient::new(config, &token)
}
