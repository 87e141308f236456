//! The bounce mailbox over IMAP, for `mailsync bounces fetch` (where it is:
//! [`crate::settings::BounceMailbox`]): connect
//! (TLS with the certificate verified; plain text only to this machine),
//! log in, open the folder, list the messages not yet recorded, read each
//! one without marking it read and with a size cap, and mark a message once
//! its reports are recorded. It knows nothing of reports, REST or printing:
//! the command parses, records and prints.
//!
//! A recorded message gets the keyword [`RECORDED`]; nothing else in the
//! mailbox changes (no `\Seen`, no move, no delete), so a person reading the
//! mailbox sees it as it was. A server that keeps no keywords
//! (`PERMANENTFLAGS` without `\*`) gets nothing marked: every run reads every
//! message again, and the database counts each report once by its key.

mod session;

pub use session::{Fetched, Reader, Timeouts, RECORDED};
