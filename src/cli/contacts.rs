//! `mailsync contacts ...`: their arguments, help and mapping to
//! `commands::contacts`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ConnectArgs;
use crate::commands;

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// List contacts, ordered by email
    #[command(after_help = "Examples:
  mailsync contacts list --limit 20
  mailsync contacts list --organization \"Acme Inc\"
  mailsync --json contacts list --limit 0 > contacts.json   # every contact")]
    List(ContactsListArgs),
    /// Stop sending to these addresses: later sends leave them out, deliver skips them
    #[command(
        after_help = "An address suppressed because it bounced (no such mailbox) or complained
stays on the list with --undo, unless --include-bounces or --include-complaints
is given: sending to it again harms the sender's reputation.

Examples:
  mailsync contacts unsubscribe jane@acme.example bob@beta.example
  mailsync contacts unsubscribe --undo jane@acme.example   # take it off the list
  mailsync contacts unsubscribe --token \"$TOKEN\"   # from a one-click List-Unsubscribe URL"
    )]
    Unsubscribe(ContactsUnsubscribeArgs),
    /// Export contacts to .xlsx or .csv in the import's layout (re-importing changes nothing)
    #[command(
        after_help = "Columns: A organization, B email, then created_at, updated_at, id, under a header
row. Every contact is exported, paged through the REST API with your access
token, and written as it arrives (constant memory, any number of contacts).
A formula character (=, +, -, @, tab, CR) at the start of a cell, or after a
, ; tab, line break or quote inside it, is written with an apostrophe in front,
so no cell starts a formula whichever separator a spreadsheet splits on;
`mailsync import` reads them back as they were.

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
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ContactsListArgs {
    /// Only the contacts of this organisation (case-insensitive)
    #[arg(long, value_name = "NAME")]
    pub organization: Option<String>,
    /// At most this many (0: all)
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: u64,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ContactsUnsubscribeArgs {
    /// The addresses
    #[arg(required_unless_present = "token", value_name = "EMAIL")]
    pub emails: Vec<String>,
    /// Instead of addresses: the {{unsubscribe_token}} of a List-Unsubscribe URL (checked with MAILSYNC_UNSUBSCRIBE_SECRET)
    #[arg(long, value_name = "TOKEN", conflicts_with_all = ["emails", "undo"])]
    pub token: Option<String>,
    /// Take the addresses off the suppression list instead (unsubscribed ones only)
    #[arg(long)]
    pub undo: bool,
    /// With --undo: take off hard bounces too (kept otherwise)
    #[arg(long, requires = "undo")]
    pub include_bounces: bool,
    /// With --undo: take off spam complaints too (kept otherwise)
    #[arg(long, requires = "undo")]
    pub include_complaints: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
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

impl From<ContactsUnsubscribeArgs> for commands::contacts::unsubscribe::Options {
    fn from(a: ContactsUnsubscribeArgs) -> Self {
        Self {
            emails: a.emails,
            token: a.token,
            undo: a.undo,
            include_bounces: a.include_bounces,
            include_complaints: a.include_complaints,
        }
    }
}
