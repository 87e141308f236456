//! The command line: clap definitions, their help text, and the mapping of
//! each command's arguments to the plain `Options` of its module in
//! `commands/` (the `From` impls at the end). The only module that knows
//! clap; `lib.rs` dispatches the parsed [`Command`] in one `match`.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::config::Overrides;
use crate::domain::{CampaignStatus, Content};
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
Secrets (SUPABASE_DB_URL with its password, keys, tokens): put them in the environment or in
a file given with --env-file rather than in flags, which the process list shows.
Exit codes: 0 ok, 1 failure, 2 usage, 3 configuration/authentication, 4 check failed."
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
    /// Project URL [env: SUPABASE_URL] (default: the local stack)
    #[arg(long, global = true, value_name = "URL")]
    pub supabase_url: Option<String>,
    /// Anon (publishable) key [env: SUPABASE_ANON_KEY]; prefer the environment or --env-file
    #[arg(long, global = true, value_name = "KEY", hide_env_values = true)]
    pub anon_key: Option<String>,
    /// Direct Postgres URL, for `db` commands only [env: SUPABASE_DB_URL]. It holds the
    /// database password: prefer the environment or --env-file, since other users of the
    /// machine can read a flag in the process list
    #[arg(long, global = true, value_name = "URL")]
    pub db_url: Option<String>,
    /// Allow a non-local SUPABASE_URL over plain http:// (trusted networks only)
    /// [env: MAILSYNC_ALLOW_INSECURE_HTTP=1]
    #[arg(long, global = true)]
    pub allow_insecure_http: bool,
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

impl GlobalArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            supabase_url: self.supabase_url.clone(),
            anon_key: self.anon_key.clone(),
            db_url: self.db_url.clone(),
            env_file: self.env_file.clone(),
            allow_insecure_http: self.allow_insecure_http,
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
    /// Import contacts from a spreadsheet (.xlsx .xlsm .xlsb .xls .ods .csv .tsv) as the signed-in user
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
    Dashboard,
    /// Sign in to the project with email and password (Supabase Auth); saves the session
    #[command(
        after_help = "The session is saved in your config directory (one file per project URL, mode
0600) and refreshed automatically. MAILSYNC_ACCESS_TOKEN, when set, wins over it.
On the local stack (no Auth server) use: export MAILSYNC_ACCESS_TOKEN=$(scripts/local-stack.sh token UUID)

Examples:
  mailsync login                                  # asks for email and password
  mailsync login --email me@example.com           # asks for the password only
  printf '%s\\n' \"$PASSWORD\" | mailsync login --email ci@example.com --password-stdin"
    )]
    Login(LoginArgs),
    /// Sign out: revoke the session on the server when reachable and delete it here
    #[command(after_help = "Examples:
  mailsync logout")]
    Logout,
    /// Who mailsync acts as: user, email, project, token expiry and where the token came from
    #[command(after_help = "Examples:
  mailsync whoami
  mailsync --json whoami | jq -r .user_id")]
    Whoami,
    /// The settings in effect, secrets masked, and where each came from
    #[command(
        after_help = "Precedence: flags > environment > --env-file/.env > defaults (the local stack).

Examples:
  mailsync config
  mailsync --env-file staging.env config --json"
    )]
    Config,
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
pub struct LoginArgs {
    /// The account's email
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from the first line of stdin
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish
    pub shell: clap_complete::Shell,
}

/// The content of a campaign or template: inline, from a file, or (for a
/// campaign) from a template.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ContentArgs {
    /// The content, inline
    #[arg(long, value_name = "TEXT")]
    pub content: Option<String>,
    /// Read the content from this file
    #[arg(long, value_name = "PATH")]
    pub content_file: Option<PathBuf>,
    /// Take the content (and the subject, unless given) from this template
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read .eml files, Maildirs and mbox files with the bounce parser (no mailbox, no database)
    #[command(
        after_help = "Each message gets a line: where it came from (FILE, or FILE:N for the Nth
message of an mbox), what it is (delivery report, complaint, not a report) and
its format, then each recipient with its action, RFC 3463 status and the remote
server's words. A directory is searched for .eml and .mbox files and Maildirs.
Messages are read up to 2 MiB each; a larger one says so on its line.

