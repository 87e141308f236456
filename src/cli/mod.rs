//! The command line: clap definitions, their help text, and the mapping of
//! each command's arguments to the plain `Options` of its module in
//! `commands/`, one file per group ([`db`], [`import`], [`campaigns`] with
//! templates, [`contacts`], [`bounces`], [`account`]); here the top level, the global
//! options and the connection options. The only module that knows clap;
//! `lib.rs` dispatches the parsed [`Command`] in one `match`.
//!
//! Defaults are written once, where the behaviour lives (the command's
//! module), and taken from there. The connection options are only on the
//! commands that connect: the project's ([`ConnectArgs`]) on every command
//! that talks to it, the database URL ([`DbConnectArgs`]) on the `db`
//! commands that open a connection (and `config`, which shows it).

pub mod account;
pub mod bounces;
pub mod campaigns;
pub mod contacts;
pub mod db;
pub mod import;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

pub use account::{LoginArgs, LogoutArgs, WhoamiArgs};
pub use bounces::BouncesCommand;
pub use campaigns::{CampaignsCommand, TemplatesCommand};
pub use contacts::ContactsCommand;
pub use db::DbCommand;
pub use import::ImportArgs;

use crate::commands;
use crate::output::Output;
use crate::settings::Overrides;

#[derive(Debug, Parser)]
#[command(
    name = "mailsync",
    version,
    about = "Supabase-native CLI for email-campaign data: schema, Excel import, live campaign progress",
    long_about = None,
    after_help = "Examples:
  mailsync db reset --yes                 # provision the schema (destroys mailsync data)
  mailsync db verify                      # check RLS, policies, grants and views
  mailsync import contacts.xlsx           # load contacts under your own JWT
  mailsync campaigns watch --until-done   # live progress

With no configuration, mailsync targets the local stack (scripts/local-stack.sh up).
Secrets (SUPABASE_DB_URL with its password, keys, tokens): put them in the environment or in
a file given with --env-file rather than in flags, which the process list shows.
Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration/authentication, 4 check failed,
5 unknown outcomes left (campaigns deliver), 130 Ctrl-C (143 SIGTERM)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Print one JSON document on stdout and nothing else there
    #[arg(long, global = true)]
    pub json: bool,
    /// Print nothing but errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more about what is happening (on stderr)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No colours (also when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Read settings from this file instead of ./.env (the place for secrets)
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Language of the messages [env: MAILSYNC_LANG] (default: French when the locale,
    /// LC_ALL, LC_MESSAGES or LANG, starts with fr, else English). JSON and help stay English
    #[arg(long, global = true, value_enum, value_name = "LANG")]
    pub lang: Option<Language>,
}

/// `--lang`: the languages mailsync speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    En,
    Fr,
}

impl From<Language> for crate::i18n::Lang {
    fn from(l: Language) -> Self {
        match l {
            Language::En => crate::i18n::Lang::En,
            Language::Fr => crate::i18n::Lang::Fr,
        }
    }
}

/// The project a command talks to: on every command that connects to it.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectArgs {
    /// Project URL [env: SUPABASE_URL] (default: the local stack)
    #[arg(long, value_name = "URL")]
    pub supabase_url: Option<String>,
    /// Anon (publishable) key [env: SUPABASE_ANON_KEY]; prefer the environment or --env-file
    #[arg(long, value_name = "KEY", hide_env_values = true)]
    pub anon_key: Option<String>,
    /// Allow a non-local SUPABASE_URL over plain http:// (trusted networks only)
    /// [env: MAILSYNC_ALLOW_INSECURE_HTTP=1]
    #[arg(long)]
    pub allow_insecure_http: bool,
}

/// The project and its database: on the `db` commands that connect, and
/// `config`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Connection options")]
pub struct DbConnectArgs {
    /// Direct Postgres URL [env: SUPABASE_DB_URL]. It holds the database password: prefer
    /// the environment or --env-file, since other users of the machine can read a flag in
    /// the process list
    #[arg(long, value_name = "URL")]
    pub db_url: Option<String>,
    #[command(flatten)]
    pub project: ConnectArgs,
}

impl ConnectArgs {
    /// What these flags override, the env file given by the global options.
    pub fn overrides(&self, global: &GlobalArgs) -> Overrides {
        Overrides {
            supabase_url: self.supabase_url.clone(),
            anon_key: self.anon_key.clone(),
            db_url: None,
            env_file: global.env_file.clone(),
            allow_insecure_http: self.allow_insecure_http,
        }
    }
}

