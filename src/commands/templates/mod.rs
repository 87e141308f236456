//! `mailsync templates create | list`: reusable subjects and contents.

pub mod create;
pub mod list;
