//! `mailsync bounces …`: the reports that come back after a send
//! (delivery status notifications, complaints, free-text bounces), read by
//! the engine in `crate::bounces`: `scan` from files, `fetch` from the
//! bounce mailbox over IMAP (`crate::mailbox`).

pub mod fetch;
pub mod scan;
