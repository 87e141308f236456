//! Configuration: flags > environment > `.env` file > defaults, resolved once
//! into a [`Config`] that remembers where each value came from (for
//! `mailsync config`). Secrets are held in [`Secret`], whose `Debug` and
//! `Display` never show the value. This module reads settings; it does not
//! talk to any server.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use crate::error::{Error, Result};
use crate::i18n::Lang;
use crate::{t, t_in};

/// The local stack's URL, the default when nothing is configured.
pub const LOCAL_SUPABASE_URL: &str = "http://127.0.0.1:54321";
/// The local stack's database (Supabase's local-development convention).
pub const LOCAL_DB_URL: &str = "postgresql://postgres:postgres@127.0.0.1:54322/postgres";
/// The local stack's anon key: Supabase's documented local-development anon
/// JWT, signed with the documented local secret. Not a secret.
pub const LOCAL_ANON_KEY: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0";

pub const ENV_URL: &str = "SUPABASE_URL";
pub const ENV_ANON_KEY: &str = "SUPABASE_ANON_KEY";
pub const ENV_DB_URL: &str = "SUPABASE_DB_URL";
pub const ENV_ACCESS_TOKEN: &str = "MAILSYNC_ACCESS_TOKEN";
/// Set to 1 to allow a non-local `SUPABASE_URL` over plain `http://`.
pub const ENV_ALLOW_HTTP: &str = "MAILSYNC_ALLOW_INSECURE_HTTP";

/// URL query parameters and key=value settings whose values are secret.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword", "sslkey"];

