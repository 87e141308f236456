//! `mailsync bounces`: the reports the mail system sends back.

pub mod fetch;
