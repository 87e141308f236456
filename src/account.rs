//! `mailsync login | logout | whoami`.

use std::io::{BufRead, IsTerminal, Write};

use base64::Engine;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::session;

pub async fn login(
    email: Option<&str>,
    password_stdin: bool,
    config: &Config,
    out: &Output,
) -> Result<()> {
    // A missing key is known before asking anything.
    config.anon_key()?;
    let interactive = std::io::stdin().is_terminal();
    let email = match email {
        Some(e) => e.trim().to_string(),
        None if interactive && !password_stdin => {
            eprint!("Email: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => return Err(Error::usage("--email is required without a terminal")),
    };
    if email.is_empty() {
        return Err(Error::usage("an email is required"));
    }
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Secret::new(line.trim_end_matches(['\n', '\r']))
    } else if interactive {
        Secret::new(
            rpassword::prompt_password("Password: ")
                .map_err(|e| Error::failure(format!("reading the password: {e}")))?,
        )
    } else {
        return Err(Error::usage(
            "no terminal to ask for the password on: pass --password-stdin and pipe it",
        ));
    };
    if password.expose().is_empty() {
        return Err(Error::usage("an empty password"));
    }
    let session = crate::gotrue::sign_in(config, &email, &password).await?;
    let path = session::save(&session)?;
    if out.json {
        return out.json(&serde_json::json!({
            "user_id": session.user_id,
            "email": session.email,
            "project": session.project_url,
            "expires_at": session.expires_at,
            "session_file": path,
        }));
    }
    out.print(format!(
        "Signed in to {} as {} ({})",
        session.project_url,
        session.email.as_deref().unwrap_or(&email),
        session.user_id
    ));
    out.note(format!("Session saved in {}", path.display()));
    Ok(())
}

pub async fn logout(config: &Config, out: &Output) -> Result<()> {
    let project = config.project_display();
    let Some((session, _)) = session::load(&project)? else {
        out.print(format!("Not signed in to {project}; nothing to do"));
        return Ok(());
    };
    let revoked = crate::gotrue::sign_out(config, &session)
        .await
        .unwrap_or(false);
    let path = session::delete(&project)?;
    if !revoked {
        out.note(format!(
            "could not revoke the session at {} (unreachable or already expired); the local session is deleted all the same",
            config.auth_url()
        ));
    }
    if let Some(path) = path {
        out.print(format!(
            "Signed out of {project}; deleted {}",
            path.display()
        ));
    }
    Ok(())
}

#[derive(Serialize)]
struct WhoAmI {
    user_id: Option<String>,
    email: Option<String>,
    role: Option<String>,
    project: String,
    expires_at: Option<i64>,
    expires_in_seconds: Option<i64>,
    token_source: String,
}

/// The claims of a JWT, read without checking the signature: the server
/// checks it on every request; this only shows who the token says it is.
pub fn claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub async fn whoami(config: &Config, out: &Output) -> Result<()> {
    let token = crate::auth::token(config, out).await?;
    let claims = claims(token.value.expose()).unwrap_or(Value::Null);
    let text = |k: &str| claims[k].as_str().map(str::to_string);
    let expires_at = claims["exp"].as_i64();
    let me = WhoAmI {
        user_id: text("sub"),
        email: text("email"),
        role: text("role"),
        project: config.project_display(),
        expires_at,
        expires_in_seconds: expires_at.map(|e| e - session::now()),
        token_source: token.source.to_string(),
    };
    if out.json {
        return out.json(&me);
    }
    let mut table = out.table(["", ""]);
    let expiry = match (me.expires_at, me.expires_in_seconds) {
        (Some(_), Some(left)) if left <= 0 => "expired".to_string(),
        (Some(at), Some(left)) => format!("in {} min (unix {at})", left / 60),
        _ => "unknown".to_string(),
    };
    for (k, v) in [
        ("user", me.user_id.clone().unwrap_or_else(|| "?".into())),
        ("email", me.email.clone().unwrap_or_default()),
        ("role", me.role.clone().unwrap_or_default()),
        ("project", me.project.clone()),
        ("token expires", expiry),
        ("token from", me.token_source.clone()),
    ] {
        table.add_row(vec![k.to_string(), v]);
    }
    out.print(table.to_string());
    Ok(())
}
