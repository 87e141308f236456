//! The local stack as it is running: what `scripts/local-stack.sh` would
//! print for `env`, so that the binary and the script never disagree.
//!
//! The script's rules, followed here: the stack directory is
//! `MAILSYNC_STACK_DIR`, else `.local-stack` at the repository's root; the
//! ports are `MAILSYNC_API_PORT` (54321) and `MAILSYNC_DB_PORT` (54322). When
//! the stack has been started, `up` leaves its `env` lines in
//! `<stack dir>/stack.env` (the anon key and the database password it really
//! uses); they are read from there, never assumed. Without that file, the
//! password is the stack's `db-password` file when there is one.
//!
//! The stack's own defaults (its URL, database, anon key, SMTP relay and
//! sender) are written here and only here; the settings layer takes them
//! as the last resort for a project that is the local stack.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The local stack's URL, the default when nothing is configured.
pub const LOCAL_SUPABASE_URL: &str = "http://127.0.0.1:54321";
/// The local stack's database (Supabase's local-development convention).
pub const LOCAL_DB_URL: &str = "postgresql://postgres:postgres@127.0.0.1:54322/postgres";
/// The local stack's anon key: Supabase's documented local-development anon
/// JWT, signed with the documented local secret. Not a secret.
pub const LOCAL_ANON_KEY: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0";
/// The local stack's SMTP server listens on the API port + 4 (54325 by
/// default), as the Supabase CLI's mail catcher does.
pub const LOCAL_SMTP_PORT_OFFSET: u16 = 4;
/// The sender on the local stack when `MAILSYNC_FROM` is not set.
pub const LOCAL_FROM: &str = "mailsync <mailsync@localhost.test>";
/// The state file's line for the stack's bounce mailbox (`imap://...`).
pub const STATE_BOUNCES_URL: &str = "MAILSYNC_BOUNCES_URL";
/// The state file's line for the stack's relay (its mail transfer agent,
/// which returns delivery reports), when the stack runs one.
pub const STATE_SMTP_URL: &str = "MAILSYNC_SMTP_URL";
/// The state file's line for the return path whose mailbox the stack serves.
pub const STATE_RETURN_PATH: &str = "MAILSYNC_RETURN_PATH";

/// The local stack's SMTP server for a stack whose API listens on `api_port`
/// (plain SMTP: it is on this machine).
pub fn smtp_url(api_port: u16) -> String {
    format!(
        "smtp://127.0.0.1:{}",
        api_port.saturating_add(LOCAL_SMTP_PORT_OFFSET)
    )
}

pub const ENV_STACK_DIR: &str = "MAILSYNC_STACK_DIR";
pub const ENV_API_PORT: &str = "MAILSYNC_API_PORT";
pub const ENV_DB_PORT: &str = "MAILSYNC_DB_PORT";
/// The file `scripts/local-stack.sh up` writes in the stack directory.
pub const STATE_FILE: &str = "stack.env";
/// The database password the script generates for the stack.
pub const PASSWORD_FILE: &str = "db-password";

/// Where the local stack is, and what told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStack {
    pub url: String,
    pub anon_key: String,
    pub db_url: String,
    /// The stack's bounce mailbox, when its state file names one.
    pub bounces_url: Option<String>,
    /// The stack's relay, when its state file names one (otherwise the
    /// web inbox's SMTP port, [`smtp_url`]).
    pub smtp_url: Option<String>,
    /// The return path the stack's mailbox receives, when named.
    pub return_path: Option<String>,
    /// Why these values: the state file and/or the port variables (none:
    /// the stack's defaults).
    pub origin: Vec<String>,
}

