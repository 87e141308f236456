//! Settings: every value mailsync reads from outside, resolved the one same
//! way (flag > environment > `.env` file > the local stack > default) into
//! a [`Config`] that remembers where each value came from (for `mailsync
//! config`), the language and the import limits included.
//!
//! The bottom layer: it reads settings and the local stack's state, and
//! talks to no server. [`Secret`] holds what must never be shown,
//! [`Source`] says where a value came from, [`is_loopback_host`] is the one
//! rule for "this machine". Typed settings: the delivery settings
//! ([`SmtpSettings`], by [`Config::smtp_settings`]) and the bounce mailbox
//! ([`BounceMailbox`], by [`Config::bounce_mailbox`]), parsed when a command
//! asks for them so that a wrong SMTP URL does not stop `contacts list`.

mod bounces;
pub mod ca_file;
pub mod delivery;
mod env_file;
mod loopback;
mod secret;
mod source;

use std::path::{Path, PathBuf};

use url::Url;

pub use bounces::{BounceMailbox, ENV_BOUNCES_CA_FILE, ENV_BOUNCES_URL};
pub use delivery::{
    Security, SmtpServer, SmtpSettings, ENV_FROM, ENV_LIST_UNSUBSCRIBE, ENV_RETURN_PATH,
    ENV_SMTP_CA_FILE, ENV_SMTP_URL, ENV_UNSUBSCRIBE_SECRET,
};
pub use loopback::{is_loopback_host, is_loopback_url};
pub use secret::{mask_url, Secret};
pub use source::{Setting, Source};

use crate::error::{Error, Result};
use crate::i18n::Lang;
use crate::local_stack::LocalStack;
use crate::t;
use env_file::EnvFile;

pub const ENV_URL: &str = "SUPABASE_URL";
pub const ENV_ANON_KEY: &str = "SUPABASE_ANON_KEY";
pub const ENV_DB_URL: &str = "SUPABASE_DB_URL";
pub const ENV_ACCESS_TOKEN: &str = "MAILSYNC_ACCESS_TOKEN";
/// Set to 1 to allow a non-local `SUPABASE_URL` over plain `http://`.
pub const ENV_ALLOW_HTTP: &str = "MAILSYNC_ALLOW_INSECURE_HTTP";
/// The language of the messages (`en`, `fr`); else the locale's.
pub const ENV_LANG: &str = "MAILSYNC_LANG";
/// Where `mailsync login` saves sessions; else the user's config directory.
pub const ENV_CONFIG_DIR: &str = "MAILSYNC_CONFIG_DIR";
/// `import --in-flight`.
pub const ENV_IMPORT_IN_FLIGHT: &str = "MAILSYNC_IMPORT_IN_FLIGHT";
/// `import --max-entry-size`.
pub const ENV_IMPORT_MAX_ENTRY_SIZE: &str = "MAILSYNC_IMPORT_MAX_ENTRY_SIZE";
/// `import --max-shared-strings`.
pub const ENV_IMPORT_MAX_SHARED_STRINGS: &str = "MAILSYNC_IMPORT_MAX_SHARED_STRINGS";
/// `import --max-cells`.
pub const ENV_IMPORT_MAX_CELLS: &str = "MAILSYNC_IMPORT_MAX_CELLS";
/// `import --max-cell-length`.
pub const ENV_IMPORT_MAX_CELL_LENGTH: &str = "MAILSYNC_IMPORT_MAX_CELL_LENGTH";

/// The names `supabase status -o env` writes, read from an env file when
/// mailsync's own name is not there (mailsync's names win), in order of
/// preference: the anon JWT works with every Supabase API gateway, the
/// newer publishable key where there is no anon key.
pub const SUPABASE_CLI_NAMES: [(&str, &[&str]); 3] = [
    (ENV_URL, &["API_URL"]),
    (ENV_ANON_KEY, &["ANON_KEY", "PUBLISHABLE_KEY"]),
    (ENV_DB_URL, &["DB_URL"]),
];

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

