//! The session `mailsync login` saves: one file per project URL in the
//! session directory the settings give ([`crate::settings::Config::session_dir`]:
//! `MAILSYNC_CONFIG_DIR`, else `$XDG_CONFIG_HOME/mailsync`, else
//! `~/.config/mailsync`), mode 0600,
//! written to a temporary file and renamed so it is never half-written.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::settings::Secret;
use crate::t;

/// A signed-in user's tokens for one project.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    pub project_url: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds.
    pub expires_at: i64,
    pub user_id: String,
    #[serde(default)]
    pub email: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("project_url", &self.project_url)
            .field("user_id", &self.user_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn access(&self) -> Secret {
        Secret::new(self.access_token.clone())
    }

    /// Whether the access token expires within `margin` seconds.
    pub fn expires_within(&self, margin: i64) -> bool {
        self.expires_at - now() <= margin
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The session file of a project: `sessions/<host>-<port>-<hash>.json`.
pub fn path_for(dir: &Path, project_url: &str) -> PathBuf {
    let key = project_url.trim_end_matches('/');
    let readable: String = key
        .split("://")
        .last()
        .unwrap_or(key)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    dir.join("sessions")
        .join(format!("{readable}-{:08x}.json", hash as u32))
}

/// The saved session for a project, if there is one, in `dir`.
pub fn load(dir: &Path, project_url: &str) -> Result<Option<(Session, PathBuf)>> {
    let path = path_for(dir, project_url);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::config(t!(
                "session-error-read",
                file = path.display().to_string(),
                reason = e.to_string()
            )))
        }
    };
    let session: Session = serde_json::from_str(&text).map_err(|_| {
        Error::config(t!(
            "session-error-damaged",
            file = path.display().to_string()
        ))
        .with_hint(t!("hint-run-login-again"))
    })?;
    Ok(Some((session, path)))
}

/// Saves atomically in `dir`, readable by the user only.
pub fn save(dir: &Path, session: &Session) -> Result<PathBuf> {
    let path = path_for(dir, &session.project_url);
    let folder = path.parent().unwrap_or(Path::new("."));
    let fail = |e: &dyn std::fmt::Display| {
        Error::config(t!(
            "session-error-save",
            file = path.display().to_string(),
            reason = e.to_string()
        ))
    };
    std::fs::create_dir_all(folder).map_err(|e| fail(&e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700));
    }
    // tempfile creates the file with mode 0600 on Unix.
    let mut tmp = tempfile::NamedTempFile::new_in(folder).map_err(|e| fail(&e))?;
    let text = serde_json::to_string_pretty(session).map_err(|e| fail(&e))?;
    tmp.write_all(text.as_bytes()).map_err(|e| fail(&e))?;
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(&path).map_err(|e| fail(&e.error))?;
    Ok(path)
}

/// Deletes the saved session from `dir`; whether there was one.
pub fn delete(dir: &Path, project_url: &str) -> Result<Option<PathBuf>> {
    let path = path_for(dir, project_url);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(Some(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::config(t!(
            "session-error-delete",
            file = path.display().to_string(),
            reason = e.to_string()
        ))),
    }
}