/// A connection URL (or libpq key=value string) as it may be shown: the
/// password of the user part and the values of `password`, `sslpassword`
/// and `sslkey` replaced by `******`. Works on text that does not parse.
pub fn mask_url(text: &str) -> String {
    const MASK: &str = "******";
    let is_secret = |key: &str| {
        let key = url::form_urlencoded::parse(format!("{key}=").as_bytes())
            .next()
            .map(|(k, _)| k.to_ascii_lowercase())
            .unwrap_or_default();
        SECRET_PARAMS.contains(&key.trim())
    };
    let Some(scheme_end) = text.find("://") else {
        // key=value form: `password=x` (or `password = 'x y'`).
        let mut out = String::new();
        let mut rest = text;
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq]
                .trim_end()
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or("");
            let (head, tail) = rest.split_at(eq + 1);
            out.push_str(head);
            let tail_trimmed = tail.trim_start();
            out.push_str(&tail[..tail.len() - tail_trimmed.len()]);
            let value_len = if let Some(stripped) = tail_trimmed.strip_prefix('\'') {
                stripped
                    .find('\'')
                    .map(|i| i + 2)
                    .unwrap_or(tail_trimmed.len())
            } else {
                tail_trimmed
                    .find(char::is_whitespace)
                    .unwrap_or(tail_trimmed.len())
            };
            if is_secret(key) {
                out.push_str(MASK);
            } else {
                out.push_str(&tail_trimmed[..value_len]);
            }
            rest = &tail_trimmed[value_len..];
        }
        out.push_str(rest);
        return out;
    };
    let (scheme, after) = text.split_at(scheme_end + 3);
    // The user part ends at the last '@' before the query (or anywhere, for
    // a password with an unencoded '?').
    let query_at = after.find('?').unwrap_or(after.len());
    let at = after[..query_at].rfind('@').or_else(|| after.rfind('@'));
    let mut out = String::from(scheme);
    let rest = match at {
        Some(at) => {
            let user_part = &after[..at];
            match user_part.find(':') {
                Some(colon) => {
                    out.push_str(&user_part[..colon + 1]);
                    out.push_str(MASK);
                }
                None => out.push_str(user_part),
            }
            out.push('@');
            &after[at + 1..]
        }
        None => after,
    };
    match rest.find('?') {
        Some(q) => {
            out.push_str(&rest[..q + 1]);
            let (query, fragment) = match rest[q + 1..].find('#') {
                Some(h) => (&rest[q + 1..q + 1 + h], &rest[q + 1 + h..]),
                None => (&rest[q + 1..], ""),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret(k) => format!("{k}={MASK}"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(rest),
    }
    out
}

/// The names `supabase status -o env` writes, read from an env file when
/// mailsync's own name is not there (mailsync's names win), in order of
/// preference: the anon JWT works with every Supabase API gateway, the
/// newer publishable key where there is no anon key.
pub const SUPABASE_CLI_NAMES: [(&str, &[&str]); 3] = [
    (ENV_URL, &["API_URL"]),
    (ENV_ANON_KEY, &["ANON_KEY", "PUBLISHABLE_KEY"]),
    (ENV_DB_URL, &["DB_URL"]),
];

/// A value that must never reach a log, an error message or `--json` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it (a header, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked form that shows only the length class, for `mailsync config`.
    pub fn masked(&self) -> String {
        self.masked_in(crate::i18n::current())
    }

    /// [`Secret::masked`] in `lang` (English for `--json`).
    pub fn masked_in(&self, lang: Lang) -> String {
        if self.0.is_empty() {
            t_in!(lang, "secret-empty")
        } else {
            t_in!(
                lang,
                "secret-masked",
                chars = self.0.chars().count().to_string()
            )
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(******)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Environment,
    EnvFile(PathBuf),
    /// An env file, under the Supabase CLI's name for the setting.
    EnvFileAs(PathBuf, &'static str),
    SavedSession(PathBuf),
    /// The running local stack: its state file and/or port variables.
    LocalStack(Vec<String>),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(crate::i18n::current()))
    }
}

impl Source {
    /// Where the value came from, in `lang` (`mailsync config --json`
    /// writes it in English whatever the run's language).
    pub fn describe(&self, lang: Lang) -> String {
        match self {
            Source::Flag => t_in!(lang, "source-flag"),
            Source::Environment => t_in!(lang, "source-environment"),
            Source::EnvFile(p) => t_in!(lang, "source-env-file", file = p.display().to_string()),
            Source::EnvFileAs(p, name) => t_in!(
                lang,
                "source-env-file-as",
                file = p.display().to_string(),
                name = *name
            ),
            Source::SavedSession(p) => {
                t_in!(lang, "source-saved-session", file = p.display().to_string())
            }
            Source::LocalStack(origin) => {
                t_in!(lang, "source-local-stack", origin = origin.join(", "))
            }
            Source::Default => t_in!(lang, "source-default"),
        }
    }
}

/// A resolved value and its origin.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub supabase_url: Option<String>,
    pub anon_key: Option<String>,
    pub db_url: Option<String>,
    pub env_file: Option<PathBuf>,
    /// `--allow-insecure-http`: a non-local project over plain http.
    pub allow_insecure_http: bool,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub supabase_url: Setting<Url>,
    pub anon_key: Option<Setting<Secret>>,
    /// The database URL. Defaults to the local stack's only when the project
    /// is the local stack: a hosted project's database is never guessed.
    pub db_url: Option<Setting<Secret>>,
    pub access_token: Option<Setting<Secret>>,
    /// Delivery settings (MAILSYNC_SMTP_URL, MAILSYNC_FROM, MAILSYNC_LIST_UNSUBSCRIBE), read by `crate::smtp`.
    pub delivery: Vec<(&'static str, Setting<String>)>,
}

impl Config {
    /// Resolves the configuration from flags, the process environment, the
    /// env file (`--env-file`, else `./.env` when present) and defaults.
    pub fn load(overrides: &Overrides) -> Result<Self> {
        Self::load_with(overrides, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment given as a function, for tests.
    pub fn load_with(overrides: &Overrides, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let file = EnvFile::read(overrides.env_file.as_deref())?;
        let lookup = |flag: &Option<String>, name: &str| -> Option<(String, Source)> {
            if let Some(v) = flag {
                return Some((v.clone(), Source::Flag));
            }
            if let Some(v) = env(name).filter(|v| !v.is_empty()) {
                return Some((v, Source::Environment));
            }
            if let Some(v) = file.get(name) {
                return Some((v, Source::EnvFile(file.path.clone())));
            }
            let aliases = SUPABASE_CLI_NAMES
                .iter()
                .find(|(ours, _)| *ours == name)
                .map(|(_, theirs)| *theirs)
                .unwrap_or_default();
            aliases.iter().find_map(|alias| {
                file.get(alias)
                    .map(|v| (v, Source::EnvFileAs(file.path.clone(), alias)))
            })
        };

        // With no URL configured: the local stack as it is running.
        let cwd = std::env::current_dir().unwrap_or_default();
        let stack = crate::local_stack::resolve(&env, &cwd);
        let stack_source = || {
            if stack.origin.is_empty() {
                Source::Default
            } else {
                Source::LocalStack(stack.origin.clone())
            }
        };
        let (url_text, url_source) = lookup(&overrides.supabase_url, ENV_URL)
            .unwrap_or_else(|| (stack.url.clone(), stack_source()));
        let allow_http = overrides.allow_insecure_http
            || lookup(&None, ENV_ALLOW_HTTP)
                .is_some_and(|(v, _)| matches!(v.trim(), "1" | "true" | "yes"));
        let supabase_url = parse_project_url(&url_text, &url_source, allow_http)?;
        let local = is_local_url(&supabase_url);

        let anon_key = match lookup(&overrides.anon_key, ENV_ANON_KEY) {
            Some((v, source)) => Some(Setting {
                value: Secret::new(v),
                source,
            }),
            None if local => Some(Setting {
                value: Secret::new(stack.anon_key.clone()),
                source: stack_source(),
            }),
            None => None,
        };

        // The local stack's database only goes with the local stack's API:
        // with a hosted SUPABASE_URL, `db reset` must never reach this
        // machine's database because SUPABASE_DB_URL was forgotten.
        let db_url = match lookup(&overrides.db_url, ENV_DB_URL) {
            Some((v, source)) => Some((v, source)),
            None if local => Some((stack.db_url.clone(), stack_source())),
            None => None,
        }
        .map(|(value, source)| Setting {
            value: Secret::new(value),
            source,
        });

        let access_token = lookup(&None, ENV_ACCESS_TOKEN).map(|(v, source)| Setting {
            value: Secret::new(v.trim()),
            source,
        });

        let delivery = crate::smtp::SETTINGS
            .iter()
            .filter_map(|name| {
                lookup(&None, name).map(|(value, source)| (*name, Setting { value, source }))
            })
            .collect();

        Ok(Config {
            delivery,
            supabase_url: Setting {
                value: supabase_url,
                source: url_source,
            },
            anon_key,
            db_url,
            access_token,
        })
    }

    /// A delivery setting's value and where it came from.
    pub fn setting(&self, name: &str) -> Option<(String, Source)> {
        self.delivery
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| (s.value.clone(), s.source.clone()))
    }

    /// `{SUPABASE_URL}/rest/v1`, PostgREST's root.
    pub fn rest_url(&self) -> String {
        self.service_url("rest/v1")
    }

    /// `{SUPABASE_URL}/auth/v1`, Supabase Auth's root.
    pub fn auth_url(&self) -> String {
        self.service_url("auth/v1")
    }

    /// `{SUPABASE_URL}/realtime/v1`, Supabase Realtime's root.
    pub fn realtime_url(&self) -> String {
        self.service_url("realtime/v1")
    }

    fn service_url(&self, path: &str) -> String {
        format!(
            "{}/{path}",
            self.supabase_url.value.as_str().trim_end_matches('/')
        )
    }

    /// The project URL as people write it, for messages.
    pub fn project_display(&self) -> String {
        self.supabase_url
            .value
            .as_str()
            .trim_end_matches('/')
            .to_string()
    }

    /// Whether the project is on this machine (the local stack or `supabase start`).
    pub fn is_local(&self) -> bool {
        is_local_url(&self.supabase_url.value)
    }

    /// The database URL (the `db` commands), or a configuration error naming
    /// the variable: a project that is not the local stack has no default.
    pub fn db_url(&self) -> Result<&Secret> {
        self.db_url.as_ref().map(|s| &s.value).ok_or_else(|| {
            Error::config(t!(
                "config-error-no-db-url",
                name = ENV_DB_URL,
                project = self.project_display()
            ))
            .with_hint(t!("config-hint-db-url", name = ENV_DB_URL))
        })
    }

    /// The anon (publishable) key, or a configuration error naming the variable.
    pub fn anon_key(&self) -> Result<&Secret> {
        self.anon_key.as_ref().map(|s| &s.value).ok_or_else(|| {
            Error::config(t!(
                "config-error-no-anon-key",
                name = ENV_ANON_KEY,
                project = self.project_display()
            ))
        })
    }
}

fn parse_project_url(text: &str, source: &Source, allow_http: bool) -> Result<Url> {
    let setting = format!("{ENV_URL} ({source})");
    let url = Url::parse(text.trim()).map_err(|e| {
        Error::config(t!(
            "config-error-url-invalid",
            setting = setting.as_str(),
            reason = e.to_string()
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::config(t!(
            "config-error-url-scheme",
            setting = setting.as_str()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(t!(
            "config-error-url-credentials",
            setting = setting.as_str()
        )));
    }
    if url.scheme() == "http" && !is_local_url(&url) && !allow_http {
        return Err(Error::config(t!(
            "config-error-url-plain-http",
            setting = setting.as_str(),
            host = url.host_str().unwrap_or("?")
        ))
        .with_hint(t!("config-hint-plain-http", name = ENV_ALLOW_HTTP)));
    }
    Ok(url)
}

fn is_local_url(url: &Url) -> bool {
    url.host_str()
        .is_some_and(crate::postgres::is_loopback_host)
}

/// The variables of a `.env` file, read without touching the process
/// environment (so the environment keeps precedence).
struct EnvFile {
    path: PathBuf,
    vars: HashMap<String, String>,
}

impl EnvFile {
    fn read(explicit: Option<&Path>) -> Result<Self> {
        let (path, required) = match explicit {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(".env"), false),
        };
        let mut vars = HashMap::new();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(godotenv_escapes(&text)),
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::config(t!(
                    "config-error-reading",
                    file = path.display().to_string(),
                    reason = e.to_string()
                )));
            }
        };
        match text.map(|t| dotenvy::from_read_iter(std::io::Cursor::new(t))) {
            None => {}
            Some(iter) => {
                for item in iter {
                    let (k, v) = item.map_err(|e| {
                        Error::config(t!(
                            "config-error-reading",
                            file = path.display().to_string(),
                            reason = describe_dotenv(&e)
                        ))
                    })?;
                    vars.insert(k, v);
                }
            }
        }
        Ok(Self { path, vars })
    }

    fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// `supabase status -o env` quotes values as Go's godotenv does: in double
/// quotes, with `!`, `` ` `` and carriage returns escaped as well as `\\`,
/// `"`, `$` and newlines. dotenvy refuses those three escapes, so inside
/// double quotes they are turned back into their characters first; every
/// other byte is left for dotenvy to read.
fn godotenv_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut double = false;
    for line in text.split_inclusive('\n') {
        if !double && line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut single = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if double => match chars.peek() {
                    Some('!') | Some('`') => out.extend(chars.next()),
                    Some('r') => {
                        chars.next();
                        out.push('\r');
                    }
                    _ => {
                        out.push(c);
                        out.extend(chars.next());
                    }
                },
                '"' if !single => {
                    double = !double;
                    out.push(c);
                }
                '\'' if !double => {
                    single = !single;
                    out.push(c);
                }
                _ => out.push(c),
            }
        }
    }
    out
}

/// A dotenv error without the offending line's text (it may hold a secret).
fn describe_dotenv(e: &dotenvy::Error) -> String {
    match e {
        dotenvy::Error::LineParse(_, index) => {
            t!("config-env-line-unparsable", byte = index.to_string())
        }
        dotenvy::Error::Io(io) => io.to_string(),
        _ => t!("config-env-unreadable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_target_the_local_stack() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.env");
        std::fs::write(&empty, "").unwrap();
        let overrides = Overrides {
            env_file: Some(empty),
            ..Default::default()
        };
        let nowhere = dir.path().join("no-stack").display().to_string();
        let config =
            Config::load_with(&overrides, env_of(&[("MAILSYNC_STACK_DIR", &nowhere)])).unwrap();
        assert_eq!(config.rest_url(), "http://127.0.0.1:54321/rest/v1");
        assert_eq!(config.anon_key().unwrap().expose(), LOCAL_ANON_KEY);
        assert_eq!(config.db_url().unwrap().expose(), LOCAL_DB_URL);
        assert!(config.access_token.is_none());
    }

    #[test]
    fn flags_beat_environment_which_beats_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("custom.env");
        std::fs::write(
            &file,
            "SUPABASE_URL=https://file.supabase.co\nSUPABASE_ANON_KEY=from-file\nSUPABASE_DB_URL=postgres://file\n",
        )
        .unwrap();
        let overrides = Overrides {
            supabase_url: Some("https://flag.supabase.co".into()),
            env_file: Some(file.clone()),
            ..Default::default()
        };
        let config =
            Config::load_with(&overrides, env_of(&[("SUPABASE_ANON_KEY", "from-env")])).unwrap();
        assert_eq!(config.project_display(), "https://flag.supabase.co");
        assert_eq!(config.supabase_url.source, Source::Flag);
        assert_eq!(config.anon_key().unwrap().expose(), "from-env");
        assert_eq!(config.db_url().unwrap().expose(), "postgres://file");
        assert_eq!(config.db_url.unwrap().source, Source::EnvFile(file));
    }

    #[test]
    fn remote_url_without_anon_key_is_a_config_error_naming_the_variable() {
        let overrides = Overrides {
            supabase_url: Some("https://abc.supabase.co".into()),
            env_file: Some(PathBuf::from("/nonexistent/definitely/missing.env")),
            ..Default::default()
        };
        let err = Config::load_with(&overrides, env_of(&[])).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Config);
        assert!(err.message().contains("missing.env"), "{err}");

        let overrides = Overrides {
            supabase_url: Some("https://abc.supabase.co".into()),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.env");
        std::fs::write(&empty, "").unwrap();
        let config = Config::load_with(
            &Overrides {
                env_file: Some(empty),
                ..overrides
            },
            env_of(&[]),
        )
        .unwrap();
        let err = config.anon_key().unwrap_err();
        assert!(err.message().contains("SUPABASE_ANON_KEY"));
        assert_eq!(err.kind().exit_code(), 3);
    }

    #[test]
    fn a_hosted_project_has_no_default_database() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.env");
        std::fs::write(&empty, "").unwrap();
        // A running local stack is there to be picked up: it must not be.
        let stack = dir.path().join("stack");
        std::fs::create_dir(&stack).unwrap();
        std::fs::write(
            stack.join(crate::local_stack::STATE_FILE),
            "export SUPABASE_DB_URL='postgresql://postgres:pw@127.0.0.1:7002/postgres'\n",
        )
        .unwrap();
        let stack = stack.display().to_string();
        let hosted = Overrides {
            supabase_url: Some("https://abcdefgh.supabase.co".into()),
            env_file: Some(empty.clone()),
            ..Default::default()
        };
        let env = [
            ("MAILSYNC_STACK_DIR", stack.as_str()),
            ("MAILSYNC_DB_PORT", "7003"),
        ];
        let config = Config::load_with(&hosted, env_of(&env)).unwrap();
        assert!(config.db_url.is_none());
        let err = config.db_url().unwrap_err();
        assert_eq!(err.kind().exit_code(), 3);
        assert!(err.message().contains("SUPABASE_DB_URL"), "{err}");
        assert!(!err.message().contains("7002") && !err.message().contains("7003"));

        // Given, it is used; the local stack keeps its default.
        let given = Overrides {
            db_url: Some("postgresql://postgres.abcdefgh:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres?pgbouncer=true".into()),
            ..hosted
        };
        let config = Config::load_with(&given, env_of(&env)).unwrap();
        assert!(config
            .db_url()
            .unwrap()
            .expose()
            .contains("pooler.supabase.com"));
        let local = Overrides {
            env_file: Some(empty),
            ..Default::default()
        };
        let config = Config::load_with(&local, env_of(&env)).unwrap();
        assert!(config.db_url().unwrap().expose().contains("127.0.0.1:7003"));
    }

    #[test]
    fn passwords_are_masked_in_every_url_position() {
        for url in [
            "postgresql://postgres:hunter2@db.x.supabase.co:5432/postgres",
            "postgresql://postgres:hun%40ter2@db.x.supabase.co/postgres?sslmode=require",
            "postgresql://postgres@db.x.supabase.co/postgres?password=hunter2",
            "postgresql://db.x.supabase.co/postgres?sslmode=verify-full&sslpassword=hunter2&sslkey=/k/hunter2.key",
            "postgresql://u:hunter2@h1:5432,h2:5433/db?PassWord=hunter2",
            "postgresql://u:hun?ter2@host/db",
            "host=db.x.supabase.co user=postgres password=hunter2 sslpassword='hunter2 x' sslkey=/hunter2",
            "host=h password = hunter2 dbname=postgres",
        ] {
            let shown = mask_url(url);
            assert!(!shown.contains("hunter2"), "{url} -> {shown}");
            assert!(shown.contains("******"), "{url} -> {shown}");
        }
        assert_eq!(
            mask_url("postgresql://postgres:pw@127.0.0.1:54322/postgres?sslmode=disable"),
            "postgresql://postgres:******@127.0.0.1:54322/postgres?sslmode=disable"
        );
    }

    #[test]
    fn a_remote_project_over_plain_http_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.env");
        std::fs::write(&empty, "").unwrap();
        let overrides = Overrides {
            supabase_url: Some("http://abc.supabase.co".into()),
            env_file: Some(empty.clone()),
            ..Default::default()
        };
        let err = Config::load_with(&overrides, env_of(&[])).unwrap_err();
        assert_eq!(err.kind().exit_code(), 3);
        assert!(err.message().contains("http://"), "{err}");
        assert!(Config::load_with(&overrides, env_of(&[(ENV_ALLOW_HTTP, "1")])).is_ok());
        let allowed = Overrides {
            allow_insecure_http: true,
            ..overrides.clone()
        };
        assert!(Config::load_with(&allowed, env_of(&[])).is_ok());
        for local in [
            "http://127.0.0.1:54321",
            "http://localhost:8000",
            "http://[::1]:1",
        ] {
            let o = Overrides {
                supabase_url: Some(local.into()),
                env_file: Some(empty.clone()),
                ..Default::default()
            };
            assert!(Config::load_with(&o, env_of(&[])).is_ok(), "{local}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("eyJsecret");
        assert!(!format!("{s:?} {s}").contains("eyJ"));
        assert!(!s.masked().contains("eyJ"));
    }

    /// `supabase status -o env`, byte for byte as the CLI writes it
    /// (godotenv's Marshal: sorted keys, double quotes, `!` `$` `"` escaped).
    const SUPABASE_STATUS_ENV: &str = r#"ANON_KEY="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJzdXBhYmFzZS1kZW1vIiwicm9sZSI6ImFub24iLCJleHAiOjE5ODM4MTI5OTZ9.CRXP1A7WOeoJeXxjNni43kdQwgnWNReilDMblYTn_I0"
API_URL="http://127.0.0.1:54321"
DB_URL="postgresql://postgres:p\$ss\!w\"rd\`x@127.0.0.1:54322/postgres"
GRAPHQL_URL="http://127.0.0.1:54321/graphql/v1"
INBUCKET_URL="http://127.0.0.1:54324"
JWT_SECRET="super-secret-jwt-token-with-at-least-32-characters-long"
MAILPIT_URL="http://127.0.0.1:54324"
MCP_URL="http://127.0.0.1:54321/mcp"
PUBLISHABLE_KEY="sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
S3_PROTOCOL_ACCESS_KEY_ID="625729a08b95bf1b7ff351a663f3a23c"
S3_PROTOCOL_ACCESS_KEY_SECRET="850181e4652dd023b7a98c58ae0d2d34bd487ee0cc3254aed6eda37307425907"
S3_PROTOCOL_REGION="local"
SECRET_KEY="sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
SERVICE_ROLE_KEY="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.service"
STORAGE_S3_URL="http://127.0.0.1:54321/storage/v1/s3"
STUDIO_URL="http://127.0.0.1:54323"

"#;

    #[test]
    fn supabase_status_env_output_is_an_env_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".env");
        std::fs::write(&file, SUPABASE_STATUS_ENV).unwrap();
        let overrides = Overrides {
            env_file: Some(file.clone()),
            ..Default::default()
        };
        let config = Config::load_with(&overrides, env_of(&[])).unwrap();
        assert_eq!(config.project_display(), "http://127.0.0.1:54321");
        assert_eq!(
            config.supabase_url.source,
            Source::EnvFileAs(file.clone(), "API_URL")
        );
        assert_eq!(config.anon_key().unwrap().expose(), LOCAL_ANON_KEY);
        assert_eq!(
            config.anon_key.as_ref().unwrap().source.to_string(),
            format!("env file {} (ANON_KEY)", file.display())
        );
        assert_eq!(
            config.db_url().unwrap().expose(),
            "postgresql://postgres:p$ss!w\"rd`x@127.0.0.1:54322/postgres"
        );
        assert_eq!(
            config.db_url.as_ref().unwrap().source,
            Source::EnvFileAs(file.clone(), "DB_URL")
        );
        // Never the service role: its key is in the file but not used.
        assert!(config.access_token.is_none());

        // Without ANON_KEY (newer CLIs), the publishable key.
        let newer: String = SUPABASE_STATUS_ENV
            .lines()
            .filter(|l| !l.starts_with("ANON_KEY="))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&file, newer).unwrap();
        let config = Config::load_with(&overrides, env_of(&[])).unwrap();
        assert_eq!(
            config.anon_key().unwrap().expose(),
            "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
        );
        assert_eq!(
            config.anon_key.as_ref().unwrap().source,
            Source::EnvFileAs(file.clone(), "PUBLISHABLE_KEY")
        );
    }

    #[test]
    fn mailsync_names_win_over_the_supabase_cli_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("both.env");
        std::fs::write(
            &file,
            format!(
                "{SUPABASE_STATUS_ENV}# mailsync's own, after\nSUPABASE_URL='https://ours.supabase.co'\nSUPABASE_DB_URL=postgres://ours\n"
            ),
        )
        .unwrap();
        let overrides = Overrides {
            env_file: Some(file.clone()),
            ..Default::default()
        };
        let config = Config::load_with(&overrides, env_of(&[])).unwrap();
        assert_eq!(config.project_display(), "https://ours.supabase.co");
        assert_eq!(config.supabase_url.source, Source::EnvFile(file.clone()));
        assert_eq!(config.db_url().unwrap().expose(), "postgres://ours");
        // Not given under mailsync's name: the CLI's.
        assert_eq!(
            config.anon_key.as_ref().unwrap().source,
            Source::EnvFileAs(file.clone(), "ANON_KEY")
        );
        // The environment still beats the file, whatever its names.
        let config =
            Config::load_with(&overrides, env_of(&[("SUPABASE_ANON_KEY", "from-env")])).unwrap();
        assert_eq!(config.anon_key().unwrap().expose(), "from-env");
    }

    #[test]
    fn godotenv_escapes_are_read_only_inside_double_quotes() {
        assert_eq!(godotenv_escapes(r#"A="x\!y\`z\$w""#), r#"A="x!y`z\$w""#);
        assert_eq!(godotenv_escapes(r"A='x\!y'"), r"A='x\!y'");
        assert_eq!(
            godotenv_escapes("# it's \"a\nB=\"c\\!\""),
            "# it's \"a\nB=\"c!\""
        );
    }
}
