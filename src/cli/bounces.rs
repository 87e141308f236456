//! `mailsync bounces …`: reading the reports the mail system sent back.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ConnectArgs;
use crate::commands;

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read the bounce mailbox over IMAP and record its reports (delivered, bounced, complaints)
    #[command(
        after_help = "Reads the messages of MAILSYNC_BOUNCES_URL (imaps://user:password@host/FOLDER;
imap:// only for this machine) that are not yet recorded, parses each (RFC 3464
delivery reports, RFC 5965 complaints, the free-text bounces of large mail
systems), matches each report to one of your emails and records it: delivered,
bounced (a hard bounce suppresses the address), complaints (suppressed at once).
Each report counts once, however many runs or workers read it. Recorded messages
get the keyword $MailsyncRecorded; other messages are left as they were (not
read, not moved).

Exit codes: 0 done, 1 failure, 2 usage, 3 mailbox or configuration problem
(login refused, TLS refused, connection lost: what was recorded stays),
130 interrupted.

Examples:
  mailsync bounces fetch
  mailsync bounces fetch --dry-run                 # show what would be recorded
  mailsync bounces fetch --follow                  # keep reading (IDLE), Ctrl-C to stop
  mailsync --json bounces fetch | jq .recorded"
    )]
    Fetch(BouncesFetchArgs),
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
pub struct BouncesFetchArgs {
    /// Parse and show the reports; record and mark nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Keep reading new messages until Ctrl-C (IDLE when the server offers it)
    #[arg(long)]
    pub follow: bool,
    /// Seconds between looks with --follow when the server offers no IDLE
    #[arg(long, value_name = "SECS", default_value_t = commands::bounces::fetch::DEFAULT_INTERVAL)]
    pub interval: f64,
    #[command(flatten)]
    pub connect: ConnectArgs,
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

impl From<BouncesFetchArgs> for commands::bounces::fetch::Options {
    fn from(a: BouncesFetchArgs) -> Self {
        Self {
            dry_run: a.dry_run,
            follow: a.follow,
            interval_secs: a.interval,
        }
    }
}
