//! The local stack as it is running: what `scripts/local-stack.sh` would
//! print for `env`, so that the binary and the script never disagree.
//!
//! The script's rules, followed here: the stack directory is
//! `MAILSYNC_STACK_DIR`, else `.local-stack` in the current directory or an
//! ancestor up to the repository's root (a directory holding `.git`) or the
//! home directory, whichever comes first; none above it counts (without
//! either above, only the current directory's). The ports are
//! `MAILSYNC_API_PORT` (54321) and `MAILSYNC_DB_PORT` (54322). When the stack
//! has been started, `up` leaves its `env` lines in `<stack dir>/stack.env`
//! (the anon key signed with the stack's own JWT secret, the database
//! password it really uses); they are read from there, never assumed.
//! Without that file, the password is the stack's `db-password` file when
//! there is one.
//!
//! Those files are trusted only when they are the user's own: a regular
//! file owned by the user running mailsync and writable by nobody else, and,
//! for `stack.env`, naming only URLs on this machine
//! ([`crate::settings::is_loopback_url`]). Any other is ignored, with a note
//! shown under `-v` ([`LocalStack::notes`]): a planted `stack.env` cannot send
//! `login` and the password elsewhere.
//!
//! The stack's own defaults (its URL, database, anon key, SMTP relay and
//! sender) are written here and only here; the settings layer takes them
//! as the last resort for a project that is the local stack.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::settings::{is_loopback_host, is_loopback_url};
use crate::t;

/// The local stack's URL, the default when nothing is configured.
pub const LOCAL_SUPABASE_URL: &str = "http://127.0.0.1:54321";
/// The local stack's database (Supabase's local-development convention).
pub const LOCAL_DB_URL: &str = "postgresql://postgres:postgres@127.0.0.1:54322/postgres";
/// The anon key when no stack state exists: Supabase's documented
/// local-development anon JWT, signed with the documented local secret. Not a
/// secret, and not what a stack started by `scripts/local-stack.sh up`
/// accepts: each stack signs with its own secret and records its own anon
/// key in its `stack.env`, which wins over this.
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
    /// What was found but not trusted, and why (shown under `-v`).
    pub notes: Vec<String>,
}

/// The local stack for this environment (`env` looks variables up), starting
/// the search for `.local-stack` at `cwd` and stopping it at the repository's
/// root or the user's home directory.
pub fn resolve(env: &dyn Fn(&str) -> Option<String>, cwd: &Path) -> LocalStack {
    resolve_in(env, cwd, dirs::home_dir().as_deref())
}

/// [`resolve`] with the home directory given.
fn resolve_in(env: &dyn Fn(&str) -> Option<String>, cwd: &Path, home: Option<&Path>) -> LocalStack {
    let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let mut notes = Vec::new();
    let dir = match var(ENV_STACK_DIR) {
        Some(d) => Some(PathBuf::from(d)),
        None => find_stack_dir(cwd, home, &mut notes),
    };
    let state = dir.as_deref().map(|d| d.join(STATE_FILE)).and_then(|p| {
        let text = read_trusted(&p, &mut notes)?;
        let vars = parse_state(&text)?;
        match vars
            .iter()
            .find(|(k, v)| k.ends_with("_URL") && !on_this_machine(v))
        {
            Some((name, _)) => {
                notes.push(t!(
                    "local-stack-ignored-remote",
                    path = p.display().to_string(),
                    name = name.as_str()
                ));
                None
            }
            None => Some((p, vars)),
        }
    });

    let mut url = state
        .as_ref()
        .and_then(|(_, v)| v.get("SUPABASE_URL").cloned())
        .unwrap_or_else(|| LOCAL_SUPABASE_URL.to_string());
    let anon_key = state
        .as_ref()
        .and_then(|(_, v)| v.get("SUPABASE_ANON_KEY").cloned())
        .unwrap_or_else(|| LOCAL_ANON_KEY.to_string());
    let state_db_url = state
        .as_ref()
        .and_then(|(_, v)| v.get("SUPABASE_DB_URL").cloned());
    let mut db_url = state_db_url
        .or_else(|| {
            // Without the state of `up`: the stack's own password file, if any.
            let password = dir
                .as_deref()
                .and_then(|d| read_trusted(&d.join(PASSWORD_FILE), &mut notes))
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())?;
            let mut url = url::Url::parse(LOCAL_DB_URL).ok()?;
            url.set_password(Some(&password)).ok()?;
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
        notes,
    }
}

/// `.local-stack` in `start` or the nearest ancestor that has one, up to the
/// repository's root (a directory holding `.git`) or `home`, whichever is
/// nearer; without either among the ancestors, `start`'s own only. One found
/// further up is not used: it is noted.
fn find_stack_dir(start: &Path, home: Option<&Path>, notes: &mut Vec<String>) -> Option<PathBuf> {
    let home = home.map(|h| h.canonicalize().unwrap_or_else(|_| h.to_path_buf()));
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    let ancestors: Vec<&Path> = start.ancestors().collect();
    let boundary = ancestors
        .iter()
        .position(|d| d.join(".git").exists() || home.as_deref() == Some(*d))
        .unwrap_or(0);
    let (index, found) = ancestors
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.join(".local-stack")))
        .find(|(_, d)| d.is_dir())?;
    if index <= boundary {
        return Some(found);
    }
    notes.push(t!(
        "local-stack-ignored-above",
        path = found.display().to_string(),
        boundary = ancestors[boundary].display().to_string()
    ));
    None
}