/// The delivery settings as given (flag > environment > `.env`), typed by
/// [`Config::smtp_settings`] when `campaigns deliver` asks for them.
#[derive(Debug, Clone, Default)]
pub struct DeliveryValues {
    /// `MAILSYNC_SMTP_URL` (may hold the password).
    pub smtp_url: Option<Setting<Secret>>,
    /// `MAILSYNC_FROM`.
    pub from: Option<Setting<String>>,
    /// `MAILSYNC_RETURN_PATH`.
    pub return_path: Option<Setting<String>>,
    /// `MAILSYNC_LIST_UNSUBSCRIBE`.
    pub list_unsubscribe: Option<Setting<String>>,
    /// `MAILSYNC_UNSUBSCRIBE_SECRET`.
    pub unsubscribe_secret: Option<Setting<Secret>>,
    /// `MAILSYNC_SMTP_CA_FILE`.
    pub smtp_ca_file: Option<Setting<String>>,
}

/// The import's settings from the environment or `.env`, as written: the
/// import reads them with the parser of its flags, and a flag wins.
#[derive(Debug, Clone, Default)]
pub struct ImportValues {
    pub in_flight: Option<Setting<String>>,
    pub max_entry_size: Option<Setting<String>>,
    pub max_shared_strings: Option<Setting<String>>,
    pub max_cells: Option<Setting<String>>,
    pub max_cell_length: Option<Setting<String>>,
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
    /// `campaigns deliver`'s settings, as given.
    pub delivery: DeliveryValues,
    /// `MAILSYNC_BOUNCES_URL`; defaults to the local stack's bounce mailbox
    /// (its state file's) only when the project is the local stack.
    pub bounces_url: Option<Setting<Secret>>,
    /// `MAILSYNC_BOUNCES_CA_FILE`.
    pub bounces_ca_file: Option<Setting<String>>,
    /// Where sessions are saved: `MAILSYNC_CONFIG_DIR`, else the user's
    /// config directory (none when the system has none).
    pub session_dir: Option<Setting<PathBuf>>,
    /// The import's settings.
    pub import: ImportValues,
    /// The local stack's files found but not trusted, and why (`-v`).
    pub local_stack_notes: Vec<String>,
}

/// Where a setting can come from, read once: the flags, the process
/// environment, the env file.
struct Resolver<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: EnvFile,
}

impl Resolver<'_> {
    /// The value of `name` and its source: the flag, else the environment,
    /// else the env file (under mailsync's name, then the Supabase CLI's).
    fn lookup(&self, flag: Option<&String>, name: &str) -> Option<(String, Source)> {
        if let Some(v) = flag {
            return Some((v.clone(), Source::Flag));
        }
        if let Some(v) = (self.env)(name).filter(|v| !v.is_empty()) {
            return Some((v, Source::Environment));
        }
        if let Some(v) = self.file.get(name) {
            return Some((v, Source::EnvFile(self.file.path.clone())));
        }
        let aliases = SUPABASE_CLI_NAMES
            .iter()
            .find(|(ours, _)| *ours == name)
            .map(|(_, theirs)| *theirs)
            .unwrap_or_default();
        aliases.iter().find_map(|alias| {
            self.file
                .get(alias)
                .map(|v| (v, Source::EnvFileAs(self.file.path.clone(), alias)))
        })
    }

    /// [`Resolver::lookup`] without a flag, as a [`Setting`].
    fn setting(&self, name: &str) -> Option<Setting<String>> {
        self.lookup(None, name)
            .map(|(value, source)| Setting { value, source })
    }

    /// The value alone: the environment, else the env file.
    fn value(&self, name: &str) -> Option<String> {
        self.lookup(None, name).map(|(v, _)| v)
    }
}