/// The local stack for this environment (`env` looks variables up), starting
/// the search for `.local-stack` at `cwd`.
pub fn resolve(env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> LocalStack {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let dir = var(ENV_STACK_DIR)
        .map(PathBuf::from)
        .or_else(|| find_stack_dir(cwd));
    let state = dir
        .as_deref()
        .map(|d| d.join(STATE_FILE))
        .and_then(|p| read_state(&p).map(|vars| (p, vars)));

    let mut url = state
        .as_ref()
        .and_then(|(_, v)| v.get("SUPABASE_URL").cloned())
        .unwrap_or_else(|| LOCAL_SUPABASE_URL.to_string());
    let anon_key = state
        .as_ref()
        .and_then(|(_, v)| v.get("SUPABASE_ANON_KEY").cloned())
        .unwrap_or_else(|| LOCAL_ANON_KEY.to_string());
    // Without the state of `up`: the stack's own password file, if any.
    let password = dir
        .as_deref()
        .and_then(|d| std::fs::read_to_string(d.join(PASSWORD_FILE)).ok())
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty());
    let mut db_url = state
        .as_ref()
        .and_then(|(_, v)| v.get("SUPABASE_DB_URL").cloned())
        .or_else(|| {
            let mut url = url::Url::parse(LOCAL_DB_URL).ok()?;
            url.set_password(Some(password.as_deref()?)).ok()?;
            Some(url.to_string())
        })
        .unwrap_or_else(|| LOCAL_DB_URL.to_string());

    let state_line = |name: &str| {
        state
            .as_ref()
            .and_then(|(_, v)| v.get(name).cloned())
            .filter(|v| !v.trim().is_empty())
    };
    let bounces_url = state_line(STATE_BOUNCES_URL);
    let smtp_url = state_line(STATE_SMTP_URL);
    let return_path = state_line(STATE_RETURN_PATH);

    let mut origin = Vec::new();
    if let Some((path, _)) = &state {
        origin.push(path.display().to_string());
    }
    // The port variables win, as they do in the script.
    if let Some(port) = var(ENV_API_PORT).and_then(|p| p.trim().parse::<u16>().ok()) {
        url = with_port(&url, port);
        origin.push(ENV_API_PORT.to_string());
    }
    if let Some(port) = var(ENV_DB_PORT).and_then(|p| p.trim().parse::<u16>().ok()) {
        db_url = with_port(&db_url, port);
        origin.push(ENV_DB_PORT.to_string());
    }
    LocalStack {
        url,
        anon_key,
        db_url,
        bounces_url,
        smtp_url,
        return_path,
        origin,
    }
}

/// `.local-stack` in `start` or the nearest ancestor that has one.
fn find_stack_dir(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(".local-stack"))
        .find(|d| d.is_dir())
}

fn read_state(path: &Path) -> Option<HashMap<String, String>> {
    let iter = dotenvy::from_path_iter(path).ok()?;
    Some(iter.filter_map(|item| item.ok()).collect())
}

fn with_port(url: &str, port: u16) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_port(Some(port));
            u.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn port_variables_move_both_urls() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_of(&[
            (ENV_STACK_DIR, dir.path().join("none").display().to_string()),
            (ENV_API_PORT, "61321".into()),
            (ENV_DB_PORT, "61322".into()),
        ]);
        let s = resolve(&env, dir.path());
        assert_eq!(s.url, "http://127.0.0.1:61321");
        assert_eq!(
            s.db_url,
            "postgresql://postgres:postgres@127.0.0.1:61322/postgres"
        );
        assert!(
            s.origin.iter().any(|o| o == "MAILSYNC_API_PORT"),
            "{:?}",
            s.origin
        );
    }

    #[test]
    fn the_state_file_gives_the_password_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let stack = dir.path().join(".local-stack");
        std::fs::create_dir(&stack).unwrap();
        std::fs::write(
            stack.join(STATE_FILE),
            "export SUPABASE_URL='http://127.0.0.1:7001'\nexport SUPABASE_ANON_KEY='k1'\nexport SUPABASE_DB_URL='postgresql://postgres:s3cr3t@127.0.0.1:7002/postgres'\n",
        )
        .unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let s = resolve(&env_of(&[]), &nested);
        assert_eq!(s.url, "http://127.0.0.1:7001");
        assert_eq!(s.anon_key, "k1");
        assert!(s.db_url.contains("s3cr3t@127.0.0.1:7002"));
        assert_eq!(s.bounces_url, None);
        let s = resolve(&env_of(&[(ENV_DB_PORT, "7777".into())]), &nested);
        assert!(s.db_url.contains("s3cr3t@127.0.0.1:7777"), "{}", s.db_url);
    }
}