/// The text of one of the stack's files, when it is the user's own: a
/// regular file owned by this user that no one else may write. A missing
/// file is `None` silently; any other refusal is noted.
fn read_trusted(path: &Path, notes: &mut Vec<String>) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    // The checks are made on the file opened, not on its name again.
    let meta = file.metadata().ok()?;
    let shown = path.display().to_string();
    if !meta.is_file() {
        notes.push(t!("local-stack-ignored-not-file", path = shown));
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            notes.push(t!("local-stack-ignored-owner", path = shown));
            return None;
        }
        if meta.mode() & 0o022 != 0 {
            notes.push(t!("local-stack-ignored-writable", path = shown));
            return None;
        }
    }
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The `export NAME='value'` lines of a state file.
fn parse_state(text: &str) -> Option<HashMap<String, String>> {
    let iter = dotenvy::from_read_iter(text.as_bytes());
    Some(iter.filter_map(|item| item.ok()).collect())
}

/// Whether a URL of the state file is on this machine: its host (every host
/// of a database URL, `host=` and `hostaddr=` included) is a loopback
/// address or `localhost`. A value that does not parse is not.
fn on_this_machine(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return true;
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        let Ok(config) = value.parse::<tokio_postgres::Config>() else {
            return false;
        };
        let hosts_local = config.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => is_loopback_host(name),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => true,
        });
        return !config.get_hosts().is_empty()
            && hosts_local
            && config.get_hostaddrs().iter().all(|a| a.is_loopback());
    }
    url::Url::parse(value).is_ok_and(|u| is_loopback_url(&u))
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
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        let s = resolve_in(&env_of(&[]), &nested, None);
        assert_eq!(s.url, "http://127.0.0.1:7001");
        assert_eq!(s.anon_key, "k1");
        assert!(s.db_url.contains("s3cr3t@127.0.0.1:7002"));
        assert_eq!(s.bounces_url, None);
        let s = resolve_in(&env_of(&[(ENV_DB_PORT, "7777".into())]), &nested, None);
        assert!(s.db_url.contains("s3cr3t@127.0.0.1:7777"), "{}", s.db_url);
        assert!(s.notes.is_empty(), "{:?}", s.notes);
    }

    #[test]
    fn the_walk_stops_at_the_repository_or_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".local-stack")).unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        let mut notes = Vec::new();
        let found =
            |home: Option<&Path>, notes: &mut Vec<String>| find_stack_dir(&nested, home, notes);
        // Neither a repository nor home above: the current directory only.
        assert_eq!(found(None, &mut notes), None);
        assert_eq!(notes.len(), 1, "{notes:?}");
        // Home above it: the walk reaches it.
        notes.clear();
        assert!(found(Some(dir.path()), &mut notes).is_some());
        assert!(notes.is_empty());
        // Home or a repository below it: the walk stops there.
        assert_eq!(found(Some(&dir.path().join("a")), &mut notes), None);
        std::fs::create_dir(dir.path().join("a/.git")).unwrap();
        assert_eq!(found(Some(dir.path()), &mut notes), None);
        assert_eq!(notes.len(), 2, "{notes:?}");
        // Inside the repository, the nearest wins.
        std::fs::create_dir(dir.path().join("a/.local-stack")).unwrap();
        let inside = found(None, &mut notes).unwrap();
        assert_eq!(
            inside,
            dir.path().canonicalize().unwrap().join("a/.local-stack")
        );
    }

    #[test]
    fn only_urls_on_this_machine_are_taken() {
        for local in [
            "http://127.0.0.1:54321",
            "http://localhost:54321",
            "http://[::1]:54321",
            "postgresql://postgres:pw@127.0.0.1:54322/postgres",
            "postgres://postgres@localhost/postgres?sslmode=disable",
            "smtp://127.0.0.1:54326",
            "imap://bounces:pw@127.0.0.1:54327/INBOX",
            "",
        ] {
            assert!(on_this_machine(local), "{local}");
        }
        for remote in [
            "https://project.supabase.co",
            "http://127.0.0.1.nip.io:54321",
            "smtp://user:pw@127.relay.example.com",
            "postgresql://postgres:pw@db.example.com:5432/postgres",
            "postgresql://postgres:pw@127.0.0.1:54322/postgres?host=db.example.com",
            "postgresql://postgres:pw@127.0.0.1:54322/postgres?hostaddr=192.0.2.1",
            "postgresql://postgres:pw@127.0.0.1,db.example.com/postgres",
            "not a url",
        ] {
            assert!(!on_this_machine(remote), "{remote}");
        }
    }
}
