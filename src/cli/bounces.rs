//! `mailsync bounces …`: reading the reports the mail system sent back.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::commands;

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