Examples:
  mailsync bounces scan returned.eml
  mailsync bounces scan ~/Maildir/.Bounces
  mailsync bounces scan export.mbox --json | jq '.messages[] | select(.kind == \"complaint\")'
  mailsync --json bounces scan support-case/ | jq .counts"
    )]
    Scan(BouncesScanArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BouncesScanArgs {
    /// .eml files, Maildir folders, mbox files or directories holding them
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

impl From<BouncesScanArgs> for commands::bounces::scan::Options {
    fn from(a: BouncesScanArgs) -> Self {
        Self { paths: a.paths }
    }
}

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Create a campaign (status draft)
    #[command(after_help = "Examples:
  mailsync campaigns create --name \"Rentrée 2026\" --subject \"Nouveautés\" --content-file mail.html
  mailsync campaigns create --name Relance --template relance
  mailsync --json campaigns create --name Test --subject Hi --content Hello | jq -r .id")]
    Create(CampaignCreateArgs),
    /// Campaigns with their totals (from campaign_analytics)
    #[command(after_help = "Examples:
  mailsync campaigns list
  mailsync campaigns list --status sending
  mailsync --json campaigns list | jq '.[] | {campaign_name, progress}'")]
    List(CampaignListArgs),
    /// Queue a campaign: one pending email per contact, in one server-side call
    #[command(
        after_help = "Asks for confirmation on a terminal, showing how many recipients; --yes in scripts.
A campaign that is already sending or sent is refused and nothing is created.
mailsync records and tracks campaigns; your sending service delivers them and
updates each email's status.

Examples:
  mailsync campaigns send \"Rentrée 2026\"
  mailsync campaigns send 3f2a…-uuid --organization \"Acme SARL\" --yes"
    )]
    Send(CampaignSendArgs),
    /// Live progress: "Envoi en progression" and "Campagne terminée"
    #[command(
        after_help = "Redrawn in place on a terminal; a plain snapshot per refresh when piped; one
JSON object per refresh and line with --json.

Examples:
  mailsync campaigns watch                       # Realtime if the project has it, else polling
  mailsync campaigns watch --mode poll --interval 5
  mailsync campaigns watch --until-done          # CI: exit 0 once nothing is sending
  mailsync --json campaigns watch --once         # {\"dashboard\": …, \"sending\": […], \"sent\": […]}"
    )]
    Watch(CampaignWatchArgs),
    /// Send the queued emails through SMTP, each at most once, recording every outcome
    #[command(
        after_help = "Sends the pending emails through MAILSYNC_SMTP_URL as MAILSYNC_FROM; with no
configuration, to the local stack's SMTP server (read them in its web inbox:
scripts/mail-catcher.sh env prints its address). Each email is claimed in the
database before it is sent and its outcome recorded right after, so several
workers can share a campaign and none sends an email twice. An email whose outcome
is unknown (its worker was killed between the two) is reported, and sent again only
with --resend-unknown.

Exit codes: 0 done, 1 failure, 2 usage, 3 SMTP server or configuration problem
(nothing claimed), 130 interrupted (the emails in flight were finished and recorded).

Examples:
  mailsync campaigns deliver \"Rentrée 2026\"
  mailsync campaigns deliver --rate 50 --concurrency 8     # every sending campaign
  mailsync campaigns deliver --follow                       # keep going, pick up new sends
  mailsync campaigns deliver --verp                         # return path news+<email id>@…
  mailsync --json campaigns deliver 3f2a…-uuid | jq .sent
  MAILSYNC_SMTP_URL=smtps://apikey:$KEY@smtp.example.com MAILSYNC_FROM='Acme <news@acme.example>' \\
    mailsync campaigns deliver --dry-run"
    )]
    Deliver(CampaignDeliverArgs),
    /// Write a campaign's report workbook: its figures, and every recipient with their status
    #[command(
        after_help = "Sheet \"Campaign\": the campaign and its figures (campaign_analytics); sheet
\"Recipients\": every email of the campaign (email, organization, status, sent_at,
delivered_at, error_message).

