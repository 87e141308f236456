//! `mailsync logout`: revoke this session (only this one: `scope=local`) on
//! the server when reachable, refreshing it first when its access token has
//! expired, and delete it here. Server side: Supabase Auth `/auth/v1/logout`; client in
//! `src/supabase/auth.rs`. Tests: `tests/it/account.rs`.

use std::path::PathBuf;

use serde::Serialize;

use crate::error::Result;
use crate::output::Output;
use crate::settings::Config;
use crate::supabase::session;

/// `--json`: what was done.
#[derive(Serialize)]
struct SignedOut {
    project: String,
    /// Whether there was a session here to sign out of.
    signed_in: bool,
    /// Whether the server revoked it.
    revoked: bool,
    /// The session file deleted, if any.
    session_file: Option<PathBuf>,
}

pub async fn run(config: &Config, out: &Output) -> Result<()> {
    let project = config.project_display();
    let Some((session, _)) = session::load(config.session_dir()?, &project)? else {
        if out.json {
            return out.json(&SignedOut {
                project,
                signed_in: false,
                revoked: false,
                session_file: None,
            });
        }
        out.print(crate::t!(
            "logout-not-signed-in",
            project = project.as_str()
        ));
        return Ok(());
    };
    // An expired access token cannot sign anything out: refresh first. A
    // session Auth no longer knows has nothing left to revoke.
    let session = if session.expires_within(0) {
        match crate::supabase::auth::refresh(config, &session).await {
            Ok(fresh) => Some(fresh),
            Err(e) => {
                out.debug(format!("logout: refreshing the expired session: {e}"));
                None
            }
        }
    } else {
        Some(session)
    };
    let revoked = match &session {
        Some(session) => crate::supabase::auth::sign_out(config, session)
            .await
            .unwrap_or(false),
        None => false,
    };
    let path = session::delete(config.session_dir()?, &project)?;
    if !revoked {
        out.note(crate::t!("logout-not-revoked", auth = config.auth_url()));
    }
    if out.json {
        return out.json(&SignedOut {
            project,
            signed_in: true,
            revoked,
            session_file: path,
        });
    }
    if let Some(path) = path {
        out.print(crate::t!(
            "logout-done",
            project = project.as_str(),
            file = path.display().to_string()
        ));
    }
    Ok(())
}