impl DbConnectArgs {
    /// What these flags override, the env file given by the global options.
    pub fn overrides(&self, global: &GlobalArgs) -> Overrides {
        Overrides {
            db_url: self.db_url.clone(),
            ..self.project.overrides(global)
        }
    }
}

impl GlobalArgs {
    pub fn output(&self) -> Output {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Output {
            json: self.json,
            quiet: self.quiet,
            verbose: self.verbose,
            color: !self.no_color && !no_color_env,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Provision and check the schema over a direct Postgres connection
    #[command(subcommand)]
    Db(DbCommand),
    /// Import contacts from a spreadsheet (.xlsx .xlsm .xlsb .xls .ods .csv .tsv) as the signed-in user
    Import(ImportArgs),
    /// The signed-in user's contacts
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Create, send, list and watch campaigns
    #[command(subcommand)]
    Campaigns(CampaignsCommand),
    /// Reusable subjects and contents for campaigns
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Read delivery reports and complaints that came back (RFC 3464, ARF, free-text bounces)
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// Your dashboard_analytics row: contacts, organisations, active campaigns, emails sent today
    #[command(after_help = "Examples:
  mailsync dashboard
  mailsync --json dashboard | jq .emails_sent_today")]
    Dashboard(ConnectArgs),
    /// Sign in to the project with email and password (Supabase Auth); saves the session
    Login(LoginArgs),
    /// Sign out: revoke the session on the server when reachable and delete it here
    Logout(LogoutArgs),
    /// Who mailsync acts as: user, email, project, token expiry and where the token came from
    Whoami(WhoamiArgs),
    /// The settings in effect, secrets masked, and where each came from
    #[command(
        after_help = "Precedence: flags > environment > --env-file/.env > the local stack > defaults.

Examples:
  mailsync config
  mailsync --env-file staging.env config --json"
    )]
    Config(DbConnectArgs),
    /// Shell completions
    #[command(after_help = "Examples:
  mailsync completions bash > ~/.local/share/bash-completion/completions/mailsync
  mailsync completions zsh > \"${fpath[1]}/_mailsync\"
  mailsync completions fish > ~/.config/fish/completions/mailsync.fish")]
    Completions(CompletionsArgs),
    /// Write a manual page for every command (roff), from the same definitions as --help
    #[command(after_help = "Examples:
  mailsync man                                   # ./man/mailsync.1, ./man/mailsync-db-reset.1, ...
  mailsync man --dir ~/.local/share/man/man1     # then: man mailsync-contacts-export
  man ./man/mailsync-import.1")]
    Man(ManArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The folder to write the pages to (created if missing)
    #[arg(long, value_name = "DIR", default_value = commands::man::DEFAULT_DIR)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish
    pub shell: clap_complete::Shell,
}

/// One manual page per command: `mailsync.1`, then `mailsync-<sub>.1` and
/// `mailsync-<sub>-<subsub>.1` for each (sub)command, global options included.
pub fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: &clap::Command, name: String, pages: &mut Vec<(String, Vec<u8>)>) {
        let page = cmd
            .clone()
            .name(name.clone())
            .bin_name(name.replace('-', " "));
        let mut text = Vec::new();
        // Rendering into memory cannot fail.
        let _ = clap_mangen::Man::new(page).render(&mut text);
        pages.push((format!("{name}.1"), text));
        // Not clap's generated `help` subcommands.
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, format!("{name}-{}", sub.get_name()), pages);
        }
    }
    let mut cmd = Cli::command();
    // Propagates the global options into every subcommand.
    cmd.build();
    let mut pages = Vec::new();
    walk(&cmd, "mailsync".into(), &mut pages);
    pages
}

impl From<ManArgs> for commands::man::Options {
    fn from(a: ManArgs) -> Self {
        Self {
            dir: a.dir,
            pages: man_pages(),
        }
    }
}

impl From<CompletionsArgs> for commands::completions::Options {
    fn from(a: CompletionsArgs) -> Self {
        let mut script = Vec::new();
        clap_complete::generate(a.shell, &mut Cli::command(), "mailsync", &mut script);
        Self {
            shell: a.shell.to_string(),
            script: String::from_utf8_lossy(&script).into_owned(),
        }
    }
}
