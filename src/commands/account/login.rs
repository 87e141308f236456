//! `mailsync login`: sign in with email and password (Supabase Auth) and
//! save the session. Server side: Supabase Auth `/auth/v1/token` (an
//! in-test server in the tests, `tests/it/common/auth_server.rs`); client in
//! `src/supabase/auth.rs`. Tests: `tests/it/account.rs`.

use std::io::{BufRead, IsTerminal};

use serde::Serialize;

use crate::config::{Config, Secret};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::supabase::session;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The account's email (asked on a terminal when missing).
    pub email: Option<String>,
    /// Read the password from the first line of stdin.
    pub password_stdin: bool,
}

/// `--json`: who is signed in, and where the session is saved.
#[derive(Serialize)]
struct SignedIn<'a> {
    user_id: &'a str,
    email: Option<&'a str>,
    project: &'a str,
    expires_at: i64,
    session_file: &'a std::path::Path,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    // A missing key is known before asking anything.
    config.anon_key()?;
    let interactive = std::io::stdin().is_terminal();
    let email = match &options.email {
        Some(e) => e.trim().to_string(),
        None if interactive && !options.password_stdin => {
            out.ask(&format!("{}: ", crate::t!("prompt-email")))?
        }
        None => return Err(Error::usage(crate::t!("login-error-email-flag"))),
    };
    if email.is_empty() {
        return Err(Error::usage(crate::t!("login-error-email-empty")));
    }
    let password = if options.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Secret::new(line.trim_end_matches(['\n', '\r']))
    } else if interactive {
        Secret::new(out.ask_secret(&format!("{}: ", crate::t!("prompt-password")))?)
    } else {
        return Err(Error::usage(crate::t!("login-error-password-terminal"))
            .with_hint(crate::t!("login-error-password-terminal-hint")));
    };
    if password.expose().is_empty() {
        return Err(Error::usage(crate::t!("login-error-password-empty")));
    }
    let session = crate::supabase::auth::sign_in(config, &email, &password).await?;
    let path = session::save(&session)?;
    if out.json {
        return out.json(&SignedIn {
            user_id: &session.user_id,
            email: session.email.as_deref(),
            project: &session.project_url,
            expires_at: session.expires_at,
            session_file: &path,
        });
    }
    out.print(crate::t!(
        "login-done",
        project = session.project_url.as_str(),
        email = session.email.as_deref().unwrap_or(&email),
        user = session.user_id.as_str()
    ));
    out.note(crate::t!(
        "login-session-saved",
        file = path.display().to_string()
    ));
    Ok(())
}