Examples:
  mailsync campaigns report \"Rentrée 2026\" rentree.xlsx
  mailsync --json campaigns report 3f2a…-uuid report.xlsx | jq .recipients"
    )]
    Report(CampaignReportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CampaignReportArgs {
    /// The campaign: its id, or its name when unique
    pub campaign: String,
    /// The workbook to write (.xlsx)
    pub file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignCreateArgs {
    /// The campaign's name
    #[arg(long)]
    pub name: String,
    /// The subject line (required unless the template has one)
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    #[command(flatten)]
    pub content: ContentArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignListArgs {
    /// Only campaigns with this status
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
}

/// `email_campaigns.status`, as the command line spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Draft,
    Scheduled,
    Sending,
    Sent,
    Failed,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignSendArgs {
    /// The campaign: its id, a unique id prefix (as `campaigns list` shows), or its unique name
    pub campaign: String,
    /// Only the contacts of this organisation
    #[arg(long, value_name = "NAME")]
    pub organization: Option<String>,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(short, long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignDeliverArgs {
    /// The campaign (id, or name when unique); default: all your sending campaigns
    pub campaign: Option<String>,
    /// Emails per second across all connections (0: no limit)
    #[arg(long, value_name = "N", default_value_t = commands::campaigns::deliver::DEFAULT_RATE)]
    pub rate: f64,
    /// SMTP connections used at once
    #[arg(long, value_name = "N", default_value_t = commands::campaigns::deliver::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Keep running and deliver campaigns queued later (Ctrl-C to stop)
    #[arg(long)]
    pub follow: bool,
    /// Check the settings and the SMTP server, count what is queued; claim and send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also send the emails whose outcome is unknown (they may have gone out already)
    #[arg(long)]
    pub resend_unknown: bool,
    /// Tries per email for temporary failures (4xx, lost connection)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub attempts: u32,
    /// Seconds before the first retry (doubles each time)
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub retry_delay: f64,
    /// Seconds a claim is held before it counts as abandoned (renewed while working)
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub lease: u64,
    /// Send each email from its own return path, local+<email id>@domain (VERP), so
    /// every report names its email by the address it comes back to
    #[arg(long)]
    pub verp: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ContactsUnsubscribeArgs {
    /// The addresses
    #[arg(required = true, value_name = "EMAIL")]
    pub emails: Vec<String>,
    /// Take the addresses off the suppression list instead
    #[arg(long)]
    pub undo: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignWatchArgs {
    /// auto: Realtime when available, else polling
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: WatchMode,
    /// Seconds between reads when polling (at least 0.5)
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub interval: f64,
    /// Print one snapshot and exit
    #[arg(long)]
    pub once: bool,
    /// Exit 0 once no campaign is sending
    #[arg(long)]
    pub until_done: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WatchMode {
    /// Realtime when the project offers it, otherwise polling
    Auto,
    /// Read the views every --interval seconds
    Poll,
    /// Listen to Supabase Realtime and re-read on each change
    Realtime,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Create a template
    #[command(after_help = "Examples:
  mailsync templates create --name relance --subject \"Petit rappel\" --content-file relance.html")]
    Create(TemplateCreateArgs),
    /// List templates
    #[command(after_help = "Examples:
  mailsync templates list
  mailsync --json templates list")]
    List,
}

#[derive(Debug, Clone, Args)]
pub struct TemplateCreateArgs {
    /// The template's name (unique)
    #[arg(long)]
    pub name: String,
    /// The subject line
    #[arg(long, value_name = "TEXT")]
    pub subject: String,
    /// The content, inline
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "content_file",
        conflicts_with = "content_file"
    )]
    pub content: Option<String>,
    /// Read the content from this file
    #[arg(long, value_name = "PATH")]
    pub content_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The spreadsheet to read
    pub file: PathBuf,
    /// Sheet to read (default: the first)
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// CSV text encoding: utf-8, utf-16le, utf-16be, windows-1252 (latin-1). Default: detected
    #[arg(long, value_name = "NAME")]
    pub encoding: Option<String>,
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
    #[arg(long, value_name = "N", default_value_t = commands::import::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Requests sent at once (1 to 8; 1 sends one batch at a time)
    #[arg(long, value_name = "N", env = "MAILSYNC_IMPORT_IN_FLIGHT", default_value_t = commands::import::DEFAULT_IN_FLIGHT)]
    pub in_flight: usize,
    /// Largest decompressed entry of an .xlsx/.xlsb/.ods archive [default: 256MiB]
    #[arg(long, value_name = "SIZE", env = "MAILSYNC_IMPORT_MAX_ENTRY_SIZE", value_parser = size_limit)]
    pub max_entry_size: Option<u64>,
    /// Most shared strings an .xlsx/.xlsb may declare or hold [default: 5000000]
    #[arg(long, value_name = "N", env = "MAILSYNC_IMPORT_MAX_SHARED_STRINGS", value_parser = count_limit)]
    pub max_shared_strings: Option<u64>,
    /// Most cells in a sheet [default: 5000000; 2000000 for .ods and .xls]
    #[arg(long, value_name = "N", env = "MAILSYNC_IMPORT_MAX_CELLS", value_parser = count_limit)]
    pub max_cells: Option<u64>,
    /// Most characters in a cell [default: 32767]
    #[arg(long, value_name = "N", env = "MAILSYNC_IMPORT_MAX_CELL_LENGTH", value_parser = count_limit)]
    pub max_cell_length: Option<u64>,
}

fn size_limit(text: &str) -> Result<u64, String> {
    commands::import::limits::parse_limit(text, true)
}

fn count_limit(text: &str) -> Result<u64, String> {
    commands::import::limits::parse_limit(text, false)
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// List contacts, ordered by email
    #[command(after_help = "Examples:
  mailsync contacts list --limit 20
  mailsync contacts list --organization \"Acme Inc\"
  mailsync --json contacts list --limit 0 > contacts.json   # every contact")]
    List(ContactsListArgs),
    /// Stop sending to these addresses: later sends leave them out, deliver skips them
    #[command(after_help = "Examples:
  mailsync contacts unsubscribe jane@acme.example bob@beta.example
  mailsync contacts unsubscribe --undo jane@acme.example   # take it off the list")]
    Unsubscribe(ContactsUnsubscribeArgs),
    /// Export contacts to .xlsx or .csv in the import's layout (re-importing changes nothing)
    #[command(
        after_help = "Columns: A organization, B email, then created_at, updated_at, id, under a header
row. Every contact is exported, paged through the REST API with your access
token, and written as it arrives (constant memory, any number of contacts).
Cells a spreadsheet would run as formulas (=, +, -, @) are written with a
leading apostrophe; `mailsync import` reads them back as they were.

Examples:
  mailsync contacts export contacts.xlsx
  mailsync contacts export acme.csv --organization \"Acme SARL\"
  mailsync contacts export - | head            # CSV on stdout
  mailsync contacts export all.xlsx && mailsync import all.xlsx   # every contact unchanged"
    )]
    Export(ContactsExportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ContactsExportArgs {
    /// The file to write: .xlsx or .csv by its extension, `-` for CSV on stdout
    pub file: PathBuf,
    /// Only the contacts of this organisation (case and spacing ignored)
    #[arg(long, value_name = "NAME")]
    pub organization: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ContactsListArgs {
    /// Only the contacts of this organisation (case-insensitive)
    #[arg(long, value_name = "NAME")]
    pub organization: Option<String>,
    /// At most this many (0: all)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u64,
}

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
    Verify,
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
}

// ---------------------------------------------------------------------------
// From the command line to each command's plain options.
// ---------------------------------------------------------------------------

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

impl From<ImportArgs> for commands::import::Options {
    fn from(a: ImportArgs) -> Self {
        Self {
            file: a.file,
            sheet: a.sheet,
            encoding: a.encoding,
            org_column: a.org_column,
            email_column: a.email_column,
            dry_run: a.dry_run,
            strict: a.strict,
            rejects: a.rejects,
            batch_size: a.batch_size,
            in_flight: a.in_flight,
            limits: commands::import::limits::Limits::with(
                a.max_entry_size,
                a.max_shared_strings,
                a.max_cells,
                a.max_cell_length,
            ),
        }
    }
}

impl From<ContactsListArgs> for commands::contacts::list::Options {
    fn from(a: ContactsListArgs) -> Self {
        Self {
            organization: a.organization,
            limit: a.limit,
        }
    }
}

impl From<ContactsExportArgs> for commands::contacts::export::Options {
    fn from(a: ContactsExportArgs) -> Self {
        Self {
            file: a.file,
            organization: a.organization,
        }
    }
}

impl From<CampaignReportArgs> for commands::campaigns::report::Options {
    fn from(a: CampaignReportArgs) -> Self {
        Self {
            campaign: a.campaign,
            file: a.file,
        }
    }
}

impl From<CampaignCreateArgs> for commands::campaigns::create::Options {
    fn from(a: CampaignCreateArgs) -> Self {
        use commands::campaigns::create::Source;
        let c = a.content;
        let source = match (c.content, c.content_file, c.template) {
            (Some(text), _, _) => Source::Given(Content::Text(text)),
            (_, Some(path), _) => Source::Given(Content::File(path)),
            (_, _, Some(name)) => Source::Template(name),
            // clap requires exactly one of the three.
            _ => Source::Given(Content::Text(String::new())),
        };
        Self {
            name: a.name,
            subject: a.subject,
            source,
        }
    }
}

impl From<StatusArg> for CampaignStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Draft => CampaignStatus::Draft,
            StatusArg::Scheduled => CampaignStatus::Scheduled,
            StatusArg::Sending => CampaignStatus::Sending,
            StatusArg::Sent => CampaignStatus::Sent,
            StatusArg::Failed => CampaignStatus::Failed,
        }
    }
}

impl From<CampaignListArgs> for commands::campaigns::list::Options {
    fn from(a: CampaignListArgs) -> Self {
        Self {
            status: a.status.map(Into::into),
        }
    }
}

impl From<CampaignSendArgs> for commands::campaigns::send::Options {
    fn from(a: CampaignSendArgs) -> Self {
        Self {
            campaign: a.campaign,
            organization: a.organization,
            yes: a.yes,
        }
    }
}

impl From<CampaignWatchArgs> for commands::campaigns::watch::Options {
    fn from(a: CampaignWatchArgs) -> Self {
        use commands::campaigns::watch::Mode;
        Self {
            mode: match a.mode {
                WatchMode::Auto => Mode::Auto,
                WatchMode::Poll => Mode::Poll,
                WatchMode::Realtime => Mode::Realtime,
            },
            interval_secs: a.interval,
            once: a.once,
            until_done: a.until_done,
        }
    }
}

impl From<CampaignDeliverArgs> for commands::campaigns::deliver::Options {
    fn from(a: CampaignDeliverArgs) -> Self {
        Self {
            campaign: a.campaign,
            rate: a.rate,
            concurrency: a.concurrency,
            follow: a.follow,
            dry_run: a.dry_run,
            resend_unknown: a.resend_unknown,
            attempts: a.attempts,
            retry_delay_secs: a.retry_delay,
            lease_secs: a.lease,
            poll_secs: 2.0,
            verp: a.verp,
        }
    }
}

impl From<ContactsUnsubscribeArgs> for commands::contacts::unsubscribe::Options {
    fn from(a: ContactsUnsubscribeArgs) -> Self {
        Self {
            emails: a.emails,
            undo: a.undo,
        }
    }
}

impl From<TemplateCreateArgs> for commands::templates::create::Options {
    fn from(a: TemplateCreateArgs) -> Self {
        let content = match (a.content, a.content_file) {
            (Some(text), _) => Content::Text(text),
            (_, Some(path)) => Content::File(path),
            // clap requires one of the two.
            _ => Content::Text(String::new()),
        };
        Self {
            name: a.name,
            subject: a.subject,
            content,
        }
    }
}

impl From<LoginArgs> for commands::account::login::Options {
    fn from(a: LoginArgs) -> Self {
        Self {
            email: a.email,
            password_stdin: a.password_stdin,
        }
    }
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
