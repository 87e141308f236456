//! One module per command, grouped as on the command line
//! (`commands/campaigns/send.rs` is `mailsync campaigns send`). Each has a
//! plain `Options` struct (when it takes any) and one `run` that does the work
//! and prints through [`crate::output::Output`]. Commands do not know clap
//! (that is `cli.rs`) and do not call each other: what two commands share
//! lives below them, in `domain`, `supabase`, `postgres` or `output`.

pub mod account;
pub mod bounces;
pub mod campaigns;
pub mod completions;
pub mod config;
pub mod contacts;
pub mod dashboard;
pub mod db;
pub mod import;
pub mod man;
pub mod templates;
