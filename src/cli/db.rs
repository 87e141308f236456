//! `mailsync db ...`: the schema over a direct Postgres connection. Its
//! arguments, help and mapping to `commands::db`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::DbConnectArgs;
use crate::commands;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Drop the mailsync schema and create it again, in one transaction
    #[command(
        after_help = "Deletes every mailsync row. Asks on a terminal (default no); pass --yes in scripts.
Drops only mailsync's own objects (marked \"Managed by mailsync\"); if a name it uses holds
an object of yours (say your own `contacts` table), it refuses before changing anything
(exit 4) and names it. Nothing outside those names is touched.

Examples:
  mailsync db reset                # asks before dropping anything
  mailsync db reset --yes --json   # CI: no prompt, JSON report
  mailsync db reset --dry-run      # print the SQL it would run
  mailsync db reset --yes --adopt contacts   # your old `contacts` table becomes mailsync's, and is dropped"
    )]
    Reset(DbResetArgs),
    /// Apply the schema without dropping anything (idempotent, keeps data)
    #[command(
        after_help = "Replaces only mailsync's own objects; refuses before changing anything (exit 4)
when a name it uses holds an object of yours, and names it.

Examples:
  mailsync db apply          # create what is missing, update functions, views, policies
  mailsync db apply --json   # CI provisioning
  mailsync db apply --adopt email_templates   # take over an existing table of that name"
    )]
    Apply(DbApplyArgs),
    /// Check the live database against the schema; exit 4 on drift
    #[command(
        after_help = "Checks tables, columns, views (security_invoker), RLS, one policy per verb,
triggers, grants (anon gets nothing; authenticated no TRUNCATE, REFERENCES, TRIGGER or
MAINTAIN, no UPDATE of id, user_id or created_at), pinned search_path, indexed foreign keys,
and that every name mailsync uses holds mailsync's own object.

Examples:
  mailsync db verify
  mailsync db verify --json | jq '.checks[] | select(.ok | not)'"
    )]
    Verify(DbConnectArgs),
    /// Write the schema as a Supabase CLI migration (supabase/migrations), for `supabase db push`
    #[command(
        after_help = "Writes <YYYYMMDDHHMMSS>_mailsync_<version>.sql: the schema as it is, idempotent
(it keeps every row and upgrades an earlier mailsync schema). Nothing is written
when the latest mailsync migration in the folder already holds this schema; an
existing file is never overwritten. After upgrading mailsync, run it again: the
new schema becomes a new, later migration.

Examples:
  mailsync db migration                          # into ./supabase/migrations
  mailsync db migration --dir db/migrations
  supabase db push && mailsync db verify         # then apply and check"
    )]
    Migration(DbMigrationArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DbMigrationArgs {
    /// The migrations folder (created if missing)
    #[arg(long, value_name = "DIR", default_value = commands::db::migration::DEFAULT_DIR)]
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct DbResetArgs {
    /// Do not ask for confirmation (required without a terminal)
    #[arg(short, long)]
    pub yes: bool,
    /// Print the SQL instead of running it
    #[arg(long)]
    pub dry_run: bool,
    /// Take over an existing table, view or function of that name as mailsync's
    /// (reset then drops it and its rows); repeatable
    #[arg(long, value_name = "NAME")]
    pub adopt: Vec<String>,
    #[command(flatten)]
    pub connect: DbConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DbApplyArgs {
    /// Accepted for symmetry with `reset`; apply never asks
    #[arg(short, long)]
    pub yes: bool,
    /// Print the SQL instead of running it
    #[arg(long)]
    pub dry_run: bool,
    /// Take over an existing table, view or function of that name as mailsync's
    /// (apply may then change or replace it); repeatable
    #[arg(long, value_name = "NAME")]
    pub adopt: Vec<String>,
    #[command(flatten)]
    pub connect: DbConnectArgs,
}

impl From<DbResetArgs> for commands::db::reset::Options {
    fn from(a: DbResetArgs) -> Self {
        Self {
            yes: a.yes,
            dry_run: a.dry_run,
            adopt: a.adopt,
        }
    }
}

impl From<DbApplyArgs> for commands::db::apply::Options {
    fn from(a: DbApplyArgs) -> Self {
        Self {
            dry_run: a.dry_run,
            adopt: a.adopt,
        }
    }
}

impl From<DbMigrationArgs> for commands::db::migration::Options {
    fn from(a: DbMigrationArgs) -> Self {
        Self { dir: a.dir }
    }
}
