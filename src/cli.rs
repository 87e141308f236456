//! The command line: clap definitions and their help text, nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;
use crate::output::Output;

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
Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration/authentication, 4 check failed."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
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
    /// Read settings from this file instead of ./.env
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Project URL [env: SUPABASE_URL] (default: the local stack)
    #[arg(long, global = true, value_name = "URL")]
    pub supabase_url: Option<String>,
    /// Anon (publishable) key [env: SUPABASE_ANON_KEY]
    #[arg(long, global = true, value_name = "KEY", hide_env_values = true)]
    pub anon_key: Option<String>,
    /// Direct Postgres URL, for `db` commands only [env: SUPABASE_DB_URL]
    #[arg(long, global = true, value_name = "URL")]
    pub db_url: Option<String>,
}

impl GlobalArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            supabase_url: self.supabase_url.clone(),
            anon_key: self.anon_key.clone(),
            db_url: self.db_url.clone(),
            env_file: self.env_file.clone(),
        }
    }

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
    /// Import contacts from a spreadsheet (.xlsx .xlsm .xlsb .xls .ods .csv) as the signed-in user
    #[command(
        after_help = "Column A is the organisation and column B the email unless told otherwise; a
first row whose email cell is not an email is a header. Rows go through the REST
API with your access token, so Row Level Security applies. Re-importing the same
file changes nothing.

Examples:
  mailsync import contacts.xlsx
  mailsync import export.csv --email-column Courriel --org-column Entreprise
  mailsync import contacts.xlsx --sheet Clients --dry-run
  mailsync import contacts.xlsx --strict --rejects rejects.csv   # exit 4 and write nothing if a row is bad
  mailsync --json import contacts.xlsx | jq .contacts_created"
    )]
    Import(ImportArgs),
    /// The signed-in user's contacts
    #[command(subcommand)]
    Contacts(ContactsCommand),
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The spreadsheet to read
    pub file: PathBuf,
    /// Sheet to read (default: the first)
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// Organisation column: a letter or a header name
    #[arg(long, value_name = "COL", default_value = "A")]
    pub org_column: String,
    /// Email column: a letter or a header name
    #[arg(long, value_name = "COL", default_value = "B")]
    pub email_column: String,
    /// Read and validate, report, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 4 and write nothing when any row is rejected
    #[arg(long)]
    pub strict: bool,
    /// Write the rejected rows to this CSV file
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,
    /// Contacts per request
    #[arg(long, value_name = "N", default_value_t = crate::import::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// List contacts, ordered by email
    #[command(after_help = "Examples:
  mailsync contacts list --limit 20
  mailsync contacts list --organization \"Acme Inc\"
  mailsync --json contacts list --limit 0 > contacts.json   # every contact")]
    List {
        /// Only the contacts of this organisation (case-insensitive)
        #[arg(long, value_name = "NAME")]
        organization: Option<String>,
        /// At most this many (0: all)
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Drop the mailsync schema and create it again, in one transaction
    #[command(
        after_help = "Deletes every mailsync row. Asks on a terminal (default no); pass --yes in scripts.

Examples:
  mailsync db reset                # asks before dropping anything
  mailsync db reset --yes --json   # CI: no prompt, JSON report
  mailsync db reset --dry-run      # print the SQL it would run"
    )]
    Reset {
        /// Do not ask for confirmation (required without a terminal)
        #[arg(short, long)]
        yes: bool,
        /// Print the SQL instead of running it
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply the schema without dropping anything (idempotent, keeps data)
    #[command(after_help = "Examples:
  mailsync db apply          # create what is missing, update functions, views, policies
  mailsync db apply --json   # CI provisioning")]
    Apply {
        /// Accepted for symmetry with `reset`; apply never asks
        #[arg(short, long)]
        yes: bool,
        /// Print the SQL instead of running it
        #[arg(long)]
        dry_run: bool,
    },
    /// Check the live database against the schema; exit 4 on drift
    #[command(
        after_help = "Checks tables, columns, views (security_invoker), RLS, one policy per verb,
triggers, grants (anon gets nothing), pinned search_path and indexed foreign keys.

Examples:
  mailsync db verify
  mailsync db verify --json | jq '.checks[] | select(.ok | not)'"
    )]
    Verify,
}
