//! `mailsync bounces …`: the reports that come back after a send
//! (delivery status notifications, complaints, free-text bounces), read by
//! the engine in `crate::bounces`.

pub mod scan;