impl Config {
    /// Resolves the configuration from flags, the process environment, the
    /// env file (`--env-file`, else `./.env` when present) and defaults.
    pub fn load(overrides: &Overrides) -> Result<Self> {
        Self::load_with(overrides, |name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment given as a function, for tests.
    pub fn load_with(overrides: &Overrides, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let settings = Resolver {
            env: &env,
            file: EnvFile::read(overrides.env_file.as_deref())?,
        };
        let lookup = |flag: &Option<String>, name: &str| settings.lookup(flag.as_ref(), name);

        // With no URL configured: the local stack as it is running (found
        // through the same settings: its directory and ports may be in .env).
        let cwd = std::env::current_dir().unwrap_or_default();
        let stack = crate::local_stack::resolve(&|name: &str| settings.value(name), &cwd);
        let stack_source = || stack_source(&stack);
        let (url_text, url_source) = lookup(&overrides.supabase_url, ENV_URL)
            .unwrap_or_else(|| (stack.url.clone(), stack_source()));
        let allow_http = overrides.allow_insecure_http
            || lookup(&None, ENV_ALLOW_HTTP)
                .is_some_and(|(v, _)| matches!(v.trim(), "1" | "true" | "yes"));
        let supabase_url = parse_project_url(&url_text, &url_source, allow_http)?;
        let local = is_loopback_url(&supabase_url);

        let secret = |(value, source): (String, Source)| Setting {
            value: Secret::new(value),
            source,
        };
        let anon_key = match lookup(&overrides.anon_key, ENV_ANON_KEY) {
            Some(found) => Some(secret(found)),
            None if local => Some(secret((stack.anon_key.clone(), stack_source()))),
            None => None,
        };

        // The local stack's database only goes with the local stack's API:
        // with a hosted SUPABASE_URL, `db reset` must never reach this
        // machine's database because SUPABASE_DB_URL was forgotten.
        let db_url = match lookup(&overrides.db_url, ENV_DB_URL) {
            Some(found) => Some(secret(found)),
            None if local => Some(secret((stack.db_url.clone(), stack_source()))),
            None => None,
        };

        let access_token = lookup(&None, ENV_ACCESS_TOKEN).map(|(v, source)| Setting {
            value: Secret::new(v.trim()),
            source,
        });

        // The stack's relay and return path, when its state names them and
        // the project is the stack (its relay returns delivery reports).
        let from_stack = |value: &Option<String>| {
            value.clone().filter(|_| local).map(|value| Setting {
                value,
                source: stack_source(),
            })
        };
        let delivery = DeliveryValues {
            smtp_url: lookup(&None, ENV_SMTP_URL)
                .map(secret)
                .or_else(|| from_stack(&stack.smtp_url).map(|s| secret((s.value, s.source)))),
            from: settings.setting(ENV_FROM),
            return_path: settings
                .setting(ENV_RETURN_PATH)
                .or_else(|| from_stack(&stack.return_path)),
            list_unsubscribe: settings.setting(ENV_LIST_UNSUBSCRIBE),
            unsubscribe_secret: lookup(&None, ENV_UNSUBSCRIBE_SECRET).map(secret),
            smtp_ca_file: settings.setting(ENV_SMTP_CA_FILE),
        };

        // Like the database: the local stack's mailbox only for the local stack.
        let bounces_url = match lookup(&None, ENV_BOUNCES_URL) {
            Some(found) => Some(secret(found)),
            None if local => stack
                .bounces_url
                .clone()
                .map(|url| secret((url, stack_source()))),
            None => None,
        };

        let session_dir = match settings.setting(ENV_CONFIG_DIR) {
            Some(Setting { value, source }) => Some(Setting {
                value: PathBuf::from(value),
                source,
            }),
            None => dirs::config_dir().map(|d| Setting {
                value: d.join("mailsync"),
                source: Source::Default,
            }),
        };

        let import = ImportValues {
            in_flight: settings.setting(ENV_IMPORT_IN_FLIGHT),
            max_entry_size: settings.setting(ENV_IMPORT_MAX_ENTRY_SIZE),
            max_shared_strings: settings.setting(ENV_IMPORT_MAX_SHARED_STRINGS),
            max_cells: settings.setting(ENV_IMPORT_MAX_CELLS),
            max_cell_length: settings.setting(ENV_IMPORT_MAX_CELL_LENGTH),
        };

        Ok(Config {
            supabase_url: Setting {
                value: supabase_url,
                source: url_source,
            },
            anon_key,
            db_url,
            access_token,
            delivery,
            bounces_url,
            bounces_ca_file: settings.setting(ENV_BOUNCES_CA_FILE),
            session_dir,
            import,
            local_stack_notes: stack.notes.clone(),
        })
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
        is_loopback_url(&self.supabase_url.value)
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

    /// The local stack's API port, when the project is the local stack
    /// (whose SMTP relay is then the default).
    pub fn local_api_port(&self) -> Option<u16> {
        self.is_local()
            .then(|| self.supabase_url.value.port_or_known_default())
            .flatten()
    }

    /// The delivery settings, typed and checked: the SMTP server (the local
    /// stack's relay by default, for the local stack), From (required but
    /// for a loopback server), the return path (default: From) and
    /// List-Unsubscribe. A configuration error (exit 3) names the variable.
    pub fn smtp_settings(&self) -> Result<SmtpSettings> {
        let d = &self.delivery;
        SmtpSettings::resolve(
            |name| match name {
                ENV_SMTP_URL => d
                    .smtp_url
                    .as_ref()
                    .map(|s| (s.value.expose().to_string(), s.source.clone())),
                ENV_FROM => d.from.as_ref().map(Setting::pair),
                ENV_RETURN_PATH => d.return_path.as_ref().map(Setting::pair),
                ENV_LIST_UNSUBSCRIBE => d.list_unsubscribe.as_ref().map(Setting::pair),
                ENV_SMTP_CA_FILE => d.smtp_ca_file.as_ref().map(Setting::pair),
                ENV_UNSUBSCRIBE_SECRET => d
                    .unsubscribe_secret
                    .as_ref()
                    .map(|s| (s.value.expose().to_string(), s.source.clone())),
                _ => None,
            },
            self.local_api_port(),
        )
    }

    /// `MAILSYNC_UNSUBSCRIBE_SECRET`, checked: what `contacts unsubscribe
    /// --token` verifies tokens with. A configuration error (exit 3) when
    /// it is not set or too short.
    pub fn unsubscribe_secret(&self) -> Result<Secret> {
        match &self.delivery.unsubscribe_secret {
            Some(s) => delivery::parse_unsubscribe_secret(s.value.expose(), &s.source),
            None => Err(Error::config(t!(
                "settings-error-no-unsubscribe-secret",
                name = ENV_UNSUBSCRIBE_SECRET
            ))),
        }
    }

    /// The bounce mailbox, typed and checked, with where it came from and
    /// the authorities of `MAILSYNC_BOUNCES_CA_FILE`; a configuration error
    /// (exit 3) when it is not set or not valid, or the CA file is not.
    pub fn bounce_mailbox(&self) -> Result<Setting<BounceMailbox>> {
        let given = self.bounces_url.as_ref().ok_or_else(|| {
            Error::config(t!(
                "bounces-error-no-url",
                name = ENV_BOUNCES_URL,
                project = self.project_display()
            ))
            .with_hint(t!("bounces-url-hint", name = ENV_BOUNCES_URL))
        })?;
        let mut mailbox = BounceMailbox::parse(given.value.expose(), &given.source)?;
        if let Some(ca) = &self.bounces_ca_file {
            mailbox.extra_roots =
                ca_file::read_ca_file(ENV_BOUNCES_CA_FILE, ca.value.trim(), &ca.source)?;
        }
        Ok(Setting {
            value: mailbox,
            source: given.source.clone(),
        })
    }

    /// The directory sessions are saved in, or a configuration error when
    /// neither `MAILSYNC_CONFIG_DIR` nor the system gives one.
    pub fn session_dir(&self) -> Result<&Path> {
        self.session_dir
            .as_ref()
            .map(|s| s.value.as_path())
            .ok_or_else(|| {
                Error::config(t!("session-error-no-dir"))
                    .with_hint(t!("session-hint-no-dir", name = ENV_CONFIG_DIR))
            })
    }
}

fn stack_source(stack: &LocalStack) -> Source {
    if stack.origin.is_empty() {
        Source::Default
    } else {
        Source::LocalStack(stack.origin.clone())
    }
}

/// The language of this run: `--lang`, else `MAILSYNC_LANG` from the
/// environment or the env file, else the locale (see [`crate::i18n::detect`]).
/// An env file that cannot be read is left for [`Config::load`] to report.
pub fn language(flag: Option<Lang>, env_file: Option<&Path>) -> Result<Lang> {
    language_with(flag, env_file, |name| std::env::var(name).ok())
}

/// [`language`] with the environment given as a function, for tests.
pub fn language_with(
    flag: Option<Lang>,
    env_file: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Lang> {
    let file = EnvFile::read(env_file).ok();
    crate::i18n::detect(flag, |name| {
        let from_env = env(name).filter(|v| !v.is_empty());
        match (name, &file) {
            (ENV_LANG, Some(file)) => from_env.or_else(|| file.get(name)),
            _ => from_env,
        }
    })
}

/// Sets this run's language (see [`language`]); when `MAILSYNC_LANG` is
/// wrong, the locale's language is set (the error is worded in it) and the
/// error returned.
pub fn set_language(flag: Option<Lang>, env_file: Option<&Path>) -> Result<()> {
    match language(flag, env_file) {
        Ok(lang) => {
            crate::i18n::set(lang);
            Ok(())
        }
        Err(e) => {
            crate::i18n::set(crate::i18n::of_locale(|name| std::env::var(name).ok()));
            Err(e)
        }
    }
}

/// `%XX` escapes decoded (a URL's user, password or path), as UTF-8.
pub(crate) fn percent_decode(s: &str) -> std::result::Result<String, std::string::FromUtf8Error> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
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
    if url.scheme() == "http" && !is_loopback_url(&url) && !allow_http {
        return Err(Error::config(t!(
            "config-error-url-plain-http",
            setting = setting.as_str(),
            host = url.host_str().unwrap_or("?")
        ))
        .with_hint(t!("config-hint-plain-http", name = ENV_ALLOW_HTTP)));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
        assert_eq!(
            config.anon_key().unwrap().expose(),
            crate::local_stack::LOCAL_ANON_KEY
        );
        assert_eq!(
            config.db_url().unwrap().expose(),
            crate::local_stack::LOCAL_DB_URL
        );
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
        assert_eq!(
            config.anon_key().unwrap().expose(),
            crate::local_stack::LOCAL_ANON_KEY
        );
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

    /// An env file holding `body`, and overrides reading it.
    fn with_env_file(dir: &Path, body: &str) -> Overrides {
        let file = dir.join("settings.env");
        std::fs::write(&file, body).unwrap();
        Overrides {
            env_file: Some(file),
            ..Default::default()
        }
    }

    #[test]
    fn every_setting_is_read_from_the_env_file_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = with_env_file(
            dir.path(),
            "MAILSYNC_LANG=fr\nMAILSYNC_CONFIG_DIR=/from/file\nMAILSYNC_IMPORT_MAX_CELLS=150\n\
             MAILSYNC_IMPORT_IN_FLIGHT=2\nMAILSYNC_RETURN_PATH=bounces@acme.example\n\
             MAILSYNC_FROM=news@acme.example\n",
        );
        let file = overrides.env_file.clone().unwrap();
        let nowhere = dir.path().join("no-stack").display().to_string();
        let env = [("MAILSYNC_STACK_DIR", nowhere.as_str())];
        let config = Config::load_with(&overrides, env_of(&env)).unwrap();
        assert_eq!(config.session_dir().unwrap(), Path::new("/from/file"));
        let cells = config.import.max_cells.as_ref().unwrap();
        assert_eq!(cells.value, "150");
        assert_eq!(cells.source, Source::EnvFile(file.clone()));
        assert_eq!(config.import.in_flight.as_ref().unwrap().value, "2");
        let delivery = config.smtp_settings().unwrap();
        assert_eq!(delivery.return_path.to_string(), "bounces@acme.example");
        assert_eq!(delivery.return_path_source, Source::EnvFile(file.clone()));
        assert_eq!(
            language_with(None, Some(&file), env_of(&[("LANG", "en_US.UTF-8")])).unwrap(),
            Lang::Fr
        );

        let env = [
            ("MAILSYNC_STACK_DIR", nowhere.as_str()),
            ("MAILSYNC_CONFIG_DIR", "/from/env"),
            ("MAILSYNC_IMPORT_MAX_CELLS", "200"),
        ];
        let config = Config::load_with(&overrides, env_of(&env)).unwrap();
        assert_eq!(config.session_dir().unwrap(), Path::new("/from/env"));
        let cells = config.import.max_cells.as_ref().unwrap();
        assert_eq!(
            (cells.value.as_str(), &cells.source),
            ("200", &Source::Environment)
        );
        assert_eq!(
            language_with(None, Some(&file), env_of(&[("MAILSYNC_LANG", "en")])).unwrap(),
            Lang::En
        );
        assert_eq!(
            language_with(Some(Lang::En), Some(&file), env_of(&[])).unwrap(),
            Lang::En
        );
        // An unreadable env file leaves the language to the environment.
        let missing = dir.path().join("missing.env");
        assert_eq!(
            language_with(None, Some(&missing), env_of(&[("LANG", "fr_FR")])).unwrap(),
            Lang::Fr
        );
    }

    #[test]
    fn the_bounce_mailbox_defaults_to_the_local_stacks_only_for_the_local_stack() {
        let dir = tempfile::tempdir().unwrap();
        let stack = dir.path().join("stack");
        std::fs::create_dir(&stack).unwrap();
        std::fs::write(
            stack.join(crate::local_stack::STATE_FILE),
            "export MAILSYNC_BOUNCES_URL='imap://bounces:pw@127.0.0.1:7143/INBOX'\n",
        )
        .unwrap();
        let stack = stack.display().to_string();
        let env = [("MAILSYNC_STACK_DIR", stack.as_str())];
        let local = with_env_file(dir.path(), "");
        let config = Config::load_with(&local, env_of(&env)).unwrap();
        let mailbox = config.bounce_mailbox().unwrap();
        assert!(matches!(mailbox.source, Source::LocalStack(_)));
        assert_eq!(mailbox.value.address(), "127.0.0.1:7143");
        assert!(!mailbox.value.tls);
        assert_eq!(mailbox.value.user, "bounces");

        let hosted = Overrides {
            supabase_url: Some("https://abcdefgh.supabase.co".into()),
            anon_key: Some("k".into()),
            ..local.clone()
        };
        let config = Config::load_with(&hosted, env_of(&env)).unwrap();
        let err = config.bounce_mailbox().unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Config);
        assert!(err.message().contains(ENV_BOUNCES_URL), "{err}");

        let given = [
            ("MAILSYNC_STACK_DIR", stack.as_str()),
            (
                ENV_BOUNCES_URL,
                "imaps://me:hunter2@imap.acme.example/Bounces",
            ),
        ];
        let config = Config::load_with(&hosted, env_of(&given)).unwrap();
        let mailbox = config.bounce_mailbox().unwrap();
        assert_eq!(mailbox.source, Source::Environment);
        assert_eq!(
            (mailbox.value.port, mailbox.value.folder.as_str()),
            (993, "Bounces")
        );
        let plain = [(ENV_BOUNCES_URL, "imap://me:hunter2@imap.acme.example/")];
        let err = Config::load_with(&hosted, env_of(&plain))
            .unwrap()
            .bounce_mailbox()
            .unwrap_err();
        assert_eq!(err.kind().exit_code(), 3);
        assert!(!err.message().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_host_that_only_looks_local_is_a_remote_project() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            supabase_url: Some("http://127.relay.example.com:54321".into()),
            ..with_env_file(dir.path(), "")
        };
        let err = Config::load_with(&overrides, env_of(&[])).unwrap_err();
        assert_eq!(err.kind().exit_code(), 3);
        assert!(err.message().contains("http://"), "{err}");
    }
}
