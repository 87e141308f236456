//! `mailsync bounces …`: the mail system's reports.

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

impl From<BouncesFetchArgs> for commands::bounces::fetch::Options {
    fn from(a: BouncesFetchArgs) -> Self {
        Self {
            dry_run: a.dry_run,
            follow: a.follow,
            interval_secs: a.interval,
        }
    }
}
